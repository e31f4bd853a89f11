//! The document an export is: which keys, what their values hold, and how a reader puts
//! them back together (`docs/iroh-docs.md`, format 1).
//!
//! | key                                   | value (postcard)                          |
//! |---------------------------------------|-------------------------------------------|
//! | `h`                                   | [`Head`]: the index, the zones, every key |
//! | `d` + len + kind + len + name         | one `WireChange::DefinitionPut`           |
//! | `z` + u16 len + origin + bucket (u8)  | `Vec<WireChange>`: the `RRsetPut`s of the owners of that bucket |
//!
//! A zone's owners fall in [`BUCKETS`] buckets by the SHA-256 of the owner's name, so a
//! change rewrites one bucket (a few hundred RRsets in a 100,000-record zone), not the
//! zone, and a reader fetches one blob per bucket, not one per RRset. Only buckets that
//! hold something are written.
//!
//! **Invariant:** no key is a prefix of another (iroh-docs would let the shorter one
//! delete the longer): every key starts with its kind byte and its variable parts are
//! length-prefixed.
//! **Invariant:** the document of an export at index `i` is a function of the state at
//! `i` alone, so every node that writes it at `i` writes the same bytes, and entries
//! written with timestamp `i` agree whichever node signed them.
//! **Boundary:** the keys, [`Head`] and the values are read by other versions of
//! Outpost: [`FORMAT`] changes when they do.

use std::collections::BTreeMap;

use outpost_core::state::{Change, Export, ReplicatedState, parse_name};
use outpost_core::sync::{WireChange, to_wire};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The layout's version, in every [`Head`].
pub const FORMAT: u16 = 1;
/// Buckets per zone.
pub const BUCKETS: usize = 256;
/// The key of the [`Head`].
pub const HEAD_KEY: &[u8] = b"h";
/// The largest head a reader takes (a few hundred keys per zone fit in far less).
pub const MAX_HEAD_BYTES: usize = 4 << 20;
/// The largest value a reader takes: a plugin definition (component and config) is at
/// most `MAX_PLUGIN_BYTES`, under the sync stream's largest change.
pub const MAX_VALUE_BYTES: usize = outpost_core::sync::MAX_CHANGE_LEN;

/// The entry that says which set of entries makes the document at `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub format: u16,
    /// The cluster whose Raft log `index` is an index of.
    pub cluster_id: String,
    pub index: u64,
    /// The export's zones that exist at `index` (absolute, lowercase).
    pub zones: Vec<String>,
    /// Every other key of the document and the BLAKE3 hash and length of its value.
    pub entries: Vec<HeadEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadEntry {
    pub key: Vec<u8>,
    pub hash: [u8; 32],
    pub len: u64,
}

/// An export's whole document at one index: its head and every other key's value.
#[derive(Debug)]
pub struct Document {
    pub head: Head,
    pub values: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("the head is format {0}; this version reads format {FORMAT}")]
    Format(u16),
    #[error("{what} does not decode: {reason}")]
    Decode { what: String, reason: String },
    #[error("{key} holds {change}, which does not belong there")]
    Misplaced { key: String, change: String },
}

/// The document of `export` in `state`, the state after `index` of cluster `cluster_id`.
pub fn document(
    state: &ReplicatedState,
    export: &Export,
    cluster_id: &str,
    index: u64,
) -> Document {
    let mut values = BTreeMap::new();
    for definition in state.plugins() {
        let change = Change::PluginPut {
            definition: definition.clone(),
        };
        if let Some(wire @ WireChange::DefinitionPut { .. }) = to_wire(&change) {
            let WireChange::DefinitionPut { kind, name, .. } = &wire else {
                unreachable!("matched above");
            };
            values.insert(definition_key(kind, name), encode(&wire));
        }
    }
    let mut zones = Vec::new();
    for origin in &export.zones {
        let zone = parse_name(origin).ok().and_then(|name| state.get(&name));
        let Some(zone) = zone else {
            continue;
        };
        zones.push(origin.clone());
        let mut buckets: BTreeMap<u8, Vec<WireChange>> = BTreeMap::new();
        for rrset in zone.rrsets() {
            let owner = rrset.owner().to_ascii();
            buckets
                .entry(bucket_of(&owner))
                .or_default()
                .push(WireChange::RRsetPut {
                    zone: origin.clone(),
                    owner,
                    rtype: u16::from(rrset.record_type()),
                    records: rrset.to_wire(),
                });
        }
        for (bucket, changes) in buckets {
            values.insert(zone_key(origin, bucket), encode(&changes));
        }
    }
    let entries = values
        .iter()
        .map(|(key, value)| HeadEntry {
            key: key.clone(),
            hash: *iroh_blobs::Hash::new(value).as_bytes(),
            len: value.len() as u64,
        })
        .collect();
    Document {
        head: Head {
            format: FORMAT,
            cluster_id: cluster_id.to_string(),
            index,
            zones,
            entries,
        },
        values,
    }
}

