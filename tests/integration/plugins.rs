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

/// One name per attack of the hostile plugin (its first label picks the attack), so
/// a fail-open failure visibly falls through to these addresses, and a benign name.
const HOSTILE_ZONE: &str = "$ORIGIN hostile.test.
@         300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@         300 IN NS  ns1
ns1       300 IN A   10.66.0.1
loop      300 IN A   10.66.0.2
alloc     300 IN A   10.66.0.3
recurse   300 IN A   10.66.0.4
panic     300 IN A   10.66.0.5
oversized 300 IN A   10.66.0.6
www       300 IN A   10.66.0.7
";

/// The hostile plugin's attacks, the counters of `GET /v1/plugins` each may raise
/// (exactly one of them must rise), and the `kind` labels of
/// `outpost_plugin_failures_total` that go with them.
///
/// The hostile tests' deadline is [`HOSTILE_DEADLINE`], and an attack that takes a
/// while to reach its own limit may meet the deadline first: touching 64 MiB (the
/// memory cap) one MiB at a time, or building 10,000 records. Those limits are seen
/// with a longer deadline in `plugin-host/src/tests.rs`; here either kind is right.
const ATTACKS: [(&str, &[(&str, &str)]); 5] = [
    ("loop", &[("timeouts", "timeout")]),
    (
        "alloc",
        &[("out_of_memory", "out_of_memory"), ("timeouts", "timeout")],
    ),
    ("recurse", &[("stack_overflows", "stack_overflow")]),
    ("panic", &[("traps", "trap")]),
    (
        "oversized",
        &[
            ("invalid_outputs", "invalid_output"),
            ("timeouts", "timeout"),
        ],
    ),
];

/// The `[plugins]` section of the hostile tests: long enough that the attacks that
/// are not about time (a trap, a stack overflow) finish before it even on a thread
/// descheduled for a while, short enough that the endless loop is cut off well
/// within one try of a DNS query.
const HOSTILE_DEADLINE: &str = "\n[plugins]\npolicy_deadline_ms = 200\n";

/// The failure counters of a `GET /v1/plugins` entry.
const FAILURE_COUNTERS: [&str; 5] = [
    "timeouts",
    "out_of_memory",
    "stack_overflows",
    "traps",
    "invalid_outputs",
];

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

