//! Hostile plugins contained by the sandbox: every attack of a fail-closed plugin
//! answered SERVFAIL and counted, a fail-open one falling through to the zone and
//! stopped after five failures, a decide past its deadline cut off, and a stopped
//! plugin running again once installed again.

use super::*;

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

/// The appliance with [`HOSTILE_ZONE`] and the [`HOSTILE_DEADLINE`].
fn hostile_appliance() -> Appliance {
    let appliance = Appliance::start(&(authoritative_config() + HOSTILE_DEADLINE));
    appliance.import_zone("hostile.test.", HOSTILE_ZONE);
    appliance
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
