//! The plugins in force in one daemon: the replicated definitions loaded into the
//! wasmtime host, with the query-policy chain installed in the [`QueryHandler`].
//!
//! The owner calls [`PluginRuntime::reload`] with the definitions as they now are
//! whenever they change (the appliance after an applied batch, the Lite client after
//! a commit). Loading compiles components once per content hash and carries an
//! unchanged plugin over with its instances and counters ([`PluginSet::load`]).
//! Queries and writes in flight finish with the set they started with. Every plugin
//! is loaded with the daemon's [`PluginDeadlines`], fixed when the runtime is made.
//!
//! **Invariant:** a definition that fails to load leaves the daemon serving with the
//! others; the failure is kept for `plugin list` and the status, and logged.
//! **Invariant:** loading never runs on an async worker: it may compile components
//! and run `init` for seconds.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, Record};
use outpost_core::state::{Hook, PluginDefinition};
use outpost_plugin_host::{
    Limits, LoadOptions, PluginEngine, PluginError, PluginInfo, PluginSet, TransformFailure,
};
use serde::{Deserialize, Serialize};

use crate::handler::QueryHandler;

mod watch;
pub use watch::PluginWatch;

/// The plugins in force.
pub struct PluginRuntime {
    engine: PluginEngine,
    /// The limits every plugin is loaded with (the configured deadlines).
    options: LoadOptions,
    loaded: ArcSwap<PluginSet>,
    /// Why a definition is not in force, by name (empty when all loaded).
    failures: ArcSwap<BTreeMap<String, String>>,
    handler: Arc<QueryHandler>,
}

impl PluginRuntime {
    /// No plugins yet; [`PluginRuntime::reload`] brings the definitions in, each
    /// plugin's calls cut off after its hook's deadline in `deadlines`.
    pub fn new(
        engine: PluginEngine,
        handler: Arc<QueryHandler>,
        deadlines: PluginDeadlines,
    ) -> PluginRuntime {
        PluginRuntime {
            engine,
            options: deadlines.load_options(),
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

    /// Where `definition` stands here, and the plugin in force under its name (with
    /// its counters), when one is.
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
        let options = self.options;
        let previous = match fresh {
            true => Arc::new(PluginSet::empty()),
            false => self.loaded(),
        };
        let loaded = tokio::task::spawn_blocking(move || {
            PluginSet::load_with(&engine, &definitions, &previous, options)
        })
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

/// How long one hook call of a plugin may run before it is cut off (and counted as a
/// timeout), by hook: the appliance's `[plugins]` section, the Lite client's
/// `--policy-deadline-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginDeadlines {
    /// A query-policy `decide`: the query waits for it.
    pub policy: Duration,
    /// A record-transform `transform`: the write waits for it.
    pub transform: Duration,
}

impl PluginDeadlines {
    /// Accepted `policy` deadlines in milliseconds: a `decide` runs on a DNS worker
    /// thread, which serves no other query meanwhile.
    pub const POLICY_MS: RangeInclusive<u64> = 1..=1_000;
    /// Accepted `transform` deadlines in milliseconds.
    pub const TRANSFORM_MS: RangeInclusive<u64> = 1..=60_000;

    /// The plugin host's options with these deadlines.
    fn load_options(self) -> LoadOptions {
        LoadOptions {
            policy_limits: Limits::with_call_deadline(Hook::QueryPolicy, self.policy),
            transform_limits: Limits::with_call_deadline(Hook::RecordTransform, self.transform),
            ..LoadOptions::default()
        }
    }
}

impl Default for PluginDeadlines {
    /// The plugin host's defaults ([`Limits::for_hook`]): 2 ms per `decide`, 2 s per
    /// `transform`.
    fn default() -> Self {
        PluginDeadlines {
            policy: Limits::for_hook(Hook::QueryPolicy).call_deadline(),
            transform: Limits::for_hook(Hook::RecordTransform).call_deadline(),
        }
    }
}

/// Where one plugin definition stands in this daemon.
///
/// **Boundary:** its text is the `state` of `GET /v1/plugins` and of the Lite
/// client's `status.json`: `running`, `disabled`, `stopped: <why>`, `failed: <why>`
/// or `loading`. Changing a spelling changes both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PluginState {
    /// The version in force is the definition's.
    Running,
    /// Switched off by the operator (`enabled: false`).
    Disabled,
    /// It kept failing and was switched off here: the reason says when it is retried
    /// (it runs again once a retry succeeds); an install of the same plugin starts it
    /// again at once.
    Stopped(String),
    /// It did not load here (the error).
    Failed(String),
    /// Not in force yet: the definition is newer than the version loaded.
    Loading,
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginState::Running => f.write_str("running"),
            PluginState::Disabled => f.write_str("disabled"),
            PluginState::Stopped(reason) => write!(f, "stopped: {reason}"),
            PluginState::Failed(error) => write!(f, "failed: {error}"),
            PluginState::Loading => f.write_str("loading"),
        }
    }
}

impl FromStr for PluginState {
    type Err = String;

    fn from_str(text: &str) -> Result<PluginState, String> {
        match text {
            "running" => return Ok(PluginState::Running),
            "disabled" => return Ok(PluginState::Disabled),
            "loading" => return Ok(PluginState::Loading),
            _ => {}
        }
        if let Some(reason) = text.strip_prefix("stopped: ") {
            Ok(PluginState::Stopped(reason.to_string()))
        } else if let Some(error) = text.strip_prefix("failed: ") {
            Ok(PluginState::Failed(error.to_string()))
        } else {
            Err(format!(
                "plugin state {text:?} is not known (running, disabled, stopped: <why>, \
                 failed: <why> or loading)"
            ))
        }
    }
}

impl From<PluginState> for String {
    fn from(state: PluginState) -> String {
        state.to_string()
    }
}

impl TryFrom<String> for PluginState {
    type Error = String;

    fn try_from(text: String) -> Result<PluginState, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{PluginDeadlines, PluginState};

    #[test]
    fn the_default_deadlines_are_the_hosts_and_survive_the_round_trip_to_ticks() {
        let deadlines = PluginDeadlines::default();
        assert_eq!(deadlines.policy, Duration::from_millis(2));
        assert_eq!(deadlines.transform, Duration::from_millis(2_000));
        assert_eq!(deadlines.load_options().policy_limits.call_ticks, 2);
        let generous = PluginDeadlines {
            policy: Duration::from_millis(500),
            ..deadlines
        };
        let options = generous.load_options();
        assert_eq!(
            options.policy_limits.call_deadline(),
            Duration::from_millis(500)
        );
        assert_eq!(options.transform_limits.call_ticks, 2_000);
    }

    #[test]
    fn plugin_states_keep_their_json_spelling() {
        let cases = [
            (PluginState::Running, "\"running\""),
            (PluginState::Disabled, "\"disabled\""),
            (PluginState::Loading, "\"loading\""),
            (
                PluginState::Stopped("5 failures".into()),
                "\"stopped: 5 failures\"",
            ),
            (
                PluginState::Failed("not wasm".into()),
                "\"failed: not wasm\"",
            ),
        ];
        for (state, json) in cases {
            assert_eq!(serde_json::to_string(&state).unwrap(), json);
            assert_eq!(serde_json::from_str::<PluginState>(json).unwrap(), state);
        }
        assert!(serde_json::from_str::<PluginState>("\"sleeping\"").is_err());
    }
}
