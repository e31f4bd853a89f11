use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::*;
use crate::state::{Change, FailureMode, Hook, LiteToken, PluginDefinition};

/// `www.example.internal. 300 IN A 10.0.0.7` in wire form.
fn a_record() -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in ["www", "example", "internal"] {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 7]);
    bytes
}

fn every_wire_change() -> Vec<WireChange> {
    vec![
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
            body: vec![0, 0x61, 0x73, 0x6d],
        },
        WireChange::DefinitionDeleted {
            kind: "policy".into(),
            name: "office".into(),
        },
    ]
}

fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            client_id: "laptop-7".into(),
            token: "opl_secret".into(),
            cursor: Some(Cursor {
                cluster_id: "c1".into(),
                index: 41,
            }),
            min_version: 1,
            max_version: 1,
        }),
        Frame::Welcome(Welcome {
            version: 1,
            cluster_id: "c1".into(),
            head: 42,
            zones: vec!["example.internal.".into(), "corp.internal.".into()],
            mode: SyncMode::Snapshot,
        }),
        Frame::SnapshotBegin(SnapshotBegin { as_of: 42 }),
        Frame::SnapshotChunk(SnapshotChunk {
            changes: every_wire_change(),
        }),
        Frame::SnapshotEnd(SnapshotEnd { as_of: 42 }),
        Frame::Changes(Changes {
            up_to: 44,
            entries: vec![ChangeEntry {
                index: 43,
                changes: every_wire_change(),
            }],
        }),
        Frame::Heartbeat(Heartbeat { head: 44 }),
        Frame::ResyncRequired(ResyncRequired {
            reason: "session queue full".into(),
        }),
        Frame::Error(ErrorFrame {
            code: close::UNAUTHORIZED,
            message: "token revoked".into(),
        }),
        Frame::Ack(Ack { cursor: 44 }),
        Frame::ChangesAfter(ChangesAfter {
            after: 44,
            changes: Changes {
                up_to: 45,
                entries: Vec::new(),
            },
        }),
    ]
}

