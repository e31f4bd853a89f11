//! The installed plugins as the server runs them: the replicated definitions
//! ([`PluginDefinition`]) loaded into a [`PluginSet`] of two chains, the
//! [`PolicyChain`] every query passes through and the [`TransformChain`] every write
//! passes through.
//!
//! A set is immutable: when the definitions change, the owner loads a new set from
//! them and the previous one, and swaps it in. A plugin whose definition did not
//! change is carried over with its instances and counters, so installing one plugin
//! neither re-initialises the others nor resets their metrics. Loading compiles and
//! initialises (tens of milliseconds per plugin, more for a large configuration): run
//! it off the async runtime (`spawn_blocking`).
//!
//! # Layout
//! - [`policy`]: the query-policy chain, its pool of idle instances and
//!   [`PolicyOutcome`].
//! - [`transform`]: the record-transform chain and [`TransformFailure`].

pub mod policy;
#[cfg(test)]
mod tests;
pub mod transform;

use std::sync::Arc;

use outpost_core::state::{FailureMode, Hook, PluginDefinition};

use super::stats::PluginStats;
use super::{Limits, PluginEngine, PluginError};

pub use policy::{MAX_IDLE_INSTANCES, PolicyChain, PolicyOutcome};
pub use transform::{TransformChain, TransformFailure};

/// The loaded plugins of both hooks. Cheap to clone; never changed once built.
#[derive(Clone, Debug, Default)]
pub struct PluginSet {
    policies: Arc<PolicyChain>,
    transforms: Arc<TransformChain>,
}

/// How plugins are loaded. The defaults are the hooks' limits; the daemons replace
/// the call deadlines with their configured ones (`PluginDeadlines` in `outpost-dns`),
/// and tests relax them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub policy_limits: Limits,
    pub transform_limits: Limits,
    /// Instances of each query-policy plugin built at load, so that no query waits
    /// for an `init`: one per thread that may call `decide` at the same moment.
    /// Clamped to 1..=[`MAX_IDLE_INSTANCES`].
    pub prebuilt_instances: usize,
}

impl Default for LoadOptions {
    /// The hooks' default limits, and one instance per CPU: the DNS path calls
    /// `decide` from the async runtime's worker threads, one per CPU.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        LoadOptions {
            policy_limits: Limits::for_hook(Hook::QueryPolicy),
            transform_limits: Limits::for_hook(Hook::RecordTransform),
            prebuilt_instances: cpus,
        }
    }
}

/// A definition that could not be loaded or initialised. The set is built without
/// it: the node keeps serving with the plugins that did load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {name} (version {version}) is not running: {error}")]
pub struct LoadFailure {
    pub name: String,
    pub version: u64,
    pub error: PluginError,
}

/// One loaded plugin, for metrics and `outpost plugin list`.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: Arc<str>,
    pub hook: Hook,
    pub version: u64,
    pub order: i32,
    pub on_error: FailureMode,
    /// SHA-256 of the component.
    pub sha256: [u8; 32],
    pub stats: Arc<PluginStats>,
}

/// Where a plugin runs in its chain and what its failure means: taken from the
/// current definition even when the loaded plugin is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    order: i32,
    on_error: FailureMode,
}

/// What makes a loaded plugin the one a definition describes: a plugin is carried
/// over into a new set only if all of this is unchanged. The name and version are
/// what the cluster bumps on every update; the hash and configuration also catch a
/// plugin deleted and installed again (its version starts over at 1).
#[derive(Clone, PartialEq, Eq)]
struct Identity {
    name: Arc<str>,
    version: u64,
    sha256: [u8; 32],
    config: Arc<[u8]>,
    limits: Limits,
}