/// The changes that rebuild the document's state from nothing, handed to `each` a value
/// at a time, in the order a snapshot sends them: the definitions, then each zone's
/// `ZonePut` and its buckets' RRsets. `value` gives the bytes of each key the head lists
/// (already checked against its hash). One bucket is decoded at a time, so a large
/// export is never held twice.
pub fn assemble<'a, E: From<LayoutError>>(
    head: &Head,
    mut value: impl FnMut(&[u8]) -> &'a [u8],
    mut each: impl FnMut(Vec<WireChange>) -> Result<(), E>,
) -> Result<(), E> {
    if head.format != FORMAT {
        return Err(LayoutError::Format(head.format).into());
    }
    for entry in head
        .entries
        .iter()
        .filter(|entry| entry.key.first() == Some(&b'd'))
    {
        each(vec![definition(&entry.key, value(&entry.key))?])?;
    }
    for origin in &head.zones {
        each(vec![WireChange::ZonePut {
            origin: origin.clone(),
        }])?;
        let buckets = head.entries.iter().filter(|entry| {
            entry.key.first() == Some(&b'z') && key_zone(&entry.key) == Some(origin.as_str())
        });
        for entry in buckets {
            let shown = describe_key(&entry.key);
            let changes = decode::<Vec<WireChange>>(value(&entry.key), &shown)?;
            if let Some(stray) = changes.iter().find(
                |change| !matches!(change, WireChange::RRsetPut { zone, .. } if zone == origin),
            ) {
                return Err(LayoutError::Misplaced {
                    key: shown,
                    change: stray.describe(),
                }
                .into());
            }
            each(changes)?;
        }
    }
    // Keys of a kind a later format adds, and buckets of zones the head does not list,
    // are not read.
    Ok(())
}

/// The changes that take the state of `old` to that of `new`, from the values whose hash
/// differs: definitions put or deleted, then RRsets put or deleted, bucket by changed
/// bucket. `None` when the two do not hold the same zones (or clusters): then only the
/// whole of `new` will do.
pub fn diff<'a, 'b>(
    old: &Head,
    old_value: impl Fn(&[u8]) -> &'a [u8],
    new: &Head,
    new_value: impl Fn(&[u8]) -> &'b [u8],
) -> Result<Option<Vec<WireChange>>, LayoutError> {
    if new.format != FORMAT {
        return Err(LayoutError::Format(new.format));
    }
    if old.zones != new.zones || old.cluster_id != new.cluster_id || old.format != FORMAT {
        return Ok(None);
    }
    let hashes = |head: &Head| -> BTreeMap<Vec<u8>, [u8; 32]> {
        head.entries
            .iter()
            .map(|entry| (entry.key.clone(), entry.hash))
            .collect()
    };
    let (before, after) = (hashes(old), hashes(new));
    let changed: Vec<&Vec<u8>> = before
        .keys()
        .chain(after.keys())
        .filter(|key| before.get(*key) != after.get(*key))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut changes = Vec::new();
    for key in changed.iter().filter(|key| key.first() == Some(&b'd')) {
        match after.contains_key(*key) {
            true => changes.push(definition(key, new_value(key))?),
            false => {
                if let WireChange::DefinitionPut { kind, name, .. } =
                    definition(key, old_value(key))?
                {
                    changes.push(WireChange::DefinitionDeleted { kind, name });
                }
            }
        }
    }
    for key in changed.iter().filter(|key| key.first() == Some(&b'z')) {
        let Some(origin) = key_zone(key).filter(|origin| new.zones.iter().any(|z| z == origin))
        else {
            continue;
        };
        let gone = before.contains_key(*key).then(|| old_value(key));
        let came = after.contains_key(*key).then(|| new_value(key));
        changes.extend(bucket_changes(key, origin, gone, came)?);
    }
    Ok(Some(changes))
}

