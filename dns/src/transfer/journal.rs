//! The journal IXFR answers from (RFC 1995): for each zone, the records each committed
//! entry removed and added, between the SOA it started from and the SOA it left.
//!
//! The replicated history keeps what each RRset became, not what it was, so the journal
//! is built here, as entries are applied: the RRset before is read from the state before
//! the batch, or from the journal's own overlay when an earlier entry of the same batch
//! touched it. It lives in memory: after a restart, or for a serial older than what it
//! keeps, IXFR answers with the whole zone, as section 4 allows. Every node builds the
//! same steps from the same entries, so a secondary may ask any of them.
//!
//! **Invariant:** a zone's steps are consecutive: each starts at the serial the one
//! before it left, and the last leaves the serial the zone has now. A zone put whole or
//! deleted starts its journal afresh.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::rr::{Name, RecordType};
use outpost_core::state::{Change, ReplicatedState};
use outpost_core::wire::split_records;

/// Records (removed and added) a zone's journal keeps; the oldest steps are forgotten
/// first, and a serial older than the journal gets the whole zone.
pub const MAX_JOURNAL_RECORDS: usize = 100_000;

/// One committed entry's difference to one zone.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    pub from_serial: u32,
    pub to_serial: u32,
    /// The SOA records the step starts from and leaves, whole, as they go into a message.
    pub from_soa: Vec<u8>,
    pub to_soa: Vec<u8>,
    pub removed: Vec<Vec<u8>>,
    pub added: Vec<Vec<u8>>,
}

impl Step {
    fn records(&self) -> usize {
        self.removed.len() + self.added.len() + 2
    }
}

#[derive(Default)]
struct ZoneJournal {
    steps: VecDeque<Arc<Step>>,
    records: usize,
}

/// Every zone's journal, and the state the next batch is compared with.
pub struct Journal {
    inner: Mutex<Inner>,
}

struct Inner {
    before: Arc<ReplicatedState>,
    /// The index `before` is the state after; `None` until the journal was told one.
    as_of: Option<u64>,
    zones: HashMap<Name, ZoneJournal>,
}

/// An RRset, by zone, owner and type.
type RRsetKey = (Name, Name, u16);

impl Journal {
    /// An empty journal, which starts with the first state it is told of.
    pub fn new() -> Journal {
        Journal {
            inner: Mutex::new(Inner {
                before: Arc::default(),
                as_of: None,
                zones: HashMap::new(),
            }),
        }
    }

    /// Forgets every step: `state`, as of `index`, was loaded or replaced by a snapshot,
    /// and what led to it is not known entry by entry.
    pub fn reset(&self, state: Arc<ReplicatedState>, index: u64) {
        let mut inner = self.lock();
        inner.before = state;
        inner.as_of = Some(index);
        inner.zones.clear();
    }

    /// Records the steps of the entries `first..=up_to` (each entry's changes, in log
    /// order) whose result is `after`; returns the zones whose data changed. A batch
    /// that does not follow the last one told starts the journal afresh.
    pub fn applied<'a>(
        &self,
        first: u64,
        up_to: u64,
        after: Arc<ReplicatedState>,
        entries: impl IntoIterator<Item = &'a [Change]>,
    ) -> HashSet<Name> {
        let mut inner = self.lock();
        if inner.as_of.map(|as_of| as_of + 1) != Some(first) {
            inner.zones.clear();
            inner.before = Arc::default();
        }
        let mut overlay: HashMap<RRsetKey, Vec<Vec<u8>>> = HashMap::new();
        // Zones put whole or deleted in this batch: their steps start after it.
        let mut whole: HashSet<Name> = HashSet::new();
        let mut touched = HashSet::new();
        for changes in entries {
            let mut builders: HashMap<Name, Builder> = HashMap::new();
            for change in changes {
                let Some(zone) = change.zone().and_then(zone_name) else {
                    continue;
                };
                touched.insert(zone.clone());
                let (owner, rtype, records) = match change {
                    Change::RRsetPut {
                        owner,
                        rtype,
                        records,
                        ..
                    } => (owner, *rtype, split_records(records).unwrap_or_default()),
                    Change::RRsetDeleted { owner, rtype, .. } => (owner, *rtype, Vec::new()),
                    _ => {
                        whole.insert(zone);
                        continue;
                    }
                };
                let Ok(owner) = Name::from_ascii(owner) else {
                    continue;
                };
                if whole.contains(&zone) {
                    continue;
                }
                let new: Vec<Vec<u8>> = records.into_iter().map(<[u8]>::to_vec).collect();
                let key = (zone.clone(), owner, rtype);
                let old = match overlay.get(&key) {
                    Some(old) => old.clone(),
                    None => rrset_before(&inner.before, &key),
                };
                builders.entry(zone).or_default().add(rtype, &old, &new);
                overlay.insert(key, new);
            }
            for (zone, builder) in builders {
                if let Some(step) = builder.finish() {
                    inner.zones.entry(zone).or_default().push(step);
                }
            }
        }
        for zone in whole {
            inner.zones.remove(&zone);
        }
        inner.before = after;
        inner.as_of = Some(up_to);
        touched
    }

    /// The steps from `serial` to `current`, in order; `None` when the journal does not
    /// reach back to `serial` or forward to `current` (the zone then goes whole).
    pub fn steps(&self, zone: &Name, serial: u32, current: u32) -> Option<Vec<Arc<Step>>> {
        let inner = self.lock();
        let steps = &inner.zones.get(zone)?.steps;
        let first = steps.iter().position(|step| step.from_serial == serial)?;
        let chain: Vec<Arc<Step>> = steps.iter().skip(first).cloned().collect();
        (chain.last()?.to_serial == current).then_some(chain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new()
    }
}

