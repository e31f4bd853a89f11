//! The fanout hub: hands every applied batch to every Lite session, without ever
//! waiting for one.
//!
//! The store calls [`Hub::observe`] on its apply path, in log order, after each change
//! of state is durable and the new view is published. The hub wraps an applied batch in
//! one [`SharedBatch`], through which the sessions share its encoded frames, and hands
//! that to every session; a snapshot install goes to every session as
//! [`Update::Replaced`], after which a session that stood before it must resync (the
//! entries it skipped are not known one by one). Each session has a bounded queue of [`SESSION_QUEUE`]
//! batches; the hub only `try_send`s into it. A session that lets its
//! queue fill up is marked for resync: it gets nothing more, tells its client so
//! (`ResyncRequired`, close 4004) and the client resumes from its stored cursor.
//!
//! **Invariant:** `observe` never blocks on a session and never encodes: it holds
//! the session list's lock only to iterate and `try_send`.
//! **Invariant:** a session registers before it reads the view it starts from, so
//! every batch after that view reaches its queue (or marks it for resync).

use std::collections::HashMap;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::outbound::SharedBatch;
use super::preauth::PreauthMetrics;
use crate::store::{CommitObserver, StateEvent};

/// Batches queued per session. When a session's queue is full (its client reads
/// slower than the cluster commits, or not at all) the hub stops queueing for it and
/// marks it for resync; the session then sends `ResyncRequired` and closes with 4004.
/// 256 batches is seconds of a busy import and minutes of ordinary writes.
pub const SESSION_QUEUE: usize = 256;

/// `acked` before the client sent any `Ack`.
const NO_ACK: u64 = u64::MAX;

/// Every live session's queue, and the counters `/metrics` shows.
pub struct Hub {
    sessions: Mutex<Vec<Slot>>,
    queue_capacity: usize,
    next_id: AtomicU64,
    totals: Totals,
    /// The pre-auth pool's counters, shown with the others.
    pub(crate) preauth: Arc<PreauthMetrics>,
}

struct Slot {
    info: Arc<SessionInfo>,
    /// `None` once the queue overflowed: nothing more is queued for the session.
    sender: Option<mpsc::Sender<Update>>,
}

/// What a session's queue carries, in log order.
#[derive(Clone)]
pub enum Update {
    /// An applied batch and its shared frames.
    Batch(Arc<SharedBatch>),
    /// A Raft snapshot replaced the state as of `as_of`.
    Replaced { as_of: u64 },
}

impl Update {
    /// The applied index once this update is in the state.
    pub fn up_to(&self) -> u64 {
        match self {
            Update::Batch(shared) => shared.batch.up_to,
            Update::Replaced { as_of } => *as_of,
        }
    }
}

#[derive(Default)]
struct Totals {
    overflows: AtomicU64,
    snapshots: AtomicU64,
    resumes: AtomicU64,
    auth_failures: AtomicU64,
    protocol_errors: AtomicU64,
    batch_encodes: AtomicU64,
    replaced_resyncs: AtomicU64,
    gaps: AtomicU64,
}

/// What the hub and the admin API know of one session; the session updates it.
pub struct SessionInfo {
    id: u64,
    pub client_id: String,
    /// The name of the token the client presented (checked or not yet).
    pub token: String,
    pub remote: SocketAddr,
    started: Instant,
    acked: AtomicU64,
    overflowed: AtomicBool,
    overflows: AtomicU64,
}

impl SessionInfo {
    /// Records the client's `Ack`.
    pub fn record_ack(&self, cursor: u64) {
        self.acked.store(cursor.min(NO_ACK - 1), Ordering::Relaxed);
    }

    /// Whether the queue overflowed: the session must tell its client to resync.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// A session's place in the hub: its queue, and its entry in the list, removed when
/// this is dropped.
pub struct Registration {
    hub: Arc<Hub>,
    pub info: Arc<SessionInfo>,
    /// Applied batches and snapshot installs in log order; ends after an overflow
    /// (check [`SessionInfo::overflowed`] first).
    pub updates: mpsc::Receiver<Update>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.info.id;
        self.hub.lock().retain(|slot| slot.info.id != id);
    }
}

