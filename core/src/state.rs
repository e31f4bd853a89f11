//! The authoritative model: zones of RRsets, the commands that change them and the
//! changes they produce.
//!
//! Every replica applies the same committed [`Command`]s in the same order, so
//! [`ReplicatedState::apply`] is deterministic: it reads nothing but its input and the model.
//!
//! **Invariant:** every zone has exactly one SOA, at its apex; a name that owns a
//! CNAME owns nothing else and only one CNAME; every owner is at or below its zone's
//! origin; all records of an RRset share one TTL (RFC 2181 section 5.2); names are
//! stored lowercase.
//! **Invariant:** a refused command changes nothing.
//! **Boundary:** [`Command`] and [`Change`] are serialized into the Raft log, redb and
//! (later) the sync stream; their records are DNS wire bytes ([`crate::wire`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use serde::{Deserialize, Serialize};

use crate::name::key_of;
use crate::packed::{Owner, PackedRRset};

mod definitions;
mod idempotency;
mod invites;
mod nesting;
mod rules;
mod zone;
pub use definitions::{
    FailureMode, Hook, MAX_PLUGIN_BYTES, MAX_PLUGIN_NAME, PluginDefinition, check_plugin_name,
};
pub use idempotency::{
    IDEMPOTENCY_WINDOW_SECS, IdempotencyRecord, MAX_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEYS,
    check_idempotency_key,
};
pub use invites::{JoinInvite, MAX_JOIN_INVITES};
pub use nesting::MAX_COMMAND_NESTING;
pub use rules::{check_record, parse_name};
use rules::{check_token_name, decode, normalize, refuse_soa_delete};
pub use zone::Zone;
use zone::{delete_records, put_change};

/// Largest TTL a record may carry (RFC 2181 section 8: 2^31 - 1).
pub const MAX_TTL: u32 = i32::MAX as u32;

/// A write, as proposed through Raft. Names are absolute, in presentation form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Creates a zone from its initial records, which must include the SOA.
    CreateZone {
        origin: String,
        records: Vec<u8>,
    },
    /// Creates or replaces a whole zone in one step (a master-file import).
    ReplaceZone {
        origin: String,
        records: Vec<u8>,
    },
    DeleteZone {
        origin: String,
    },
    /// Adds records to the RRsets of their owners, in the deepest zone holding each;
    /// the RRset takes the TTL of the added record.
    AddRecords {
        records: Vec<u8>,
    },
    /// Replaces one RRset; an empty `records` deletes it.
    ReplaceRRset {
        owner: String,
        rtype: u16,
        records: Vec<u8>,
    },
    /// Deletes the given records (matched by data) or, when `records` is empty, the
    /// RRset of `rtype` or every RRset at `owner` when `rtype` is `None`.
    DeleteRecords {
        owner: String,
        rtype: Option<u16>,
        records: Vec<u8>,
    },
    /// Creates a Lite token (only the hash of its secret is replicated).
    PutLiteToken {
        token: LiteToken,
    },
    /// Revokes a Lite token: its sessions are closed and it is refused from now on.
    RevokeLiteToken {
        name: String,
    },
    /// Installs a plugin, or replaces the one of the same name (the version is set
    /// by the model). The same definition again changes nothing unless `restart`:
    /// then it gets a new version, which every node loads afresh (a plugin stopped
    /// after repeated failures runs again).
    PutPlugin {
        definition: PluginDefinition,
        restart: bool,
    },
    DeletePlugin {
        name: String,
    },
    /// Several commands as one write: all of them apply, or none (a write whose
    /// record transform adds records outside the RRset or zone it replaces).
    Batch {
        #[serde(deserialize_with = "nesting::nested")]
        commands: Vec<Command>,
    },
    /// Adds a join invite (only the hash of its secret is replicated) after pruning
    /// the invites expired at `now_unix`, the proposer's clock.
    PutJoinInvite {
        invite: JoinInvite,
        now_unix: u64,
    },
    /// Marks a join invite used by `node_id`, which is about to be added.
    UseJoinInvite {
        secret_sha256: [u8; 32],
        node_id: u64,
    },
    /// Forgets the invites `node_id` used, as it leaves the cluster: its old ticket no
    /// longer admits it (a removed node comes back only as a new node).
    RetireNode {
        node_id: u64,
    },
    /// `command` under an idempotency key: applied once; applied again with the same key
    /// (a retry), it changes nothing and answers [`CommandError::AlreadyApplied`].
    /// `now_unix` is the proposer's clock, against which old keys expire.
    Once {
        key: String,
        now_unix: u64,
        #[serde(deserialize_with = "nesting::nested")]
        command: Box<Command>,
    },
}

/// A Lite client's credential: which zones it may see. The secret itself is shown to
/// the operator once and never stored; only its SHA-256 travels through Raft.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiteToken {
    pub name: String,
    /// Origins of the zones the holder may see (absolute, lowercase).
    pub zones: Vec<String>,
    pub secret_sha256: [u8; 32],
}

