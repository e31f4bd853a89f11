//! [`PluginWatch`]: how a daemon's reload task hears that the replicated plugin
//! definitions changed. The appliance feeds it from the state machine's applied batches,
//! the Lite client from its replica's commits; both reload tasks wait on it.

use std::sync::atomic::{AtomicBool, Ordering};

use outpost_core::state::Change;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Changes to the plugin definitions not reloaded yet.
#[derive(Debug, Default)]
pub struct PluginWatch {
    changed: Notify,
    /// A definition was removed since the last reload: the next one starts every plugin
    /// afresh (see [`PluginRuntime::reload`](super::PluginRuntime::reload)).
    removed: AtomicBool,
}

impl PluginWatch {
    /// Takes note of changes applied and published; wakes the reload task when one of them
    /// touched a definition.
    pub fn applied<'a>(&self, changes: impl IntoIterator<Item = &'a Change>) {
        let (mut touched, mut removed) = (false, false);
        for change in changes {
            match change {
                Change::PluginPut { .. } => touched = true,
                Change::PluginDeleted { .. } => (touched, removed) = (true, true),
                _ => {}
            }
        }
        self.note(touched, removed);
    }

    /// Takes note of a snapshot installed and published: it may install, update or remove
    /// any definition, so it counts as removing them all.
    pub fn replaced(&self) {
        self.note(true, true);
    }

    fn note(&self, touched: bool, removed: bool) {
        if removed {
            // Set before the notification, so the reload it wakes sees it.
            self.removed.store(true, Ordering::SeqCst);
        }
        if touched {
            // A permit is stored while the task is busy loading, so the change after the
            // one being loaded is never missed.
            self.changed.notify_one();
        }
    }

    /// Waits for the next change: `Some(fresh)` (`fresh`: a definition was removed since
    /// the last reload), or `None` once `shutdown` is cancelled.
    pub async fn next_change(&self, shutdown: &CancellationToken) -> Option<bool> {
        tokio::select! {
            () = shutdown.cancelled() => None,
            () = self.changed.notified() => Some(self.removed.swap(false, Ordering::SeqCst)),
        }
    }
}
