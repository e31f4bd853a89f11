//! The model as changes: rebuilt from persisted [`Change`]s (a replica loaded from
//! disk, a snapshot installed), and written out as the changes that rebuild it.

use std::sync::Arc;

use hickory_proto::rr::RecordType;

use super::rules::{decode, parse_name};
use super::zone::put_change;
use super::{Change, CommandError, ReplicatedState, Zone};

impl ReplicatedState {
    /// Replays a persisted change (used when loading a replica from disk).
    pub fn apply_change(&mut self, change: &Change) -> Result<(), CommandError> {
        match change {
            Change::ZonePut { origin } => {
                let origin = parse_name(origin)?;
                self.zones
                    .entry(origin.clone())
                    .or_insert_with(|| Arc::new(Zone::new(origin)));
            }
            Change::ZoneDeleted { origin } => {
                self.zones.remove(&parse_name(origin)?);
            }
            Change::RRsetPut {
                zone,
                owner,
                rtype,
                records,
            } => {
                let zone = self.zone_mut(zone)?;
                let records = decode(records)?;
                zone.put_rrset(&parse_name(owner)?, RecordType::from(*rtype), &records)?;
            }
            Change::RRsetDeleted { zone, owner, rtype } => {
                let zone = self.zone_mut(zone)?;
                zone.put_rrset(&parse_name(owner)?, RecordType::from(*rtype), &[])?;
            }
            Change::LiteTokenPut { token } => {
                self.tokens.insert(token.name.clone(), token.clone());
            }
            Change::LiteTokenRevoked { name } => {
                self.tokens.remove(name);
            }
            Change::PluginPut { definition } => {
                self.plugins
                    .insert(definition.name.clone(), Arc::clone(definition));
            }
            Change::PluginDeleted { name } => {
                self.plugins.remove(name);
            }
            Change::JoinInvitePut { invite } => {
                self.invites.insert(invite.secret_sha256, invite.clone());
            }
            Change::JoinInviteRemoved { secret_sha256 } => {
                self.invites.remove(secret_sha256);
            }
            Change::IdempotencyKeyPut { record } => {
                self.idempotency.insert(record.key.clone(), record.clone());
            }
            Change::IdempotencyKeyRemoved { key } => {
                self.idempotency.remove(key);
            }
            Change::CookieSecretsPut { secrets } => self.cookie_secrets = Some(*secrets),
            Change::FollowedZonePut { .. } | Change::FollowedZoneRemoved { .. } => {
                self.replay_follow(change);
            }
            Change::SourcePut { name, owned } => self.replay_source(name, owned),
            Change::ExportPut { export } => {
                self.exports.insert(export.name.clone(), export.clone());
            }
            Change::ExportRemoved { name } => {
                self.exports.remove(name);
            }
            Change::ExportPeerPut { node_id, peer } => {
                self.export_peers.insert(*node_id, peer.clone());
            }
            Change::ExportPeerRemoved { node_id } => {
                self.export_peers.remove(node_id);
            }
        }
        Ok(())
    }

    /// Everything, as the changes that rebuild it from nothing: each zone's
    /// `ZonePut`, then its RRsets; then the Lite tokens; then the plugins; then the
    /// join invites; then the idempotency keys; then the cookie secrets; then the
    /// followed zones; then the record sources; then the exports and the nodes' export
    /// endpoints.
    pub fn to_changes(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        for zone in self.zones.values() {
            let origin = zone.origin.to_ascii();
            changes.push(Change::ZonePut {
                origin: origin.clone(),
            });
            changes.extend(zone.rrsets().map(|rrset| put_change(&origin, rrset)));
        }
        let tokens = self.tokens.values().cloned();
        changes.extend(tokens.map(|token| Change::LiteTokenPut { token }));
        let plugins = self.plugins.values().map(Arc::clone);
        changes.extend(plugins.map(|definition| Change::PluginPut { definition }));
        let invites = self.invites.values().cloned();
        changes.extend(invites.map(|invite| Change::JoinInvitePut { invite }));
        let records = self.idempotency.values().cloned();
        changes.extend(records.map(|record| Change::IdempotencyKeyPut { record }));
        let secrets = self.cookie_secrets;
        changes.extend(secrets.map(|secrets| Change::CookieSecretsPut { secrets }));
        let followed = self.followed.values().cloned();
        changes.extend(followed.map(|zone| Change::FollowedZonePut { zone }));
        changes.extend(self.source_changes());
        let exports = self.exports.values().cloned();
        changes.extend(exports.map(|export| Change::ExportPut { export }));
        let peers = self.export_peers.iter();
        changes.extend(peers.map(|(node_id, peer)| Change::ExportPeerPut {
            node_id: *node_id,
            peer: peer.clone(),
        }));
        changes
    }
}
