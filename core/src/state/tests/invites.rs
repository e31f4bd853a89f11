//! Join invites: used once by one node, pruned when expired, and dropped with the
//! node that used them when it is retired.

use super::*;

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
