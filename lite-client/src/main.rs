//! `outpost-lite`: the Lite client daemon (`run`) and its status report (`status`).
//! Parses arguments, sets up tracing, runs, and maps signals to a shutdown.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use outpost_core::report::Report;
use outpost_lite::config::{DEFAULT_DATA_DIR, RunOptions, is_plaintext_off_loopback};
use outpost_lite::lite::LiteClient;
use outpost_lite::resolver::{self, Os};
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
    Run(Box<RunArgs>),
    /// Show the running client's sync state.
    Status {
        /// Print the status file's JSON (with "running" added).
        #[arg(long)]
        json: bool,
        /// Data directory of the client.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Make this machine's resolver send the replica's zones, and only those, to the
    /// client (systemd-resolved, /etc/resolver, NRPT).
    Resolver {
        #[command(subcommand)]
        action: ResolverAction,
    },
}

#[derive(Subcommand, Debug)]
enum ResolverAction {
    /// Write the configuration; the running client keeps it in step with its zones.
    Install(ResolverArgs),
    /// Remove what install wrote.
    Uninstall(ResolverArgs),
}

#[derive(clap::Args, Debug)]
struct ResolverArgs {
    /// Data directory of the client (its status.json names the zones and the address).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Print what would be written and run; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The system to configure (default: this one; another only with --dry-run).
    #[arg(long, value_enum)]
    os: Option<Os>,
    /// Prefix of every path written (default /), for images and tests.
    #[arg(long, default_value = "/")]
    root: PathBuf,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Appliance sync URL, e.g. ws://10.0.0.2:8054 or wss://… (repeatable; tried in turn).
    #[arg(long = "appliance", required_unless_present = "docs")]
    appliances: Vec<String>,
    /// Also (or only) follow an iroh-docs export: its read-only ticket from `outpost
    /// export create` (repeatable, tickets of one export from several nodes). Any peer
    /// that holds it can serve it, other Lite clients included.
    #[arg(long = "docs", value_name = "TICKET")]
    docs: Vec<String>,
    /// A peer that holds the export, ENDPOINT_ID@IP:PORT (another Lite client's
    /// `docs.endpoint` in its status; repeatable).
    #[arg(long = "docs-peer", value_name = "PEER", requires = "docs")]
    docs_peers: Vec<String>,
    /// The docs endpoint's address, IP:PORT (QUIC over UDP; default 0.0.0.0:7470):
    /// other clients fetch the export from it.
    #[arg(long, value_name = "ADDR", requires = "docs")]
    docs_listen: Option<String>,
    /// Lite token from `outpost lite-token create`. Give it exactly one way: this
    /// flag, --token-file, or the OUTPOST_LITE_TOKEN environment variable.
    #[arg(long)]
    token: Option<String>,
    /// File holding the Lite token (a trailing newline is ignored), e.g.
    /// $CREDENTIALS_DIRECTORY/token under systemd: unlike argv, not visible to
    /// other users.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// DNS address, UDP and TCP (default 127.0.0.1:5354).
    #[arg(long)]
    dns: Option<String>,
    /// The status page (state, zones, recent queries, /metrics), on a loopback
    /// IP:PORT (default 127.0.0.1:5380), or off.
    #[arg(long, value_name = "ADDR")]
    page: Option<String>,
    /// Data directory for the replica and status.json (default ./outpost-lite-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Upstream resolver for names outside the replica: IP, IP:PORT, tcp://IP:PORT,
    /// tls://IP:PORT#NAME or https://HOST/dns-query (repeatable; default: the
    /// nameservers of /etc/resolv.conf).
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// For tls:// and https:// upstreams: PEM file of CA certificates to trust besides
    /// the system's.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// For wss://: SHA-256 fingerprint of the appliance's certificate (the appliance
    /// logs it at start; `openssl x509 -noout -fingerprint -sha256 -in cert.pem`).
    #[arg(long)]
    pin: Option<String>,
    /// For wss://: PEM file of CA certificates that sign the appliance's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// How long a query-policy plugin's decide may run before it is cut off, in
    /// milliseconds (1 to 1000; default 2).
    #[arg(long, value_name = "MS")]
    policy_deadline_ms: Option<u64>,
    /// Allow ws:// (no TLS) to an appliance that is not on this machine: the token
    /// then crosses the network in the clear.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Log filter, e.g. info or outpost_lite=debug (RUST_LOG also works). By default
    /// iroh-docs, which logs every sync of an export, is kept to errors.
    #[arg(long, default_value = "info,iroh_docs=error,iroh_gossip=warn")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args).map(|()| ExitCode::SUCCESS),
        Command::Status { json, data_dir } => show_status(json, &data_dir),
        Command::Resolver { action } => resolver(action).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", Report(&*error));
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
    // Only the WebSocket path needs a token; an export's ticket is its own credential.
    let token_given = args.token.is_some()
        || args.token_file.is_some()
        || std::env::var(TOKEN_ENV).is_ok_and(|value| !value.is_empty());
    let token = if args.appliances.is_empty() && !token_given {
        String::new()
    } else {
        read_token(
            args.token,
            args.token_file.as_deref(),
            std::env::var(TOKEN_ENV).ok(),
        )?
    };
    let config = RunOptions {
        appliances: args.appliances,
        token,
        dns: args.dns,
        data_dir: args.data_dir,
        upstreams: args.upstreams,
        upstream_ca: args.upstream_ca,
        pin: args.pin,
        ca: args.ca,
        policy_deadline_ms: args.policy_deadline_ms,
        insecure_plaintext: args.insecure_plaintext,
        page: args.page,
        docs: args.docs,
        docs_peers: args.docs_peers,
        docs_listen: args.docs_listen,
    }
    .resolve()?;
    for url in config
        .appliances
        .iter()
        .filter(|url| is_plaintext_off_loopback(url))
    {
        tracing::warn!(%url, "syncing over ws:// without TLS (--insecure-plaintext): the token crosses the network in the clear");
    }
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

/// The environment variable that may carry the token instead of a flag.
const TOKEN_ENV: &str = "OUTPOST_LITE_TOKEN";

/// The token from exactly one of `--token`, `--token-file` and [`TOKEN_ENV`] (an
/// empty variable counts as unset).
fn read_token(
    flag: Option<String>,
    file: Option<&Path>,
    env: Option<String>,
) -> anyhow::Result<String> {
    let env = env.filter(|value| !value.is_empty());
    let given: Vec<&str> = [
        flag.as_ref().map(|_| "--token"),
        file.map(|_| "--token-file"),
        env.as_ref().map(|_| TOKEN_ENV),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        anyhow::bail!(
            "the Lite token is given {} ways ({}): use exactly one of --token, --token-file and {TOKEN_ENV}",
            given.len(),
            given.join(", ")
        );
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim_end_matches(['\n', '\r']);
        if token.trim().is_empty() {
            anyhow::bail!(
                "the token file {} is empty (put the token `outpost lite-token create` printed in it)",
                path.display()
            );
        }
        return Ok(token.to_string());
    }
    flag.or(env).with_context(|| {
        format!(
            "no Lite token: pass --token TOKEN or --token-file FILE, or set {TOKEN_ENV} (`outpost lite-token create` prints one)"
        )
    })
}

/// Prints the status; exits 0 when the client runs, 1 when it does not.
fn resolver(action: ResolverAction) -> anyhow::Result<()> {
    let (install, args) = match action {
        ResolverAction::Install(args) => (true, args),
        ResolverAction::Uninstall(args) => (false, args),
    };
    let os = args.os.unwrap_or_else(Os::current);
    if os != Os::current() && !args.dry_run {
        anyhow::bail!(
            "--os {os:?} is another system than this one: add --dry-run to see what would be done there"
        );
    }
    let previous = resolver::read_installed(&args.data_dir);
    let (plan, root) = if install {
        let status = status::read_status_file(&args.data_dir)?;
        let dns = status
            .dns
            .parse()
            .context("status.json names no DNS address")?;
        let target = (os, args.root.as_path(), dns);
        let plan = resolver::plan_reinstall(previous.as_ref(), target, &status.zone_names)?;
        if !args.dry_run {
            let run_commands = runs_commands(&args.root);
            let zones = &status.zone_names;
            resolver::reinstall(
                &args.data_dir,
                previous.as_ref(),
                target,
                zones,
                run_commands,
            )?;
        }
        (plan, args.root)
    } else {
        let Some(previous) = previous else {
            println!(
                "nothing installed (no {} in {})",
                resolver::INSTALLED_FILE,
                args.data_dir.display()
            );
            return Ok(());
        };
        let plan = resolver::plan_uninstall(&previous);
        if !args.dry_run {
            resolver::apply(&plan, runs_commands(&previous.root))?;
            resolver::write_installed(&args.data_dir, None)?;
        }
        (plan, previous.root)
    };
    print!("{}", resolver::describe(&plan));
    if !runs_commands(&root) && !plan.commands.is_empty() {
        println!(
            "(the commands were not run: --root is not /, so this machine's resolver is not the one configured)"
        );
    }
    if install && os == Os::Linux {
        println!(
            "note: systemd-resolved also asks a DNS= server of resolved.conf for names outside its ~domains when no other server matches; run outpost-lite with --upstream set to the network's resolver, not 127.0.0.53, or such names loop"
        );
    }
    if !args.dry_run {
        println!("{}", if install { "installed" } else { "uninstalled" });
    }
    Ok(())
}

/// Commands reload this machine's resolver: only when its own files were written.
fn runs_commands(root: &Path) -> bool {
    root == Path::new("/")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_exactly_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "alice:3f9c\n").unwrap();

