//! The host against real components: the example plugins and the hostile one from
//! `plugins/`, built by `scripts/build-plugins.sh` into `target/plugins/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::{A, MX, PTR, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use outpost_core::answer::Transport;

use super::*;

mod containment;
mod extra_memory;

/// One engine for all tests: components compile once (the cache is by content hash),
/// while every `load` still gets its own counters.
pub(super) fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new().unwrap())
}

pub(super) fn plugin_bytes(crate_name: &str) -> Vec<u8> {
    let dir = std::env::var_os("OUTPOST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins"))
        });
    let path = dir.join(format!("outpost_plugin_{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test plugins first with ./scripts/build-plugins.sh",
            path.display()
        )
    })
}

/// Limits for tests of behaviour, not of deadlines: the test threads share two cores
/// with other work, and a thread preempted for a few milliseconds would otherwise
/// time out. The deadline tests set their own.
pub(super) fn relaxed(hook: Hook) -> Limits {
    Limits {
        call_ticks: 1_000,
        ..Limits::for_hook(hook)
    }
}

fn policy(crate_name: &str, config: &str, limits: Limits) -> PolicyInstance {
    engine()
        .load_policy(crate_name, &plugin_bytes(crate_name), limits)
        .unwrap()
        .instantiate(config.as_bytes())
        .unwrap()
}

fn query_from(name: &str, qtype: RecordType, client: IpAddr) -> Query {
    Query::new(
        &Name::from_ascii(name).unwrap(),
        qtype,
        DNSClass::IN,
        client,
        Transport::Udp,
    )
}

pub(super) fn query(name: &str) -> Query {
    query_from(name, RecordType::A, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
}

pub(super) fn record(name: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data)
}

#[test]
fn blocklist_blocks_listed_names_and_their_subdomains() {
    let mut blocklist = policy(
        "blocklist",
        "# ads\nads.example\n0.0.0.0 Tracker.Example\n",
        relaxed(Hook::QueryPolicy),
    );
    let nxdomain = |tag: &str| Verdict {
        action: Action::Block(Block::NxDomain),
        tags: vec![tag.to_string()],
    };
    let allow = Verdict {
        action: Action::Allow,
        tags: vec![],
    };
    let cases = [
        ("ads.example.", nxdomain("blocklist:ads.example")),
        ("WWW.Ads.Example.", nxdomain("blocklist:ads.example")),
        (
            "a.b.tracker.example.",
            nxdomain("blocklist:tracker.example"),
        ),
        ("example.", allow.clone()),
        ("badads.example.", allow.clone()),
        ("ads.example.org.", allow.clone()),
    ];
    for (name, expected) in cases {
        assert_eq!(blocklist.decide(&query(name)).unwrap(), expected, "{name}");
    }
    let stats = blocklist.stats().snapshot();
    assert_eq!((stats.calls, stats.failures()), (6, 0));
}

#[test]
fn blocklist_sinkhole_and_bad_config() {
    let mut blocklist = policy(
        "blocklist",
        "sinkhole=10.0.0.53\nads.example",
        relaxed(Hook::QueryPolicy),
    );
    let verdict = blocklist.decide(&query("x.ads.example.")).unwrap();
    assert_eq!(
        verdict.action,
        Action::Block(Block::Sinkhole(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53))))
    );

    let loaded = engine()
        .load_policy(
            "blocklist",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap();
    let err = loaded.instantiate(b"ok.example\nbad..example").unwrap_err();
    assert!(
        matches!(&err, PluginError::ConfigRefused { message, .. } if message.starts_with("line 2:")),
        "{err}"
    );
}

#[test]
fn ttl_floor_raises_low_ttls_and_keeps_the_records() {
    let loaded = engine()
        .load_transform(
            "ttl_floor",
            &plugin_bytes("ttl_floor"),
            relaxed(Hook::RecordTransform),
        )
        .unwrap();
    let mut transform = loaded.instantiate(b"300").unwrap();
    let zone = Name::from_ascii("example.internal.").unwrap();
    let records = vec![
        record("a.example.internal.", 60, RData::A(A::new(10, 0, 0, 1))),
        record(
            "example.internal.",
            3600,
            RData::MX(MX::new(
                10,
                Name::from_ascii("mx.example.internal.").unwrap(),
            )),
        ),
        record(
            "t.example.internal.",
            0,
            RData::TXT(TXT::new(vec!["hello".into()])),
        ),
    ];
    let out = transform.transform(&zone, &records).unwrap();
    let ttls: Vec<u32> = out.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, [300, 3600, 300]);
    for (before, after) in records.iter().zip(&out) {
        assert_eq!((&before.name, &before.data), (&after.name, &after.data));
    }

    let err = loaded.instantiate(b"5m").unwrap_err();
    assert!(err.to_string().contains("not a number of seconds"), "{err}");
}

