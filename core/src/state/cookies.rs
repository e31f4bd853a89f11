//! The DNS cookie secrets (RFC 7873, RFC 9018): the key every node of the cluster makes and
//! checks server cookies with, replicated so that a cookie one node gave out is accepted by
//! all of them (anycast).
//!
//! The leader draws a new secret and proposes it ([`Command::RotateCookieSecret`]); the
//! current secret becomes the previous one, still accepted, so a cookie stays valid across
//! one rotation and is refused after two.
//!
//! **Invariant:** applying a rotation never reads a clock or a random source: the secret and
//! the time come in the command. A rotation names the rotation time of the secret it
//! replaces, and is refused when another rotation came first, so two proposers racing
//! rotate once.
//! **Boundary:** the secrets never leave the cluster: [`Change::CookieSecretsPut`] has no
//! zone and no wire form, so no Lite client receives it.
//!
//! [`Command::RotateCookieSecret`]: super::Command::RotateCookieSecret

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Change, CommandError, ReplicatedState};

/// The cluster's cookie secrets.
#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct CookieSecrets {
    /// The secret new server cookies are made with.
    pub current: [u8; 16],
    /// The secret before the last rotation, still accepted; `None` before the first one.
    pub previous: Option<[u8; 16]>,
    /// Unix time (seconds, the proposer's clock) at which `current` was made.
    pub rotated_unix: u64,
}

/// Never the secrets themselves: they would end up in logs.
impl fmt::Debug for CookieSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSecrets")
            .field("rotated_unix", &self.rotated_unix)
            .finish_non_exhaustive()
    }
}

impl ReplicatedState {
    /// The cookie secrets, once the leader made the first.
    pub fn cookie_secrets(&self) -> Option<&CookieSecrets> {
        self.cookie_secrets.as_ref()
    }

    /// Makes `secret` the current secret and the current one the previous, if the current
    /// one is still the one made at `replaces` (`None`: there is none yet).
    pub(super) fn rotate_cookie_secret(
        &mut self,
        secret: [u8; 16],
        now_unix: u64,
        replaces: Option<u64>,
    ) -> Result<Vec<Change>, CommandError> {
        let seen = self.cookie_secrets.map(|secrets| secrets.rotated_unix);
        if seen != replaces {
            return Err(CommandError::CookieSecretRotated);
        }
        let secrets = CookieSecrets {
            current: secret,
            previous: self.cookie_secrets.map(|secrets| secrets.current),
            rotated_unix: now_unix,
        };
        self.cookie_secrets = Some(secrets);
        Ok(vec![Change::CookieSecretsPut { secrets }])
    }
}
