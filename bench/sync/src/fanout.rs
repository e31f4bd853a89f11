//! `sync-bench fanout`: N concurrent raw sessions take their snapshot; then W
//! single-record writes through the admin API, ~20 ms apart; then one zone import.
//! For every write and every session: receipt of the frame carrying the write's
//! index − the moment just before the write was sent.
//!
//! The clock is one process's monotonic clock on both ends, so the figures include
//! the admin API's HTTP and parsing, the Raft commit, the fanout, the WebSocket and
//! the bench's own scheduling of 1,000 tasks on the machine's cores.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::appliance::{Addresses, Admin, Memory, Write, cpu_time, mib};
use crate::session::{self, SessionLog, SessionSetup, SessionState};
use crate::stats::{Percentiles, ms, summary_line};
use crate::zonefile;

/// The target for single changes at 1,000 sessions.
const TARGET_P99: Duration = Duration::from_millis(100);
/// How often the conductor looks at the sessions' cursors.
const POLL: Duration = Duration::from_millis(5);

#[derive(clap::Args, Debug)]
pub struct FanoutArgs {
    /// Data directory of the running appliance (addresses.json, admin.token).
    #[arg(long)]
    data_dir: PathBuf,
    /// Lite token for the zone (`outpost lite-token create`).
    #[arg(long, env = "OUTPOST_LITE_TOKEN", hide_env_values = true)]
    token: String,
    /// Zone the token may see; writes and the import go there.
    #[arg(long, default_value = "bench.test.")]
    origin: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Single-record writes.
    #[arg(long, default_value_t = 200)]
    writes: usize,
    /// Time between the starts of two writes, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Records of the zone import (0: no import).
    #[arg(long, default_value_t = 10_000)]
    import_records: usize,
    /// Handshakes in flight at once while the sessions connect.
    #[arg(long, default_value_t = 64)]
    connect_parallel: usize,
    /// How long after the last write (or the import) sessions may take to receive
    /// it; what has not arrived by then is counted as missing.
    #[arg(long, default_value_t = 30)]
    deadline_secs: u64,
    /// Decode `Changes` frames with the core decoder (every record built) instead of
    /// reading only their indexes.
    #[arg(long)]
    full_decode: bool,
    /// Wait this long after the import, sessions open, before reading the
    /// appliance's memory again.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// File to append the target lines to.
    #[arg(long)]
    summary: Option<PathBuf>,
}

pub fn main(args: FanoutArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let addresses = Addresses::read(&args.data_dir)?;
    let sync = addresses.sync()?;
    let admin = Arc::new(Admin::new(addresses.admin, &args.data_dir)?);
    let origin = zonefile::absolute(&args.origin);
    let deadline = Duration::from_secs(args.deadline_secs);
    let setup = Arc::new(SessionSetup {
        url: format!("ws://{sync}/v1/sync"),
        token: args.token.clone(),
        full_decode: args.full_decode,
    });
    println!(
        "fanout: {} sessions to {}, {} writes {} ms apart, a {}-record import into {origin}",
        args.sessions, setup.url, args.writes, args.interval_ms, args.import_records
    );

    // Sessions: connect, Hello, snapshot.
    let states: Vec<Arc<SessionState>> = (0..args.sessions).map(|_| Arc::default()).collect();
    let cancel = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(args.connect_parallel.max(1)));
    let connecting = CpuMark::now(addresses.pid);
    let tasks: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(id, state)| {
            tokio::spawn(session::run(
                Arc::clone(&setup),
                id,
                Arc::clone(state),
                Arc::clone(&permits),
                cancel.clone(),
            ))
        })
        .collect();
    let all_settled = wait_for(&states, deadline.max(Duration::from_secs(60)), |state| {
        state.live.load(Ordering::Acquire)
    })
    .await;
    let live = states
        .iter()
        .filter(|s| s.live.load(Ordering::Acquire))
        .count();
    println!(
        "sessions: {live} of {} live (snapshot received) after {}{}",
        args.sessions,
        ms(connecting.at.elapsed()),
        if all_settled {
            ""
        } else {
            " (gave up waiting)"
        }
    );
    connecting.print_since("connect and snapshot", addresses.pid);
    let idle_memory = Memory::of(addresses.pid);

    // Writes, then the import, each followed by a wait for the sessions.
    let outcome = writes_and_import(&args, &admin, &origin, &states, deadline, addresses.pid).await;
    let loaded_memory = Memory::of(addresses.pid);
    // Whether the appliance gives back what the import took while the sessions idle.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let settled_memory = Memory::of(addresses.pid);

    cancel.cancel();
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        logs.push(task.await.context("a session task panicked")?);
    }
    let (writes, import) = outcome?;
    report(
        &args,
        &logs,
        &writes,
        import.as_ref(),
        [idle_memory, loaded_memory, settled_memory],
    )
}

