//! `/v1/lite-tokens…` and `/v1/sync/sessions`: Lite tokens made, listed and revoked,
//! and the sync sessions connected now.
//!
//! A new token's secret is in the `POST` answer and nowhere else: the store keeps only
//! its SHA-256 ([`crate::sync::token`]). Revoking a token closes its live sessions with
//! 4003 as soon as the revocation is applied (the sessions watch their queues for it).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use outpost_core::state::{Change, Command, LiteToken};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::body::{CreatedToken, RevokedToken, TokenSummary};
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody};
use super::idempotency::Idempotency;
use super::zones::existing_zones;
use crate::sync::hub::SessionSummary;
use crate::sync::token;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// Origins of the zones the token may see; a missing final dot is added.
    pub zones: Vec<String>,
}

/// `POST /v1/lite-tokens`: a token for zones that exist.
pub async fn create(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let zones = existing_zones(&state.store.zones(), &request.zones)?;
    let secret = token::generate(&request.name).map_err(|error| {
        ApiError::Unavailable(format!("cannot draw random bytes for the secret: {error}"))
    })?;
    let written = state
        .store
        .write(key.wrap(Command::PutLiteToken {
            token: LiteToken {
                name: request.name.clone(),
                zones,
                secret_sha256: secret.secret_sha256,
            },
        }))
        .await?;
    if written.replayed {
        // The first request under this key created the token with the secret it drew;
        // that secret was shown once, in the first answer, and is stored nowhere.
        return Err(ApiError::Conflict(format!(
            "this Idempotency-Key already created Lite token {:?} at index {}; its secret was shown only in that first answer (if it was lost, revoke the token and create it again)",
            request.name, written.index
        )));
    }
    // The model normalises the zones; answer with what it stored.
    let stored = written.changes.iter().find_map(|change| match change {
        Change::LiteTokenPut { token } => Some(token),
        _ => None,
    });
    let Some(stored) = stored else {
        return Err(ApiError::Unavailable(
            "the store applied the token but reported no change".to_string(),
        ));
    };
    tracing::info!(name = %stored.name, zones = ?stored.zones, index = written.index, "Lite token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: stored.name.clone(),
            zones: stored.zones.clone(),
            token: secret.token,
            index: written.index,
        }),
    ))
}

/// `GET /v1/lite-tokens`: names, zones and live sessions; never secrets.
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Consistent(zones): Consistent,
) -> Json<Vec<TokenSummary>> {
    let sessions = state.hub.sessions_per_token();
    Json(
        zones
            .lite_tokens()
            .map(|token| TokenSummary {
                name: token.name.clone(),
                zones: token.zones.clone(),
                sessions: sessions.get(&token.name).copied().unwrap_or(0),
            })
            .collect(),
    )
}

/// `DELETE /v1/lite-tokens/{name}`: refused from now on; live sessions closed (4003).
pub async fn revoke(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(name): Path<String>,
) -> Result<Json<RevokedToken>, ApiError> {
    let written = state
        .store
        .write(key.wrap(Command::RevokeLiteToken { name: name.clone() }))
        .await?;
    tracing::info!(%name, index = written.index, "Lite token revoked");
    Ok(Json(RevokedToken {
        name,
        index: written.index,
    }))
}

/// One session in `GET /v1/sync/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionBody {
    pub client_id: String,
    /// Name of the token the client presented.
    pub token: String,
    pub remote: String,
    /// The client's last `Ack`; `null` before the first.
    pub cursor_acked: Option<u64>,
    /// Batches waiting in the session's queue (of `SESSION_QUEUE`).
    pub queue_depth: usize,
    pub overflows: u64,
    pub connected_secs: u64,
}

impl From<SessionSummary> for SessionBody {
    fn from(session: SessionSummary) -> SessionBody {
        SessionBody {
            client_id: session.client_id,
            token: session.token,
            remote: session.remote.to_string(),
            cursor_acked: session.cursor_acked,
            queue_depth: session.queue_depth,
            overflows: session.overflows,
            connected_secs: session.connected_secs,
        }
    }
}

