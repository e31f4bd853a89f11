//! Record sources: records an appliance reads from a file (an `/etc/hosts`-style file, a
//! DHCP server's leases) and proposes whole, as the source's desired set
//! ([`Command::SyncSource`]); the model keeps which RRsets each source owns, so the next
//! set replaces them and nothing else.
//!
//! **Invariant (the conflict rule):** a source never changes an RRset it does not own: a
//! name that already has records of that type written by hand (or by another source)
//! keeps them, and the source's records for it are left out. An RRset a source owns that
//! is later written by hand is the source's again at its next set. A name with a CNAME
//! gets no source records. A source's records outside every zone, or in a followed zone,
//! are left out.
//! **Boundary:** the ownership never leaves the cluster: [`Change::SourcePut`] has no zone
//! and no wire form; the records themselves travel as any records do.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::{Name, Record, RecordType};

use super::rules::{decode, normalize};
use super::{Change, CommandError, ReplicatedState};

/// An RRset a source owns: zone, owner, type (names absolute, lowercase).
pub type OwnedRRset = (String, String, u16);

/// Longest source name.
pub const MAX_SOURCE_NAME: usize = 64;

impl ReplicatedState {
    /// The RRsets the source `name` owns.
    pub fn source(&self, name: &str) -> Option<&BTreeSet<OwnedRRset>> {
        self.sources.get(name)
    }

    /// Makes the source `name`'s records `records` (its whole desired set): RRsets it
    /// owns that the set no longer has are deleted, the set's RRsets are put, unless
    /// the conflict rule leaves them out. Nothing changes (no serial moves) when the
    /// zones already hold the set.
    pub(super) fn sync_source(
        &mut self,
        name: &str,
        records: &[u8],
    ) -> Result<Vec<Change>, CommandError> {
        if name.is_empty() || name.len() > MAX_SOURCE_NAME {
            return Err(CommandError::BadSource(format!(
                "source name {name:?} must be 1 to {MAX_SOURCE_NAME} characters"
            )));
        }
        let mut desired: BTreeMap<(Name, RecordType), Vec<Record>> = BTreeMap::new();
        for record in decode(records)? {
            let key = (record.name.to_lowercase(), record.record_type());
            let set = desired.entry(key).or_default();
            if !set.iter().any(|kept| kept.data == record.data) {
                set.push(record);
            }
        }
        let before = self.sources.get(name).cloned().unwrap_or_default();
        let mut next = self.clone();
        let mut owned = BTreeSet::new();
        let mut touched = Vec::new();
        for ((owner, rtype), set) in desired {
            let Some(origin) = next.source_zone(&owner, rtype, &before) else {
                continue;
            };
            let key = (origin.to_ascii(), owner.to_ascii(), u16::from(rtype));
            owned.insert(key.clone());
            let set = normalize(set);
            let zone = next.zone_mut(&key.0)?;
            let current: Vec<Record> = (zone.rrset(&owner, rtype))
                .map(|rrset| rrset.records().collect())
                .unwrap_or_default();
            if same_records(&current, &set) {
                continue;
            }
            for record in &set {
                super::check_record(zone, record)?;
            }
            zone.put_rrset(&owner, rtype, &set)?;
            touched.push((origin, owner, rtype));
        }
        for (zone, owner, rtype) in before.difference(&owned) {
            let (Ok(origin), Ok(owner)) = (Name::from_ascii(zone), Name::from_ascii(owner)) else {
                continue;
            };
            let rtype = RecordType::from(*rtype);
            let Ok(zone) = next.zone_mut(zone) else {
                continue;
            };
            if zone.rrset(&owner, rtype).is_some() {
                zone.put_rrset(&owner, rtype, &[])?;
                touched.push((origin, owner, rtype));
            }
        }
        if touched.is_empty() && owned == before {
            return Ok(Vec::new());
        }
        let mut changes = next.finish_edit(touched)?;
        next.sources.insert(name.to_string(), owned.clone());
        changes.push(Change::SourcePut {
            name: name.to_string(),
            owned: owned.into_iter().collect(),
        });
        *self = next;
        Ok(changes)
    }

    /// The zone a source's RRset goes in, or `None` when the conflict rule leaves it out.
    fn source_zone(
        &self,
        owner: &Name,
        rtype: RecordType,
        owned: &BTreeSet<OwnedRRset>,
    ) -> Option<Name> {
        let zone = self.find_zone(owner)?;
        let origin = zone.origin().clone();
        if self.followed.contains_key(&origin.to_ascii()) {
            return None;
        }
        if zone.rrset(owner, RecordType::CNAME).is_some() && rtype != RecordType::CNAME {
            return None;
        }
        let key = (origin.to_ascii(), owner.to_ascii(), u16::from(rtype));
        let taken = zone.rrset(owner, rtype).is_some() && !owned.contains(&key);
        (!taken).then_some(origin)
    }

    pub(super) fn replay_source(&mut self, name: &str, owned: &[OwnedRRset]) {
        self.sources
            .insert(name.to_string(), owned.iter().cloned().collect());
    }

    pub(super) fn source_changes(&self) -> impl Iterator<Item = Change> + '_ {
        self.sources.iter().map(|(name, owned)| Change::SourcePut {
            name: name.clone(),
            owned: owned.iter().cloned().collect(),
        })
    }

    pub fn sources(&self) -> impl Iterator<Item = (&String, &BTreeSet<OwnedRRset>)> {
        self.sources.iter()
    }
}

/// Whether two RRsets hold the same records with the same TTL, in any order.
fn same_records(current: &[Record], desired: &[Record]) -> bool {
    current.len() == desired.len()
        && desired.iter().all(|record| {
            current
                .iter()
                .any(|kept| kept.data == record.data && kept.ttl == record.ttl)
        })
}

#[cfg(test)]
mod tests;
