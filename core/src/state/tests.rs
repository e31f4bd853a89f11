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

fn token(name: &str, zones: &[&str]) -> LiteToken {
    LiteToken {
        name: name.into(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
        secret_sha256: [7; 32],
    }
}

#[test]
fn lite_tokens_are_created_once_and_revoked() {
    let mut zones = site();
    let changes = zones
        .apply(&Command::PutLiteToken {
            token: token("alice-laptop", &["SITE.internal."]),
        })
        .unwrap();
    let stored = zones.lite_token("alice-laptop").unwrap();
    assert_eq!(
        stored.zones,
        ["site.internal."],
        "zone names are normalized"
    );
    assert_eq!(
        changes,
        [Change::LiteTokenPut {
            token: stored.clone()
        }]
    );

    let err = zones
        .apply(&Command::PutLiteToken {
            token: token("alice-laptop", &["site.internal."]),
        })
        .unwrap_err();
    assert!(matches!(err, CommandError::TokenExists { .. }), "{err}");
    for (bad, zones_named) in [
        ("Alice", &["site.internal."][..]),
        ("", &["site.internal."][..]),
        ("bob", &[][..]),
    ] {
        assert!(
            zones
                .apply(&Command::PutLiteToken {
                    token: token(bad, zones_named)
                })
                .is_err(),
            "{bad:?}"
        );
    }

    let mut replayed = ReplicatedState::default();
    for change in zones.to_changes() {
        replayed.apply_change(&change).unwrap();
    }
    assert_eq!(replayed, zones, "tokens survive a snapshot");

    zones
        .apply(&Command::RevokeLiteToken {
            name: "alice-laptop".into(),
        })
        .unwrap();
    assert!(zones.lite_token("alice-laptop").is_none());
    let err = zones
        .apply(&Command::RevokeLiteToken {
            name: "alice-laptop".into(),
        })
        .unwrap_err();
    assert!(matches!(err, CommandError::NoSuchToken { .. }), "{err}");
}

fn plugin(name: &str, component: &[u8]) -> PluginDefinition {
    use sha2::Digest as _;
    PluginDefinition {
        name: name.into(),
        hook: Hook::QueryPolicy,
        order: 10,
        on_error: FailureMode::FailOpen,
        enabled: true,
        version: 99,
        sha256: sha2::Sha256::digest(component).into(),
        component: component.into(),
        config: b"ads.example\n".as_slice().into(),
    }
}

#[test]
fn installing_a_plugin_again_bumps_its_version() {
    let mut zones = site();
    let first = zones
        .apply(&Command::PutPlugin {
            definition: plugin("ads", b"\0asm one"),
            restart: false,
        })
        .unwrap();
    assert!(matches!(&first[..], [Change::PluginPut { definition }] if definition.version == 1));
    zones
        .apply(&Command::PutPlugin {
            definition: plugin("ads", b"\0asm two"),
            restart: false,
        })
        .unwrap();
    let stored = zones.plugin("ads").unwrap();
    assert_eq!(
        (stored.version, &*stored.component),
        (2, b"\0asm two".as_slice())
    );
    let again = zones.apply(&Command::PutPlugin {
        definition: plugin("ads", b"\0asm two"),
        restart: false,
    });
    assert_eq!(
        again,
        Ok(Vec::new()),
        "the same install again changes nothing"
    );
    assert_eq!(zones.plugin("ads").unwrap().version, 2);
    let restarted = zones.apply(&Command::PutPlugin {
        definition: plugin("ads", b"\0asm two"),
        restart: true,
    });
    assert!(
        matches!(&restarted.unwrap()[..], [Change::PluginPut { definition }] if definition.version == 3)
    );

    // Replaying the changes rebuilds the same definitions.
    let mut replayed = ReplicatedState::default();
    for change in zones.to_changes() {
        replayed.apply_change(&change).unwrap();
    }
    assert_eq!(replayed, zones);

    assert_eq!(
        zones.apply(&Command::DeletePlugin { name: "ads".into() }),
        Ok(vec![Change::PluginDeleted { name: "ads".into() }])
    );
    assert_eq!(
        zones.apply(&Command::DeletePlugin { name: "ads".into() }),
        Err(CommandError::NoSuchPlugin { name: "ads".into() })
    );
}

#[test]
fn a_plugin_must_carry_the_code_its_hash_names_and_fit_a_sync_frame() {
    let mut zones = site();
    let mut tampered = plugin("ads", b"\0asm one");
    tampered.component = b"\0asm two".as_slice().into();
    assert_eq!(
        zones.apply(&Command::PutPlugin {
            definition: tampered,
            restart: false,
        }),
        Err(CommandError::PluginHashMismatch { name: "ads".into() })
    );
    let huge = plugin("ads", &vec![0; MAX_PLUGIN_BYTES + 1]);
    assert!(matches!(
        zones.apply(&Command::PutPlugin {
            definition: huge,
            restart: false,
        }),
        Err(CommandError::PluginTooLarge { .. })
    ));
    assert!(matches!(
        zones.apply(&Command::PutPlugin {
            definition: plugin("Ads!", b"\0asm"),
            restart: false,
        }),
        Err(CommandError::InvalidPluginName { .. })
    ));
    assert_eq!(zones.plugins().count(), 0);
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

#[test]
fn a_join_invite_is_used_once_by_one_node_and_expired_ones_are_pruned() {
    let invite = |byte: u8, expires_unix: u64| JoinInvite {
        secret_sha256: [byte; 32],
        expires_unix,
        used_by: None,
    };
    let put = |zones: &mut ReplicatedState, invite: JoinInvite, now_unix: u64| {
        zones.apply(&Command::PutJoinInvite { invite, now_unix })
    };
    let use_it = |zones: &mut ReplicatedState, byte: u8, node_id: u64| {
        zones.apply(&Command::UseJoinInvite {
            secret_sha256: [byte; 32],
            node_id,
        })
    };
    let mut zones = ReplicatedState::default();
    put(&mut zones, invite(1, 200), 100).unwrap();
    assert_eq!(
        put(&mut zones, invite(1, 300), 100),
        Err(CommandError::InviteExists)
    );
    assert_eq!(
        put(&mut zones, invite(2, 100), 100),
        Err(CommandError::InviteNotOpen)
    );

    let used = use_it(&mut zones, 1, 7).unwrap();
    assert_eq!(
        used,
        vec![Change::JoinInvitePut {
            invite: JoinInvite {
                used_by: Some(7),
                ..invite(1, 200)
            }
        }]
    );
    // The same node again (a retried join) changes nothing; another node is refused.
    assert_eq!(use_it(&mut zones, 1, 7), Ok(Vec::new()));
    assert_eq!(
        use_it(&mut zones, 1, 8),
        Err(CommandError::InviteUsed { node_id: 7 })
    );
    assert_eq!(use_it(&mut zones, 9, 7), Err(CommandError::NoSuchInvite));
    assert!(zones.join_invite(&[1; 32]).unwrap().admits(7, 150));
    assert!(!zones.join_invite(&[1; 32]).unwrap().admits(8, 150));
    assert!(!zones.join_invite(&[1; 32]).unwrap().admits(7, 200));

    // Full: refused until one expires, then the expired ones are pruned by the next put.
    for byte in 2..=MAX_JOIN_INVITES as u8 {
        put(&mut zones, invite(byte, 1000), 100).unwrap();
    }
    assert_eq!(
        put(&mut zones, invite(100, 1000), 150),
        Err(CommandError::TooManyInvites)
    );
    let changes = put(&mut zones, invite(100, 1000), 250).unwrap();
    assert_eq!(
        changes[0],
        Change::JoinInviteRemoved {
            secret_sha256: [1; 32]
        }
    );
    assert_eq!(zones.join_invites().count(), MAX_JOIN_INVITES);

    // Invites survive a rebuild from changes (a snapshot, a restart).
    let mut rebuilt = ReplicatedState::default();
    for change in zones.to_changes() {
        rebuilt.apply_change(&change).unwrap();
    }
    assert_eq!(rebuilt, zones);
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
fn a_retired_node_loses_the_invites_it_used_and_nothing_else() {
    let mut zones = ReplicatedState::default();
    for (byte, used_by) in [(1u8, Some(7)), (2, Some(8)), (3, None)] {
        zones
            .apply(&Command::PutJoinInvite {
                invite: JoinInvite {
                    secret_sha256: [byte; 32],
                    expires_unix: 1_000,
                    used_by: None,
                },
                now_unix: 100,
            })
            .unwrap();
        if let Some(node_id) = used_by {
            zones
                .apply(&Command::UseJoinInvite {
                    secret_sha256: [byte; 32],
                    node_id,
                })
                .unwrap();
        }
    }
    let changes = zones.apply(&Command::RetireNode { node_id: 7 }).unwrap();
    assert_eq!(
        changes,
        vec![Change::JoinInviteRemoved {
            secret_sha256: [1; 32]
        }]
    );
    assert!(
        zones.join_invite(&[1; 32]).is_none(),
        "the ticket of node 7 is gone"
    );
    assert!(zones.join_invite(&[2; 32]).is_some(), "node 8's stays");
    assert!(zones.join_invite(&[3; 32]).is_some(), "open invites stay");
    // Nothing left to forget: an empty change list, not an error.
    assert_eq!(
        zones.apply(&Command::RetireNode { node_id: 7 }),
        Ok(Vec::new())
    );
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
mod keyed;
