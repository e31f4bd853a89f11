use hickory_proto::rr::{RData, Record, RecordType};

use super::*;
use crate::wire::encode_records;

fn rec(name: &str, ttl: u32, rtype: RecordType, data: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        ttl,
        RData::try_from_str(rtype, data).unwrap(),
    )
}

fn wire(records: &[Record]) -> Vec<u8> {
    encode_records(records).unwrap()
}

fn soa() -> Record {
    rec(
        "site.internal.",
        3600,
        RecordType::SOA,
        "ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300",
    )
}

fn site() -> ReplicatedState {
    let mut zones = ReplicatedState::default();
    zones
        .apply(&Command::CreateZone {
            origin: "site.internal.".into(),
            records: wire(&[
                soa(),
                rec("www.site.internal.", 300, RecordType::A, "10.0.0.1"),
            ]),
        })
        .unwrap();
    zones
}

fn serial(zones: &ReplicatedState) -> u32 {
    let zone = zones
        .get(&Name::from_ascii("site.internal.").unwrap())
        .unwrap();
    match &zone.soa().unwrap().data {
        RData::SOA(soa) => soa.serial,
        _ => unreachable!(),
    }
}

fn add(zones: &mut ReplicatedState, records: &[Record]) -> Result<Vec<Change>, CommandError> {
    zones.apply(&Command::AddRecords {
        records: wire(records),
    })
}

#[test]
fn a_zone_needs_an_soa() {
    let mut zones = ReplicatedState::default();
    let err = zones
        .apply(&Command::CreateZone {
            origin: "site.internal.".into(),
            records: wire(&[rec("www.site.internal.", 300, RecordType::A, "10.0.0.1")]),
        })
        .unwrap_err();
    assert_eq!(
        err,
        CommandError::SoaMissing {
            zone: "site.internal.".into()
        }
    );
    assert!(zones.is_empty());
}

#[test]
fn creating_an_existing_zone_is_refused() {
    let mut zones = site();
    let err = zones
        .apply(&Command::CreateZone {
            origin: "site.internal.".into(),
            records: wire(&[soa()]),
        })
        .unwrap_err();
    assert!(matches!(err, CommandError::ZoneExists { .. }), "{err}");
}

