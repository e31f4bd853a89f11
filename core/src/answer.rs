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
//! The index shares the model's packed owners ([`crate::packed`]); the records of an
//! answer are decoded from them as the answer is built.
//!
//! **Invariant:** every ancestor of an owner, up to the apex, is a node of the index.
//! **Invariant:** the query path allocates only for the section vectors and for names
//! and record data too long to sit inline in hickory's types; never in proportion to
//! the zone.

use std::borrow::{Borrow, Cow};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The transport a query came in on: counted in the metrics and shown to policy plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484), HTTP/2.
    Https,
    /// DNS over QUIC (RFC 9250).
    Quic,
}

impl Transport {
    /// Every transport, in the order the metrics list them.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Https,
        Transport::Quic,
    ];

    /// The name in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Https => "https",
            Transport::Quic => "quic",
        }
    }

    /// Whether the client's address was proven by a handshake, as over TCP: every
    /// transport but UDP. Such a transport takes answers up to 65535 bytes, may get
    /// every RRset for ANY (`dns.full_any_over_tcp`), and is not rate limited.
    pub fn is_connected(self) -> bool {
        self != Transport::Udp
    }
}

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::name::{LookupName, ancestors, key_of, wildcard_key};
use crate::packed::Owner;
use crate::state::{Change, ReplicatedState, Zone};

/// Longest CNAME chain followed inside our zones before answering with what we have.
pub const MAX_CNAME_CHAIN: usize = 12;

/// The query index over every zone.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    zones: HashMap<Box<[u8]>, Arc<ZoneIndex>>,
    /// Followed zones that cannot be answered from (expired, or not transferred yet):
    /// names under them get SERVFAIL. Empty, and then never hashed into, without them.
    unavailable: HashSet<Box<[u8]>>,
}

/// Zones with fewer nodes than this are indexed afresh after every write (it takes
/// microseconds); larger ones are patched ([`ZoneIndex::patched`]).
const PATCH_FROM_NODES: usize = 4096;

/// A patched index is built afresh once its patch holds more than this share of the
/// zone's nodes (1/`REBUILD_SHARE`): a full build every few thousand writes to a large
/// zone, and a patch that stays small beside the zone.
const REBUILD_SHARE: usize = 32;

/// One zone, indexed by owner.
///
/// A write to a large zone does not index it again: the next index shares the previous
/// one's `base` and adds the nodes the write changed to its `patch`, so a write costs in
/// proportion to what it changed, not to the zone.
#[derive(Debug)]
pub struct ZoneIndex {
    soa: Record,
    /// The SOA as it goes into negative answers (RFC 2308 section 3).
    negative_soa: Record,
    /// The model's owners (the same allocations) and the empty non-terminals, as they
    /// were when the index was last built whole.
    base: Arc<HashSet<Node>>,
    /// The nodes changed since `base` was built: as they now are, or `None` when gone.
    /// Looked up before `base`.
    patch: HashMap<Box<[u8]>, Option<Node>>,
    has_wildcards: bool,
}

/// An owner as a node of the index: found by its lowercase wire name without
/// allocating. A node below the apex that owns NS records is a cut (a delegation).
#[derive(Clone, Debug)]
struct Node(Owner);

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for Node {}

impl Hash for Node {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key().hash(state);
    }
}

impl Borrow<[u8]> for Node {
    fn borrow(&self) -> &[u8] {
        self.0.key()
    }
}