impl ZoneJournal {
    /// Adds `step`, forgetting the oldest steps past [`MAX_JOURNAL_RECORDS`].
    fn push(&mut self, step: Step) {
        self.records += step.records();
        self.steps.push_back(Arc::new(step));
        while self.records > MAX_JOURNAL_RECORDS {
            let Some(oldest) = self.steps.pop_front() else {
                break;
            };
            self.records -= oldest.records();
        }
    }
}

/// A change's zone as the journal keys it (lowercase).
fn zone_name(zone: &str) -> Option<Name> {
    Name::from_ascii(zone).ok().map(|name| name.to_lowercase())
}

/// The records of an RRset in the state before the batch, whole.
fn rrset_before(state: &ReplicatedState, (zone, owner, rtype): &RRsetKey) -> Vec<Vec<u8>> {
    let Some(rrset) = state
        .get(zone)
        .and_then(|zone| zone.rrset(owner, RecordType::from(*rtype)))
    else {
        return Vec::new();
    };
    rrset
        .rdata()
        .map(|rdata| rrset.record_wire(rdata))
        .collect()
}

/// One entry's difference to one zone, as its changes come.
#[derive(Default)]
struct Builder {
    soa: Option<(Vec<u8>, Vec<u8>)>,
    removed: Vec<Vec<u8>>,
    added: Vec<Vec<u8>>,
}

impl Builder {
    fn add(&mut self, rtype: u16, old: &[Vec<u8>], new: &[Vec<u8>]) {
        if rtype == u16::from(RecordType::SOA) {
            if let ([old], [new]) = (old, new) {
                self.soa = Some((old.clone(), new.clone()));
            }
            return;
        }
        let old_set: HashSet<&Vec<u8>> = old.iter().collect();
        let new_set: HashSet<&Vec<u8>> = new.iter().collect();
        let removed = old.iter().filter(|record| !new_set.contains(record));
        self.removed.extend(removed.cloned());
        let added = new.iter().filter(|record| !old_set.contains(record));
        self.added.extend(added.cloned());
    }

    /// The step, when the entry moved the zone's SOA (every edit bumps its serial).
    fn finish(self) -> Option<Step> {
        let (from_soa, to_soa) = self.soa?;
        Some(Step {
            from_serial: soa_serial(&from_soa)?,
            to_serial: soa_serial(&to_soa)?,
            from_soa,
            to_soa,
            removed: self.removed,
            added: self.added,
        })
    }
}

/// The serial of a whole SOA record: the first of the five numbers that end its RDATA.
pub fn soa_serial(record: &[u8]) -> Option<u32> {
    let at = record.len().checked_sub(20)?;
    let serial = record.get(at..at + 4)?;
    Some(u32::from_be_bytes([
        serial[0], serial[1], serial[2], serial[3],
    ]))
}

#[cfg(test)]
mod tests;
