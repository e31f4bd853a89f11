//! The chains with the real components from `target/plugins/` (see `src/tests.rs`):
//! order, failure modes, carrying plugins over a reload, the transform chain, a large
//! blocklist asked many questions.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use sha2::{Digest, Sha256};

use super::*;
use crate::tests::{engine, plugin_bytes, query, record, relaxed};
use crate::{Action, Block, Query};
use outpost_core::answer::Transport;

/// A definition as the cluster would replicate it, at version 1.
fn definition(
    name: &str,
    crate_name: &str,
    hook: Hook,
    order: i32,
    on_error: FailureMode,
    config: &str,
) -> Arc<PluginDefinition> {
    let component: Arc<[u8]> = plugin_bytes(crate_name).into();
    Arc::new(PluginDefinition {
        name: name.into(),
        hook,
        order,
        on_error,
        enabled: true,
        version: 1,
        sha256: Sha256::digest(&component).into(),
        component,
        config: config.as_bytes().into(),
    })
}

fn policy(name: &str, crate_name: &str, order: i32, config: &str) -> Arc<PluginDefinition> {
    definition(
        name,
        crate_name,
        Hook::QueryPolicy,
        order,
        FailureMode::FailOpen,
        config,
    )
}

fn with(
    definition: &Arc<PluginDefinition>,
    change: impl FnOnce(&mut PluginDefinition),
) -> Arc<PluginDefinition> {
    let mut changed = (**definition).clone();
    change(&mut changed);
    Arc::new(changed)
}

/// Relaxed deadlines (the test threads share two cores) and two instances each.
fn options() -> LoadOptions {
    LoadOptions {
        policy_limits: relaxed(Hook::QueryPolicy),
        transform_limits: relaxed(Hook::RecordTransform),
        prebuilt_instances: 2,
    }
}

fn load(definitions: &[Arc<PluginDefinition>], previous: &PluginSet) -> PluginSet {
    let (set, failures) = PluginSet::load_with(engine(), definitions, previous, options());
    assert_eq!(failures, [], "every test plugin loads");
    set
}

fn names(set: &PluginSet) -> Vec<String> {
    set.plugins()
        .iter()
        .map(|info| info.name.to_string())
        .collect()
}

fn nxdomain(plugin: &str, tag: &str) -> PolicyOutcome {
    PolicyOutcome::Act {
        plugin: plugin.into(),
        action: Action::Block(Block::NxDomain),
        tags: vec![tag.into()],
    }
}

#[test]
fn policies_run_in_order_and_the_first_decision_wins() {
    let set = load(
        &[
            policy(
                "views",
                "split_horizon",
                20,
                "10.0.0.0/8 printer.site.example 10.1.2.3",
            ),
            policy(
                "sinkhole",
                "blocklist",
                10,
                "sinkhole=10.0.0.53\nads.example",
            ),
            // Same order as "sinkhole": the name breaks the tie.
            policy("nx", "blocklist", 10, "ads.example\ntracker.example"),
        ],
        &PluginSet::empty(),
    );
    assert_eq!(names(&set), ["nx", "sinkhole", "views"]);
    let chain = set.policies();
    assert_eq!(chain.len(), 3);

    assert_eq!(
        chain.decide(query("x.ads.example.")),
        nxdomain("nx", "blocklist:ads.example")
    );
    assert_eq!(
        chain.decide(query("www.example.org.")),
        PolicyOutcome::Continue
    );
    // Both blocklists allow it; the third plugin answers.
    let printer = Query::new(
        &Name::from_ascii("printer.site.example.").unwrap(),
        RecordType::A,
        hickory_proto::rr::DNSClass::IN,
        IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)),
        Transport::Udp,
    );
    let PolicyOutcome::Act { plugin, action, .. } = chain.decide(printer.clone()) else {
        panic!("expected split-horizon to answer");
    };
    assert_eq!(&*plugin, "views");
    assert_eq!(
        action,
        Action::Answer(vec![record(
            "printer.site.example.",
            60,
            RData::A(A::new(10, 1, 2, 3))
        )])
    );
    // Each plugin was asked only until one decided.
    let calls: Vec<u64> = set
        .plugins()
        .iter()
        .map(|info| info.stats.snapshot().calls)
        .collect();
    assert_eq!(calls, [3, 2, 2]);
}

