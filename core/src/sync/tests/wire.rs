//! Changes to and from their wire form: zone changes and plugin definitions both
//! ways, a hash that does not match refused, and what never reaches the wire.

use super::*;

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
