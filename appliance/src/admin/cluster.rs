//! `/v1/cluster…`: join invites, the cluster's status and retiring a node; and [`Consistent`],
//! the read view every listing takes (`?consistency=local|linearizable`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use outpost_core::state::ReplicatedState;
use serde::Deserialize;

use super::AdminState;
use super::body::{InviteBody, RemovedBody};
use super::error::{ApiError, QueryParams};
use crate::store::{ClusterStatus, DEFAULT_INVITE_TTL, InviteError, MembershipError, ReadError};

/// `POST /v1/cluster/invites?ttl_secs=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteQuery {
    pub ttl_secs: Option<u64>,
}

pub async fn invite(
    State(state): State<Arc<AdminState>>,
    QueryParams(query): QueryParams<InviteQuery>,
) -> Result<(StatusCode, Json<InviteBody>), ApiError> {
    let ttl = query
        .ttl_secs
        .map_or(DEFAULT_INVITE_TTL, Duration::from_secs);
    let ticket = state.store.invite(ttl).await.map_err(|e| match e {
        InviteError::Write(write) => ApiError::from(write),
        e @ InviteError::Ttl(_) => ApiError::BadRequest(e.to_string()),
        e @ InviteError::NoRaftAddress => ApiError::Conflict(e.to_string()),
        e @ InviteError::Random(_) => ApiError::Unavailable(e.to_string()),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(InviteBody {
            ticket: ticket.to_string(),
            expires_unix: ticket.expires_unix,
            nodes: ticket.nodes.into_iter().map(|(_, addr)| addr).collect(),
        }),
    ))
}

/// `GET /v1/cluster`.
pub async fn status(State(state): State<Arc<AdminState>>) -> Json<ClusterStatus> {
    Json(state.store.cluster_status().await)
}

/// `DELETE /v1/cluster/nodes/{id}`.
pub async fn remove(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<RemovedBody>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a node id (a number)")))?;
    state.store.remove_node(id).await.map_err(|e| match e {
        e @ MembershipError::NoSuchNode(_) => ApiError::NotFound(e.to_string()),
        e @ (MembershipError::LastVoter(_)
        | MembershipError::QuorumLoss { .. }
        | MembershipError::Refused(_)) => ApiError::Conflict(e.to_string()),
        e => ApiError::Unavailable(e.to_string()),
    })?;
    Ok(Json(RemovedBody { removed: id }))
}

/// The zones model a read sees: this node's replica (`?consistency=local`, the default), or a
/// state holding every write acknowledged before the request (`?consistency=linearizable`,
/// confirmed through the leader).
pub struct Consistent(pub Arc<ReplicatedState>);

impl FromRequestParts<Arc<AdminState>> for Consistent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, ApiError> {
        let mut linearizable = false;
        for pair in parts.uri.query().unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("consistency", "local")) => linearizable = false,
                Some(("consistency", "linearizable")) => linearizable = true,
                Some(("consistency", other)) => {
                    return Err(ApiError::BadRequest(format!(
                        "consistency {other:?} is not local or linearizable"
                    )));
                }
                _ => {}
            }
        }
        if !linearizable {
            return Ok(Consistent(state.store.zones()));
        }
        match state.store.read_linearizable().await {
            Ok(view) => Ok(Consistent(Arc::clone(&view.zones))),
            Err(e @ ReadError::Leader(_)) => Err(ApiError::Unavailable(format!(
                "no linearizable read: {e}; retry, or read with ?consistency=local"
            ))),
            Err(e) => Err(ApiError::Unavailable(format!("no linearizable read: {e}"))),
        }
    }
}
