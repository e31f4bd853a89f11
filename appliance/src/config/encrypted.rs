//! `[dns]` keys of the encrypted listeners: `tls_listen` (DoT), `https_listen` (DoH),
//! `quic_listen` (DoQ), each off when absent, and the certificate they present
//! (`tls_cert` and `tls_key`, both or neither; neither: a self-signed certificate made
//! in the data directory on first start). Unlike the admin API and the sync endpoint,
//! these are TLS by construction, so any address is allowed.

use std::net::SocketAddr;
use std::path::PathBuf;

use outpost_dns::server::encrypted::EncryptedAddrs;

use super::{ConfigError, TlsFiles};

/// The validated encrypted-listener keys of `[dns]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptedDns {
    pub addrs: EncryptedAddrs,
    /// The certificate and key; `None`: self-signed, in the data directory.
    pub files: Option<TlsFiles>,
}

impl EncryptedDns {
    /// The keys whose change waits for a restart: the listen addresses, and switching
    /// between certificate files and the self-signed certificate. The files themselves
    /// are read again on every reload.
    pub(super) fn restart_required(&self, next: &EncryptedDns) -> [(&'static str, bool); 4] {
        [
            ("dns.tls_listen", self.addrs.tls != next.addrs.tls),
            ("dns.https_listen", self.addrs.https != next.addrs.https),
            ("dns.quic_listen", self.addrs.quic != next.addrs.quic),
            ("dns.tls_cert", self.files.is_some() != next.files.is_some()),
        ]
    }
}

/// Checks the addresses and that `tls_cert` and `tls_key` come together.
pub(super) fn resolve_encrypted(
    tls_listen: Option<String>,
    https_listen: Option<String>,
    quic_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> Result<EncryptedDns, ConfigError> {
    let addrs = EncryptedAddrs {
        tls: optional_addr("dns.tls_listen", tls_listen, "0.0.0.0:853")?,
        https: optional_addr("dns.https_listen", https_listen, "0.0.0.0:443")?,
        quic: optional_addr("dns.quic_listen", quic_listen, "0.0.0.0:853")?,
    };
    let files = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                key: "dns.tls_key",
                problem: "dns.tls_cert is set: the certificate needs its private key".into(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                key: "dns.tls_cert",
                problem: "dns.tls_key is set: the key needs its certificate".into(),
            });
        }
    };
    Ok(EncryptedDns { addrs, files })
}

fn optional_addr(
    key: &'static str,
    value: Option<String>,
    example: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|text| super::parse_addr(key, Some(text), example))
        .transpose()
}
