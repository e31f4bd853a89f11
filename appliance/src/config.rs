//! Configuration in two stages: [`RawConfig`] is what the TOML file and the flags
//! say (unknown keys refused), [`Config`] is the validated, typed result the daemon
//! runs on. Precedence: defaults < file < flags.
//!
//! A running node re-reads its file on SIGHUP: [`Config::restart_required`] names the
//! keys a reload cannot apply (the listeners, `[cluster]`, `[plugins]`, ...); the rest
//! (who may recurse, `[forward]`, `log`) is applied live.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use forward::RawForward;
use ipnet::IpNet;
use outpost_dns::forward::ForwardConfig;
use outpost_dns::plugin_runtime::PluginDeadlines;
use outpost_dns::rate_limit::RateLimit;
use outpost_dns::server::{MAX_UDP_WORKERS, default_udp_workers};
use outpost_dns::transfer::TransferRules;
use serde::Deserialize;

use crate::store::{JoinTicket, RaftTiming, Tuning};

/// Defaults of a bare `outpost serve`: everything on loopback, high ports.
mod encrypted;
pub mod forward;
mod listen;
pub mod query_log;
mod rate_limit;
mod reload;
mod satellite;
pub mod sources;
pub mod transfer;

pub use encrypted::EncryptedDns;
use encrypted::resolve_encrypted;
use listen::{check_admin_plaintext, resolve_sync};
pub use rate_limit::RawRateLimit;
use rate_limit::resolve_rate_limit;
pub use satellite::{RawExport, RawSatellite, SatelliteConfig};
use satellite::{check_membership, resolve_satellite};
#[cfg(test)]
mod tests;

pub const DEFAULT_DATA_DIR: &str = "./outpost-data";
pub const DEFAULT_DNS: &str = "127.0.0.1:5353";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8053";
pub const DEFAULT_SYNC: &str = "127.0.0.1:8054";
/// Per-upstream wait before trying the next one.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 1500;
/// Answer cache capacity in entries (one entry per name, type and class).
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// How long past expiry an answer may be served when every upstream fails
/// (RFC 8767 suggests one to three days).
pub const DEFAULT_SERVE_STALE_SECS: u64 = 86_400;
/// Networks allowed to recurse by default: loopback and private ranges. Never
/// everyone: an open resolver is an amplifier.
const DEFAULT_RECURSION_NETWORKS: [&str; 7] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// The config file as written, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    /// Create the `example.internal.` zone on first start.
    pub example_zone: Option<bool>,
    /// Start even when the effective user is root (`--allow-root` does the same).
    pub allow_root: Option<bool>,
    /// Log filter (`info`, `info,outpost_appliance=debug`); `--log` and `RUST_LOG`
    /// override it.
    pub log: Option<String>,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub admin: RawListen,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub forward: RawForward,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub plugins: RawPlugins,
    /// `[transfer]`: TSIG keys, and the secondaries of our zones.
    #[serde(default)]
    pub transfer: transfer::RawTransfer,
    /// `[[sources]]`: hosts and lease files this node feeds into zones.
    #[serde(default)]
    pub sources: Vec<sources::RawSource>,
    /// `[query_log]`: what the in-memory query log keeps.
    #[serde(default)]
    pub query_log: query_log::RawQueryLog,
    /// `[export]`: the iroh-docs export endpoint.
    #[serde(default)]
    pub export: RawExport,
    /// `[satellite]`: run as a satellite of an export instead of a cluster member.
    #[serde(default)]
    pub satellite: RawSatellite,
}

/// `[plugins]`: how long a WebAssembly plugin's call may run before it is cut off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    /// A query-policy `decide` (default 2; the query waits for it).
    pub policy_deadline_ms: Option<u64>,
    /// A record-transform `transform` (default 2000; the write waits for it).
    pub transform_deadline_ms: Option<u64>,
}

