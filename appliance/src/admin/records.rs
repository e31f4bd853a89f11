//! `/v1/records` (add, replace an RRset, delete) and `GET /v1/zones/{origin}/records`.
//!
//! Record data arrives in presentation format (`"10 mail"` for MX) and is parsed
//! against the origin of the zone that holds the owner, so relative names in it mean
//! what they would mean in that zone's master file.

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hickory_proto::rr::{Name, Record, RecordType};
use outpost_core::state::{Command, ReplicatedState, Zone};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::{RDataTextError, parse_rdata};
use serde::Deserialize;

use super::AdminState;
use super::body::{IndexBody, RecordBody, RecordsWritten};
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody, QueryParams};
use super::idempotency::Idempotency;
use super::presentation::{rdata_text, type_text};
use super::transform;
use super::zones::{DEFAULT_TTL, absolute_name, zone_of};

pub async fn list(
    Path(origin): Path<String>,
    Consistent(zones): Consistent,
) -> Result<Json<Vec<RecordBody>>, ApiError> {
    let origin = absolute_name(&origin)?;
    let zone = zone_of(&zones, &origin)?;
    let records = zone
        .records()
        .map(|record| RecordBody {
            name: record.name.to_ascii(),
            rtype: type_text(record.record_type()),
            ttl: record.ttl,
            data: rdata_text(&record.data, zone.origin()),
        })
        .collect();
    Ok(Json(records))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub data: String,
    pub ttl: Option<u32>,
}

/// `POST /v1/records`: adds one record to the RRset of its owner.
pub async fn add(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<AddRecord>,
) -> Result<(StatusCode, Json<RecordsWritten>), ApiError> {
    let name = absolute_name(&request.name)?;
    let rtype = record_type(&request.rtype)?;
    let (origin, record) = {
        let zones = state.store.zones();
        let zone = containing_zone(&zones, &name)?;
        let record = parse_record(
            zone,
            &name,
            rtype,
            &request.data,
            request.ttl.unwrap_or(DEFAULT_TTL),
        )?;
        (zone.origin().clone(), record)
    };
    let records = transform::transform(&state, &origin, vec![record]).await?;
    if records.is_empty() {
        return Err(ApiError::Unprocessable(
            "the record-transform plugins left nothing to write".into(),
        ));
    }
    let records = encode(&records)?;
    let zone = origin.to_ascii();
    let written = state
        .store
        .write(key.wrap(Command::AddRecords { records }))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RecordsWritten {
            zone,
            index: written.index,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRRset {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: Option<u32>,
    /// The new RRset; empty deletes it.
    pub data: Vec<String>,
}

/// `PUT /v1/records`: replaces the RRset of one owner and type.
pub async fn replace(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    JsonBody(request): JsonBody<ReplaceRRset>,
) -> Result<Json<RecordsWritten>, ApiError> {
    let name = absolute_name(&request.name)?;
    let rtype = record_type(&request.rtype)?;
    let ttl = request.ttl.unwrap_or(DEFAULT_TTL);
    let (origin, records) = {
        let zones = state.store.zones();
        let zone = containing_zone(&zones, &name)?;
        let records = request
            .data
            .iter()
            .map(|data| parse_record(zone, &name, rtype, data, ttl))
            .collect::<Result<Vec<_>, _>>()?;
        (zone.origin().clone(), records)
    };
    // Deleting an RRset writes no records, so there is nothing to transform.
    let records = match records.is_empty() {
        true => records,
        false => transform::transform(&state, &origin, records).await?,
    };
    let (rrset, extra) = transform::split_rrset(records, &name, rtype);
    let command = Command::ReplaceRRset {
        owner: name.to_ascii(),
        rtype: rtype.into(),
        records: encode(&rrset)?,
    };
    let zone = origin.to_ascii();
    let written = state
        .store
        .write(key.wrap(transform::with_extra(command, &extra)?))
        .await?;
    Ok(Json(RecordsWritten {
        zone,
        index: written.index,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: Option<String>,
    pub data: Option<String>,
}

/// `DELETE /v1/records?name=..&type=..&data=..`: the matching record, the RRset of
/// `type`, or every RRset at `name`.
pub async fn delete(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    QueryParams(query): QueryParams<DeleteQuery>,
) -> Result<Json<IndexBody>, ApiError> {
    let name = absolute_name(&query.name)?;
    let rtype = query.rtype.as_deref().map(record_type).transpose()?;
    let records = match (rtype, query.data.as_deref()) {
        (_, None) => Vec::new(),
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "parameter \"data\" needs \"type\" too (the data is read as a record of that type)"
                    .to_string(),
            ));
        }
        (Some(rtype), Some(data)) => {
            let zones = state.store.zones();
            let zone = containing_zone(&zones, &name)?;
            encode(&[parse_record(zone, &name, rtype, data, 0)?])?
        }
    };
    let command = Command::DeleteRecords {
        owner: name.to_ascii(),
        rtype: rtype.map(u16::from),
        records,
    };
    let written = state.store.write(key.wrap(command)).await?;
    Ok(Json(IndexBody {
        index: written.index,
    }))
}

/// A type mnemonic (any case) or RFC 3597 `TYPEnnn`.
pub fn record_type(text: &str) -> Result<RecordType, ApiError> {
    let upper = text.trim().to_ascii_uppercase();
    let parsed = match upper.strip_prefix("TYPE") {
        Some(number) if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
            number.parse::<u16>().ok().map(RecordType::from)
        }
        _ => RecordType::from_str(&upper).ok(),
    };
    parsed.ok_or_else(|| ApiError::BadRequest(format!("field \"type\": unknown record type \"{text}\" (use a mnemonic like A, AAAA, CNAME, MX, TXT or TYPEnnn)")))
}

fn containing_zone<'z>(zones: &'z ReplicatedState, name: &Name) -> Result<&'z Zone, ApiError> {
    zones.find_zone(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no zone served here contains {name} (create it with: outpost zone create {})",
            parent_suggestion(name)
        ))
    })
}

