//! `outpost-lite`: the Lite client daemon (`run`) and its status report (`status`).
//! Parses arguments, sets up tracing, runs, and maps signals to a shutdown.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use outpost_lite::config::{DEFAULT_DATA_DIR, RunOptions};
use outpost_lite::lite::LiteClient;
use outpost_lite::status::{self, StatusError};

#[derive(Parser, Debug)]
#[command(
    name = "outpost-lite",
    version,
    about = "Outpost Lite: the site's internal names on this machine, online or not"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sync with an appliance and serve DNS from the local replica.
    Run(RunArgs),
    /// Show the running client's sync state.
    Status {
        /// Print the status file's JSON (with "running" added).
        #[arg(long)]
        json: bool,
        /// Data directory of the client.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Appliance sync URL, e.g. ws://10.0.0.2:8054 or wss://… (repeatable; tried in turn).
    #[arg(long = "appliance", required = true)]
    appliances: Vec<String>,
    /// Lite token from `outpost lite-token create`.
    #[arg(long, env = "OUTPOST_LITE_TOKEN", hide_env_values = true)]
    token: String,
    /// DNS address, UDP and TCP (default 127.0.0.1:5354).
    #[arg(long)]
    dns: Option<String>,
    /// Data directory for the replica and status.json (default ./outpost-lite-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Upstream resolver for names outside the replica: IP, IP:PORT or tcp://IP:PORT
    /// (repeatable; default: the nameservers of /etc/resolv.conf).
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// For wss://: SHA-256 fingerprint of the appliance's certificate (the appliance
    /// logs it at start; `openssl x509 -noout -fingerprint -sha256 -in cert.pem`).
    #[arg(long)]
    pin: Option<String>,
    /// For wss://: PEM file of CA certificates that sign the appliance's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Log filter, e.g. info or outpost_lite=debug (RUST_LOG also works).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).map(|()| ExitCode::SUCCESS),
        Command::Status { json, data_dir } => show_status(json, &data_dir),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = RunOptions {
        appliances: args.appliances,
        token: args.token,
        dns: args.dns,
        data_dir: args.data_dir,
        upstreams: args.upstreams,
        pin: args.pin,
        ca: args.ca,
    }
    .resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = LiteClient::start(config).await?;
        wait_for_signal().await?;
        client.shutdown().await?;
        anyhow::Ok(())
    })
}

/// Prints the status; exits 0 when the client runs, 1 when it does not.
fn show_status(json: bool, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let file = match status::read_status_file(data_dir) {
        Ok(file) => file,
        Err(StatusError::Missing { path }) => {
            println!("outpost-lite: not running (no {})", path.display());
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    let running = status::is_running(&file);
    if json {
        let mut value = serde_json::to_value(&file).context("status to JSON")?;
        if let Some(object) = value.as_object_mut() {
            object.insert("running".into(), running.into());
        }
        println!("{value}");
    } else {
        print!("{}", status::render(&file, running, status::unix_now()));
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