/// `[cluster]`: Raft between appliances.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `IP:PORT` of the node's Raft endpoint (iroh, QUIC over UDP), the address peers dial;
    /// unset, the node runs alone.
    pub raft: Option<String>,
    /// A file holding a join ticket (`outpost cluster invite`): a node whose data directory is
    /// not in a cluster yet joins the one the ticket names. Ignored once the node is a member.
    pub join_file: Option<PathBuf>,
    /// How long a write waits for its commit before failing (a node cut off from a quorum).
    pub commit_timeout_ms: Option<u64>,
    /// Entries applied between two snapshots.
    pub snapshot_every_entries: Option<u64>,
    /// Entries already in a snapshot kept in the log for followers slightly behind.
    pub log_entries_kept: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `IP:PORT`, or a list of them (several interfaces, IPv4 and IPv6).
    pub listen: Option<OneOrMany>,
    /// UDP worker threads, each with its own socket (default: one per core).
    pub udp_workers: Option<usize>,
    /// Networks whose clients may recurse (CIDR).
    pub allow_recursion: Option<Vec<String>>,
    /// Response rate limiting over UDP; off without this table.
    pub rate_limit: Option<RawRateLimit>,
    /// ANY over TCP gets every RRset of the name (default false: one, as over UDP).
    pub full_any_over_tcp: Option<bool>,
    /// DNS over TLS (RFC 7858) on `IP:PORT`; off when absent.
    pub tls_listen: Option<String>,
    /// DNS over HTTPS (RFC 8484) on `IP:PORT`, path `/dns-query`; off when absent.
    pub https_listen: Option<String>,
    /// DNS over QUIC (RFC 9250) on `IP:PORT` (UDP); off when absent.
    pub quic_listen: Option<String>,
    /// PEM certificate chain (leaf first) of the encrypted listeners; without it (and
    /// `tls_key`), a self-signed one is made in the data directory.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub listen: Option<String>,
    /// Serve the admin API without TLS on an address other than loopback (it has no
    /// TLS: its bearer token then crosses the network in the clear).
    pub insecure_plaintext: Option<bool>,
}

/// `[sync]`: the Lite sync WebSocket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub listen: Option<String>,
    /// PEM certificate chain (leaf first); with `tls_key`, the listener speaks wss://.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Log indexes of change history kept for Lite clients to resume from.
    pub history_entries: Option<u64>,
    /// Serve ws:// (no TLS) on an address other than loopback: Lite tokens then cross
    /// the network in the clear.
    pub insecure_plaintext: Option<bool>,
}

/// A key that takes one value or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Flag values, which override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub dns: Option<String>,
    pub admin: Option<String>,
    pub sync: Option<String>,
    pub raft: Option<String>,
    /// `--join`: the ticket itself.
    pub join: Option<String>,
    /// `--join-file`: a file holding the ticket (wins over `cluster.join_file`).
    pub join_file: Option<PathBuf>,
    /// `--export-listen`.
    pub export: Option<String>,
    /// `--satellite`: the ticket itself (wins over `satellite.ticket_file`).
    pub satellite: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub example_zone: bool,
    pub allow_root: bool,
    /// The file's log filter, already checked to parse; `None` when not set.
    pub log: Option<String>,
    /// Every address DNS is served on (UDP and TCP), at least one.
    pub dns: Vec<SocketAddr>,
    /// UDP worker threads per address, each with its own socket.
    pub udp_workers: NonZeroUsize,
    pub admin: SocketAddr,
    pub sync: SyncConfig,
    pub recursion_networks: Vec<IpNet>,
    /// Response rate limiting over UDP; `None`: off.
    pub rate_limit: Option<RateLimit>,
    /// ANY over TCP gets every RRset of the name.
    pub full_any_over_tcp: bool,
    /// DoT, DoH and DoQ listeners and their certificate.
    pub encrypted: EncryptedDns,
    pub forward: ForwardConfig,
    /// Where the Raft endpoint listens, and what peers dial (port 0: any free port, named
    /// in `addresses.json`); `None`: no Raft endpoint, the node runs alone.
    pub raft: Option<SocketAddr>,
    /// The ticket to join a cluster with, when this node is not a member yet (needs `raft`).
    pub join: Option<JoinTicket>,
    /// How long a write waits for its commit.
    pub commit_timeout: Duration,
    /// When snapshots are built and how much log stays behind them.
    pub snapshots: Tuning,
    /// How long a plugin's call may run, by hook.
    pub plugins: PluginDeadlines,
    /// Who may transfer our zones, with which keys, and where NOTIFY goes.
    pub transfer: TransferRules,
    /// The record sources this node watches.
    pub sources: Vec<crate::sources::SourceConfig>,
    /// What the in-memory query log keeps.
    pub query_log: outpost_dns::querylog::Settings,
    /// Where the export endpoint listens, and what export tickets name; `None`: off (on
    /// a satellite: every interface, a free port).
    pub export_listen: Option<SocketAddr>,
    /// Run as a satellite of this export instead of a cluster member.
    pub satellite: Option<SatelliteConfig>,
}

/// The validated `[sync]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub listen: SocketAddr,
    /// Certificate and key files; `None` serves plain ws:// (loopback and tests).
    pub tls: Option<TlsFiles>,
    /// Change history kept for resuming clients; a client further behind takes a
    /// snapshot. 0 keeps none: every client that missed a change takes a snapshot.
    pub history_entries: u64,
}