/// The zone a user most likely meant: the name without its first label.
fn parent_suggestion(name: &Name) -> String {
    if name.num_labels() > 1 {
        name.base_name().to_ascii()
    } else {
        name.to_ascii()
    }
}

fn parse_record(
    zone: &Zone,
    name: &Name,
    rtype: RecordType,
    data: &str,
    ttl: u32,
) -> Result<Record, ApiError> {
    let rdata = parse_rdata(rtype, data, zone.origin()).map_err(|error| match error {
        RDataTextError::Field(message) => ApiError::BadRequest(message),
        RDataTextError::Layout(message) => ApiError::BadRequest(format!(
            "bad {} record data \"{data}\": {message}",
            type_text(rtype)
        )),
    })?;
    Ok(Record::from_rdata(name.clone(), ttl, rdata))
}

fn encode(records: &[Record]) -> Result<Vec<u8>, ApiError> {
    encode_records(records).map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types() {
        assert_eq!(record_type("a").unwrap(), RecordType::A);
        assert_eq!(record_type("AAAA").unwrap(), RecordType::AAAA);
        assert_eq!(
            record_type("TYPE65000").unwrap(),
            RecordType::Unknown(65000)
        );
        assert_eq!(record_type("type1").unwrap(), RecordType::A);
        let error = record_type("BOGUS").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("field \"type\": unknown record type \"BOGUS\""),
            "{error}"
        );
        assert!(record_type("TYPE").is_err());
        assert!(record_type("TYPE70000").is_err());
    }

    #[test]
    fn suggestion_is_the_parent() {
        let name = Name::from_ascii("printer.site.internal.").unwrap();
        assert_eq!(parent_suggestion(&name), "site.internal.");
    }
}
