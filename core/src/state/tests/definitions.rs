//! Lite tokens and plugin definitions in the replicated state: created once,
//! revoked, versioned, and checked against their hash and the sync frame cap.

use super::*;

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
