//! Per-plugin counters and status, shared by every instance of the plugin (one per
//! worker) and read by metrics and `outpost plugin list`: calls, failures by kind,
//! a histogram of the time per call (with median and p99 estimated from it), and
//! whether the plugin is disabled, with its retries (`retry.rs`).

mod retry;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::PluginError;
pub(super) use retry::AfterFailure;
use retry::Retry;

/// Upper bounds of the time-per-call histogram's buckets; a last bucket (+Inf)
/// holds the slower calls. From well under a blocklist's `decide` (about 1 µs) to
/// past a query's whole deadline (2 ms); transforms land in the last buckets.
pub const CALL_TIME_BUCKETS: [Duration; 12] = [
    Duration::from_nanos(500),
    Duration::from_micros(1),
    Duration::from_micros(2),
    Duration::from_micros(5),
    Duration::from_micros(10),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
];

/// Buckets of the histogram, the +Inf one included.
const HISTOGRAM_LEN: usize = CALL_TIME_BUCKETS.len() + 1;

/// Counters of one loaded plugin. Relaxed atomics: each counter is exact, but a
/// snapshot taken during calls may mix counts from slightly different moments.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// The wait before the first retry of the plugin once disabled.
    first_retry: Duration,
    calls: AtomicU64,
    timeouts: AtomicU64,
    out_of_memory: AtomicU64,
    stack_overflows: AtomicU64,
    /// Traps of any other kind: panics, `unreachable`, calls into WASI.
    traps: AtomicU64,
    invalid_outputs: AtomicU64,
    /// Instances built again after a trap.
    rebuilds: AtomicU64,
    /// Instances built while a query waited, because every pre-built one was in use.
    instances_built_on_demand: AtomicU64,
    /// Queries answered from a remembered verdict, without a call (`memo.rs`).
    memo_hits: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    /// Calls by time taken: bucket `i` counts calls of at most
    /// `CALL_TIME_BUCKETS[i]` and more than the bound before it (not cumulative).
    time_histogram: [AtomicU64; HISTOGRAM_LEN],
    consecutive_failures: AtomicU32,
    /// Set after [`MAX_CONSECUTIVE_FAILURES`](super::MAX_CONSECUTIVE_FAILURES) failed
    /// calls in a row; cleared by a retry that succeeds. Read before every call.
    disabled: AtomicBool,
    /// When the next retry is due, in nanoseconds of `retry::now`: read without the
    /// lock, so that skipping a disabled plugin costs a query two atomic loads.
    retry_due_nanos: AtomicU64,
    /// Calls let through to a disabled plugin after its backoff.
    retries: AtomicU64,
    /// Why the plugin is disabled, and its backoff; `None` while it is enabled.
    retry: Mutex<Option<Retry>>,
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
    /// Instances built on the query path because none was idle (see
    /// [`PolicyChain`](crate::PolicyChain)): each cost the query an `init`.
    pub instances_built_on_demand: u64,
    /// Queries answered from a remembered verdict, without a call (not in `calls`).
    pub memo_hits: u64,
    /// Time spent inside the plugin over all calls.
    pub total_time: Duration,
    /// The longest call.
    pub max_time: Duration,
    /// Calls by time taken, one count per bucket of [`CALL_TIME_BUCKETS`] and a last
    /// one for slower calls (not cumulative).
    pub time_histogram: [u64; HISTOGRAM_LEN],
    pub consecutive_failures: u32,
    /// Calls let through to the plugin while it was disabled, to see if it recovered.
    pub retries: u64,
    /// Why the plugin is disabled and when it is retried, if it is disabled.
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

    /// The median time per call, estimated from the histogram; `None` before the
    /// first call.
    pub fn median_time(&self) -> Option<Duration> {
        self.time_quantile(0.5)
    }

    /// The 99th percentile of the time per call, estimated from the histogram.
    pub fn p99_time(&self) -> Option<Duration> {
        self.time_quantile(0.99)
    }

    /// Estimates the `quantile` (0 to 1) of the time per call: finds the bucket
    /// holding it and interpolates linearly inside it, as Prometheus'
    /// `histogram_quantile` does. The estimate is never above the longest call, which
    /// also stands for the upper bound of the +Inf bucket. `None` before the first
    /// call.
    pub fn time_quantile(&self, quantile: f64) -> Option<Duration> {
        let count: u64 = self.time_histogram.iter().sum();
        if count == 0 {
            return None;
        }
        let rank = quantile.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        let mut lower = Duration::ZERO;
        for (index, &in_bucket) in self.time_histogram.iter().enumerate() {
            let upper = CALL_TIME_BUCKETS
                .get(index)
                .copied()
                .unwrap_or(self.max_time)
                .max(lower);
            if in_bucket > 0 && (below + in_bucket) as f64 >= rank {
                let fraction = ((rank - below as f64) / in_bucket as f64).clamp(0.0, 1.0);
                let estimate = lower + (upper - lower).mul_f64(fraction);
                return Some(estimate.min(self.max_time));
            }
            below += in_bucket;
            lower = upper;
        }
        Some(self.max_time)
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
            instances_built_on_demand: self.instances_built_on_demand.load(Ordering::Relaxed),
            memo_hits: self.memo_hits.load(Ordering::Relaxed),
            total_time: Duration::from_nanos(self.total_nanos.load(Ordering::Relaxed)),
            max_time: Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed)),
            time_histogram: std::array::from_fn(|index| {
                self.time_histogram[index].load(Ordering::Relaxed)
            }),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            disabled: self.disabled_reason(),
        }
    }

    /// Counters for a plugin that, once disabled, is first retried after
    /// `first_retry`.
    pub(super) fn new(first_retry: Duration) -> PluginStats {
        PluginStats {
            first_retry,
            ..PluginStats::default()
        }
    }

    /// Whether calls are refused. One relaxed load: checked before every call.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Why the plugin is disabled and when it will be retried; `None` if it is not.
    pub fn disabled_reason(&self) -> Option<String> {
        if !self.is_disabled() {
            return None;
        }
        self.retry().as_ref().map(Retry::describe)
    }

    /// Counts one call that ran for `elapsed`, whatever its outcome.
    pub(super) fn record_call(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        let bucket = CALL_TIME_BUCKETS
            .iter()
            .position(|bound| elapsed <= *bound)
            .unwrap_or(CALL_TIME_BUCKETS.len());
        if let Some(counter) = self.time_histogram.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn record_memo_hit(&self) {
        self.memo_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_instance_built_on_demand(&self) {
        self.instances_built_on_demand
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call of `plugin` that succeeded; a retry of a disabled plugin that
    /// succeeds enables it again.
    pub(super) fn record_success(&self, plugin: &str) {
        // A store, not a swap: on the hot path this is a plain write when already 0.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.is_disabled() {
            self.retry_succeeded(plugin);
        }
    }

    pub(super) fn record_rebuild(&self) {
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure by kind; disables the plugin when it is the
    /// [`MAX_CONSECUTIVE_FAILURES`](super::MAX_CONSECUTIVE_FAILURES)th in a row, and
    /// backs off further when it was a retry. Returns what it did, for the one log
    /// line the caller writes ([`AfterFailure::log`]).
    pub(super) fn record_failure(&self, error: &PluginError) -> AfterFailure {
        let counter = match error {
            PluginError::Timeout { .. } => &self.timeouts,
            PluginError::OutOfMemory { .. } => &self.out_of_memory,
            PluginError::StackOverflow { .. } => &self.stack_overflows,
            PluginError::InvalidOutput { .. } => &self.invalid_outputs,
            _ => &self.traps,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.is_disabled() {
            return self.retry_failed(error);
        }
        if failures < super::MAX_CONSECUTIVE_FAILURES {
            return AfterFailure::Counted;
        }
        self.disable(format!(
            "{failures} consecutive failed calls, the last: {error}"
        ))
    }

    /// Records a failure and writes its one log line.
    pub(super) fn fail(&self, plugin: &str, error: &PluginError, what: &str) {
        self.record_failure(error).log(plugin, error, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with_calls(times: &[Duration]) -> StatsSnapshot {
        let stats = PluginStats::default();
        for time in times {
            stats.record_call(*time);
        }
        stats.snapshot()
    }

    #[test]
    fn calls_land_in_the_bucket_of_their_upper_bound() {
        let snapshot = stats_with_calls(&[
            Duration::from_nanos(100),
            Duration::from_nanos(500),
            Duration::from_nanos(501),
            Duration::from_micros(3),
            Duration::from_millis(20),
        ]);
        let mut expected = [0u64; HISTOGRAM_LEN];
        expected[0] = 2; // <= 500 ns
        expected[1] = 1; // <= 1 µs
        expected[3] = 1; // <= 5 µs
        expected[12] = 1; // +Inf
        assert_eq!(snapshot.time_histogram, expected);
        assert_eq!(snapshot.calls, 5);
    }

    #[test]
    fn quantiles_are_interpolated_inside_their_bucket() {
        assert_eq!(PluginStats::default().snapshot().median_time(), None);

        // 100 calls between 1 and 2 µs: the median is estimated at 1.5 µs.
        let snapshot = stats_with_calls(&[Duration::from_nanos(1_700); 100]);
        assert_eq!(snapshot.median_time(), Some(Duration::from_nanos(1_500)));
        // Never above the longest call.
        assert_eq!(snapshot.p99_time(), Some(Duration::from_nanos(1_700)));

        // 98 fast calls and 2 slow ones: the p99 lies in the +Inf bucket, bounded
        // by the longest call.
        let mut times = vec![Duration::from_nanos(800); 98];
        times.extend([Duration::from_millis(30), Duration::from_millis(40)]);
        let snapshot = stats_with_calls(&times);
        let median = snapshot.median_time().unwrap();
        assert!(
            median > Duration::from_nanos(500) && median <= Duration::from_micros(1),
            "{median:?}"
        );
        let p99 = snapshot.p99_time().unwrap();
        assert!(
            p99 > Duration::from_millis(10) && p99 <= Duration::from_millis(40),
            "{p99:?}"
        );
    }
}
