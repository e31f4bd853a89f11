//! Followed zones (secondary zones, RFC 1034 section 4.3.5): zones the cluster takes from
//! an external primary by AXFR or IXFR instead of being written here.
//!
//! The leader transfers and proposes what it got: [`Command::TransferZone`] (a whole zone)
//! or [`Command::TransferChanges`] (an IXFR's RRsets, guarded by the serial they start
//! from), and [`Command::FollowStatus`] after each check (current, failed, expired). Every
//! node applies them, so every node and Lite client serves the same data; a followed zone
//! refuses every other write.
//!
//! **Invariant:** the data of a followed zone changes only through a transfer command, and
//! its SOA is the primary's, never bumped here. Applying never reads a clock: times come
//! in the commands.
//! **Boundary:** the follow settings (its TSIG secret among them) never leave the cluster:
//! [`Change::FollowedZonePut`] has no zone and no wire form, so no Lite client receives it.

use std::fmt;
use std::net::SocketAddr;

use hickory_proto::rr::{RData, RecordType};
use serde::{Deserialize, Serialize};

use super::rules::{decode, parse_name};
use super::{Change, Command, CommandError, ReplicatedState};

/// Most primaries one followed zone names.
pub const MAX_PRIMARIES: usize = 8;
/// The TSIG algorithms a followed zone may name (those `outpost-dns` signs with).
pub const TSIG_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];
/// Longest error text a follow status keeps.
const MAX_STATUS_ERROR: usize = 512;

/// A TSIG key, as the cluster keeps it for a followed zone.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, absolute, lowercase.
    pub name: String,
    pub algorithm: String,
    pub secret: Vec<u8>,
}

/// Never the secret: it would end up in logs.
impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A zone the cluster follows, and how its last refresh went.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FollowedZone {
    /// The zone, absolute, lowercase.
    pub origin: String,
    /// Where it is transferred from, tried in order.
    pub primaries: Vec<SocketAddr>,
    pub tsig: Option<TsigKey>,
    /// When the zone was last transferred or found current (unix seconds, the leader's
    /// clock); `None` before the first transfer.
    pub refreshed_unix: Option<u64>,
    /// Past the SOA's expire without a refresh: answered SERVFAIL (RFC 1035 section 3.3.13).
    pub expired: bool,
    /// Why the last attempt failed, `None` when it succeeded.
    pub last_error: Option<String>,
}

/// One RRset as an IXFR left it: its records (wire form), none when it was deleted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferredRRset {
    pub owner: String,
    pub rtype: u16,
    pub records: Vec<u8>,
}

impl ReplicatedState {
    pub fn followed(&self, origin: &str) -> Option<&FollowedZone> {
        self.followed.get(origin)
    }

    pub fn followed_zones(&self) -> impl Iterator<Item = &FollowedZone> {
        self.followed.values()
    }

    /// Whether the zone named `origin` (lowercase, absolute) is followed and cannot be
    /// answered from: expired, or never transferred yet.
    pub fn follow_unavailable(&self, origin: &str) -> bool {
        self.followed
            .get(origin)
            .is_some_and(|zone| zone.expired || zone.refreshed_unix.is_none())
    }

