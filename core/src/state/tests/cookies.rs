//! The DNS cookie secrets: rotation, the race between two proposers, replay, and that they
//! never reach a Lite client.

use super::*;
use crate::sync::to_wire;

fn rotate(secret: u8, now_unix: u64, replaces: Option<u64>) -> Command {
    Command::RotateCookieSecret {
        secret: [secret; 16],
        now_unix,
        replaces,
    }
}

#[test]
fn a_rotation_keeps_the_current_secret_as_the_previous() {
    let mut state = ReplicatedState::default();
    assert_eq!(state.cookie_secrets(), None);
    state.apply(&rotate(1, 100, None)).unwrap();
    let first = *state.cookie_secrets().unwrap();
    assert_eq!((first.current, first.previous), ([1; 16], None));
    state.apply(&rotate(2, 200, Some(100))).unwrap();
    let second = *state.cookie_secrets().unwrap();
    assert_eq!(
        (second.current, second.previous, second.rotated_unix),
        ([2; 16], Some([1; 16]), 200)
    );
    state.apply(&rotate(3, 300, Some(200))).unwrap();
    assert_eq!(state.cookie_secrets().unwrap().previous, Some([2; 16]));
}

#[test]
fn a_rotation_that_lost_the_race_changes_nothing() {
    let mut state = ReplicatedState::default();
    state.apply(&rotate(1, 100, None)).unwrap();
    let before = state.clone();
    // A second leader also saw no secret, or saw the one before the last rotation.
    assert_eq!(
        state.apply(&rotate(2, 101, None)),
        Err(CommandError::CookieSecretRotated)
    );
    assert_eq!(
        state.apply(&rotate(2, 101, Some(99))),
        Err(CommandError::CookieSecretRotated)
    );
    assert_eq!(state, before);
}

#[test]
fn the_secrets_survive_a_replay_and_are_never_sent_to_lite_clients() {
    let mut state = ReplicatedState::default();
    state.apply(&rotate(1, 100, None)).unwrap();
    let changes = state.apply(&rotate(2, 200, Some(100))).unwrap();
    let mut rebuilt = ReplicatedState::default();
    for change in state.to_changes() {
        rebuilt.apply_change(&change).unwrap();
    }
    assert_eq!(rebuilt, state);
    for change in changes.iter().chain(&state.to_changes()) {
        assert_eq!(change.zone(), None);
        assert!(to_wire(change).is_none(), "{change:?} has a wire form");
    }
    // Nor are they in logs.
    let logged = format!("{:?}", state);
    assert!(!logged.contains("[2, 2, 2"), "{logged}");
}
