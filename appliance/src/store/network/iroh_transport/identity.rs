//! A node's iroh identity: an ed25519 secret key created on first start in the data directory
//! (`node.key`) and loaded on every start after. Its public half is the node's endpoint id,
//! which peers check on every connection (TLS with raw public keys, iroh's handshake).
//!
//! **Invariant:** the key file is written as every secret file is ([`crate::secret_file`]):
//! never seen half written, never readable by other users. A file that is not a key is an
//! error, never replaced: a node that changes its key is a stranger to its cluster.

use std::fs;
use std::io;
use std::path::Path;

use ::iroh::SecretKey;

use crate::secret_file::{Created, create_once, hex, warn_if_shared};

/// Name of the key file inside the data directory.
pub const NODE_KEY_FILE_NAME: &str = "node.key";

/// Bytes of an ed25519 secret key; the file holds them as twice as many hex digits.
const KEY_BYTES: usize = 32;

/// Reads `<data_dir>/node.key`, creating it on first start.
pub fn load_or_create_node_key(data_dir: &Path) -> io::Result<SecretKey> {
    let path = data_dir.join(NODE_KEY_FILE_NAME);
    match read_key(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|error| io::Error::other(format!("no randomness for the node key: {error}")))?;
    let key = SecretKey::from_bytes(&bytes);
    match create_once(data_dir, NODE_KEY_FILE_NAME, &hex(&key.to_bytes()))? {
        Created::Written => {
            tracing::info!(path = %path.display(), endpoint_id = %key.public(), "created the node key");
            Ok(key)
        }
        Created::Existed => read_key(&path),
    }
}

fn read_key(path: &Path) -> io::Result<SecretKey> {
    let text = fs::read_to_string(path)?;
    let bytes = parse_hex(text.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a node key ({} hex digits expected); restore it from a backup, \
                 or remove the node from its cluster before deleting it",
                path.display(),
                KEY_BYTES * 2
            ),
        )
    })?;
    warn_if_shared(path, "node key")?;
    Ok(SecretKey::from_bytes(&bytes))
}

fn parse_hex(text: &str) -> Option<[u8; KEY_BYTES]> {
    if text.len() != KEY_BYTES * 2 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; KEY_BYTES];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_key_is_created_private_once_and_loaded_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let created = load_or_create_node_key(dir.path()).expect("created");
        let loaded = load_or_create_node_key(dir.path()).expect("loaded");
        assert_eq!(created.public(), loaded.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(NODE_KEY_FILE_NAME))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().expect("tempdir");
        let stranger = load_or_create_node_key(other.path()).expect("created");
        assert_ne!(created.public(), stranger.public());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(NODE_KEY_FILE_NAME), "not a key\n").expect("write");
        let error = load_or_create_node_key(dir.path()).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let message = error.to_string();
        assert!(message.contains("node.key is not a node key"), "{message}");
        assert!(message.contains("backup"), "{message}");
    }
}