/// What the admin API shows of one session (`GET /v1/sync/sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub client_id: String,
    pub token: String,
    pub remote: SocketAddr,
    /// The last `Ack` of the client; `null` before the first.
    pub cursor_acked: Option<u64>,
    /// Batches waiting in the session's queue.
    pub queue_depth: usize,
    pub overflows: u64,
    pub connected_secs: u64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::with_queue(SESSION_QUEUE)
    }

    /// A hub whose sessions queue `capacity` batches (tests shrink it).
    pub fn with_queue(capacity: usize) -> Hub {
        Hub {
            sessions: Mutex::new(Vec::new()),
            queue_capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            totals: Totals::default(),
            preauth: Arc::default(),
        }
    }

    /// Adds a session; from now on it hears of every applied batch.
    pub fn register(
        self: &Arc<Self>,
        client_id: &str,
        token: &str,
        remote: SocketAddr,
    ) -> Registration {
        let (sender, updates) = mpsc::channel(self.queue_capacity);
        let info = Arc::new(SessionInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client_id: client_id.to_string(),
            token: token.to_string(),
            remote,
            started: Instant::now(),
            acked: AtomicU64::new(NO_ACK),
            overflowed: AtomicBool::new(false),
            overflows: AtomicU64::new(0),
        });
        self.lock().push(Slot {
            info: Arc::clone(&info),
            sender: Some(sender),
        });
        Registration {
            hub: Arc::clone(self),
            info,
            updates,
        }
    }

    /// The live sessions, oldest first.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        self.lock()
            .iter()
            .map(|slot| {
                let info = &slot.info;
                let acked = info.acked.load(Ordering::Relaxed);
                SessionSummary {
                    client_id: info.client_id.clone(),
                    token: info.token.clone(),
                    remote: info.remote,
                    cursor_acked: (acked != NO_ACK).then_some(acked),
                    queue_depth: slot.sender.as_ref().map_or(self.queue_capacity, |sender| {
                        sender.max_capacity() - sender.capacity()
                    }),
                    overflows: info.overflows.load(Ordering::Relaxed),
                    connected_secs: info.started.elapsed().as_secs(),
                }
            })
            .collect()
    }

    /// Live sessions per token name.
    pub fn sessions_per_token(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for slot in self.lock().iter() {
            *counts.entry(slot.info.token.clone()).or_insert(0) += 1;
        }
        counts
    }

    pub fn count_snapshot(&self) {
        self.totals.snapshots.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_resume(&self) {
        self.totals.resumes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_auth_failure(&self) {
        self.totals.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_protocol_error(&self) {
        self.totals.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A session was told to resync because a snapshot install moved the state past it.
    pub fn count_replaced_resync(&self) {
        self.totals.replaced_resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// A session met a batch that does not follow the last one it sent.
    pub fn count_gap(&self) {
        self.totals.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch was encoded into `Changes` frames for one scope.
    pub fn count_batch_encode(&self) {
        self.totals.batch_encodes.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the sync metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let sessions = self.lock().len() as u64;
        let totals = &self.totals;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let gauges = [(
            "outpost_sync_sessions",
            "Lite sync sessions connected now.",
            sessions,
        )];
        let counters = [
            (
                "outpost_sync_overflows_total",
                "Sessions whose queue overflowed and were told to resync.",
                load(&totals.overflows),
            ),
            (
                "outpost_sync_snapshots_total",
                "Sessions that started with a full snapshot.",
                load(&totals.snapshots),
            ),
            (
                "outpost_sync_resumes_total",
                "Sessions that resumed from their cursor.",
                load(&totals.resumes),
            ),
            (
                "outpost_sync_auth_failures_total",
                "Sessions refused for an unknown, revoked or wrong token.",
                load(&totals.auth_failures),
            ),
            (
                "outpost_sync_protocol_errors_total",
                "Sessions closed for a malformed or unexpected frame.",
                load(&totals.protocol_errors),
            ),
            (
                "outpost_sync_batch_encodes_total",
                "Applied batches encoded into Changes frames: once per batch and scope, shared by the sessions with that scope.",
                load(&totals.batch_encodes),
            ),
            (
                "outpost_sync_snapshot_resyncs_total",
                "Sessions told to resync because a Raft snapshot install moved this node's state past them.",
                load(&totals.replaced_resyncs),
            ),
            (
                "outpost_sync_gaps_total",
                "Sessions told to resync because an applied batch did not follow the last one sent (never expected).",
                load(&totals.gaps),
            ),
        ];
        for (kind, metrics) in [("gauge", &gauges[..]), ("counter", &counters[..])] {
            for (name, help, value) in metrics {
                outpost_dns::metrics::write_sample(out, name, kind, help, *value);
            }
        }
        self.preauth.render(out);
    }

    /// The list, even if a thread panicked while holding it (every update under the
    /// lock is a single push, retain or field store, so the list stays consistent).
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CommitObserver for Hub {
    fn observe(&self, event: &StateEvent) {
        let update = match event {
            // No session exists before the store is loaded.
            StateEvent::Loaded { .. } => return,
            StateEvent::Applied(batch) => {
                Update::Batch(Arc::new(SharedBatch::new(Arc::clone(batch))))
            }
            StateEvent::Replaced { as_of } => {
                tracing::info!(
                    as_of,
                    "a Raft snapshot replaced the state; sessions behind it resync"
                );
                Update::Replaced { as_of: *as_of }
            }
        };
        let mut sessions = self.lock();
        sessions.retain_mut(|slot| {
            let Some(sender) = &slot.sender else {
                return true;
            };
            match sender.try_send(update.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    let info = &slot.info;
                    info.overflows.fetch_add(1, Ordering::Relaxed);
                    info.overflowed.store(true, Ordering::Release);
                    self.totals.overflows.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        client_id = %info.client_id,
                        token = %info.token,
                        remote = %info.remote,
                        up_to = update.up_to(),
                        capacity = self.queue_capacity,
                        "sync session queue full; the session must resync"
                    );
                    // Dropping the sender ends the session's queue after what is in it.
                    slot.sender = None;
                    true
                }
                // The session ended without unregistering yet.
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CommittedBatch, CommittedEntry};

    fn batch(up_to: u64) -> StateEvent {
        StateEvent::Applied(Arc::new(CommittedBatch {
            first: up_to,
            up_to,
            entries: vec![CommittedEntry {
                index: up_to,
                changes: Vec::new(),
            }],
        }))
    }

    fn remote() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[test]
    fn a_full_queue_marks_only_that_session_and_never_blocks() {
        let hub = Arc::new(Hub::with_queue(2));
        let mut slow = hub.register("slow", "a", remote());
        let mut fast = hub.register("fast", "a", remote());
        for up_to in 1..=5 {
            hub.observe(&batch(up_to));
            assert_eq!(fast.updates.try_recv().unwrap().up_to(), up_to);
        }
        assert!(slow.info.overflowed());
        assert!(!fast.info.overflowed());
        // What was queued before the overflow stays; then the queue ends.
        assert_eq!(slow.updates.try_recv().unwrap().up_to(), 1);
        assert_eq!(slow.updates.try_recv().unwrap().up_to(), 2);
        assert!(matches!(
            slow.updates.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        let mut metrics = String::new();
        hub.render_metrics(&mut metrics);
        assert!(
            metrics.contains("\noutpost_sync_overflows_total 1\n"),
            "{metrics}"
        );
        assert!(metrics.contains("\noutpost_sync_sessions 2\n"), "{metrics}");
        let rows = hub.sessions();
        assert_eq!(rows[0].client_id, "slow");
        assert_eq!((rows[0].overflows, rows[0].queue_depth), (1, 2));
        assert_eq!((rows[1].overflows, rows[1].queue_depth), (0, 0));
    }

    #[test]
    fn sessions_leave_the_list_when_dropped() {
        let hub = Arc::new(Hub::new());
        let first = hub.register("one", "alice", remote());
        let second = hub.register("two", "alice", remote());
        let third = hub.register("three", "bob", remote());
        first.info.record_ack(7);
        assert_eq!(hub.sessions()[0].cursor_acked, Some(7));
        assert_eq!(hub.sessions()[1].cursor_acked, None);
        assert_eq!(hub.sessions_per_token()["alice"], 2);
        drop(first);
        drop(third);
        assert_eq!(hub.sessions_per_token().get("bob"), None);
        assert_eq!(hub.sessions().len(), 1);
        // A closed queue is removed at the next batch.
        let mut second = second;
        second.updates.close();
        hub.observe(&batch(1));
        assert!(hub.sessions().is_empty());
        drop(second);
    }
}
