//! How the client trusts a `wss://` appliance: a pinned certificate fingerprint (the
//! small-site path: a self-signed certificate whose SHA-256 the appliance logs at
//! start) or CA certificates from a PEM file. rustls on the ring provider, as the
//! appliance uses.
//!
//! **Invariant:** a pinned connection is accepted only when the leaf certificate's
//! SHA-256 equals the pin and the handshake is signed by that certificate's key; the
//! host name is not checked (the pin names the certificate, not the host).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::{Error as PemError, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

/// What a `wss://` appliance is trusted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// SHA-256 of the appliance's leaf certificate (DER).
    Pinned([u8; 32]),
    /// CA certificates (PEM) the appliance's chain must lead to, for its host name.
    CaFile(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "--pin {value:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed: what the appliance logs at start, or `openssl x509 -noout -fingerprint -sha256 -in cert.pem`)"
    )]
    BadPin { value: String },
    #[error("--ca {}: cannot read PEM certificates: {reason}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        reason: PemError,
    },
    #[error("--ca {}: no usable certificate in the file: {reason}", path.display())]
    NoCa { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Config(#[source] tokio_rustls::rustls::Error),
}

/// Parses `88:11:E7:…` or `8811e7…` into 32 bytes.
pub fn parse_pin(value: &str) -> Result<[u8; 32], TrustError> {
    let bad = || TrustError::BadPin {
        value: value.to_string(),
    };
    let hex: String = value
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(pin)
}

/// The rustls client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?;
    let config = match trust {
        Trust::Pinned(sha256) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                sha256: *sha256,
                provider,
            }))
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .with_root_certificates(read_roots(path)?)
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|reason| TrustError::CaFile {
            path: path.to_owned(),
            reason,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TrustError::NoCa {
            path: path.to_owned(),
            reason: "expected -----BEGIN CERTIFICATE-----".into(),
        });
    }
    Ok(roots)
}

/// Accepts exactly one certificate, by its SHA-256.
#[derive(Debug)]
struct PinnedCertificate {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let found = Sha256::digest(end_entity.as_ref());
        if found.as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(TlsError::General(format!(
                "the appliance's certificate has fingerprint {}, not the pinned {} (check --pin against the fingerprint the appliance logs)",
                colon_hex(&found),
                colon_hex(&self.sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `88:11:E7:…`, as the appliance and openssl print fingerprints.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "88:11:E7:80:66:A8:EB:9D:91:F9:4D:2F:99:D3:78:84:E0:CE:43:5D:4E:C9:A1:99:5F:86:C4:21:76:C3:B8:F0";

    #[test]
    fn pins_parse_with_or_without_colons_in_any_case() {
        let pin = parse_pin(PIN).unwrap();
        assert_eq!(colon_hex(&pin), PIN);
        assert_eq!(
            parse_pin(&PIN.replace(':', "").to_lowercase()).unwrap(),
            pin
        );
        assert_eq!(parse_pin(&format!("sha256:{PIN}")).unwrap(), pin);
        for bad in [
            "",
            "88:11",
            &PIN.replace("88", "ZZ"),
            &format!("{PIN}:00"),
            "é".repeat(32).as_str(),
        ] {
            assert!(parse_pin(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn both_trusts_make_a_client_config() {
        client_config(&Trust::Pinned([7; 32])).unwrap();
        let missing = client_config(&Trust::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
    }
}
