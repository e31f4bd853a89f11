//! `outpost`: the appliance daemon and its admin CLI. Parses arguments, sets up
//! tracing, loads the config, runs, and maps signals to a shutdown.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use outpost_appliance::client::{self, Connection, LiteTokenCommand, RecordCommand, ZoneCommand};
use outpost_appliance::config::{Overrides, RawConfig};
use outpost_appliance::node::Node;
use outpost_appliance::sync::TlsConfig;

#[derive(Parser, Debug)]
#[command(name = "outpost", version, about = "Outpost edge DNS appliance")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the appliance (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Validate a config file without starting.
    CheckConfig { file: PathBuf },
    /// Manage zones.
    Zone {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ZoneCommand,
    },
    /// Manage records.
    Record {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Manage the tokens of Lite clients.
    LiteToken {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: LiteTokenCommand,
    },
    /// Show the node's state.
    Status {
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default ./outpost-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// DNS address, UDP and TCP (default 127.0.0.1:5353).
    #[arg(long)]
    dns: Option<String>,
    /// Admin API address (default 127.0.0.1:8053).
    #[arg(long)]
    admin: Option<String>,
    /// Lite sync WebSocket address (default 127.0.0.1:8054).
    #[arg(long)]
    sync: Option<String>,
    /// Log filter, e.g. info or outpost_appliance=debug (RUST_LOG also works).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Zone {
            connection,
            command,
        } => client::zone(&connection, command),
        Command::Record {
            connection,
            command,
        } => client::record(&connection, command),
        Command::LiteToken {
            connection,
            command,
        } => client::lite_token(&connection, command),
        Command::Status { connection } => client::status(&connection),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let config = RawConfig::from_file(file)?.resolve(Overrides::default())?;
    if let Some(tls) = &config.sync.tls {
        let loaded = TlsConfig::load(&tls.cert, &tls.key)?;
        println!(
            "sync certificate SHA-256 fingerprint: {}",
            loaded.fingerprint()
        );
    }
    println!("{}: ok", file.display());
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let config = raw.resolve(Overrides {
        data_dir: args.data_dir,
        dns: args.dns,
        admin: args.admin,
        sync: args.sync,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let node = Node::start(config).await?;
        wait_for_signal().await?;
        node.shutdown().await?;
        anyhow::Ok(())
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
