//! Record-transform plugins on the write path. The records of a write go through every
//! transform on the node that takes the write, before anything is proposed, so every
//! replica applies the records the plugins returned and no replica runs a plugin on
//! its apply path.
//!
//! A transform may add records outside the RRset or zone being written (PTR records
//! in a reverse zone): those travel in the same Raft entry as an `AddRecords`, inside
//! a [`Command::Batch`], so the write lands whole or not at all.

use hickory_proto::rr::{Name, Record, RecordType};
use outpost_core::state::Command;
use outpost_core::wire::encode_records;
use outpost_plugin_host::TransformFailure;

use super::AdminState;
use super::error::ApiError;

/// Runs the transforms over `records` about to be written to `zone`.
pub(super) async fn transform(
    state: &AdminState,
    zone: &Name,
    records: Vec<Record>,
) -> Result<Vec<Record>, ApiError> {
    state
        .plugins
        .transform(zone.clone(), records)
        .await
        .map_err(|failure| match failure {
            TransformFailure::Refused { .. } => ApiError::Unprocessable(failure.to_string()),
            TransformFailure::Failed { .. } => ApiError::Unavailable(failure.to_string()),
        })
}

/// `command` followed by an `AddRecords` of `extra`, as one write when there are any.
pub(super) fn with_extra(command: Command, extra: &[Record]) -> Result<Command, ApiError> {
    if extra.is_empty() {
        return Ok(command);
    }
    let records = encode(extra)?;
    Ok(Command::Batch {
        commands: vec![command, Command::AddRecords { records }],
    })
}

/// Splits transformed records into those of the RRset `owner`/`rtype` and the rest.
pub(super) fn split_rrset(
    records: Vec<Record>,
    owner: &Name,
    rtype: RecordType,
) -> (Vec<Record>, Vec<Record>) {
    records
        .into_iter()
        .partition(|record| record.record_type() == rtype && record.name == *owner)
}

/// Splits transformed records into those inside `origin` and the rest.
pub(super) fn split_zone(records: Vec<Record>, origin: &Name) -> (Vec<Record>, Vec<Record>) {
    records
        .into_iter()
        .partition(|record| origin.zone_of(&record.name))
}

pub(super) fn encode(records: &[Record]) -> Result<Vec<u8>, ApiError> {
    encode_records(records).map_err(|e| ApiError::BadRequest(e.to_string()))
}