/// PEM files of the sync listener's certificate and key (read when the node starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {value:?} {problem}")]
    Invalid {
        key: &'static str,
        value: String,
        problem: String,
    },
    /// A key that only makes sense with another one.
    #[error("{key} is missing while {problem}")]
    Missing { key: &'static str, problem: String },
}

impl RawConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Applies flags and defaults, and checks every value.
    pub fn resolve(self, overrides: Overrides) -> Result<Config, ConfigError> {
        let data_dir = overrides
            .data_dir
            .or(self.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let dns = resolve_dns_listen(overrides.dns.map(OneOrMany::One).or(self.dns.listen))?;
        let udp_workers = resolve_udp_workers(self.dns.udp_workers)?;
        let admin = parse_addr(
            "admin.listen",
            overrides.admin.or(self.admin.listen),
            DEFAULT_ADMIN,
        )?;
        check_admin_plaintext(admin, self.admin.insecure_plaintext.unwrap_or(false))?;
        let sync = resolve_sync(self.sync, overrides.sync)?;
        let raft = resolve_dialable("cluster.raft", overrides.raft.or(self.cluster.raft))?;
        let export_listen =
            resolve_dialable("export.listen", overrides.export.or(self.export.listen))?;
        let join = resolve_join(
            overrides.join,
            overrides.join_file.or(self.cluster.join_file),
        )?;
        let commit_timeout = resolve_commit_timeout(self.cluster.commit_timeout_ms)?;
        let snapshots = resolve_snapshots(
            self.cluster.snapshot_every_entries,
            self.cluster.log_entries_kept,
        )?;
        let satellite = resolve_satellite(overrides.satellite, self.satellite)?;
        check_membership(raft, join.as_ref(), satellite.as_ref())?;
        let recursion_networks = resolve_recursion(self.dns.allow_recursion)?;
        let rate_limit = self.dns.rate_limit.map(resolve_rate_limit).transpose()?;
        let encrypted = resolve_encrypted(
            self.dns.tls_listen,
            self.dns.https_listen,
            self.dns.quic_listen,
            self.dns.tls_cert,
            self.dns.tls_key,
        )?;
        let forward = forward::resolve(self.forward)?;
        let plugins = resolve_plugins(self.plugins)?;
        if let Some(filter) = &self.log {
            tracing_subscriber::EnvFilter::try_new(filter).map_err(|error| {
                ConfigError::Invalid {
                    key: "log",
                    value: filter.clone(),
                    problem: format!(
                        "is not a log filter ({error}; use a level such as info, or info,outpost_appliance=debug)"
                    ),
                }
            })?;
        }
        Ok(Config {
            data_dir,
            example_zone: self.example_zone.unwrap_or(true),
            allow_root: self.allow_root.unwrap_or(false),
            log: self.log,
            dns,
            udp_workers,
            admin,
            sync,
            recursion_networks,
            rate_limit,
            full_any_over_tcp: self.dns.full_any_over_tcp.unwrap_or(false),
            encrypted,
            raft,
            join,
            commit_timeout,
            snapshots,
            forward,
            plugins,
            transfer: transfer::resolve(self.transfer)?,
            sources: sources::resolve(self.sources)?,
            query_log: query_log::resolve(self.query_log)?,
            export_listen,
            satellite,
        })
    }
}

/// `cluster.snapshot_every_entries` and `cluster.log_entries_kept`.
fn resolve_snapshots(every: Option<u64>, kept: Option<u64>) -> Result<Tuning, ConfigError> {
    Ok(Tuning {
        snapshot_every_entries: positive(
            "cluster.snapshot_every_entries",
            every,
            Tuning::DEFAULT.snapshot_every_entries,
        )?,
        log_entries_kept_after_snapshot: kept
            .unwrap_or(Tuning::DEFAULT.log_entries_kept_after_snapshot),
    })
}

/// `dns.udp_workers`: 1 to [`MAX_UDP_WORKERS`], one per core by default.
fn resolve_udp_workers(workers: Option<usize>) -> Result<NonZeroUsize, ConfigError> {
    let Some(workers) = workers else {
        return Ok(default_udp_workers());
    };
    NonZeroUsize::new(workers)
        .filter(|workers| workers.get() <= MAX_UDP_WORKERS)
        .ok_or_else(|| ConfigError::Invalid {
            key: "dns.udp_workers",
            value: workers.to_string(),
            problem: format!("is out of range (1 to {MAX_UDP_WORKERS})"),
        })
}

/// `cluster.commit_timeout_ms`: 100 ms to 10 minutes, Raft's default otherwise.
fn resolve_commit_timeout(ms: Option<u64>) -> Result<Duration, ConfigError> {
    match ms {
        None => Ok(RaftTiming::DEFAULT.commit),
        Some(ms @ 100..=600_000) => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(ConfigError::Invalid {
            key: "cluster.commit_timeout_ms",
            value: ms.to_string(),
            problem: "is out of range (100 to 600000)".to_string(),
        }),
    }
}

