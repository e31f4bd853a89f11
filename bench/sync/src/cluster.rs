//! `sync-bench cluster`: write throughput and commit latency of a running Raft cluster
//! (issue 3). `bench/cluster.sh` starts three nodes on loopback and runs it.
//!
//! Four phases, all through the admin API:
//! 1. single writes at concurrency 1 to the leader: each `POST /v1/records` from just
//!    before it is sent to its 2xx, which comes once the entry is fsynced on a majority
//!    and applied on the leader;
//! 2. the same through a follower, which forwards each write to the leader (one more
//!    hop);
//! 3. `--clients` concurrent clients writing to the leader: writes per second, and the
//!    latency under that load;
//! 4. one zone import (`PUT /v1/zones/{origin}`, a single Raft entry): the time to its
//!    2xx, then until every follower has applied it (`applied_index` of `/v1/status`);
//! 5. single writes to the leader again, into the imported zone: whether a write's cost
//!    grows with the size of its zone.
//!
//! The figures include HTTP on loopback and the bench's own scheduling; every node and
//! the bench share the machine's cores, so each phase also prints the CPU time each
//! process used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use crate::appliance::{Addresses, Admin, Memory, cpu_time, mib};
use crate::stats::{Percentiles, ms, summary_line};
use crate::zonefile;

/// The target for single writes.
const TARGET_SINGLE_P99: Duration = Duration::from_millis(20);
/// The target for a 100,000-record import.
const TARGET_IMPORT: Duration = Duration::from_secs(10);
/// Writes sent before each measured phase and not counted: the first ones open the HTTP
/// connection (and, through a follower, its forward to the leader).
const WARMUP_WRITES: usize = 10;
/// Most writes in one phase; the bench keeps each one's latency in memory.
const MAX_WRITES: usize = 1_000_000;
/// Most concurrent clients; each is a thread with its own connection.
const MAX_CLIENTS: usize = 256;
/// Most records of the import; its master file is built in memory, ~30 bytes a record.
const MAX_IMPORT_RECORDS: usize = 10_000_000;
/// How often the followers are asked whether they applied the import.
const APPLY_POLL: Duration = Duration::from_millis(10);
/// Longest wait for the followers to apply the import; past it the bench gives up.
const APPLY_DEADLINE: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Data directory of a node of the running cluster (addresses.json, admin.token);
    /// repeat for every node, at least two.
    #[arg(long = "node", required = true)]
    nodes: Vec<PathBuf>,
    /// Existing zone the single writes go into.
    #[arg(long, default_value = "bench.test.")]
    origin: String,
    /// Writes in each write phase.
    #[arg(long, default_value_t = 2000)]
    writes: usize,
    /// Concurrent clients of the throughput phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Records of the zone import, SOA and NS included (0: no import).
    #[arg(long, default_value_t = 100_000)]
    import_records: usize,
    /// Zone the import creates or replaces.
    #[arg(long, default_value = "import.test.")]
    import_origin: String,
    /// Single writes to the leader into the imported zone, after the import.
    #[arg(long, default_value_t = 200)]
    large_zone_writes: usize,
    /// File to append the target lines to.
    #[arg(long)]
    summary: Option<PathBuf>,
}

/// One node of the cluster, as the bench reaches it.
struct Node {
    data_dir: PathBuf,
    addresses: Addresses,
    admin: Admin,
    id: u64,
}

/// The part of `GET /v1/status` the bench reads.
#[derive(Debug, Deserialize)]
struct Status {
    node_id: u64,
    /// leader, follower, learner, candidate.
    role: String,
    leader: Option<u64>,
    applied_index: Option<u64>,
}

impl Node {
    fn open(data_dir: &Path) -> anyhow::Result<(Node, Status)> {
        let addresses = Addresses::read(data_dir)?;
        let admin = Admin::new(addresses.admin, data_dir)?;
        let status: Status = admin
            .get_json("/v1/status")
            .with_context(|| format!("asking the node of {}", data_dir.display()))?;
        let node = Node {
            data_dir: data_dir.to_path_buf(),
            addresses,
            admin,
            id: status.node_id,
        };
        Ok((node, status))
    }

    fn status(&self) -> anyhow::Result<Status> {
        self.admin
            .get_json("/v1/status")
            .with_context(|| format!("asking {self}"))
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} (admin {})", self.id, self.addresses.admin)
    }
}

/// The latencies of one phase and how long it took.
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