/// A header declaring `declared` body bytes of type `frame_type`, then `body`.
fn raw_frame(frame_type: u16, declared: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&frame_type.to_be_bytes());
    bytes.extend_from_slice(&declared.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn body_len(body: &[u8]) -> u32 {
    u32::try_from(body.len()).unwrap()
}

#[test]
fn every_frame_type_round_trips() {
    let frames = every_frame();
    let mut types: Vec<u16> = frames.iter().map(Frame::frame_type).collect();
    types.dedup();
    assert_eq!(types, (1..=11).collect::<Vec<u16>>(), "one sample per type");
    for frame in frames {
        let bytes = frame.encode().unwrap();
        assert_eq!(Frame::decode(&bytes).unwrap(), Some(frame));
    }
}

#[test]
fn header_is_magic_type_and_length_big_endian() {
    let bytes = Frame::Heartbeat(Heartbeat { head: 300 }).encode().unwrap();
    // 300 as a postcard varint is 0xac 0x02.
    assert_eq!(bytes, b"OPST\x00\x07\x00\x00\x00\x02\xac\x02");
    assert_eq!(HEADER_LEN, 10);
}

#[test]
fn frame_names_follow_the_doc() {
    let names: Vec<&str> = every_frame().iter().map(Frame::name).collect();
    assert_eq!(
        names,
        [
            "Hello",
            "Welcome",
            "SnapshotBegin",
            "SnapshotChunk",
            "SnapshotEnd",
            "Changes",
            "Heartbeat",
            "ResyncRequired",
            "Error",
            "Ack",
            "ChangesAfter"
        ]
    );
    assert_eq!(frame_type::name(0), "unknown");
}

#[test]
fn shorter_than_the_header_is_truncated() {
    for len in 0..HEADER_LEN {
        let bytes = &raw_frame(frame_type::HEARTBEAT, 0, &[])[..len];
        let error = Frame::decode(bytes).unwrap_err();
        assert_eq!(error, FrameError::Truncated { len });
        assert_eq!(error.close_code(), close::PROTOCOL_ERROR);
    }
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = Frame::Ack(Ack { cursor: 1 }).encode().unwrap();
    bytes[..4].copy_from_slice(b"GET ");
    let error = Frame::decode(&bytes).unwrap_err();
    assert_eq!(error, FrameError::BadMagic { found: *b"GET " });
    assert_eq!(error.close_code(), close::PROTOCOL_ERROR);
    assert_eq!(
        error.to_string(),
        "frame starts with \"GET \" instead of the magic \"OPST\" (the peer does not speak the Outpost sync protocol)"
    );
}

#[test]
fn a_declared_length_of_4_gib_is_too_large_before_anything_else() {
    // Ten bytes that claim a body of 4 GiB - 1: refused from the header alone.
    let bytes = raw_frame(frame_type::SNAPSHOT_CHUNK, u32::MAX, &[]);
    let error = Frame::decode(&bytes).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooLarge {
            declared: u32::MAX as usize,
            limit: MAX_FRAME_BODY
        }
    );
    assert_eq!(error.close_code(), close::TOO_LARGE);
    // Also for a type we do not know: the header is checked before the type.
    let bytes = raw_frame(999, u32::MAX, &[]);
    assert!(matches!(
        Frame::decode(&bytes),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn one_byte_over_the_limit_is_too_large() {
    let body = vec![0; MAX_FRAME_BODY + 1];
    let bytes = raw_frame(frame_type::SNAPSHOT_CHUNK, body_len(&body), &body);
    assert_eq!(
        Frame::decode(&bytes).unwrap_err(),
        FrameError::TooLarge {
            declared: MAX_FRAME_BODY + 1,
            limit: MAX_FRAME_BODY
        }
    );
    // Protocol 2 takes it (a lone large change); its own limit is as strict.
    assert_eq!(max_frame_body(1), MAX_FRAME_BODY);
    assert!(matches!(
        Frame::decode_limited(&bytes, max_frame_body(2)),
        Err(FrameError::BadBody { .. })
    ));
    let body = vec![0; MAX_LONE_CHANGE_BODY + 1];
    let bytes = raw_frame(frame_type::SNAPSHOT_CHUNK, body_len(&body), &body);
    assert_eq!(
        Frame::decode_limited(&bytes, max_frame_body(2)).unwrap_err(),
        FrameError::TooLarge {
            declared: MAX_LONE_CHANGE_BODY + 1,
            limit: MAX_LONE_CHANGE_BODY
        }
    );
}

#[test]
fn a_body_of_exactly_the_limit_encodes_and_decodes() {
    // SnapshotChunk: 1 byte of count, then the change; grow the records until the
    // body is exactly MAX_FRAME_BODY.
    let change = |records: usize| WireChange::DefinitionPut {
        kind: "plugin".into(),
        name: "big".into(),
        version: 1,
        body: vec![7; records],
    };
    let overhead = postcard_len(&change(MAX_FRAME_BODY)).unwrap() + 1 - MAX_FRAME_BODY;
    let frame = Frame::SnapshotChunk(SnapshotChunk {
        changes: vec![change(MAX_FRAME_BODY - overhead)],
    });
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + MAX_FRAME_BODY);
    assert_eq!(Frame::decode(&bytes).unwrap(), Some(frame));

    let frame = Frame::SnapshotChunk(SnapshotChunk {
        changes: vec![change(MAX_FRAME_BODY - overhead + 1)],
    });
    let bytes = frame.encode().unwrap();
    let error = Frame::decode(&bytes).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooLarge {
            declared: MAX_FRAME_BODY + 1,
            limit: MAX_FRAME_BODY
        }
    );
    assert_eq!(error.close_code(), close::TOO_LARGE);
    assert_eq!(
        Frame::decode_limited(&bytes, max_frame_body(2)).unwrap(),
        Some(frame)
    );

    let frame = Frame::SnapshotChunk(SnapshotChunk {
        changes: vec![change(MAX_LONE_CHANGE_BODY - overhead + 1)],
    });
    assert!(matches!(
        frame.encode(),
        Err(FrameError::TooLarge {
            limit: MAX_LONE_CHANGE_BODY,
            ..
        })
    ));
}

#[test]
fn a_length_that_does_not_match_the_message_is_refused() {
    let bytes = raw_frame(frame_type::HEARTBEAT, 5, &[1, 2, 3]);
    let error = Frame::decode(&bytes).unwrap_err();
    assert_eq!(
        error,
        FrameError::LengthMismatch {
            declared: 5,
            actual: 3
        }
    );
    assert_eq!(error.close_code(), close::PROTOCOL_ERROR);
    let bytes = raw_frame(frame_type::HEARTBEAT, 1, &[1, 2]);
    assert_eq!(
        Frame::decode(&bytes).unwrap_err(),
        FrameError::LengthMismatch {
            declared: 1,
            actual: 2
        }
    );
}

#[test]
fn a_body_that_does_not_decode_is_a_protocol_error() {
    let cases: [(u16, &[u8]); 6] = [
        // Welcome cut short after the version.
        (frame_type::WELCOME, &[1]),
        // Hello whose client_id claims 200 bytes that are not there.
        (frame_type::HELLO, &[0xc8, 0x01, b'a']),
        // A string that is not UTF-8.
        (frame_type::RESYNC_REQUIRED, &[2, 0xff, 0xfe]),
        // SyncMode 7 does not exist.
        (frame_type::WELCOME, &[1, 0, 0, 0, 7]),
        // A varint of eleven continuation bytes.
        (frame_type::ACK, &[0xff; 11]),
        // An empty body where a u64 is expected.
        (frame_type::HEARTBEAT, &[]),
    ];
    for (frame_type, body) in cases {
        let bytes = raw_frame(frame_type, body_len(body), body);
        let error = Frame::decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, FrameError::BadBody { frame_type: t, .. } if *t == frame_type),
            "{frame_type} {body:?}: {error:?}"
        );
        assert_eq!(error.close_code(), close::PROTOCOL_ERROR);
    }
}

