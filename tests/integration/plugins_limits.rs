//! A hostile plugin cannot take the appliance down: a component with two linear
//! memories is held to the one memory cap (refused at install when its memories
//! together start beyond it), and a plugin stopped after repeated failures is retried
//! after its backoff and runs again once it stops failing, while well-behaved queries
//! are answered throughout.

use std::time::Duration;

use outpost_tests::plugin::plugin_bytes;
use outpost_tests::{
    Appliance, install_plugin, patient_plugins_config, plugin, plugin_list_row, put_plugin,
    wait_plugin_loaded, wait_until,
};
use serde_json::Value;

/// The helper that gives a component one more memory, shared with the host's own tests.
#[path = "../../plugin-host/src/tests/extra_memory.rs"]
mod extra_memory;

/// A name for the `panic` attack of the hostile plugin (its first label picks the
/// attack), one for `alloc`, and a benign name.
const ZONE: &str = "$ORIGIN hostile.test.
@         300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@         300 IN NS  ns1
ns1       300 IN A   10.66.0.1
alloc     300 IN A   10.66.0.3
panic     300 IN A   10.66.0.5
www       300 IN A   10.66.0.7
";

/// The appliance's memory cap per plugin instance, `Limits::MEMORY_BYTES`.
const MEMORY_CAP: usize = 64 << 20;

/// How long a stopped plugin may take to run again: its first backoff
/// (`Limits::FIRST_RETRY`, 5 s) and a generous margin for a loaded machine.
const RETRY_DEADLINE: Duration = Duration::from_secs(40);

fn appliance() -> Appliance {
    let appliance = Appliance::start(&patient_plugins_config());
    appliance.import_zone("hostile.test.", ZONE);
    appliance
}

/// The answer to `www.hostile.test.`, which every plugin here allows.
fn assert_benign_answered(appliance: &Appliance, when: &str) {
    assert_eq!(
        appliance.a_records("www.hostile.test."),
        ["10.66.0.7"],
        "the benign query {when}"
    );
}

#[test]
fn a_hostile_plugin_with_two_memories_is_held_to_the_memory_cap() {
    let appliance = appliance();
    let hostile = plugin_bytes("hostile");

    // Its own memory starts at about 1 MiB; a second one just under the cap makes each
    // memory alone fit and both together not. Refused, naming the plugin and why.
    let over = extra_memory::with_extra_memory(&hostile, MEMORY_CAP - (512 << 10));
    let (status, body) = put_plugin(
        &appliance,
        "two-memories",
        "query-policy",
        &over,
        "",
        "fail-open",
    );
    assert_eq!(status, 422, "{body}");
    let message = body.to_string();
    for needle in [
        "plugin two-memories",
        "beyond 67108864 bytes",
        "all its linear memories together",
    ] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    assert!(
        plugin(&appliance, "two-memories").is_none(),
        "nothing stored"
    );
    assert_benign_answered(&appliance, "after the refused install");

    // A second memory of half the cap is installed; what it takes is not left for
    // the first, and `alloc` is stopped (out of memory, or at the deadline first).
    let half = extra_memory::with_extra_memory(&hostile, MEMORY_CAP / 2);
    let (status, body) = put_plugin(
        &appliance,
        "two-memories",
        "query-policy",
        &half,
        "",
        "fail-open",
    );
    assert_eq!(status, 201, "{body}");
    wait_plugin_loaded(&appliance, "two-memories");
    assert_eq!(appliance.a_records("alloc.hostile.test."), ["10.66.0.3"]);
    let entry = plugin(&appliance, "two-memories").expect("listed");
    let stopped =
        entry["out_of_memory"].as_u64().unwrap_or(0) + entry["timeouts"].as_u64().unwrap_or(0);
    assert_eq!(stopped, 1, "{entry}");
    assert_benign_answered(&appliance, "after the attack");
}

#[test]
fn a_plugin_stopped_after_failures_runs_again_after_its_backoff() {
    let appliance = appliance();
    install_plugin(&appliance, "hostile", "hostile", "query-policy", "", &[]);
    wait_plugin_loaded(&appliance, "hostile");
    let disabled_metric = "outpost_plugin_disabled{plugin=\"hostile\"}";
    assert_eq!(appliance.metric(disabled_metric), 0.0);

    // Five failures in a row stop it; fail-open, each query still gets the zone's answer.
    for _ in 0..5 {
        assert_eq!(appliance.a_records("panic.hostile.test."), ["10.66.0.5"]);
    }
    let entry = plugin(&appliance, "hostile").expect("listed");
    let state = entry["state"].as_str().unwrap_or_default();
    assert!(
        state.starts_with("stopped: ") && state.contains("; retried "),
        "{entry}"
    );
    let row = plugin_list_row(&appliance, "hostile");
    assert!(row["STATE"].contains("; retried "), "{row:?}");
    assert_eq!(appliance.metric(disabled_metric), 1.0);

    // It stopped failing (the benign queries are all it is asked): after its backoff
    // one of them is let through, succeeds, and the plugin runs again. Every query is
    // answered meanwhile.
    let mut asked = 0;
    let mut last = Value::Null;
    let back = wait_until(RETRY_DEADLINE, || {
        assert_benign_answered(&appliance, "while the plugin is stopped");
        asked += 1;
        last = plugin(&appliance, "hostile").unwrap_or(Value::Null);
        last["state"] == "running"
    });
    assert!(
        back,
        "not running again after {asked} queries: {last}\n{}",
        appliance.log_tail()
    );
    assert_eq!(appliance.metric(disabled_metric), 0.0);
    assert_eq!(
        appliance.metric("outpost_plugin_retries_total{plugin=\"hostile\"}"),
        1.0
    );
    assert_eq!(plugin_list_row(&appliance, "hostile")["STATE"], "running");

    // One log line at the stop and one at the retry, none for the queries between.
    let log = appliance.log();
    let lines = |needle: &str| log.lines().filter(|line| line.contains(needle)).count();
    assert_eq!(lines("plugin disabled after repeated failures"), 1, "{log}");
    assert_eq!(lines("plugin retried and succeeded"), 1, "{log}");
    assert_eq!(
        lines("plugin call failed"),
        4,
        "the four failures before the stop: {log}"
    );
    assert!(asked > 1, "queries were asked while it was stopped");
}
