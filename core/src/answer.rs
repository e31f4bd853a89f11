//! The answer engine: an immutable index of every zone and the lookup that turns a
//! question into the sections of an authoritative answer.
//!
//! A [`ZoneSet`] is built after each applied batch and swapped in whole; a query
//! reads one snapshot from start to finish, so it never sees half a write and never
//! takes a lock.
//!
//! Lookup follows RFC 1034 section 4.3.2 with the corrections of later RFCs: the
//! deepest zone wins; a zone cut below the apex yields a referral (AA clear, NS in
//! authority, glue in additional); an existing name without the type is NODATA and a
//! missing one NXDOMAIN, both with the zone SOA whose TTL is the lesser of its own
//! and its MINIMUM (RFC 2308 section 3); empty non-terminals exist (RFC 8020);
//! wildcards apply only below the closest encloser and never to names that exist
//! (RFC 4592); CNAME chains are followed through our zones, with the rcode of the
//! last name (RFC 6604).
//!
//! **Invariant:** every ancestor of an owner, up to the apex, is a node of the index.
//! **Invariant:** the query path allocates only for records it must rewrite
//! (wildcard owners) and for the section vectors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::name::{LookupName, key_of, wildcard_key};
use crate::zones::{Change, Zone, Zones};

/// Longest CNAME chain followed inside our zones before answering with what we have.
pub const MAX_CNAME_CHAIN: usize = 12;

/// The query index over every zone.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    zones: HashMap<Box<[u8]>, Arc<ZoneIndex>>,
}

/// One zone, indexed by owner.
#[derive(Debug)]
pub struct ZoneIndex {
    soa: Record,
    /// The SOA as it goes into negative answers (RFC 2308 section 3).
    negative_soa: Record,
    nodes: HashMap<Box<[u8]>, Node>,
    has_wildcards: bool,
}

#[derive(Debug, Default)]
struct Node {
    /// Shared with the model the index was built from.
    rrsets: Vec<(RecordType, Arc<[Record]>)>,
    /// The node owns NS records below the apex: a delegation.
    cut: bool,
}

impl Node {
    fn rrset(&self, rtype: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|(t, _)| *t == rtype)
            .map(|(_, records)| &**records)
    }
}

/// The sections of an answer from our zones.
#[derive(Debug, Default, PartialEq)]
pub struct Answer<'a> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Cow<'a, Record>>,
    pub authorities: Vec<Cow<'a, Record>>,
    pub additionals: Vec<Cow<'a, Record>>,
}

