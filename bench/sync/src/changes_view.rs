//! The entry indexes of a `Changes` body, read without copying a record.
//!
//! A session of this bench only needs `up_to` and, per entry, its index and how many
//! changes it holds. [`outpost_core::sync::Frame::decode`] builds every change
//! (three allocations each); at 1,000 sessions on the same two cores as the appliance
//! that is seconds of CPU for one 10,000-record import, charged to the figures. This
//! view borrows instead. `sync-bench fanout --full-decode` uses the core decoder, to
//! see the difference.
//!
//! **Invariant:** the layout mirrors `outpost_core::sync::wire::{Changes, ChangeEntry,
//! WireChange}` field for field (postcard has no tags); the tests below encode with
//! the core types and read back with these, so a protocol change breaks them first.

use serde::Deserialize;

/// What a session records from one `Changes` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct ChangesSummary {
    pub up_to: u64,
    /// `(index, changes in this frame's part of the entry)`.
    pub entries: Vec<(u64, usize)>,
}

#[derive(Deserialize)]
struct ChangesView<'a> {
    up_to: u64,
    #[serde(borrow)]
    entries: Vec<EntryView<'a>>,
}

#[derive(Deserialize)]
struct EntryView<'a> {
    index: u64,
    #[serde(borrow)]
    changes: Vec<ChangeView<'a>>,
}

/// Variant for variant `WireChange`; the fields are read only to step over them.
#[derive(Deserialize)]
#[allow(dead_code)] // reason: fields exist to mirror the layout, never read
enum ChangeView<'a> {
    ZonePut {
        origin: &'a str,
    },
    ZoneDeleted {
        origin: &'a str,
    },
    RRsetPut {
        zone: &'a str,
        owner: &'a str,
        rtype: u16,
        // `Vec<u8>` is a postcard sequence of bytes: a varint length and the raw
        // bytes, the same layout as a borrowed byte slice.
        records: &'a [u8],
    },
    RRsetDeleted {
        zone: &'a str,
        owner: &'a str,
        rtype: u16,
    },
    DefinitionPut {
        kind: &'a str,
        name: &'a str,
        version: u64,
        body: &'a [u8],
    },
    DefinitionDeleted {
        kind: &'a str,
        name: &'a str,
    },
}

/// Reads a `Changes` body (the bytes after the 10-byte header).
/// The same for a `ChangesAfter` body (protocol 3): `after`, then a `Changes` body.
pub fn read_changes_after(body: &[u8]) -> Result<ChangesSummary, String> {
    let (_after, rest): (u64, _) = postcard::take_from_bytes(body)
        .map_err(|e| format!("ChangesAfter body does not decode: {e}"))?;
    read_changes(rest)
}

pub fn read_changes(body: &[u8]) -> Result<ChangesSummary, String> {
    let (view, rest): (ChangesView<'_>, _) = postcard::take_from_bytes(body)
        .map_err(|e| format!("Changes body does not decode: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "Changes body has {} bytes left over after it",
            rest.len()
        ));
    }
    Ok(ChangesSummary {
        up_to: view.up_to,
        entries: view
            .entries
            .iter()
            .map(|entry| (entry.index, entry.changes.len()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use outpost_core::sync::{
        ChangeEntry, Changes, Frame, HEADER_LEN, MAX_FRAME_BODY, WireChange, frame_type,
        split_batch,
    };

    use super::*;

    fn every_variant() -> Vec<WireChange> {
        vec![
            WireChange::ZonePut {
                origin: "bench.test.".into(),
            },
            WireChange::ZoneDeleted {
                origin: "old.test.".into(),
            },
            WireChange::RRsetPut {
                zone: "bench.test.".into(),
                owner: "h000001.bench.test.".into(),
                rtype: 1,
                records: vec![7; 300],
            },
            WireChange::RRsetDeleted {
                zone: "bench.test.".into(),
                owner: "gone.bench.test.".into(),
                rtype: 28,
            },
            WireChange::DefinitionPut {
                kind: "plugin".into(),
                name: "block".into(),
                version: 1 << 40,
                body: vec![1, 2, 3],
            },
            WireChange::DefinitionDeleted {
                kind: "policy".into(),
                name: "night".into(),
            },
        ]
    }

    #[test]
    fn reads_what_the_core_encoder_writes() {
        let changes = Changes {
            up_to: 300_000,
            entries: vec![
                ChangeEntry {
                    index: 299_999,
                    changes: every_variant(),
                },
                ChangeEntry {
                    index: 300_000,
                    changes: vec![],
                },
            ],
        };
        let bytes = Frame::Changes(changes).encode().unwrap();
        let (kind, body) = Frame::read_header(&bytes).unwrap();
        assert_eq!(kind, frame_type::CHANGES);
        assert_eq!(
            read_changes(body).unwrap(),
            ChangesSummary {
                up_to: 300_000,
                entries: vec![(299_999, 6), (300_000, 0)],
            }
        );
    }

    #[test]
    fn reads_every_frame_of_a_split_batch() {
        let big = (0..20_000)
            .map(|host| WireChange::RRsetPut {
                zone: "bench.test.".into(),
                owner: format!("h{host:06}.bench.test."),
                rtype: 1,
                records: vec![0; 40],
            })
            .collect();
        let entries = vec![ChangeEntry {
            index: 42,
            changes: big,
        }];
        let frames = split_batch(42, entries, MAX_FRAME_BODY).unwrap();
        assert!(frames.len() > 1, "the entry should not fit one frame");
        let mut total = 0;
        for frame in &frames {
            let bytes = Frame::Changes(frame.clone()).encode().unwrap();
            let summary = read_changes(&bytes[HEADER_LEN..]).unwrap();
            assert_eq!(summary.up_to, frame.up_to);
            total += summary.entries.iter().map(|(_, n)| n).sum::<usize>();
        }
        assert_eq!(total, 20_000);
    }

    #[test]
    fn refuses_bytes_left_over() {
        let bytes = Frame::Changes(Changes {
            up_to: 1,
            entries: vec![],
        })
        .encode()
        .unwrap();
        let mut body = bytes[HEADER_LEN..].to_vec();
        body.push(0);
        assert!(read_changes(&body).is_err());
    }
}
