//! `[export]` and `[satellite]`: the export endpoint, and a node that serves an export
//! instead of being a cluster member.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError, abbreviate};
use crate::store::JoinTicket;

/// `[export]`: the endpoint that serves the cluster's iroh-docs exports.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    /// `IP:PORT` (QUIC over UDP) that satellites and Lite clients with an export ticket
    /// dial; unset, this node writes and serves no export.
    pub listen: Option<String>,
}

/// `[satellite]`: a node outside the cluster that serves an export's read-only copy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSatellite {
    /// A file holding the export's ticket (`outpost export create` prints it).
    pub ticket_file: Option<PathBuf>,
    /// More peers that hold the export, `ENDPOINT_ID@IP:PORT`.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// The validated `[satellite]`: the export's ticket and more peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatelliteConfig {
    pub ticket: String,
    pub peers: Vec<String>,
}

/// A satellite is in no cluster; a joining node needs an address its peers dial.
pub(super) fn check_membership(
    raft: Option<SocketAddr>,
    join: Option<&JoinTicket>,
    satellite: Option<&SatelliteConfig>,
) -> Result<(), ConfigError> {
    if satellite.is_some() && (raft.is_some() || join.is_some()) {
        return Err(ConfigError::Invalid {
            key: "satellite",
            value: "a ticket".to_string(),
            problem: "is given with cluster.raft or a join ticket: a satellite is not a member of any cluster (drop --raft and --join)".to_string(),
        });
    }
    if join.is_some() && raft.is_none() {
        return Err(ConfigError::Missing {
            key: "cluster.raft",
            problem: "a join ticket is given: a joining node needs a raft address its peers dial (--raft IP:PORT)".to_string(),
        });
    }
    Ok(())
}

/// `--satellite` or `satellite.ticket_file`: a ticket that parses, and peers that do.
pub(super) fn resolve_satellite(
    flag: Option<String>,
    raw: RawSatellite,
) -> Result<Option<SatelliteConfig>, ConfigError> {
    let ticket = match (flag, &raw.ticket_file) {
        (Some(ticket), _) => ticket,
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
                key: "satellite.ticket_file",
                value: path.display().to_string(),
                problem: format!("cannot be read: {error}"),
            })?
        }
        (None, None) if raw.peers.is_empty() => return Ok(None),
        (None, None) => {
            return Err(ConfigError::Missing {
                key: "satellite.ticket_file",
                problem: "satellite.peers is set".to_string(),
            });
        }
    };
    let ticket = ticket.trim().to_string();
    if let Err(error) = ticket.parse::<outpost_export::ExportTicket>() {
        return Err(ConfigError::Invalid {
            key: "satellite",
            value: abbreviate(&ticket),
            problem: error.to_string(),
        });
    }
    if let Err(error) = outpost_lite::docs::resolve(std::slice::from_ref(&ticket), &raw.peers, None)
    {
        return Err(ConfigError::Invalid {
            key: "satellite.peers",
            value: raw.peers.join(", "),
            problem: error.to_string(),
        });
    }
    Ok(Some(SatelliteConfig {
        ticket,
        peers: raw.peers,
    }))
}

impl Config {
    /// The `[export]` and `[satellite]` keys whose change in `next` needs a restart.
    pub(super) fn export_restart_required(&self, next: &Config) -> [(&'static str, bool); 2] {
        [
            ("export.listen", self.export_listen != next.export_listen),
            ("satellite", self.satellite != next.satellite),
        ]
    }
}