/// The single writes (spaced by the interval) and the import, each waited for.
async fn writes_and_import(
    args: &FanoutArgs,
    admin: &Arc<Admin>,
    origin: &str,
    states: &[Arc<SessionState>],
    deadline: Duration,
    pid: u32,
) -> anyhow::Result<(Vec<Write>, Option<(Write, usize)>)> {
    let interval = Duration::from_millis(args.interval_ms);
    let writing = CpuMark::now(pid);
    let first = tokio::time::Instant::now();
    let mut writes = Vec::with_capacity(args.writes);
    for number in 0..args.writes {
        tokio::time::sleep_until(first + interval * u32::try_from(number)?).await;
        let admin = Arc::clone(admin);
        let name = format!("w{number:06}.{origin}");
        let data = format!("10.99.{}.{}", (number >> 8) & 0xff, number & 0xff);
        let write = tokio::task::spawn_blocking(move || admin.add_record(&name, "A", &data))
            .await
            .context("the write task panicked")??;
        writes.push(write);
    }
    if let Some(last) = writes.last() {
        let index = last.index;
        let waited = Instant::now();
        wait_for(states, deadline, |state| {
            state.cursor.load(Ordering::Acquire) >= index
        })
        .await;
        println!(
            "writes: {} sent; sessions at the last index {index} {} after it was answered",
            writes.len(),
            ms(waited.elapsed())
        );
        writing.print_since("writes", pid);
    }
    if args.import_records == 0 {
        return Ok((writes, None));
    }
    let text = zonefile::master_file(origin, args.import_records, "i");
    let importing = CpuMark::now(pid);
    let admin = Arc::clone(admin);
    let zone = origin.to_string();
    let (import, parsed) = tokio::task::spawn_blocking(move || admin.import_zone(&zone, &text))
        .await
        .context("the import task panicked")??;
    if parsed != args.import_records {
        bail!(
            "the appliance parsed {parsed} records of the {}-record import",
            args.import_records
        );
    }
    let waited = Instant::now();
    wait_for(states, deadline, |state| {
        state.cursor.load(Ordering::Acquire) >= import.index
    })
    .await;
    println!(
        "import: index {} answered in {}; sessions there {} later",
        import.index,
        ms(import.answered - import.sent),
        ms(waited.elapsed())
    );
    importing.print_since("import", pid);
    Ok((writes, Some((import, parsed))))
}

/// CPU time used so far by the appliance and by this bench, to tell whose work a
/// phase's wall time was (both share the machine's cores).
struct CpuMark {
    at: Instant,
    appliance: Option<Duration>,
    bench: Option<Duration>,
}

impl CpuMark {
    fn now(pid: u32) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            appliance: cpu_time(pid).ok(),
            bench: cpu_time(std::process::id()).ok(),
        }
    }

    fn print_since(&self, phase: &str, pid: u32) {
        let now = CpuMark::now(pid);
        let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(before), Some(after)) => ms(after.saturating_sub(before)),
            _ => "?".to_string(),
        };
        println!(
            "  CPU during {phase} ({} wall): appliance {}, sync-bench {}",
            ms(now.at - self.at),
            used(self.appliance, now.appliance),
            used(self.bench, now.bench)
        );
    }
}

