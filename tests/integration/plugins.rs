//! WebAssembly plugins on the appliance, as an operator uses them: `outpost plugin
//! install|list|rm` and `/v1/plugins`, query-policy plugins seen through real DNS
//! answers, record-transform plugins seen through the records a write stores, hostile
//! plugins contained by the sandbox, refused installs, and a restart after kill -9.
//!
//! Installing is a Raft write and the node loads the plugin afterwards, so every test
//! waits for `GET /v1/plugins` to show the installed version running before it asks.
//!
//! Tests that are not about deadlines give calls a patient deadline
//! ([`outpost_tests::PATIENT_PLUGINS`]); the tests of cut-off calls check the counters and metrics
//! of timeouts, never how long a query took, so a descheduled thread cannot flip them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Output;
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::plugin::{LOAD_DEADLINE, plugin_bytes};
use outpost_tests::{
    Appliance, Ask, answers_of, ask_udp, ask_udp_from, authoritative_config, describe,
    install_plugin, patient_plugins_config, plugin, plugin_list_row, plugin_path, plugins,
    put_plugin, query_udp, wait_plugin_loaded, wait_until,
};
use serde_json::Value;

mod hostile;
mod installs;

/// A zone with a name to block, a name below it, a name that merely ends alike, and
/// bystanders.
const SITE_ZONE: &str = "$ORIGIN site.test.
@        300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@        300 IN NS  ns1
ns1      300 IN A   10.7.0.1
ads      300 IN A   10.7.0.2
cdn.ads  300 IN A   10.7.0.3
badads   300 IN A   10.7.0.4
www      300 IN A   10.7.0.5
";

fn query(appliance: &Appliance, name: &str, rtype: RecordType) -> Message {
    query_udp(appliance.dns_addr(), name, rtype, None)
}

fn assert_rcode(answer: &Message, expected: ResponseCode, what: &str) {
    assert_eq!(
        answer.metadata.response_code,
        expected,
        "{what}: {}",
        describe(answer)
    );
}

fn assert_nxdomain(appliance: &Appliance, name: &str, rtype: RecordType) {
    let answer = query(appliance, name, rtype);
    assert_rcode(&answer, ResponseCode::NXDomain, name);
    assert!(answer.answers.is_empty(), "{name}: {}", describe(&answer));
}

/// The appliance, with patient plugin deadlines, with `origin` imported from `text`.
fn appliance_with_zone(origin: &str, text: &str) -> Appliance {
    let appliance = Appliance::start(&patient_plugins_config());
    appliance.import_zone(origin, text);
    appliance
}

