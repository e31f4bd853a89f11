//! The chains with the real components from `target/plugins/` (see
//! `plugin/tests.rs`): order, failure modes, carrying plugins over a reload, the
//! transform chain, and what a `decide` through the chain costs.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use sha2::{Digest, Sha256};

use super::*;
use crate::PolicyInstance;
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

/// Not a pass/fail benchmark: prints what a `decide` costs through the chain (pool
/// pop and push included) next to the same call on an instance held directly, for a
/// blocklist of 100,000 domains, and what the pool's lock costs alone. Run it with
/// `cargo test -p outpost-plugin-host --release --lib chain::tests::chain_decide_time -- --nocapture`.
#[test]
fn chain_decide_time_with_100k_domains() {
    let config: String = (0..100_000)
        .map(|i| format!("ads{i}.tracker{}.example\n", i % 97))
        .collect();
    let definition = policy("blocklist", "blocklist", 0, &config);
    let started = Instant::now();
    let set = load(&[definition], &PluginSet::empty());
    let load_time = started.elapsed();
    let chain = set.policies();
    let mut direct = engine()
        .load_policy(
            "direct",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap()
        .instantiate(config.as_bytes())
        .unwrap();

    let queries: Vec<Query> = [
        "www.allowed.example.",
        "cdn.ads4242.tracker73.example.",
        "a.b.c.d.e.example.org.",
    ]
    .iter()
    .map(|name| query(name))
    .collect();
    const CALLS: usize = 30_000;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        (times[CALLS / 2], times[CALLS * 99 / 100])
    };
    let mut through_chain = Vec::with_capacity(CALLS);
    let mut on_instance = Vec::with_capacity(CALLS);
    for call in 0..CALLS {
        let query = &queries[call % queries.len()];
        let started = Instant::now();
        std::hint::black_box(chain.decide(query.clone()));
        through_chain.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(direct.decide(query).unwrap());
        on_instance.push(started.elapsed());
    }
    // The pool's part alone: an uncontended lock, pop, lock, push.
    let pool = std::sync::Mutex::new(vec![0u64; 2]);
    let started = Instant::now();
    for _ in 0..CALLS {
        let taken = pool.lock().unwrap().pop().unwrap();
        pool.lock().unwrap().push(std::hint::black_box(taken));
    }
    let pool_time = started.elapsed() / CALLS as u32;

    // Two threads at once: through the one chain (one pool, one mutex), then each
    // on an instance of its own. Wall time per call, both threads together.
    const PER_THREAD: usize = 15_000;
    let run_two = |run: &(dyn Fn(usize) + Sync)| {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for thread in 0..2 {
                scope.spawn(move || run(thread));
            }
        });
        started.elapsed() / (2 * PER_THREAD) as u32
    };
    let two_through_chain = run_two(&|thread| {
        for call in 0..PER_THREAD {
            std::hint::black_box(chain.decide(queries[(call + thread) % queries.len()].clone()));
        }
    });
    let loaded = engine()
        .load_policy(
            "direct",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap();
    let own: Vec<std::sync::Mutex<PolicyInstance>> = (0..2)
        .map(|_| std::sync::Mutex::new(loaded.instantiate(config.as_bytes()).unwrap()))
        .collect();
    let two_on_own_instances = run_two(&|thread| {
        let mut instance = own[thread].lock().unwrap();
        for call in 0..PER_THREAD {
            let query = &queries[(call + thread) % queries.len()];
            std::hint::black_box(instance.decide(query).unwrap());
        }
    });

    // What the server sees: many distinct questions, so the memo's table is out of the
    // CPU's caches more often. Names as they arrive (hickory `Name`s); the time includes
    // building the plugin's view of the query, as the DNS path does.
    const DISTINCT: usize = 18_392;
    // One in ten blocked, as in bench/plugins.sh's `blocked` mode.
    let names: Vec<Name> = (0..DISTINCT)
        .map(|i| match i % 10 {
            0 => format!("x.ads{i}.tracker{}.example.", i % 97),
            _ => format!("host{i}.zone{}.example.", i % 211),
        })
        .map(|name| Name::from_ascii(name).unwrap())
        .collect();
    let query_of = |name: &Name| {
        Query::new(
            name,
            RecordType::A,
            hickory_proto::rr::DNSClass::IN,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Transport::Udp,
        )
    };
    let ask = |name: &Name| chain.decide(query_of(name));
    let started = Instant::now();
    let blocked = names
        .iter()
        .filter(|name| matches!(ask(name), PolicyOutcome::Act { .. }))
        .count();
    let first_time = started.elapsed() / DISTINCT as u32;
    assert_eq!(blocked, DISTINCT.div_ceil(10));
    // A fixed stride through the names: no two neighbours are neighbours in the table.
    const ROUNDS: usize = 10;
    let started = Instant::now();
    for round in 0..ROUNDS {
        for i in 0..DISTINCT {
            std::hint::black_box(ask(&names[(i * 7919 + round) % DISTINCT]));
        }
    }
    let hit_time = started.elapsed() / (ROUNDS * DISTINCT) as u32;
    let started = Instant::now();
    for round in 0..ROUNDS {
        for i in 0..DISTINCT {
            std::hint::black_box(query_of(&names[(i * 7919 + round) % DISTINCT]));
        }
    }
    let query_time = started.elapsed() / (ROUNDS * DISTINCT) as u32;
    println!(
        "{DISTINCT} distinct questions, one in ten blocked: first ask (a call each) {first_time:.2?}; \
         asked again (memo hits) {hit_time:.2?} each, of which building the query {query_time:.2?}"
    );

    let (chain_median, chain_p99) = median(through_chain);
    let (direct_median, direct_p99) = median(on_instance);
    let stats = set.plugins()[0].stats.snapshot();
    println!(
        "blocklist, 100000 domains ({} build): load with 2 instances {load_time:.2?}; \
         decide through the chain (verdicts memoized) median {chain_median:.2?} p99 {chain_p99:.2?}; \
         on an instance median {direct_median:.2?} p99 {direct_p99:.2?}; \
         pool pop+push {pool_time:.2?}; histogram estimate median {:.2?} p99 {:.2?}; \
         two threads, wall time per call: through the chain {two_through_chain:.2?}, \
         each on its own instance {two_on_own_instances:.2?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        stats.median_time().unwrap(),
        stats.p99_time().unwrap(),
    );
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
