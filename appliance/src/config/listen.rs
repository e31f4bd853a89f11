//! The admin and sync listeners: addresses, TLS, and the refusal to serve secrets in the
//! clear off loopback unless the operator said so (`insecure_plaintext`).

use std::net::SocketAddr;

use super::{ConfigError, DEFAULT_SYNC, RawSync, SyncConfig, TlsFiles, parse_addr};
use crate::store::DEFAULT_HISTORY_ENTRIES;

/// Most change history a node keeps; each entry holds what one write changed, so the
/// window's disk cost is about that many writes.
const MAX_HISTORY_ENTRIES: u64 = 100_000_000;

/// The admin API has no TLS: off loopback, only with `admin.insecure_plaintext = true`.
pub(super) fn check_admin_plaintext(
    listen: SocketAddr,
    insecure_plaintext: bool,
) -> Result<(), ConfigError> {
    if listen.ip().is_loopback() || insecure_plaintext {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key: "admin.listen",
        value: listen.to_string(),
        problem: "is not a loopback address, and the admin API has no TLS: its bearer token would cross the network in the clear (keep it on loopback and reach it over SSH, or set admin.insecure_plaintext = true)".to_string(),
    })
}

pub(super) fn resolve_sync(
    raw: RawSync,
    listen: Option<String>,
) -> Result<SyncConfig, ConfigError> {
    let listen = parse_addr("sync.listen", listen.or(raw.listen), DEFAULT_SYNC)?;
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(ConfigError::Missing {
                key: "sync.tls_key",
                problem: format!(
                    "sync.tls_cert is {} (set both for wss://, or neither for ws://)",
                    cert.display()
                ),
            });
        }
        (None, Some(key)) => {
            return Err(ConfigError::Missing {
                key: "sync.tls_cert",
                problem: format!(
                    "sync.tls_key is {} (set both for wss://, or neither for ws://)",
                    key.display()
                ),
            });
        }
    };
    let history_entries = raw.history_entries.unwrap_or(DEFAULT_HISTORY_ENTRIES);
    if history_entries > MAX_HISTORY_ENTRIES {
        return Err(ConfigError::Invalid {
            key: "sync.history_entries",
            value: history_entries.to_string(),
            problem: format!("is too large (at most {MAX_HISTORY_ENTRIES})"),
        });
    }
    if tls.is_none() && !listen.ip().is_loopback() && !raw.insecure_plaintext.unwrap_or(false) {
        return Err(ConfigError::Invalid {
            key: "sync.listen",
            value: listen.to_string(),
            problem: "is not a loopback address, and the endpoint has no TLS: Lite tokens would cross the network in the clear (set sync.tls_cert and sync.tls_key for wss://, or sync.insecure_plaintext = true)".to_string(),
        });
    }
    Ok(SyncConfig {
        listen,
        tls,
        history_entries,
    })
}
