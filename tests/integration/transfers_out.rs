//! outpost as the primary of a real Knot secondary (Debian `knot`): Knot takes the zone
//! by AXFR, signed with TSIG; after a write, outpost's NOTIFY wakes it and it takes the
//! change by IXFR; both then answer the same. In a cluster, Knot may know one follower
//! alone: it transfers from it, and only the leader notifies. Transfers are refused to
//! everyone else:
//! unsigned, or signed with a wrong secret; over UDP, IXFR gets the SOA alone.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use outpost_tests::cluster::{CLUSTER_WAIT, leader, start_cluster};
use outpost_tests::knot::{self, Knot, TSIG_KEY as KEY, TSIG_SECRET as SECRET, free_port, kdig};
use outpost_tests::{Appliance, authoritative_config, wait_until};

const ZONE: &str = "xfr.test.";
const WRONG_SECRET: &str = "bm90IHRoZSBzZWNyZXQgc2hhcmVkIHdpdGggdGhlIHNlY29uZGFyeQ==";

const ZONE_TEXT: &str = "$ORIGIN xfr.test.
$TTL 300
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@    IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.80
mail IN MX  10 ns1
";

/// Knot in `dir`, on `port`, as the secondary of [`ZONE`] with `primary` its primary.
fn secondary(dir: &Path, port: u16, primary: SocketAddr) -> Knot {
    let zones = format!(
        "  - domain: {ZONE}\n    master: outpost\n    acl: notify_from_outpost\n    zonefile-load: none\n"
    );
    Knot::start(dir, port, &[primary], &zones)
}

/// The serial `addr` serves for [`ZONE`].
fn serial(addr: SocketAddr) -> Option<u32> {
    knot::serial(addr, ZONE)
}

/// The `[transfer]` tables: Knot on `knot_port` is the secondary of [`ZONE`].
fn transfer_section(knot_port: u16) -> String {
    format!(
        "\n[[transfer.keys]]\nname = \"{KEY}\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\n\
         [[transfer.secondaries]]\nzones = [\"{ZONE}\"]\nallow = [\"127.0.0.1\"]\n\
         notify = [\"127.0.0.1:{knot_port}\"]\nkey = \"{KEY}\"\n"
    )
}

fn config(knot_port: u16) -> String {
    authoritative_config() + &transfer_section(knot_port)
}

#[test]
fn knot_follows_outpost_by_axfr_then_ixfr_woken_by_notify() {
    let knot_port = free_port();
    let appliance = Appliance::start(&config(knot_port));
    appliance.import_zone(ZONE, ZONE_TEXT);
    let primary_serial = serial(appliance.dns_addr()).expect("outpost serves the zone");
    let dir = tempfile::tempdir().unwrap();
    let knot = secondary(dir.path(), knot_port, appliance.dns_addr());
    let knot_log = || knot.log();

    // Knot bootstraps the zone by AXFR.
    assert!(
        wait_until(Duration::from_secs(30), || serial(knot.addr)
            == Some(primary_serial)),
        "Knot did not take the zone; its log:\n{}",
        knot_log()
    );
    assert_eq!(appliance.metric("outpost_transfers_axfr_total"), 1.0);
    let questions = [
        ("www.xfr.test.", "A"),
        ("mail.xfr.test.", "MX"),
        ("xfr.test.", "NS"),
    ];
    assert_eq!(
        knot::answers(knot.addr, &questions),
        knot::answers(appliance.dns_addr(), &questions)
    );

    // A write: NOTIFY wakes Knot (its refresh timer is two hours), which asks for IXFR.
    appliance.cli_ok(["record", "add", "new.xfr.test.", "A", "192.0.2.99"]);
    appliance.cli_ok(["record", "rm", "www.xfr.test.", "A"]);
    let after = serial(appliance.dns_addr()).unwrap();
    assert!(after > primary_serial);
    assert!(
        wait_until(Duration::from_secs(30), || serial(knot.addr) == Some(after)),
        "Knot did not follow the change; its log:\n{}",
        knot_log()
    );
    assert!(appliance.metric("outpost_notify_sent_total") >= 1.0);
    assert!(appliance.metric("outpost_transfers_ixfr_total") >= 1.0);
    assert_eq!(
        appliance.metric("outpost_transfers_axfr_total"),
        1.0,
        "the change went by IXFR, not a second AXFR"
    );
    let questions = [
        ("new.xfr.test.", "A"),
        ("www.xfr.test.", "A"),
        ("mail.xfr.test.", "MX"),
    ];
    let from_knot = knot::answers(knot.addr, &questions);
    assert_eq!(from_knot, knot::answers(appliance.dns_addr(), &questions));
    assert_eq!(from_knot[0], "192.0.2.99");
    assert_eq!(from_knot[1], "", "the deleted record is gone from Knot too");
}

