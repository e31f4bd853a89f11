//! Keeps one session going: rotates through the appliance URLs, with exponential
//! backoff and jitter between failed attempts, and applies the close-code table
//! (4003 stops once every appliance refused the token, 4002 skips that appliance, 4004
//! reconnects at once).
//!
//! A refused token (4003) is believed only when every appliance refused it
//! [`REFUSALS_TO_STOP`] times in a row: a node that has not yet applied the token's
//! creation (it lags, or sits in a minority) refuses a token the cluster holds.
//!
//! **Invariant:** the DNS server never waits on this loop: it answers from the replica
//! whatever the connector is doing, and keeps doing so after the connector gives up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_rustls::rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::replica::ReplicaStore;
use crate::session::{SessionEnd, run_session};
use crate::status::StatusBoard;

/// First wait after a failed attempt.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between attempts: a laptop back on the network resyncs within this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Immediate reconnects (4004) allowed in a row before waiting like any failure, so a
/// server that closes every session with 4004 cannot make the client spin.
const MAX_IMMEDIATE_RECONNECTS: u32 = 3;
/// Refusals of the token each appliance must give, with backoff between attempts,
/// before the client stops syncing and reports the token refused. Reset by any
/// `Welcome`. With one appliance, the three waits between four refusals add up to
/// 0.9 to 1.75 s: time for a lagging node to apply the token's creation.
pub const REFUSALS_TO_STOP: u32 = 4;

/// Exponential backoff with "equal jitter": each wait is drawn from
/// `[step / 2, step]`, and the step doubles up to [`BACKOFF_MAX`].
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            step: BACKOFF_INITIAL,
        }
    }
}

impl Backoff {
    /// The next wait; `random` in `[0, 1)` picks where in the jitter range it falls.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let half = self.step / 2;
        let delay = half + half.mul_f64(random.clamp(0.0, 1.0));
        self.step = (self.step * 2).min(BACKOFF_MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.step = BACKOFF_INITIAL;
    }
}

