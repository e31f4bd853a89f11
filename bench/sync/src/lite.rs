//! `sync-bench lite`: starts one real `outpost-lite` with an empty data directory and
//! measures, from outside, what a new laptop sees: the time until `outpost-lite
//! status --json` says Synced with the cursor at the head, the peak resident memory
//! while it took the snapshot (VmHWM), and its resident memory afterwards (VmRSS).
//!
//! Then it restarts the client on the same data directory and measures its resident
//! memory again: the replica loaded from disk, without the snapshot's leftovers.
//!
//! The time is observed through the status file, which the client rewrites at most
//! every 100 ms after a change, and polled every `--poll-ms`: it overstates the real
//! time by up to the sum of the two.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::appliance::{Memory, mib};
use crate::stats::{ms, summary_line};

/// The targets for a 100,000-record snapshot.
const TARGET_SNAPSHOT: Duration = Duration::from_secs(2);
const TARGET_RSS_KIB: u64 = 64 * 1024;
/// Time the client has to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct LiteArgs {
    /// The outpost-lite binary.
    #[arg(long, default_value = "outpost-lite")]
    lite_bin: PathBuf,
    /// Sync URL of the appliance, like ws://127.0.0.1:8054.
    #[arg(long)]
    appliance: String,
    /// Lite token.
    #[arg(long, env = "OUTPOST_LITE_TOKEN", hide_env_values = true)]
    token: String,
    /// Data directory of the client; must be empty or absent (a new laptop).
    #[arg(long)]
    data_dir: PathBuf,
    /// The client's DNS address.
    #[arg(long, default_value = "127.0.0.1:0")]
    dns: String,
    /// Upstream resolver (never reached: the checked name is in the replica).
    #[arg(long, default_value = "127.0.0.1:9")]
    upstream: String,
    /// Records the replica should hold once synced.
    #[arg(long)]
    expect_records: Option<usize>,
    /// Log index the cursor must reach (the import's), besides the head.
    #[arg(long, default_value_t = 0)]
    expect_index: u64,
    /// A name the client should answer (type A) from its replica once synced.
    #[arg(long)]
    check_name: Option<String>,
    /// Time between two status polls, in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Give up after this long without Synced.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Wait this long after Synced before reading the resident memory.
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
    /// Where the client's log goes.
    #[arg(long)]
    log_file: PathBuf,
    /// Where to write the client's pid, so the caller can stop it if this dies.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// File to append the target lines to.
    #[arg(long)]
    summary: Option<PathBuf>,
}

/// The fields of `outpost-lite status --json` this reads.
#[derive(Debug, Clone, Deserialize)]
struct Status {
    state: String,
    cursor: Option<u64>,
    head: Option<u64>,
    records: usize,
    dns: String,
    error: Option<String>,
    pid: u32,
}

