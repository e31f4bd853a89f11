use hickory_proto::rr::{RData, Record};
use outpost_core::state::Command;
use outpost_core::wire::{decode_records, encode_records};

use super::*;

const ZONE: &str = "site.internal.";

fn rec(name: &str, ttl: u32, rtype: RecordType, data: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        ttl,
        RData::try_from_str(rtype, data).unwrap(),
    )
}

fn site() -> ReplicatedState {
    let soa = "ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300";
    let mut state = ReplicatedState::default();
    let records = [
        rec(ZONE, 3600, RecordType::SOA, soa),
        rec("www.site.internal.", 300, RecordType::A, "10.0.0.1"),
    ];
    state
        .apply(&Command::CreateZone {
            origin: ZONE.into(),
            records: encode_records(&records).unwrap(),
        })
        .unwrap();
    state
}

fn replace(owner: &str, rtype: RecordType, records: &[Record]) -> Command {
    Command::ReplaceRRset {
        owner: owner.into(),
        rtype: rtype.into(),
        records: encode_records(records).unwrap(),
    }
}

/// Applies `batch` (one entry per command) to `state` and tells the journal.
fn apply(journal: &Journal, state: &mut ReplicatedState, batch: &[Command]) -> HashSet<Name> {
    let entries: Vec<Vec<Change>> = batch
        .iter()
        .map(|command| state.apply(command).unwrap())
        .collect();
    let first = journal.lock().as_of.unwrap() + 1;
    let up_to = first + batch.len() as u64 - 1;
    let after = Arc::new(state.clone());
    journal.applied(first, up_to, after, entries.iter().map(Vec::as_slice))
}

fn journal_over(state: &ReplicatedState) -> Journal {
    let journal = Journal::new();
    journal.reset(Arc::new(state.clone()), 1);
    journal
}

fn decoded(records: &[Vec<u8>]) -> Vec<Record> {
    records
        .iter()
        .flat_map(|bytes| decode_records(bytes).unwrap())
        .collect()
}

fn zone() -> Name {
    Name::from_ascii(ZONE).unwrap()
}

#[test]
fn each_entry_becomes_a_step_with_what_it_removed_and_added() {
    let mut state = site();
    let journal = journal_over(&state);
    let www = |ip| rec("www.site.internal.", 300, RecordType::A, ip);
    // Two entries in one batch, both on the same RRset: the second's "before" is the
    // first's result, not the state before the batch.
    let touched = apply(
        &journal,
        &mut state,
        &[
            replace(
                "www.site.internal.",
                RecordType::A,
                &[www("10.0.0.1"), www("10.0.0.2")],
            ),
            replace("www.site.internal.", RecordType::A, &[www("10.0.0.2")]),
        ],
    );
    assert_eq!(touched, HashSet::from([zone()]));
    let steps = journal.steps(&zone(), 1, 3).expect("serials 1 to 3");
    assert_eq!(steps.len(), 2);
    assert_eq!((steps[0].from_serial, steps[0].to_serial), (1, 2));
    assert_eq!(decoded(&steps[0].removed), []);
    assert_eq!(decoded(&steps[0].added), [www("10.0.0.2")]);
    assert_eq!((steps[1].from_serial, steps[1].to_serial), (2, 3));
    assert_eq!(decoded(&steps[1].removed), [www("10.0.0.1")]);
    assert_eq!(decoded(&steps[1].added), []);
    assert_eq!(soa_serial(&steps[1].to_soa), Some(3));

    // From the middle, and not from a serial it never had or to one it does not reach.
    assert_eq!(journal.steps(&zone(), 2, 3).unwrap().len(), 1);
    assert!(journal.steps(&zone(), 7, 3).is_none());
    assert!(journal.steps(&zone(), 1, 4).is_none());
}

#[test]
fn a_ttl_change_removes_the_old_record_and_adds_the_new() {
    let mut state = site();
    let journal = journal_over(&state);
    let new = rec("www.site.internal.", 60, RecordType::A, "10.0.0.1");
    apply(
        &journal,
        &mut state,
        &[replace(
            "www.site.internal.",
            RecordType::A,
            std::slice::from_ref(&new),
        )],
    );
    let steps = journal.steps(&zone(), 1, 2).unwrap();
    assert_eq!(
        decoded(&steps[0].removed),
        [rec("www.site.internal.", 300, RecordType::A, "10.0.0.1")]
    );
    assert_eq!(decoded(&steps[0].added), [new]);
}

#[test]
fn a_zone_put_whole_starts_its_journal_afresh() {
    let mut state = site();
    let journal = journal_over(&state);
    let www = rec("www.site.internal.", 300, RecordType::A, "10.0.0.9");
    apply(
        &journal,
        &mut state,
        &[replace("www.site.internal.", RecordType::A, &[www])],
    );
    assert!(journal.steps(&zone(), 1, 2).is_some());
    let soa = "ns1.site.internal. hostmaster.site.internal. 10 7200 3600 1209600 300";
    let replaced = Command::ReplaceZone {
        origin: ZONE.into(),
        records: encode_records(&[rec(ZONE, 3600, RecordType::SOA, soa)]).unwrap(),
    };
    apply(&journal, &mut state, &[replaced]);
    assert!(journal.steps(&zone(), 1, 2).is_none());
    assert!(journal.steps(&zone(), 2, 10).is_none());
}

#[test]
fn the_oldest_steps_go_first_past_the_bound() {
    let mut state = site();
    let journal = journal_over(&state);
    // Each step: the SOAs, one record removed and one added.
    let steps = MAX_JOURNAL_RECORDS / 4 + 10;
    for i in 0..steps {
        let ip = format!("10.1.{}.{}", i / 250, i % 250);
        let www = rec("www.site.internal.", 300, RecordType::A, &ip);
        apply(
            &journal,
            &mut state,
            &[replace("www.site.internal.", RecordType::A, &[www])],
        );
    }
    let current = 1 + steps as u32;
    assert!(journal.steps(&zone(), 1, current).is_none(), "forgotten");
    let kept = journal.steps(&zone(), current - 100, current).unwrap();
    assert_eq!(kept.len(), 100);
    let records: usize = journal.lock().zones[&zone()].records;
    assert!(records <= MAX_JOURNAL_RECORDS, "{records}");
}

#[test]
fn a_batch_that_does_not_follow_the_last_starts_afresh() {
    let mut state = site();
    let journal = journal_over(&state);
    let www = rec("www.site.internal.", 300, RecordType::A, "10.0.0.9");
    let command = replace("www.site.internal.", RecordType::A, &[www]);
    apply(&journal, &mut state, std::slice::from_ref(&command));
    assert!(journal.steps(&zone(), 1, 2).is_some());
    // Index 3 was never told: the journal cannot know what it changed.
    let changes = state.apply(&command).unwrap();
    let touched = journal.applied(4, 4, Arc::new(state.clone()), [changes.as_slice()]);
    assert_eq!(touched, HashSet::from([zone()]));
    assert!(journal.steps(&zone(), 1, 3).is_none());
    assert!(journal.steps(&zone(), 2, 3).is_none());
}
