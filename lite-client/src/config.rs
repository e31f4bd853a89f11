//! `outpost-lite run` configuration in two stages: [`RunOptions`] as typed on the
//! command line, resolved into a validated [`LiteConfig`].

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use outpost_dns::forward::{
    ForwardConfig, Upstream, UpstreamError, UpstreamTlsError, system_nameservers,
};
use outpost_dns::plugin_runtime::PluginDeadlines;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::docs::{DocsConfig, DocsConfigError};
use crate::page::DEFAULT_PAGE;
use crate::tls::{self, Trust, TrustError};

/// Default DNS address: loopback, beside the appliance's default 5353.
pub const DEFAULT_DNS: &str = "127.0.0.1:5354";
/// Default data directory, relative to where the client starts.
pub const DEFAULT_DATA_DIR: &str = "./outpost-lite-data";
/// Path of the sync endpoint, used when an appliance URL names none.
pub const SYNC_PATH: &str = "/v1/sync";
/// Per-upstream wait before the next one (as the appliance's default).
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// Forwarded answers cached (as the appliance's default).
const CACHE_ENTRIES: usize = 10_000;
/// How long past expiry a cached answer may be served when upstreams fail (RFC 8767).
const SERVE_STALE: Duration = Duration::from_secs(86_400);

/// The flags of `outpost-lite run`, unvalidated.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub appliances: Vec<String>,
    pub token: String,
    pub dns: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Empty: the nameservers of /etc/resolv.conf.
    pub upstreams: Vec<String>,
    /// PEM CA certificates for DoT and DoH upstreams, besides the system's.
    pub upstream_ca: Option<PathBuf>,
    /// SHA-256 fingerprint of a `wss://` appliance's certificate.
    pub pin: Option<String>,
    /// PEM CA certificates for `wss://` appliances.
    pub ca: Option<PathBuf>,
    /// How long a query-policy plugin's `decide` may run; `None`: the host's default.
    pub policy_deadline_ms: Option<u64>,
    /// Allow `ws://` (no TLS) to a host other than loopback: the token then crosses the
    /// network in the clear.
    pub insecure_plaintext: bool,
    /// The status page's address (loopback), or `off`; `None`: [`DEFAULT_PAGE`].
    pub page: Option<String>,
    /// `--docs`: export tickets (of one export).
    pub docs: Vec<String>,
    /// `--docs-peer`: more peers of the export, `ID@IP:PORT`.
    pub docs_peers: Vec<String>,
    /// `--docs-listen`: the docs endpoint's address.
    pub docs_listen: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct LiteConfig {
    /// WebSocket URLs of the sync endpoints, tried in rotation.
    pub appliances: Vec<String>,
    /// TLS for `wss://` URLs; `None` when every URL is `ws://`.
    pub tls: Option<Arc<ClientConfig>>,
    pub token: String,
    pub dns: SocketAddr,
    /// More DNS addresses (a satellite's `dns.listen` list); none on a laptop.
    pub dns_extra: Vec<SocketAddr>,
    /// UDP worker threads per DNS address: one on a laptop.
    pub udp_workers: NonZeroUsize,
    pub data_dir: PathBuf,
    pub forward: ForwardConfig,
    /// Who may have names outside the replica forwarded: loopback only.
    pub recursion_networks: Vec<IpNet>,
    /// How long a plugin's call may run (a Lite client runs query-policy plugins
    /// only: writes are transformed on the appliances).
    pub plugins: PluginDeadlines,
    /// Where the status page is served (loopback only); `None`: off.
    pub page: Option<SocketAddr>,
    /// What the query log keeps (a laptop: the defaults; a satellite: its `[query_log]`).
    pub query_log: outpost_dns::querylog::Settings,
    /// Response rate limiting (a laptop: none, its clients are its own; a satellite: its
    /// `[dns.rate_limit]`).
    pub rate_limit: Option<outpost_dns::rate_limit::RateLimit>,
    /// Every RRset for ANY over TCP (a satellite's `dns.full_any_over_tcp`).
    pub full_any_over_tcp: bool,
    /// The export followed over iroh-docs; `None`: the WebSocket path only.
    pub docs: Option<DocsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no appliance and no export given (use --appliance ws://HOST:PORT, repeatable, or --docs TICKET from `outpost export create`)"
    )]
    NoAppliance,
    #[error(transparent)]
    Docs(#[from] DocsConfigError),
    #[error("--appliance {url:?} {problem}")]
    Appliance { url: String, problem: String },
    #[error("the token is empty (pass the one `outpost lite-token create` printed with --token)")]
    NoToken,
    #[error("--dns {value:?} is not an address (use IP:PORT, e.g. {DEFAULT_DNS})")]
    Dns { value: String },
    #[error("--upstream {value:?} is not an upstream: {problem}")]
    Upstream {
        value: String,
        problem: &'static str,
    },
    #[error("--upstream-ca: {0}")]
    UpstreamTls(#[from] UpstreamTlsError),
    #[error(
        "{url} is wss:// but no trust is given: pass --pin FINGERPRINT (the SHA-256 the appliance logs at start) or --ca FILE"
    )]
    NoTrust { url: String },
    #[error("--pin and --ca are exclusive: a pinned certificate needs no CA")]
    PinAndCa,
    #[error(
        "--policy-deadline-ms {value} is out of range ({} to {} milliseconds)",
        PluginDeadlines::POLICY_MS.start(),
        PluginDeadlines::POLICY_MS.end()
    )]
    PolicyDeadline { value: u64 },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(
        "--page {value:?} is not a loopback address (the page shows this laptop's queries: use 127.0.0.1:PORT or [::1]:PORT, or off)"
    )]
    Page { value: String },
}

