//! `Frame::decode` on hostile input: it never panics and never allocates more than a
//! frame body's worth, whatever lengths the bytes claim.
//!
//! A test binary of its own because it swaps in a counting global allocator
//! (`allocation-counter`), which should not slow every other test down. The input is
//! pseudo-random from a fixed seed, so a failure reproduces exactly.

use outpost_core::sync::{
    Ack, ChangeEntry, Changes, ChangesAfter, Cursor, ErrorFrame, Frame, FrameError, HEADER_LEN,
    Heartbeat, Hello, MAGIC, MAX_FRAME_BODY, ResyncRequired, SnapshotBegin, SnapshotChunk,
    SnapshotEnd, SyncMode, Welcome, WireChange,
};

const RANDOM_INPUTS: usize = 20_000;
const MUTATED_INPUTS: usize = 20_000;

/// SplitMix64: small, fast and good enough to spread inputs over the decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Bytes that lean towards the values decoders find interesting.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.below(8) {
                0 => 0,
                1 => 0xff,
                2 => 0x80 | self.byte(),
                3 => self.below(12) as u8,
                _ => self.byte(),
            })
            .collect()
    }
}

fn samples() -> Vec<Frame> {
    let put = WireChange::RRsetPut {
        zone: "example.internal.".into(),
        owner: "www.example.internal.".into(),
        rtype: 1,
        records: vec![
            3, b'w', b'w', b'w', 0, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 7,
        ],
    };
    let changes = vec![
        WireChange::ZonePut {
            origin: "example.internal.".into(),
        },
        put,
        WireChange::RRsetDeleted {
            zone: "example.internal.".into(),
            owner: "old.example.internal.".into(),
            rtype: 28,
        },
        WireChange::DefinitionPut {
            kind: "plugin".into(),
            name: "p".into(),
            version: 2,
            body: vec![0, 97, 115, 109],
        },
        WireChange::DefinitionDeleted {
            kind: "policy".into(),
            name: "q".into(),
        },
        WireChange::ZoneDeleted {
            origin: "gone.internal.".into(),
        },
    ];
    vec![
        Frame::Hello(Hello {
            client_id: "laptop".into(),
            token: "secret".into(),
            cursor: Some(Cursor {
                cluster_id: "c".into(),
                index: 300,
            }),
            min_version: 1,
            max_version: 3,
        }),
        Frame::Welcome(Welcome {
            version: 1,
            cluster_id: "c".into(),
            head: 301,
            zones: vec!["example.internal.".into()],
            mode: SyncMode::Resume,
        }),
        Frame::SnapshotBegin(SnapshotBegin { as_of: 9 }),
        Frame::SnapshotChunk(SnapshotChunk {
            changes: changes.clone(),
        }),
        Frame::SnapshotEnd(SnapshotEnd { as_of: 9 }),
        Frame::Changes(Changes {
            up_to: 302,
            entries: vec![
                ChangeEntry {
                    index: 301,
                    changes: changes.clone(),
                },
                ChangeEntry {
                    index: 302,
                    changes,
                },
            ],
        }),
        Frame::Heartbeat(Heartbeat { head: 302 }),
        Frame::ResyncRequired(ResyncRequired {
            reason: "queue full".into(),
        }),
        Frame::Error(ErrorFrame {
            code: 4003,
            message: "revoked".into(),
        }),
        Frame::Ack(Ack { cursor: 302 }),
        Frame::ChangesAfter(ChangesAfter {
            after: 302,
            changes: Changes {
                up_to: 303,
                entries: vec![ChangeEntry {
                    index: 303,
                    changes: Vec::new(),
                }],
            },
        }),
    ]
}

/// Sets the header's length to what follows it, so the body decoder gets the input.
fn fix_length(bytes: &mut [u8]) {
    if let Some(body_len) = bytes.len().checked_sub(HEADER_LEN) {
        let declared = u32::try_from(body_len).unwrap().to_be_bytes();
        bytes[6..HEADER_LEN].copy_from_slice(&declared);
    }
}

/// Random bytes; most get a sound header so that they reach the body decoder.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(96);
    let body = rng.bytes(len);
    if rng.below(4) == 0 {
        return body;
    }
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&(rng.below(13) as u16).to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&body);
    fix_length(&mut bytes);
    bytes
}

