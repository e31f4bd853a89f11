//! The operator's console: the pages under `/ui/` and the sign-in that lets them call
//! `/v1` without holding the admin token.
//!
//! The pages are static files compiled into the binary (`console/`: one HTML shell, one
//! script, one style sheet; no CDN, nothing fetched from elsewhere), and every change
//! they make goes through the JSON API, so the console refuses what the CLI refuses,
//! with the same messages.
//!
//! **Sign-in:** `POST /ui/session` with the admin token opens a session: a random id in
//! an `HttpOnly; SameSite=Strict` cookie, and a random CSRF token in the answer's body.
//! A `/v1` request carrying the cookie passes [`auth::require_token`](super::auth) as
//! a bearer token would, and one that changes anything must also carry the session's
//! CSRF token in `X-CSRF-Token` (403 otherwise). `DELETE /ui/session` signs out.
//!
//! **Bound:** at most [`MAX_SESSIONS`] sessions, each for [`SESSION_LIFETIME`]; a
//! sign-in when full ends the oldest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{ApiError, JsonBody};
use crate::secret_file::{self, constant_time_eq};

/// Sessions open at once on one node.
pub const MAX_SESSIONS: usize = 64;
/// How long a session lasts from its sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The session cookie's name.
pub const COOKIE_NAME: &str = "outpost_session";
/// The header a signed-in change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The console's sessions on this node.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

struct Session {
    csrf: String,
    opened: Instant,
    /// Grows with each sign-in: which session is the oldest.
    serial: u64,
}

/// What a request's session cookie allows.
pub enum Access {
    /// No cookie, or not a live session's.
    None,
    /// A live session, and the request may go on.
    Granted,
    /// A live session, but a change without its CSRF token.
    MissingCsrf,
}

impl Sessions {
    fn open(&self) -> Result<(String, String), ApiError> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, session| session.opened.elapsed() < SESSION_LIFETIME);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, session)| session.serial)
                .map(|(id, _)| id.clone())
        {
            open.remove(&oldest);
        }
        let serial = open
            .values()
            .map(|session| session.serial + 1)
            .max()
            .unwrap_or(0);
        let session = Session {
            csrf: csrf.clone(),
            opened: Instant::now(),
            serial,
        };
        open.insert(id.clone(), session);
        Ok((id, csrf))
    }

    /// The CSRF token of the live session `id`.
    fn csrf(&self, id: &str) -> Option<String> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id)
            .filter(|session| session.opened.elapsed() < SESSION_LIFETIME)
            .map(|session| session.csrf.clone())
    }

    fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(id);
    }

    /// What the request's cookie and CSRF header allow for `method`.
    pub fn access(&self, method: &Method, headers: &HeaderMap) -> Access {
        let Some(csrf) = session_id(headers).and_then(|id| self.csrf(id)) else {
            return Access::None;
        };
        if matches!(*method, Method::GET | Method::HEAD) {
            return Access::Granted;
        }
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if constant_time_eq(presented.as_bytes(), csrf.as_bytes()) {
            Access::Granted
        } else {
            Access::MissingCsrf
        }
    }
}

/// The session id in the request's `Cookie` header.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

/// 32 random bytes in hex, for a session id or a CSRF token.
fn random_hex() -> Result<String, ApiError> {
    secret_file::random_hex::<32>()
        .map_err(|error| ApiError::Unavailable(format!("no randomness for a session: {error}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

#[derive(Serialize)]
pub struct SignedIn {
    /// Send it back in `X-CSRF-Token` with every change.
    csrf: String,
}

/// `POST /ui/session`: the admin token for a session cookie.
pub async fn sign_in(
    State(state): State<Arc<AdminState>>,
    JsonBody(request): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    if !constant_time_eq(request.token.trim().as_bytes(), state.token.as_bytes()) {
        return Err(ApiError::BadRequest(
            "that is not this node's admin token (it is in <data-dir>/admin.token)".to_owned(),
        ));
    }
    let (id, csrf) = state.sessions.open()?;
    let cookie = format!(
        "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = Json(SignedIn { csrf }).into_response();
    set_cookie(&mut response, &cookie);
    Ok(response)
}

/// `GET /ui/session`: the CSRF token of the session the cookie names (a page reloaded).
pub async fn current(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<SignedIn>, ApiError> {
    session_id(&headers)
        .and_then(|id| state.sessions.csrf(id))
        .map(|csrf| Json(SignedIn { csrf }))
        .ok_or(ApiError::Unauthorized)
}

/// `DELETE /ui/session`: signs out (with the session's CSRF token).
pub async fn sign_out(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    match (
        state.sessions.access(&Method::DELETE, &headers),
        session_id(&headers),
    ) {
        (Access::Granted, Some(id)) => state.sessions.close(id),
        (Access::MissingCsrf, _) => return csrf_refused().into_response(),
        _ => {}
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookie(
        &mut response,
        &format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

pub fn csrf_refused() -> ApiError {
    ApiError::Forbidden(format!(
        "a change made with the console's session needs its CSRF token in the {CSRF_HEADER} header"
    ))
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
}

/// The console's files, compiled in.
const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// No script, style or frame from anywhere but this node.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `/ui` without its slash: the console's address.
pub async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(axum::http::header::LOCATION, "/ui/")],
    )
        .into_response()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY,
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
            (axum::http::header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("theme=dark; {COOKIE_NAME}={id}; other=1");
        headers.insert(COOKIE, HeaderValue::from_str(&value).unwrap());
        headers
    }

    #[test]
    fn a_session_reads_with_its_cookie_and_changes_with_its_csrf_token() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.open().unwrap();
        let mut headers = cookie(&id);
        assert!(matches!(
            sessions.access(&Method::GET, &headers),
            Access::Granted
        ));
        assert!(matches!(
            sessions.access(&Method::POST, &headers),
            Access::MissingCsrf
        ));
        headers.insert(CSRF_HEADER, HeaderValue::from_str("wrong").unwrap());
        assert!(matches!(
            sessions.access(&Method::DELETE, &headers),
            Access::MissingCsrf
        ));
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert!(matches!(
            sessions.access(&Method::PUT, &headers),
            Access::Granted
        ));
        assert!(matches!(
            sessions.access(&Method::GET, &cookie("forged")),
            Access::None
        ));
        sessions.close(&id);
        assert!(matches!(
            sessions.access(&Method::GET, &headers),
            Access::None
        ));
    }

    #[test]
    fn a_sign_in_when_full_ends_the_oldest_session() {
        let sessions = Sessions::default();
        let (first, _) = sessions.open().unwrap();
        for _ in 1..MAX_SESSIONS {
            sessions.open().unwrap();
        }
        assert!(sessions.csrf(&first).is_some());
        let (newest, _) = sessions.open().unwrap();
        assert!(sessions.csrf(&first).is_none());
        assert!(sessions.csrf(&newest).is_some());
        assert_eq!(sessions.open.lock().unwrap().len(), MAX_SESSIONS);
    }
}