pub fn main(args: LiteArgs) -> anyhow::Result<()> {
    let fresh = match std::fs::read_dir(&args.data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if !fresh {
        bail!(
            "{} is not empty: the bench measures a new client (remove it)",
            args.data_dir.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;

    println!("outpost-lite, new: empty data directory, the whole zone as a snapshot");
    let Some(new) = run_once(&args, true)? else {
        return summary_line(
            args.summary.as_deref(),
            "Lite snapshot: time to Synced",
            &format!("> {} s", args.timeout_secs),
            &format!("< {}", ms(TARGET_SNAPSHOT)),
            Some(false),
        );
    };
    println!("outpost-lite, restarted: the same data directory, the replica from disk");
    let restarted = run_once(&args, false)?;

    println!();
    let file = args.summary.as_deref();
    summary_line(
        file,
        &format!("Lite snapshot of {} records: time to Synced", new.records),
        &ms(new.synced_after),
        &format!("< {}", ms(TARGET_SNAPSHOT)),
        Some(new.synced_after < TARGET_SNAPSHOT),
    )?;
    summary_line(
        file,
        "Lite peak memory during the snapshot (VmHWM)",
        &mib(new.at_sync.hwm_kib),
        "-",
        None,
    )?;
    summary_line(
        file,
        &format!(
            "Lite VmRSS, {} records, {} s after Synced",
            new.records, args.settle_secs
        ),
        &mib(new.settled.rss_kib),
        &format!("< {}", mib(TARGET_RSS_KIB)),
        Some(new.settled.rss_kib < TARGET_RSS_KIB),
    )?;
    if let Some(restarted) = restarted {
        summary_line(
            file,
            &format!("Lite VmRSS, {} records, restarted", restarted.records),
            &mib(restarted.settled.rss_kib),
            &format!("< {}", mib(TARGET_RSS_KIB)),
            Some(restarted.settled.rss_kib < TARGET_RSS_KIB),
        )?;
    }
    Ok(())
}

/// What one start of the client measured.
struct Outcome {
    synced_after: Duration,
    records: usize,
    at_sync: Memory,
    settled: Memory,
}

/// Starts the client, waits for Synced at the head, lets it settle, measures, stops
/// it. `None` when it was not Synced within the timeout (said on stdout).
fn run_once(args: &LiteArgs, new: bool) -> anyhow::Result<Option<Outcome>> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log_file)
        .with_context(|| format!("cannot open {}", args.log_file.display()))?;
    let started = Instant::now();
    let child = Command::new(&args.lite_bin)
        .arg("run")
        .args(["--appliance", &args.appliance, "--token", &args.token])
        .args(["--dns", &args.dns])
        .args(["--upstream", &args.upstream, "--log", "warn"])
        .arg("--data-dir")
        .arg(&args.data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", args.lite_bin.display()))?;
    let mut lite = Running { child };
    if let Some(path) = &args.pid_file {
        std::fs::write(path, format!("{}\n", lite.pid()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let result = measure(args, &mut lite, started, new);
    lite.stop();
    if let Some(path) = &args.pid_file {
        // The pid may be reused once the client is gone.
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The client, stopped in order when this is done with it.
struct Running {
    child: Child,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.pid()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let end = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("sync-bench: outpost-lite did not stop within {STOP_TIMEOUT:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for Synced at the head, then reports what the client holds and costs then and
/// after it settled. `None` when it was not Synced within the timeout (said on stdout).
fn measure(
    args: &LiteArgs,
    lite: &mut Running,
    started: Instant,
    new: bool,
) -> anyhow::Result<Option<Outcome>> {
    let Some(synced) = wait_for_synced(args, lite, started)? else {
        return Ok(None);
    };
    let at_sync = Memory::of(lite.pid())?;
    println!(
        "  Synced at cursor {} = head with {} records after {} (Syncing first seen after {})",
        synced.status.cursor.unwrap_or(0),
        synced.status.records,
        ms(synced.after),
        synced.first_syncing.map_or_else(|| "-".to_string(), ms),
    );
    println!(
        "  memory at Synced: {at_sync}  (highest VmRSS sampled {})",
        mib(synced.sampled_peak_kib)
    );
    let (settled, later) = settle(args, lite, synced.status, new)?;
    Ok(Some(Outcome {
        synced_after: synced.after,
        records: later.records,
        at_sync,
        settled,
    }))
}

/// What polling the client saw when it was first Synced at the head.
struct Synced {
    /// Time from the start of the client.
    after: Duration,
    status: Status,
    /// When the status first said Syncing, if a poll caught it.
    first_syncing: Option<Duration>,
    /// The highest VmRSS of the polls until then.
    sampled_peak_kib: u64,
}

/// Polls the client's status every `--poll-ms` until it is Synced with its cursor at the
/// head (and at `--expect-index` or beyond); `None` after `--timeout-secs` (said on
/// stdout), an error when the client exits first.
fn wait_for_synced(
    args: &LiteArgs,
    lite: &mut Running,
    started: Instant,
) -> anyhow::Result<Option<Synced>> {
    let poll = Duration::from_millis(args.poll_ms);
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut sampled_peak_kib = 0;
    let mut first_syncing = None;
    let mut last: Option<Status> = None;
    loop {
        if let Some(exit) = lite
            .child
            .try_wait()
            .context("cannot wait for outpost-lite")?
        {
            bail!(
                "outpost-lite exited ({exit}) before it was synced; see {}",
                args.log_file.display()
            );
        }
        if let Ok(memory) = Memory::of(lite.pid()) {
            sampled_peak_kib = sampled_peak_kib.max(memory.rss_kib);
        }
        if let Some(status) = read_status(&args.lite_bin, &args.data_dir, lite.pid()) {
            if status.state == "Syncing" && first_syncing.is_none() {
                first_syncing = Some(started.elapsed());
            }
            let at_head = status.cursor.is_some() && status.cursor == status.head;
            if status.state == "Synced"
                && at_head
                && status.cursor.unwrap_or(0) >= args.expect_index
            {
                return Ok(Some(Synced {
                    after: started.elapsed(),
                    status,
                    first_syncing,
                    sampled_peak_kib,
                }));
            }
            last = Some(status);
        }
        if started.elapsed() >= timeout {
            break;
        }
        std::thread::sleep(poll);
    }
    println!(
        "  not Synced at the head within {}; last status: {last:?}",
        ms(timeout)
    );
    Ok(None)
}

/// Waits `--settle-secs`, then prints the client's state, memory and disk use, and
/// warns when it holds other than the expected records or (a new client) does not
/// answer `--check-name`. The memory and the status then.
fn settle(
    args: &LiteArgs,
    lite: &Running,
    at_sync: Status,
    new: bool,
) -> anyhow::Result<(Memory, Status)> {
    std::thread::sleep(Duration::from_secs(args.settle_secs));
    let settled = Memory::of(lite.pid())?;
    let later = read_status(&args.lite_bin, &args.data_dir, lite.pid()).unwrap_or(at_sync);
    println!(
        "  {} s later: {}, {} records, {settled}{}",
        args.settle_secs,
        later.state,
        later.records,
        later
            .error
            .as_deref()
            .map_or_else(String::new, |e| format!(", error {e:?}"))
    );
    println!(
        "  data directory: {}",
        mib(disk_kib(&args.data_dir).unwrap_or(0))
    );
    if let Some(expected) = args.expect_records
        && later.records != expected
    {
        println!(
            "  WARNING: the replica holds {} records, not {expected}",
            later.records
        );
    }
    if new && let Some(name) = &args.check_name {
        match query_a(&later.dns, name) {
            Ok(answers) => println!("  answers {name} A: {answers} record(s)"),
            Err(error) => println!("  WARNING: no answer to {name} A: {error:#}"),
        }
    }
    Ok((settled, later))
}

/// Bytes of the files in `dir` (not in subdirectories), in KiB.
fn disk_kib(dir: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            bytes += metadata.len();
        }
    }
    Ok(bytes / 1024)
}

/// `outpost-lite status --json` written by the client `pid`, or `None` while there is
/// none (a restarted client finds the previous one's file at first).
fn read_status(lite_bin: &Path, data_dir: &Path, pid: u32) -> Option<Status> {
    let output = Command::new(lite_bin)
        .args(["status", "--json", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let status: Status = serde_json::from_slice(&output.stdout).ok()?;
    (status.pid == pid).then_some(status)
}

/// Asks `dns` for `name` A over UDP; the number of answers, or why there are none.
fn query_a(dns: &str, name: &str) -> anyhow::Result<u16> {
    let server: SocketAddr = dns
        .parse()
        .with_context(|| format!("{dns:?} is not an address"))?;
    let mut query = vec![0x4f, 0x50, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        let length = u8::try_from(label.len()).context("label too long")?;
        query.push(length);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind UDP")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send_to(&query, server)?;
    let mut answer = [0u8; 512];
    let (length, _) = socket
        .recv_from(&mut answer)
        .context("no answer within 2 s")?;
    let header = answer
        .get(..12)
        .filter(|_| length >= 12)
        .context("short answer")?;
    let rcode = header[3] & 0x0f;
    if rcode != 0 {
        bail!("rcode {rcode}");
    }
    let answers = u16::from_be_bytes([header[6], header[7]]);
    if answers == 0 {
        bail!("no answer records");
    }
    Ok(answers)
}