impl RunOptions {
    pub fn resolve(self) -> Result<LiteConfig, ConfigError> {
        let docs = crate::docs::resolve(&self.docs, &self.docs_peers, self.docs_listen.as_deref())?;
        if self.appliances.is_empty() && docs.is_none() {
            return Err(ConfigError::NoAppliance);
        }
        let appliances = self
            .appliances
            .iter()
            .map(|url| sync_url(url))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.insecure_plaintext
            && let Some(url) = appliances.iter().find(|url| is_plaintext_off_loopback(url))
        {
            return Err(ConfigError::Appliance {
                url: url.clone(),
                problem: "is ws:// to a host other than this machine: the token would cross the network in the clear (use wss:// with --pin or --ca, or pass --insecure-plaintext)".to_string(),
            });
        }
        let tls = resolve_tls(&appliances, self.pin.as_deref(), self.ca.as_ref())?;
        let token = self.token.trim().to_string();
        if token.is_empty() && !appliances.is_empty() {
            return Err(ConfigError::NoToken);
        }
        let dns_text = self.dns.unwrap_or_else(|| DEFAULT_DNS.to_string());
        let dns = dns_text
            .parse()
            .map_err(|_| ConfigError::Dns { value: dns_text })?;
        let upstreams = if self.upstreams.is_empty() {
            system_nameservers()
        } else {
            self.upstreams
        };
        let upstreams = upstreams
            .iter()
            .map(|text| parse_upstream(text))
            .collect::<Result<Vec<_>, _>>()?;
        let upstream_tls = ForwardConfig::tls_for(upstreams.iter(), self.upstream_ca.as_deref())?;
        let plugins = match self.policy_deadline_ms {
            None => PluginDeadlines::default(),
            Some(ms) if PluginDeadlines::POLICY_MS.contains(&ms) => PluginDeadlines {
                policy: Duration::from_millis(ms),
                ..PluginDeadlines::default()
            },
            Some(value) => return Err(ConfigError::PolicyDeadline { value }),
        };
        Ok(LiteConfig {
            appliances,
            tls,
            token,
            dns,
            dns_extra: Vec::new(),
            udp_workers: NonZeroUsize::MIN,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            forward: ForwardConfig {
                upstreams,
                timeout: UPSTREAM_TIMEOUT,
                cache_entries: CACHE_ENTRIES,
                serve_stale: SERVE_STALE,
                tls: upstream_tls,
                zones: Vec::new(),
            },
            recursion_networks: loopback_networks(),
            plugins,
            page: resolve_page(self.page)?,
            query_log: outpost_dns::querylog::Settings::default(),
            rate_limit: None,
            full_any_over_tcp: false,
            docs,
        })
    }
}

