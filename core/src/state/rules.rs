//! The rules a single record, name or token must meet, whatever command carries it.
//! Rules that involve several records at one owner live on `Zone`.

use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use super::{CommandError, MAX_TOKEN_NAME, MAX_TTL, Zone};
use crate::wire::decode_records;

pub(super) fn check_token_name(name: &str) -> Result<(), CommandError> {
    if is_token_name(name) {
        Ok(())
    } else {
        Err(CommandError::InvalidTokenName {
            name: name.to_string(),
        })
    }
}

/// 1 to [`MAX_TOKEN_NAME`] of a-z, 0-9, '-' and '.': the names of Lite tokens and exports.
pub(super) fn is_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOKEN_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

pub(super) fn refuse_soa_delete(
    zone: &Zone,
    owner: &Name,
    rtype: Option<RecordType>,
) -> Result<(), CommandError> {
    let hits_soa = *owner == zone.origin && rtype.is_none_or(|t| t == RecordType::SOA);
    if hits_soa {
        return Err(CommandError::SoaDelete {
            zone: zone.origin.to_ascii(),
        });
    }
    Ok(())
}

/// Checks one record on its own against the zone it is going into.
pub fn check_record(zone: &Zone, record: &Record) -> Result<(), CommandError> {
    let name = record.name.to_ascii();
    if !zone.origin.zone_of(&record.name) {
        return Err(CommandError::OutOfZone {
            name,
            zone: zone.origin.to_ascii(),
        });
    }
    if record.dns_class != DNSClass::IN {
        return Err(CommandError::WrongClass {
            name,
            class: record.dns_class.to_string(),
        });
    }
    if record.ttl > MAX_TTL {
        return Err(CommandError::TtlOutOfRange {
            name,
            ttl: record.ttl,
        });
    }
    if record.name.iter().skip(1).any(|label| label == b"*") {
        return Err(CommandError::WildcardPosition { name });
    }
    let rtype = record.record_type();
    if !is_zone_data_type(rtype) {
        return Err(CommandError::UnsupportedType {
            rtype: rtype.to_string(),
        });
    }
    if rtype == RecordType::SOA && record.name.to_lowercase() != zone.origin {
        return Err(CommandError::SoaNotAtApex {
            name,
            zone: zone.origin.to_ascii(),
        });
    }
    Ok(())
}

/// Types that may be stored in a zone: data types whose meaning the answer engine
/// does not need to implement beyond returning them. Meta types, DNSSEC records
/// (we do not sign) and DNAME (whose rewriting we do not implement) are refused.
pub(super) fn is_zone_data_type(rtype: RecordType) -> bool {
    !matches!(
        rtype,
        RecordType::ANY
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::OPT
            | RecordType::TSIG
            | RecordType::SIG
            | RecordType::DNAME
            | RecordType::ZERO
    ) && !rtype.is_dnssec()
}

/// Lowercases owners and gives the set the TTL of its last record.
pub(super) fn normalize(mut records: Vec<Record>) -> Vec<Record> {
    let ttl = records.last().map(|record| record.ttl).unwrap_or_default();
    for record in &mut records {
        record.name = record.name.to_lowercase();
        record.ttl = ttl;
    }
    records
}

pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Record>, CommandError> {
    decode_records(bytes).map_err(|e| CommandError::BadRecords(e.to_string()))
}

/// Parses an absolute name, lowercased.
pub fn parse_name(text: &str) -> Result<Name, CommandError> {
    let invalid = |reason: String| CommandError::InvalidName {
        name: text.to_string(),
        reason,
    };
    let name = match Name::from_ascii(text) {
        Ok(name) => name,
        // What `Name::to_ascii` writes for a label that is not a host name (a space:
        // `odd\040name`) must read back, or a change naming it could not be replayed.
        Err(error) => from_escaped(text).ok_or_else(|| invalid(error.to_string()))?,
    };
    if !name.is_fqdn() {
        return Err(invalid(
            "name must be absolute (end it with a dot)".to_string(),
        ));
    }
    Ok(name.to_lowercase())
}

/// `text` as hickory's `Name::to_ascii` writes it: labels split at unescaped dots, `\DDD`
/// an octal byte (as hickory writes and reads it), `\X` the character X. `None` when it
/// is not that form or a label or the name is too long.
fn from_escaped(text: &str) -> Option<Name> {
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut label = Vec::new();
    let mut bytes = text.bytes();
    let mut absolute = false;
    while let Some(byte) = bytes.next() {
        absolute = false;
        match byte {
            b'.' => {
                if label.is_empty() {
                    return None;
                }
                labels.push(std::mem::take(&mut label));
                absolute = true;
            }
            b'\\' => {
                let first = bytes.next()?;
                if first.is_ascii_digit() {
                    let digits = [first, bytes.next()?, bytes.next()?];
                    let octal = std::str::from_utf8(&digits).ok()?;
                    label.push(u8::from_str_radix(octal, 8).ok()?);
                } else {
                    label.push(first);
                }
            }
            byte if byte.is_ascii_graphic() => label.push(byte),
            _ => return None,
        }
    }
    if !label.is_empty() {
        labels.push(label);
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(absolute);
    Some(name)
}
