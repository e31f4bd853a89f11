//! Zone transfers out on an appliance: the IXFR journal fed from the store's commits,
//! and NOTIFY sent for every change while this node leads (`outpost_dns::transfer`
//! does the protocol).

use std::sync::{Arc, OnceLock};

use outpost_dns::transfer::Transfers;
use outpost_dns::transfer::notify::Notifier;

use crate::store::{CommitObserver, StateEvent, Store};

/// The store's observer for zone transfers. It is registered before the store opens and
/// does nothing until [`TransferFeed::start`] gives it what it feeds.
#[derive(Default)]
pub struct TransferFeed {
    parts: OnceLock<Parts>,
}

struct Parts {
    store: Store,
    transfers: Arc<Transfers>,
    notifier: Arc<Notifier>,
}

impl TransferFeed {
    /// Starts the journal from the store's state as it is now.
    pub fn start(&self, store: Store, transfers: Arc<Transfers>, notifier: Arc<Notifier>) {
        let view = store.view();
        transfers.journal().reset(view.zones.clone(), view.applied);
        let parts = Parts {
            store,
            transfers,
            notifier,
        };
        if self.parts.set(parts).is_err() {
            tracing::warn!("the transfer feed was started twice; the first stays");
        }
    }
}

impl CommitObserver for TransferFeed {
    fn observe(&self, event: &StateEvent) {
        let Some(parts) = self.parts.get() else {
            return;
        };
        // The observers run after the view is swapped and before the next apply.
        let view = parts.store.view();
        let journal = parts.transfers.journal();
        match event {
            StateEvent::Applied(batch) if view.applied == batch.up_to => {
                let entries = batch.entries.iter().map(|entry| entry.changes.as_slice());
                let zones = journal.applied(batch.first, batch.up_to, view.zones.clone(), entries);
                parts.notifier.changed(zones);
            }
            _ => journal.reset(view.zones.clone(), view.applied),
        }
    }
}
