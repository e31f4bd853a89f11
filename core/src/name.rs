//! Names as index keys: lowercase DNS wire bytes (`\x03www\x07example\x00`).
//!
//! In wire form every ancestor of a name is a suffix of its bytes, so the query path
//! walks from a name to its zone apex by slicing one stack buffer: no allocation and
//! no label-by-label comparison (the cost that dominates hickory's own zone store).

use std::cmp::Ordering;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// The longest name in wire form (RFC 1035 section 2.3.4).
pub const MAX_WIRE_LEN: usize = 255;
/// A 255-byte name has at most 127 labels plus the root.
const MAX_LABELS: usize = 128;

/// The lowercase wire form of `name`, as an owned index key.
pub fn key_of(name: &Name) -> Box<[u8]> {
    let mut bytes = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        // A label is at most 63 bytes: `Name` refuses longer ones.
        bytes.push(label.len() as u8);
        bytes.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    bytes.push(0);
    bytes.into_boxed_slice()
}

/// A name being looked up: its lowercase wire form on the stack, with the offset at
/// which each label starts.
#[derive(Clone)]
pub struct LookupName {
    bytes: [u8; MAX_WIRE_LEN],
    len: usize,
    label_starts: [u8; MAX_LABELS],
    labels: usize,
}

impl LookupName {
    /// Returns `None` for a name whose wire form exceeds 255 bytes (hickory refuses to
    /// build one, so this is only a guard).
    pub fn new(name: &Name) -> Option<Self> {
        let mut lookup = Self {
            bytes: [0; MAX_WIRE_LEN],
            len: 0,
            label_starts: [0; MAX_LABELS],
            labels: 0,
        };
        for label in name.iter() {
            let end = lookup.len + 1 + label.len();
            if end >= MAX_WIRE_LEN || lookup.labels >= MAX_LABELS {
                return None;
            }
            lookup.label_starts[lookup.labels] = lookup.len as u8;
            lookup.labels += 1;
            lookup.bytes[lookup.len] = label.len() as u8;
            for (slot, byte) in lookup.bytes[lookup.len + 1..end].iter_mut().zip(label) {
                *slot = byte.to_ascii_lowercase();
            }
            lookup.len = end;
        }
        // The terminating root label is already zero.
        lookup.len += 1;
        Some(lookup)
    }

