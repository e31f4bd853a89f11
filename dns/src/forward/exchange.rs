//! What an exchange with an upstream can fail with, and the message ids it uses:
//! shared by every transport.

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("timed out")]
    Timeout,
    /// The kept connection closed before the answer came.
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer: {0}")]
    Malformed(String),
    /// hickory could not write the query.
    #[error("bad answer: {0}")]
    Proto(#[from] hickory_proto::ProtoError),
    /// The answer does not decode.
    #[error("bad answer: {0}")]
    Decode(#[from] hickory_proto::serialize::binary::DecodeError),
}

/// A random message id, so an off-path attacker cannot guess it.
pub(super) fn random_id() -> Result<u16, ExchangeError> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| ExchangeError::Io(std::io::Error::other(e)))?;
    Ok(u16::from_be_bytes(id))
}
