//! Applying a [`Command`]: [`ReplicatedState::apply_at`] names one step per command; the
//! zone edits (whole zones, added records, RRsets) are here, the plugin, join invite and
//! idempotency key commands in their own modules. A step checks every rule on a copy
//! before it keeps anything, so a refused command changes nothing.

use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};

use super::rules::{check_token_name, decode, normalize, refuse_soa_delete};
use super::zone::{delete_records, put_change};
use super::{
    Change, Command, CommandError, LiteToken, ReplicatedState, Zone, check_record, parse_name,
};
use crate::name::key_of;
use crate::packed::{Owner, PackedRRset};

impl ReplicatedState {
    /// Applies one command. On error nothing changed.
    pub fn apply(&mut self, command: &Command) -> Result<Vec<Change>, CommandError> {
        self.apply_at(0, command)
    }

    /// Applies the command of the log entry at `index` (remembered with an idempotency
    /// key). On error nothing changed.
    pub fn apply_at(&mut self, index: u64, command: &Command) -> Result<Vec<Change>, CommandError> {
        self.refuse_followed_write(command)?;
        match command {
            Command::CreateZone { origin, records } => self.create_zone(origin, records),
            Command::ReplaceZone { origin, records } => {
                let origin = parse_name(origin)?;
                self.put_zone(origin, records)
            }
            Command::DeleteZone { origin } => self.delete_zone(origin),
            Command::AddRecords { records } => self.add_records(records),
            Command::ReplaceRRset {
                owner,
                rtype,
                records,
            } => self.replace_rrset(owner, *rtype, records),
            Command::DeleteRecords {
                owner,
                rtype,
                records,
            } => self.delete_records(owner, *rtype, records),
            Command::PutLiteToken { token } => self.put_lite_token(token),
            Command::RevokeLiteToken { name } => self.revoke_lite_token(name),
            Command::PutPlugin {
                definition,
                restart,
            } => self.put_plugin(definition, *restart),
            Command::DeletePlugin { name } => self.delete_plugin(name),
            Command::PutJoinInvite { invite, now_unix } => self.put_join_invite(invite, *now_unix),
            Command::UseJoinInvite {
                secret_sha256,
                node_id,
            } => self.use_join_invite(secret_sha256, *node_id),
            Command::RetireNode { node_id } => Ok(self.retire_node(*node_id)),
            Command::Once {
                key,
                now_unix,
                command,
            } => self.apply_once(index, key, *now_unix, command),
            Command::Batch { commands } => self.apply_batch(index, commands),
            Command::RotateCookieSecret {
                secret,
                now_unix,
                replaces,
            } => self.rotate_cookie_secret(*secret, *now_unix, *replaces),
            Command::FollowZone { zone } => self.follow_zone(zone),
            Command::UnfollowZone { origin, keep_data } => self.unfollow_zone(origin, *keep_data),
            Command::TransferZone {
                origin,
                records,
                now_unix,
            } => self.transfer_zone(origin, records, *now_unix),
            Command::TransferChanges {
                origin,
                from_serial,
                rrsets,
                now_unix,
            } => self.transfer_changes(origin, *from_serial, rrsets, *now_unix),
            Command::FollowStatus {
                origin,
                now_unix,
                error,
                expired,
            } => self.follow_status(origin, *now_unix, error.as_deref(), *expired),
            Command::SyncSource { name, records } => self.sync_source(name, records),
            Command::PutExport { export } => self.put_export(export),
            Command::RemoveExport { name } => self.remove_export(name),
            Command::SetExportPeer { node_id, peer } => {
                self.set_export_peer(*node_id, peer.as_ref())
            }
        }
    }

    /// Applies every command of a batch, or none.
    fn apply_batch(
        &mut self,
        index: u64,
        commands: &[Command],
    ) -> Result<Vec<Change>, CommandError> {
        // A copy is cheap (zones are shared behind `Arc`s), and every command
        // already edits a copy of its zone.
        let mut next = self.clone();
        let mut changes = Vec::new();
        for command in commands {
            if matches!(command, Command::Once { .. }) {
                return Err(CommandError::OnceNested);
            }
            changes.extend(next.apply_at(index, command)?);
        }
        *self = next;
        Ok(changes)
    }

