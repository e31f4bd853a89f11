//! RRsets as the model and the query index hold them: an owner name and all its RRsets
//! packed into one shared allocation of DNS wire bytes.
//!
//! A hickory `Record` takes about 270 bytes and a `Name` about 80, so a zone held as
//! `Record`s in a map keyed by `(Name, RecordType)` costs several hundred bytes per
//! record. Packed, an owner with one A record is one allocation of 64 bytes, shared by
//! the model ([`crate::state::Zone`]) and every query index built from it. Records
//! become hickory types again only when an answer needs them (a few per query), and go
//! into changes and snapshots as the bytes they already are.
//!
//! An [`Owner`] is `[key length: u8][key]`, the key being the owner's lowercase wire
//! name ([`crate::name::key_of`]), then for each RRset, in type order,
//! `[type: u16][TTL: u32][body length: u32][body]`, the body holding
//! `[RDLENGTH: u16][RDATA]` per record. Integers are big-endian; RDATA is in the
//! canonical form [`crate::wire::encode_records`] writes (uncompressed, with the names
//! RFC 4034 section 6.2 lists lowercased).
//!
//! **Invariant:** owners are built only here, from records whose packed RDATA was
//! checked to decode again, so decoding a stored record does not fail.
//! **Invariant:** an owner's equality and order are its name's (DNS canonical order), so
//! a set of owners is a map keyed by name; [`Owner::same_records`] compares content.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder, Restrict};

use crate::name::{canonical_cmp, name_of_key};

/// Bytes before an RRset's body: type, TTL and body length.
const RRSET_HEADER: usize = 2 + 4 + 4;

/// Why records cannot be packed. The message names the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PackError(String);

/// One RRset's records, packed and checked, on its way into an [`Owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRRset {
    rtype: RecordType,
    ttl: u32,
    body: Vec<u8>,
}

impl PackedRRset {
    /// Packs `records`, which must all be of class IN and type `rtype`. The RRset takes
    /// the TTL of the last record (the model gives all of them one TTL first).
    pub fn pack(rtype: RecordType, records: &[Record]) -> Result<Self, PackError> {
        let mut body = Vec::new();
        let mut scratch = Vec::new();
        for record in records {
            let refuse = |reason: String| PackError(format!("record {record}: {reason}"));
            if record.record_type() != rtype {
                return Err(refuse(format!("not of the RRset's type {rtype}")));
            }
            if record.dns_class != DNSClass::IN {
                return Err(refuse("only class IN is stored".to_string()));
            }
            scratch.clear();
            let mut encoder = BinEncoder::new(&mut scratch);
            encoder.set_canonical_form(true);
            record
                .data
                .emit(&mut encoder)
                .map_err(|e| refuse(format!("data does not encode: {e}")))?;
            let len = u16::try_from(scratch.len())
                .map_err(|_| refuse("data longer than 65,535 bytes".to_string()))?;
            decode_rdata(rtype, &scratch)
                .map_err(|e| refuse(format!("data does not decode from its wire form: {e}")))?;
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(&scratch);
        }
        if u32::try_from(body.len()).is_err() {
            return Err(PackError(format!(
                "an RRset of {rtype} holds more than 4 GiB of data"
            )));
        }
        let ttl = records.last().map_or(0, |record| record.ttl);
        Ok(Self { rtype, ttl, body })
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn view(&self) -> (u16, u32, &[u8]) {
        (self.rtype.into(), self.ttl, &self.body)
    }
}

/// An owner name and its RRsets, in one shared allocation (see the module docs).
#[derive(Clone)]
pub struct Owner(Arc<[u8]>);

impl Owner {
    /// An owner without RRsets: an empty non-terminal, or a probe to look one up.
    pub fn empty(key: &[u8]) -> Self {
        assemble(key, std::iter::empty())
    }

    /// An owner holding `rrsets`, which must be in type order with no type twice.
    pub fn new(key: &[u8], rrsets: &[PackedRRset]) -> Self {
        assemble(key, rrsets.iter().map(PackedRRset::view))
    }

    /// This owner with `rrset` in place of the RRset of its type, which an empty
    /// `rrset` removes.
    pub fn with_rrset(&self, rrset: &PackedRRset) -> Self {
        let code = u16::from(rrset.rtype);
        let kept = self
            .rrsets()
            .filter(|kept| u16::from(kept.rtype) != code)
            .map(|kept| (u16::from(kept.rtype), kept.ttl, kept.body));
        let added = Some(rrset).filter(|rrset| !rrset.is_empty());
        let mut sets: Vec<(u16, u32, &[u8])> = kept.chain(added.map(PackedRRset::view)).collect();
        sets.sort_by_key(|(code, _, _)| *code);
        assemble(self.key(), sets.into_iter())
    }

    /// The owner's lowercase wire name.
    pub fn key(&self) -> &[u8] {
        let len = self.0.first().map_or(0, |&len| usize::from(len));
        self.0.get(1..1 + len).unwrap_or_default()
    }

    /// The owner's name (lowercase).
    pub fn name(&self) -> Name {
        name_of_key(self.key()).unwrap_or_else(Name::root)
    }

    /// True for an empty non-terminal.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 1 + self.key().len()
    }