#[test]
fn bytes_left_over_after_a_body_are_a_protocol_error() {
    let mut bytes = Frame::Heartbeat(Heartbeat { head: 1 }).encode().unwrap();
    bytes.push(0);
    bytes[9] = 2;
    let error = Frame::decode(&bytes).unwrap_err();
    assert_eq!(
        error.to_string(),
        "body of Heartbeat frame (type 7) does not decode: 1 bytes left over after the body"
    );
}

#[test]
fn a_well_formed_frame_of_an_unknown_type_is_skipped() {
    for frame_type in [0, 12, 0x1234, u16::MAX] {
        let bytes = raw_frame(frame_type, 3, &[0xde, 0xad, 0xff]);
        assert_eq!(Frame::decode(&bytes), Ok(None), "type {frame_type}");
    }
    assert_eq!(Frame::decode(&raw_frame(12, 0, &[])), Ok(None));
    // Skipping needs a sound header all the same.
    assert!(matches!(
        Frame::decode(&raw_frame(12, 4, &[0])),
        Err(FrameError::LengthMismatch { .. })
    ));
}

#[test]
fn error_messages_are_lower_case_without_a_final_period() {
    let errors = [
        FrameError::Truncated { len: 3 },
        FrameError::BadMagic {
            found: [0, 1, 2, 3],
        },
        FrameError::TooLarge {
            declared: 5,
            limit: 4,
        },
        FrameError::LengthMismatch {
            declared: 1,
            actual: 2,
        },
        FrameError::BadBody {
            frame_type: 2,
            reason: "x".into(),
        },
        FrameError::Encode {
            frame_type: 2,
            reason: "x".into(),
        },
    ];
    for error in errors {
        let message = error.to_string();
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}

#[test]
fn negotiate_picks_the_highest_common_version() {
    assert_eq!(
        negotiate(1, 1),
        Some(1),
        "a client of protocol 1 is still served"
    );
    assert_eq!(
        negotiate(1, 2),
        Some(2),
        "nor is a client of protocol 2 left behind"
    );
    assert_eq!(negotiate(1, 3), Some(3));
    assert_eq!(negotiate(0, 9), Some(3));
    assert_eq!(negotiate(4, 5), None);
    assert_eq!(negotiate(0, 0), None);
    assert_eq!(negotiate(1, 0), None, "an empty window");
}

#[test]
fn close_codes_follow_the_doc() {
    assert_eq!(
        [
            close::NORMAL,
            close::GOING_AWAY,
            close::PROTOCOL_ERROR,
            close::NO_COMMON_VERSION,
            close::UNAUTHORIZED,
            close::RESYNC_REQUIRED,
            close::TOO_LARGE
        ],
        [1000, 1001, 4001, 4002, 4003, 4004, 4005]
    );
}

#[test]
fn read_header_hands_back_the_type_and_the_undecoded_body() {
    let bytes = raw_frame(frame_type::SNAPSHOT_CHUNK, 2, &[0xff, 0xff]);
    assert_eq!(
        Frame::read_header(&bytes),
        Ok((frame_type::SNAPSHOT_CHUNK, &[0xff, 0xff][..]))
    );
    assert!(!frame_type::from_client(frame_type::SNAPSHOT_CHUNK));
}

#[test]
fn every_known_type_travels_one_way() {
    for frame in every_frame() {
        let frame_type = frame.frame_type();
        assert_ne!(
            frame_type::from_client(frame_type),
            frame_type::from_server(frame_type),
            "{}",
            frame.name()
        );
    }
    assert!(frame_type::from_server(11), "ChangesAfter");
    assert!(!frame_type::from_client(12) && !frame_type::from_server(12));
}

mod chunk;
mod wire;
