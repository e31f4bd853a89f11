//! The plugins in force in one daemon: the replicated definitions loaded into the
//! wasmtime host, with the query-policy chain installed in the [`QueryHandler`].
//!
//! The owner calls [`PluginRuntime::reload`] with the definitions as they now are
//! whenever they change (the appliance after an applied batch, the Lite client after
//! a commit). Loading compiles components once per content hash and carries an
//! unchanged plugin over with its instances and counters ([`PluginSet::load`]).
//! Queries and writes in flight finish with the set they started with.
//!
//! **Invariant:** a definition that fails to load leaves the daemon serving with the
//! others; the failure is kept for `plugin list` and the status, and logged.
//! **Invariant:** loading never runs on an async worker: it may compile components
//! and run `init` for seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, Record};
use outpost_core::state::PluginDefinition;
use outpost_plugin_host::{PluginEngine, PluginError, PluginInfo, PluginSet, TransformFailure};

use crate::handler::QueryHandler;

mod watch;
pub use watch::PluginWatch;

/// Where one plugin definition stands on this node. Displayed as `plugin list` and the Lite
/// status show it: `running`, `disabled`, `stopped: <why>`, `failed: <why>`, `loading`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginState {
    /// The version in force.
    Running,
    /// Switched off by the operator.
    Disabled,
    /// It kept failing and was switched off here; the reason.
    Stopped(String),
    /// It did not load; the reason.
    Failed(String),
    /// Not in force yet (or an older version is).
    Loading,
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginState::Running => f.write_str("running"),
            PluginState::Disabled => f.write_str("disabled"),
            PluginState::Stopped(reason) => write!(f, "stopped: {reason}"),
            PluginState::Failed(reason) => write!(f, "failed: {reason}"),
            PluginState::Loading => f.write_str("loading"),
        }
    }
}

/// The plugins in force.
pub struct PluginRuntime {
    engine: PluginEngine,
    loaded: ArcSwap<PluginSet>,
    /// Why a definition is not in force, by name (empty when all loaded).
    failures: ArcSwap<BTreeMap<String, String>>,
    handler: Arc<QueryHandler>,
}

impl PluginRuntime {
    /// No plugins yet; [`PluginRuntime::reload`] brings the definitions in.
    pub fn new(engine: PluginEngine, handler: Arc<QueryHandler>) -> PluginRuntime {
        PluginRuntime {
            engine,
            loaded: ArcSwap::from_pointee(PluginSet::empty()),
            failures: ArcSwap::from_pointee(BTreeMap::new()),
            handler,
        }
    }

    /// The process's engine, for checking a plugin before it is installed.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The plugins in force now.
    pub fn loaded(&self) -> Arc<PluginSet> {
        self.loaded.load_full()
    }

    /// Why each definition that is not in force is not, by name.
    pub fn failures(&self) -> Arc<BTreeMap<String, String>> {
        self.failures.load_full()
    }

    /// Where `definition` stands here, and the loaded plugin of its name if any.
    pub fn state_of(&self, definition: &PluginDefinition) -> (PluginState, Option<PluginInfo>) {
        let running = self
            .loaded()
            .plugins()
            .into_iter()
            .find(|plugin| *plugin.name == *definition.name);
        let state = if !definition.enabled {
            PluginState::Disabled
        } else if let Some(failure) = self.failures.load().get(&definition.name) {
            PluginState::Failed(failure.clone())
        } else {
            match running
                .as_ref()
                .map(|plugin| plugin.stats.disabled_reason())
            {
                Some(Some(reason)) => PluginState::Stopped(reason),
                Some(None) if running.as_ref().map(|p| p.version) == Some(definition.version) => {
                    PluginState::Running
                }
                _ => PluginState::Loading,
            }
        };
        (state, running)
    }

    /// Loads `definitions` (on a blocking thread) and puts them in force. A plugin
    /// whose definition is unchanged keeps its instances and counters, unless
    /// `fresh`: the owner asks for that after a removal, so that a plugin removed and
    /// installed again between two reloads (the same name, version 1 again, the same
    /// bytes) starts anew instead of being carried over, stopped or not.
    pub async fn reload(&self, definitions: Vec<Arc<PluginDefinition>>, fresh: bool) {
        let engine = self.engine.clone();
        let previous = match fresh {
            true => Arc::new(PluginSet::empty()),
            false => self.loaded(),
        };
        let loaded =
            tokio::task::spawn_blocking(move || PluginSet::load(&engine, &definitions, &previous))
                .await;
        let (set, failed) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "the plugin loader stopped; the plugins in force stay");
                return;
            }
        };
        let failures: BTreeMap<String, String> = failed
            .into_iter()
            .map(|failure| (failure.name.clone(), failure.error.to_string()))
            .collect();
        self.handler.set_policies(Arc::clone(set.policies()));
        tracing::info!(
            plugins = set.plugins().len(),
            failed = failures.len(),
            "plugins in force"
        );
        self.loaded.store(Arc::new(set));
        self.failures.store(Arc::new(failures));
    }

    /// Runs the record-transform plugins over records about to be written to `zone`,
    /// on a blocking thread (a transform may run for seconds).
    pub async fn transform(
        &self,
        zone: Name,
        records: Vec<Record>,
    ) -> Result<Vec<Record>, TransformFailure> {
        let loaded = self.loaded();
        if loaded.transforms().is_empty() {
            return Ok(records);
        }
        tokio::task::spawn_blocking(move || loaded.transforms().transform(&zone, records))
            .await
            .unwrap_or_else(|error| {
                Err(TransformFailure::Failed {
                    plugin: "record-transform".into(),
                    error: PluginError::Engine(format!("the transform task stopped: {error}")),
                })
            })
    }
}