#[test]
fn ptr_synth_adds_ptr_records_in_configured_reverse_zones() {
    let mut transform = engine()
        .load_transform(
            "ptr_synth",
            &plugin_bytes("ptr_synth"),
            relaxed(Hook::RecordTransform),
        )
        .unwrap()
        .instantiate(b"zone=10.in-addr.arpa")
        .unwrap();
    let zone = Name::from_ascii("site.example.").unwrap();
    let records = vec![
        record("printer.site.example.", 600, RData::A(A::new(10, 1, 2, 3))),
        record("outside.site.example.", 600, RData::A(A::new(192, 0, 2, 9))),
    ];
    let out = transform.transform(&zone, &records).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[2],
        record(
            "3.2.1.10.in-addr.arpa.",
            600,
            RData::PTR(PTR(Name::from_ascii("printer.site.example.").unwrap()))
        )
    );
}

#[test]
fn split_horizon_answers_by_client_subnet() {
    let mut views = policy(
        "split_horizon",
        "10.0.0.0/8 printer.site.example 10.1.2.3\n0.0.0.0/0 printer.site.example 203.0.113.7",
        relaxed(Hook::QueryPolicy),
    );
    let answer = |views: &mut PolicyInstance, client: [u8; 4]| {
        let query = query_from("printer.site.example.", RecordType::A, IpAddr::from(client));
        match views.decide(&query).unwrap().action {
            Action::Answer(records) => records,
            other => panic!("expected an answer, got {other:?}"),
        }
    };
    let inside = answer(&mut views, [10, 9, 9, 9]);
    assert_eq!(
        inside,
        [record(
            "printer.site.example.",
            60,
            RData::A(A::new(10, 1, 2, 3))
        )]
    );
    let outside = answer(&mut views, [198, 51, 100, 1]);
    assert_eq!(outside[0].data, RData::A(A::new(203, 0, 113, 7)));
    let other = views.decide(&query("scanner.site.example.")).unwrap();
    assert_eq!(other.action, Action::Allow);
}

/// Each attack is cut off by its limit, reported as its kind of error, and the very
/// next call on the same instance is answered.
#[test]
fn hostile_plugins_are_cut_off_and_the_next_call_works() {
    // A longer deadline than the query path's 2 ms, so that allocating 16 MiB (page
    // faults included) meets the memory cap before the deadline.
    let limits = Limits {
        call_ticks: 100,
        memory_bytes: 16 << 20,
        ..Limits::for_hook(Hook::QueryPolicy)
    };
    let mut hostile = policy("hostile", "", limits);
    type IsExpected = fn(&PluginError) -> bool;
    let cases: [(&str, IsExpected); 6] = [
        (
            "loop.test.",
            |e| matches!(e, PluginError::Timeout { budget, .. } if *budget == Duration::from_millis(100)),
        ),
        (
            "alloc.test.",
            |e| matches!(e, PluginError::OutOfMemory { limit_bytes, .. } if *limit_bytes == 16 << 20),
        ),
        ("recurse.test.", |e| {
            matches!(e, PluginError::StackOverflow { .. })
        }),
        ("panic.test.", |e| matches!(e, PluginError::Trap { .. })),
        (
            "random.test.",
            |e| matches!(e, PluginError::Trap { message, .. } if message.contains("wasi:random")),
        ),
        (
            "oversized.test.",
            |e| matches!(e, PluginError::InvalidOutput { reason, .. } if reason.contains("10000 records (at most 32)")),
        ),
    ];
    for (name, is_expected) in cases {
        let started = Instant::now();
        let err = hostile.decide(&query(name)).unwrap_err();
        let elapsed = started.elapsed();
        println!("{name:<16} {elapsed:>10.2?}  {err}");
        assert!(is_expected(&err), "{name}: {err}");
        // Generous: the deadline is 100 ms, the memory cap 16 MiB; a debug build on a
        // loaded machine still stops each attack in well under this.
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");

        let next = hostile.decide(&query("fine.test.")).unwrap();
        assert_eq!(next.action, Action::Allow, "after {name}");
    }
    let stats = hostile.stats().snapshot();
    assert_eq!(stats.calls, 12);
    assert_eq!(
        (
            stats.timeouts,
            stats.out_of_memory,
            stats.stack_overflows,
            stats.traps,
            stats.invalid_outputs
        ),
        (1, 1, 1, 2, 1)
    );
    // Every trap rebuilt the instance; invalid output did not need to.
    assert_eq!(stats.rebuilds, 5);
    assert_eq!(stats.consecutive_failures, 0);
    assert!(stats.max_time >= Duration::from_millis(1), "{stats:?}");
}