#[test]
fn add_puts_the_rrset_and_bumps_the_serial() {
    let mut zones = site();
    let changes = add(
        &mut zones,
        &[rec(
            "printer.site.internal.",
            120,
            RecordType::A,
            "10.0.0.7",
        )],
    )
    .unwrap();
    assert_eq!(serial(&zones), 2);
    let kinds: Vec<(String, u16)> = changes
        .iter()
        .map(|c| match c {
            Change::RRsetPut { owner, rtype, .. } => (owner.clone(), *rtype),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(kinds.contains(&("printer.site.internal.".into(), 1)));
    assert!(
        kinds.contains(&("site.internal.".into(), 6)),
        "the SOA with its new serial travels too"
    );
}

#[test]
fn an_rrset_shares_the_ttl_of_the_latest_record() {
    let mut zones = site();
    add(
        &mut zones,
        &[rec("www.site.internal.", 60, RecordType::A, "10.0.0.2")],
    )
    .unwrap();
    let zone = zones
        .get(&Name::from_ascii("site.internal.").unwrap())
        .unwrap();
    let ttls: Vec<u32> = zone
        .records()
        .filter(|r| r.record_type() == RecordType::A)
        .map(|r| r.ttl)
        .collect();
    assert_eq!(ttls, vec![60, 60]);
}

#[test]
fn cname_is_exclusive_and_single() {
    let mut zones = site();
    let before = zones.clone();
    let err = add(
        &mut zones,
        &[rec(
            "www.site.internal.",
            300,
            RecordType::CNAME,
            "other.site.internal.",
        )],
    )
    .unwrap_err();
    assert_eq!(
        err,
        CommandError::CnameConflict {
            name: "www.site.internal.".into()
        }
    );
    assert_eq!(zones, before, "a refused command changes nothing");

    add(
        &mut zones,
        &[rec(
            "alias.site.internal.",
            300,
            RecordType::CNAME,
            "www.site.internal.",
        )],
    )
    .unwrap();
    let err = add(
        &mut zones,
        &[rec(
            "alias.site.internal.",
            300,
            RecordType::CNAME,
            "x.site.internal.",
        )],
    )
    .unwrap_err();
    assert!(
        matches!(err, CommandError::CnameMultiple { count: 2, .. }),
        "{err}"
    );
    let err = add(
        &mut zones,
        &[rec("alias.site.internal.", 300, RecordType::TXT, "\"hi\"")],
    )
    .unwrap_err();
    assert!(matches!(err, CommandError::CnameConflict { .. }), "{err}");
}

#[test]
fn records_must_be_in_a_zone_and_well_formed() {
    let mut zones = site();
    let err = add(
        &mut zones,
        &[rec("www.other.org.", 300, RecordType::A, "10.0.0.1")],
    )
    .unwrap_err();
    assert_eq!(
        err,
        CommandError::NotInAnyZone {
            name: "www.other.org.".into()
        }
    );

    let err = add(
        &mut zones,
        &[rec("a.*.site.internal.", 300, RecordType::A, "10.0.0.1")],
    )
    .unwrap_err();
    assert!(
        matches!(err, CommandError::WildcardPosition { .. }),
        "{err}"
    );

    let err = add(
        &mut zones,
        &[rec(
            "x.site.internal.",
            MAX_TTL + 1,
            RecordType::A,
            "10.0.0.1",
        )],
    )
    .unwrap_err();
    assert!(matches!(err, CommandError::TtlOutOfRange { .. }), "{err}");

    let mut bad_soa = soa();
    bad_soa.name = Name::from_ascii("x.site.internal.").unwrap();
    let err = add(&mut zones, &[bad_soa]).unwrap_err();
    assert!(matches!(err, CommandError::SoaNotAtApex { .. }), "{err}");

    let err = zones
        .apply(&Command::CreateZone {
            origin: "site.internal.".into(),
            records: wire(&[soa(), rec("www.other.org.", 300, RecordType::A, "10.0.0.1")]),
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::ZoneExists { .. } | CommandError::OutOfZone { .. }
        ),
        "{err}"
    );
    let err = zones
        .apply(&Command::ReplaceZone {
            origin: "site.internal.".into(),
            records: wire(&[soa(), rec("www.other.org.", 300, RecordType::A, "10.0.0.1")]),
        })
        .unwrap_err();
    assert_eq!(
        err,
        CommandError::OutOfZone {
            name: "www.other.org.".into(),
            zone: "site.internal.".into()
        }
    );
}

#[test]
fn delete_by_data_by_type_and_the_soa_stays() {
    let mut zones = site();
    add(
        &mut zones,
        &[rec("www.site.internal.", 300, RecordType::A, "10.0.0.2")],
    )
    .unwrap();
    let delete =
        |owner: &str, rtype: Option<RecordType>, records: &[Record]| Command::DeleteRecords {
            owner: owner.into(),
            rtype: rtype.map(u16::from),
            records: wire(records),
        };
    zones
        .apply(&delete(
            "www.site.internal.",
            Some(RecordType::A),
            &[rec("www.site.internal.", 0, RecordType::A, "10.0.0.1")],
        ))
        .unwrap();
    let zone = zones
        .get(&Name::from_ascii("site.internal.").unwrap())
        .unwrap();
    assert_eq!(zone.record_count(), 2, "SOA and the remaining A");

    let err = zones
        .apply(&delete("nope.site.internal.", Some(RecordType::A), &[]))
        .unwrap_err();
    assert!(matches!(err, CommandError::NoSuchRecord { .. }), "{err}");
    let err = zones
        .apply(&delete("site.internal.", None, &[]))
        .unwrap_err();
    assert_eq!(
        err,
        CommandError::SoaDelete {
            zone: "site.internal.".into()
        }
    );

    zones
        .apply(&delete("www.site.internal.", None, &[]))
        .unwrap();
    let zone = zones
        .get(&Name::from_ascii("site.internal.").unwrap())
        .unwrap();
    assert_eq!(zone.record_count(), 1);
}

#[test]
fn replaying_changes_rebuilds_the_same_model() {
    let mut zones = site();
    add(
        &mut zones,
        &[rec(
            "mail.site.internal.",
            300,
            RecordType::MX,
            "10 mx.site.internal.",
        )],
    )
    .unwrap();
    zones
        .apply(&Command::ReplaceRRset {
            owner: "mail.site.internal.".into(),
            rtype: RecordType::MX.into(),
            records: wire(&[rec(
                "mail.site.internal.",
                60,
                RecordType::MX,
                "20 mx2.site.internal.",
            )]),
        })
        .unwrap();
    let mut replayed = ReplicatedState::default();
    for change in zones.to_changes() {
        replayed.apply_change(&change).unwrap();
    }
    assert_eq!(replayed, zones);
}

#[test]
fn names_must_be_absolute() {
    let err = parse_name("www.site.internal").unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
    let long_label = format!("{}.internal.", "a".repeat(64));
    assert!(matches!(
        parse_name(&long_label),
        Err(CommandError::InvalidName { .. })
    ));
}

#[test]
fn a_batch_applies_whole_or_not_at_all() {
    let mut zones = site();
    let before = zones.clone();
    let refused = zones.apply(&Command::Batch {
        commands: vec![
            Command::AddRecords {
                records: wire(&[rec("new.site.internal.", 300, RecordType::A, "10.0.0.2")]),
            },
            Command::AddRecords {
                records: wire(&[rec("elsewhere.test.", 300, RecordType::A, "10.0.0.3")]),
            },
        ],
    });
    assert!(matches!(refused, Err(CommandError::NotInAnyZone { .. })));
    assert_eq!(zones, before);

    let changes = zones
        .apply(&Command::Batch {
            commands: vec![
                Command::ReplaceRRset {
                    owner: "www.site.internal.".into(),
                    rtype: 1,
                    records: wire(&[rec("www.site.internal.", 60, RecordType::A, "10.0.0.9")]),
                },
                Command::AddRecords {
                    records: wire(&[rec("mail.site.internal.", 60, RecordType::A, "10.0.0.4")]),
                },
            ],
        })
        .unwrap();
    let owners: Vec<&str> = changes
        .iter()
        .filter_map(|change| match change {
            Change::RRsetPut {
                owner, rtype: 1, ..
            } => Some(owner.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(owners, ["www.site.internal.", "mail.site.internal."]);
}

/// Writes into a large zone while the previous state is still held (as the published
/// `Arc<ReplicatedState>` is by readers): every write lands, and the held state stays as
/// it was. What such a write costs is printed by
/// `cargo run --release -p outpost-core --example write_into_a_large_zone`.
#[test]
fn writes_into_a_large_zone_land_and_leave_the_held_state_as_it_was() {
    const RECORDS: usize = 5_000;
    const WRITES: usize = 50;
    let mut records = vec![soa()];
    records.extend((0..RECORDS).map(|i| {
        rec(
            &format!("host{i}.site.internal."),
            300,
            RecordType::A,
            &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
        )
    }));
    let mut zones = ReplicatedState::default();
    zones
        .apply(&Command::CreateZone {
            origin: "site.internal.".into(),
            records: wire(&records),
        })
        .unwrap();
    let origin = Name::from_ascii("site.internal.").unwrap();
    for i in 0..WRITES {
        let published = zones.clone();
        let before = published.to_changes();
        zones
            .apply(&Command::AddRecords {
                records: wire(&[rec(
                    &format!("new{i}.site.internal."),
                    60,
                    RecordType::A,
                    "192.0.2.1",
                )]),
            })
            .unwrap();
        assert_eq!(published.to_changes(), before, "write {i}");
        let held = published.get(&origin).unwrap();
        assert_eq!(held.record_count(), RECORDS + 1 + i);
    }
    let zone = zones.get(&origin).unwrap();
    assert_eq!(zone.record_count(), RECORDS + 1 + WRITES);
    for i in 0..WRITES {
        let name = Name::from_ascii(format!("new{i}.site.internal.")).unwrap();
        assert!(zone.rrset(&name, RecordType::A).is_some(), "{name}");
    }
}

#[test]
fn names_that_are_not_host_names_read_back_from_what_changes_write() {
    // A label with a space, one with a dot and one with a byte over 0x7f: hickory's
    // `Name::from_ascii` refuses what its `to_ascii` writes for each.
    for label in [&b"odd name"[..], b"a.b", b"caf\xc3\xa9", b"tab\there"] {
        let name = Name::from_labels(vec![label.to_vec(), b"site".to_vec(), b"internal".to_vec()])
            .unwrap();
        let text = name.to_ascii();
        assert_eq!(parse_name(&text), Ok(name.to_lowercase()), "{text}");
    }
    // A zone holding such an owner survives the replay of its changes (a restart, a
    // snapshot install, a Lite snapshot).
    let mut zones = site();
    let owner = Name::from_labels(vec![
        b"odd name".to_vec(),
        b"site".to_vec(),
        b"internal".to_vec(),
    ])
    .unwrap();
    let record = Record::from_rdata(owner, 300, RData::A("10.0.0.9".parse().unwrap()));
    zones
        .apply(&Command::AddRecords {
            records: wire(&[record]),
        })
        .unwrap();
    let mut rebuilt = ReplicatedState::default();
    for change in zones.to_changes() {
        rebuilt.apply_change(&change).unwrap();
    }
    assert_eq!(rebuilt.to_changes(), zones.to_changes());
}

mod cookies;
mod definitions;
mod invites;
mod keyed;

#[test]
fn exports_are_checked_kept_and_removed_and_their_secrets_never_logged() {
    let mut zones = site();
    let export = |name: &str, zones: Vec<String>| Command::PutExport {
        export: Export {
            name: name.into(),
            zones,
            namespace_secret: [0xab; 32],
            author_secret: [0xcd; 32],
        },
    };
    let changes = zones
        .apply(&export(
            "kit",
            vec!["Site.Internal.".into(), "site.internal.".into()],
        ))
        .unwrap();
    assert!(
        matches!(&changes[..], [Change::ExportPut { export }] if export.zones == ["site.internal."])
    );
    assert!(
        !format!("{changes:?}").contains("171"),
        "no secret byte in Debug: {changes:?}"
    );
    assert_eq!(
        zones.apply(&export("kit", vec!["site.internal.".into()])),
        Err(CommandError::ExportExists { name: "kit".into() })
    );
    assert_eq!(
        zones.apply(&export("Bad Name", vec!["site.internal.".into()])),
        Err(CommandError::InvalidExportName {
            name: "Bad Name".into()
        })
    );
    assert_eq!(
        zones.apply(&export("empty", Vec::new())),
        Err(CommandError::ExportWithoutZones)
    );
    for n in 1..MAX_EXPORTS {
        zones
            .apply(&export(&format!("kit{n}"), vec!["site.internal.".into()]))
            .unwrap();
    }
    assert_eq!(
        zones.apply(&export("one-more", vec!["site.internal.".into()])),
        Err(CommandError::TooManyExports { max: MAX_EXPORTS })
    );
    zones
        .apply(&Command::RemoveExport { name: "kit".into() })
        .unwrap();
    assert!(zones.export("kit").is_none());
    assert_eq!(
        zones.apply(&Command::RemoveExport { name: "kit".into() }),
        Err(CommandError::NoSuchExport { name: "kit".into() })
    );
    assert!(
        zones
            .to_changes()
            .iter()
            .filter(|change| matches!(change, Change::ExportPut { .. }))
            .all(|change| crate::sync::to_wire(change).is_none()),
        "exports never travel to Lite clients"
    );
}

#[test]
fn a_nodes_export_endpoint_is_recorded_once_bounded_and_forgotten_when_it_leaves() {
    let mut zones = site();
    let peer = ExportPeer {
        id: [7; 32],
        addrs: vec!["192.0.2.1:7470".parse().unwrap()],
    };
    let set = |peer: Option<ExportPeer>| Command::SetExportPeer { node_id: 3, peer };
    let changes = zones.apply(&set(Some(peer.clone()))).unwrap();
    assert_eq!(
        changes,
        [Change::ExportPeerPut {
            node_id: 3,
            peer: peer.clone()
        }]
    );
    assert!(
        zones.apply(&set(Some(peer.clone()))).unwrap().is_empty(),
        "the same endpoint again changes nothing"
    );
    let many = ExportPeer {
        addrs: vec!["192.0.2.1:7470".parse().unwrap(); MAX_EXPORT_PEER_ADDRS + 1],
        ..peer.clone()
    };
    assert_eq!(
        zones.apply(&set(Some(many))),
        Err(CommandError::ExportPeerAddrs {
            count: MAX_EXPORT_PEER_ADDRS + 1,
            max: MAX_EXPORT_PEER_ADDRS
        })
    );
    let mut rebuilt = ReplicatedState::default();
    for change in zones.to_changes() {
        rebuilt.apply_change(&change).unwrap();
    }
    assert_eq!(rebuilt.export_peers().collect::<Vec<_>>(), [(3, &peer)]);
    assert!(crate::sync::to_wire(&changes[0]).is_none());
    let retired = zones.apply(&Command::RetireNode { node_id: 3 }).unwrap();
    assert_eq!(retired, [Change::ExportPeerRemoved { node_id: 3 }]);
    assert_eq!(zones.export_peers().count(), 0);
    assert!(zones.apply(&set(None)).unwrap().is_empty());
}