/// Longest Lite token name.
pub const MAX_TOKEN_NAME: usize = 64;

/// What a command did, RRset by RRset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Change {
    ZonePut {
        origin: String,
    },
    ZoneDeleted {
        origin: String,
    },
    /// The whole RRset as it now is (records in wire form).
    RRsetPut {
        zone: String,
        owner: String,
        rtype: u16,
        records: Vec<u8>,
    },
    RRsetDeleted {
        zone: String,
        owner: String,
        rtype: u16,
    },
    LiteTokenPut {
        token: LiteToken,
    },
    LiteTokenRevoked {
        name: String,
    },
    /// A plugin definition as it now is (installed or updated).
    PluginPut {
        definition: Arc<PluginDefinition>,
    },
    PluginDeleted {
        name: String,
    },
    /// A join invite as it now is (open, or used by a node).
    JoinInvitePut {
        invite: JoinInvite,
    },
    /// An expired invite, pruned.
    JoinInviteRemoved {
        secret_sha256: [u8; 32],
    },
    /// A write applied under an idempotency key.
    IdempotencyKeyPut {
        record: IdempotencyRecord,
    },
    /// An idempotency key forgotten (expired, or the oldest when full).
    IdempotencyKeyRemoved {
        key: String,
    },
}

impl Change {
    /// The zone this change touches; `None` for changes that are not zone data.
    pub fn zone(&self) -> Option<&str> {
        match self {
            Change::ZonePut { origin } | Change::ZoneDeleted { origin } => Some(origin),
            Change::RRsetPut { zone, .. } | Change::RRsetDeleted { zone, .. } => Some(zone),
            Change::LiteTokenPut { .. }
            | Change::LiteTokenRevoked { .. }
            | Change::PluginPut { .. }
            | Change::PluginDeleted { .. }
            | Change::JoinInvitePut { .. }
            | Change::JoinInviteRemoved { .. }
            | Change::IdempotencyKeyPut { .. }
            | Change::IdempotencyKeyRemoved { .. } => None,
        }
    }
}

/// Why a command was refused. Messages name the value and the fix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("{name:?} is not a valid domain name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("zone {origin} already exists (import a master file to replace it)")]
    ZoneExists { origin: String },
    #[error("zone {origin} does not exist")]
    NoSuchZone { origin: String },
    #[error("{name} is not inside any zone served here (create the zone first)")]
    NotInAnyZone { name: String },
    #[error("{name} is outside zone {zone}")]
    OutOfZone { name: String, zone: String },
    #[error(
        "{name} has a CNAME, which cannot coexist with other records at the same name (RFC 1034 section 3.6.2)"
    )]
    CnameConflict { name: String },
    #[error("{name} would have {count} CNAME records; a name has at most one")]
    CnameMultiple { name: String, count: usize },
    #[error(
        "zone {zone} has no SOA record at its apex (add one: \"@ SOA ns1 hostmaster 1 7200 3600 1209600 300\")"
    )]
    SoaMissing { zone: String },
    #[error("SOA record at {name} is not at the apex of zone {zone}")]
    SoaNotAtApex { name: String, zone: String },
    #[error("zone {zone} would have {count} SOA records; it must have exactly one")]
    SoaMultiple { zone: String, count: usize },
    #[error("the SOA of {zone} cannot be deleted (delete the zone instead)")]
    SoaDelete { zone: String },
    #[error("TTL {ttl} of {name} is out of range (0 to {MAX_TTL} seconds)")]
    TtlOutOfRange { name: String, ttl: u32 },
    #[error("record type {rtype} is not supported in zones here")]
    UnsupportedType { rtype: String },
    #[error("class {class} of {name} is not supported (only IN)")]
    WrongClass { name: String, class: String },
    #[error("{name}: \"*\" is only allowed as the leftmost label of a wildcard owner")]
    WildcardPosition { name: String },
    #[error("no {rtype} record at {name} matches")]
    NoSuchRecord { name: String, rtype: String },
    #[error("records could not be read: {0}")]
    BadRecords(String),
    #[error(
        "Lite token name {name:?} is not valid (use 1 to {MAX_TOKEN_NAME} of a-z, 0-9, '-' and '.')"
    )]
    InvalidTokenName { name: String },
    #[error("a Lite token named {name} already exists (revoke it first)")]
    TokenExists { name: String },
    #[error("no Lite token is named {name}")]
    NoSuchToken { name: String },
    #[error("a Lite token must name at least one zone")]
    TokenWithoutZones,
    #[error(
        "plugin name {name:?} is not valid (use 1 to {MAX_PLUGIN_NAME} of a-z, 0-9, '-' and '_')"
    )]
    InvalidPluginName { name: String },
    #[error(
        "plugin {name} is {bytes} bytes of component and configuration; at most {MAX_PLUGIN_BYTES} fit"
    )]
    PluginTooLarge { name: String, bytes: usize },
    #[error("plugin {name}: the component's SHA-256 does not match the one given")]
    PluginHashMismatch { name: String },
    #[error("no plugin is named {name}")]
    NoSuchPlugin { name: String },
    #[error("a join invite must be open and expire in the future")]
    InviteNotOpen,
    #[error("a join invite with this secret already exists")]
    InviteExists,
    #[error(
        "the cluster already holds {MAX_JOIN_INVITES} open join invites: use one or wait for one to expire"
    )]
    TooManyInvites,
    #[error("the join ticket's secret is not known to the cluster (never issued, or expired)")]
    NoSuchInvite,
    #[error("the join ticket was already used by node {node_id}: ask for a new invite")]
    InviteUsed { node_id: u64 },
    /// Not a refusal: the write under this idempotency key was applied before, at
    /// `index` (the store answers it as that first success).
    #[error("this write was already applied, at index {index}")]
    AlreadyApplied { index: u64 },
    #[error(
        "idempotency key {key:?} is not valid (use 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters)"
    )]
    InvalidIdempotencyKey { key: String },
    #[error("an idempotency key wraps one whole write, not another keyed write")]
    OnceNested,
}