#[test]
fn transfers_are_refused_unsigned_or_with_a_wrong_key() {
    let appliance = Appliance::start(&config(free_port()));
    appliance.import_zone(ZONE, ZONE_TEXT);
    let dns = appliance.dns_addr();

    let unsigned = kdig(dns, &["+tcp", ZONE, "AXFR"]);
    assert!(unsigned.contains("REFUSED"), "{unsigned}");

    let wrong = format!("hmac-sha256:{KEY}:{WRONG_SECRET}");
    let forged = kdig(dns, &["-y", &wrong, "+tcp", ZONE, "AXFR"]);
    assert!(
        forged.contains("NOTAUTH") || forged.contains("BADSIG"),
        "{forged}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || appliance
            .log()
            .contains("bad TSIG")),
        "the bad signature is logged"
    );

    let right = format!("hmac-sha256:{KEY}:{SECRET}");
    let signed = kdig(dns, &["-y", &right, ZONE, "AXFR"]);
    assert!(signed.contains("www.xfr.test."), "{signed}");
    assert!(!signed.contains("failed"), "{signed}");

    // IXFR over UDP from an older serial gets the current SOA alone, signed: ask again
    // over TCP (RFC 1995 section 2).
    appliance.cli_ok(["record", "add", "new.xfr.test.", "A", "192.0.2.99"]);
    let udp = kdig(dns, &["-y", &right, "+notcp", "+ignore", ZONE, "IXFR=1"]);
    assert!(udp.contains("(UDP)"), "{udp}");
    assert!(udp.contains("hostmaster.xfr.test. 2 "), "{udp}");
    assert!(udp.contains("(1 messages, 1 records)"), "{udp}");
    assert!(!udp.contains(";; ERROR"), "the TSIG verifies: {udp}");
    assert!(appliance.metric("outpost_transfers_refused_total") >= 2.0);
}

#[test]
fn a_secondary_follows_a_cluster_through_a_follower_notified_by_the_leader() {
    let knot_port = free_port();
    let nodes = start_cluster(3, &transfer_section(knot_port));
    let lead = leader(&nodes, &[0, 1, 2]);
    let follower = (lead + 1) % nodes.len();
    nodes[follower].import_zone(ZONE, ZONE_TEXT);
    let addrs: Vec<SocketAddr> = nodes.iter().map(Appliance::dns_addr).collect();
    let everywhere = |serial| knot::serial_everywhere(&addrs, ZONE, serial, CLUSTER_WAIT);
    assert!(everywhere(1), "the zone reached every node");

    // Knot knows the follower alone as its primary; the leader notifies it.
    let dir = tempfile::tempdir().unwrap();
    let knot = secondary(dir.path(), knot_port, nodes[follower].dns_addr());
    let knot_log = || knot.log();
    assert!(
        wait_until(CLUSTER_WAIT, || serial(knot.addr) == Some(1)),
        "Knot did not take the zone from the follower; its log:\n{}",
        knot_log()
    );
    nodes[follower].cli_ok(["record", "add", "new.xfr.test.", "A", "192.0.2.99"]);
    assert!(everywhere(2), "the write reached every node");
    assert!(
        wait_until(CLUSTER_WAIT, || serial(knot.addr) == Some(2)),
        "Knot did not follow the write; its log:\n{}",
        knot_log()
    );
    assert_eq!(
        knot::answers(knot.addr, &[("new.xfr.test.", "A")]),
        ["192.0.2.99"]
    );
    let notified: Vec<f64> = (nodes.iter())
        .map(|node| node.metric("outpost_notify_sent_total"))
        .collect();
    assert!(notified[lead] >= 1.0, "the leader notified: {notified:?}");
    let others = (0..nodes.len()).filter(|&i| i != lead);
    assert!(
        others.map(|i| notified[i]).all(|sent| sent == 0.0),
        "only the leader notifies: {notified:?}"
    );
    assert!(nodes[follower].metric("outpost_transfers_ixfr_total") >= 1.0);
}