#[test]
fn a_plugin_that_keeps_failing_is_disabled() {
    let mut hostile = policy("hostile", "", relaxed(Hook::QueryPolicy));
    // A success in between resets the count.
    for _ in 0..MAX_CONSECUTIVE_FAILURES - 1 {
        hostile.decide(&query("panic.test.")).unwrap_err();
    }
    hostile.decide(&query("fine.test.")).unwrap();
    for _ in 0..MAX_CONSECUTIVE_FAILURES - 1 {
        hostile.decide(&query("panic.test.")).unwrap_err();
    }
    assert_eq!(hostile.stats().snapshot().disabled, None);

    hostile.decide(&query("panic.test.")).unwrap_err();
    let reason = hostile.stats().disabled_reason().expect("disabled");
    assert!(reason.starts_with("5 consecutive failed calls"), "{reason}");
    let err = hostile.decide(&query("fine.test.")).unwrap_err();
    assert!(matches!(err, PluginError::Disabled { .. }), "{err}");
    assert!(err.to_string().contains("load it again"), "{err}");
}

#[test]
fn the_query_path_deadline_stops_a_loop_within_milliseconds() {
    let mut hostile = policy("hostile", "", Limits::for_hook(Hook::QueryPolicy));
    let started = Instant::now();
    let err = hostile.decide(&query("loop.test.")).unwrap_err();
    let elapsed = started.elapsed();
    println!("loop under the default deadline stopped after {elapsed:.2?}");
    assert!(
        matches!(err, PluginError::Timeout { budget, .. } if budget == Duration::from_millis(2)),
        "{err}"
    );
    // 2 ms plus scheduling delay on a busy machine.
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
}

/// Polls `condition` for up to 5 s.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_epoch_clock_sleeps_while_no_call_needs_it_and_wakes_for_a_deadline() {
    // Its own engine: the shared one's clock is kept awake by the other tests.
    let engine = PluginEngine::new().unwrap();
    eventually("asleep before any call", || engine.clock_is_asleep());
    let limits = Limits {
        init_ticks: 20,
        ..Limits::for_hook(Hook::QueryPolicy)
    };
    let mut hostile = engine
        .load_policy("hostile", &plugin_bytes("hostile"), limits)
        .unwrap()
        .instantiate(b"")
        .unwrap();
    // Init needed 20 ticks; the clock keeps its grace, then parks again.
    eventually("asleep after init", || engine.clock_is_asleep());

    for _ in 0..2 {
        // On another thread, so that a clock that never wakes fails the test, not hangs it.
        let (done, outcome) = std::sync::mpsc::channel();
        let call = std::thread::spawn(move || {
            let started = Instant::now();
            let err = hostile.decide(&query("loop.test.")).unwrap_err();
            done.send((err, started.elapsed())).unwrap();
            hostile
        });
        let (err, elapsed) = outcome
            .recv_timeout(Duration::from_secs(5))
            .expect("a loop started with the clock asleep was not stopped");
        hostile = call.join().unwrap();
        println!("loop started with the clock asleep stopped after {elapsed:.2?}");
        assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        eventually("asleep after the call", || engine.clock_is_asleep());
    }
}

#[test]
fn instances_keep_the_epoch_clock_running_after_the_engine_handle_is_dropped() {
    let engine = PluginEngine::new().unwrap();
    let loaded = engine
        .load_policy(
            "hostile",
            &plugin_bytes("hostile"),
            Limits::for_hook(Hook::QueryPolicy),
        )
        .unwrap();
    let mut hostile = loaded.instantiate(b"").unwrap();
    drop((engine, loaded));
    let err = hostile.decide(&query("loop.test.")).unwrap_err();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
    // The last holder: the ticker thread is stopped and joined here.
    drop(hostile);
}

