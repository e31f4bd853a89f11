//! The certificate the encrypted listeners present: read from PEM, swapped whole on a
//! reload, so connections after it get the new one and those before keep theirs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use outpost_core::digest::certificate_fingerprint;
use tokio_rustls::rustls::crypto::ring::sign::any_supported_type;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why a certificate or key cannot be used; the caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read a PEM certificate: {0}")]
    Cert(String),
    #[error("no certificate in the file (expected -----BEGIN CERTIFICATE-----)")]
    NoCert,
    #[error("cannot read a PEM private key: {0} (expected PKCS#8, PKCS#1 or SEC1 PEM)")]
    Key(String),
    #[error("the private key cannot sign: {0}")]
    Unsupported(String),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(String),
}

/// A certificate chain with its key, and the leaf's SHA-256 pin.
#[derive(Clone)]
pub struct DnsCertificate {
    key: Arc<CertifiedKey>,
    fingerprint: String,
}

impl std::fmt::Debug for DnsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCertificate")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl DnsCertificate {
    /// Reads a chain (leaf first) and its private key from PEM text.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<DnsCertificate, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CertError::Cert(error.to_string()))?;
        let leaf = chain.first().ok_or(CertError::NoCert)?;
        let fingerprint = certificate_fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CertError::Key(e.to_string()))?;
        let signing =
            any_supported_type(&key).map_err(|e| CertError::Unsupported(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|error| CertError::Mismatch(error.to_string()))?;
        Ok(DnsCertificate {
            key: Arc::new(certified),
            fingerprint,
        })
    }

    /// SHA-256 of the leaf certificate (DER), as colon-separated upper-case hex: what
    /// `openssl x509 -noout -fingerprint -sha256` prints, and what a client pins.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The certificate every encrypted listener presents, whatever name the client asks
/// for; [`CertResolver::replace`] swaps it for the connections that follow.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<DnsCertificate>,
}

impl CertResolver {
    pub fn new(certificate: &DnsCertificate) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::from_pointee(certificate.clone()),
        })
    }

    /// Serves `certificate` from the next handshake on.
    pub fn replace(&self, certificate: &DnsCertificate) {
        self.current.store(Arc::new(certificate.clone()));
    }

    /// The SHA-256 pin of the certificate presented now.
    pub fn fingerprint(&self) -> String {
        self.current.load().fingerprint.clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}
