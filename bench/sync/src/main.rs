//! `sync-bench`: the Lite sync benchmark (issue 4) and the cluster write benchmark
//! (issue 3). Not a test: it prints figures, with the targets beside them, and fails
//! only when it cannot measure.
//!
//! `bench/sync.sh` drives it against an `outpost serve` it starts, `bench/cluster.sh`
//! against three; see there for the whole runs.
//!
//! # Layout
//! - [`fanout`]: `sync-bench fanout`: N raw sessions, W single-record writes and one
//!   zone import through the admin API, and the time from each write to its receipt
//!   at every session.
//! - [`session`]: one raw protocol session (`Hello` → snapshot → live), logging when
//!   each log index arrives.
//! - [`changes_view`]: the entry indexes of a `Changes` body, read without copying.
//! - [`lite`]: `sync-bench lite`: a real `outpost-lite` taking a snapshot, timed and
//!   measured from outside.
//! - [`cluster`]: `sync-bench cluster`: commit latency and writes per second of a
//!   running cluster: single writes (to the leader, through a follower, concurrent),
//!   a zone import, then single writes into that large zone.
//! - [`docs`]: `sync-bench docs`: a new satellite taking an export, and the time from
//!   each commit to the satellite's DNS answer.
//! - [`appliance`]: `addresses.json`, the admin API, `/proc/<pid>/status`.
//! - [`zonefile`]: generated master files.
//! - [`stats`]: percentiles and the summary lines.

mod appliance;
mod changes_view;
mod cluster;
mod docs;
mod fanout;
mod lite;
mod session;
mod stats;
mod zonefile;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "sync-bench", about = "Outpost Lite sync benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Propagation from an admin write to N concurrent raw sessions.
    Fanout(fanout::FanoutArgs),
    /// Commit latency and writes per second of a running cluster (issue 3).
    Cluster(cluster::ClusterArgs),
    /// A real outpost-lite taking a snapshot: time to Synced, peak and resident memory.
    Lite(lite::LiteArgs),
    /// An export (issue 16): a new satellite taking it, and commit-to-answer latency.
    Docs(docs::DocsArgs),
    /// Print a master file of N records (SOA, NS and N-2 A records) on stdout.
    ZoneFile {
        /// Origin of the zone, like bench.test.
        #[arg(long)]
        origin: String,
        /// Records in the zone, SOA and NS included.
        #[arg(long)]
        records: usize,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Fanout(args) => fanout::main(args),
        Command::Lite(args) => lite::main(args),
        Command::Cluster(args) => cluster::main(args),
        Command::Docs(args) => docs::main(args),
        Command::ZoneFile { origin, records } => {
            let text = zonefile::master_file(&origin, records, "h");
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sync-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
