//! `/v1/exports…`: iroh-docs exports created, listed, shown with their ticket, removed
//! (`docs/iroh-docs.md`).
//!
//! The secrets of a new export are drawn here, by the node that takes the request, and
//! go through Raft in the command: every node then writes the same document. No answer
//! ever holds them; the ticket holds only the namespace id and the author id, and names
//! the endpoint of the node asked, then those the other members recorded, so any node with
//! `[export] listen` gives a working one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use outpost_core::state::{Command, Export};
use serde::Deserialize;

use super::AdminState;
use super::body::{ExportBody, RemovedExport};
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody};
use super::idempotency::Idempotency;
use super::zones::existing_zones;

/// Why a node gives no ticket.
const NO_ENDPOINT: &str = "this node has no export endpoint (start it with --export-listen IP:PORT, or ask a node that has one)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExport {
    pub name: String,
    /// Origins of the zones it carries; a missing final dot is added.
    pub zones: Vec<String>,
}

/// `POST /v1/exports`: an export of zones that exist.
pub async fn create(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<CreateExport>,
) -> Result<(StatusCode, Json<ExportBody>), ApiError> {
    let zones = existing_zones(&state.store.zones(), &request.zones)?;
    let mut secrets = [0u8; 64];
    getrandom::fill(&mut secrets).map_err(|error| {
        ApiError::Unavailable(format!(
            "cannot draw random bytes for the export's keys: {error}"
        ))
    })?;
    let (namespace, author) = secrets.split_at(32);
    let export = Export {
        name: request.name.clone(),
        zones,
        namespace_secret: namespace.try_into().unwrap_or_default(),
        author_secret: author.try_into().unwrap_or_default(),
    };
    let written = state
        .store
        .write(key.wrap(Command::PutExport { export }))
        .await?;
    // A replayed request created it with the secrets the first one drew: answer with
    // what the store holds.
    let zones = state.store.zones();
    let Some(stored) = zones.export(&request.name) else {
        return Err(ApiError::Unavailable(
            "the store applied the export but does not hold it".to_string(),
        ));
    };
    tracing::info!(name = %stored.name, zones = ?stored.zones, index = written.index, "export created");
    let mut body = body(&state, stored);
    body.index = Some(written.index);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/exports`: every export, with the ticket this node gives.
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Consistent(zones): Consistent,
) -> Json<Vec<ExportBody>> {
    Json(zones.exports().map(|export| body(&state, export)).collect())
}

/// `GET /v1/exports/{name}`: one export, with the ticket this node gives.
pub async fn show(
    State(state): State<Arc<AdminState>>,
    Consistent(zones): Consistent,
    Path(name): Path<String>,
) -> Result<Json<ExportBody>, ApiError> {
    match zones.export(&name) {
        Some(export) => Ok(Json(body(&state, export))),
        None => Err(ApiError::NotFound(format!("no export is named {name}"))),
    }
}

/// `DELETE /v1/exports/{name}`: every node stops writing and serving its document.
pub async fn remove(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(name): Path<String>,
) -> Result<Json<RemovedExport>, ApiError> {
    let written = state
        .store
        .write(key.wrap(Command::RemoveExport { name: name.clone() }))
        .await?;
    tracing::info!(%name, index = written.index, "export removed");
    Ok(Json(RemovedExport {
        name,
        index: written.index,
    }))
}

fn body(state: &AdminState, export: &Export) -> ExportBody {
    let ticket = state
        .exports
        .as_ref()
        .map(|service| service.ticket(export, &state.store).to_string());
    ExportBody {
        name: export.name.clone(),
        zones: export.zones.clone(),
        ticket_unavailable: ticket.is_none().then(|| NO_ENDPOINT.to_string()),
        ticket,
        index: None,
    }
}