fn counter(entry: &Value, field: &str) -> u64 {
    entry[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {field} in {entry}"))
}

/// Asserts the CLI failed with a message on stderr holding every one of `needles`.
fn assert_fails_with(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected a failure; stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_blocklist_answers_nxdomain_for_listed_domains_and_their_subdomains() {
    let appliance = appliance_with_zone("site.test.", SITE_ZONE);
    assert_eq!(appliance.a_records("ads.site.test."), ["10.7.0.2"]);

    let out = install_plugin(
        &appliance,
        "blocklist",
        "ads",
        "query-policy",
        "# trackers\nads.site.test\n0.0.0.0 tracker.site.test\n",
        &[],
    );
    assert!(
        out.starts_with("installed plugin ads (query-policy, version "),
        "{out}"
    );
    let entry = wait_plugin_loaded(&appliance, "ads");
    let sha256 = entry["sha256"].as_str().unwrap_or_default();
    assert_eq!(sha256.len(), 64, "{entry}");
    assert!(out.contains(&sha256[..12]), "{out} names sha256 {sha256}");

    assert_nxdomain(&appliance, "ads.site.test.", RecordType::A);
    assert_nxdomain(&appliance, "ads.site.test.", RecordType::AAAA);
    assert_nxdomain(&appliance, "cdn.ads.site.test.", RecordType::A);
    assert_nxdomain(&appliance, "CDN.Ads.Site.Test.", RecordType::A);
    assert_nxdomain(&appliance, "tracker.site.test.", RecordType::A);
    assert_eq!(appliance.a_records("badads.site.test."), ["10.7.0.4"]);
    assert_eq!(appliance.a_records("www.site.test."), ["10.7.0.5"]);
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);

    // Eight queries since the load, every one decided by the plugin: the blocklist
    // declares memoizable verdicts, so the question asked again in other case was
    // answered from the verdict remembered for it, without a call.
    let row = plugin_list_row(&appliance, "ads");
    assert_eq!(row["HOOK"], "query-policy", "{row:?}");
    assert_eq!(row["ON-ERROR"], "fail-open", "{row:?}");
    assert_eq!(row["TRAPS"], "0", "{row:?}");
    assert_eq!(row["STATE"], "running", "{row:?}");
    let calls: u64 = row["CALLS"].parse().expect("CALLS is a number");
    let memo_hits: u64 = row["MEMO-HITS"].parse().expect("MEMO-HITS is a number");
    assert!(calls >= 7 && memo_hits >= 1, "{row:?}");
    let entry = plugin(&appliance, "ads").expect("ads is listed");
    assert!(
        counter(&entry, "calls") + counter(&entry, "memo_hits") >= 8,
        "{entry}"
    );
    assert!(
        appliance.metric("outpost_plugin_memo_hits_total{plugin=\"ads\"}") >= 1.0,
        "memo hits are in /metrics"
    );
    assert!(entry["mean_micros"].as_f64() > Some(0.0), "{entry}");
    let metric_calls = appliance.metric("outpost_plugin_calls_total{plugin=\"ads\"}");

    let out = appliance.cli_ok(["plugin", "rm", "ads"]);
    assert!(out.contains("removed plugin ads"), "{out}");
    let mut last = Vec::new();
    let unblocked = wait_until(LOAD_DEADLINE, || {
        last = appliance.a_records("ads.site.test.");
        last == ["10.7.0.2"]
    });
    assert!(
        unblocked,
        "ads.site.test. after plugin rm: {last:?}\n{}",
        appliance.log_tail()
    );
    assert_eq!(appliance.a_records("cdn.ads.site.test."), ["10.7.0.3"]);
    assert_eq!(plugins(&appliance), Vec::<Value>::new());
    assert!(
        metric_calls >= 7.0,
        "/metrics counted {metric_calls} calls of plugin ads (outpost_plugin_calls_total)"
    );
}

#[test]
fn a_blocklist_with_a_sinkhole_answers_its_address_and_an_update_takes_effect() {
    let appliance = appliance_with_zone("site.test.", SITE_ZONE);
    let blocklist = plugin_bytes("blocklist");

    let (status, body) = put_plugin(
        &appliance,
        "ads",
        "query-policy",
        &blocklist,
        "sinkhole=10.9.9.9\nads.site.test\n",
        "fail-open",
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "ads", "{body}");
    assert_eq!(body["hook"], "query-policy", "{body}");
    let first = wait_plugin_loaded(&appliance, "ads");
    assert_eq!(first["version"], body["version"], "{first}");
    for name in ["ads.site.test.", "cdn.ads.site.test."] {
        let answer = query(&appliance, name, RecordType::A);
        assert_rcode(&answer, ResponseCode::NoError, name);
        assert_eq!(
            answers_of(&answer, RecordType::A),
            ["10.9.9.9"],
            "{name}: {}",
            describe(&answer)
        );
    }
    assert_eq!(appliance.a_records("www.site.test."), ["10.7.0.5"]);

    // The same name again is an update: 200, a new version, the new config in force.
    let (status, body) = put_plugin(
        &appliance,
        "ads",
        "query-policy",
        &blocklist,
        "ads.site.test\n",
        "fail-open",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["version"].as_u64() > first["version"].as_u64(),
        "{body} after {first}"
    );
    let second = wait_plugin_loaded(&appliance, "ads");
    assert_eq!(second["version"], body["version"], "{second}");
    assert_nxdomain(&appliance, "ads.site.test.", RecordType::A);
    assert_eq!(plugins(&appliance).len(), 1);
}

#[test]
fn split_horizon_answers_by_the_client_subnet() {
    let appliance = Appliance::start(&patient_plugins_config());
    install_plugin(
        &appliance,
        "split_horizon",
        "views",
        "query-policy",
        "127.0.0.0/8 printer.example.internal 10.8.8.8\n\
         127.0.0.2/32 printer.example.internal 10.2.2.2\n\
         127.0.0.2 www.example.internal 10.2.0.10\n\
         ttl=30\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "views");

    let from = |source: [u8; 4], name: &str| {
        let source = IpAddr::V4(Ipv4Addr::from(source));
        let answer = ask_udp_from(source, appliance.dns_addr(), &Ask::new(name, RecordType::A));
        assert_rcode(
            &answer,
            ResponseCode::NoError,
            &format!("{name} from {source}"),
        );
        answer
    };
    // The most specific subnet wins; the view's own TTL.
    let answer = from([127, 0, 0, 1], "printer.example.internal.");
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.8.8.8"],
        "{}",
        describe(&answer)
    );
    assert!(
        answer.answers.iter().all(|r| r.ttl == 30),
        "{}",
        describe(&answer)
    );
    let answer = from([127, 0, 0, 2], "printer.example.internal.");
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.2.2.2"],
        "{}",
        describe(&answer)
    );
    // A name with a view for one client only: the others get the zone's data.
    let answer = from([127, 0, 0, 2], "www.example.internal.");
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.2.0.10"],
        "{}",
        describe(&answer)
    );
    let answer = from([127, 0, 0, 1], "www.example.internal.");
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.0.0.10"],
        "{}",
        describe(&answer)
    );
    let answer = from([127, 0, 0, 3], "www.example.internal.");
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.0.0.10"],
        "{}",
        describe(&answer)
    );
}

