//! Pins the sync protocol's bytes: `sync-vectors.txt` holds one fixed example of each
//! frame, as `name hex`. Encoding the examples must give exactly those bytes and
//! decoding the bytes must give the examples back, so a change to a wire type (a
//! reordered field, a new variant in the middle) fails here before it reaches a
//! laptop that has been offline for months.
//!
//! The file is written once and then only appended to: a line never changes within a
//! protocol version. A new example fails with the line to add.

use outpost_core::sync::{
    Ack, ChangeEntry, Changes, ChangesAfter, Cursor, ErrorFrame, Frame, Heartbeat, Hello,
    ResyncRequired, SnapshotBegin, SnapshotChunk, SnapshotEnd, SyncMode, Welcome, WireChange,
    close,
};

const VECTORS: &str = include_str!("sync-vectors.txt");

/// `www.example.internal. 300 IN A 10.0.0.7` in DNS wire form.
fn a_record() -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in ["www", "example", "internal"] {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 7]);
    bytes
}

fn examples() -> Vec<(&'static str, Frame)> {
    let every_change = vec![
        WireChange::ZonePut {
            origin: "example.internal.".into(),
        },
        WireChange::ZoneDeleted {
            origin: "old.internal.".into(),
        },
        WireChange::RRsetPut {
            zone: "example.internal.".into(),
            owner: "www.example.internal.".into(),
            rtype: 1,
            records: a_record(),
        },
        WireChange::RRsetDeleted {
            zone: "example.internal.".into(),
            owner: "gone.example.internal.".into(),
            rtype: 28,
        },
        WireChange::DefinitionPut {
            kind: "plugin".into(),
            name: "block-ads".into(),
            version: 3,
            body: b"\0asm".to_vec(),
        },
        WireChange::DefinitionDeleted {
            kind: "policy".into(),
            name: "office".into(),
        },
    ];
    vec![
        (
            "hello",
            Frame::Hello(Hello {
                client_id: "laptop-7".into(),
                token: "opl_s3cret".into(),
                cursor: Some(Cursor {
                    cluster_id: "c1".into(),
                    index: 1_000,
                }),
                min_version: 1,
                max_version: 1,
            }),
        ),
        (
            "hello-first-start",
            Frame::Hello(Hello {
                client_id: "laptop-8".into(),
                token: "opl_s3cret".into(),
                cursor: None,
                min_version: 1,
                max_version: 2,
            }),
        ),
        (
            "welcome-resume",
            Frame::Welcome(Welcome {
                version: 1,
                cluster_id: "c1".into(),
                head: 1_002,
                zones: vec!["example.internal.".into(), "corp.internal.".into()],
                mode: SyncMode::Resume,
            }),
        ),
        (
            "welcome-snapshot",
            Frame::Welcome(Welcome {
                version: 1,
                cluster_id: "c1".into(),
                head: 1_002,
                zones: vec!["example.internal.".into()],
                mode: SyncMode::Snapshot,
            }),
        ),
        (
            "snapshot-begin",
            Frame::SnapshotBegin(SnapshotBegin { as_of: 1_002 }),
        ),
        (
            "snapshot-chunk",
            Frame::SnapshotChunk(SnapshotChunk {
                changes: every_change.clone(),
            }),
        ),
        (
            "snapshot-end",
            Frame::SnapshotEnd(SnapshotEnd { as_of: 1_002 }),
        ),
        (
            "changes",
            Frame::Changes(Changes {
                up_to: 1_003,
                entries: vec![ChangeEntry {
                    index: 1_003,
                    changes: every_change,
                }],
            }),
        ),
        (
            "changes-nothing-in-scope",
            Frame::Changes(Changes {
                up_to: 1_004,
                entries: Vec::new(),
            }),
        ),
        ("heartbeat", Frame::Heartbeat(Heartbeat { head: 1_004 })),
        (
            "resync-required",
            Frame::ResyncRequired(ResyncRequired {
                reason: "session queue full".into(),
            }),
        ),
        (
            "error",
            Frame::Error(ErrorFrame {
                code: close::UNAUTHORIZED,
                message: "token laptop-7 was revoked".into(),
            }),
        ),
        ("ack", Frame::Ack(Ack { cursor: 1_004 })),
        (
            "changes-after",
            Frame::ChangesAfter(ChangesAfter {
                after: 1_004,
                changes: Changes {
                    up_to: 1_005,
                    entries: Vec::new(),
                },
            }),
        ),
    ]
}

/// The vectors file's `name hex` lines; `#` starts a comment line.
fn vectors() -> Vec<(&'static str, &'static str)> {
    VECTORS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once(' ')
                .unwrap_or_else(|| panic!("not a `name hex` line: {line:?}"))
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
        .collect()
}

#[test]
fn sync_examples_encode_to_the_pinned_bytes_and_back() {
    let vectors = vectors();
    let mut missing = Vec::new();
    for (name, frame) in examples() {
        let encoded = to_hex(&frame.encode().unwrap());
        let Some((_, pinned)) = vectors.iter().find(|(vector, _)| *vector == name) else {
            missing.push(format!("{name} {encoded}"));
            continue;
        };
        assert_eq!(
            &encoded, pinned,
            "{name}: the encoding changed (a wire type changed: that is a new protocol version)"
        );
        let decoded = Frame::decode(&from_hex(pinned)).unwrap();
        assert_eq!(
            decoded,
            Some(frame),
            "{name}: the pinned bytes decode differently"
        );
    }
    assert!(
        missing.is_empty(),
        "examples without a vector; append these lines to core/tests/sync-vectors.txt:\n{}",
        missing.join("\n")
    );
}

#[test]
fn sync_every_vector_has_an_example_and_a_unique_name() {
    let examples = examples();
    let vectors = vectors();
    for (n, (name, _)) in vectors.iter().enumerate() {
        assert!(
            examples.iter().any(|(example, _)| example == name),
            "vector {name} has no example (vectors are never removed within a version)"
        );
        assert!(
            !vectors[..n].iter().any(|(earlier, _)| earlier == name),
            "vector {name} appears twice"
        );
    }
}

#[test]
fn sync_every_frame_type_has_a_vector() {
    let mut types: Vec<u16> = examples()
        .iter()
        .map(|(_, frame)| frame.frame_type())
        .collect();
    types.dedup();
    assert_eq!(types, (1..=11).collect::<Vec<u16>>());
}
