//! A plugin cannot take the node down: its memories together are held to one cap, an
//! instance that trapped is rebuilt off the query path, and a plugin disabled after
//! repeated failures is retried after a backoff and comes back once it stops failing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_core::state::{FailureMode, Hook, PluginDefinition};
use sha2::{Digest, Sha256};

use super::extra_memory::with_extra_memory;
use super::{engine, eventually, plugin_bytes, query, relaxed};
use crate::{Limits, LoadOptions, PluginError, PluginSet, PolicyOutcome};

const MIB: usize = 1 << 20;

/// Loads `component` as a query-policy plugin and builds one instance.
fn instantiate(name: &str, component: &[u8], limits: Limits) -> Result<(), PluginError> {
    let loaded = engine().load_policy(name, component, limits)?;
    let mut instance = loaded.instantiate(b"")?;
    instance.decide(&query("fine.test.")).map(drop)
}

#[test]
fn a_second_memory_counts_toward_the_same_cap() {
    let limits = Limits {
        memory_bytes: 16 * MIB,
        ..relaxed(Hook::QueryPolicy)
    };
    let hostile = plugin_bytes("hostile");
    // The hostile plugin's own memory starts at about 1 MiB: with a second memory just
    // under the cap, each memory alone is under it, both together are not.
    let over = with_extra_memory(&hostile, 16 * MIB - 512 * 1024);
    let err = instantiate("two-memories", &over, limits).unwrap_err();
    assert!(
        matches!(err, PluginError::OutOfMemory { limit_bytes, .. } if limit_bytes == 16 * MIB),
        "{err}"
    );
    assert!(
        err.to_string().contains("all its linear memories together"),
        "{err}"
    );

    // A second memory that leaves room is fine, and what it takes is not left for
    // the first: `alloc` runs out of memory once both together reach the cap.
    let under = with_extra_memory(&hostile, 12 * MIB);
    instantiate("two-memories-under", &under, limits).unwrap();
    let loaded = engine()
        .load_policy("two-memories-under", &under, limits)
        .unwrap();
    let mut instance = loaded.instantiate(b"").unwrap();
    let err = instance.decide(&query("alloc.test.")).unwrap_err();
    assert!(matches!(err, PluginError::OutOfMemory { .. }), "{err}");
}

fn hostile_definition(on_error: FailureMode) -> Arc<PluginDefinition> {
    let component: Arc<[u8]> = plugin_bytes("hostile").into();
    Arc::new(PluginDefinition {
        name: "hostile".into(),
        hook: Hook::QueryPolicy,
        order: 0,
        on_error,
        enabled: true,
        version: 1,
        sha256: Sha256::digest(&component).into(),
        component,
        config: Arc::from(&b""[..]),
    })
}

#[test]
fn a_trapped_instance_is_rebuilt_off_the_query_path() {
    let options = LoadOptions {
        policy_limits: relaxed(Hook::QueryPolicy),
        prebuilt_instances: 1,
        ..LoadOptions::default()
    };
    let definitions = [hostile_definition(FailureMode::FailOpen)];
    let (set, failures) =
        PluginSet::load_with(engine(), &definitions, &PluginSet::empty(), options);
    assert!(failures.is_empty(), "{failures:?}");
    let chain = set.policies();
    let stats = set.plugins()[0].stats.clone();

    let started = Instant::now();
    assert_eq!(chain.decide(query("panic.test.")), PolicyOutcome::Continue);
    println!(
        "the query that trapped was answered after {:.2?}",
        started.elapsed()
    );
    // The replacement is built with no query asking for it.
    eventually("the trapped instance rebuilt in the background", || {
        stats.snapshot().rebuilds == 1
    });
    let started = Instant::now();
    assert_eq!(chain.decide(query("www.test.")), PolicyOutcome::Continue);
    println!(
        "the next query was answered after {:.2?}",
        started.elapsed()
    );
    let snapshot = stats.snapshot();
    assert_eq!(
        (snapshot.calls, snapshot.traps, snapshot.rebuilds),
        (2, 1, 1)
    );
    // Neither query waited for an instance to be built.
    assert_eq!(snapshot.instances_built_on_demand, 0, "{snapshot:?}");
}

#[test]
fn a_disabled_plugin_is_retried_after_its_backoff_and_comes_back() {
    let first_retry = Duration::from_secs(1);
    let limits = Limits {
        first_retry,
        ..relaxed(Hook::QueryPolicy)
    };
    let loaded = engine()
        .load_policy("hostile", &plugin_bytes("hostile"), limits)
        .unwrap();
    let mut hostile = loaded.instantiate(b"").unwrap();
    let stats = loaded.stats().clone();
    for _ in 0..crate::MAX_CONSECUTIVE_FAILURES {
        hostile.decide(&query("panic.test.")).unwrap_err();
    }
    let reason = stats.disabled_reason().expect("disabled");
    assert!(reason.contains("; retried "), "{reason}");
    let err = hostile.decide(&query("fine.test.")).unwrap_err();
    assert!(matches!(err, PluginError::Disabled { .. }), "{err}");

    // The retry still fails: the plugin stays disabled, and waits twice as long.
    eventually("the first retry due", || stats.retry_due());
    let err = hostile.decide(&query("panic.test.")).unwrap_err();
    assert!(
        matches!(err, PluginError::Trap { .. }),
        "the retry ran: {err}"
    );
    let reason = stats.disabled_reason().expect("still disabled");
    assert!(reason.contains("1 failed retries so far"), "{reason}");
    let err = hostile.decide(&query("fine.test.")).unwrap_err();
    assert!(matches!(err, PluginError::Disabled { .. }), "{err}");

    // Once it stops failing, the next retry enables it again.
    let deadline = Instant::now() + 5 * first_retry;
    while hostile.decide(&query("fine.test.")).is_err() {
        assert!(Instant::now() < deadline, "not enabled again");
        std::thread::sleep(Duration::from_millis(20));
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.disabled, None);
    assert_eq!(snapshot.retries, 2);
    hostile.decide(&query("fine.test.")).unwrap();
}
