//! Per-plugin counters and status, shared by every instance of the plugin (one per
//! worker) and read by metrics and `outpost plugin list`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::{MAX_CONSECUTIVE_FAILURES, PluginError};

/// Counters of one loaded plugin. Relaxed atomics: each counter is exact, but a
/// snapshot taken during calls may mix counts from slightly different moments.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    timeouts: AtomicU64,
    out_of_memory: AtomicU64,
    stack_overflows: AtomicU64,
    /// Traps of any other kind: panics, `unreachable`, calls into WASI.
    traps: AtomicU64,
    invalid_outputs: AtomicU64,
    /// Instances built again after a trap.
    rebuilds: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Set once, never cleared: a disabled plugin stays disabled until reloaded.
    disabled: AtomicBool,
    disabled_reason: Mutex<Option<String>>,
}

/// A copy of a plugin's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Calls of the hook (`decide` or `transform`), failed ones included.
    pub calls: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub stack_overflows: u64,
    pub traps: u64,
    pub invalid_outputs: u64,
    pub rebuilds: u64,
    /// Time spent inside the plugin over all calls.
    pub total_time: Duration,
    /// The longest call.
    pub max_time: Duration,
    pub consecutive_failures: u32,
    /// Why the plugin was disabled, if it was.
    pub disabled: Option<String>,
}

impl StatsSnapshot {
    /// Every call that failed, whatever the kind.
    pub fn failures(&self) -> u64 {
        self.timeouts
            + self.out_of_memory
            + self.stack_overflows
            + self.traps
            + self.invalid_outputs
    }

    /// Mean time per call.
    pub fn mean_time(&self) -> Duration {
        if self.calls == 0 {
            Duration::ZERO
        } else {
            self.total_time / u32::try_from(self.calls).unwrap_or(u32::MAX)
        }
    }
}

impl PluginStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            out_of_memory: self.out_of_memory.load(Ordering::Relaxed),
            stack_overflows: self.stack_overflows.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            invalid_outputs: self.invalid_outputs.load(Ordering::Relaxed),
            rebuilds: self.rebuilds.load(Ordering::Relaxed),
            total_time: Duration::from_nanos(self.total_nanos.load(Ordering::Relaxed)),
            max_time: Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed)),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            disabled: self.disabled_reason(),
        }
    }

    /// Whether calls are refused. One relaxed load: checked before every call.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    pub fn disabled_reason(&self) -> Option<String> {
        if !self.is_disabled() {
            return None;
        }
        self.disabled_reason
            .lock()
            .map(|reason| reason.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Counts one call that ran for `elapsed`, whatever its outcome.
    pub(super) fn record_call(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(super) fn record_success(&self) {
        // A store, not a swap: on the hot path this is a plain write when already 0.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn record_rebuild(&self) {
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure by kind; disables the plugin when it is the
    /// [`MAX_CONSECUTIVE_FAILURES`]th in a row. Returns whether it did.
    pub(super) fn record_failure(&self, error: &PluginError) -> bool {
        let counter = match error {
            PluginError::Timeout { .. } => &self.timeouts,
            PluginError::OutOfMemory { .. } => &self.out_of_memory,
            PluginError::StackOverflow { .. } => &self.stack_overflows,
            PluginError::InvalidOutput { .. } => &self.invalid_outputs,
            _ => &self.traps,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < MAX_CONSECUTIVE_FAILURES || self.is_disabled() {
            return false;
        }
        let reason = format!("{failures} consecutive failed calls, the last: {error}");
        match self.disabled_reason.lock() {
            Ok(mut slot) => *slot = Some(reason),
            Err(poisoned) => *poisoned.into_inner() = Some(reason),
        }
        self.disabled.store(true, Ordering::Relaxed);
        true
    }
}
