//! Commands that hold commands: writes under an idempotency key (`Command::Once`), and
//! the bound on how deep commands nest when decoded.

use super::*;

fn once(key: &str, now_unix: u64, command: Command) -> Command {
    Command::Once {
        key: key.into(),
        now_unix,
        command: Box::new(command),
    }
}

fn add_printer() -> Command {
    Command::AddRecords {
        records: wire(&[rec(
            "printer.site.internal.",
            300,
            RecordType::A,
            "10.0.0.7",
        )]),
    }
}

#[test]
fn a_keyed_write_applies_once_and_its_retry_names_the_first_index() {
    let mut zones = site();
    let before = serial(&zones);
    let first = zones
        .apply_at(10, &once("k1", 1_000, add_printer()))
        .unwrap();
    assert!(
        first
            .iter()
            .any(|c| matches!(c, Change::RRsetPut { rtype: 1, .. }))
    );
    assert!(
        first
            .iter()
            .any(|c| matches!(c, Change::IdempotencyKeyPut { .. }))
    );
    assert_eq!(serial(&zones), before + 1);
    // The retry (a later entry) changes nothing, the serial included.
    assert_eq!(
        zones.apply_at(12, &once("k1", 1_005, add_printer())),
        Err(CommandError::AlreadyApplied { index: 10 })
    );
    assert_eq!(serial(&zones), before + 1);
    // Another key is another write.
    zones
        .apply_at(13, &once("k2", 1_006, add_printer()))
        .unwrap();
    assert_eq!(serial(&zones), before + 2);
    // A model rebuilt from its changes remembers the keys (snapshots, restarts).
    let mut rebuilt = ReplicatedState::default();
    for change in zones.to_changes() {
        rebuilt.apply_change(&change).unwrap();
    }
    assert_eq!(
        rebuilt.idempotency_record("k1").map(|record| record.index),
        Some(10)
    );
}

#[test]
fn a_refused_keyed_write_records_nothing_and_is_evaluated_again() {
    let mut zones = site();
    let delete_missing = Command::DeleteRecords {
        owner: "nothing.site.internal.".into(),
        rtype: Some(1),
        records: Vec::new(),
    };
    let refused = zones.apply_at(5, &once("k", 100, delete_missing));
    assert!(
        matches!(refused, Err(CommandError::NoSuchRecord { .. })),
        "{refused:?}"
    );
    assert!(zones.idempotency_record("k").is_none());
    zones.apply_at(6, &once("k", 101, add_printer())).unwrap();
    assert_eq!(zones.idempotency_record("k").map(|r| r.index), Some(6));
}

#[test]
fn keys_expire_after_the_window_and_the_oldest_go_when_full() {
    let mut zones = site();
    zones
        .apply_at(1, &once("old", 1_000, add_printer()))
        .unwrap();
    // A day later, by the proposer's clock, the key is forgotten: the write applies again.
    let later = 1_000 + IDEMPOTENCY_WINDOW_SECS;
    let changes = zones
        .apply_at(2, &once("old", later, add_printer()))
        .unwrap();
    assert!(
        changes.contains(&Change::IdempotencyKeyRemoved { key: "old".into() }),
        "{changes:?}"
    );
    assert_eq!(zones.idempotency_record("old").map(|r| r.index), Some(2));

    let mut full = site();
    for i in 0..MAX_IDEMPOTENCY_KEYS as u64 {
        let change = Change::IdempotencyKeyPut {
            record: IdempotencyRecord {
                key: format!("key-{i:05}"),
                index: i,
                at_unix: 10 + i,
            },
        };
        full.apply_change(&change).unwrap();
    }
    let changes = full
        .apply_at(99_999, &once("new", 20_000, add_printer()))
        .unwrap();
    assert!(
        changes.contains(&Change::IdempotencyKeyRemoved {
            key: "key-00000".into()
        }),
        "the oldest goes"
    );
    assert_eq!(full.idempotency_records().count(), MAX_IDEMPOTENCY_KEYS);
}

#[test]
fn keys_are_checked_and_keyed_writes_do_not_nest() {
    let mut zones = site();
    for bad in ["", "has space", &"x".repeat(MAX_IDEMPOTENCY_KEY + 1)] {
        assert!(
            matches!(
                zones.apply(&once(bad, 1, add_printer())),
                Err(CommandError::InvalidIdempotencyKey { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        zones.apply(&once("a", 1, once("b", 1, add_printer()))),
        Err(CommandError::OnceNested)
    );
    assert_eq!(
        zones.apply(&Command::Batch {
            commands: vec![once("b", 1, add_printer())]
        }),
        Err(CommandError::OnceNested)
    );
}

#[test]
fn commands_nested_past_the_bound_do_not_decode_and_do_not_overflow_the_stack() {
    let nest = |levels: u32| {
        let mut command = add_printer();
        for _ in 0..levels {
            command = Command::Batch {
                commands: vec![command],
            };
        }
        command
    };
    let fits = postcard::to_allocvec(&nest(MAX_COMMAND_NESTING)).unwrap();
    assert_eq!(
        postcard::from_bytes::<Command>(&fits).unwrap(),
        nest(MAX_COMMAND_NESTING)
    );
    let deep = postcard::to_allocvec(&nest(MAX_COMMAND_NESTING + 1)).unwrap();
    assert!(postcard::from_bytes::<Command>(&deep).is_err());
    // What the fuzzer sent: 8,000 levels, on a small stack like a tokio worker's.
    let mut bytes = Vec::new();
    for _ in 0..8_000 {
        bytes.extend_from_slice(&[10, 1]); // Batch (variant 10), one command
    }
    let decoded = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || postcard::from_bytes::<Command>(&bytes).is_err())
        .unwrap()
        .join()
        .unwrap();
    assert!(decoded, "refused, not decoded");
}
