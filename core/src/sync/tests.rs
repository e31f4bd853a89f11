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
fn zone_changes_cross_the_wire_both_ways() {
    for wire in every_wire_change() {
        match from_wire(&wire) {
            Ok(Some(change)) => assert_eq!(to_wire(&change), Some(wire)),
            // A definition of a kind this build does not know is skipped.
            Ok(None) => assert!(
                matches!(&wire, WireChange::DefinitionDeleted { kind, .. } if kind != PLUGIN_KIND)
            ),
            // The vector's plugin body is four bytes of a WASM magic, not a plugin.
            Err(error) => {
                assert!(
                    matches!(&wire, WireChange::DefinitionPut { kind, .. } if kind == PLUGIN_KIND)
                );
                assert!(error.to_string().contains("block-ads"), "{error}");
            }
        }
    }
}

fn plugin_definition(component: &[u8]) -> PluginDefinition {
    PluginDefinition {
        name: "ads".into(),
        hook: Hook::QueryPolicy,
        order: -3,
        on_error: FailureMode::FailClosed,
        enabled: true,
        version: 7,
        sha256: Sha256::digest(component).into(),
        component: component.into(),
        config: b"tracker.example\n".as_slice().into(),
    }
}

#[test]
fn plugin_definitions_cross_the_wire_both_ways() {
    let put = Change::PluginPut {
        definition: Arc::new(plugin_definition(b"\0asm component bytes")),
    };
    let wire = to_wire(&put).unwrap();
    assert!(
        matches!(&wire, WireChange::DefinitionPut { kind, name, version: 7, .. }
        if kind == PLUGIN_KIND && name == "ads")
    );
    assert_eq!(from_wire(&wire).unwrap(), Some(put));

    let deleted = Change::PluginDeleted { name: "ads".into() };
    let wire = to_wire(&deleted).unwrap();
    assert_eq!(from_wire(&wire).unwrap(), Some(deleted));
}

#[test]
fn a_plugin_whose_hash_does_not_match_is_refused_and_an_unknown_hook_skipped() {
    let definition = plugin_definition(b"\0asm component bytes");
    let body = |hook: &str, component: &[u8]| WirePlugin {
        hook: hook.into(),
        order: definition.order,
        on_error: "fail-closed".into(),
        enabled: true,
        sha256: definition.sha256,
        component: component.to_vec(),
        config: Vec::new(),
    };
    let put = |body: WirePlugin| WireChange::DefinitionPut {
        kind: PLUGIN_KIND.into(),
        name: "ads".into(),
        version: 1,
        body: postcard::to_allocvec(&body).unwrap(),
    };
    let tampered = from_wire(&put(body("query-policy", b"\0asm other bytes"))).unwrap_err();
    assert!(tampered.reason.contains("SHA-256"), "{tampered}");
    let newer = from_wire(&put(body("answer-rewrite", b"\0asm component bytes")));
    assert_eq!(newer, Ok(None));
}

#[test]
fn lite_tokens_and_join_invites_never_reach_the_wire() {
    let put = Change::LiteTokenPut {
        token: LiteToken {
            name: "laptop".into(),
            zones: vec!["example.internal.".into()],
            secret_sha256: [0; 32],
        },
    };
    let revoked = Change::LiteTokenRevoked {
        name: "laptop".into(),
    };
    assert_eq!(to_wire(&put), None);
    assert_eq!(to_wire(&revoked), None);
    let invite = Change::JoinInvitePut {
        invite: crate::state::JoinInvite {
            secret_sha256: [1; 32],
            expires_unix: 10,
            used_by: None,
        },
    };
    let pruned = Change::JoinInviteRemoved {
        secret_sha256: [1; 32],
    };
    assert_eq!(to_wire(&invite), None);
    assert_eq!(to_wire(&pruned), None);
}

/// `count` RRset puts of varying sizes (a few bytes to a few KiB).
fn many_changes(count: usize) -> Vec<WireChange> {
    (0..count)
        .map(|i| WireChange::RRsetPut {
            zone: "example.internal.".into(),
            owner: format!("host-{i}.example.internal."),
            rtype: 16,
            records: vec![b'x'; (i * 7919) % 4000],
        })
        .collect()
}

fn chunk_body_len(chunk: &[WireChange]) -> usize {
    postcard_len(chunk).unwrap()
}