    /// Number of labels, not counting the root.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// The whole name as a key.
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The ancestor left after removing the `skip` leftmost labels (`skip == labels()`
    /// gives the root).
    pub fn ancestor(&self, skip: usize) -> &[u8] {
        let start = if skip >= self.labels {
            self.len - 1
        } else {
            usize::from(self.label_starts[skip])
        };
        &self.bytes[start..self.len]
    }
}

/// The name a key stands for; `None` for bytes that are not a wire name (keys made by
/// [`key_of`] always are).
pub fn name_of_key(key: &[u8]) -> Option<Name> {
    Name::read(&mut BinDecoder::new(key)).ok()
}

/// The ancestors of a key, nearest first, ending with the root: each is a suffix of
/// `key`. Stops early at bytes that are not a wire name.
pub fn ancestors(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = key;
    std::iter::from_fn(move || {
        let len = usize::from(*rest.first()?);
        if len == 0 {
            return None;
        }
        rest = rest.get(1 + len..)?;
        Some(rest)
    })
}

/// Compares two keys in DNS canonical order (RFC 4034 section 6.1): label by label
/// from the root, each label as a string of (lowercase) bytes, a name before its
/// descendants. This is the order of hickory's `Name`, so sorted keys list names as a
/// sorted `Vec<Name>` would.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (a_starts, a_labels) = label_starts(a);
    let (b_starts, b_labels) = label_starts(b);
    let a_rev = a_starts[..a_labels].iter().rev();
    let b_rev = b_starts[..b_labels].iter().rev();
    for (&a_start, &b_start) in a_rev.zip(b_rev) {
        match label(a, a_start).cmp(label(b, b_start)) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
    a_labels.cmp(&b_labels)
}

/// The label of `key` whose length byte is at `start`, without the length byte.
fn label(key: &[u8], start: u8) -> &[u8] {
    let start = usize::from(start);
    let len = key.get(start).map_or(0, |&len| usize::from(len));
    key.get(start + 1..start + 1 + len).unwrap_or_default()
}

/// Where each label of a key starts, and how many labels it has (the root not
/// counted).
fn label_starts(key: &[u8]) -> ([u8; MAX_LABELS], usize) {
    let mut starts = [0; MAX_LABELS];
    let mut labels = 0;
    let mut at = 0;
    while let Some(&len) = key.get(at) {
        if len == 0 || labels == MAX_LABELS || at > MAX_WIRE_LEN {
            break;
        }
        starts[labels] = at as u8;
        labels += 1;
        at += 1 + usize::from(len);
    }
    (starts, labels)
}

/// The wildcard name `*.<parent>` for a parent given as a wire key.
pub fn wildcard_key(parent: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parent.len() + 2);
    key.extend_from_slice(&[1, b'*']);
    key.extend_from_slice(parent);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_suffixes_and_case_is_folded() {
        let name = Name::from_ascii("WWW.Example.Internal.").unwrap();
        let lookup = LookupName::new(&name).unwrap();
        assert_eq!(lookup.labels(), 3);
        assert_eq!(lookup.key(), &*key_of(&name));
        assert_eq!(lookup.key(), b"\x03www\x07example\x08internal\x00");
        assert_eq!(lookup.ancestor(1), b"\x07example\x08internal\x00");
        assert_eq!(lookup.ancestor(2), b"\x08internal\x00");
        assert_eq!(lookup.ancestor(3), b"\x00");
        assert_eq!(lookup.ancestor(9), b"\x00");
    }

    #[test]
    fn root_name() {
        let lookup = LookupName::new(&Name::root()).unwrap();
        assert_eq!(lookup.labels(), 0);
        assert_eq!(lookup.key(), b"\x00");
    }

    #[test]
    fn keys_sort_in_canonical_order() {
        // RFC 4034 section 6.1's example.
        let sorted: [&[&[u8]]; 9] = [
            &[b"example"],
            &[b"a", b"example"],
            &[b"yljkjljk", b"a", b"example"],
            &[b"Z", b"a", b"example"],
            &[b"zABC", b"a", b"EXAMPLE"],
            &[b"z", b"example"],
            &[&[1], b"z", b"example"],
            &[b"*", b"z", b"example"],
            &[&[200], b"z", b"example"],
        ];
        let names: Vec<Name> = sorted
            .iter()
            .map(|labels| Name::from_labels(labels.iter().copied()).unwrap())
            .collect();
        let mut keys: Vec<Box<[u8]>> = names.iter().rev().map(key_of).collect();
        keys.sort_by(|a, b| canonical_cmp(a, b));
        let expected: Vec<Box<[u8]>> = names.iter().map(key_of).collect();
        assert_eq!(keys, expected);
        let mut by_name = names.clone();
        by_name.reverse();
        by_name.sort();
        assert_eq!(by_name, names, "the same order as hickory's Name");
        assert_eq!(canonical_cmp(b"\x00", b"\x00"), Ordering::Equal);
    }

    #[test]
    fn keys_decode_to_their_names_and_list_their_ancestors() {
        let name = Name::from_ascii("www.example.internal.").unwrap();
        let key = key_of(&name);
        assert_eq!(name_of_key(&key), Some(name));
        let all: Vec<&[u8]> = ancestors(&key).collect();
        assert_eq!(
            all,
            [
                &b"\x07example\x08internal\x00"[..],
                b"\x08internal\x00",
                b"\x00"
            ]
        );
        assert_eq!(ancestors(b"\x05ab").count(), 0, "a cut-off key ends early");
        assert_eq!(name_of_key(b"\x05ab"), None);
    }

    #[test]
    fn wildcard_of_parent() {
        assert_eq!(wildcard_key(b"\x03dev\x00"), b"\x01*\x03dev\x00");
    }
}
