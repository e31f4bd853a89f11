//! The views readers load without a lock, and the one step that swaps them after a
//! commit.
//!
//! **Invariant:** [`Published::publish`] is called only after the state it publishes is
//! durable, and the query index is swapped before the view, so a reader that sees the
//! view's index finds answers at least that recent.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use outpost_core::answer::ZoneSet;
use outpost_core::state::{Change, CookieSecrets, ReplicatedState};

/// The replicated state as of one applied index.
#[derive(Debug, Default)]
pub struct View {
    /// The last index whose changes this state holds (the Raft log index on an appliance,
    /// the cursor on a Lite client; 0 before the first).
    pub applied: u64,
    pub zones: Arc<ReplicatedState>,
}

/// How the next query index is built from the previous one.
#[derive(Debug, Clone, Copy)]
pub enum Rebuild<'a> {
    /// Only the zones these changes touched are indexed again (none: the index stays).
    Changes(&'a [Change]),
    /// The whole index is built again (a load, a snapshot).
    Whole,
}

/// The views of the state, swapped after each commit; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Published {
    /// The model with the index it is the state after: admin reads, Lite snapshots, the
    /// base of the next apply.
    pub view: Arc<ArcSwap<View>>,
    /// The query index the DNS path answers from.
    pub zone_set: Arc<ArcSwap<ZoneSet>>,
    /// The DNS cookie secrets the DNS path makes and checks server cookies with; empty
    /// until the cluster has some (always, on a Lite client).
    pub cookie_secrets: Arc<ArcSwapOption<CookieSecrets>>,
}

impl Published {
    /// Empty views (index 0, no zones), until the first [`Published::publish`].
    pub fn new() -> Published {
        Published::default()
    }

    /// The current view.
    pub fn load(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Makes `zones`, the state after index `applied`, visible: the query index first
    /// (rebuilt as `rebuild` says) and the cookie secrets, then the view.
    pub fn publish(&self, applied: u64, zones: ReplicatedState, rebuild: Rebuild<'_>) {
        let zone_set = match rebuild {
            Rebuild::Changes([]) => None,
            Rebuild::Changes(changes) => {
                Some(ZoneSet::rebuild(&zones, &self.zone_set.load(), changes))
            }
            Rebuild::Whole => Some(ZoneSet::build(&zones)),
        };
        if let Some(zone_set) = zone_set {
            self.zone_set.store(Arc::new(zone_set));
        }
        let secrets = zones.cookie_secrets().copied();
        if self.cookie_secrets.load().as_deref() != secrets.as_ref() {
            self.cookie_secrets.store(secrets.map(Arc::new));
        }
        self.view.store(Arc::new(View {
            applied,
            zones: Arc::new(zones),
        }));
    }
}
