//! TLS for the sync listener: a certificate chain and key from PEM files, served with
//! rustls on the ring provider.
//!
//! Small sites use a self-signed certificate; the Lite client pins its SHA-256
//! fingerprint, which [`TlsConfig::fingerprint`] gives and the appliance logs at start
//! (`docs/sync-protocol.md`, "TLS").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_core::digest::certificate_fingerprint;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{Error as PemError, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key cannot be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sync.tls_cert {}: cannot read a PEM certificate: {cause}", path.display())]
    Cert {
        path: PathBuf,
        #[source]
        cause: PemError,
    },
    #[error(
        "sync.tls_cert {}: no certificate in the file (expected -----BEGIN CERTIFICATE-----)",
        path.display()
    )]
    NoCert { path: PathBuf },
    #[error(
        "sync.tls_key {}: cannot read a PEM private key: {cause} (expected PKCS#8, PKCS#1 or SEC1 PEM)",
        path.display()
    )]
    Key {
        path: PathBuf,
        #[source]
        cause: PemError,
    },
    #[error("sync.tls_cert {} and sync.tls_key {}: {cause}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        cause: String,
    },
}

/// A loaded certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
    fingerprint: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the chain (leaf first) and the key.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|cause| TlsError::Cert {
                path: cert.to_owned(),
                cause,
            })?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCert {
                path: cert.to_owned(),
            });
        };
        let fingerprint = certificate_fingerprint(leaf);
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|cause| TlsError::Key {
            path: key.to_owned(),
            cause,
        })?;
        let config_error = |cause: String| TlsError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            cause,
        };
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|e| config_error(e.to_string()))?;
        Ok(TlsConfig {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// SHA-256 of the leaf certificate (DER), as colon-separated upper-case hex: what
    /// `openssl x509 -noout -fingerprint -sha256` prints, and what a client pins.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}
