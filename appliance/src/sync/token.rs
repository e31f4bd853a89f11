//! Lite token secrets: `<name>:<64 hex digits>`, made once for the operator and checked
//! against the SHA-256 replicated in the zones model.
//!
//! **Invariant:** the secret never leaves the process that made it except in the one
//! `POST /v1/lite-tokens` answer; the store, the Raft log and every replica hold only
//! its hash.

use outpost_core::state::{LiteToken, ReplicatedState};
use sha2::{Digest, Sha256};

use crate::secret_file::{constant_time_eq, random_hex};

/// Random bytes in a secret (256 bits), written as twice as many hex digits.
const SECRET_BYTES: usize = 32;

/// A freshly made token: what the operator hands to the Lite client, and the hash the
/// store keeps.
#[derive(Debug)]
pub struct NewSecret {
    /// `<name>:<hex>`, as `outpost-lite run --token` takes it.
    pub token: String,
    pub secret_sha256: [u8; 32],
}

/// Makes the secret of a new token named `name`.
pub fn generate(name: &str) -> Result<NewSecret, getrandom::Error> {
    let secret = random_hex::<SECRET_BYTES>()?;
    Ok(NewSecret {
        secret_sha256: hash(&secret),
        token: format!("{name}:{secret}"),
    })
}

/// The name part of a presented token (for logs and the session list), whether or not
/// the rest is right.
pub fn claimed_name(presented: &str) -> &str {
    presented
        .rsplit_once(':')
        .map_or(presented, |(name, _)| name)
}

/// The token `presented` stands for, if its name exists in `zones` and its secret
/// hashes to the stored hash.
pub fn check<'a>(zones: &'a ReplicatedState, presented: &str) -> Option<&'a LiteToken> {
    let (name, secret) = presented.rsplit_once(':')?;
    let well_formed =
        secret.len() == 2 * SECRET_BYTES && secret.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return None;
    }
    let token = zones.lite_token(name)?;
    let presented_hash = hash(&secret.to_ascii_lowercase());
    constant_time_eq(&presented_hash, &token.secret_sha256).then_some(token)
}

fn hash(secret_hex: &str) -> [u8; 32] {
    Sha256::digest(secret_hex.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use outpost_core::state::Command;

    use super::*;

    fn zones_with(name: &str, secret: &NewSecret) -> ReplicatedState {
        let mut zones = ReplicatedState::default();
        zones
            .apply(&Command::PutLiteToken {
                token: LiteToken {
                    name: name.into(),
                    zones: vec!["site.internal.".into()],
                    secret_sha256: secret.secret_sha256,
                },
            })
            .unwrap();
        zones
    }

    #[test]
    fn a_generated_token_checks_and_nothing_else_does() {
        let secret = generate("alice-laptop").unwrap();
        let zones = zones_with("alice-laptop", &secret);
        let (name, hex) = secret.token.rsplit_once(':').unwrap();
        assert_eq!(name, "alice-laptop");
        assert_eq!(hex.len(), 64);
        assert_eq!(check(&zones, &secret.token).unwrap().name, "alice-laptop");
        assert_eq!(
            check(
                &zones,
                &secret.token.to_uppercase().replace("ALICE-LAPTOP", name)
            )
            .map(|t| t.name.as_str()),
            Some("alice-laptop"),
            "hex digits in either case"
        );

        let mut wrong = secret.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        for presented in [
            wrong.as_str(),
            &secret.token[..secret.token.len() - 1],
            &format!("bob:{hex}"),
            hex,
            "",
            ":",
            &format!("alice-laptop:{}", "g".repeat(64)),
        ] {
            assert!(check(&zones, presented).is_none(), "{presented:?}");
        }
    }

    #[test]
    fn the_claimed_name_is_everything_before_the_last_colon() {
        assert_eq!(claimed_name("alice:abc"), "alice");
        assert_eq!(claimed_name("a:b:c"), "a:b");
        assert_eq!(claimed_name("no-colon"), "no-colon");
    }
}
