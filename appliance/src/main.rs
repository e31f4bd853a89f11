//! `outpost`: the appliance daemon and its admin CLI. Parses arguments, sets up
//! tracing, loads the config, runs, and maps signals: SIGTERM and SIGINT to a
//! shutdown, SIGHUP to a reload of the config file. Tells systemd (`Type=notify`)
//! when it is ready, reloading and stopping, and pings its watchdog while healthy.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use outpost_appliance::client::{
    self, ClusterCommand, Connection, ExportCommand, LiteTokenCommand, PluginCommand,
    RecordCommand, ZoneCommand,
};
use outpost_appliance::config::{Config, Overrides, RawConfig};
use outpost_appliance::node::Node;
use outpost_appliance::satellite::Satellite;
use outpost_appliance::sync::TlsConfig;
use outpost_appliance::systemd::{self, Notifier};
use outpost_core::report::Report;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

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
    /// Manage iroh-docs exports: signed read-only copies of zones for satellites and
    /// Lite clients that cannot reach the sync port.
    Export {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Manage WebAssembly plugins.
    Plugin {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Show the node's state.
    Status {
        #[command(flatten)]
        connection: Connection,
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Manage the cluster: invite a node, show its status, remove a node.
    Cluster {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// TOML config file; flags override it. Re-read on SIGHUP.
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
    /// Raft endpoint address, IP:PORT (iroh: QUIC over UDP), the one peers dial, so not
    /// 0.0.0.0; port 0 picks a free port, named in addresses.json. Default: none, the node
    /// runs alone.
    #[arg(long)]
    raft: Option<String>,
    /// Join the cluster this ticket names (`outpost cluster invite` prints it) when this data
    /// directory is not in a cluster yet; ignored once it is. Needs --raft.
    #[arg(long, conflicts_with = "join_file")]
    join: Option<String>,
    /// Read the join ticket from this file (as --join).
    #[arg(long)]
    join_file: Option<PathBuf>,
    /// Export endpoint address, IP:PORT (iroh: QUIC over UDP), the one export tickets name,
    /// so not 0.0.0.0; port 0 picks a free port. Default: none, no export is served here.
    #[arg(long)]
    export_listen: Option<String>,
    /// Run as a satellite of an export: not a cluster member, it fetches the export's
    /// document (its ticket from `outpost export create`) from any peer and serves DNS
    /// from it, refusing writes. `[satellite] ticket_file` does the same.
    #[arg(long, value_name = "TICKET")]
    satellite: Option<String>,
    /// Log filter, e.g. info or outpost_appliance=debug (default: the config file's
    /// `log`, else info). RUST_LOG wins over both; either one pins the filter, so a
    /// reload no longer changes it.
    #[arg(long)]
    log: Option<String>,
    /// Start even when running as root (binding port 53 needs only
    /// CAP_NET_BIND_SERVICE; `allow_root = true` in the config does the same).
    #[arg(long)]
    allow_root: bool,
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
        Command::Plugin {
            connection,
            command,
        } => client::plugin(&connection, command),
        Command::Export {
            connection,
            command,
        } => client::export(&connection, command),
        Command::Status { connection, json } => client::status(&connection, json),
        Command::Cluster {
            connection,
            command,
        } => client::cluster(&connection, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", Report(&*error));
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
    if let Some(files) = &config.encrypted.files {
        let loaded = outpost_appliance::node::dns_tls::load_files(files)?;
        println!(
            "DNS over TLS/HTTPS/QUIC certificate SHA-256 fingerprint: {}",
            loaded.fingerprint()
        );
    }
    println!("{}: ok", file.display());
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let source = ConfigSource {
        file: args.config,
        overrides: Overrides {
            data_dir: args.data_dir,
            dns: args.dns,
            admin: args.admin,
            sync: args.sync,
            raft: args.raft,
            join: args.join,
            join_file: args.join_file,
            export: args.export_listen,
            satellite: args.satellite,
        },
    };
    let config = source.load()?;
    let log = LogFilter::install(args.log, config.log.as_deref())?;
    systemd::check_not_root(args.allow_root || config.allow_root)?;
    outpost_appliance::allocator::return_freed_memory();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config, source, log))
}

/// Starts the node, tells systemd, serves until SIGTERM or SIGINT (reloading on
/// SIGHUP), then shuts down.
async fn run(config: Config, source: ConfigSource, mut log: LogFilter) -> anyhow::Result<()> {
    // Before anything slow: SIGHUP's default action would kill us.
    let mut signals = Signals::listen()?;
    let notifier = Notifier::from_env();
    if config.satellite.is_some() {
        return run_satellite(&config, signals, notifier).await;
    }
    let node = Node::start(config).await?;
    let serving = format!("serving dns on {}", node.dns_addr());
    notifier.send_or_log(&format!("READY=1\nSTATUS={serving}"));

    let watchdog_stop = CancellationToken::new();
    let watchdog = systemd::watchdog_interval().map(|interval| {
        tracing::info!(?interval, "pinging the systemd watchdog while healthy");
        let health = node.health();
        tokio::spawn(systemd::watchdog(
            notifier.clone(),
            interval,
            serving.clone(),
            move || {
                let health = health.clone();
                async move { health.check(interval).await }
            },
            watchdog_stop.clone(),
        ))
    });

    while let Signal::Reload = signals.next().await {
        notifier.send_or_log("RELOADING=1\nSTATUS=reloading the configuration");
        let status = match reload_config(&node, &source, &mut log) {
            Ok(restart) if restart.is_empty() => serving.clone(),
            Ok(restart) => format!("{serving} (restart to apply: {})", restart.join(", ")),
            Err(error) => {
                let reason = one_line(&Report(&*error).to_string());
                tracing::error!(%reason, "reload failed; the running configuration stays");
                format!("reload failed: {reason}")
            }
        };
        notifier.send_or_log(&format!("READY=1\nSTATUS={status}"));
    }

    notifier.send_or_log("STOPPING=1\nSTATUS=shutting down");
    watchdog_stop.cancel();
    if let Some(watchdog) = watchdog {
        let _ = watchdog.await;
    }
    node.shutdown().await?;
    Ok(())
}

/// A satellite: serves until SIGTERM or SIGINT; SIGHUP changes nothing (restart it).
async fn run_satellite(
    config: &Config,
    mut signals: Signals,
    notifier: Notifier,
) -> anyhow::Result<()> {
    let satellite = Satellite::start(config).await?;
    let serving = format!("serving dns on {} as a satellite", satellite.dns_addr());
    notifier.send_or_log(&format!("READY=1\nSTATUS={serving}"));
    while let Signal::Reload = signals.next().await {
        tracing::warn!("SIGHUP: a satellite reloads nothing; restart it to apply a change");
    }
    notifier.send_or_log("STOPPING=1\nSTATUS=shutting down");
    satellite.shutdown().await
}

/// SIGHUP: re-reads the config file (flags still override it), and applies what can
/// change live; a bad file changes nothing. Returns the changed keys that need a
/// restart.
fn reload_config(
    node: &Node,
    source: &ConfigSource,
    log: &mut LogFilter,
) -> anyhow::Result<Vec<&'static str>> {
    match &source.file {
        Some(path) => tracing::info!(file = %path.display(), "SIGHUP: reloading the configuration"),
        None => tracing::info!("SIGHUP: no --config file; re-reading the defaults"),
    }
    let next = source.load()?;
    let restart = node.reload(&next);
    log.reload(next.log.as_deref());
    Ok(restart)
}

/// Where the configuration comes from, kept to read it again on SIGHUP.
struct ConfigSource {
    file: Option<PathBuf>,
    overrides: Overrides,
}

impl ConfigSource {
    fn load(&self) -> anyhow::Result<Config> {
        let raw = match &self.file {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        Ok(raw.resolve(self.overrides.clone())?)
    }
}

/// The log filter in force and who set it. Precedence: `RUST_LOG` > `--log` > the
/// config file's `log` > [`DEFAULT_LOG`]; only the file's value changes on reload.
struct LogFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` or `--log` when one of them set the filter.
    pinned_by: Option<&'static str>,
    /// The filter text in force.
    current: String,
}

/// Info, but openraft's heartbeat worker only on errors: it warns at every heartbeat (20 a
/// second) for each peer that is down, which the replication warnings, `cluster status` and
/// `outpost_raft_last_contact_seconds` already report.
// hickory-server (the DoT/DoH/DoQ listeners) logs every request at info; iroh-docs every
// sync of an export at info, and at warn a reader that closes first (every poll), which
// the readers' own status reports better.
const DEFAULT_LOG: &str = "info,openraft::core::heartbeat=error,hickory_server::server=warn,iroh_docs=error,iroh_gossip=warn";

impl LogFilter {
    fn install(flag: Option<String>, file: Option<&str>) -> anyhow::Result<LogFilter> {
        let from_env = std::env::var("RUST_LOG")
            .ok()
            .filter(|text| !text.is_empty());
        let (pinned_by, text) = match (from_env, flag) {
            (Some(text), _) => (Some("RUST_LOG"), text),
            (None, Some(text)) => (Some("--log"), text),
            (None, None) => (None, file.unwrap_or(DEFAULT_LOG).to_string()),
        };
        let filter = EnvFilter::try_new(&text).with_context(|| {
            format!(
                "bad log filter {text:?} in {} (use a level such as info, or info,outpost_appliance=debug)",
                pinned_by.unwrap_or("the config file's log")
            )
        })?;
        let (filter, handle) = reload::Layer::new(filter);
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init();
        Ok(LogFilter {
            handle,
            pinned_by,
            current: text,
        })
    }

    /// Applies the config file's `log` (validated with the rest of the file), unless
    /// pinned. A filter that cannot be applied is logged; the old one stays.
    fn reload(&mut self, file: Option<&str>) {
        let wanted = file.unwrap_or(DEFAULT_LOG);
        if wanted == self.current {
            return;
        }
        if let Some(pinned_by) = self.pinned_by {
            if file.is_some() {
                tracing::info!(
                    filter = %self.current,
                    "the config file's log is not applied: {pinned_by} sets the filter"
                );
            }
            return;
        }
        let applied = EnvFilter::try_new(wanted)
            .map_err(|error| error.to_string())
            .and_then(|filter| {
                self.handle
                    .reload(filter)
                    .map_err(|error| error.to_string())
            });
        match applied {
            Ok(()) => {
                tracing::info!(from = %self.current, to = %wanted, "log filter changed");
                self.current = wanted.to_string();
            }
            Err(error) => {
                tracing::warn!(%error, filter = %wanted, "cannot change the log filter; the old one stays");
            }
        }
    }
}

/// What a signal asks for.
enum Signal {
    Reload,
    Stop,
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        let listen = |kind, name| signal(kind).with_context(|| format!("cannot listen for {name}"));
        Ok(Signals {
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
            hangup: listen(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.terminate.recv() => Signal::Stop,
            _ = self.interrupt.recv() => Signal::Stop,
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

/// `text` on one line, for a `STATUS=` notification (the protocol is line-based; TOML
/// errors quote the offending line below the message).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
