//! What a query-policy `decide` costs with the example blocklist of 100,000 domains; not a
//! pass/fail benchmark (the host's tests check what the calls answer). Prints, in turn:
//!
//! - on one reused instance: the component's compile time (a fresh engine, so the compile
//!   cache hides nothing), the instance's `init`, and `decide`'s median and p99;
//! - through the chain (pool pop and push included, verdicts memoized) next to the same
//!   call on an instance held directly, what the pool's lock costs alone, two threads at
//!   once through one chain and each on its own instance, and many distinct questions
//!   asked once and again (memo hits).
//!
//! The components come from `scripts/build-plugins.sh` (`target/plugins/`, or the
//! directory in `OUTPOST_PLUGIN_DIR`).
//!
//! usage: cargo run --release -p outpost-plugin-host --example decide_time

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::{DNSClass, Name, RecordType};
use outpost_core::answer::Transport;
use outpost_core::state::{FailureMode, Hook, PluginDefinition};
use outpost_plugin_host::{
    Limits, LoadOptions, PluginEngine, PluginSet, PolicyInstance, PolicyOutcome, Query,
};
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// `decide` calls timed one by one.
const CALLS: usize = 30_000;
/// Calls per thread when two threads run at once.
const PER_THREAD: usize = 15_000;
/// Distinct questions for the memo (the number `bench/plugins.sh` asks).
const DISTINCT: usize = 18_392;
/// Passes over the distinct questions once they are memoized.
const ROUNDS: usize = 10;

fn main() -> Result<()> {
    let config: String = (0..100_000)
        .map(|i| format!("ads{i}.tracker{}.example\n", i % 97))
        .collect();
    let bytes = plugin_bytes("blocklist")?;
    on_an_instance(&bytes, &config)?;
    through_the_chain(&bytes, &config)
}

fn on_an_instance(bytes: &[u8], config: &str) -> Result<()> {
    let started = Instant::now();
    let loaded = PluginEngine::new()?.load_policy("blocklist", bytes, limits())?;
    let compile_time = started.elapsed();
    let started = Instant::now();
    let mut blocklist = loaded.instantiate(config.as_bytes())?;
    let init_time = started.elapsed();

    let queries = sample_queries()?;
    for query in &queries {
        blocklist.decide(query)?;
    }
    let mut times = Vec::with_capacity(CALLS);
    for call in 0..CALLS {
        let query = &queries[call % queries.len()];
        let started = Instant::now();
        let verdict = blocklist.decide(query)?;
        times.push(started.elapsed());
        std::hint::black_box(verdict);
    }
    let (median, p99) = median_and_p99(times);
    println!(
        "blocklist, 100000 domains: compile {compile_time:.2?}, init {init_time:.2?}, \
         decide median {median:.2?}, p99 {p99:.2?} ({} build)",
        build()
    );
    Ok(())
}