impl std::fmt::Debug for Identity {
    /// Without the configuration's bytes, which may be megabytes of blocklist.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("config_bytes", &self.config.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn of(definition: &PluginDefinition, limits: Limits) -> Identity {
        Identity {
            name: definition.name.as_str().into(),
            version: definition.version,
            sha256: definition.sha256,
            config: definition.config.clone(),
            limits,
        }
    }

    fn matches(&self, definition: &PluginDefinition, limits: Limits) -> bool {
        *self.name == *definition.name
            && self.version == definition.version
            && self.sha256 == definition.sha256
            && *self.config == *definition.config
            && self.limits == limits
    }

    fn info(&self, hook: Hook, placement: Placement, stats: &Arc<PluginStats>) -> PluginInfo {
        PluginInfo {
            name: self.name.clone(),
            hook,
            version: self.version,
            order: placement.order,
            on_error: placement.on_error,
            sha256: self.sha256,
            stats: stats.clone(),
        }
    }
}

impl PluginSet {
    /// No plugins: every query goes straight to the answer engine, every write is
    /// stored as written.
    pub fn empty() -> PluginSet {
        PluginSet::default()
    }

    /// Loads the enabled `definitions` with [`LoadOptions::default`]; see
    /// [`PluginSet::load_with`].
    pub fn load<'a>(
        engine: &PluginEngine,
        definitions: impl IntoIterator<Item = &'a Arc<PluginDefinition>>,
        previous: &PluginSet,
    ) -> (PluginSet, Vec<LoadFailure>) {
        PluginSet::load_with(engine, definitions, previous, LoadOptions::default())
    }

    /// Builds the chains from the enabled `definitions`, each in ascending order,
    /// then by name. A plugin of `previous` whose name, version, component and
    /// configuration are unchanged is carried over with its instances and counters
    /// (a disabled one stays disabled until its definition is updated); the others
    /// are compiled and initialised now. A definition that fails to load is left out
    /// and reported. Blocking: compiles and runs `init`.
    pub fn load_with<'a>(
        engine: &PluginEngine,
        definitions: impl IntoIterator<Item = &'a Arc<PluginDefinition>>,
        previous: &PluginSet,
        options: LoadOptions,
    ) -> (PluginSet, Vec<LoadFailure>) {
        let mut enabled: Vec<&PluginDefinition> = definitions
            .into_iter()
            .map(|definition| &**definition)
            .filter(|definition| definition.enabled)
            .collect();
        enabled.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));

        let mut policies = Vec::new();
        let mut transforms = Vec::new();
        let mut failures = Vec::new();
        for definition in enabled {
            let placement = Placement {
                order: definition.order,
                on_error: definition.on_error,
            };
            let loaded = match definition.hook {
                Hook::QueryPolicy => {
                    let limits = options.policy_limits;
                    let link = match previous.policies.carry_over(definition, placement, limits) {
                        Some(link) => Ok(link),
                        None => policy::PolicyLink::load(engine, definition, placement, options),
                    };
                    link.map(|link| policies.push(link))
                }
                Hook::RecordTransform => {
                    let limits = options.transform_limits;
                    let link = match previous
                        .transforms
                        .carry_over(definition, placement, limits)
                    {
                        Some(link) => Ok(link),
                        None => {
                            transform::TransformLink::load(engine, definition, placement, limits)
                        }
                    };
                    link.map(|link| transforms.push(link))
                }
            };
            if let Err(error) = loaded {
                tracing::warn!(
                    plugin = definition.name,
                    version = definition.version,
                    %error,
                    "plugin not loaded"
                );
                failures.push(LoadFailure {
                    name: definition.name.clone(),
                    version: definition.version,
                    error,
                });
            }
        }
        let set = PluginSet {
            policies: Arc::new(PolicyChain::from_links(policies)),
            transforms: Arc::new(TransformChain::from_links(transforms)),
        };
        (set, failures)
    }

    /// The chain the DNS path runs for every query.
    pub fn policies(&self) -> &Arc<PolicyChain> {
        &self.policies
    }

    /// The chain the write path runs for every write.
    pub fn transforms(&self) -> &Arc<TransformChain> {
        &self.transforms
    }

    /// Every loaded plugin: the query policies in chain order, then the transforms.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let mut plugins = self.policies.plugins();
        plugins.extend(self.transforms.plugins());
        plugins
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.transforms.is_empty()
    }
}
