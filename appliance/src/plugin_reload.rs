//! The node's plugins: after every applied batch that installs, updates or removes a
//! plugin, and after every snapshot install (which may do any of those), the reload task
//! loads the definitions as they now are into the node's
//! [`PluginRuntime`] (shared with the Lite client, in `outpost-dns`), which puts the
//! query-policy chain in the DNS path; the admin write path runs its transforms.

use std::sync::Arc;

use outpost_dns::plugin_runtime::{PluginRuntime, PluginWatch};
use tokio_util::sync::CancellationToken;

use crate::store::{CommitObserver, StateEvent, Store};

/// The store's applied batches and installed snapshots, told to the plugin watch. Cheap on
/// the apply path: one scan of the batch's changes, one `Notify`.
impl CommitObserver for PluginWatch {
    fn observe(&self, event: &StateEvent) {
        match event {
            // The node loads what the store holds before it serves.
            StateEvent::Loaded { .. } => {}
            StateEvent::Replaced { .. } => self.replaced(),
            StateEvent::Applied(batch) => {
                self.applied(batch.entries.iter().flat_map(|entry| &entry.changes));
            }
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
    while let Some(fresh) = watch.next_change(&shutdown).await {
        load_current(&runtime, &store, fresh).await;
    }
}