/// `GET /v1/sync/sessions`: the Lite sessions connected to this node.
pub async fn sessions(State(state): State<Arc<AdminState>>) -> Json<Vec<SessionBody>> {
    Json(
        state
            .hub
            .sessions()
            .into_iter()
            .map(SessionBody::from)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use ureq::Agent;

    use crate::admin::tests::TestServer;
    use crate::sync::token;

    /// `(status, JSON body)` of a request with the server's bearer token.
    fn call(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let url = format!("http://{}{path}", server.address);
        let bearer = format!("Bearer {}", server.token);
        let response = match (method, body) {
            ("GET", None) => agent.get(url).header("Authorization", &bearer).call(),
            ("DELETE", None) => agent.delete(url).header("Authorization", &bearer).call(),
            ("POST", Some(body)) => agent
                .post(url)
                .header("Authorization", &bearer)
                .send_json(body),
            other => panic!("no such request in these tests: {other:?}"),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn tokens_are_created_listed_and_revoked() {
        let server = TestServer::start();
        let (status, _) = call(
            &server,
            "POST",
            "/v1/zones",
            Some(json!({ "origin": "site.internal." })),
        );
        assert_eq!(status, 201);

        let (status, created) = call(
            &server,
            "POST",
            "/v1/lite-tokens",
            Some(json!({ "name": "alice-laptop", "zones": ["Site.Internal", "site.internal."] })),
        );
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["name"], "alice-laptop");
        assert_eq!(created["zones"], json!(["site.internal."]));
        let presented = created["token"].as_str().unwrap();
        let (name, secret) = presented.rsplit_once(':').unwrap();
        assert_eq!((name, secret.len()), ("alice-laptop", 64));
        // Only the hash was stored, and the token checks against it.
        let zones = server.store.zones();
        let stored = token::check(&zones, presented).unwrap();
        assert_ne!(stored.secret_sha256.to_vec(), secret.as_bytes().to_vec());

        for (body, status, message) in [
            (
                json!({ "name": "alice-laptop", "zones": ["site.internal."] }),
                409,
                "a Lite token named alice-laptop already exists (revoke it first)",
            ),
            (
                json!({ "name": "Alice!", "zones": ["site.internal."] }),
                400,
                "Lite token name \"Alice!\" is not valid (use 1 to 64 of a-z, 0-9, '-' and '.')",
            ),
            (
                json!({ "name": "bob", "zones": ["nope.internal"] }),
                404,
                "zone nope.internal. does not exist",
            ),
            (
                json!({ "name": "bob", "zones": [] }),
                400,
                "a Lite token must name at least one zone",
            ),
        ] {
            let (got, answer) = call(&server, "POST", "/v1/lite-tokens", Some(body.clone()));
            assert_eq!(
                (got, answer["error"].as_str()),
                (status, Some(message)),
                "{body}"
            );
        }

        let session = server.hub.register(
            "laptop-1",
            "alice-laptop",
            "127.0.0.1:5000".parse().unwrap(),
        );
        session.info.record_ack(3);
        let (status, listed) = call(&server, "GET", "/v1/lite-tokens", None);
        assert_eq!(status, 200);
        assert_eq!(
            listed,
            json!([{ "name": "alice-laptop", "zones": ["site.internal."], "sessions": 1 }])
        );
        let (status, sessions) = call(&server, "GET", "/v1/sync/sessions", None);
        assert_eq!(status, 200);
        assert_eq!(sessions[0]["client_id"], "laptop-1");
        assert_eq!(sessions[0]["token"], "alice-laptop");
        assert_eq!(sessions[0]["remote"], "127.0.0.1:5000");
        assert_eq!(sessions[0]["cursor_acked"], 3);
        assert_eq!(sessions[0]["queue_depth"], 0);
        assert_eq!(sessions[0]["overflows"], 0);
        drop(session);

        let (status, revoked) = call(&server, "DELETE", "/v1/lite-tokens/alice-laptop", None);
        assert_eq!(status, 200, "{revoked}");
        assert!(token::check(&server.store.zones(), presented).is_none());
        let (status, again) = call(&server, "DELETE", "/v1/lite-tokens/alice-laptop", None);
        assert_eq!(
            (status, again["error"].as_str()),
            (404, Some("no Lite token is named alice-laptop"))
        );
        let (_, listed) = call(&server, "GET", "/v1/lite-tokens", None);
        assert_eq!(listed, json!([]));

        let metrics = ureq::get(format!("http://{}/metrics", server.address))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(
            metrics.contains("# TYPE outpost_sync_sessions gauge\noutpost_sync_sessions 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("# TYPE outpost_sync_overflows_total counter\n"),
            "{metrics}"
        );
        server.stop();
    }
}