/// TLS for the `wss://` URLs among `appliances`, from `--pin` or `--ca`; `None` when
/// every URL is `ws://`.
fn resolve_tls(
    appliances: &[String],
    pin: Option<&str>,
    ca: Option<&PathBuf>,
) -> Result<Option<Arc<ClientConfig>>, ConfigError> {
    let trust = match (pin, ca) {
        (Some(_), Some(_)) => return Err(ConfigError::PinAndCa),
        (Some(pin), None) => Some(Trust::Pinned(tls::parse_pin(pin)?)),
        (None, Some(ca)) => Some(Trust::CaFile(ca.clone())),
        (None, None) => None,
    };
    match (
        appliances.iter().find(|url| url.starts_with("wss://")),
        trust,
    ) {
        (None, _) => Ok(None),
        (Some(url), None) => Err(ConfigError::NoTrust { url: url.clone() }),
        (Some(_), Some(trust)) => Ok(Some(tls::client_config(&trust)?)),
    }
}

/// `--page`: a loopback address, [`DEFAULT_PAGE`] when not given, or `off`.
fn resolve_page(page: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    let text = page.unwrap_or_else(|| DEFAULT_PAGE.to_string());
    if text == "off" {
        return Ok(None);
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Ok(Some(addr)),
        _ => Err(ConfigError::Page { value: text }),
    }
}

