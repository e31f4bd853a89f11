//! `/v1/zones…`: list, create, delete, import a master file, export one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record};
use outpost_core::state::{Command, CommandError, ReplicatedState, parse_name};
use outpost_core::zonefile::parse_zone;
use serde::Deserialize;

use super::AdminState;
use super::body::{CreatedZone, ImportedZone, IndexBody, ZoneSummary};
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody, TextBody};
use super::idempotency::Idempotency;
use super::presentation::export_zone;
use super::transform;

/// TTL of the records of a new zone and of imported records that name none.
pub const DEFAULT_TTL: u32 = 3600;

pub async fn list(Consistent(zones): Consistent) -> Json<Vec<ZoneSummary>> {
    Json(
        zones
            .iter()
            .map(|zone| ZoneSummary {
                origin: zone.origin().to_ascii(),
                records: zone.record_count(),
                serial: match zone.soa().map(|soa| soa.data) {
                    Some(RData::SOA(soa)) => soa.serial,
                    _ => 0,
                },
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateZone {
    pub origin: String,
}

/// `POST /v1/zones`: a zone holding only a default SOA and one NS.
pub async fn create(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<CreateZone>,
) -> Result<(StatusCode, Json<CreatedZone>), ApiError> {
    let origin = absolute_name(&request.origin)?;
    let records = transform::transform(&state, &origin, default_records(&origin)?.into()).await?;
    let (records, extra) = transform::split_zone(records, &origin);
    let command = Command::CreateZone {
        origin: origin.to_ascii(),
        records: transform::encode(&records)?,
    };
    let written = state
        .store
        .write(key.wrap(transform::with_extra(command, &extra)?))
        .await?;
    let body = CreatedZone {
        origin: origin.to_ascii(),
        index: written.index,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// `SOA ns1.<origin> hostmaster.<origin> 1 7200 3600 1209600 300` and `NS ns1.<origin>`.
fn default_records(origin: &Name) -> Result<[Record; 2], ApiError> {
    let too_long = |e: hickory_proto::ProtoError| {
        ApiError::BadRequest(format!("origin {origin} is too long for ns1.{origin}: {e}"))
    };
    let ns1 = origin.prepend_label("ns1").map_err(too_long)?;
    let hostmaster = origin.prepend_label("hostmaster").map_err(too_long)?;
    let soa = SOA::new(ns1.clone(), hostmaster, 1, 7200, 3600, 1_209_600, 300);
    Ok([
        Record::from_rdata(origin.clone(), DEFAULT_TTL, RData::SOA(soa)),
        Record::from_rdata(origin.clone(), DEFAULT_TTL, RData::NS(NS(ns1))),
    ])
}

pub async fn delete(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(origin): Path<String>,
) -> Result<Json<IndexBody>, ApiError> {
    let origin = absolute_name(&origin)?;
    let written = state
        .store
        .write(key.wrap(Command::DeleteZone {
            origin: origin.to_ascii(),
        }))
        .await?;
    Ok(Json(IndexBody {
        index: written.index,
    }))
}

/// `PUT /v1/zones/{origin}`: replaces the whole zone with a master file, in one Raft
/// entry (all or nothing).
pub async fn import(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(origin): Path<String>,
    TextBody(text): TextBody,
) -> Result<Json<ImportedZone>, ApiError> {
    let origin = absolute_name(&origin)?;
    let parse_origin = origin.clone();
    // A large file takes a while to parse: keep it off the async workers.
    let records = tokio::task::spawn_blocking(move || {
        parse_zone(&text, &parse_origin, DEFAULT_TTL)
            .map_err(|e| ApiError::BadRequest(format!("zone file {e}")))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("zone file parser stopped: {e}")))??;
    let records = transform::transform(&state, &origin, records).await?;
    let encode_origin = origin.clone();
    // Encoding a large zone takes a while too.
    let (count, command) = tokio::task::spawn_blocking(move || {
        let (records, extra) = transform::split_zone(records, &encode_origin);
        let command = Command::ReplaceZone {
            origin: encode_origin.to_ascii(),
            records: transform::encode(&records)?,
        };
        Ok::<_, ApiError>((records.len(), transform::with_extra(command, &extra)?))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("zone file encoder stopped: {e}")))??;
    let written = state.store.write(key.wrap(command)).await?;
    tracing::info!(origin = %origin, records = count, index = written.index, "zone imported");
    Ok(Json(ImportedZone {
        origin: origin.to_ascii(),
        records: count,
        index: written.index,
    }))
}

/// `GET /v1/zones/{origin}/export`: the zone as a master file.
pub async fn export(
    Path(origin): Path<String>,
    Consistent(zones): Consistent,
) -> Result<impl IntoResponse, ApiError> {
    let origin = absolute_name(&origin)?;
    let text = tokio::task::spawn_blocking(move || zone_of(&zones, &origin).map(export_zone))
        .await
        .map_err(|e| ApiError::Unavailable(format!("zone export stopped: {e}")))??;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// The zone at `origin`, or 404.
pub fn zone_of<'z>(
    zones: &'z ReplicatedState,
    origin: &Name,
) -> Result<&'z outpost_core::state::Zone, ApiError> {
    zones.get(origin).ok_or_else(|| {
        ApiError::Refused(CommandError::NoSuchZone {
            origin: origin.to_ascii(),
        })
    })
}

/// Parses a name given by a client; a missing final dot is added (names in the API are
/// `zones` as absolute, lowercase origins, sorted, each once; 404 naming the first that
/// is not a zone here.
pub fn existing_zones(
    state: &outpost_core::state::ReplicatedState,
    zones: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut origins = Vec::with_capacity(zones.len());
    for zone in zones {
        let origin = absolute_name(zone)?;
        if state.get(&origin).is_none() {
            return Err(ApiError::Refused(
                outpost_core::state::CommandError::NoSuchZone {
                    origin: origin.to_ascii(),
                },
            ));
        }
        origins.push(origin.to_ascii());
    }
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// absolute).
pub fn absolute_name(text: &str) -> Result<Name, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::BadRequest("domain name is empty".to_string()));
    }
    let absolute = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    parse_name(&absolute).map_err(ApiError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::state::ReplicatedState;
    use outpost_core::wire::encode_records;

    #[test]
    fn default_zone_is_accepted_by_the_model() {
        let origin = absolute_name("site.internal").unwrap();
        let records = encode_records(&default_records(&origin).unwrap()).unwrap();
        let mut zones = ReplicatedState::default();
        zones
            .apply(&Command::CreateZone {
                origin: origin.to_ascii(),
                records,
            })
            .unwrap();
        let zone = zones.get(&origin).unwrap();
        assert_eq!(zone.record_count(), 2);
        let text = export_zone(zone);
        assert!(
            text.contains("site.internal. 3600 IN SOA ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300"),
            "{text}"
        );
        assert!(
            text.contains("site.internal. 3600 IN NS ns1.site.internal."),
            "{text}"
        );
    }

    #[test]
    fn names_are_made_absolute_and_checked() {
        assert_eq!(
            absolute_name("Site.Internal").unwrap().to_ascii(),
            "site.internal."
        );
        assert_eq!(
            absolute_name("site.internal.").unwrap().to_ascii(),
            "site.internal."
        );
        assert!(matches!(absolute_name(""), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            absolute_name("a..b"),
            Err(ApiError::Refused(CommandError::InvalidName { .. }))
        ));
    }
}
