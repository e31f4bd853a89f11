//! The DNS cookie secret's schedule: the leader makes the cluster's first secret and
//! replaces it every [`COOKIE_SECRET_ROTATION`]; every node answers with the replicated
//! secrets (`Store::cookie_secrets`, swapped by the publish step).
//!
//! The previous secret stays accepted, so a server cookie made just before a rotation is
//! still good until it is an hour old (RFC 9018 section 4.3), far less than a rotation.
//! A rotation names the secret it replaces, so two leaders in quick succession rotate
//! once; the leader's clock decides when a rotation is due.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::state::Command;
use tokio_util::sync::CancellationToken;

use crate::store::{NodeState, Store};

/// How long a cookie secret is used before the leader replaces it.
pub const COOKIE_SECRET_ROTATION: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a node checks whether it leads and a rotation is due. Policy when missed
/// (no leader, a failed write): the next check tries again.
pub const COOKIE_ROTATION_CHECK: Duration = Duration::from_secs(60);
/// How often a node checks while the cluster has no secret yet, so a new cluster gives
/// out cookies within seconds of its first election.
pub const COOKIE_FIRST_SECRET_CHECK: Duration = Duration::from_secs(1);

/// Checks until `shutdown`: on the leader, makes the first secret or rotates a due one.
pub(super) async fn run(store: Store, shutdown: CancellationToken) {
    loop {
        let wait = if store.zones().cookie_secrets().is_some() {
            COOKIE_ROTATION_CHECK
        } else {
            COOKIE_FIRST_SECRET_CHECK
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = rotate_if_due(&store) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether a secret made at `rotated_unix` (`None`: no secret yet) is to be replaced at
/// `now_unix`.
fn is_due(rotated_unix: Option<u64>, now_unix: u64) -> bool {
    rotated_unix.is_none_or(|at| now_unix >= at.saturating_add(COOKIE_SECRET_ROTATION.as_secs()))
}

/// Proposes a new secret when this node leads and the current one is missing or due.
async fn rotate_if_due(store: &Store) {
    if store.status().state != NodeState::Leader {
        return;
    }
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let replaces = store
        .zones()
        .cookie_secrets()
        .map(|secrets| secrets.rotated_unix);
    if !is_due(replaces, now_unix) {
        return;
    }
    let mut secret = [0u8; 16];
    if let Err(error) = getrandom::fill(&mut secret) {
        tracing::warn!(%error, "no random DNS cookie secret; trying again later");
        return;
    }
    let command = Command::RotateCookieSecret {
        secret,
        now_unix,
        replaces,
    };
    match store.write(command).await {
        Ok(written) => tracing::info!(index = written.index, "DNS cookie secret rotated"),
        Err(error) => tracing::debug!(%error, "DNS cookie secret not rotated; trying again later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_secret_is_due_at_once_and_the_next_after_a_rotation_period() {
        let period = COOKIE_SECRET_ROTATION.as_secs();
        assert!(is_due(None, 0));
        assert!(!is_due(Some(1_000), 1_000));
        assert!(!is_due(Some(1_000), 1_000 + period - 1));
        assert!(is_due(Some(1_000), 1_000 + period));
        // A clock set back never rotates early.
        assert!(!is_due(Some(1_000), 10));
    }
}