/// The sync endpoint of an appliance URL: `ws://HOST:PORT` (or `wss://`) gets the
/// path [`SYNC_PATH`]; a URL with a path keeps it.
pub fn sync_url(url: &str) -> Result<String, ConfigError> {
    let problem = |problem: &str| ConfigError::Appliance {
        url: url.to_string(),
        problem: problem.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| problem("is not a URL (use ws://HOST:PORT)"))?;
    let scheme = match uri.scheme_str() {
        Some(scheme @ ("ws" | "wss")) => scheme,
        _ => {
            return Err(problem(
                "must start with ws:// or wss:// (e.g. ws://127.0.0.1:8054)",
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(problem("names no host (use ws://HOST:PORT)"));
    };
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") | Some("/") => SYNC_PATH,
        Some(path) => path,
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Whether `url` (as [`sync_url`] wrote it) is `ws://` to a host that is not loopback:
/// a name other than `localhost`, or an address outside 127.0.0.0/8 and ::1.
pub fn is_plaintext_off_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("ws://") else {
        return false;
    };
    let Ok(uri) = format!("http://{rest}").parse::<Uri>() else {
        return true;
    };
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    !(host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

fn parse_upstream(text: &str) -> Result<Upstream, ConfigError> {
    text.parse()
        .map_err(|error: UpstreamError| ConfigError::Upstream {
            value: text.to_string(),
            problem: error.problem,
        })
}

/// 127.0.0.0/8 and ::1: forwarding is for this machine only, never an open resolver.
fn loopback_networks() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appliance_urls_get_the_sync_path() {
        assert_eq!(
            sync_url("ws://127.0.0.1:8054").unwrap(),
            "ws://127.0.0.1:8054/v1/sync"
        );
        assert_eq!(
            sync_url("ws://127.0.0.1:8054/").unwrap(),
            "ws://127.0.0.1:8054/v1/sync"
        );
        assert_eq!(
            sync_url("ws://lite.site:80/custom/sync").unwrap(),
            "ws://lite.site:80/custom/sync"
        );
        assert_eq!(
            sync_url("wss://site.example:8054").unwrap(),
            "wss://site.example:8054/v1/sync"
        );
        for bad in ["http://127.0.0.1:8054", "127.0.0.1:8054", "ws://"] {
            assert!(sync_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn options_resolve_with_loopback_only_recursion() {
        let config = RunOptions {
            appliances: vec!["ws://127.0.0.1:1".into()],
            token: " secret \n".into(),
            dns: Some("127.0.0.1:0".into()),
            data_dir: None,
            upstreams: vec!["127.0.0.1:5300".into(), "tcp://127.0.0.1:5301".into()],
            ..RunOptions::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.token, "secret");
        assert_eq!(config.forward.upstreams.len(), 2);
        assert!(matches!(config.forward.upstreams[1], Upstream::Tcp(_)));
        assert!(
            config
                .recursion_networks
                .iter()
                .all(|net| net.addr().is_loopback())
        );
        let no_token = RunOptions {
            appliances: vec!["ws://127.0.0.1:1".into()],
            ..RunOptions::default()
        };
        assert!(matches!(no_token.resolve(), Err(ConfigError::NoToken)));
    }

    #[test]
    fn ws_off_this_machine_is_refused_unless_asked_for() {
        let options = |url: &str, insecure_plaintext: bool| RunOptions {
            appliances: vec!["ws://127.0.0.1:1".into(), url.into()],
            token: "t".into(),
            upstreams: vec!["127.0.0.1:5300".into()],
            insecure_plaintext,
            ..RunOptions::default()
        };
        for url in [
            "ws://10.0.0.2:8054",
            "ws://dns1.site.internal:8054",
            "ws://[fd00::2]:8054",
        ] {
            let error = options(url, false).resolve().unwrap_err().to_string();
            assert!(
                error.contains("the token would cross the network in the clear")
                    && error.contains("--insecure-plaintext"),
                "{url}: {error}"
            );
            assert!(options(url, true).resolve().is_ok(), "{url}");
        }
        for url in [
            "ws://localhost:8054",
            "ws://[::1]:8054",
            "ws://127.0.0.2:8054",
        ] {
            assert!(options(url, false).resolve().is_ok(), "{url}");
        }
        // wss:// is never refused for being remote (it needs its trust instead).
        let error = options("wss://10.0.0.2:8054", false).resolve().unwrap_err();
        assert!(matches!(error, ConfigError::NoTrust { .. }), "{error}");
    }

    #[test]
    fn the_policy_deadline_is_the_hosts_unless_given_within_range() {
        let options = |ms: Option<u64>| RunOptions {
            appliances: vec!["ws://127.0.0.1:1".into()],
            token: "t".into(),
            upstreams: vec!["127.0.0.1:5300".into()],
            policy_deadline_ms: ms,
            ..RunOptions::default()
        };
        let config = options(None).resolve().unwrap();
        assert_eq!(config.plugins, PluginDeadlines::default());
        let config = options(Some(300)).resolve().unwrap();
        assert_eq!(config.plugins.policy, Duration::from_millis(300));
        let error = options(Some(0)).resolve().unwrap_err();
        assert_eq!(
            error.to_string(),
            "--policy-deadline-ms 0 is out of range (1 to 1000 milliseconds)"
        );
    }

    #[test]
    fn wss_needs_exactly_one_trust() {
        let options = |pin: Option<&str>, ca: Option<&str>| RunOptions {
            appliances: vec!["ws://127.0.0.1:1".into(), "wss://127.0.0.1:2".into()],
            token: "t".into(),
            pin: pin.map(String::from),
            ca: ca.map(PathBuf::from),
            upstreams: vec!["127.0.0.1".into()],
            ..RunOptions::default()
        };
        assert!(matches!(
            options(None, None).resolve(),
            Err(ConfigError::NoTrust { .. })
        ));
        assert!(matches!(
            options(Some(&"ab".repeat(32)), Some("ca.pem")).resolve(),
            Err(ConfigError::PinAndCa)
        ));
        assert!(matches!(
            options(Some("12:34"), None).resolve(),
            Err(ConfigError::Trust(TrustError::BadPin { .. }))
        ));
        let config = options(Some(&"ab".repeat(32)), None).resolve().unwrap();
        assert!(config.tls.is_some());
    }
}