#[test]
fn ttl_floor_raises_the_ttls_of_added_and_imported_records() {
    let appliance = Appliance::start(&patient_plugins_config());
    let ttl_of = |name: &str| {
        let answer = query(&appliance, name, RecordType::A);
        assert_rcode(&answer, ResponseCode::NoError, name);
        assert_eq!(answer.answers.len(), 1, "{name}: {}", describe(&answer));
        answer.answers[0].ttl
    };
    appliance.cli_ok([
        "record",
        "add",
        "before.example.internal.",
        "A",
        "10.1.0.1",
        "--ttl",
        "30",
    ]);
    assert_eq!(ttl_of("before.example.internal."), 30);

    let out = install_plugin(
        &appliance,
        "ttl_floor",
        "floor",
        "record-transform",
        "floor=600\n",
        &[],
    );
    assert!(
        out.starts_with("installed plugin floor (record-transform, version "),
        "{out}"
    );
    wait_plugin_loaded(&appliance, "floor");

    appliance.cli_ok([
        "record",
        "add",
        "low.example.internal.",
        "A",
        "10.1.0.2",
        "--ttl",
        "30",
    ]);
    assert_eq!(ttl_of("low.example.internal."), 600);
    appliance.cli_ok([
        "record",
        "add",
        "high.example.internal.",
        "A",
        "10.1.0.3",
        "--ttl",
        "7200",
    ]);
    assert_eq!(ttl_of("high.example.internal."), 7200);
    // Records written before the install keep their TTL.
    assert_eq!(ttl_of("before.example.internal."), 30);

    appliance.import_zone(
        "floor.test.",
        "$ORIGIN floor.test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 10.1.1.1\nhost 5 IN A 10.1.1.2\n",
    );
    assert_eq!(ttl_of("ns1.floor.test."), 600);
    assert_eq!(ttl_of("host.floor.test."), 600);
    assert!(counter(&plugin(&appliance, "floor").unwrap(), "calls") >= 3);
}

#[test]
fn ptr_synth_adds_ptr_records_to_the_reverse_zone() {
    let appliance = appliance_with_zone(
        "10.in-addr.arpa.",
        "$ORIGIN 10.in-addr.arpa.\n@ 300 IN SOA ns1.example.internal. hostmaster.example.internal. 1 7200 3600 1209600 300\n@ 300 IN NS ns1.example.internal.\n",
    );
    let ptr = |name: &str| answers_of(&query(&appliance, name, RecordType::PTR), RecordType::PTR);
    install_plugin(
        &appliance,
        "ptr_synth",
        "ptr",
        "record-transform",
        // The second reverse zone is not held by the appliance.
        "zone=10.in-addr.arpa\nzone=16.172.in-addr.arpa\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "ptr");

    appliance.cli_ok(["record", "add", "nas.example.internal.", "A", "10.20.30.40"]);
    assert_eq!(
        appliance.a_records("nas.example.internal."),
        ["10.20.30.40"]
    );
    assert_eq!(ptr("40.30.20.10.in-addr.arpa."), ["nas.example.internal."]);

    // An address outside the configured zones gets no PTR.
    appliance.cli_ok(["record", "add", "web.example.internal.", "A", "192.0.2.80"]);
    assert_eq!(appliance.a_records("web.example.internal."), ["192.0.2.80"]);

    // A zone import: its addresses in 10/8 get their PTRs too.
    appliance.import_zone(
        "lab.test.",
        "$ORIGIN lab.test.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\ndb 300 IN A 10.50.0.9\n",
    );
    assert_eq!(appliance.a_records("db.lab.test."), ["10.50.0.9"]);
    assert_eq!(ptr("9.0.50.10.in-addr.arpa."), ["db.lab.test."]);

    // A PTR in a reverse zone the cluster does not hold: the whole write is refused.
    let output = appliance.cli(["record", "add", "dev.example.internal.", "A", "172.16.0.1"]);
    assert_fails_with(&output, &["in-addr.arpa"]);
    assert!(appliance.a_records("dev.example.internal.").is_empty());
}

#[test]
fn an_installed_plugin_survives_kill_9_and_blocks_from_the_first_query() {
    let mut appliance = appliance_with_zone("site.test.", SITE_ZONE);
    install_plugin(
        &appliance,
        "blocklist",
        "ads",
        "query-policy",
        "ads.site.test\n",
        &[],
    );
    let installed = wait_plugin_loaded(&appliance, "ads");
    assert_nxdomain(&appliance, "ads.site.test.", RecordType::A);

    appliance.kill9();
    appliance.restart();
    // Plugins are loaded before the node answers: no unblocked window after a start.
    assert_nxdomain(&appliance, "ads.site.test.", RecordType::A);
    assert_eq!(appliance.a_records("www.site.test."), ["10.7.0.5"]);
    let entry = wait_plugin_loaded(&appliance, "ads");
    assert_eq!(entry["version"], installed["version"], "{entry}");
    assert_eq!(entry["sha256"], installed["sha256"], "{entry}");
    let row = plugin_list_row(&appliance, "ads");
    assert_eq!(row["STATE"], "running", "{row:?}");
}
