use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::state::Command;
use crate::wire::encode_records;

fn rec(name: &str, rtype: RecordType, data: &str) -> Record {
    let name = Name::from_ascii(name).unwrap();
    Record::from_rdata(name, 300, RData::try_from_str(rtype, data).unwrap())
}

fn site() -> ReplicatedState {
    let mut state = ReplicatedState::default();
    let soa = "ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300";
    let records = [
        rec("site.internal.", RecordType::SOA, soa),
        rec("printer.site.internal.", RecordType::A, "10.0.0.7"),
        rec(
            "www.site.internal.",
            RecordType::CNAME,
            "printer.site.internal.",
        ),
    ];
    let create = Command::CreateZone {
        origin: "site.internal.".into(),
        records: encode_records(&records).unwrap(),
    };
    state.apply(&create).unwrap();
    state
}

fn sync(state: &mut ReplicatedState, records: &[Record]) -> Vec<Change> {
    let command = Command::SyncSource {
        name: "dhcp".into(),
        records: encode_records(records).unwrap(),
    };
    state.apply(&command).unwrap()
}

fn a_records(state: &ReplicatedState, name: &str) -> Vec<String> {
    let zone = state
        .get(&Name::from_ascii("site.internal.").unwrap())
        .unwrap();
    let name = Name::from_ascii(name).unwrap();
    (zone.rrset(&name, RecordType::A))
        .map(|rrset| rrset.records().map(|r| r.data.to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_source_adds_what_it_has_and_removes_what_it_no_longer_has() {
    let mut state = site();
    let laptop = rec("laptop.site.internal.", RecordType::A, "10.0.0.50");
    let phone = rec("phone.site.internal.", RecordType::A, "10.0.0.51");
    sync(&mut state, &[laptop.clone(), phone.clone()]);
    assert_eq!(a_records(&state, "laptop.site.internal."), ["10.0.0.50"]);
    assert_eq!(state.source("dhcp").unwrap().len(), 2);

    // The same set again changes nothing, not even the serial.
    assert!(sync(&mut state, &[laptop.clone(), phone]).is_empty());

    // The phone's lease is gone: so are its records.
    sync(&mut state, &[laptop]);
    assert!(a_records(&state, "phone.site.internal.").is_empty());
    assert_eq!(state.source("dhcp").unwrap().len(), 1);
}

#[test]
fn records_written_by_hand_win_and_cnames_and_strangers_are_left_out() {
    let mut state = site();
    let clash = rec("printer.site.internal.", RecordType::A, "10.0.0.99");
    let behind_cname = rec("www.site.internal.", RecordType::A, "10.0.0.98");
    let outside = rec("laptop.elsewhere.example.", RecordType::A, "10.0.0.97");
    let fine = rec("laptop.site.internal.", RecordType::A, "10.0.0.50");
    sync(&mut state, &[clash, behind_cname, outside, fine]);
    assert_eq!(a_records(&state, "printer.site.internal."), ["10.0.0.7"]);
    assert!(a_records(&state, "www.site.internal.").is_empty());
    assert_eq!(a_records(&state, "laptop.site.internal."), ["10.0.0.50"]);
    assert_eq!(state.source("dhcp").unwrap().len(), 1, "only what it put");

    // Emptied, the source removes its own records and never the hand-written one.
    sync(&mut state, &[]);
    assert!(a_records(&state, "laptop.site.internal.").is_empty());
    assert_eq!(a_records(&state, "printer.site.internal."), ["10.0.0.7"]);
}

#[test]
fn the_ownership_survives_a_replay() {
    let mut state = site();
    sync(
        &mut state,
        &[rec("laptop.site.internal.", RecordType::A, "10.0.0.50")],
    );
    let mut replayed = ReplicatedState::default();
    for change in state.to_changes() {
        replayed.apply_change(&change).unwrap();
    }
    assert_eq!(replayed, state);
}
