//! What DoT and DoH upstreams are trusted by, and how a connection to one is opened:
//! the system's CA certificates, plus those of a PEM file the operator names (a site's
//! own CA, or another outpost's self-signed certificate). rustls on ring, as everywhere.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::exchange::ExchangeError;

/// The TLS client settings of encrypted upstreams: one per ALPN protocol.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// DNS over TLS, ALPN `dot` (RFC 7858 as registered by RFC 9250's registry).
    pub(super) dot: Arc<ClientConfig>,
    /// DNS over HTTPS, ALPN `h2` (RFC 8484 requires HTTP/2 or later).
    pub(super) doh: Arc<ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("{}: cannot read PEM certificates: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("{}: holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no trusted CA certificate: the system has none and no CA file is set")]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

impl UpstreamTls {
    /// The system's CA certificates and those of `ca_file`.
    pub fn new(ca_file: Option<&Path>) -> Result<UpstreamTls, UpstreamTlsError> {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            tracing::debug!(%error, "a system CA certificate could not be read");
        }
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = ca_file {
            let failed = |reason: String| UpstreamTlsError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| failed(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| failed(error.to_string()))?;
            if certificates.is_empty() {
                return Err(UpstreamTlsError::NoCertificate {
                    path: path.to_path_buf(),
                });
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|error| failed(error.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(UpstreamTlsError::NoRoots);
        }
        let roots = Arc::new(roots);
        let config = |alpn: &[u8]| -> Result<Arc<ClientConfig>, UpstreamTlsError> {
            let mut config =
                ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(UpstreamTls {
            dot: config(b"dot")?,
            doh: config(b"h2")?,
        })
    }
}

/// A TCP connection to `addr` and a TLS handshake over it, the certificate checked
/// for `name`, all before `deadline`.
pub(super) async fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, ExchangeError> {
    let name = ServerName::try_from(name.to_string())
        .map_err(|_| ExchangeError::Malformed(format!("{name:?} is not a server name")))?;
    let work = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        TlsConnector::from(config.clone()).connect(name, tcp).await
    };
    Ok(timeout_at(deadline, work)
        .await
        .map_err(|_| ExchangeError::Timeout)??)
}
