//! `[[sources]]`: record sources this node watches (an `/etc/hosts`-style file, dnsmasq's
//! or Kea's leases), each feeding the names under a zone. Applied live on a reload.

use std::path::PathBuf;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::ConfigError;
use crate::sources::{SourceConfig, SourceKind};

/// Most `[[sources]]` entries.
pub const MAX_SOURCES: usize = 16;
/// TTL of a source's records unless it says.
pub const DEFAULT_SOURCE_TTL: u32 = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Unique: the source owns the records it put under this name.
    pub name: String,
    /// `hosts`, `dnsmasq` or `kea`.
    pub kind: String,
    pub path: PathBuf,
    /// Bare host names go under it; names outside it are left out.
    pub zone: String,
    pub ttl: Option<u32>,
    /// Also PTR records, in the reverse zones served here (default true).
    pub reverse: Option<bool>,
}

pub fn resolve(raw: Vec<RawSource>) -> Result<Vec<SourceConfig>, ConfigError> {
    let invalid = |key: &'static str, value: &str, problem: &str| ConfigError::Invalid {
        key,
        value: value.to_string(),
        problem: problem.to_string(),
    };
    if raw.len() > MAX_SOURCES {
        return Err(invalid(
            "sources",
            "",
            &format!("has more than {MAX_SOURCES} entries"),
        ));
    }
    let mut sources: Vec<SourceConfig> = Vec::with_capacity(raw.len());
    for source in raw {
        let name_ok = !source.name.is_empty()
            && source.name.len() <= outpost_core::state::MAX_SOURCE_NAME
            && !sources.iter().any(|other| other.name == source.name);
        if !name_ok {
            return Err(invalid(
                "sources.name",
                &source.name,
                "must be 1 to 64 characters and unique",
            ));
        }
        let kind = match source.kind.as_str() {
            "hosts" => SourceKind::Hosts,
            "dnsmasq" => SourceKind::Dnsmasq,
            "kea" => SourceKind::Kea,
            other => {
                return Err(invalid(
                    "sources.kind",
                    other,
                    "is not hosts, dnsmasq or kea",
                ));
            }
        };
        let zone = Name::from_ascii(&source.zone)
            .ok()
            .filter(Name::is_fqdn)
            .map(|zone| zone.to_lowercase())
            .ok_or_else(|| {
                invalid(
                    "sources.zone",
                    &source.zone,
                    "is not an absolute domain name (end it with a dot)",
                )
            })?;
        sources.push(SourceConfig {
            name: source.name,
            kind,
            path: source.path,
            zone,
            ttl: source.ttl.unwrap_or(DEFAULT_SOURCE_TTL),
            reverse: source.reverse.unwrap_or(true),
        });
    }
    Ok(sources)
}
