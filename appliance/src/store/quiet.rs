//! A node that leads a cluster of one has nothing to tick for, yet openraft's tick loop
//! wakes a runtime thread every heartbeat × 13/64 (about 10 ms with our 50 ms heartbeat):
//! a hundred wakeups a second on an idle box, each one taking a core from the DNS workers
//! for a moment. Ticks drive heartbeats and elections only; alone, there is no one to send
//! a heartbeat to and no election to hold. So they are off while this node leads and is
//! the only member, and on again as soon as that stops being true.
//!
//! **Invariant:** ticks are off only while this node is the leader and the membership
//! (voters and learners) holds no other node. A node that is not yet leading keeps them,
//! so it can elect itself; a member added (a join starts as a learner) turns them back
//! on, from the metrics change that announces it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openraft::async_runtime::WatchReceiver as _;

use super::Store;
use super::state_machine::Raft;

/// Watches the metrics of `store`'s Raft node until it shuts down, turning ticks on and
/// off, and keeps the store's `ticking` saying which.
pub(super) fn spawn(store: &Store) {
    let raft: Raft = store.inner.raft.clone();
    let node_id = store.inner.node_id;
    let ticking_now: Arc<AtomicBool> = Arc::clone(&store.inner.ticking);
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        let mut ticking = true;
        loop {
            let alone = {
                let metrics = metrics.borrow_watched();
                metrics.current_leader == Some(node_id)
                    && (metrics.membership_config.membership().nodes())
                        .all(|(id, _)| *id == node_id)
            };
            if alone == ticking {
                ticking = !alone;
                raft.runtime_config().tick(ticking);
                ticking_now.store(ticking, Ordering::Relaxed);
                tracing::debug!(ticking, "raft ticks follow the membership");
            }
            // Ends when raft shuts down and drops its metrics.
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}
