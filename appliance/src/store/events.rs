//! What the store tells the rest of the appliance after every change of its state: a
//! [`StateEvent`], heard by each [`CommitObserver`] (the Lite hub, the plugin watcher).
//!
//! The state machine publishes them (`StateMachine::publish`, the one place every change of
//! the state goes through); this module only says what they are, so it depends on nothing in
//! the store.

use std::sync::Arc;

use outpost_core::state::Change;

/// What one applied entry changed.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEntry {
    pub index: u64,
    pub changes: Vec<Change>,
}

/// One applied batch: every entry from `first` to `up_to`, with the entries that changed
/// something (the others are omitted). The batch after it starts at its `up_to + 1`.
#[derive(Debug)]
pub struct CommittedBatch {
    /// The first index of the batch: one past the index applied before it.
    pub first: u64,
    pub up_to: u64,
    pub entries: Vec<CommittedEntry>,
}

/// A change of the published state, as the observers hear of it. Every path that
/// changes the state machine publishes one, through `StateMachine::publish`, after the
/// state is durable and the new views are swapped in.
///
/// **Invariant:** for one store, the events tell the whole story in log order: after a
/// `Loaded` or `Replaced` at `as_of`, the next `Applied` batch starts at `as_of + 1`,
/// and each `Applied` batch starts right after the previous one. An observer that keeps
/// a position only moves it over indexes it was told about.
#[derive(Debug, Clone)]
pub enum StateEvent {
    /// The stored state was loaded at start, as of `as_of`.
    Loaded { as_of: u64 },
    /// Committed entries were applied.
    Applied(Arc<CommittedBatch>),
    /// A Raft snapshot replaced the whole state, as of `as_of`: what happened between the
    /// previous event and `as_of` is not known entry by entry.
    Replaced { as_of: u64 },
}

impl StateEvent {
    /// The applied index once this event is published.
    pub fn as_of(&self) -> u64 {
        match self {
            StateEvent::Loaded { as_of } | StateEvent::Replaced { as_of } => *as_of,
            StateEvent::Applied(batch) => batch.up_to,
        }
    }
}

/// Told of every [`StateEvent`], in log order, after it is durable and published.
/// **Must not block**: it runs on the apply path of the state machine.
pub trait CommitObserver: Send + Sync + 'static {
    fn observe(&self, event: &StateEvent);
}

/// Several observers, told in order.
impl CommitObserver for Vec<Arc<dyn CommitObserver>> {
    fn observe(&self, event: &StateEvent) {
        for observer in self {
            observer.observe(event);
        }
    }
}
