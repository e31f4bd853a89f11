//! Conditional forwarding (`[[forward.zones]]`) between two real upstreams, each an
//! outpost serving its own zones: names under a forwarded domain go to its upstream and
//! nowhere else, the longest domain wins, a zone of ours always wins, and private
//! reverse names (RFC 6303) are answered here unless a domain forwards them. A reload
//! moves a domain to another upstream.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::appliance::check_config_error;
use outpost_tests::{Appliance, Ask, answers_of, ask_udp, describe, unused_upstream, wait_until};

const SOA: &str = "@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n";

/// An outpost answering `zones` (origin, host → address), recursing for nobody.
fn upstream(zones: &[(&str, &str)]) -> Appliance {
    let appliance = Appliance::start(&format!(
        "example_zone = false\n[dns]\nallow_recursion = []\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    for (origin, records) in zones {
        appliance.import_zone(origin, &format!("$ORIGIN {origin}\n{SOA}{records}"));
    }
    appliance
}

/// Questions an upstream has answered over UDP, whatever the outcome.
fn asked(upstream: &Appliance) -> f64 {
    ["NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL"]
        .iter()
        .map(|rcode| {
            upstream.metric(&format!(
                "outpost_dns_queries_total{{protocol=\"udp\",rcode=\"{rcode}\"}}"
            ))
        })
        .sum()
}

fn a(server: &Appliance, name: &str) -> (ResponseCode, Vec<String>) {
    let answer = ask_udp(server.dns_addr(), &Ask::new(name, RecordType::A));
    (
        answer.metadata.response_code,
        answers_of(&answer, RecordType::A),
    )
}

fn forwarder_config(public: &Appliance, corp: &Appliance) -> String {
    format!(
        "[forward]\nupstreams = [\"{}\"]\ntimeout_ms = 1000\n\n\
         [[forward.zones]]\nname = \"corp.test.\"\nupstreams = [\"{}\"]\n\n\
         [[forward.zones]]\nname = \"lab.corp.test.\"\nupstreams = [\"{}\"]\ncache_entries = 50\n\n\
         [[forward.zones]]\nname = \"1.168.192.in-addr.arpa.\"\nupstreams = [\"{}\"]\n",
        public.dns_addr(),
        corp.dns_addr(),
        public.dns_addr(),
        corp.dns_addr(),
    )
}

#[test]
fn each_domain_goes_to_its_own_upstream_and_private_reverse_names_stay_here() {
    let public = upstream(&[
        ("public.test.", "www 300 IN A 192.0.2.1\n"),
        ("lab.corp.test.", "box 300 IN A 192.0.2.50\n"),
    ]);
    let corp = upstream(&[
        (
            "corp.test.",
            "intranet 300 IN A 10.1.0.1\nbox.lab 300 IN A 10.1.0.50\n",
        ),
        (
            "1.168.192.in-addr.arpa.",
            "5 300 IN PTR printer.corp.test.\n",
        ),
    ]);
    let forwarder = Appliance::start(&forwarder_config(&public, &corp));

    assert_eq!(
        a(&forwarder, "www.public.test."),
        (ResponseCode::NoError, vec!["192.0.2.1".into()])
    );
    assert_eq!(
        a(&forwarder, "intranet.corp.test."),
        (ResponseCode::NoError, vec!["10.1.0.1".into()])
    );
    // The longer domain wins: lab.corp.test. is forwarded to the public upstream.
    assert_eq!(
        a(&forwarder, "box.lab.corp.test."),
        (ResponseCode::NoError, vec!["192.0.2.50".into()])
    );
    // A zone of ours always wins: the example zone is answered here, authoritatively.
    let ours = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("www.example.internal.", RecordType::A),
    );
    assert!(ours.metadata.authoritative, "{}", describe(&ours));
    let (public_asked, corp_asked) = (asked(&public), asked(&corp));
    assert_eq!(
        (public_asked, corp_asked),
        (2.0, 1.0),
        "each question reached its upstream only"
    );

    // A private reverse name nobody forwards: NXDOMAIN from here, with the zone's SOA.
    let ptr = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("4.3.2.10.in-addr.arpa.", RecordType::PTR),
    );
    assert_eq!(
        ptr.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&ptr)
    );
    assert!(ptr.metadata.authoritative, "{}", describe(&ptr));
    assert_eq!(ptr.authorities[0].name.to_string(), "10.in-addr.arpa.");
    let elsewhere = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("9.2.168.192.in-addr.arpa.", RecordType::PTR),
    );
    assert_eq!(
        elsewhere.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&elsewhere)
    );
    // One that a domain forwards goes to its upstream.
    let printer = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("5.1.168.192.in-addr.arpa.", RecordType::PTR),
    );
    assert_eq!(
        answers_of(&printer, RecordType::PTR),
        ["printer.corp.test."],
        "{}",
        describe(&printer)
    );
    assert_eq!(
        (asked(&public), asked(&corp)),
        (public_asked, corp_asked + 1.0),
        "no private reverse name leaked"
    );

    // Cached per domain: asked again, no upstream is asked.
    for name in [
        "www.public.test.",
        "intranet.corp.test.",
        "box.lab.corp.test.",
    ] {
        a(&forwarder, name);
    }
    assert_eq!(
        (asked(&public), asked(&corp)),
        (public_asked, corp_asked + 1.0)
    );
}