/// A valid frame with one to four random edits.
fn mutated_input(rng: &mut Rng, valid: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = valid[rng.below(valid.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = rng.byte(),
            2 => bytes.insert(at, rng.byte()),
            3 if at < bytes.len() => drop(bytes.remove(at)),
            4 => bytes.truncate(at),
            5 => {
                let len = rng.below(16);
                let extra = rng.bytes(len);
                bytes.splice(at..at, extra);
            }
            // A huge length or count in the body: 0xff.. varints.
            _ => {
                let run = rng.below(10) + 1;
                let end = (at + run).min(bytes.len());
                bytes[at..end].fill(0xff);
            }
        }
    }
    if rng.below(4) != 0 {
        fix_length(&mut bytes);
    }
    bytes
}

/// Decodes `bytes`, checks what the decoder promises and returns the peak of heap
/// bytes it held.
fn decode_checked(bytes: &[u8]) -> u64 {
    let mut result = None;
    let info = allocation_counter::measure(|| result = Some(Frame::decode(bytes)));
    if let Some(Ok(Some(frame))) = result {
        let encoded = frame.encode().unwrap();
        assert_eq!(
            Frame::decode(&encoded).unwrap(),
            Some(frame),
            "{bytes:02x?}"
        );
    }
    assert!(
        info.bytes_max <= MAX_FRAME_BODY as u64,
        "decoding {bytes:02x?} held {} bytes",
        info.bytes_max
    );
    info.bytes_max
}

#[test]
fn sync_decode_survives_random_and_mutated_input_within_the_memory_cap() {
    let mut rng = Rng(0x0b57_5eed);
    let valid: Vec<Vec<u8>> = samples().iter().map(|f| f.encode().unwrap()).collect();
    let mut peak = 0;
    let mut decoded = 0;
    for _ in 0..RANDOM_INPUTS {
        let bytes = random_input(&mut rng);
        peak = peak.max(decode_checked(&bytes));
        decoded += usize::from(matches!(Frame::decode(&bytes), Ok(Some(_))));
    }
    for _ in 0..MUTATED_INPUTS {
        let bytes = mutated_input(&mut rng, &valid);
        peak = peak.max(decode_checked(&bytes));
        decoded += usize::from(matches!(Frame::decode(&bytes), Ok(Some(_))));
    }
    // The inputs are under 1 KiB. Postcard sizes a vector by the bytes left, so one
    // can cost up to (bytes left) x (element size, 88 for a WireChange): about 36 KiB
    // here. Far above that, a length read off the wire drove an allocation.
    assert!(peak < 64 * 1024, "peak {peak} bytes");
    // Enough inputs got past the header to exercise the body decoder.
    assert!(decoded > 1_000, "only {decoded} inputs decoded");
}

#[test]
fn sync_huge_declared_lengths_allocate_nothing_or_little() {
    // A header claiming 4 GiB - 1: refused before any allocation.
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&4u16.to_be_bytes());
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    let info = allocation_counter::measure(|| {
        assert!(matches!(
            Frame::decode(&bytes),
            Err(FrameError::TooLarge { .. })
        ));
    });
    assert_eq!(info.bytes_total, 0);

    // A SnapshotChunk claiming 2^63 changes, and a Changes frame whose entry claims
    // 2^63 changes of an RRsetPut claiming 2^63 record bytes: postcard sizes vectors
    // by the bytes present, so these allocate about nothing.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let mut chunk_body = huge.to_vec();
    chunk_body.push(2);
    let mut changes_body = vec![1, 1, 5];
    changes_body.extend_from_slice(&huge);
    changes_body.extend_from_slice(&[2, 1, b'z', 1, b'o', 1]);
    changes_body.extend_from_slice(&huge);
    for (frame_type, body) in [(4u16, chunk_body), (6, changes_body)] {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&frame_type.to_be_bytes());
        bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&body);
        let peak = decode_checked(&bytes);
        assert!(peak < 4 * 1024, "type {frame_type}: peak {peak} bytes");
        assert!(matches!(
            Frame::decode(&bytes),
            Err(FrameError::BadBody { .. })
        ));
    }
}
