//! The `Idempotency-Key` header of admin writes: a client that retries a write after an
//! ambiguous answer (a timeout, a deposed leader, a lost connection) sends the same key,
//! and the cluster applies the write once (`outpost_core::state::Command::Once`). The
//! retry is answered as the first success was, with the first write's log index. The
//! CLI sends a fresh key with every command and reuses it for its own retries.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use outpost_core::state::{Command, check_idempotency_key};

use super::AdminState;
use super::error::ApiError;

/// The request header that carries the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The key a write request carries, if any.
pub struct Idempotency(Option<String>);

impl FromRequestParts<Arc<AdminState>> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<AdminState>,
    ) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY_HEADER) else {
            return Ok(Idempotency(None));
        };
        let key = value.to_str().map_err(|_| {
            ApiError::BadRequest("the Idempotency-Key header is not visible ASCII".to_string())
        })?;
        check_idempotency_key(key)
            .map_err(|e| ApiError::BadRequest(format!("the Idempotency-Key header: {e}")))?;
        Ok(Idempotency(Some(key.to_string())))
    }
}

impl Idempotency {
    /// `command`, under the key when the request carried one.
    pub fn wrap(&self, command: Command) -> Command {
        match &self.0 {
            Some(key) => Command::Once {
                key: key.clone(),
                now_unix: unix_now(),
                command: Box::new(command),
            },
            None => command,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
