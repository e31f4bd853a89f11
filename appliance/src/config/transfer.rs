//! The `[transfer]` section: the TSIG keys this node knows (`[[transfer.keys]]`) and the
//! secondaries that may transfer our zones and are sent NOTIFY (`[[transfer.secondaries]]`).
//! Applied live on a reload.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use outpost_dns::transfer::tsig::TsigKeys;
use outpost_dns::transfer::{Secondary, TransferRules};
use serde::Deserialize;

use super::ConfigError;

/// Most `[[transfer.secondaries]]` entries, and most keys.
pub const MAX_SECONDARIES: usize = 64;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransfer {
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub secondaries: Vec<RawSecondary>,
}

/// One TSIG key, as BIND and Knot write it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    pub algorithm: Option<String>,
    /// The secret in base64, or `secret_file`, a file holding it (kept out of the config).
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
}

/// One secondary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecondary {
    /// Zones it may transfer and is notified of; every zone when absent.
    pub zones: Option<Vec<String>>,
    /// Addresses or networks it may transfer from.
    pub allow: Vec<String>,
    /// Where NOTIFY goes, `IP` or `IP:PORT` (port 53 by default).
    #[serde(default)]
    pub notify: Vec<String>,
    /// The name of a `[[transfer.keys]]` entry its transfers must be signed with.
    pub key: Option<String>,
}

/// The `[transfer]` section, checked; secret files are read here.
pub fn resolve(raw: RawTransfer) -> Result<TransferRules, ConfigError> {
    if raw.keys.len() > MAX_SECONDARIES || raw.secondaries.len() > MAX_SECONDARIES {
        return Err(invalid(
            "transfer",
            "",
            format!("has more than {MAX_SECONDARIES} keys or secondaries"),
        ));
    }
    let mut keys = TsigKeys::default();
    for key in raw.keys {
        let secret = match (key.secret, &key.secret_file) {
            (Some(secret), None) => secret,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|error| {
                invalid(
                    "transfer.keys.secret_file",
                    &path.display().to_string(),
                    format!("cannot be read: {error}"),
                )
            })?,
            _ => {
                return Err(invalid(
                    "transfer.keys",
                    &key.name,
                    "needs exactly one of secret and secret_file".into(),
                ));
            }
        };
        let algorithm = key.algorithm.as_deref().unwrap_or("hmac-sha256");
        keys.add(&key.name, algorithm, &secret)
            .map_err(|error| invalid("transfer.keys", &key.name, error.to_string()))?;
    }
    let secondaries = raw
        .secondaries
        .into_iter()
        .map(|raw| resolve_secondary(raw, &keys))
        .collect::<Result<_, _>>()?;
    Ok(TransferRules { keys, secondaries })
}

fn resolve_secondary(raw: RawSecondary, keys: &TsigKeys) -> Result<Secondary, ConfigError> {
    let zones = (raw.zones.unwrap_or_default().iter())
        .map(|zone| name("transfer.secondaries.zones", zone))
        .collect::<Result<_, _>>()?;
    if raw.allow.is_empty() {
        return Err(invalid(
            "transfer.secondaries.allow",
            "",
            "is empty: name the addresses the secondary transfers from".into(),
        ));
    }
    let allow = (raw.allow.iter())
        .map(|text| {
            (text.parse::<IpNet>())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "transfer.secondaries.allow",
                        text,
                        "is not an address or network".into(),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let notify = (raw.notify.iter())
        .map(|text| {
            server_addr(text).ok_or_else(|| {
                invalid(
                    "transfer.secondaries.notify",
                    text,
                    "is not IP or IP:PORT".into(),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let key = match raw.key {
        None => None,
        Some(text) => {
            let key = name("transfer.secondaries.key", &text)?;
            if keys.get(&key).is_none() {
                return Err(invalid(
                    "transfer.secondaries.key",
                    &text,
                    "is not a [[transfer.keys]] name".into(),
                ));
            }
            Some(key)
        }
    };
    Ok(Secondary {
        zones,
        allow,
        key,
        notify,
    })
}

/// A DNS server written `IP` or `IP:PORT` (port 53 by default): a NOTIFY target here, a
/// followed zone's primary in the admin API.
pub fn server_addr(text: &str) -> Option<SocketAddr> {
    (text.parse::<SocketAddr>().ok()).or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// An absolute, lowercase name.
fn name(key: &'static str, text: &str) -> Result<Name, ConfigError> {
    Name::from_ascii(text)
        .ok()
        .filter(Name::is_fqdn)
        .map(|name| name.to_lowercase())
        .ok_or_else(|| {
            invalid(
                key,
                text,
                "is not an absolute domain name (end it with a dot)".into(),
            )
        })
}

fn invalid(key: &'static str, value: &str, problem: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        problem,
    }
}
