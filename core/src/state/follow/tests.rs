use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::answer::ZoneSet;
use crate::wire::encode_records;

const ZONE: &str = "corp.example.";

fn rec(name: &str, rtype: RecordType, data: &str) -> Record {
    let name = Name::from_ascii(name).unwrap();
    Record::from_rdata(name, 300, RData::try_from_str(rtype, data).unwrap())
}

fn soa(serial: u32) -> Record {
    let data = format!("ns1.corp.example. hostmaster.corp.example. {serial} 7200 3600 1209600 300");
    rec(ZONE, RecordType::SOA, &data)
}

fn followed() -> FollowedZone {
    let primary: SocketAddr = "192.0.2.53:53".parse().unwrap();
    FollowedZone {
        origin: ZONE.into(),
        primaries: vec![primary],
        tsig: None,
        refreshed_unix: None,
        expired: false,
        last_error: None,
    }
}

/// A state following [`ZONE`], transferred once at serial 10.
fn following() -> ReplicatedState {
    let mut state = ReplicatedState::default();
    state
        .apply(&Command::FollowZone { zone: followed() })
        .unwrap();
    let records = [soa(10), rec("www.corp.example.", RecordType::A, "10.0.0.1")];
    let records = encode_records(&records).unwrap();
    let transfer = Command::TransferZone {
        origin: ZONE.into(),
        records,
        now_unix: 1_000,
    };
    state.apply(&transfer).unwrap();
    state
}

fn serial(state: &ReplicatedState) -> u32 {
    let zone = state.get(&Name::from_ascii(ZONE).unwrap()).unwrap();
    match zone.soa().unwrap().data {
        RData::SOA(soa) => soa.serial,
        _ => unreachable!(),
    }
}

fn answer_rcode(state: &ReplicatedState, name: &str) -> Option<ResponseCode> {
    let index = ZoneSet::build(state);
    let name = Name::from_ascii(name).unwrap();
    index
        .lookup(&name, RecordType::A)
        .map(|answer| answer.rcode)
}

fn add(name: &str) -> Command {
    Command::AddRecords {
        records: encode_records(&[rec(name, RecordType::A, "10.0.0.2")]).unwrap(),
    }
}

#[test]
fn a_transferred_zone_keeps_the_primarys_serial_and_refuses_local_writes() {
    let mut state = following();
    assert_eq!(serial(&state), 10, "no bump: the SOA is the primary's");
    assert_eq!(state.followed(ZONE).unwrap().refreshed_unix, Some(1_000));

    let refused = Err(CommandError::ZoneFollowed {
        origin: ZONE.into(),
    });
    let add = add("new.corp.example.");
    assert_eq!(state.apply(&add), refused);
    let delete = Command::DeleteZone {
        origin: ZONE.into(),
    };
    assert_eq!(state.apply(&delete), refused);
    let batch = Command::Batch {
        commands: vec![add.clone()],
    };
    assert_eq!(state.apply(&batch), refused);

    // Unfollowed with its data kept, it is a zone like any other.
    let unfollow = Command::UnfollowZone {
        origin: ZONE.into(),
        keep_data: true,
    };
    state.apply(&unfollow).unwrap();
    state.apply(&add).unwrap();
    assert_eq!(serial(&state), 11);
}

#[test]
fn an_ixfr_applies_once_to_the_serial_it_starts_from() {
    let mut state = following();
    let changes = Command::TransferChanges {
        origin: ZONE.into(),
        from_serial: 10,
        rrsets: vec![
            TransferredRRset {
                owner: ZONE.into(),
                rtype: RecordType::SOA.into(),
                records: encode_records(&[soa(11)]).unwrap(),
            },
            TransferredRRset {
                owner: "www.corp.example.".into(),
                rtype: RecordType::A.into(),
                records: Vec::new(),
            },
        ],
        now_unix: 2_000,
    };
    state.apply(&changes).unwrap();
    assert_eq!(serial(&state), 11);
    let nxdomain = Some(ResponseCode::NXDomain);
    assert_eq!(answer_rcode(&state, "www.corp.example."), nxdomain);
    let stale = Err(CommandError::TransferStale {
        origin: ZONE.into(),
        serial: 11,
        from: 10,
    });
    assert_eq!(state.apply(&changes), stale);
}

#[test]
fn a_zone_not_yet_transferred_or_expired_is_answered_servfail() {
    let servfail = Some(ResponseCode::ServFail);
    let mut state = ReplicatedState::default();
    state
        .apply(&Command::FollowZone { zone: followed() })
        .unwrap();
    assert_eq!(answer_rcode(&state, "www.corp.example."), servfail);

    let mut state = following();
    let answered = Some(ResponseCode::NoError);
    assert_eq!(answer_rcode(&state, "www.corp.example."), answered);
    let failed = Command::FollowStatus {
        origin: ZONE.into(),
        now_unix: 5_000,
        error: Some("no primary answered".into()),
        expired: true,
    };
    state.apply(&failed).unwrap();
    assert_eq!(answer_rcode(&state, "www.corp.example."), servfail);
    let zone = state.followed(ZONE).unwrap();
    assert_eq!(zone.last_error.as_deref(), Some("no primary answered"));
    assert_eq!(zone.refreshed_unix, Some(1_000), "the last success stays");

    let current = Command::FollowStatus {
        origin: ZONE.into(),
        now_unix: 6_000,
        error: None,
        expired: false,
    };
    state.apply(&current).unwrap();
    assert_eq!(answer_rcode(&state, "www.corp.example."), answered);
}

#[test]
fn following_is_refused_for_a_local_zone_and_without_primaries() {
    let mut state = ReplicatedState::default();
    let create = Command::CreateZone {
        origin: ZONE.into(),
        records: encode_records(&[soa(1)]).unwrap(),
    };
    state.apply(&create).unwrap();
    let local = Err(CommandError::ZoneIsLocal {
        origin: ZONE.into(),
    });
    assert_eq!(
        state.apply(&Command::FollowZone { zone: followed() }),
        local
    );
    let mut none = followed();
    none.origin = "other.example.".into();
    none.primaries.clear();
    let refused = state.apply(&Command::FollowZone { zone: none });
    assert!(
        matches!(refused, Err(CommandError::BadFollow(_))),
        "{refused:?}"
    );
}

#[test]
fn the_follow_settings_survive_a_replay() {
    let state = following();
    let mut replayed = ReplicatedState::default();
    for change in state.to_changes() {
        replayed.apply_change(&change).unwrap();
    }
    assert_eq!(replayed, state);
}