    pub(super) fn follow_zone(&mut self, zone: &FollowedZone) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(&zone.origin)?;
        let text = origin.to_ascii();
        if self.zones.contains_key(&origin) && !self.followed.contains_key(&text) {
            return Err(CommandError::ZoneIsLocal { origin: text });
        }
        if zone.primaries.is_empty() || zone.primaries.len() > MAX_PRIMARIES {
            return Err(CommandError::BadFollow(format!(
                "zone {text} needs 1 to {MAX_PRIMARIES} primaries"
            )));
        }
        if let Some(key) = &zone.tsig {
            parse_name(&key.name)?;
            if !TSIG_ALGORITHMS.contains(&key.algorithm.as_str()) || key.secret.is_empty() {
                return Err(CommandError::BadFollow(format!(
                    "TSIG key {} needs a non-empty secret and one of {}",
                    key.name,
                    TSIG_ALGORITHMS.join(", ")
                )));
            }
        }
        // A new setting keeps what the last refresh found.
        let previous = self.followed.get(&text);
        let zone = FollowedZone {
            origin: text.clone(),
            refreshed_unix: previous.and_then(|zone| zone.refreshed_unix),
            expired: previous.is_some_and(|zone| zone.expired),
            last_error: previous.and_then(|zone| zone.last_error.clone()),
            ..zone.clone()
        };
        self.followed.insert(text, zone.clone());
        Ok(vec![Change::FollowedZonePut { zone }])
    }

    /// Stops following `origin`: its data stays as a zone written here (`keep_data`) or
    /// goes.
    pub(super) fn unfollow_zone(
        &mut self,
        origin: &str,
        keep_data: bool,
    ) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(origin)?;
        let text = origin.to_ascii();
        if self.followed.remove(&text).is_none() {
            return Err(CommandError::NotFollowed { origin: text });
        }
        let mut changes = vec![Change::FollowedZoneRemoved {
            origin: text.clone(),
        }];
        if !keep_data && self.zones.remove(&origin).is_some() {
            changes.push(Change::ZoneDeleted { origin: text });
        }
        Ok(changes)
    }

    /// A whole zone from the primary: it replaces ours, the zone is current again.
    pub(super) fn transfer_zone(
        &mut self,
        origin: &str,
        records: &[u8],
        now_unix: u64,
    ) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(origin)?;
        let text = origin.to_ascii();
        let mut next = self.clone();
        let mut changes = next.refreshed(&text, now_unix)?;
        changes.extend(next.put_zone(origin, records)?);
        *self = next;
        Ok(changes)
    }

    /// An IXFR's result: each RRset as it now is, the SOA among them; refused unless the
    /// zone is at `from_serial` (the serial the IXFR started from), so a transfer
    /// proposed twice applies once.
    pub(super) fn transfer_changes(
        &mut self,
        origin: &str,
        from_serial: u32,
        rrsets: &[TransferredRRset],
        now_unix: u64,
    ) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(origin)?;
        let text = origin.to_ascii();
        let mut next = self.clone();
        let mut changes = next.refreshed(&text, now_unix)?;
        let serial = next
            .get(&origin)
            .and_then(|zone| zone.soa())
            .and_then(|soa| match soa.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            });
        if serial != Some(from_serial) {
            return Err(CommandError::TransferStale {
                origin: text,
                serial: serial.unwrap_or(0),
                from: from_serial,
            });
        }
        let zone = next.zone_mut(&text)?;
        let mut touched = Vec::with_capacity(rrsets.len());
        for rrset in rrsets {
            let owner = parse_name(&rrset.owner)?;
            let rtype = RecordType::from(rrset.rtype);
            let records = decode(&rrset.records)?;
            for record in &records {
                super::check_record(zone, record)?;
            }
            zone.put_rrset(&owner, rtype, &records)?;
            touched.push((owner, rtype));
        }
        zone.check_has_soa()?;
        for (owner, _) in &touched {
            zone.check_owner(owner)?;
        }
        let zone = &*zone;
        changes.extend(
            touched
                .iter()
                .map(|(owner, rtype)| zone.rrset_change(owner, *rtype)),
        );
        *self = next;
        Ok(changes)
    }

    /// The outcome of a refresh that transferred nothing: found current (`error` none),
    /// or failed, and whether the zone is now past its expire.
    pub(super) fn follow_status(
        &mut self,
        origin: &str,
        now_unix: u64,
        error: Option<&str>,
        expired: bool,
    ) -> Result<Vec<Change>, CommandError> {
        let text = parse_name(origin)?.to_ascii();
        if error.is_none() {
            return self.refreshed(&text, now_unix);
        }
        let zone = self.followed_mut(&text)?;
        zone.expired = expired;
        zone.last_error = error.map(|error| error.chars().take(MAX_STATUS_ERROR).collect());
        Ok(vec![Change::FollowedZonePut { zone: zone.clone() }])
    }

    /// Marks `origin` current as of `now_unix`.
    fn refreshed(&mut self, origin: &str, now_unix: u64) -> Result<Vec<Change>, CommandError> {
        let zone = self.followed_mut(origin)?;
        zone.refreshed_unix = Some(now_unix);
        zone.expired = false;
        zone.last_error = None;
        Ok(vec![Change::FollowedZonePut { zone: zone.clone() }])
    }

    fn followed_mut(&mut self, origin: &str) -> Result<&mut FollowedZone, CommandError> {
        self.followed
            .get_mut(origin)
            .ok_or_else(|| CommandError::NotFollowed {
                origin: origin.to_string(),
            })
    }

    /// Refuses `command` when it would write a followed zone by any way but a transfer.
    pub(super) fn refuse_followed_write(&self, command: &Command) -> Result<(), CommandError> {
        if self.followed.is_empty() {
            return Ok(());
        }
        let refuse = |origin: &str| match self.followed.contains_key(origin) {
            true => Err(CommandError::ZoneFollowed {
                origin: origin.to_string(),
            }),
            false => Ok(()),
        };
        let zone_of = |owner: &str| -> Result<(), CommandError> {
            let owner = parse_name(owner)?;
            match self.find_zone(&owner) {
                Some(zone) => refuse(&zone.origin().to_ascii()),
                None => Ok(()),
            }
        };
        match command {
            Command::CreateZone { origin, .. }
            | Command::ReplaceZone { origin, .. }
            | Command::DeleteZone { origin } => refuse(&parse_name(origin)?.to_ascii()),
            Command::ReplaceRRset { owner, .. } | Command::DeleteRecords { owner, .. } => {
                zone_of(owner)
            }
            Command::AddRecords { records } => decode(records)?
                .iter()
                .try_for_each(|record| zone_of(&record.name.to_ascii())),
            Command::Batch { commands } => commands
                .iter()
                .try_for_each(|command| self.refuse_followed_write(command)),
            Command::Once { command, .. } => self.refuse_followed_write(command),
            _ => Ok(()),
        }
    }

    pub(super) fn replay_follow(&mut self, change: &Change) {
        match change {
            Change::FollowedZonePut { zone } => {
                self.followed.insert(zone.origin.clone(), zone.clone());
            }
            Change::FollowedZoneRemoved { origin } => {
                self.followed.remove(origin);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
