//! `[query_log]`: what the node's in-memory query log keeps (`outpost_dns::querylog`).

use outpost_dns::querylog::{self, Mode, Settings};
use serde::Deserialize;

use super::ConfigError;

/// `[query_log]`, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueryLog {
    /// `all` (default), `blocked-or-failed`, or `off`.
    pub mode: Option<String>,
    /// Recent queries kept in memory (default 10000).
    pub capacity: Option<usize>,
    /// Keep clients' addresses without their last octet (IPv4) or last 80 bits (IPv6).
    pub anonymize_clients: Option<bool>,
}

/// The `[query_log]` table: a known mode, a capacity of 1 to
/// [`querylog::MAX_CAPACITY`].
pub(super) fn resolve(raw: RawQueryLog) -> Result<Settings, ConfigError> {
    let defaults = Settings::default();
    let mode = match raw.mode.as_deref() {
        None | Some("all") => Mode::All,
        Some("blocked-or-failed") => Mode::BlockedOrFailed,
        Some("off") => Mode::Off,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: "query_log.mode",
                value: other.to_owned(),
                problem: "is not a mode (all, blocked-or-failed or off)".to_owned(),
            });
        }
    };
    let capacity = raw.capacity.unwrap_or(defaults.capacity);
    if !(1..=querylog::MAX_CAPACITY).contains(&capacity) {
        return Err(ConfigError::Invalid {
            key: "query_log.capacity",
            value: capacity.to_string(),
            problem: format!("is out of range (1 to {})", querylog::MAX_CAPACITY),
        });
    }
    Ok(Settings {
        mode,
        capacity,
        anonymize_clients: raw.anonymize_clients.unwrap_or(defaults.anonymize_clients),
    })
}