#[test]
fn a_reload_moves_a_domain_to_another_upstream() {
    let public = upstream(&[("public.test.", "www 300 IN A 192.0.2.1\n")]);
    let corp = upstream(&[("corp.test.", "intranet 300 IN A 10.1.0.1\n")]);
    let forwarder = Appliance::start(&format!(
        "[forward]\nupstreams = [\"{}\"]\ntimeout_ms = 1000\n",
        public.dns_addr()
    ));
    // Not forwarded yet: the public upstream does not know the name.
    assert_eq!(
        a(&forwarder, "intranet.corp.test.").0,
        ResponseCode::ServFail
    );
    std::fs::write(forwarder.config_path(), forwarder_config(&public, &corp)).unwrap();
    forwarder.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_until(std::time::Duration::from_secs(20), || a(
            &forwarder,
            "intranet.corp.test."
        ) == (
            ResponseCode::NoError,
            vec!["10.1.0.1".into()]
        )),
        "corp.test. is forwarded to its own upstream after the reload"
    );
}

#[test]
fn bad_forward_zones_are_clear_config_errors() {
    for (zones, expected) in [
        (
            "[[forward.zones]]\nname = \"corp.test\"\nupstreams = [\"10.0.0.1\"]\n",
            "forward.zones.name: \"corp.test\" is not an absolute domain name",
        ),
        (
            "[[forward.zones]]\nname = \".\"\nupstreams = [\"10.0.0.1\"]\n",
            "forward.zones.name: \".\" is not an absolute domain name",
        ),
        (
            "[[forward.zones]]\nname = \"corp.test.\"\nupstreams = []\n",
            "forward.zones.upstreams: \"corp.test.\" is empty",
        ),
        (
            "[[forward.zones]]\nname = \"corp.test.\"\nupstreams = [\"dc1.corp.test\"]\n",
            "forward.zones.upstreams: \"dc1.corp.test\" is not an upstream",
        ),
        (
            "[[forward.zones]]\nname = \"corp.test.\"\nupstreams = [\"10.0.0.1\"]\n[[forward.zones]]\nname = \"CORP.test.\"\nupstreams = [\"10.0.0.2\"]\n",
            "forward.zones.name: \"CORP.test.\" is listed twice",
        ),
        (
            "[[forward.zones]]\nname = \"corp.test.\"\nupstream = [\"10.0.0.1\"]\n",
            "unknown field `upstream`",
        ),
    ] {
        let stderr = check_config_error(&format!("[forward]\nupstreams = [\"10.0.0.9\"]\n{zones}"));
        assert!(stderr.contains(expected), "{zones}: {stderr}");
    }
}