    /// The RRsets in type order.
    pub fn rrsets(&self) -> impl Iterator<Item = RRset<'_>> {
        let key = self.key();
        let mut rest = self.0.get(1 + key.len()..).unwrap_or_default();
        std::iter::from_fn(move || {
            let header = rest.get(..RRSET_HEADER)?;
            let rtype = u16::from_be_bytes([header[0], header[1]]);
            let ttl = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
            let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
            let end = RRSET_HEADER.checked_add(usize::try_from(len).ok()?)?;
            let body = rest.get(RRSET_HEADER..end)?;
            rest = rest.get(end..)?;
            Some(RRset {
                owner: key,
                rtype: RecordType::from(rtype),
                ttl,
                body,
            })
        })
    }

    pub fn rrset(&self, rtype: RecordType) -> Option<RRset<'_>> {
        self.rrsets().find(|rrset| rrset.rtype == rtype)
    }

    /// Whether the two hold the same name and the same RRsets, byte for byte.
    pub fn same_records(&self, other: &Owner) -> bool {
        self.0 == other.0
    }
}

/// Lays out an owner; `sets` are `(type, TTL, body)` in type order.
fn assemble<'a>(key: &[u8], sets: impl Iterator<Item = (u16, u32, &'a [u8])> + Clone) -> Owner {
    // Keys come from `Name`s, whose wire form is at most 255 bytes.
    let key = key.get(..usize::from(u8::MAX)).unwrap_or(key);
    let len = 1
        + key.len()
        + sets
            .clone()
            .map(|(_, _, body)| RRSET_HEADER + body.len())
            .sum::<usize>();
    let mut bytes = Vec::with_capacity(len);
    bytes.push(key.len() as u8);
    bytes.extend_from_slice(key);
    for (rtype, ttl, body) in sets {
        bytes.extend_from_slice(&rtype.to_be_bytes());
        bytes.extend_from_slice(&ttl.to_be_bytes());
        // `PackedRRset::pack` refuses bodies over `u32::MAX` bytes.
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(body);
    }
    Owner(bytes.into())
}

impl PartialEq for Owner {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Owner {}

impl PartialOrd for Owner {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Owner {
    fn cmp(&self, other: &Self) -> Ordering {
        canonical_cmp(self.key(), other.key())
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let records = self.rrsets().flat_map(|rrset| rrset.records());
        let records: Vec<String> = records.map(|record| record.to_string()).collect();
        f.debug_struct("Owner")
            .field("name", &self.name().to_ascii())
            .field("records", &records)
            .finish()
    }
}

/// One RRset of an [`Owner`], read in place.
#[derive(Clone, Copy, Debug)]
pub struct RRset<'a> {
    owner: &'a [u8],
    rtype: RecordType,
    ttl: u32,
    body: &'a [u8],
}

impl<'a> RRset<'a> {
    pub fn record_type(&self) -> RecordType {
        self.rtype
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The owner's lowercase wire name.
    pub fn owner_key(&self) -> &'a [u8] {
        self.owner
    }

    /// The owner's name (lowercase).
    pub fn owner(&self) -> Name {
        name_of_key(self.owner).unwrap_or_else(Name::root)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.rdata().count()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Each record's RDATA in canonical wire form.
    pub fn rdata(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let mut rest = self.body;
        std::iter::from_fn(move || {
            let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let rdata = rest.get(2..2 + len)?;
            rest = rest.get(2 + len..)?;
            Some(rdata)
        })
    }

    /// The records, decoded, under the owner's name.
    pub fn records(&self) -> impl Iterator<Item = Record> + use<'a> {
        self.records_named(self.owner())
    }

    /// The records, decoded, under `name` (a wildcard's records answer for the name
    /// asked).
    pub fn records_named(&self, name: Name) -> impl Iterator<Item = Record> + use<'a> {
        let (rtype, ttl) = (self.rtype, self.ttl);
        // Packing checked that every RDATA decodes; one that did not would be left out.
        self.rdata().filter_map(move |rdata| {
            let data = decode_rdata(rtype, rdata).ok()?;
            Some(Record::from_rdata(name.clone(), ttl, data))
        })
    }

    /// The records as [`crate::wire::encode_records`] writes them, byte for byte.
    pub fn to_wire(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + self.len() * (self.owner.len() + 8));
        for rdata in self.rdata() {
            self.push_record(&mut bytes, rdata);
        }
        bytes
    }

    /// One record (of [`Self::rdata`]) as [`crate::wire::encode_records`] writes it.
    pub fn record_wire(&self, rdata: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.owner.len() + 10 + rdata.len());
        self.push_record(&mut bytes, rdata);
        bytes
    }

    fn push_record(&self, bytes: &mut Vec<u8>, rdata: &[u8]) {
        bytes.extend_from_slice(self.owner);
        bytes.extend_from_slice(&u16::from(self.rtype).to_be_bytes());
        bytes.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        bytes.extend_from_slice(&self.ttl.to_be_bytes());
        // Packing refused RDATA over `u16::MAX` bytes.
        bytes.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        bytes.extend_from_slice(rdata);
    }
}

/// Decodes one RDATA as a whole record's would be: empty RDATA is hickory's `Update0`.
fn decode_rdata(rtype: RecordType, rdata: &[u8]) -> Result<RData, String> {
    if rdata.is_empty() {
        return Ok(RData::Update0(rtype));
    }
    let len = u16::try_from(rdata.len()).map_err(|_| "RDATA too long".to_string())?;
    let mut decoder = BinDecoder::new(rdata);
    let data = RData::read(&mut decoder, rtype, Restrict::new(len)).map_err(|e| e.to_string())?;
    if !decoder.is_empty() {
        return Err(format!("{} bytes left over", decoder.len()));
    }
    Ok(data)
}

#[cfg(test)]
mod tests;