/// What one name resolves to inside one zone.
enum Step<'a> {
    Data(Vec<Cow<'a, Record>>),
    Cname(Box<Cow<'a, Record>>, Name),
    NoData(&'a ZoneIndex),
    NxDomain(&'a ZoneIndex),
    Referral(&'a ZoneIndex, &'a [Record]),
}

impl ZoneSet {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Indexes every zone.
    pub fn build(zones: &Zones) -> Self {
        let zones = zones
            .iter()
            .filter_map(|zone| Some((key_of(zone.origin()), Arc::new(ZoneIndex::build(zone)?))))
            .collect();
        Self { zones }
    }

    /// Builds the next index, re-indexing only the zones that `changes` touch.
    pub fn rebuild(zones: &Zones, previous: &ZoneSet, changes: &[Change]) -> Self {
        let mut next = previous.clone();
        let mut touched: Vec<&str> = changes.iter().filter_map(Change::zone).collect();
        touched.sort_unstable();
        touched.dedup();
        for origin in touched {
            let Ok(origin) = Name::from_ascii(origin) else {
                continue;
            };
            let key = key_of(&origin);
            match zones.get(&origin).and_then(ZoneIndex::build) {
                Some(index) => next.zones.insert(key, Arc::new(index)),
                None => next.zones.remove(&key),
            };
        }
        next
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Answers `qname`/`qtype` from our zones, or `None` when no zone here contains
    /// `qname` (the caller forwards or refuses).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Option<Answer<'_>> {
        let first = self.step(qname, qtype)?;
        let mut answer = Answer {
            authoritative: true,
            ..Answer::default()
        };
        let mut step = first;
        for _ in 0..MAX_CNAME_CHAIN {
            match step {
                Step::Data(records) => {
                    self.add_additionals(&records, &mut answer.additionals);
                    answer.answers.extend(records);
                    return Some(answer);
                }
                Step::NoData(zone) => {
                    answer.authorities.push(Cow::Borrowed(&zone.negative_soa));
                    return Some(answer);
                }
                Step::NxDomain(zone) => {
                    answer.rcode = ResponseCode::NXDomain;
                    answer.authorities.push(Cow::Borrowed(&zone.negative_soa));
                    return Some(answer);
                }
                Step::Referral(zone, ns) => {
                    // Only the first name can be delegated away: a referral after a
                    // CNAME would mix an authoritative answer with a delegation, so
                    // the chain stops and the resolver follows it.
                    if answer.answers.is_empty() {
                        answer.authoritative = false;
                        answer.authorities.extend(ns.iter().map(Cow::Borrowed));
                        answer.additionals.extend(zone.glue(ns));
                    }
                    return Some(answer);
                }
                Step::Cname(record, target) => {
                    answer.answers.push(*record);
                    match self.step(&target, qtype) {
                        Some(next) => step = next,
                        // The chain leaves our zones: the resolver follows it.
                        None => return Some(answer),
                    }
                }
            }
        }
        Some(answer)
    }

    /// Resolves one name inside the deepest zone that holds it.
    fn step(&self, qname: &Name, qtype: RecordType) -> Option<Step<'_>> {
        let lookup = LookupName::new(qname)?;
        let (zone, zone_skip) = (0..=lookup.labels()).find_map(|skip| {
            self.zones
                .get(lookup.ancestor(skip))
                .map(|zone| (&**zone, skip))
        })?;

        // Walk down from the apex: the first cut wins; the deepest existing node is
        // the closest encloser.
        let mut encloser_skip = zone_skip;
        for skip in (0..zone_skip).rev() {
            let Some(node) = zone.nodes.get(lookup.ancestor(skip)) else {
                break;
            };
            // DS lives on the parent side of a cut (RFC 4035 section 3.1.4.1).
            if node.cut && !(skip == 0 && qtype == RecordType::DS) {
                return Some(Step::Referral(
                    zone,
                    node.rrset(RecordType::NS).unwrap_or_default(),
                ));
            }
            encloser_skip = skip;
        }

        if encloser_skip == 0 {
            let node = zone.nodes.get(lookup.key())?;
            return Some(zone.answer_from(node, qname, qtype, false));
        }
        if zone.has_wildcards {
            let source = wildcard_key(lookup.ancestor(encloser_skip));
            if let Some(node) = zone.nodes.get(source.as_slice()) {
                return Some(zone.answer_from(node, qname, qtype, true));
            }
        }
        Some(Step::NxDomain(zone))
    }

    /// Addresses for the names that NS, MX and SRV answers point at, when we hold
    /// them (RFC 1034 section 4.3.2 step 6).
    fn add_additionals<'a>(
        &'a self,
        records: &[Cow<'a, Record>],
        additionals: &mut Vec<Cow<'a, Record>>,
    ) {
        for record in records {
            let target = match &record.data {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            let Some(lookup) = LookupName::new(target) else {
                continue;
            };
            let Some(zone) =
                (0..=lookup.labels()).find_map(|skip| self.zones.get(lookup.ancestor(skip)))
            else {
                continue;
            };
            if let Some(node) = zone.nodes.get(lookup.key()) {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    additionals.extend(
                        node.rrset(rtype)
                            .unwrap_or_default()
                            .iter()
                            .map(Cow::Borrowed),
                    );
                }
            }
        }
    }
}

impl ZoneIndex {
    /// Indexes one zone; `None` for a zone without an SOA (the model refuses those).
    fn build(zone: &Zone) -> Option<Self> {
        let soa = zone.soa()?.clone();
        let minimum = match &soa.data {
            RData::SOA(data) => data.minimum,
            _ => soa.ttl,
        };
        let mut negative_soa = soa.clone();
        negative_soa.ttl = soa.ttl.min(minimum);

        let origin_labels = usize::from(zone.origin().num_labels());
        let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
        let mut has_wildcards = false;
        for (owner, rtype, records) in zone.shared_rrsets() {
            let lookup = LookupName::new(owner)?;
            // Empty non-terminals: every ancestor up to the apex exists.
            for skip in 1..=lookup.labels().saturating_sub(origin_labels) {
                nodes.entry(lookup.ancestor(skip).into()).or_default();
            }
            let node = nodes.entry(lookup.key().into()).or_default();
            node.rrsets.push((rtype, Arc::clone(records)));
            if rtype == RecordType::NS && owner != zone.origin() {
                node.cut = true;
            }
            has_wildcards |= owner.is_wildcard();
        }
        for node in nodes.values_mut() {
            node.rrsets.shrink_to_fit();
        }
        Some(Self {
            soa,
            negative_soa,
            nodes,
            has_wildcards,
        })
    }

    /// The SOA record of the zone as stored.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    fn answer_from<'a>(
        &'a self,
        node: &'a Node,
        qname: &Name,
        qtype: RecordType,
        synthesized: bool,
    ) -> Step<'a> {
        let owned = |record: &'a Record| -> Cow<'a, Record> {
            if synthesized {
                let mut record = record.clone();
                record.name = qname.clone();
                Cow::Owned(record)
            } else {
                Cow::Borrowed(record)
            }
        };
        if let Some(records) = node.rrset(qtype) {
            return Step::Data(records.iter().map(owned).collect());
        }
        if qtype == RecordType::ANY && !node.rrsets.is_empty() {
            return Step::Data(
                node.rrsets
                    .iter()
                    .flat_map(|(_, records)| records.iter())
                    .map(owned)
                    .collect(),
            );
        }
        if let Some([cname]) = node.rrset(RecordType::CNAME)
            && let RData::CNAME(target) = &cname.data
        {
            return Step::Cname(Box::new(owned(cname)), target.0.clone());
        }
        Step::NoData(self)
    }

    /// A and AAAA records for the name servers of a referral, wherever in the zone
    /// they live (glue below the cut included).
    fn glue<'a>(&'a self, ns: &'a [Record]) -> impl Iterator<Item = Cow<'a, Record>> + 'a {
        ns.iter()
            .filter_map(|record| match &record.data {
                RData::NS(target) => self.nodes.get(&*key_of(&target.0)),
                _ => None,
            })
            .flat_map(|node| {
                [RecordType::A, RecordType::AAAA]
                    .into_iter()
                    .flat_map(move |rtype| node.rrset(rtype).unwrap_or_default().iter())
            })
            .map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests;