pub fn main(args: ClusterArgs) -> anyhow::Result<()> {
    if args.writes.max(args.large_zone_writes) > MAX_WRITES {
        bail!("--writes and --large-zone-writes may be {MAX_WRITES} at most");
    }
    if !(1..=MAX_CLIENTS).contains(&args.clients) {
        bail!(
            "--clients {} is not between 1 and {MAX_CLIENTS}",
            args.clients
        );
    }
    if args.import_records > MAX_IMPORT_RECORDS {
        bail!(
            "--import-records {} is over {MAX_IMPORT_RECORDS}",
            args.import_records
        );
    }
    let origin = zonefile::absolute(&args.origin);
    let (leader, followers) = find_leader(&args.nodes)?;
    let Some(follower) = followers.first() else {
        bail!("no follower among the nodes given (give every node with --node)");
    };
    println!(
        "cluster: leader {leader}, followers {}",
        followers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let nodes: Vec<&Node> = std::iter::once(&leader).chain(&followers).collect();
    let summary = args.summary.as_deref();

    let to_leader = single_writes(&nodes, &leader, &origin, "l", args.writes)?;
    report_single("single writes to the leader", &to_leader, summary)?;
    let via_follower = single_writes(&nodes, follower, &origin, "f", args.writes)?;
    report_single("single writes via a follower", &via_follower, summary)?;

    let cpu = CpuMark::now(&nodes);
    let concurrent = concurrent_writes(&leader, &origin, "c", args.writes, args.clients)?;
    let label = format!("{} clients to the leader", args.clients);
    print_run(&label, &concurrent);
    cpu.print_since(&nodes);
    if let Some(p) = Percentiles::of(concurrent.latencies.clone()) {
        let measured = format!("{:.0}/s", concurrent.per_second());
        summary_line(summary, &format!("{label}: rate"), &measured, "-", None)?;
        let measured = format!("{}, {}", ms(p.p50), ms(p.p99));
        summary_line(summary, &format!("{label}: p50, p99"), &measured, "-", None)?;
    }

    if args.import_records > 0 {
        let origin = zonefile::absolute(&args.import_origin);
        import(
            &nodes,
            &leader,
            &followers,
            &origin,
            args.import_records,
            summary,
        )?;
        if args.large_zone_writes > 0 {
            let run = single_writes(&nodes, &leader, &origin, "l", args.large_zone_writes)?;
            let label = format!("single writes, {}-record zone", args.import_records);
            report_single(&label, &run, summary)?;
        }
    }

    report_memory(&nodes, summary)?;

    // Figures taken across a change of leader mean something else: say so.
    let now = leader.status()?;
    if now.role != "leader" {
        println!(
            "WARNING: {leader} is {} now (leader {:?}): the cluster elected again during the run",
            now.role, now.leader
        );
    }
    Ok(())
}

/// What each node holds after the run (the imported zone included).
fn report_memory(nodes: &[&Node], summary: Option<&Path>) -> anyhow::Result<()> {
    for node in nodes {
        let memory = Memory::of(node.addresses.pid)?;
        println!("node {}: {memory}", node.id);
        let label = format!("node {} VmRSS after the run", node.id);
        summary_line(summary, &label, &mib(memory.rss_kib), "-", None)?;
    }
    Ok(())
}

/// Opens every node and tells the leader from the followers.
fn find_leader(data_dirs: &[PathBuf]) -> anyhow::Result<(Node, Vec<Node>)> {
    let mut leader = None;
    let mut followers = Vec::new();
    for data_dir in data_dirs {
        let (node, status) = Node::open(data_dir)?;
        match status.role.as_str() {
            "leader" if leader.is_none() => leader = Some(node),
            "follower" => followers.push(node),
            role => bail!(
                "{node} of {} is {role} (leader {:?}); wait until the cluster has one leader and its voters follow it",
                node.data_dir.display(),
                status.leader
            ),
        }
    }
    let leader = leader.context("no node of those given leads the cluster")?;
    Ok((leader, followers))
}

/// `count` writes to `to`, one after another (after [`WARMUP_WRITES`] not counted).
fn single_writes(
    nodes: &[&Node],
    to: &Node,
    origin: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Run> {
    for number in 0..WARMUP_WRITES {
        write_one(&to.admin, origin, &format!("warm{prefix}"), number)?;
    }
    let cpu = CpuMark::now(nodes);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for number in 0..count {
        latencies.push(write_one(&to.admin, origin, prefix, number)?);
    }
    let run = Run {
        latencies,
        wall: started.elapsed(),
    };
    print_run(&format!("single writes to {to} into {origin}"), &run);
    cpu.print_since(nodes);
    Ok(run)
}

/// `count` writes to `to` from `clients` threads, each with its own connection, taking
/// the next write number as it finishes one.
fn concurrent_writes(
    to: &Node,
    origin: &str,
    prefix: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<Run> {
    let admins = (0..clients)
        .map(|_| Admin::new(to.addresses.admin, &to.data_dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (client, admin) in admins.iter().enumerate() {
        write_one(admin, origin, &format!("warm{prefix}"), client)?;
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let threads: Vec<_> = admins
            .iter()
            .map(|admin| {
                let next = &next;
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    loop {
                        let number = next.fetch_add(1, Ordering::Relaxed);
                        if number >= count {
                            return Ok::<_, anyhow::Error>(latencies);
                        }
                        latencies.push(write_one(admin, origin, prefix, number)?);
                    }
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(count);
        for thread in threads {
            let client = thread
                .join()
                .map_err(|_| anyhow!("a client thread panicked"))??;
            latencies.extend(client);
        }
        Ok::<_, anyhow::Error>(latencies)
    })?;
    Ok(Run {
        wall: started.elapsed(),
        latencies,
    })
}

/// `POST /v1/records` of `{prefix}{number:06}.{origin} A 10.x.y.z`: the time from just
/// before it was sent to its 2xx.
fn write_one(admin: &Admin, origin: &str, prefix: &str, number: usize) -> anyhow::Result<Duration> {
    let name = format!("{prefix}{number:06}.{origin}");
    let data = format!(
        "10.{}.{}.{}",
        (number >> 16) & 0xff,
        (number >> 8) & 0xff,
        number & 0xff
    );
    let write = admin.add_record(&name, "A", &data)?;
    Ok(write.answered - write.sent)
}

/// One import to the leader, timed to its 2xx and to its apply on every follower.
fn import(
    nodes: &[&Node],
    leader: &Node,
    followers: &[Node],
    origin: &str,
    records: usize,
    summary: Option<&Path>,
) -> anyhow::Result<()> {
    let text = zonefile::master_file(origin, records, "h");
    let cpu = CpuMark::now(nodes);
    let (write, parsed) = leader.admin.import_zone(origin, &text)?;
    let committed = write.answered - write.sent;
    println!(
        "import of {records} records ({} KiB) into {origin} at index {}: answered after {}",
        text.len() / 1024,
        write.index,
        ms(committed)
    );
    if parsed != records {
        println!("WARNING: the leader parsed {parsed} records of the {records} sent");
    }
    let mut waiting: Vec<&Node> = followers.iter().collect();
    let mut all_applied = committed;
    while let Some(first) = waiting.first() {
        if write.sent.elapsed() > APPLY_DEADLINE {
            bail!(
                "{first} did not apply index {} within {}",
                write.index,
                ms(APPLY_DEADLINE)
            );
        }
        let mut still = Vec::with_capacity(waiting.len());
        for node in waiting {
            if node.status()?.applied_index.unwrap_or(0) >= write.index {
                all_applied = write.sent.elapsed();
                println!("  applied on {node} after {}", ms(all_applied));
            } else {
                still.push(node);
            }
        }
        waiting = still;
        std::thread::sleep(APPLY_POLL);
    }
    cpu.print_since(nodes);
    let label = format!("{records}-record import");
    summary_line(
        summary,
        &format!("{label}: committed (2xx)"),
        &seconds(committed),
        &format!("< {}", seconds(TARGET_IMPORT)),
        Some(committed < TARGET_IMPORT),
    )?;
    summary_line(
        summary,
        &format!("{label}: applied by followers"),
        &seconds(all_applied),
        "-",
        None,
    )
}

fn print_run(label: &str, run: &Run) {
    let percentiles = Percentiles::of(run.latencies.clone())
        .map_or_else(|| "no writes".to_string(), |p| p.to_string());
    println!(
        "{label}: {} writes in {}, {:.0} writes/s; {percentiles}",
        run.latencies.len(),
        ms(run.wall),
        run.per_second()
    );
}

fn report_single(label: &str, run: &Run, summary: Option<&Path>) -> anyhow::Result<()> {
    let Some(p) = Percentiles::of(run.latencies.clone()) else {
        return Ok(());
    };
    summary_line(
        summary,
        &format!("{label}: p99"),
        &ms(p.p99),
        &format!("< {}", ms(TARGET_SINGLE_P99)),
        Some(p.p99 < TARGET_SINGLE_P99),
    )?;
    let measured = format!("{}, {:.0}/s", ms(p.p50), run.per_second());
    summary_line(
        summary,
        &format!("{label}: p50, rate"),
        &measured,
        "-",
        None,
    )
}

/// `1.23 s`.
fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// CPU time of every node and of the bench at one moment.
struct CpuMark {
    at: Instant,
    nodes: Vec<Option<Duration>>,
    bench: Option<Duration>,
}

impl CpuMark {
    fn now(nodes: &[&Node]) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            nodes: nodes
                .iter()
                .map(|node| cpu_time(node.addresses.pid).ok())
                .collect(),
            bench: cpu_time(std::process::id()).ok(),
        }
    }

    fn print_since(&self, nodes: &[&Node]) {
        let now = CpuMark::now(nodes);
        let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(before), Some(after)) => ms(after.saturating_sub(before)),
            _ => "?".to_string(),
        };
        let per_node: Vec<String> = nodes
            .iter()
            .zip(self.nodes.iter().zip(&now.nodes))
            .map(|(node, (before, after))| format!("node {} {}", node.id, used(*before, *after)))
            .collect();
        println!(
            "  CPU over {} wall: {}, sync-bench {}",
            ms(now.at - self.at),
            per_node.join(", "),
            used(self.bench, now.bench)
        );
    }
}
