//! `/v1/follows…`: the zones the cluster follows from external primaries (secondary
//! zones): follow one, stop, and how each refresh went. The TSIG secret goes in and never
//! comes out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine;
use outpost_core::state::{Command, FollowedZone, TSIG_ALGORITHMS, TsigKey};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::body::IndexBody;
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody};
use super::idempotency::Idempotency;
use super::zones::absolute_name;
use crate::config::transfer::server_addr;

/// `POST /v1/follows`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Follow {
    pub origin: String,
    /// `IP` or `IP:PORT` (53 by default).
    pub primaries: Vec<String>,
    /// `name:algorithm:base64-secret`, as `outpost zone follow --tsig` takes it.
    pub tsig: Option<String>,
}

/// A followed zone as the API shows it: no secret.
#[derive(Debug, Serialize, Deserialize)]
pub struct FollowSummary {
    pub origin: String,
    pub primaries: Vec<SocketAddr>,
    pub tsig_key: Option<String>,
    pub refreshed_unix: Option<u64>,
    pub expired: bool,
    pub last_error: Option<String>,
}

pub async fn list(Consistent(zones): Consistent) -> Json<Vec<FollowSummary>> {
    Json(
        zones
            .followed_zones()
            .map(|zone| FollowSummary {
                origin: zone.origin.clone(),
                primaries: zone.primaries.clone(),
                tsig_key: zone.tsig.as_ref().map(|key| key.name.clone()),
                refreshed_unix: zone.refreshed_unix,
                expired: zone.expired,
                last_error: zone.last_error.clone(),
            })
            .collect(),
    )
}

pub async fn follow(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<Follow>,
) -> Result<Json<IndexBody>, ApiError> {
    let origin = absolute_name(&request.origin)?;
    let primaries = request
        .primaries
        .iter()
        .map(|text| primary(text))
        .collect::<Result<Vec<_>, _>>()?;
    let tsig = request.tsig.as_deref().map(tsig_key).transpose()?;
    let zone = FollowedZone {
        origin: origin.to_ascii(),
        primaries,
        tsig,
        refreshed_unix: None,
        expired: false,
        last_error: None,
    };
    let written = state
        .store
        .write(key.wrap(Command::FollowZone { zone }))
        .await?;
    Ok(Json(IndexBody {
        index: written.index,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unfollow {
    /// Keep the zone's data as a zone written here (default: delete it).
    #[serde(default)]
    pub keep_data: bool,
}

pub async fn unfollow(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(origin): Path<String>,
    Query(query): Query<Unfollow>,
) -> Result<Json<IndexBody>, ApiError> {
    let origin = absolute_name(&origin)?;
    let command = Command::UnfollowZone {
        origin: origin.to_ascii(),
        keep_data: query.keep_data,
    };
    let written = state.store.write(key.wrap(command)).await?;
    Ok(Json(IndexBody {
        index: written.index,
    }))
}

/// `IP` or `IP:PORT`.
fn primary(text: &str) -> Result<SocketAddr, ApiError> {
    server_addr(text)
        .ok_or_else(|| ApiError::BadRequest(format!("primary {text:?} is not IP or IP:PORT")))
}

/// `name:algorithm:secret` (the secret in base64, as BIND and Knot print it).
fn tsig_key(text: &str) -> Result<TsigKey, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "TSIG key must be name:algorithm:base64-secret with an algorithm of {}",
            TSIG_ALGORITHMS.join(", ")
        ))
    };
    let mut parts = text.splitn(3, ':');
    let (Some(name), Some(algorithm), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let name = absolute_name(name)?.to_ascii();
    let algorithm = algorithm.to_ascii_lowercase();
    if !TSIG_ALGORITHMS.contains(&algorithm.as_str()) {
        return Err(bad());
    }
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .ok()
        .filter(|secret| !secret.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("TSIG secret of key {name} is not base64")))?;
    Ok(TsigKey {
        name,
        algorithm,
        secret,
    })
}
