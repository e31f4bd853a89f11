//! The `[forward]` section: default upstreams, their TLS trust, timeouts and cache, and
//! `[[forward.zones]]`, domains forwarded to upstreams of their own (conditional
//! forwarding), each with its own cache.

use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use outpost_dns::forward::{
    ForwardConfig, ForwardZone, Upstream, UpstreamError, system_nameservers,
};
use serde::Deserialize;

use super::{
    ConfigError, DEFAULT_CACHE_ENTRIES, DEFAULT_SERVE_STALE_SECS, DEFAULT_UPSTREAM_TIMEOUT_MS,
};

/// Answer cache capacity of a `[[forward.zones]]` entry, in entries, unless it says.
pub const DEFAULT_ZONE_CACHE_ENTRIES: usize = 1_000;
/// Most `[[forward.zones]]` entries (each has a cache and connections of its own).
pub const MAX_FORWARD_ZONES: usize = 256;
/// Largest answer cache of one route, in entries.
const MAX_CACHE_ENTRIES: usize = 10_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// `IP:PORT`, `tcp://IP:PORT`, `tls://IP:PORT#NAME` or `https://HOST/PATH`;
    /// default: the nameservers of /etc/resolv.conf.
    pub upstreams: Option<Vec<String>>,
    /// PEM CA certificates DoT and DoH upstreams may chain to, besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    pub timeout_ms: Option<u64>,
    pub cache_entries: Option<usize>,
    pub serve_stale_secs: Option<u64>,
    /// `[[forward.zones]]`.
    #[serde(default)]
    pub zones: Vec<RawForwardZone>,
}

/// One `[[forward.zones]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardZone {
    pub name: String,
    pub upstreams: Vec<String>,
    pub cache_entries: Option<usize>,
    /// Default: the `[forward]` section's.
    pub serve_stale_secs: Option<u64>,
}

/// The `[forward]` section, checked (upstreams default to /etc/resolv.conf's).
pub fn resolve(raw: RawForward) -> Result<ForwardConfig, ConfigError> {
    let upstreams = raw
        .upstreams
        .unwrap_or_else(system_nameservers)
        .iter()
        .map(|text| parse_upstream("forward.upstreams", text))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS);
    if !(10..=30_000).contains(&timeout_ms) {
        return Err(ConfigError::Invalid {
            key: "forward.timeout_ms",
            value: timeout_ms.to_string(),
            problem: "is out of range (10 to 30000)".into(),
        });
    }
    let cache_entries = cache_entries(
        "forward.cache_entries",
        raw.cache_entries,
        DEFAULT_CACHE_ENTRIES,
    )?;
    let serve_stale = Duration::from_secs(raw.serve_stale_secs.unwrap_or(DEFAULT_SERVE_STALE_SECS));
    let zones = resolve_zones(raw.zones, serve_stale)?;
    let all_upstreams = upstreams
        .iter()
        .chain(zones.iter().flat_map(|zone| &zone.upstreams));
    let tls =
        ForwardConfig::tls_for(all_upstreams, raw.tls_ca_file.as_deref()).map_err(|error| {
            ConfigError::Invalid {
                key: "forward.tls_ca_file",
                value: raw
                    .tls_ca_file
                    .as_ref()
                    .map_or_else(String::new, |path| path.display().to_string()),
                problem: error.to_string(),
            }
        })?;
    Ok(ForwardConfig {
        upstreams,
        tls,
        timeout: Duration::from_millis(timeout_ms),
        cache_entries,
        serve_stale,
        zones,
    })
}

fn resolve_zones(
    raw: Vec<RawForwardZone>,
    default_stale: Duration,
) -> Result<Vec<ForwardZone>, ConfigError> {
    if raw.len() > MAX_FORWARD_ZONES {
        return Err(ConfigError::Invalid {
            key: "forward.zones",
            value: raw.len().to_string(),
            problem: format!("entries are too many (at most {MAX_FORWARD_ZONES})"),
        });
    }
    let mut zones: Vec<ForwardZone> = Vec::with_capacity(raw.len());
    for zone in raw {
        let name = Name::from_ascii(&zone.name)
            .ok()
            .filter(|name| name.is_fqdn() && !name.is_root())
            .ok_or_else(|| ConfigError::Invalid {
                key: "forward.zones.name",
                value: zone.name.clone(),
                problem: "is not an absolute domain name below the root (e.g. corp.example.)"
                    .into(),
            })?;
        if zones.iter().any(|seen| seen.name == name) {
            return Err(ConfigError::Invalid {
                key: "forward.zones.name",
                value: zone.name,
                problem: "is listed twice".into(),
            });
        }
        if zone.upstreams.is_empty() {
            return Err(ConfigError::Invalid {
                key: "forward.zones.upstreams",
                value: zone.name,
                problem: "is empty: a forwarded zone needs at least one upstream".into(),
            });
        }
        let upstreams = zone
            .upstreams
            .iter()
            .map(|text| parse_upstream("forward.zones.upstreams", text))
            .collect::<Result<Vec<_>, _>>()?;
        zones.push(ForwardZone {
            name,
            upstreams,
            cache_entries: cache_entries(
                "forward.zones.cache_entries",
                zone.cache_entries,
                DEFAULT_ZONE_CACHE_ENTRIES,
            )?,
            serve_stale: zone
                .serve_stale_secs
                .map_or(default_stale, Duration::from_secs),
        });
    }
    Ok(zones)
}

fn cache_entries(
    key: &'static str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    let entries = value.unwrap_or(default);
    if entries > MAX_CACHE_ENTRIES {
        return Err(ConfigError::Invalid {
            key,
            value: entries.to_string(),
            problem: format!("is too large (at most {MAX_CACHE_ENTRIES})"),
        });
    }
    Ok(entries)
}

fn parse_upstream(key: &'static str, text: &str) -> Result<Upstream, ConfigError> {
    text.parse()
        .map_err(|error: UpstreamError| ConfigError::Invalid {
            key,
            value: text.to_string(),
            problem: format!("is not an upstream: {}", error.problem),
        })
}
