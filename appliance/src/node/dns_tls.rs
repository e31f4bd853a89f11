//! The certificate of the encrypted DNS listeners (DoT, DoH, DoQ): read from
//! `dns.tls_cert` and `dns.tls_key` (again on every reload), or, without them, a
//! self-signed one made on first start and kept in the data directory, so its SHA-256
//! pin stays the same across restarts.

use std::path::Path;

use outpost_dns::server::encrypted::cert::{CertError, DnsCertificate};

use crate::config::{Config, TlsFiles};
use crate::secret_file::{self, Created};

/// The self-signed certificate and its key, one PEM file in the data directory.
pub const SELF_SIGNED_FILE: &str = "dns-tls.pem";

/// Why the encrypted listeners have no certificate; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DnsTlsError {
    #[error("cannot read {key} {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("dns.tls_cert {} and dns.tls_key {}: {source}", files.cert.display(), files.key.display())]
    Invalid {
        files: TlsFiles,
        #[source]
        source: CertError,
    },
    #[error("the self-signed DNS certificate {}: {cause}", path.display())]
    SelfSigned {
        path: std::path::PathBuf,
        cause: String,
    },
}

/// The certificate `config` asks for: its files, or the data directory's self-signed
/// one (made now if there is none).
pub fn load(config: &Config) -> Result<DnsCertificate, DnsTlsError> {
    match &config.encrypted.files {
        Some(files) => load_files(files),
        None => self_signed(&config.data_dir),
    }
}

/// Reads a certificate chain and its key from PEM files.
pub fn load_files(files: &TlsFiles) -> Result<DnsCertificate, DnsTlsError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| DnsTlsError::Read {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let cert = read("dns.tls_cert", &files.cert)?;
    let key = read("dns.tls_key", &files.key)?;
    DnsCertificate::from_pem(&cert, &key).map_err(|source| DnsTlsError::Invalid {
        files: files.clone(),
        source,
    })
}

fn self_signed(data_dir: &Path) -> Result<DnsCertificate, DnsTlsError> {
    let path = data_dir.join(SELF_SIGNED_FILE);
    let failed = |cause: String| DnsTlsError::SelfSigned {
        path: path.clone(),
        cause,
    };
    if !path.exists() {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .map_err(|error| failed(error.to_string()))?;
        let text = format!("{}{}", made.cert.pem(), made.signing_key.serialize_pem());
        match secret_file::create_once(data_dir, SELF_SIGNED_FILE, text.trim_end()) {
            Ok(Created::Written) => {
                tracing::info!(path = %path.display(), "made a self-signed certificate for DNS over TLS, HTTPS and QUIC");
            }
            Ok(Created::Existed) => {}
            Err(error) => return Err(failed(error.to_string())),
        }
    }
    let text = std::fs::read(&path).map_err(|error| failed(error.to_string()))?;
    DnsCertificate::from_pem(&text, &text).map_err(|error| failed(error.to_string()))
}
