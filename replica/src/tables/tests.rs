use outpost_core::state::{Command, Export, ExportPeer, LiteToken};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use redb::ReadableDatabase as _;

use super::*;

fn zone_command(origin: &str, hosts: usize) -> Command {
    let name = outpost_core::state::parse_name(origin).unwrap();
    let mut text = String::from(
        "@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 300 IN NS ns1\nns1 300 IN A 10.0.0.1\n",
    );
    for host in 0..hosts {
        text.push_str(&format!(
            "host{host} 300 IN A 10.0.{}.{}\n",
            host / 250,
            host % 250 + 1
        ));
    }
    let records = parse_zone(&text, &name, 300).unwrap();
    Command::ReplaceZone {
        origin: origin.to_string(),
        records: encode_records(&records).unwrap(),
    }
}

/// Applies `commands` to a model and, change by change, to the tables of a new file;
/// returns the model and the file.
fn write_through(commands: &[Command]) -> (ReplicatedState, tempfile::NamedTempFile, Database) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let db = Database::create(file.path()).unwrap();
    let txn = begin_durable_write(&db).unwrap();
    create_tables(&txn).unwrap();
    txn.commit().unwrap();
    let mut zones = ReplicatedState::default();
    for command in commands {
        let changes = zones.apply(command).unwrap();
        let txn = begin_durable_write(&db).unwrap();
        {
            let mut tables = StateTables::open(&txn).unwrap();
            for change in &changes {
                tables.apply(change).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    (zones, file, db)
}

fn loaded(db: &Database) -> ReplicatedState {
    load(&db.begin_read().unwrap()).unwrap()
}

#[test]
fn changes_written_one_by_one_load_back_as_the_model() {
    let commands = [
        zone_command("site.internal.", 20),
        zone_command("internal.", 3),
        zone_command("lab.internal.", 5),
        Command::AddRecords {
            records: {
                let name = outpost_core::state::parse_name("site.internal.").unwrap();
                let records = parse_zone("printer 60 IN A 10.9.0.7\n", &name, 300).unwrap();
                encode_records(&records).unwrap()
            },
        },
        Command::DeleteRecords {
            owner: "host3.site.internal.".into(),
            rtype: None,
            records: Vec::new(),
        },
        // A zone whose name sorts between the others' RRsets: only its own go.
        Command::DeleteZone {
            origin: "internal.".into(),
        },
        Command::PutLiteToken {
            token: LiteToken {
                name: "alice-laptop".into(),
                zones: vec!["site.internal.".into()],
                secret_sha256: [7; 32],
            },
        },
        Command::PutExport {
            export: export("field-kit"),
        },
        Command::PutExport {
            export: export("gone"),
        },
        Command::RemoveExport {
            name: "gone".into(),
        },
        Command::SetExportPeer {
            node_id: 2,
            peer: Some(ExportPeer {
                id: [3; 32],
                addrs: vec!["192.0.2.2:7470".parse().unwrap()],
            }),
        },
        Command::SetExportPeer {
            node_id: 5,
            peer: Some(ExportPeer {
                id: [5; 32],
                addrs: vec!["192.0.2.5:7470".parse().unwrap()],
            }),
        },
        Command::RetireNode { node_id: 5 },
    ];
    let (zones, _file, db) = write_through(&commands);
    let back = loaded(&db);
    assert_eq!(back.to_changes(), zones.to_changes());
    assert_eq!(back.len(), 2);
    assert!(back.lite_token("alice-laptop").is_some());
    assert_eq!(back.export("field-kit"), Some(&export("field-kit")));
    assert_eq!(back.exports().count(), 1);
    let peers: Vec<u64> = back.export_peers().map(|(node, _)| node).collect();
    assert_eq!(peers, [2]);
}

fn export(name: &str) -> Export {
    Export {
        name: name.into(),
        zones: vec!["site.internal.".into()],
        namespace_secret: [1; 32],
        author_secret: [2; 32],
    }
}

#[test]
fn a_whole_model_written_into_cleared_tables_loads_back_as_itself() {
    let (zones, _file, db) = write_through(&[
        zone_command("site.internal.", 50),
        zone_command("lab.internal.", 5),
        export_peer(1),
        export_peer(2),
    ]);
    // Another state in place of this one, as a snapshot install writes it.
    let (other, _other_file, _other_db) =
        write_through(&[zone_command("branch.internal.", 7), export_peer(3)]);
    let txn = begin_durable_write(&db).unwrap();
    {
        let mut tables = StateTables::open(&txn).unwrap();
        tables.clear().unwrap();
        tables.write_all(&other).unwrap();
    }
    txn.commit().unwrap();
    let back = loaded(&db);
    assert_eq!(back.to_changes(), other.to_changes());
    assert_ne!(back.to_changes(), zones.to_changes());
    let peers: Vec<u64> = back.export_peers().map(|(node, _)| node).collect();
    assert_eq!(peers, [3], "cleared, then written whole");
}

fn export_peer(node_id: u8) -> Command {
    Command::SetExportPeer {
        node_id: node_id.into(),
        peer: Some(ExportPeer {
            id: [node_id; 32],
            addrs: vec![([192, 0, 2, node_id], 7470).into()],
        }),
    }
}

#[test]
fn names_are_keyed_lowercase_whatever_case_the_change_uses() {
    let (_, _file, db) = write_through(&[zone_command("site.internal.", 1)]);
    let txn = begin_durable_write(&db).unwrap();
    {
        let mut tables = StateTables::open(&txn).unwrap();
        tables
            .apply(&Change::RRsetDeleted {
                zone: "SITE.Internal.".into(),
                owner: "Host0.Site.Internal.".into(),
                rtype: 1,
            })
            .unwrap();
    }
    txn.commit().unwrap();
    let back = loaded(&db);
    let zone = back
        .get(&outpost_core::state::parse_name("site.internal.").unwrap())
        .unwrap();
    assert!(
        zone.rrsets()
            .all(|rrset| rrset.owner().to_ascii() != "host0.site.internal."),
        "the delete found the row it names"
    );
}

#[test]
fn cookie_secrets_load_back_and_a_file_from_before_them_loads_without() {
    let rotate = |secret: u8, now_unix, replaces| Command::RotateCookieSecret {
        secret: [secret; 16],
        now_unix,
        replaces,
    };
    let (zones, _file, db) = write_through(&[
        zone_command("site.internal.", 2),
        rotate(1, 100, None),
        rotate(2, 200, Some(100)),
    ]);
    let back = loaded(&db);
    assert_eq!(back, zones);
    let secrets = back.cookie_secrets().unwrap();
    assert_eq!(
        (secrets.current, secrets.previous),
        ([2; 16], Some([1; 16]))
    );

    // A file written before `cookie_secrets` existed: every other state table, no rows
    // for it. Opened (which creates the missing tables), it loads with no secrets.
    let file = tempfile::NamedTempFile::new().unwrap();
    let db = Database::create(file.path()).unwrap();
    let txn = begin_durable_write(&db).unwrap();
    for table in [PLUGINS, LITE_TOKENS, IDEMPOTENCY_KEYS] {
        txn.open_table(table).unwrap();
    }
    txn.open_table(ZONES).unwrap();
    txn.open_table(RRSETS).unwrap();
    txn.open_table(JOIN_INVITES).unwrap();
    txn.commit().unwrap();
    let txn = begin_durable_write(&db).unwrap();
    create_tables(&txn).unwrap();
    txn.commit().unwrap();
    assert_eq!(loaded(&db).cookie_secrets(), None);
}