/// A number in `[0, 1)` from the system's randomness (0.5 if it has none).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Runs sessions until `shutdown`, or until no appliance will have us (then it
/// reports why on the board and returns; DNS keeps answering from the replica).
pub async fn run(
    appliances: Vec<String>,
    tls: Option<Arc<ClientConfig>>,
    token: String,
    replica: Arc<Mutex<ReplicaStore>>,
    board: &StatusBoard,
    shutdown: CancellationToken,
) {
    let mut rotation = Rotation::new(appliances.len());
    loop {
        let Some(index) = rotation.next_appliance() else {
            let message =
                "no appliance speaks a protocol version this client does; upgrade and restart";
            tracing::error!(message);
            board.disconnected(Some(message.to_string()));
            return;
        };
        let Some(url) = appliances.get(index) else {
            return;
        };
        // The session holds the replica until it ends; the docs path (if any) applies
        // between sessions.
        let mut held = replica.lock().await;
        let outcome = run_session(url, tls.as_ref(), &token, &mut held, board, &shutdown).await;
        drop(held);
        if outcome.welcomed {
            rotation.welcomed();
        }
        let wait = match rotation.after(index, outcome.end) {
            Next::Stop(reason) => {
                board.disconnected(reason);
                return;
            }
            Next::Wait(wait, reason) => {
                board.disconnected(Some(reason));
                wait
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => {
                board.disconnected(None);
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// What the connector does after a session: stop (with what to report), or wait and
/// try the next appliance (saying why the last session ended).
enum Next {
    Stop(Option<String>),
    Wait(Duration, String),
}

/// Where the connector is in its rotation through the appliances.
struct Rotation {
    backoff: Backoff,
    /// Appliances that speak no version of ours (4002).
    skipped: Vec<bool>,
    /// Refusals of the token (4003) per appliance since the last `Welcome`.
    refusals: Vec<u32>,
    /// Where the search for the next appliance starts.
    next: usize,
    /// Immediate reconnects in a row.
    immediate: u32,
}

impl Rotation {
    fn new(appliances: usize) -> Rotation {
        Rotation {
            backoff: Backoff::default(),
            skipped: vec![false; appliances],
            refusals: vec![0; appliances],
            next: 0,
            immediate: 0,
        }
    }

    /// The next appliance not skipped, from where the rotation stands.
    fn next_appliance(&self) -> Option<usize> {
        let count = self.skipped.len();
        (0..count)
            .map(|offset| (self.next + offset) % count)
            .find(|&index| !self.skipped.get(index).copied().unwrap_or(true))
    }

    fn welcomed(&mut self) {
        self.backoff.reset();
        self.refusals.fill(0);
    }

    /// The close-code table applied to how the session with appliance `index` ended.
    fn after(&mut self, index: usize, end: SessionEnd) -> Next {
        match end {
            SessionEnd::Shutdown => Next::Stop(None),
            SessionEnd::Unauthorized(message) => self.refused(index, message),
            SessionEnd::Incompatible(message) => {
                tracing::error!(%message, "skipping this appliance");
                if let Some(skip) = self.skipped.get_mut(index) {
                    *skip = true;
                }
                self.next = index + 1;
                Next::Wait(Duration::ZERO, message)
            }
            SessionEnd::ReconnectNow(message) if self.immediate < MAX_IMMEDIATE_RECONNECTS => {
                tracing::info!(%message, "reconnecting at once");
                self.immediate += 1;
                Next::Wait(Duration::ZERO, message)
            }
            SessionEnd::ReconnectNow(message) | SessionEnd::Retry(message) => {
                let wait = self.back_off(index);
                tracing::warn!(%message, ?wait, "session ended; retrying");
                Next::Wait(wait, message)
            }
        }
    }

    /// A 4003: believed once every appliance refused [`REFUSALS_TO_STOP`] times.
    fn refused(&mut self, index: usize, message: String) -> Next {
        if let Some(count) = self.refusals.get_mut(index) {
            *count += 1;
        }
        let believed = self
            .refusals
            .iter()
            .zip(&self.skipped)
            .all(|(count, skipped)| *skipped || *count >= REFUSALS_TO_STOP);
        if believed {
            tracing::error!(%message, "token refused by every appliance; not reconnecting (DNS keeps answering from the replica)");
            return Next::Stop(Some(format!(
                "every appliance refused the token, {REFUSALS_TO_STOP} times each; the last: {message}"
            )));
        }
        let wait = self.back_off(index);
        tracing::warn!(%message, ?wait, "token refused; asking the other appliances before believing it");
        Next::Wait(wait, message)
    }

    /// The next backoff, moving on to the appliance after `index`.
    fn back_off(&mut self, index: usize) -> Duration {
        self.immediate = 0;
        self.next = index + 1;
        self.backoff.next_delay(random_fraction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut backoff = Backoff::default();
        let mut lows = Vec::new();
        let mut highs = Vec::new();
        for _ in 0..12 {
            let mut low = backoff.clone();
            lows.push(low.next_delay(0.0));
            highs.push(backoff.next_delay(0.999_999));
        }
        assert_eq!(lows[0], BACKOFF_INITIAL / 2);
        assert!(highs[0] <= BACKOFF_INITIAL);
        assert_eq!(lows[1], BACKOFF_INITIAL);
        for (low, high) in lows.iter().zip(&highs) {
            assert!(low <= high);
            assert!(*high <= BACKOFF_MAX, "{high:?} over the cap");
            assert!(*low >= BACKOFF_INITIAL / 2);
        }
        assert_eq!(*lows.last().unwrap(), BACKOFF_MAX / 2);
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), BACKOFF_INITIAL / 2);
    }

    fn refuse(rotation: &mut Rotation, index: usize) -> Next {
        rotation.after(
            index,
            SessionEnd::Unauthorized(format!("appliance {index} refused")),
        )
    }

    #[test]
    fn a_refusal_is_believed_only_once_every_appliance_gave_it() {
        let mut rotation = Rotation::new(2);
        for _ in 0..REFUSALS_TO_STOP {
            assert!(matches!(refuse(&mut rotation, 0), Next::Wait(..)));
        }
        // The first appliance refused enough; the second has not been asked.
        for _ in 1..REFUSALS_TO_STOP {
            assert!(matches!(refuse(&mut rotation, 1), Next::Wait(..)));
        }
        let Next::Stop(Some(message)) = refuse(&mut rotation, 1) else {
            panic!("the last refusal was not believed");
        };
        assert!(
            message.contains("every appliance refused the token"),
            "{message}"
        );
        assert!(message.contains("appliance 1 refused"), "{message}");
    }

    #[test]
    fn a_welcome_forgets_the_refusals_and_a_skipped_appliance_does_not_count() {
        let mut rotation = Rotation::new(2);
        for _ in 1..REFUSALS_TO_STOP {
            refuse(&mut rotation, 0);
        }
        rotation.welcomed();
        assert!(matches!(refuse(&mut rotation, 0), Next::Wait(..)));
        // The second speaks no version of ours: only the first's refusals count now.
        rotation.after(1, SessionEnd::Incompatible("no common version".into()));
        for _ in 2..REFUSALS_TO_STOP {
            assert!(matches!(refuse(&mut rotation, 0), Next::Wait(..)));
        }
        assert!(matches!(refuse(&mut rotation, 0), Next::Stop(Some(_))));
        assert_eq!(rotation.next_appliance(), Some(0));
    }

    #[test]
    fn random_fractions_stay_in_range() {
        for _ in 0..1000 {
            let value = random_fraction();
            assert!((0.0..1.0).contains(&value), "{value}");
        }
    }
}
