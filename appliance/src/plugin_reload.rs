//! The node's plugins: after every applied batch that installs, updates or removes a
//! plugin, and after every snapshot install (which may do any of those), the reload task
//! loads the definitions as they now are into the node's
//! [`PluginRuntime`] (shared with the Lite client, in `outpost-dns`), which puts the
//! query-policy chain in the DNS path; the admin write path runs its transforms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outpost_core::state::Change;
use outpost_dns::plugin_runtime::PluginRuntime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{CommitObserver, StateEvent, Store};

/// Tells the reload task that the plugin definitions may have changed: an applied batch
/// that touched them, or a snapshot install. Cheap on the apply path: one scan of the
/// batch's changes, one `Notify`.
pub struct PluginWatch {
    changed: Notify,
    /// A plugin was removed since the last reload (see [`PluginRuntime::reload`]).
    removed: AtomicBool,
}

impl PluginWatch {
    pub fn new() -> Arc<PluginWatch> {
        Arc::new(PluginWatch {
            changed: Notify::new(),
            removed: AtomicBool::new(false),
        })
    }
}

impl CommitObserver for PluginWatch {
    fn observe(&self, event: &StateEvent) {
        let (touches_plugins, removes) = match event {
            // The node loads what the store holds before it serves.
            StateEvent::Loaded { .. } => (false, false),
            // A snapshot may install, update or remove any definition.
            StateEvent::Replaced { .. } => (true, true),
            StateEvent::Applied(batch) => {
                let changes = || batch.entries.iter().flat_map(|entry| &entry.changes);
                (
                    changes().any(|change| {
                        matches!(
                            change,
                            Change::PluginPut { .. } | Change::PluginDeleted { .. }
                        )
                    }),
                    changes().any(|change| matches!(change, Change::PluginDeleted { .. })),
                )
            }
        };
        if removes {
            // Set before the notification, so the reload it wakes sees it.
            self.removed.store(true, Ordering::SeqCst);
        }
        if touches_plugins {
            // A permit is stored while the task is busy loading, so the change after
            // the one being loaded is never missed.
            self.changed.notify_one();
        }
    }
}

/// Loads the definitions the store holds now (`fresh`: see
/// [`PluginRuntime::reload`]).
pub async fn load_current(runtime: &PluginRuntime, store: &Store, fresh: bool) {
    let definitions = store.zones().plugins().cloned().collect();
    runtime.reload(definitions, fresh).await;
}

/// Reloads after every change the watch reports, until `shutdown`.
pub async fn run(
    runtime: Arc<PluginRuntime>,
    watch: Arc<PluginWatch>,
    store: Store,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = watch.changed.notified() => {
                let fresh = watch.removed.swap(false, Ordering::SeqCst);
                load_current(&runtime, &store, fresh).await;
            }
        }
    }
}