/// The value of a `d` key: one definition, nothing else.
fn definition(key: &[u8], bytes: &[u8]) -> Result<WireChange, LayoutError> {
    let shown = describe_key(key);
    match decode::<WireChange>(bytes, &shown)? {
        change @ WireChange::DefinitionPut { .. } => Ok(change),
        other => Err(LayoutError::Misplaced {
            key: shown,
            change: other.describe(),
        }),
    }
}

/// The RRsets put and deleted between two versions of one bucket (`None`: absent).
fn bucket_changes(
    key: &[u8],
    origin: &str,
    gone: Option<&[u8]>,
    came: Option<&[u8]>,
) -> Result<Vec<WireChange>, LayoutError> {
    let rrsets = |bytes: Option<&[u8]>| -> Result<BTreeMap<(String, u16), Vec<u8>>, LayoutError> {
        let mut rrsets = BTreeMap::new();
        let Some(bytes) = bytes else {
            return Ok(rrsets);
        };
        let shown = describe_key(key);
        for change in decode::<Vec<WireChange>>(bytes, &shown)? {
            match change {
                WireChange::RRsetPut {
                    zone,
                    owner,
                    rtype,
                    records,
                } if zone == origin => {
                    rrsets.insert((owner, rtype), records);
                }
                other => {
                    return Err(LayoutError::Misplaced {
                        key: shown,
                        change: other.describe(),
                    });
                }
            }
        }
        Ok(rrsets)
    };
    let (gone, came) = (rrsets(gone)?, rrsets(came)?);
    let mut changes = Vec::new();
    for ((owner, rtype), records) in &came {
        if gone.get(&(owner.clone(), *rtype)) != Some(records) {
            changes.push(WireChange::RRsetPut {
                zone: origin.to_string(),
                owner: owner.clone(),
                rtype: *rtype,
                records: records.clone(),
            });
        }
    }
    for (owner, rtype) in gone.keys().filter(|key| !came.contains_key(*key)) {
        changes.push(WireChange::RRsetDeleted {
            zone: origin.to_string(),
            owner: owner.clone(),
            rtype: *rtype,
        });
    }
    Ok(changes)
}

/// Decodes a head's bytes.
pub fn decode_head(bytes: &[u8]) -> Result<Head, LayoutError> {
    let head: Head = decode(bytes, "the head")?;
    if head.format != FORMAT {
        return Err(LayoutError::Format(head.format));
    }
    Ok(head)
}

pub fn encode_head(head: &Head) -> Vec<u8> {
    encode(head)
}

/// The bucket of an owner name (absolute, lowercase).
pub fn bucket_of(owner: &str) -> u8 {
    Sha256::digest(owner.as_bytes())[0]
}

pub fn zone_key(origin: &str, bucket: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(origin.len() + 4);
    key.push(b'z');
    key.extend_from_slice(&(origin.len() as u16).to_be_bytes());
    key.extend_from_slice(origin.as_bytes());
    key.push(bucket);
    key
}

pub fn definition_key(kind: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + name.len() + 3);
    key.push(b'd');
    key.push(kind.len() as u8);
    key.extend_from_slice(kind.as_bytes());
    key.push(name.len() as u8);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The zone a `z` key names, if it is well formed.
fn key_zone(key: &[u8]) -> Option<&str> {
    let len = usize::from(u16::from_be_bytes([*key.get(1)?, *key.get(2)?]));
    let origin = key.get(3..3 + len)?;
    (key.len() == 3 + len + 1).then_some(())?;
    std::str::from_utf8(origin).ok()
}

/// A key as logs and errors show it.
pub fn describe_key(key: &[u8]) -> String {
    match key.first() {
        Some(b'z') => match key_zone(key) {
            Some(origin) => format!("zone {origin} bucket {}", key[key.len() - 1]),
            None => format!("a malformed zone key ({} bytes)", key.len()),
        },
        Some(b'd') => format!("definition key ({} bytes)", key.len()),
        Some(b'h') if key == HEAD_KEY => "the head".to_string(),
        _ => format!("an unknown key ({} bytes)", key.len()),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encodes owned data to a Vec")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, LayoutError> {
    postcard::from_bytes(bytes).map_err(|error| LayoutError::Decode {
        what: what.to_string(),
        reason: error.to_string(),
    })
}