/// All zones served here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicatedState {
    zones: BTreeMap<Name, Arc<Zone>>,
    /// The Lite tokens that may read zones, by name. Replicated with the zones so
    /// every node of a cluster checks the same tokens.
    tokens: BTreeMap<String, LiteToken>,
    /// Installed plugins, by name.
    plugins: BTreeMap<String, Arc<PluginDefinition>>,
    /// Join invites, open or used, by the SHA-256 of their secret.
    invites: BTreeMap<[u8; 32], JoinInvite>,
    /// Writes applied under an idempotency key, by key.
    idempotency: BTreeMap<String, IdempotencyRecord>,
}

impl ReplicatedState {
    pub fn get(&self, origin: &Name) -> Option<&Zone> {
        self.zones.get(&origin.to_lowercase()).map(|zone| &**zone)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values().map(|zone| &**zone)
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn lite_token(&self, name: &str) -> Option<&LiteToken> {
        self.tokens.get(name)
    }

    pub fn lite_tokens(&self) -> impl Iterator<Item = &LiteToken> {
        self.tokens.values()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The deepest zone that contains `name`.
    pub fn find_zone(&self, name: &Name) -> Option<&Zone> {
        let name = name.to_lowercase();
        (0..=name.num_labels())
            .map(|keep| name.trim_to(usize::from(name.num_labels() - keep)))
            .find_map(|ancestor| self.zones.get(&ancestor))
            .map(|zone| &**zone)
    }

    /// Applies one command. On error nothing changed.
    pub fn apply(&mut self, command: &Command) -> Result<Vec<Change>, CommandError> {
        self.apply_at(0, command)
    }

    /// Applies the command of the log entry at `index` (remembered with an idempotency
    /// key). On error nothing changed.
    pub fn apply_at(&mut self, index: u64, command: &Command) -> Result<Vec<Change>, CommandError> {
        match command {
            Command::CreateZone { origin, records } => {
                let origin = parse_name(origin)?;
                if self.zones.contains_key(&origin) {
                    return Err(CommandError::ZoneExists {
                        origin: origin.to_ascii(),
                    });
                }
                self.put_zone(origin, records)
            }
            Command::ReplaceZone { origin, records } => {
                let origin = parse_name(origin)?;
                self.put_zone(origin, records)
            }
            Command::DeleteZone { origin } => {
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
            Command::AddRecords { records } => self.add_records(records),
            Command::ReplaceRRset {
                owner,
                rtype,
                records,
            } => {
                let owner = parse_name(owner)?;
                let rtype = RecordType::from(*rtype);
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
            Command::DeleteRecords {
                owner,
                rtype,
                records,
            } => {
                let owner = parse_name(owner)?;
                let rtype = rtype.map(RecordType::from);
                let records = decode(records)?;
                self.edit_zone_of(&owner, |zone| delete_records(zone, &owner, rtype, &records))
            }
            Command::PutLiteToken { token } => self.put_lite_token(token),
            Command::RevokeLiteToken { name } => match self.tokens.remove(name) {
                Some(_) => Ok(vec![Change::LiteTokenRevoked { name: name.clone() }]),
                None => Err(CommandError::NoSuchToken { name: name.clone() }),
            },
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
            Command::Batch { commands } => {
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
        }
        Ok(())
    }

    /// Everything, as the changes that rebuild it from nothing: each zone's
    /// `ZonePut`, then its RRsets; then the Lite tokens; then the plugins; then the
    /// join invites; then the idempotency keys.
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
        changes
    }

    fn zone_mut(&mut self, origin: &str) -> Result<&mut Zone, CommandError> {
        let origin = parse_name(origin)?;
        match self.zones.get_mut(&origin) {
            Some(zone) => Ok(Arc::make_mut(zone)),
            None => Err(CommandError::NoSuchZone {
                origin: origin.to_ascii(),
            }),
        }
    }

    fn put_zone(&mut self, origin: Name, records: &[u8]) -> Result<Vec<Change>, CommandError> {
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
    fn finish_edit(
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

#[cfg(test)]
mod tests;
