//! TSIG (RFC 8945): the shared keys zone transfers and NOTIFY are signed with.
//!
//! hickory-proto does the MAC arithmetic ([`TSigner`]); this module keeps the keys by
//! name, checks a signed query (key, MAC, time), and signs the messages of a response,
//! the first over the request's MAC and the full TSIG variables, each later one over the
//! MAC before it and the timers only (section 5.3.1), as secondaries verify them.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::rr::{Name, Record, TSigResponseContext, TSigVerifier, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// How far the signer's clock may be from ours (RFC 8945 section 10 recommends 300 s).
pub const TSIG_FUDGE: u16 = 300;

/// Bytes a reply to a signed query keeps free for its TSIG (an hmac-sha512 MAC under
/// a long key name fits).
pub const TSIG_ROOM: usize = 256;

/// The algorithms we sign and check with, as they are written in configs (BIND's and
/// Knot's names).
const ALGORITHMS: [(&str, TsigAlgorithm); 3] = [
    ("hmac-sha256", TsigAlgorithm::HmacSha256),
    ("hmac-sha384", TsigAlgorithm::HmacSha384),
    ("hmac-sha512", TsigAlgorithm::HmacSha512),
];

/// A key that cannot be used, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("TSIG key name {0:?} is not a domain name")]
    Name(String),
    #[error("TSIG algorithm {0:?} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)")]
    Algorithm(String),
    #[error("TSIG secret of key {0} is not base64")]
    Secret(String),
    #[error("TSIG secret of key {0} is empty")]
    EmptySecret(String),
    #[error("TSIG key {0} is defined twice")]
    Duplicate(String),
}

/// The keys this node knows, by name.
#[derive(Clone, Default)]
pub struct TsigKeys {
    keys: HashMap<Name, TSigner>,
}

impl std::fmt::Debug for TsigKeys {
    // Secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl TsigKeys {
    /// Adds the key `name` (`algorithm` as BIND and Knot write it, `secret` in base64).
    pub fn add(&mut self, name: &str, algorithm: &str, secret: &str) -> Result<(), KeyError> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| KeyError::Secret(name.to_string()))?;
        let signer = signer(name, algorithm, secret)?;
        let key_name = signer.signer_name().clone();
        match self.keys.insert(key_name.clone(), signer) {
            Some(_) => Err(KeyError::Duplicate(key_name.to_ascii())),
            None => Ok(()),
        }
    }

    /// Adds a key made with [`signer`] (none: nothing).
    pub fn insert(&mut self, signer: Option<TSigner>) {
        if let Some(signer) = signer {
            self.keys.insert(signer.signer_name().clone(), signer);
        }
    }

    pub fn get(&self, name: &Name) -> Option<&TSigner> {
        self.keys.get(&name.to_lowercase())
    }

    /// Checks the TSIG of `packet` (parsed as `message`): `Ok(None)` when it carries
    /// none, the key's chain for signing the response when it verifies.
    pub fn verify(&self, packet: &[u8], message: &Message) -> Result<Option<Signed>, Rejected> {
        let Some(tsig) = &message.signature else {
            return Ok(None);
        };
        let now = unix_now();
        let Some(signer) = self.get(&tsig.name) else {
            return Err(Rejected::UnknownKey(tsig.name.clone()));
        };
        let Ok((mac, _, window)) = signer.verify_message_byte(packet, None, true) else {
            return Err(Rejected::BadSignature(signer.clone()));
        };
        if !window.contains(&now) {
            return Err(Rejected::BadTime(signer.clone(), mac));
        }
        Ok(Some(Signed {
            signer: signer.clone(),
            previous_mac: mac,
            first: true,
        }))
    }
}

/// The key `name` (`algorithm` as BIND and Knot write it) with its `secret`.
pub fn signer(name: &str, algorithm: &str, secret: Vec<u8>) -> Result<TSigner, KeyError> {
    let key_name = Name::from_ascii(name)
        .map(|name| name.to_lowercase())
        .map_err(|_| KeyError::Name(name.to_string()))?;
    let algorithm = ALGORITHMS
        .iter()
        .find(|(written, _)| written.eq_ignore_ascii_case(algorithm))
        .map(|(_, algorithm)| algorithm.clone())
        .ok_or_else(|| KeyError::Algorithm(algorithm.to_string()))?;
    if secret.is_empty() {
        return Err(KeyError::EmptySecret(name.to_string()));
    }
    TSigner::new(secret, algorithm, key_name, TSIG_FUDGE)
        .map_err(|_| KeyError::Algorithm(name.to_string()))
}

/// Signs a query we send (a NOTIFY, a transfer request) with `signer`, now: its TSIG set
/// as the message's signature; returns the verifier of the answer's chain.
pub fn sign_query(signer: &TSigner, message: &mut Message) -> Result<Option<TSigVerifier>, String> {
    let (tsig, verifier) = signer
        .sign_message(message, unix_now())
        .map_err(|error| error.to_string())?;
    message.signature = Some(tsig);
    Ok(verifier)
}