#[test]
fn a_failing_plugin_is_skipped_when_fail_open_and_stops_the_chain_when_fail_closed() {
    let blocklist = policy("blocklist", "blocklist", 10, "ads.example");
    let hostile = policy("hostile", "hostile", 0, "");
    let open = load(&[hostile.clone(), blocklist.clone()], &PluginSet::empty());
    // hostile panics on "panic.": fail-open goes on to the blocklist.
    assert_eq!(
        open.policies().decide(query("panic.ads.example.")),
        nxdomain("blocklist", "blocklist:ads.example")
    );
    assert_eq!(
        open.policies().decide(query("panic.example.org.")),
        PolicyOutcome::Continue
    );

    let hostile_closed = with(&hostile, |d| d.on_error = FailureMode::FailClosed);
    let closed = load(&[hostile_closed, blocklist], &PluginSet::empty());
    let outcome = closed.policies().decide(query("panic.ads.example."));
    assert!(
        matches!(
            &outcome,
            PolicyOutcome::Fail { plugin, error: PluginError::Trap { .. } } if &**plugin == "hostile"
        ),
        "{outcome:?}"
    );
    // The instance is rebuilt: the next query is answered.
    assert_eq!(
        closed.policies().decide(query("x.ads.example.")),
        nxdomain("blocklist", "blocklist:ads.example")
    );
    let hostile_stats = closed.plugins()[0].stats.snapshot();
    assert_eq!((hostile_stats.calls, hostile_stats.traps), (2, 1));
}

#[test]
fn a_disabled_plugin_is_skipped_or_fails_every_query_by_its_failure_mode() {
    let hostile = policy("hostile", "hostile", 0, "");
    for on_error in [FailureMode::FailOpen, FailureMode::FailClosed] {
        let set = load(
            &[with(&hostile, |d| d.on_error = on_error)],
            &PluginSet::empty(),
        );
        for _ in 0..crate::MAX_CONSECUTIVE_FAILURES {
            set.policies().decide(query("panic.test."));
        }
        let stats = &set.plugins()[0].stats;
        assert!(stats.is_disabled());
        let outcome = set.policies().decide(query("fine.test."));
        match on_error {
            FailureMode::FailOpen => {
                assert_eq!(outcome, PolicyOutcome::Continue);
                // Not even called.
                assert_eq!(stats.snapshot().calls, 5);
            }
            FailureMode::FailClosed => assert!(
                matches!(
                    outcome,
                    PolicyOutcome::Fail {
                        error: PluginError::Disabled { .. },
                        ..
                    }
                ),
                "{outcome:?}"
            ),
        }
    }
}

#[test]
fn unchanged_plugins_are_carried_over_a_reload_with_their_counters() {
    let blocklist = policy("blocklist", "blocklist", 10, "ads.example");
    let first = load(std::slice::from_ref(&blocklist), &PluginSet::empty());
    // Three questions: the blocklist's verdicts are memoized per question.
    for i in 0..3 {
        first
            .policies()
            .decide(query(&format!("x{i}.ads.example.")));
    }

    // Installing another plugin keeps the blocklist as it was.
    let views = policy(
        "views",
        "split_horizon",
        20,
        "10.0.0.0/8 printer.site.example 10.1.2.3",
    );
    let second = load(&[blocklist.clone(), views.clone()], &first);
    let carried = &second.plugins()[0];
    assert!(Arc::ptr_eq(&carried.stats, &first.plugins()[0].stats));
    assert_eq!(carried.stats.snapshot().calls, 3);
    // The memo is carried over with the plugin: a question seen is not asked again.
    second.policies().decide(query("x0.ads.example."));
    assert_eq!(carried.stats.snapshot().memo_hits, 1);
    second.policies().decide(query("y.ads.example."));
    assert_eq!(
        first.plugins()[0].stats.snapshot().calls,
        4,
        "one plugin, two sets"
    );

    // An update (a new version) loads the plugin afresh; the order comes from the
    // new definition.
    let updated = with(&blocklist, |d| {
        d.version = 2;
        d.order = 30;
    });
    let third = load(&[updated, views.clone()], &second);
    assert_eq!(names(&third), ["views", "blocklist"]);
    let reloaded = &third.plugins()[1];
    assert_eq!((reloaded.version, reloaded.stats.snapshot().calls), (2, 0));
    assert!(Arc::ptr_eq(
        &third.plugins()[0].stats,
        &second.plugins()[1].stats
    ));

    // Deleted and installed again: version 1 again, but another configuration.
    let reinstalled = with(&blocklist, |d| {
        d.config = b"tracker.example".as_slice().into()
    });
    let fourth = load(&[reinstalled], &first);
    assert_eq!(fourth.plugins()[0].stats.snapshot().calls, 0);
    assert_eq!(
        fourth.policies().decide(query("x.ads.example.")),
        PolicyOutcome::Continue
    );
}