/// The appliance with [`HOSTILE_ZONE`] and the [`HOSTILE_DEADLINE`].
fn hostile_appliance() -> Appliance {
    let appliance = Appliance::start(&(authoritative_config() + HOSTILE_DEADLINE));
    appliance.import_zone("hostile.test.", HOSTILE_ZONE);
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
fn each_attack_of_a_fail_closed_hostile_plugin_is_contained_and_counted() {
    let mut appliance = hostile_appliance();
    install_plugin(
        &appliance,
        "hostile",
        "hostile",
        "query-policy",
        "",
        &["--on-error", "fail-closed"],
    );
    wait_plugin_loaded(&appliance, "hostile");
    assert_eq!(appliance.a_records("www.hostile.test."), ["10.66.0.7"]);

    // Every attack is checked before the test fails, so one report shows them all;
    // /metrics last, so that its absence does not hide the rest.
    let mut problems = Vec::new();
    let mut metric_problems = Vec::new();
    for (attack, kinds) in ATTACKS {
        let metric = |kind: &str| {
            appliance.metric(&format!(
                "outpost_plugin_failures_total{{plugin=\"hostile\",kind=\"{kind}\"}}"
            ))
        };
        let before = plugin(&appliance, "hostile").expect("hostile is listed");
        let metrics_before: f64 = kinds.iter().map(|(_, kind)| metric(kind)).sum();
        let name = format!("{attack}.hostile.test.");
        let answer = ask_udp(appliance.dns_addr(), &Ask::new(&name, RecordType::A));
        if answer.metadata.response_code != ResponseCode::ServFail {
            problems.push(format!(
                "{attack}: expected SERVFAIL, got {}",
                describe(&answer)
            ));
        }
        let benign = appliance.a_records("www.hostile.test.");
        if benign != ["10.66.0.7"] {
            problems.push(format!(
                "{attack}: the benign query after it got {benign:?}"
            ));
        }
        let after = plugin(&appliance, "hostile").expect("hostile is listed");
        let risen: Vec<&str> = FAILURE_COUNTERS
            .into_iter()
            .filter(|field| counter(&after, field) > counter(&before, field))
            .collect();
        let accepted = risen.len() == 1 && kinds.iter().any(|(field, _)| *field == risen[0]);
        if !accepted {
            problems.push(format!(
                "{attack}: counters {risen:?} rose, expected one of {kinds:?}: {after}"
            ));
        }
        if after["state"] != "running" {
            problems.push(format!("{attack}: state {}", after["state"]));
        }
        let metrics_after: f64 = kinds.iter().map(|(_, kind)| metric(kind)).sum();
        if metrics_after <= metrics_before {
            metric_problems.push(format!(
                "{attack}: outpost_plugin_failures_total{{plugin=\"hostile\"}} of kinds {kinds:?} stayed at {metrics_after}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        appliance.log_tail()
    );

    // Five failures in a row stop the plugin; fail-closed then means SERVFAIL for all.
    for _ in 0..5 {
        let answer = query(&appliance, "panic.hostile.test.", RecordType::A);
        assert_rcode(&answer, ResponseCode::ServFail, "panic.hostile.test.");
    }
    let entry = plugin(&appliance, "hostile").unwrap();
    assert!(
        entry["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("stopped: ")),
        "{entry}"
    );
    let answer = query(&appliance, "www.hostile.test.", RecordType::A);
    assert_rcode(
        &answer,
        ResponseCode::ServFail,
        "www.hostile.test. with the plugin stopped",
    );
    assert!(appliance.is_running());
    assert!(metric_problems.is_empty(), "{}", metric_problems.join("\n"));
}

#[test]
fn a_fail_open_hostile_plugin_falls_through_to_the_zone_and_is_stopped_after_five_failures() {
    let appliance = hostile_appliance();
    install_plugin(&appliance, "hostile", "hostile", "query-policy", "", &[]);
    let installed = wait_plugin_loaded(&appliance, "hostile");
    assert_eq!(installed["on_error"], "fail-open", "{installed}");

    // Five failed calls in a row: each query still gets the zone's answer.
    for (index, (attack, _)) in ATTACKS.iter().enumerate() {
        let name = format!("{attack}.hostile.test.");
        let answer = ask_udp(appliance.dns_addr(), &Ask::new(&name, RecordType::A));
        assert_rcode(&answer, ResponseCode::NoError, &name);
        assert_eq!(
            answers_of(&answer, RecordType::A),
            [format!("10.66.0.{}", index + 2)],
            "{name}: {}",
            describe(&answer)
        );
    }
    let entry = plugin(&appliance, "hostile").unwrap();
    let failures: u64 = FAILURE_COUNTERS.iter().map(|c| counter(&entry, c)).sum();
    assert!(failures >= 5, "{entry}");
    let state = entry["state"].as_str().unwrap_or_default();
    assert!(
        state.starts_with("stopped: ") && state.contains("consecutive"),
        "{entry}"
    );
    let row = plugin_list_row(&appliance, "hostile");
    assert!(row["STATE"].starts_with("stopped: "), "{row:?}");
    assert!(row["TRAPS"].parse::<u64>().unwrap() >= 5, "{row:?}");

    // Stopped and fail-open: queries are answered, the attacks no longer reach it.
    assert_eq!(appliance.a_records("www.hostile.test."), ["10.66.0.7"]);
    assert_eq!(appliance.a_records("loop.hostile.test."), ["10.66.0.2"]);
    let later = plugin(&appliance, "hostile").unwrap();
    assert_eq!(later["calls"], entry["calls"], "{later}");
}

/// `plugins.policy_deadline_ms` is the deadline the node cuts `decide` off at: the
/// endless loop is stopped (the query falls through, fail-open), counted as one
/// timeout in `GET /v1/plugins` and `/metrics`, and logged with the configured budget.
#[test]
fn a_decide_past_the_configured_deadline_is_cut_off_and_counted_as_a_timeout() {
    let appliance =
        Appliance::start(&(authoritative_config() + "\n[plugins]\npolicy_deadline_ms = 300\n"));
    appliance.import_zone("hostile.test.", HOSTILE_ZONE);
    install_plugin(&appliance, "hostile", "hostile", "query-policy", "", &[]);
    wait_plugin_loaded(&appliance, "hostile");

    assert_eq!(appliance.a_records("loop.hostile.test."), ["10.66.0.2"]);
    let entry = plugin(&appliance, "hostile").expect("hostile is listed");
    for field in FAILURE_COUNTERS {
        let expected = u64::from(field == "timeouts");
        assert_eq!(counter(&entry, field), expected, "{field}: {entry}");
    }
    assert_eq!(
        appliance.metric("outpost_plugin_failures_total{plugin=\"hostile\",kind=\"timeout\"}"),
        1.0,
        "one cut-off call in /metrics"
    );
    let log = appliance.log_tail();
    assert!(
        log.contains("300ms deadline"),
        "the configured deadline: {log}"
    );
}

/// Five failures in a row stop a plugin; docs/plugins.md tells the operator to
/// "install it again to restart it".
#[test]
fn a_stopped_plugin_runs_again_when_installed_again() {
    let appliance = appliance_with_zone("hostile.test.", HOSTILE_ZONE);
    install_plugin(&appliance, "hostile", "hostile", "query-policy", "", &[]);
    let installed = wait_plugin_loaded(&appliance, "hostile");
    for _ in 0..5 {
        assert_eq!(appliance.a_records("panic.hostile.test."), ["10.66.0.5"]);
    }
    let stopped = plugin(&appliance, "hostile").unwrap();
    assert!(
        stopped["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("stopped: ")),
        "{stopped}"
    );

    let out = install_plugin(&appliance, "hostile", "hostile", "query-policy", "", &[]);
    let mut last = Value::Null;
    let restarted = wait_until(LOAD_DEADLINE, || {
        last = plugin(&appliance, "hostile").unwrap_or(Value::Null);
        last["state"] == "running"
    });
    assert!(
        restarted,
        "after `plugin install` again ({}): {last}\nfirst install: {installed}\n{}",
        out.trim(),
        appliance.log_tail()
    );
    assert_eq!(counter(&last, "traps"), 0, "{last}");
    assert_eq!(appliance.a_records("panic.hostile.test."), ["10.66.0.5"]);
    let entry = plugin(&appliance, "hostile").unwrap();
    assert_eq!(counter(&entry, "traps"), 1, "{entry}");
    assert_eq!(entry["state"], "running", "{entry}");
}

/// An install the appliance must refuse, and what its message must say.
struct RefusedInstall {
    file: PathBuf,
    hook: &'static str,
    config: &'static str,
    needles: &'static [&'static str],
}

#[test]
fn installs_that_cannot_run_are_refused_and_nothing_is_stored() {
    let appliance = Appliance::start(&patient_plugins_config());
    let scratch = appliance.scratch();
    // Not WebAssembly: bytes of a simple generator, the same every run.
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    std::fs::write(scratch.join("random.wasm"), &random).unwrap();
    std::fs::write(scratch.join("core.wasm"), &core_module).unwrap();
    let refused =
        |file: PathBuf, hook: &'static str, config: &'static str, needles| RefusedInstall {
            file,
            hook,
            config,
            needles,
        };
    let cases = [
        refused(
            scratch.join("random.wasm"),
            "query-policy",
            "",
            &["not WebAssembly"],
        ),
        refused(
            scratch.join("core.wasm"),
            "query-policy",
            "",
            &["core WebAssembly module", "not a component"],
        ),
        refused(
            plugin_path("ttl_floor"),
            "query-policy",
            "300",
            &["not a query-policy plugin"],
        ),
        refused(
            plugin_path("blocklist"),
            "record-transform",
            "",
            &["not a record-transform plugin"],
        ),
        refused(
            plugin_path("blocklist"),
            "query-policy",
            "color=red\n",
            &["init refused", "color"],
        ),
        refused(
            plugin_path("hostile"),
            "query-policy",
            "init=fail",
            &["configured to fail"],
        ),
    ];
    for case in cases {
        let what = format!(
            "{} as {} with config {:?}",
            case.file.display(),
            case.hook,
            case.config
        );
        let config_file = scratch.join("refused.conf");
        std::fs::write(&config_file, case.config).unwrap();
        let output = appliance.cli([
            "plugin".as_ref(),
            "install".as_ref(),
            case.file.as_os_str(),
            "--name".as_ref(),
            "refused".as_ref(),
            "--hook".as_ref(),
            case.hook.as_ref(),
            "--config-file".as_ref(),
            config_file.as_os_str(),
        ]);
        assert_fails_with(&output, case.needles);

        let bytes = std::fs::read(&case.file).unwrap();
        let (status, body) = put_plugin(
            &appliance,
            "refused",
            case.hook,
            &bytes,
            case.config,
            "fail-open",
        );
        assert_eq!(status, 422, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        for needle in case.needles {
            assert!(error.contains(needle), "{what}: {error:?} lacks {needle:?}");
        }
    }

    // An init that never returns is stopped at its deadline, and refused too.
    let started = Instant::now();
    let (status, body) = put_plugin(
        &appliance,
        "refused",
        "query-policy",
        &plugin_bytes("hostile"),
        "init=loop",
        "fail-open",
    );
    assert_eq!(status, 422, "init=loop: {body}");
    assert!(started.elapsed() < LOAD_DEADLINE, "{:?}", started.elapsed());
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{body}"
    );

    // An unknown hook is a bad request, from the API and the CLI alike.
    let (status, body) = put_plugin(
        &appliance,
        "refused",
        "response-rewrite",
        &plugin_bytes("blocklist"),
        "",
        "fail-open",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("response-rewrite")),
        "{body}"
    );
    let output = appliance.cli([
        "plugin".as_ref(),
        "install".as_ref(),
        plugin_path("blocklist").as_os_str(),
        "--name".as_ref(),
        "refused".as_ref(),
        "--hook".as_ref(),
        "response-rewrite".as_ref(),
    ]);
    assert_fails_with(&output, &["response-rewrite"]);
    let output = appliance.cli([
        "plugin",
        "install",
        "/nonexistent/x.wasm",
        "--name",
        "x",
        "--hook",
        "query-policy",
    ]);
    assert_fails_with(&output, &["/nonexistent/x.wasm"]);

    assert_eq!(plugins(&appliance), Vec::<Value>::new());
    let list = appliance.cli_ok(["plugin", "list"]);
    assert!(!list.contains("refused"), "{list}");
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
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
