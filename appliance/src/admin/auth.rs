//! The admin token: created once in the data directory, checked on every `/v1` request.
//!
//! **Invariant:** the token file is never seen half written and never readable by
//! other users: it is written to a temporary file with mode 0600, synced, then linked
//! into place (a link, unlike a rename, fails when another process got there first).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AdminState;
use super::error::ApiError;

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
    fs::create_dir_all(data_dir)?;
    let token = new_token()?;
    let temporary = data_dir.join(format!("{TOKEN_FILE_NAME}.{}.tmp", std::process::id()));
    let written = write_private(&temporary, &token).and_then(|()| fs::hard_link(&temporary, &path));
    // The temporary name is gone either way; a leftover would only be clutter.
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            sync_dir(data_dir)?;
            tracing::info!(path = %path.display(), "created the admin token");
            Ok(token)
        }
        // Another process created the token between our read and our link: use theirs.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_token(&path),
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("cannot write {}: {error}", path.display()),
        )),
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the admin token is readable by other users (chmod 600 it)");
        }
    }
    Ok(token.to_string())
}

fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|error| io::Error::other(format!("no randomness for the admin token: {error}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn write_private(path: &Path, token: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Makes the new directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Middleware for `/v1`: passes requests that carry `Authorization: Bearer <token>`.
pub async fn require_token(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Compares without stopping at the first difference, so response time does not tell
/// an attacker how much of a guess was right. (The length is not secret: every token
/// we create has the same length.)
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    let difference = presented
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b));
    std::hint::black_box(difference) == 0
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