#[test]
fn a_plugin_that_does_not_load_is_reported_and_left_out() {
    let good = policy("good", "blocklist", 0, "ads.example");
    let bad_config = policy("bad-config", "blocklist", 1, "ok.example\nbad..example");
    let not_wasm = with(&policy("not-wasm", "blocklist", 2, ""), |d| {
        d.component = b"#!/bin/sh\n".as_slice().into();
    });
    let disabled = with(&policy("off", "blocklist", 3, "ads.example"), |d| {
        d.enabled = false;
    });
    let wrong_hook = with(&policy("wrong-hook", "ttl_floor", 4, "300"), |_| {});
    let (set, failures) = PluginSet::load_with(
        engine(),
        [&good, &bad_config, &not_wasm, &disabled, &wrong_hook],
        &PluginSet::empty(),
        options(),
    );
    assert_eq!(names(&set), ["good"]);
    let failed: Vec<(&str, String)> = failures
        .iter()
        .map(|failure| (failure.name.as_str(), failure.to_string()))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:#?}");
    assert_eq!(failed[0].0, "bad-config");
    assert!(
        failed[0].1.starts_with(
            "plugin bad-config (version 1) is not running: plugin bad-config: init refused \
             the configuration: line 2:"
        ),
        "{}",
        failed[0].1
    );
    assert_eq!(failures[1].error, PluginError::NotWasm);
    assert!(matches!(failures[2].error, PluginError::WrongWorld { .. }));
}

#[test]
fn transforms_run_in_order_each_on_the_output_of_the_one_before() {
    let set = load(
        &[
            definition(
                "ptr",
                "ptr_synth",
                Hook::RecordTransform,
                2,
                FailureMode::FailClosed,
                "zone=10.in-addr.arpa",
            ),
            definition(
                "floor",
                "ttl_floor",
                Hook::RecordTransform,
                1,
                FailureMode::FailClosed,
                "300",
            ),
        ],
        &PluginSet::empty(),
    );
    assert_eq!(names(&set), ["floor", "ptr"]);
    assert!(set.policies().is_empty());
    let zone = Name::from_ascii("site.example.").unwrap();
    let written = vec![record(
        "printer.site.example.",
        60,
        RData::A(A::new(10, 1, 2, 3)),
    )];
    let stored = set.transforms().transform(&zone, written).unwrap();
    // The PTR record takes the A record's TTL as ttl-floor left it.
    assert_eq!(
        stored,
        [
            record("printer.site.example.", 300, RData::A(A::new(10, 1, 2, 3))),
            record(
                "3.2.1.10.in-addr.arpa.",
                300,
                RData::PTR(PTR(Name::from_ascii("printer.site.example.").unwrap()))
            ),
        ]
    );
    assert_eq!(
        PluginSet::empty()
            .transforms()
            .transform(&zone, stored.clone()),
        Ok(stored)
    );
}

/// A transform that runs out of time: a call deadline of zero ticks stops the call
/// at its first check.
#[test]
fn a_failing_transform_keeps_the_records_or_refuses_the_write_by_its_failure_mode() {
    let floor = definition(
        "floor",
        "ttl_floor",
        Hook::RecordTransform,
        1,
        FailureMode::FailOpen,
        "300",
    );
    let no_time = LoadOptions {
        transform_limits: Limits {
            call_ticks: 0,
            ..relaxed(Hook::RecordTransform)
        },
        ..options()
    };
    let zone = Name::from_ascii("site.example.").unwrap();
    let written = vec![record("a.site.example.", 60, RData::A(A::new(10, 0, 0, 1)))];

    let (open, failures) = PluginSet::load_with(engine(), [&floor], &PluginSet::empty(), no_time);
    assert_eq!(failures, []);
    assert_eq!(
        open.transforms().transform(&zone, written.clone()),
        Ok(written.clone())
    );
    assert_eq!(open.plugins()[0].stats.snapshot().timeouts, 1);

    let closed = with(&floor, |d| d.on_error = FailureMode::FailClosed);
    let (closed, _) = PluginSet::load_with(engine(), [&closed], &PluginSet::empty(), no_time);
    let err = closed.transforms().transform(&zone, written).unwrap_err();
    assert!(
        matches!(&err, TransformFailure::Failed { plugin, error: PluginError::Timeout { .. } } if plugin == "floor"),
        "{err}"
    );
}