/// The `[plugins]` section: each deadline within its range, the host's by default.
fn resolve_plugins(raw: RawPlugins) -> Result<PluginDeadlines, ConfigError> {
    let defaults = PluginDeadlines::default();
    let deadline =
        |key, value: Option<u64>, range: std::ops::RangeInclusive<u64>, default| match value {
            None => Ok(default),
            Some(ms) if range.contains(&ms) => Ok(Duration::from_millis(ms)),
            Some(ms) => Err(ConfigError::Invalid {
                key,
                value: ms.to_string(),
                problem: format!(
                    "is out of range ({} to {} milliseconds)",
                    range.start(),
                    range.end()
                ),
            }),
        };
    Ok(PluginDeadlines {
        policy: deadline(
            "plugins.policy_deadline_ms",
            raw.policy_deadline_ms,
            PluginDeadlines::POLICY_MS,
            defaults.policy,
        )?,
        transform: deadline(
            "plugins.transform_deadline_ms",
            raw.transform_deadline_ms,
            PluginDeadlines::TRANSFORM_MS,
            defaults.transform,
        )?,
    })
}

/// `dns.allow_recursion` as networks (default: loopback and the private ranges).
fn resolve_recursion(networks: Option<Vec<String>>) -> Result<Vec<IpNet>, ConfigError> {
    let networks = networks.unwrap_or_else(|| {
        DEFAULT_RECURSION_NETWORKS
            .iter()
            .map(|n| n.to_string())
            .collect()
    });
    networks
        .into_iter()
        .map(|text| {
            text.parse::<IpNet>().map_err(|_| ConfigError::Invalid {
                key: "dns.allow_recursion",
                value: text.clone(),
                problem: "is not a network (use CIDR, e.g. 10.0.0.0/8)".into(),
            })
        })
        .collect()
}

/// A count that must be at least 1.
fn positive(key: &'static str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::Invalid {
            key,
            value: "0".to_string(),
            problem: "must be at least 1".to_string(),
        }),
        Some(n) => Ok(n),
    }
}

/// The join ticket, from the flag or read from the file (a systemd credential, say).
fn resolve_join(
    ticket: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<JoinTicket>, ConfigError> {
    let (key, text) = match (ticket, file) {
        (Some(ticket), _) => ("--join", ticket),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            ("cluster.join_file", text)
        }
        (None, None) => return Ok(None),
    };
    text.parse()
        .map(Some)
        .map_err(|e: crate::store::TicketError| ConfigError::Invalid {
            key,
            value: abbreviate(text.trim()),
            problem: format!("is not a join ticket: {e}"),
        })
}

/// The start of a long value, for an error message (a ticket is a secret: show little of it).
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(24) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The Raft or export address: an `IP:PORT` peers can dial, so never an unspecified IP.
fn resolve_dialable(
    key: &'static str,
    value: Option<String>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = value else {
        return Ok(None);
    };
    let invalid = |problem: &str| ConfigError::Invalid {
        key,
        value: text.clone(),
        problem: problem.to_string(),
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| invalid("is not an address (use IP:PORT, e.g. 192.0.2.10:7400)"))?;
    if addr.ip().is_unspecified() {
        return Err(invalid(
            "is unspecified: give the address peers dial (e.g. 192.0.2.10:7400)",
        ));
    }
    Ok(Some(addr))
}

/// `dns.listen`: one address or several, each once.
fn resolve_dns_listen(value: Option<OneOrMany>) -> Result<Vec<SocketAddr>, ConfigError> {
    let texts = match value {
        None => vec![DEFAULT_DNS.to_string()],
        Some(OneOrMany::One(text)) => vec![text],
        Some(OneOrMany::Many(texts)) => texts,
    };
    if texts.is_empty() {
        return Err(ConfigError::Invalid {
            key: "dns.listen",
            value: "[]".into(),
            problem: "is empty (give at least one IP:PORT)".into(),
        });
    }
    let mut addrs = Vec::with_capacity(texts.len());
    for text in texts {
        let addr = parse_addr("dns.listen", Some(text.clone()), DEFAULT_DNS)?;
        if addrs.contains(&addr) {
            return Err(ConfigError::Invalid {
                key: "dns.listen",
                value: text,
                problem: "is listed twice".into(),
            });
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

pub(super) fn parse_addr(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_string());
    text.parse().map_err(|_| ConfigError::Invalid {
        key,
        value: text.clone(),
        problem: format!("is not an address (use IP:PORT, e.g. {default})"),
    })
}
