//! Names as index keys: lowercase DNS wire bytes (`\x03www\x07example\x00`).
//!
//! In wire form every ancestor of a name is a suffix of its bytes, so the query path
//! walks from a name to its zone apex by slicing one stack buffer: no allocation and
//! no label-by-label comparison (the cost that dominates hickory's own zone store).

use hickory_proto::rr::Name;

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
    fn wildcard_of_parent() {
        assert_eq!(wildcard_key(b"\x03dev\x00"), b"\x01*\x03dev\x00");
    }
}
