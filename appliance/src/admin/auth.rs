//! The admin token: created once in the data directory, checked on every `/v1` request.
//!
//! **Invariant:** the token file is written as every secret file is
//! ([`crate::secret_file`]): never seen half written, never readable by other users.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AdminState;
use super::console::{self, Access};
use super::error::ApiError;
use crate::secret_file::{Created, constant_time_eq, create_once, random_hex, warn_if_shared};

/// Name of the token file inside the data directory.
pub const TOKEN_FILE_NAME: &str = "admin.token";
/// Random bytes in a new token (written as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// Reads `<data_dir>/admin.token`, creating it on first start.
pub fn load_or_create_token(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(TOKEN_FILE_NAME);
    match read_token(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let token = new_token()?;
    match create_once(data_dir, TOKEN_FILE_NAME, &token)? {
        Created::Written => {
            tracing::info!(path = %path.display(), "created the admin token");
            Ok(token)
        }
        Created::Existed => read_token(&path),
    }
}

fn read_token(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is empty (delete it to have a new token created)",
                path.display()
            ),
        ));
    }
    warn_if_shared(path, "admin token")?;
    Ok(token.to_string())
}

fn new_token() -> io::Result<String> {
    random_hex::<TOKEN_BYTES>()
        .map_err(|error| io::Error::other(format!("no randomness for the admin token: {error}")))
}

/// Whether the request's `Authorization: Bearer` token is `token` (compared in constant
/// time); `None` when it carries none.
pub(super) fn bearer_matches(headers: &axum::http::HeaderMap, token: &str) -> Option<bool> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)?;
    Some(constant_time_eq(presented.as_bytes(), token.as_bytes()))
}

/// Middleware for `/v1`: passes requests that carry `Authorization: Bearer <token>`,
/// or the console's session cookie (with its CSRF token on a change).
pub async fn require_token(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    match bearer_matches(request.headers(), &state.token) {
        Some(true) => next.run(request).await,
        Some(false) => ApiError::Unauthorized.into_response(),
        None => match state.sessions.access(request.method(), request.headers()) {
            Access::Granted => next.run(request).await,
            Access::MissingCsrf => console::csrf_refused().into_response(),
            Access::None => ApiError::Unauthorized.into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_private_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let token = load_or_create_token(&data_dir).unwrap();
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        assert!(
            token.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "{token}"
        );
        assert_eq!(load_or_create_token(&data_dir).unwrap(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(data_dir.join(TOKEN_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [TOKEN_FILE_NAME]);
    }

    #[test]
    fn tokens_differ_between_data_dirs() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create_token(first.path()).unwrap(),
            load_or_create_token(second.path()).unwrap()
        );
    }

    #[test]
    fn empty_token_file_is_an_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TOKEN_FILE_NAME), "\n").unwrap();
        let error = load_or_create_token(dir.path()).unwrap_err();
        assert!(error.to_string().contains("delete it"), "{error}");
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
