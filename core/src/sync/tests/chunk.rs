//! Chunking changes under the frame cap, and splitting a batch into `Changes`
//! frames whose cursor never passes a half-sent entry.

use super::*;

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
