//! `sync-bench docs`: the export path (issue 16), measured from outside. On a running
//! `outpost serve` with `--export-listen`: imports an N-record zone, exports it, starts a
//! new satellite (`outpost serve --satellite TICKET`, empty data directory) and measures
//! the time until it holds the import's index (its `/v1/status`, polled every 20 ms)
//! and its resident memory then; then W single writes, each timed from its 2xx (the
//! commit) to the satellite's first DNS answer holding it (UDP, polled every 2 ms).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::appliance::{Addresses, Admin, Memory, mib};
use crate::stats::{Percentiles, ms, summary_line};
use crate::zonefile::master_file;

#[derive(clap::Args, Debug)]
pub struct DocsArgs {
    /// The outpost binary (the satellite is one).
    #[arg(long, default_value = "outpost")]
    outpost_bin: PathBuf,
    /// Data directory of the running node that serves exports.
    #[arg(long)]
    node: PathBuf,
    /// Origin of the zone imported and exported.
    #[arg(long, default_value = "docs.test.")]
    origin: String,
    /// Records of the zone.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Single writes timed to the satellite's answer.
    #[arg(long, default_value_t = 100)]
    writes: usize,
    /// Folder for the satellite's data directory, config and log (emptied first).
    #[arg(long)]
    work_dir: PathBuf,
    /// Give up on one step after this long.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// File to append the figure lines to.
    #[arg(long)]
    summary: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Created {
    ticket: Option<String>,
    ticket_unavailable: Option<String>,
}

pub fn main(args: DocsArgs) -> anyhow::Result<()> {
    let node = Addresses::read(&args.node)?;
    let admin = Admin::new(node.admin, &args.node)?;
    let text = master_file(&args.origin, args.records, "h");
    let (import, records) = admin.import_zone(&args.origin, &text)?;
    println!(
        "imported {records} records into {} at index {}",
        args.origin, import.index
    );
    // Settle, so the import's transient memory is returned before the export's is added.
    std::thread::sleep(Duration::from_secs(3));
    let before = Memory::of(node.pid)?;
    summary_line(
        args.summary.as_deref(),
        "node VmRSS, zone imported, no export",
        &mib(before.rss_kib),
        "-",
        None,
    )?;
    let created: Created = admin.post_json(
        "/v1/exports",
        &serde_json::json!({ "name": "bench", "zones": [args.origin] }),
    )?;
    let Some(ticket) = created.ticket else {
        bail!(
            "no ticket: {}",
            created.ticket_unavailable.unwrap_or_default()
        );
    };
    let _ = std::fs::remove_dir_all(&args.work_dir);
    std::fs::create_dir_all(&args.work_dir)?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut satellite = Satellite::start(&args, &ticket)?;
    let result = measure(&args, &admin, &mut satellite, import.index, timeout);
    satellite.stop();
    result
}

fn measure(
    args: &DocsArgs,
    admin: &Admin,
    satellite: &mut Satellite,
    index: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let taken = satellite.wait_for_index(index, timeout)?;
    let memory = Memory::of(satellite.child.id())?;
    println!(
        "a new satellite held the {}-record export after {} (VmRSS {}, VmHWM {})",
        args.records,
        ms(taken),
        mib(memory.rss_kib),
        mib(memory.hwm_kib)
    );
    let summary = args.summary.as_deref();
    let what = format!("new satellite, {}-record export", args.records);
    summary_line(summary, &format!("{what}: time"), &ms(taken), "-", None)?;
    summary_line(
        summary,
        &format!("{what}: VmRSS"),
        &mib(memory.rss_kib),
        "-",
        None,
    )?;
    let dns = satellite.dns()?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut samples = Vec::with_capacity(args.writes);
    for n in 0..args.writes {
        let name = format!("docs-bench-{n}.{}", args.origin);
        let write = admin.add_record(&name, "A", "10.77.0.1")?;
        loop {
            if answers(&socket, dns, &name, n as u16)? {
                break;
            }
            if write.answered.elapsed() > timeout {
                bail!("the satellite never answered {name}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(write.answered.elapsed());
    }
    let latency = Percentiles::of(samples).context("no writes")?;
    println!("commit to the satellite's DNS answer: {latency}");
    summary_line(
        summary,
        "commit to satellite answer: p50",
        &ms(latency.p50),
        "-",
        None,
    )?;
    summary_line(
        summary,
        "commit to satellite answer: p99",
        &ms(latency.p99),
        "-",
        None,
    )
}

/// Whether `dns` answers `name` A with at least one record.
fn answers(socket: &UdpSocket, dns: SocketAddr, name: &str, id: u16) -> anyhow::Result<bool> {
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send_to(&query, dns)?;
    let mut reply = [0u8; 1500];
    loop {
        let Ok((len, _)) = socket.recv_from(&mut reply) else {
            return Ok(false);
        };
        // A late answer to an earlier question: skip it.
        if len < 12 || reply[..2] != id.to_be_bytes() {
            continue;
        }
        let rcode = reply[3] & 0x0f;
        let answers = u16::from_be_bytes([reply[6], reply[7]]);
        return Ok(rcode == 0 && answers > 0);
    }
}

/// The satellite process the bench started.
struct Satellite {
    child: Child,
    data_dir: PathBuf,
}

impl Satellite {
    fn start(args: &DocsArgs, ticket: &str) -> anyhow::Result<Satellite> {
        let data_dir = args.work_dir.join("satellite");
        let config = args.work_dir.join("satellite.toml");
        std::fs::write(&config, "[forward]\nupstreams = [\"127.0.0.1:9\"]\n")?;
        let log = std::fs::File::create(args.work_dir.join("satellite.log"))?;
        let child = Command::new(&args.outpost_bin)
            .args([
                "serve",
                "--allow-root",
                "--satellite",
                ticket,
                "--log",
                // iroh-docs warns of readers that close first, with a backtrace when
                // RUST_BACKTRACE is set, whose symbols would take 100 MiB.
                "warn,iroh_docs=error",
            ])
            .args(["--dns", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--export-listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the satellite")?;
        Ok(Satellite { child, data_dir })
    }

    /// Waits until the satellite's replica is at `index` or later; the time it took
    /// from the start of the process.
    fn wait_for_index(&mut self, index: u64, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut admin = None;
        while started.elapsed() < timeout {
            if let Some(exit) = self.child.try_wait()? {
                bail!("the satellite exited: {exit}");
            }
            if admin.is_none() {
                admin = Addresses::read(&self.data_dir)
                    .ok()
                    .filter(|addresses| addresses.pid == self.child.id())
                    .and_then(|addresses| Admin::new(addresses.admin, &self.data_dir).ok());
            }
            if let Some(admin) = &admin
                && let Ok(status) = admin.get_json::<serde_json::Value>("/v1/status")
                && status["satellite"]["cursor"].as_u64() >= Some(index)
            {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the satellite did not reach index {index} within {timeout:?}")
    }

    fn dns(&self) -> anyhow::Result<SocketAddr> {
        let text = std::fs::read_to_string(self.data_dir.join("addresses.json"))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        value["dns"]
            .as_str()
            .context("addresses.json names no dns")?
            .parse()
            .context("the satellite's dns address")
    }

    fn stop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}