#[test]
fn chunks_fill_up_to_the_cap_and_keep_the_order() {
    let changes = many_changes(500);
    for max_body in [4_100, 10_000, 65_536, MAX_FRAME_BODY] {
        let chunks = chunk_changes(changes.clone(), max_body).unwrap();
        for (n, chunk) in chunks.iter().enumerate() {
            assert!(
                chunk_body_len(chunk) <= max_body,
                "chunk {n} over {max_body}"
            );
            if let Some(next) = chunks.get(n + 1) {
                let mut grown = chunk.clone();
                grown.push(next[0].clone());
                assert!(chunk_body_len(&grown) > max_body, "chunk {n} not full");
            }
            let frame = Frame::SnapshotChunk(SnapshotChunk {
                changes: chunk.clone(),
            });
            assert!(frame.encode().unwrap().len() <= HEADER_LEN + max_body);
        }
        assert_eq!(chunks.concat(), changes);
    }
    assert_eq!(
        chunk_changes(Vec::new(), 100).unwrap(),
        Vec::<Vec<_>>::new()
    );
}

#[test]
fn a_change_larger_than_the_fill_size_goes_alone_in_its_own_chunk() {
    let changes = many_changes(3);
    let sizes: Vec<usize> = changes.iter().map(|c| postcard_len(c).unwrap()).collect();
    let chunks = chunk_changes(changes.clone(), 1_000).unwrap();
    assert!(sizes.iter().any(|&size| size > 1_000), "{sizes:?}");
    for chunk in &chunks {
        let body = postcard_len(&SnapshotChunk {
            changes: chunk.clone(),
        })
        .unwrap();
        assert!(
            body <= 1_000 || chunk.len() == 1,
            "{body} bytes in {} changes",
            chunk.len()
        );
    }
    assert_eq!(chunks.concat(), changes);

    let huge = WireChange::DefinitionPut {
        kind: "plugin".into(),
        name: "huge".into(),
        version: 1,
        body: vec![0; MAX_LONE_CHANGE_BODY],
    };
    let error = chunk_changes(vec![huge], 1_000).unwrap_err();
    assert!(
        matches!(&error, ChunkError::ChangeTooLarge { change, .. } if change.starts_with("DefinitionPut plugin huge")),
        "{error}"
    );
}

#[test]
fn a_change_of_max_change_len_fits_any_frame() {
    let change = |body: usize| WireChange::DefinitionPut {
        kind: "plugin".into(),
        name: "big".into(),
        version: u64::MAX,
        body: vec![1; body],
    };
    let overhead = postcard_len(&change(MAX_CHANGE_LEN)).unwrap() - MAX_CHANGE_LEN;
    let largest = change(MAX_CHANGE_LEN - overhead);
    assert_eq!(postcard_len(&largest).unwrap(), MAX_CHANGE_LEN);

    let chunks = chunk_changes(vec![largest.clone()], MAX_FRAME_BODY).unwrap();
    assert_eq!(chunks.len(), 1);
    let entry = ChangeEntry {
        index: u64::MAX,
        changes: vec![largest],
    };
    let frames = split_batch(u64::MAX, vec![entry], MAX_FRAME_BODY).unwrap();
    assert_eq!(frames.len(), 1);
    for frame in frames {
        Frame::Changes(frame).encode().unwrap();
    }
}

fn entries(sizes: &[(u64, usize)]) -> Vec<ChangeEntry> {
    sizes
        .iter()
        .map(|&(index, count)| ChangeEntry {
            index,
            changes: many_changes(count),
        })
        .collect()
}

/// Joins the parts of split entries back together.
fn reassemble(frames: &[Changes]) -> Vec<ChangeEntry> {
    let mut whole: Vec<ChangeEntry> = Vec::new();
    for entry in frames.iter().flat_map(|frame| &frame.entries) {
        match whole.last_mut() {
            Some(last) if last.index == entry.index => {
                last.changes.extend(entry.changes.iter().cloned())
            }
            _ => whole.push(entry.clone()),
        }
    }
    whole
}