/// The pool grows to the number of threads calling at once and no further: with one
/// pre-built instance and four threads, at most three are built on the query path.
#[test]
fn the_instance_pool_grows_to_the_concurrency() {
    let options = LoadOptions {
        prebuilt_instances: 1,
        ..options()
    };
    let (set, _) = PluginSet::load_with(
        engine(),
        [&policy("blocklist", "blocklist", 0, "ads.example")],
        &PluginSet::empty(),
        options,
    );
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let set = &set;
            scope.spawn(move || {
                // Questions of their own: a remembered verdict would need no instance.
                for i in 0..200 {
                    let outcome = set
                        .policies()
                        .decide(query(&format!("x{thread}-{i}.ads.example.")));
                    assert_eq!(outcome, nxdomain("blocklist", "blocklist:ads.example"));
                }
            });
        }
    });
    let stats = set.plugins()[0].stats.snapshot();
    assert_eq!(stats.calls, 800);
    assert!(stats.instances_built_on_demand <= 3, "{stats:?}");
    println!(
        "instances built on demand: {}",
        stats.instances_built_on_demand
    );
}

/// A chain over a blocklist of 100,000 domains blocks exactly the listed names among
/// many distinct questions, asked once (a call each) and again (memo hits), without a
/// failure and without building an instance on the query path. What those calls cost
/// is printed by `cargo run --release -p outpost-plugin-host --example decide_time`.
#[test]
fn a_chain_over_100k_domains_blocks_the_listed_names_asked_once_and_again() {
    let config: String = (0..100_000)
        .map(|i| format!("ads{i}.tracker{}.example\n", i % 97))
        .collect();
    let set = load(
        &[policy("blocklist", "blocklist", 0, &config)],
        &PluginSet::empty(),
    );
    let chain = set.policies();
    const DISTINCT: usize = 2_000;
    // One in ten blocked, as in bench/plugins.sh's `blocked` mode.
    let questions: Vec<(String, PolicyOutcome)> = (0..DISTINCT)
        .map(|i| match i % 10 {
            0 => {
                let listed = format!("ads{i}.tracker{}.example", i % 97);
                let outcome = nxdomain("blocklist", &format!("blocklist:{listed}"));
                (format!("x.{listed}."), outcome)
            }
            _ => (
                format!("host{i}.zone{}.example.", i % 211),
                PolicyOutcome::Continue,
            ),
        })
        .collect();
    for round in 0..2 {
        for (name, outcome) in &questions {
            assert_eq!(&chain.decide(query(name)), outcome, "round {round}: {name}");
        }
    }
    let stats = set.plugins()[0].stats.snapshot();
    assert_eq!(stats.failures(), 0);
    assert_eq!(stats.instances_built_on_demand, 0);
}

#[test]
fn a_plugin_that_declares_memoizable_verdicts_is_called_once_per_question() {
    let set = load(
        &[
            policy("ads", "blocklist", 10, "ads.example"),
            policy(
                "views",
                "split_horizon",
                20,
                "10.0.0.0/8 printer.site.example 10.1.2.3",
            ),
        ],
        &PluginSet::empty(),
    );
    let chain = set.policies();
    let questions = [
        "x.ads.example.",
        "www.example.org.",
        "printer.site.example.",
    ];
    let first: Vec<PolicyOutcome> = questions
        .iter()
        .map(|name| chain.decide(query(name)))
        .collect();
    for _ in 0..4 {
        let again: Vec<PolicyOutcome> = questions
            .iter()
            .map(|name| chain.decide(query(name)))
            .collect();
        assert_eq!(again, first, "a remembered verdict is the verdict");
    }
    // Case does not make another question: plugins see names in lowercase.
    assert_eq!(chain.decide(query("X.Ads.EXAMPLE.")), first[0]);
    // Another type is another question.
    chain.decide(Query::new(
        &Name::from_ascii("x.ads.example.").unwrap(),
        RecordType::AAAA,
        hickory_proto::rr::DNSClass::IN,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Transport::Udp,
    ));
    let stats: Vec<_> = set
        .plugins()
        .iter()
        .map(|info| info.stats.snapshot())
        .collect();
    assert_eq!(
        (stats[0].calls, stats[0].memo_hits),
        (4, 13),
        "the blocklist declares memoizable verdicts"
    );
    // Split horizon's answer depends on the client: it declares nothing, and is asked for
    // every query the blocklist allowed.
    assert_eq!((stats[1].calls, stats[1].memo_hits), (10, 0));
}