fn through_the_chain(bytes: &[u8], config: &str) -> Result<()> {
    let engine = PluginEngine::new()?;
    let component: Arc<[u8]> = bytes.into();
    let definition = Arc::new(PluginDefinition {
        name: "blocklist".into(),
        hook: Hook::QueryPolicy,
        order: 0,
        on_error: FailureMode::FailOpen,
        enabled: true,
        version: 1,
        sha256: Sha256::digest(&component).into(),
        component,
        config: config.as_bytes().into(),
    });
    let options = LoadOptions {
        policy_limits: limits(),
        transform_limits: Limits::for_hook(Hook::RecordTransform),
        prebuilt_instances: 2,
    };
    let started = Instant::now();
    let (set, failures) =
        PluginSet::load_with(&engine, [&definition], &PluginSet::empty(), options);
    let load_time = started.elapsed();
    if !failures.is_empty() {
        return Err(format!("the blocklist does not load: {failures:?}").into());
    }
    let chain = set.policies();
    let loaded = engine.load_policy("direct", bytes, limits())?;
    let mut direct = loaded.instantiate(config.as_bytes())?;

    let queries = sample_queries()?;
    let mut through_chain = Vec::with_capacity(CALLS);
    let mut on_instance = Vec::with_capacity(CALLS);
    for call in 0..CALLS {
        let query = &queries[call % queries.len()];
        let started = Instant::now();
        std::hint::black_box(chain.decide(query.clone()));
        through_chain.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(direct.decide(query)?);
        on_instance.push(started.elapsed());
    }
    // The pool's part alone: an uncontended lock, pop, lock, push.
    let pool = Mutex::new(vec![0u64; 2]);
    let started = Instant::now();
    for _ in 0..CALLS {
        let taken = pool.lock().map_err(|_| "poisoned")?.pop().unwrap_or(0);
        pool.lock()
            .map_err(|_| "poisoned")?
            .push(std::hint::black_box(taken));
    }
    let pool_time = started.elapsed() / CALLS as u32;

    // Two threads at once: through the one chain (one pool, one mutex), then each
    // on an instance of its own. Wall time per call, both threads together.
    let two_through_chain = run_two(&|thread| {
        for call in 0..PER_THREAD {
            std::hint::black_box(chain.decide(queries[(call + thread) % queries.len()].clone()));
        }
    });
    let own: Vec<Mutex<PolicyInstance>> = (0..2)
        .map(|_| loaded.instantiate(config.as_bytes()).map(Mutex::new))
        .collect::<std::result::Result<_, _>>()?;
    let two_on_own_instances = run_two(&|thread| {
        let Ok(mut instance) = own[thread].lock() else {
            return;
        };
        for call in 0..PER_THREAD {
            let query = &queries[(call + thread) % queries.len()];
            std::hint::black_box(instance.decide(query).ok());
        }
    });

    distinct_questions(&|query| chain.decide(query))?;

    let (chain_median, chain_p99) = median_and_p99(through_chain);
    let (direct_median, direct_p99) = median_and_p99(on_instance);
    let stats = set.plugins()[0].stats.snapshot();
    println!(
        "blocklist, 100000 domains ({} build): load with 2 instances {load_time:.2?}; \
         decide through the chain (verdicts memoized) median {chain_median:.2?} p99 {chain_p99:.2?}; \
         on an instance median {direct_median:.2?} p99 {direct_p99:.2?}; \
         pool pop+push {pool_time:.2?}; histogram estimate median {:.2?} p99 {:.2?}; \
         two threads, wall time per call: through the chain {two_through_chain:.2?}, \
         each on its own instance {two_on_own_instances:.2?}",
        build(),
        stats.median_time().unwrap_or_default(),
        stats.p99_time().unwrap_or_default(),
    );
    Ok(())
}

/// What the server sees: many distinct questions, so the memo's table is out of the
/// CPU's caches more often. Names as they arrive (hickory `Name`s); the time includes
/// building the plugin's view of the query, as the DNS path does.
fn distinct_questions(ask: &dyn Fn(Query) -> PolicyOutcome) -> Result<()> {
    // One in ten blocked, as in bench/plugins.sh's `blocked` mode.
    let names: Vec<Name> = (0..DISTINCT)
        .map(|i| match i % 10 {
            0 => format!("x.ads{i}.tracker{}.example.", i % 97),
            _ => format!("host{i}.zone{}.example.", i % 211),
        })
        .map(Name::from_ascii)
        .collect::<std::result::Result<_, _>>()?;
    let query_of = |name: &Name| {
        Query::new(
            name,
            RecordType::A,
            DNSClass::IN,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Transport::Udp,
        )
    };
    let started = Instant::now();
    for name in &names {
        std::hint::black_box(ask(query_of(name)));
    }
    let first_time = started.elapsed() / DISTINCT as u32;
    // A fixed stride through the names: no two neighbours are neighbours in the table.
    let started = Instant::now();
    for round in 0..ROUNDS {
        for i in 0..DISTINCT {
            std::hint::black_box(ask(query_of(&names[(i * 7919 + round) % DISTINCT])));
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
    Ok(())
}

/// Wall time per call of `run` on two threads at once, [`PER_THREAD`] calls each.
fn run_two(run: &(dyn Fn(usize) + Sync)) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..2 {
            scope.spawn(move || run(thread));
        }
    });
    started.elapsed() / (2 * PER_THREAD) as u32
}

/// An allowed name, a blocked one and one of many labels.
fn sample_queries() -> Result<Vec<Query>> {
    let names = [
        "www.allowed.example.",
        "cdn.ads4242.tracker71.example.",
        "a.b.c.d.e.example.org.",
    ];
    let mut queries = Vec::with_capacity(names.len());
    for name in names {
        queries.push(Query::new(
            &Name::from_ascii(name)?,
            RecordType::A,
            DNSClass::IN,
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            Transport::Udp,
        ));
    }
    Ok(queries)
}

/// A query policy's limits with a relaxed call deadline, so that a thread preempted
/// for a few milliseconds is measured, not cut off.
fn limits() -> Limits {
    Limits {
        call_ticks: 1_000,
        ..Limits::for_hook(Hook::QueryPolicy)
    }
}

fn median_and_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn plugin_bytes(crate_name: &str) -> Result<Vec<u8>> {
    let dir = std::env::var_os("OUTPOST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins"))
        });
    let path = dir.join(format!("outpost_plugin_{crate_name}.wasm"));
    std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e}; build the plugins first with ./scripts/build-plugins.sh",
            path.display()
        )
        .into()
    })
}