#[test]
fn a_batch_splits_under_the_cap_and_the_cursor_never_passes_a_half_sent_entry() {
    // Entry 12 alone needs several frames at this cap.
    let batch = entries(&[(10, 3), (11, 2), (12, 60), (13, 1), (14, 4)]);
    let max_body = 20_000;
    let frames = split_batch(15, batch.clone(), max_body).unwrap();
    assert!(frames.len() > 3, "{} frames", frames.len());
    for (n, frame) in frames.iter().enumerate() {
        let bytes = Frame::Changes(frame.clone()).encode().unwrap();
        assert!(bytes.len() <= HEADER_LEN + max_body, "frame {n}");
        let next_starts_with = frames
            .get(n + 1)
            .and_then(|next| next.entries.first())
            .map(|entry| entry.index);
        let last = frame.entries.last().map(|entry| entry.index);
        let expected_up_to = match (last, next_starts_with) {
            (_, None) => 15,
            (Some(last), Some(next)) if last == next => last - 1,
            (Some(last), Some(_)) => last,
            (None, Some(_)) => panic!("empty frame {n} before the last"),
        };
        assert_eq!(frame.up_to, expected_up_to, "frame {n}");
    }
    let up_tos: Vec<u64> = frames.iter().map(|frame| frame.up_to).collect();
    assert!(up_tos.is_sorted(), "{up_tos:?}");
    assert!(up_tos.contains(&11), "entry 12 starts a frame of its own");
    assert_eq!(reassemble(&frames), batch);
}

#[test]
fn a_batch_with_nothing_in_scope_is_one_empty_frame() {
    let frames = split_batch(99, Vec::new(), MAX_FRAME_BODY).unwrap();
    assert_eq!(
        frames,
        vec![Changes {
            up_to: 99,
            entries: Vec::new()
        }]
    );
}

#[test]
fn a_small_batch_is_one_frame() {
    let batch = entries(&[(5, 2), (6, 3)]);
    let frames = split_batch(7, batch.clone(), MAX_FRAME_BODY).unwrap();
    assert_eq!(
        frames,
        vec![Changes {
            up_to: 7,
            entries: batch
        }]
    );
}

#[test]
fn a_batch_with_a_change_over_the_largest_frame_is_an_error() {
    let huge = ChangeEntry {
        index: 5,
        changes: vec![WireChange::DefinitionPut {
            kind: "plugin".into(),
            name: "huge".into(),
            version: 1,
            body: vec![0; MAX_LONE_CHANGE_BODY],
        }],
    };
    assert!(matches!(
        split_batch(5, vec![huge], MAX_FRAME_BODY),
        Err(ChunkError::ChangeTooLarge { .. })
    ));
}

#[test]
fn a_large_definition_goes_alone_in_a_frame_between_full_ones() {
    let large = WireChange::DefinitionPut {
        kind: "plugin".into(),
        name: "ads".into(),
        version: 1,
        body: vec![7; 3 * MAX_FRAME_BODY],
    };
    let mut batch = entries(&[(5, 3)]);
    batch.push(ChangeEntry {
        index: 6,
        changes: vec![large.clone()],
    });
    batch.extend(entries(&[(7, 2)]));
    let frames = split_batch(7, batch.clone(), 1_000).unwrap();
    let lone = frames
        .iter()
        .find(|frame| frame.entries.iter().any(|e| e.changes.contains(&large)))
        .unwrap();
    assert_eq!(lone.entries.len(), 1);
    assert_eq!(lone.entries[0].changes.len(), 1);
    assert_eq!(lone.up_to, 6);
    let encoded = Frame::Changes(lone.clone()).encode().unwrap();
    assert!(encoded.len() > HEADER_LEN + MAX_FRAME_BODY);
    assert!(encoded.len() <= HEADER_LEN + MAX_LONE_CHANGE_BODY);
    // Everything arrives, in order, and the cursor ends at the batch's end.
    let received: Vec<ChangeEntry> = frames.iter().flat_map(|f| f.entries.clone()).collect();
    let flat = |entries: &[ChangeEntry]| -> Vec<(u64, WireChange)> {
        entries
            .iter()
            .flat_map(|e| e.changes.iter().map(move |c| (e.index, c.clone())))
            .collect()
    };
    assert_eq!(flat(&received), flat(&batch));
    assert_eq!(frames.last().unwrap().up_to, 7);
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

#[test]
fn a_batch_in_protocol_3_chains_each_frame_to_the_one_before() {
    let entries: Vec<ChangeEntry> = (10..13)
        .map(|index| ChangeEntry {
            index,
            changes: vec![WireChange::ZonePut {
                origin: format!("{}.internal.", "z".repeat(300)),
            }],
        })
        .collect();
    // A cap that fits one entry per frame.
    let frames = split_batch(14, entries, 400).unwrap();
    assert_eq!(frames.len(), 3);
    let chained = chain_after(9, frames);
    let links: Vec<(u64, u64)> = chained
        .iter()
        .map(|frame| (frame.after, frame.changes.up_to))
        .collect();
    assert_eq!(links, [(9, 10), (10, 11), (11, 14)]);
}