    fn create_zone(&mut self, origin: &str, records: &[u8]) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(origin)?;
        if self.zones.contains_key(&origin) {
            return Err(CommandError::ZoneExists {
                origin: origin.to_ascii(),
            });
        }
        self.put_zone(origin, records)
    }

    fn delete_zone(&mut self, origin: &str) -> Result<Vec<Change>, CommandError> {
        let origin = parse_name(origin)?;
        match self.zones.remove(&origin) {
            Some(_) => Ok(vec![Change::ZoneDeleted {
                origin: origin.to_ascii(),
            }]),
            None => Err(CommandError::NoSuchZone {
                origin: origin.to_ascii(),
            }),
        }
    }

    fn replace_rrset(
        &mut self,
        owner: &str,
        rtype: u16,
        records: &[u8],
    ) -> Result<Vec<Change>, CommandError> {
        let owner = parse_name(owner)?;
        let rtype = RecordType::from(rtype);
        let records = decode(records)?;
        self.edit_zone_of(&owner, |zone| {
            for record in &records {
                check_record(zone, record)?;
                if record.name.to_lowercase() != owner || record.record_type() != rtype {
                    return Err(CommandError::BadRecords(format!(
                        "record {} does not belong to the RRset {owner} {rtype}",
                        record.name
                    )));
                }
            }
            if records.is_empty() {
                refuse_soa_delete(zone, &owner, Some(rtype))?;
            }
            zone.put_rrset(&owner, rtype, &normalize(records.clone()))?;
            zone.check_owner(&owner)?;
            Ok(vec![(owner.clone(), rtype)])
        })
    }

    fn delete_records(
        &mut self,
        owner: &str,
        rtype: Option<u16>,
        records: &[u8],
    ) -> Result<Vec<Change>, CommandError> {
        let owner = parse_name(owner)?;
        let rtype = rtype.map(RecordType::from);
        let records = decode(records)?;
        self.edit_zone_of(&owner, |zone| delete_records(zone, &owner, rtype, &records))
    }

    fn revoke_lite_token(&mut self, name: &str) -> Result<Vec<Change>, CommandError> {
        match self.tokens.remove(name) {
            Some(_) => Ok(vec![Change::LiteTokenRevoked {
                name: name.to_owned(),
            }]),
            None => Err(CommandError::NoSuchToken {
                name: name.to_owned(),
            }),
        }
    }

    fn put_lite_token(&mut self, token: &LiteToken) -> Result<Vec<Change>, CommandError> {
        check_token_name(&token.name)?;
        if token.zones.is_empty() {
            return Err(CommandError::TokenWithoutZones);
        }
        let zones = token
            .zones
            .iter()
            .map(|zone| parse_name(zone).map(|name| name.to_ascii()))
            .collect::<Result<Vec<_>, _>>()?;
        if self.tokens.contains_key(&token.name) {
            return Err(CommandError::TokenExists {
                name: token.name.clone(),
            });
        }
        let token = LiteToken {
            zones,
            ..token.clone()
        };
        self.tokens.insert(token.name.clone(), token.clone());
        Ok(vec![Change::LiteTokenPut { token }])
    }

    pub(super) fn put_zone(
        &mut self,
        origin: Name,
        records: &[u8],
    ) -> Result<Vec<Change>, CommandError> {
        let records = decode(records)?;
        let mut zone = Zone::new(origin.clone());
        // Sorted into runs of one owner each, so every owner is packed once, and the
        // owners arrive in order for the set to be built densely in one pass.
        let mut records = records;
        for record in &mut records {
            check_record(&zone, record)?;
            record.name = record.name.to_lowercase();
        }
        records.sort_by(|a, b| (&a.name, a.record_type()).cmp(&(&b.name, b.record_type())));
        let mut owners = Vec::new();
        let mut rest = records.as_slice();
        while let Some(first) = rest.first() {
            let owner_run = rest.iter().take_while(|r| r.name == first.name).count();
            let (mut at_owner, tail) = rest.split_at(owner_run);
            rest = tail;
            let mut rrsets = Vec::new();
            while let Some(head) = at_owner.first() {
                let rtype = head.record_type();
                let run = at_owner
                    .iter()
                    .take_while(|r| r.record_type() == rtype)
                    .count();
                let (set, tail) = at_owner.split_at(run);
                at_owner = tail;
                let mut unique: Vec<Record> = Vec::with_capacity(set.len());
                for record in set {
                    if !unique.iter().any(|kept| kept.data == record.data) {
                        unique.push(record.clone());
                    }
                }
                let packed = PackedRRset::pack(rtype, &normalize(unique))
                    .map_err(|e| CommandError::BadRecords(e.to_string()))?;
                rrsets.push(packed);
            }
            owners.push(Owner::new(&key_of(&first.name), &rrsets));
        }
        drop(records);
        zone.owners = owners.into_iter().collect();
        zone.check_has_soa()?;
        for node in &zone.owners {
            zone.check_node(node)?;
        }
        let mut changes = Vec::with_capacity(zone.owners.len() + 2);
        if self.zones.contains_key(&origin) {
            changes.push(Change::ZoneDeleted {
                origin: origin.to_ascii(),
            });
        }
        let origin_text = origin.to_ascii();
        changes.push(Change::ZonePut {
            origin: origin_text.clone(),
        });
        changes.extend(zone.rrsets().map(|rrset| put_change(&origin_text, rrset)));
        self.zones.insert(origin, Arc::new(zone));
        Ok(changes)
    }

    fn add_records(&mut self, records: &[u8]) -> Result<Vec<Change>, CommandError> {
        let records = decode(records)?;
        let mut next = self.clone();
        let mut touched: Vec<(Name, Name, RecordType)> = Vec::new();
        for record in records {
            let owner = record.name.to_lowercase();
            let origin = next
                .find_zone(&owner)
                .map(|zone| zone.origin.clone())
                .ok_or_else(|| CommandError::NotInAnyZone {
                    name: owner.to_ascii(),
                })?;
            let zone = next.zone_mut(&origin.to_ascii())?;
            check_record(zone, &record)?;
            let mut record = record;
            record.name = owner.clone();
            let rtype = record.record_type();
            let mut set: Vec<Record> = (zone.rrset(&owner, rtype))
                .map(|set| set.records().collect())
                .unwrap_or_default();
            let ttl = record.ttl;
            if !set.iter().any(|existing| existing.data == record.data) {
                set.push(record);
            }
            for member in set.iter_mut() {
                member.ttl = ttl;
            }
            zone.put_rrset(&owner, rtype, &set)?;
            zone.check_owner(&owner)?;
            touched.push((origin, owner, rtype));
        }
        let changes = next.finish_edit(touched)?;
        *self = next;
        Ok(changes)
    }

    /// Runs `edit` on a copy of the zone holding `owner`; keeps the result only if
    /// the edit succeeded.
    fn edit_zone_of(
        &mut self,
        owner: &Name,
        edit: impl FnOnce(&mut Zone) -> Result<Vec<(Name, RecordType)>, CommandError>,
    ) -> Result<Vec<Change>, CommandError> {
        let zone = self
            .find_zone(owner)
            .ok_or_else(|| CommandError::NotInAnyZone {
                name: owner.to_ascii(),
            })?;
        let origin = zone.origin.clone();
        let mut copy = zone.clone();
        let touched = edit(&mut copy)?;
        let mut next = self.clone();
        next.zones.insert(origin.clone(), Arc::new(copy));
        let changes = next.finish_edit(
            touched
                .into_iter()
                .map(|(owner, rtype)| (origin.clone(), owner, rtype))
                .collect(),
        )?;
        *self = next;
        Ok(changes)
    }

    /// Bumps the serial of every touched zone and lists the final state of every
    /// touched RRset (the SOA included).
    pub(super) fn finish_edit(
        &mut self,
        mut touched: Vec<(Name, Name, RecordType)>,
    ) -> Result<Vec<Change>, CommandError> {
        let mut origins: Vec<Name> = touched
            .iter()
            .map(|(origin, _, _)| origin.clone())
            .collect();
        origins.sort();
        origins.dedup();
        for origin in &origins {
            let zone = self.zone_mut(&origin.to_ascii())?;
            zone.bump_serial()?;
            touched.push((origin.clone(), origin.clone(), RecordType::SOA));
        }
        touched.sort();
        touched.dedup();
        let mut changes = Vec::with_capacity(touched.len());
        for (origin, owner, rtype) in touched {
            if let Some(zone) = self.zones.get(&origin) {
                changes.push(zone.rrset_change(&owner, rtype));
            }
        }
        Ok(changes)
    }
}
