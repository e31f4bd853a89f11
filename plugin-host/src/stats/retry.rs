//! A disabled plugin and its retries, as a circuit breaker: after
//! [`MAX_CONSECUTIVE_FAILURES`](crate::MAX_CONSECUTIVE_FAILURES) failed calls in a row
//! the plugin is disabled (open); once its backoff has passed, one call is let
//! through (half-open). If that call succeeds the plugin is enabled again (closed); if
//! it fails the backoff doubles, up to [`MAX_RETRY_BACKOFF`].
//!
//! Each change of state writes one log line: at the disable, at each retry's outcome.
//! A query that finds the plugin disabled writes none.

use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::PluginStats;
use crate::{MAX_RETRY_BACKOFF, PluginError};

/// Why a plugin is disabled and when it is next retried.
#[derive(Debug, Clone)]
pub(super) struct Retry {
    /// The failures that disabled it.
    reason: String,
    /// The wait before the next retry: doubled by each failed retry.
    backoff: Duration,
    /// When the next call is let through.
    due: Duration,
    /// A call was let through and has not ended yet.
    in_flight: bool,
    /// Retries since it was disabled.
    failed_retries: u64,
}

impl Retry {
    /// The text of `outpost plugin list`'s `stopped: <why>`.
    pub(super) fn describe(&self) -> String {
        let wait = self.due.saturating_sub(now());
        let retried = match self.failed_retries {
            0 => String::new(),
            n => format!(", {n} failed retries so far"),
        };
        let when = match wait.is_zero() {
            true => "at its next call".to_string(),
            false => format!("in {}s", wait.as_secs_f64().ceil()),
        };
        format!("{}; retried {when}{retried}", self.reason)
    }
}

/// What recording a failure did, so the caller writes the one log line it deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Counted; the plugin stays enabled.
    Counted,
    /// This failure disabled the plugin; it is retried after `retry_in`.
    Disabled { retry_in: Duration },
    /// A retry failed; the next one is after `retry_in`.
    RetryFailed { retry_in: Duration },
    /// A call that was under way when the plugin was disabled failed: counted only.
    WhileDisabled,
}

impl AfterFailure {
    /// The failure's log line; `what` says what failed ("plugin call failed").
    pub(crate) fn log(self, plugin: &str, error: &PluginError, what: &str) {
        match self {
            AfterFailure::Counted => tracing::warn!(plugin, %error, "{what}"),
            AfterFailure::Disabled { retry_in } => tracing::warn!(
                plugin,
                %error,
                retry_in_secs = retry_in.as_secs(),
                "plugin disabled after repeated failures"
            ),
            AfterFailure::RetryFailed { retry_in } => tracing::warn!(
                plugin,
                %error,
                retry_in_secs = retry_in.as_secs(),
                "plugin retried and failed again: stays disabled"
            ),
            AfterFailure::WhileDisabled => tracing::debug!(plugin, %error, "{what}"),
        }
    }
}

/// Monotonic time since the first use in this process: what the retry deadlines
/// count in, so that one can be read from an atomic.
fn now() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

impl PluginStats {
    /// The disabled state; it holds no invariant a panic could break.
    pub(super) fn retry(&self) -> MutexGuard<'_, Option<Retry>> {
        self.retry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Disables the plugin for `reason`, to be retried after the first backoff.
    pub(super) fn disable(&self, reason: String) -> AfterFailure {
        let mut retry = self.retry();
        if retry.is_some() {
            return AfterFailure::WhileDisabled;
        }
        let backoff = self.first_retry.min(MAX_RETRY_BACKOFF);
        let due = now() + backoff;
        *retry = Some(Retry {
            reason,
            backoff,
            due,
            in_flight: false,
            failed_retries: 0,
        });
        self.retry_due_nanos.store(nanos(due), Ordering::Relaxed);
        self.disabled.store(true, Ordering::Relaxed);
        AfterFailure::Disabled { retry_in: backoff }
    }

    /// Whether a disabled plugin's backoff has passed: its next call would be let
    /// through. No lock: the policy chain asks it for every query.
    pub fn retry_due(&self) -> bool {
        nanos(now()) >= self.retry_due_nanos.load(Ordering::Relaxed)
    }

    /// Whether a call may go ahead: always when the plugin is enabled; when it is
    /// disabled, the one call that finds its backoff passed (the retry). A retry
    /// that never reported back (its thread died) does not block the next one.
    pub(crate) fn admit(&self) -> bool {
        if !self.is_disabled() {
            return true;
        }
        if !self.retry_due() {
            return false;
        }
        let mut slot = self.retry();
        let Some(retry) = slot.as_mut() else {
            return true;
        };
        let now = now();
        if now < retry.due {
            return false;
        }
        // Until this retry reports, others wait another backoff.
        retry.due = now + retry.backoff;
        retry.in_flight = true;
        self.retry_due_nanos
            .store(nanos(retry.due), Ordering::Relaxed);
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A call succeeded while the plugin was disabled: if it was the retry, the
    /// plugin is enabled again.
    pub(super) fn retry_succeeded(&self, plugin: &str) {
        let mut slot = self.retry();
        if !slot.as_ref().is_some_and(|retry| retry.in_flight) {
            return;
        }
        let failed_retries = slot.as_ref().map_or(0, |retry| retry.failed_retries);
        *slot = None;
        self.disabled.store(false, Ordering::Relaxed);
        self.retry_due_nanos.store(0, Ordering::Relaxed);
        tracing::info!(
            plugin,
            failed_retries,
            "plugin retried and succeeded: enabled again"
        );
    }

    /// A call failed while the plugin was disabled: if it was the retry, the
    /// backoff doubles.
    pub(super) fn retry_failed(&self, error: &PluginError) -> AfterFailure {
        let mut slot = self.retry();
        let Some(retry) = slot.as_mut().filter(|retry| retry.in_flight) else {
            return AfterFailure::WhileDisabled;
        };
        retry.in_flight = false;
        retry.failed_retries += 1;
        retry.backoff = retry.backoff.saturating_mul(2).min(MAX_RETRY_BACKOFF);
        retry.due = now() + retry.backoff;
        retry.reason = format!("{}; the last retry: {error}", first_reason(&retry.reason));
        self.retry_due_nanos
            .store(nanos(retry.due), Ordering::Relaxed);
        AfterFailure::RetryFailed {
            retry_in: retry.backoff,
        }
    }
}

/// The reason a plugin was first disabled, without what its retries added.
fn first_reason(reason: &str) -> &str {
    reason.split("; the last retry: ").next().unwrap_or(reason)
}