impl Node {
    /// The records of `rtype` under the node's name, or none.
    fn records(&self, rtype: RecordType) -> Vec<Record> {
        match self.0.rrset(rtype) {
            Some(rrset) => rrset.records().collect(),
            None => Vec::new(),
        }
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

/// The zone's SOA, and the SOA as it goes into negative answers (RFC 2308 section 3).
fn soa_records(zone: &Zone) -> Option<(Record, Record)> {
    let soa = zone.soa()?;
    let minimum = match &soa.data {
        RData::SOA(data) => data.minimum,
        _ => soa.ttl,
    };
    let mut negative_soa = soa.clone();
    negative_soa.ttl = soa.ttl.min(minimum);
    Some((soa, negative_soa))
}

/// The node named `key` in the model: its owner, an empty non-terminal when only names
/// below it own records, or nothing.
fn current_node(zone: &Zone, key: &[u8]) -> Option<Node> {
    match zone.owner_by_key(key) {
        Some(owner) => Some(Node(owner.clone())),
        None if zone.has_descendant(key) => Some(Node(Owner::empty(key))),
        None => None,
    }
}

/// The followed zones that cannot be answered from, as index keys.
fn unavailable(zones: &ReplicatedState) -> HashSet<Box<[u8]>> {
    zones
        .followed_zones()
        .filter(|zone| zones.follow_unavailable(&zone.origin))
        .filter_map(|zone| Name::from_ascii(&zone.origin).ok())
        .map(|origin| key_of(&origin))
        .collect()
}

/// What one name resolves to inside one zone.
enum Step<'a> {
    /// The name is in a followed zone that cannot be answered from.
    Unavailable,
    Data(Vec<Cow<'a, Record>>),
    Cname(Box<Cow<'a, Record>>, Name),
    NoData(&'a ZoneIndex),
    NxDomain(&'a ZoneIndex),
    Referral(&'a ZoneIndex, Vec<Record>),
}

impl ZoneSet {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Indexes every zone.
    pub fn build(zones: &ReplicatedState) -> Self {
        let unavailable = unavailable(zones);
        let zones = zones
            .iter()
            .filter_map(|zone| Some((key_of(zone.origin()), Arc::new(ZoneIndex::build(zone)?))))
            .collect();
        Self { zones, unavailable }
    }

    /// Builds the next index from `previous`, changing only the zones that `changes`
    /// touch: a zone put whole is indexed afresh, a zone whose RRsets changed is patched
    /// ([`ZoneIndex::patched`]).
    pub fn rebuild(zones: &ReplicatedState, previous: &ZoneSet, changes: &[Change]) -> Self {
        let mut next = previous.clone();
        next.unavailable = unavailable(zones);
        // Per touched zone: the owners whose RRsets changed, or `None` to index it whole.
        let mut touched: HashMap<&str, Option<Vec<Box<[u8]>>>> = HashMap::new();
        for change in changes {
            match change {
                Change::RRsetPut { zone, owner, .. } | Change::RRsetDeleted { zone, owner, .. } => {
                    let owners = touched.entry(zone).or_insert_with(|| Some(Vec::new()));
                    match (owners, Name::from_ascii(owner)) {
                        (Some(owners), Ok(owner)) => owners.push(key_of(&owner)),
                        (owners, _) => *owners = None,
                    }
                }
                other => {
                    if let Some(zone) = other.zone() {
                        touched.insert(zone, None);
                    }
                }
            }
        }
        for (origin, owners) in touched {
            let Ok(origin) = Name::from_ascii(origin) else {
                continue;
            };
            let key = key_of(&origin);
            let index =
                zones
                    .get(&origin)
                    .and_then(|zone| match (owners, previous.zones.get(&key)) {
                        (Some(mut owners), Some(before)) => {
                            owners.sort_unstable();
                            owners.dedup();
                            before.patched(zone, &owners)
                        }
                        _ => ZoneIndex::build(zone),
                    });
            match index {
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
                // RFC 1035 section 3.3.13: an expired secondary zone is not answered
                // from; after a CNAME of ours, the resolver follows the chain.
                Step::Unavailable => {
                    if answer.answers.is_empty() {
                        answer.rcode = ResponseCode::ServFail;
                        answer.authoritative = false;
                    }
                    return Some(answer);
                }
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
                        answer.additionals.extend(zone.glue(&ns).map(Cow::Owned));
                        answer.authorities.extend(ns.into_iter().map(Cow::Owned));
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
        let found = (0..=lookup.labels()).find_map(|skip| {
            let key = lookup.ancestor(skip);
            if !self.unavailable.is_empty() && self.unavailable.contains(key) {
                return Some(None);
            }
            self.zones.get(key).map(|zone| Some((&**zone, skip)))
        })?;
        let Some((zone, zone_skip)) = found else {
            return Some(Step::Unavailable);
        };

        // Walk down from the apex: the first cut wins; the deepest existing node is
        // the closest encloser.
        let mut encloser_skip = zone_skip;
        for skip in (0..zone_skip).rev() {
            let Some(node) = zone.node(lookup.ancestor(skip)) else {
                break;
            };
            // A node below the apex owning NS is a cut. DS lives on the parent side
            // of a cut (RFC 4035 section 3.1.4.1).
            let cut = node.0.rrset(RecordType::NS).is_some();
            if cut && !(skip == 0 && qtype == RecordType::DS) {
                return Some(Step::Referral(zone, node.records(RecordType::NS)));
            }
            encloser_skip = skip;
        }

        if encloser_skip == 0 {
            let node = zone.node(lookup.key())?;
            return Some(zone.answer_from(node, qname, qtype, false));
        }
        if zone.has_wildcards {
            let source = wildcard_key(lookup.ancestor(encloser_skip));
            if let Some(node) = zone.node(source.as_slice()) {
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
            if let Some(node) = zone.node(lookup.key()) {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    additionals.extend(node.records(rtype).into_iter().map(Cow::Owned));
                }
            }
        }
    }
}

impl ZoneIndex {
    /// Indexes one zone; `None` for a zone without an SOA (the model refuses those).
    fn build(zone: &Zone) -> Option<Self> {
        let (soa, negative_soa) = soa_records(zone)?;

        let apex = key_of(zone.origin());
        let mut nodes: HashSet<Node> = HashSet::with_capacity(zone.owners().len());
        let mut has_wildcards = false;
        for owner in zone.owners() {
            has_wildcards |= owner.key().starts_with(b"\x01*");
            nodes.insert(Node(owner.clone()));
        }
        // Empty non-terminals: every ancestor up to the apex exists.
        for owner in zone.owners() {
            let below_apex = ancestors(owner.key()).take_while(|key| key.len() > apex.len());
            for ancestor in below_apex {
                if !nodes.contains(ancestor) {
                    nodes.insert(Node(Owner::empty(ancestor)));
                }
            }
        }
        nodes.shrink_to_fit();
        Some(Self {
            soa,
            negative_soa,
            base: Arc::new(nodes),
            patch: HashMap::new(),
            has_wildcards,
        })
    }

    /// The node named `key`: from the patch, else from the base.
    fn node(&self, key: &[u8]) -> Option<&Node> {
        if !self.patch.is_empty()
            && let Some(patched) = self.patch.get(key)
        {
            return patched.as_ref();
        }
        self.base.get(key)
    }

    /// The index of `zone` after a write changed the owners named `changed` (lowercase
    /// wire names), made from this index of the zone before it: each changed owner, and
    /// each of its ancestors whose existence changed (an empty non-terminal appearing or
    /// going), is patched. Built whole instead when the zone is small or the patch has
    /// grown large. `None` when the zone has no SOA.
    fn patched(&self, zone: &Zone, changed: &[Box<[u8]>]) -> Option<Self> {
        if self.base.len() < PATCH_FROM_NODES
            || self.patch.len() + changed.len() > self.base.len() / REBUILD_SHARE
        {
            return Self::build(zone);
        }
        let (soa, negative_soa) = soa_records(zone)?;
        let apex = key_of(zone.origin());
        let mut next = Self {
            soa,
            negative_soa,
            base: Arc::clone(&self.base),
            patch: self.patch.clone(),
            has_wildcards: self.has_wildcards,
        };
        for key in changed {
            let node = current_node(zone, key);
            next.has_wildcards |= node.is_some() && key.starts_with(b"\x01*");
            next.patch.insert(key.clone(), node);
            let above = ancestors(key).take_while(|ancestor| ancestor.len() > apex.len());
            for ancestor in above {
                let exists = zone.owner_by_key(ancestor).is_some() || zone.has_descendant(ancestor);
                if exists != next.node(ancestor).is_some() {
                    next.patch
                        .insert(ancestor.into(), current_node(zone, ancestor));
                }
            }
        }
        Some(next)
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
        // A wildcard's records answer for the name asked.
        let name = || {
            if synthesized {
                qname.clone()
            } else {
                node.0.name()
            }
        };
        if let Some(rrset) = node.0.rrset(qtype) {
            return Step::Data(rrset.records_named(name()).map(Cow::Owned).collect());
        }
        if qtype == RecordType::ANY && !node.0.is_empty() {
            let name = name();
            return Step::Data(
                (node.0.rrsets())
                    .flat_map(|rrset| rrset.records_named(name.clone()))
                    .map(Cow::Owned)
                    .collect(),
            );
        }
        if let Some(cnames) = node.0.rrset(RecordType::CNAME)
            && cnames.len() == 1
            && let Some(cname) = cnames.records_named(name()).next()
            && let RData::CNAME(target) = &cname.data
        {
            let target = target.0.clone();
            return Step::Cname(Box::new(Cow::Owned(cname)), target);
        }
        Step::NoData(self)
    }

    /// A and AAAA records for the name servers of a referral, wherever in the zone
    /// they live (glue below the cut included).
    fn glue<'a>(&'a self, ns: &'a [Record]) -> impl Iterator<Item = Record> + 'a {
        ns.iter()
            .filter_map(|record| match &record.data {
                RData::NS(target) => self.node(&key_of(&target.0)),
                _ => None,
            })
            .flat_map(|node| {
                [RecordType::A, RecordType::AAAA]
                    .into_iter()
                    .flat_map(move |rtype| node.records(rtype))
            })
    }
}

#[cfg(test)]
mod tests;