/// The key a followed zone's exchanges are signed with, as the cluster keeps it.
pub fn key_signer(key: &outpost_core::state::TsigKey) -> Result<TSigner, KeyError> {
    signer(&key.name, &key.algorithm, key.secret.clone())
}

/// Why a signed query was refused (RFC 8945 section 5.2), with what the unsigned or
/// signed TSIG of the error answer needs.
pub enum Rejected {
    UnknownKey(Name),
    BadSignature(TSigner),
    BadTime(TSigner, Vec<u8>),
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("key", self.signer.signer_name())
            .finish()
    }
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason(), self.key_name())
    }
}

impl Rejected {
    /// The key's name as the query gave it.
    pub fn key_name(&self) -> Name {
        match self {
            Rejected::UnknownKey(name) => name.clone(),
            Rejected::BadSignature(signer) | Rejected::BadTime(signer, _) => {
                signer.signer_name().clone()
            }
        }
    }

    /// Why, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::UnknownKey(_) => "tsig_unknown_key",
            Rejected::BadSignature(_) => "tsig_bad_signature",
            Rejected::BadTime(..) => "tsig_bad_time",
        }
    }

    /// Appends the TSIG the NOTAUTH answer to the rejected query carries to `message`
    /// (encoded, with its id): unsigned with BADKEY or BADSIG, signed with BADTIME.
    pub fn append_tsig(self, message: &mut Vec<u8>) {
        let Some(id) = message_id(message) else {
            return;
        };
        let now = unix_now();
        let context = match self {
            Rejected::UnknownKey(name) => TSigResponseContext::unknown_key(id, now, name),
            Rejected::BadSignature(signer) => TSigResponseContext::bad_signature(id, now, signer),
            Rejected::BadTime(signer, mac) => {
                TSigResponseContext::new(id, now, signer, mac, Some(TsigError::BadTime))
            }
        };
        if let Ok(record) = context.sign(message) {
            append_record(message, &record);
        }
    }
}

/// The signing chain of one response: each message is signed over the MAC of the one
/// before it (the request's, for the first).
pub struct Signed {
    signer: TSigner,
    previous_mac: Vec<u8>,
    first: bool,
}

impl Signed {
    /// The key's name.
    pub fn key_name(&self) -> &Name {
        self.signer.signer_name()
    }

    /// Signs the encoded `message` in place: its TSIG appended, ARCOUNT raised.
    pub fn sign(&mut self, message: &mut Vec<u8>) {
        let Some(id) = message_id(message) else {
            return;
        };
        let now = unix_now();
        let record = if self.first {
            let context = TSigResponseContext::new(
                id,
                now,
                self.signer.clone(),
                self.previous_mac.clone(),
                None,
            );
            context.sign(message).ok().map(|record| *record)
        } else {
            self.sign_later(id, now, message)
        };
        if let Some(record) = record {
            self.previous_mac = record.data.mac.clone();
            self.first = false;
            append_record(message, &record);
        }
    }

    /// A later message's TSIG (section 5.3.1): the MAC covers the previous MAC, the
    /// message and the timers.
    fn sign_later(&self, id: u16, now: u64, message: &[u8]) -> Option<Record<TSIG>> {
        let mut tbs = Vec::with_capacity(self.previous_mac.len() + message.len() + 10);
        tbs.extend_from_slice(&(self.previous_mac.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&self.previous_mac);
        tbs.extend_from_slice(message);
        tbs.extend_from_slice(&((now >> 32) as u16).to_be_bytes());
        tbs.extend_from_slice(&(now as u32).to_be_bytes());
        tbs.extend_from_slice(&self.signer.fudge().to_be_bytes());
        let mac = self.signer.sign(&tbs).ok()?;
        let tsig = TSIG::new(
            self.signer.algorithm().clone(),
            now,
            self.signer.fudge(),
            mac,
            id,
            None,
            Vec::new(),
        );
        Some(make_tsig_record(self.signer.signer_name().clone(), tsig))
    }
}

/// An encoded message's id.
fn message_id(message: &[u8]) -> Option<u16> {
    message
        .get(..2)
        .map(|id| u16::from_be_bytes([id[0], id[1]]))
}

/// Appends `record` to an encoded message's additional section.
fn append_record(message: &mut Vec<u8>, record: &Record<TSIG>) {
    let mut encoded = Vec::with_capacity(128);
    let mut encoder = BinEncoder::new(&mut encoded);
    if record.emit(&mut encoder).is_err() || message.len() < 12 {
        return;
    }
    let count = u16::from_be_bytes([message[10], message[11]]).saturating_add(1);
    message[10..12].copy_from_slice(&count.to_be_bytes());
    message.extend_from_slice(&encoded);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests;