        assert_eq!(read_token(Some("a:1".into()), None, None).unwrap(), "a:1");
        assert_eq!(read_token(None, None, Some("a:2".into())).unwrap(), "a:2");
        assert_eq!(
            read_token(None, Some(&file), None).unwrap(),
            "alice:3f9c",
            "the trailing newline is trimmed"
        );
        assert_eq!(
            read_token(None, Some(&file), Some(String::new())).unwrap(),
            "alice:3f9c",
            "an empty variable is unset"
        );

        let err = read_token(Some("a:1".into()), Some(&file), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Lite token is given 2 ways (--token, --token-file): use exactly one of --token, --token-file and OUTPOST_LITE_TOKEN"
        );
        let err = read_token(Some("a:1".into()), None, Some("a:2".into())).unwrap_err();
        assert!(
            err.to_string().contains("(--token, OUTPOST_LITE_TOKEN)"),
            "{err}"
        );
        let err = read_token(None, None, None).unwrap_err();
        assert!(
            err.to_string().starts_with("no Lite token: pass --token"),
            "{err}"
        );

        let missing = dir.path().join("missing");
        let err = read_token(None, Some(&missing), None).unwrap_err();
        assert!(
            format!("{err:#}")
                .starts_with(&format!("cannot read the token file {}", missing.display())),
            "{err:#}"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = read_token(None, Some(&file), None).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
