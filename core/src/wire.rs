//! Records inside commands, changes and snapshots travel in DNS wire format: a
//! format fixed by RFC 1035 rather than by our serde derives, so the bytes a
//! replica stores do not change meaning when a Rust type does.
//!
//! **Invariant:** [`encode_records`] then [`decode_records`] returns the same records.
//! **Boundary:** the bytes are a compatibility boundary (Raft log, redb, sync stream).

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// The most records one encoded blob may hold. A zone import is one blob, so this is
/// also the largest zone we accept in one write.
pub const MAX_RECORDS_PER_BLOB: usize = 1_000_000;

/// Why a blob of wire records could not be read or written.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("record could not be encoded: {0}")]
    Encode(String),
    #[error("record {index} could not be decoded: {reason}")]
    Decode { index: usize, reason: String },
    #[error("more than {MAX_RECORDS_PER_BLOB} records in one blob")]
    TooMany,
}

/// Encodes records one after the other, uncompressed. Each record goes through its
/// own encoder because hickory's encoder stops at 64 KiB, and a zone is larger.
pub fn encode_records<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<Vec<u8>, WireError> {
    let mut bytes = Vec::new();
    let mut scratch = Vec::new();
    for record in records {
        scratch.clear();
        let mut encoder = BinEncoder::new(&mut scratch);
        encoder.set_canonical_form(true);
        record
            .emit(&mut encoder)
            .map_err(|e| WireError::Encode(e.to_string()))?;
        bytes.extend_from_slice(&scratch);
    }
    Ok(bytes)
}

/// Decodes a blob written by [`encode_records`].
pub fn decode_records(bytes: &[u8]) -> Result<Vec<Record>, WireError> {
    let mut decoder = BinDecoder::new(bytes);
    let mut records = Vec::new();
    while !decoder.is_empty() {
        if records.len() >= MAX_RECORDS_PER_BLOB {
            return Err(WireError::TooMany);
        }
        let record = Record::read(&mut decoder).map_err(|e| WireError::Decode {
            index: records.len(),
            reason: e.to_string(),
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Splits a blob written by [`encode_records`] (uncompressed names) into the bytes of
/// each record, whole, as it goes into a message; `None` when the blob is not
/// such a sequence.
pub fn split_records(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let mut at = 0;
        loop {
            let len = usize::from(*bytes.get(at)?);
            if len >= 64 {
                return None;
            }
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        let rdlen = bytes.get(at + 8..at + 10)?;
        let end = at + 10 + usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
        records.push(bytes.get(..end)?);
        bytes = &bytes[end..];
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, MX, TXT};
    use hickory_proto::rr::{Name, RData};

    #[test]
    fn records_round_trip() {
        let name = Name::from_ascii("mail.example.internal.").unwrap();
        let records = vec![
            Record::from_rdata(name.clone(), 300, RData::A(A::new(10, 0, 0, 7))),
            Record::from_rdata(name.clone(), 60, RData::MX(MX::new(10, name.clone()))),
            Record::from_rdata(name, 60, RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))),
        ];
        let bytes = encode_records(&records).unwrap();
        assert_eq!(decode_records(&bytes).unwrap(), records);
    }

    #[test]
    fn blobs_larger_than_a_dns_message_round_trip() {
        let records: Vec<Record> = (0..5_000u32)
            .map(|i| {
                let name = Name::from_ascii(format!("host{i}.example.internal.")).unwrap();
                Record::from_rdata(name, 300, RData::A(A::from(std::net::Ipv4Addr::from(i))))
            })
            .collect();
        let bytes = encode_records(&records).unwrap();
        assert!(bytes.len() > usize::from(u16::MAX));
        assert_eq!(decode_records(&bytes).unwrap(), records);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = decode_records(&[0x03, b'w', b'w']).unwrap_err();
        assert!(matches!(err, WireError::Decode { index: 0, .. }), "{err}");
    }

    #[test]
    fn a_blob_splits_into_the_records_it_holds() {
        let name = Name::from_ascii("mail.example.internal.").unwrap();
        let records = vec![
            Record::from_rdata(name.clone(), 300, RData::A(A::new(10, 0, 0, 7))),
            Record::from_rdata(name.clone(), 60, RData::MX(MX::new(10, name))),
        ];
        let bytes = encode_records(&records).unwrap();
        let split = split_records(&bytes).unwrap();
        assert_eq!(split.len(), 2);
        for (bytes, record) in split.into_iter().zip(&records) {
            assert_eq!(decode_records(bytes).unwrap(), std::slice::from_ref(record));
        }
        assert_eq!(split_records(&bytes[..bytes.len() - 1]), None);
        assert_eq!(split_records(&[0xc0, 0x0c]), None, "a compression pointer");
    }
}