/// Waits until every session that has not ended satisfies `done`, or `deadline`
/// passes. True when all did.
async fn wait_for(
    states: &[Arc<SessionState>],
    deadline: Duration,
    done: impl Fn(&SessionState) -> bool,
) -> bool {
    let end = Instant::now() + deadline;
    loop {
        let waiting = states
            .iter()
            .any(|state| !state.ended.load(Ordering::Acquire) && !done(state));
        if !waiting {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Receipt − sent for every (live session, write); and the (session, write) pairs
/// that never arrived whole.
struct Latencies {
    samples: Vec<Duration>,
    missing: usize,
    sessions_missing: usize,
    /// Per write, when the last live session had it (only writes every session got).
    until_all: Vec<Duration>,
}

fn latencies(logs: &[SessionLog], writes: &[Write]) -> Latencies {
    let live: Vec<&SessionLog> = logs
        .iter()
        .filter(|log| log.snapshot_changes.is_some())
        .collect();
    let mut result = Latencies {
        samples: Vec::with_capacity(live.len() * writes.len()),
        missing: 0,
        sessions_missing: 0,
        until_all: Vec::with_capacity(writes.len()),
    };
    let mut slowest = vec![Some(Duration::ZERO); writes.len()];
    for log in live {
        let mut missed = false;
        for (write, slowest) in writes.iter().zip(&mut slowest) {
            match log.deliveries.get(&write.index) {
                Some(delivery) if delivery.complete => {
                    let latency = delivery.at.saturating_duration_since(write.sent);
                    result.samples.push(latency);
                    *slowest = slowest.map(|s| s.max(latency));
                }
                _ => {
                    result.missing += 1;
                    *slowest = None;
                    missed = true;
                }
            }
        }
        result.sessions_missing += usize::from(missed);
    }
    result.until_all = slowest.into_iter().flatten().collect();
    result
}

fn report(
    args: &FanoutArgs,
    logs: &[SessionLog],
    writes: &[Write],
    import: Option<&(Write, usize)>,
    memory: [anyhow::Result<Memory>; 3],
) -> anyhow::Result<()> {
    let [idle_memory, loaded_memory, settled_memory] = memory;
    let live = logs.iter().filter(|l| l.snapshot_changes.is_some()).count();
    let never_live = logs.len() - live;
    println!();
    println!("== fanout results ({} sessions, {live} live)", logs.len());
    let mut problems: HashMap<&str, usize> = HashMap::new();
    for log in logs {
        if let Some(first) = log.problems.first() {
            *problems.entry(first.as_str()).or_default() += 1;
        }
    }
    let mut problems: Vec<_> = problems.into_iter().collect();
    problems.sort_by_key(|problem| std::cmp::Reverse(problem.1));
    for (problem, count) in problems.iter().take(8) {
        println!("  {count} session(s) ended early: {problem}");
    }
    let unknown: usize = logs.iter().map(|l| l.unknown_frames).sum();
    if unknown > 0 {
        println!("  {unknown} frame(s) of unknown types skipped");
    }

    let api = Percentiles::of(writes.iter().map(|w| w.answered - w.sent).collect());
    if let Some(api) = api {
        println!("admin API answer (POST /v1/records):  {api}");
    }
    let singles = latencies(logs, writes);
    let single = Percentiles::of(singles.samples);
    match &single {
        Some(p) => println!("single change, write → receipt:      {p}"),
        None => println!("single change, write → receipt:      no samples"),
    }
    if let Some(p) = Percentiles::of(singles.until_all) {
        println!("single change, write → every session: {p}");
    }
    println!(
        "single change, not received within {} s: {} of {} (in {} session(s)); {never_live} session(s) never live",
        args.deadline_secs,
        singles.missing,
        live * writes.len(),
        singles.sessions_missing
    );

    let mut imported = None;
    if let Some((import, records)) = import {
        let import_latencies = latencies(logs, std::slice::from_ref(import));
        let changes: Vec<usize> = logs
            .iter()
            .filter_map(|log| log.deliveries.get(&import.index))
            .map(|delivery| delivery.changes)
            .collect();
        let (fewest, most) = (changes.iter().min(), changes.iter().max());
        println!(
            "import of {records} records: API answered in {}; changes per session {}..{}",
            ms(import.answered - import.sent),
            fewest.copied().unwrap_or(0),
            most.copied().unwrap_or(0)
        );
        imported = Percentiles::of(import_latencies.samples);
        match &imported {
            Some(p) => println!("import, write → receipt:             {p}"),
            None => println!("import, write → receipt:             no samples"),
        }
        println!(
            "import, not received within {} s: {} of {live} session(s)",
            args.deadline_secs, import_latencies.missing
        );
    }
    for (label, memory) in [
        ("sessions open, idle", &idle_memory),
        ("after writes and import", &loaded_memory),
        (
            &format!("{} s later, sessions idle", args.settle_secs),
            &settled_memory,
        ),
    ] {
        match memory {
            Ok(m) => println!("appliance memory, {label}: {m}"),
            Err(error) => println!("appliance memory, {label}: {error:#}"),
        }
    }

    println!();
    let file = args.summary.as_deref();
    let sessions = args.sessions;
    summary_line(
        file,
        &format!("sessions live (of {sessions})"),
        &format!("{live}"),
        &format!("{sessions}"),
        Some(live == sessions),
    )?;
    if let Some(p) = &single {
        summary_line(
            file,
            &format!("single change p50, {live} sessions"),
            &ms(p.p50),
            "-",
            None,
        )?;
        summary_line(
            file,
            &format!("single change p99, {live} sessions"),
            &ms(p.p99),
            &format!("< {}", ms(TARGET_P99)),
            Some(p.p99 < TARGET_P99),
        )?;
        summary_line(file, "single change max", &ms(p.max), "-", None)?;
    }
    summary_line(
        file,
        &format!("single changes missing after {} s", args.deadline_secs),
        &format!("{}", singles.missing),
        "0",
        Some(singles.missing == 0),
    )?;
    if let (Some(p), Some((_, records))) = (&imported, import) {
        summary_line(
            file,
            &format!("{records}-record import p50 / p99"),
            &format!("{} / {}", ms(p.p50), ms(p.p99)),
            "-",
            None,
        )?;
    }
    if let Ok(m) = &idle_memory {
        summary_line(
            file,
            &format!("appliance VmRSS, {live} sessions open"),
            &mib(m.rss_kib),
            "-",
            None,
        )?;
    }
    if let Ok(m) = &loaded_memory {
        summary_line(
            file,
            "appliance VmHWM after the import",
            &mib(m.hwm_kib),
            "-",
            None,
        )?;
    }
    if let Ok(m) = &settled_memory {
        summary_line(
            file,
            &format!("appliance VmRSS {} s after, {live} idle", args.settle_secs),
            &mib(m.rss_kib),
            "-",
            None,
        )?;
    }
    Ok(())
}