#[test]
fn init_runs_under_its_own_deadline() {
    let limits = Limits {
        init_ticks: 20,
        ..Limits::for_hook(Hook::QueryPolicy)
    };
    let loaded = engine()
        .load_policy("hostile", &plugin_bytes("hostile"), limits)
        .unwrap();
    let started = Instant::now();
    let err = loaded.instantiate(b"init=loop").unwrap_err();
    assert!(
        matches!(err, PluginError::Timeout { budget, .. } if budget == Duration::from_millis(20)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = loaded.instantiate(b"init=fail").unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin hostile: init refused the configuration: configured to fail"
    );
}

#[test]
fn what_is_not_a_plugin_of_the_hook_is_refused_at_load() {
    let limits = Limits::for_hook(Hook::QueryPolicy);
    let err = engine()
        .load_policy("junk", b"#!/bin/sh\necho hi\n", limits)
        .unwrap_err();
    assert_eq!(err, PluginError::NotWasm);
    let core_module = b"\0asm\x01\0\0\0";
    let err = engine()
        .load_policy("core", core_module, limits)
        .unwrap_err();
    assert_eq!(err, PluginError::CoreModule);
    assert!(err.to_string().contains("not a component"), "{err}");
    let mut truncated = plugin_bytes("blocklist");
    truncated.truncate(truncated.len() / 2);
    let err = engine()
        .load_policy("truncated", &truncated, limits)
        .unwrap_err();
    assert!(matches!(err, PluginError::InvalidComponent(_)), "{err}");

    let err = engine()
        .load_policy("ttl_floor", &plugin_bytes("ttl_floor"), limits)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the component is not a query-policy plugin: it exports \
         outpost:plugin/transform@0.1.0, and query-policy needs outpost:plugin/policy@0.1.x \
         (build it against world query-policy of wit/outpost-plugin.wit)"
    );
    let err = engine()
        .load(
            "blocklist",
            &plugin_bytes("blocklist"),
            Hook::RecordTransform,
            Limits::for_hook(Hook::RecordTransform),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::WrongWorld {
                hook: Hook::RecordTransform,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn workers_share_a_loaded_plugin_and_keep_their_own_instances() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<LoadedPolicy>();
    assert_send_sync::<LoadedTransform>();
    assert_send::<PolicyInstance>();
    assert_send::<TransformInstance>();

    let loaded = engine()
        .load_policy(
            "blocklist",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let loaded = loaded.clone();
            scope.spawn(move || {
                let mut instance = loaded.instantiate(b"ads.example").unwrap();
                for _ in 0..100 {
                    let verdict = instance.decide(&query("x.ads.example.")).unwrap();
                    assert_eq!(verdict.action, Action::Block(Block::NxDomain));
                }
            });
        }
    });
    assert_eq!(loaded.stats().snapshot().calls, 200);
    let again = engine()
        .load_policy(
            "blocklist",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap();
    assert_eq!(again.sha256(), loaded.sha256());
    assert_eq!(again.stats().snapshot().calls, 0);
}

/// A blocklist of 100,000 domains answers on a reused instance without a failure. What
/// its calls cost is printed by
/// `cargo run --release -p outpost-plugin-host --example decide_time`.
#[test]
fn a_blocklist_of_100k_domains_decides_on_a_reused_instance() {
    let config: String = (0..100_000)
        .map(|i| format!("ads{i}.tracker{}.example\n", i % 97))
        .collect();
    let mut blocklist = engine()
        .load_policy(
            "blocklist",
            &plugin_bytes("blocklist"),
            relaxed(Hook::QueryPolicy),
        )
        .unwrap()
        .instantiate(config.as_bytes())
        .unwrap();
    for _ in 0..3 {
        for (name, action) in [
            ("www.allowed.example.", Action::Allow),
            (
                "cdn.ads4242.tracker71.example.",
                Action::Block(Block::NxDomain),
            ),
            // Listed is ads4242.tracker71 (4242 % 97 = 71), not this one.
            ("cdn.ads4242.tracker73.example.", Action::Allow),
            ("a.b.c.d.e.example.org.", Action::Allow),
        ] {
            let verdict = blocklist.decide(&query(name)).unwrap();
            assert_eq!(verdict.action, action, "{name}");
        }
    }
    assert_eq!(blocklist.stats().snapshot().failures(), 0);
}

/// A fresh, empty directory under the system's temporary one.
fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "outpost-{label}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_compiled_component_is_kept_on_disk_and_a_damaged_one_is_compiled_again() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = scratch_dir("plugin-cache");
    let bytes = plugin_bytes("blocklist");
    let blocks = |engine: &PluginEngine| {
        let mut instance = engine
            .load_policy("ads", &bytes, relaxed(Hook::QueryPolicy))
            .unwrap()
            .instantiate(b"ads.example\n")
            .unwrap();
        let verdict = instance
            .decide(&query_from(
                "x.ads.example.",
                RecordType::A,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ))
            .unwrap();
        assert_eq!(verdict.action, Action::Block(Block::NxDomain));
    };

    // First run: compiled, and written down.
    blocks(&PluginEngine::with_disk_cache(&dir).unwrap());
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let written = std::fs::metadata(file).unwrap().ino();

    // Next run: read back, not compiled (compiling writes the file anew).
    blocks(&PluginEngine::with_disk_cache(&dir).unwrap());
    assert_eq!(std::fs::metadata(file).unwrap().ino(), written);

    // A damaged file is never handed to wasmtime: compiled again and replaced.
    let mut damaged = std::fs::read(file).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(file, &damaged).unwrap();
    blocks(&PluginEngine::with_disk_cache(&dir).unwrap());
    assert_ne!(std::fs::read(file).unwrap(), damaged);
    let _ = std::fs::remove_dir_all(&dir);
}
