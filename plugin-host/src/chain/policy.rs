//! The query-policy chain: every enabled query-policy plugin, run in order for each
//! query until one decides.
//!
//! **Instances.** A plugin instance is not `Sync` (it owns a wasmtime `Store`), and
//! building one runs `init`, which takes tens of milliseconds for a large
//! blocklist. So each plugin keeps a pool of idle instances, built at load
//! ([`LoadOptions::prebuilt_instances`](super::LoadOptions), one per CPU by default):
//! a call takes one out, runs `decide` with no lock held, and puts it back. The
//! pool's mutex is held only to pop and to push: about 25 ns for both, uncontended,
//! against about 550 ns for a `decide` on a blocklist of 100,000 domains (release
//! build; `cargo run --release -p outpost-plugin-host --example decide_time` prints both).
//! Since `decide` never yields, at most one call per runtime thread is in flight,
//! and a pool of one instance per thread never runs dry. When
//! it does (more threads than instances), the call builds a new instance on the
//! query path, counted in [`StatsSnapshot::instances_built_on_demand`]. At most
//! [`MAX_IDLE_INSTANCES`] are kept: an instance returned to a full pool is dropped.
//!
//! **Traps.** An instance that trapped cannot be entered again, and rebuilding it runs
//! `init`. So it does not go back to the pool: the query that trapped gets its
//! fail-open or fail-closed answer at once, and the instance's replacement is built on
//! a background thread (at most one per plugin at a time, building every instance
//! owed, then ending) and put in the pool, counted in
//! [`StatsSnapshot::rebuilds`](crate::StatsSnapshot). No query waits for that `init`,
//! unless the pool runs dry first.
//!
//! [`StatsSnapshot::instances_built_on_demand`]: crate::StatsSnapshot

use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use outpost_core::name::LookupName;
use outpost_core::state::{FailureMode, Hook, PluginDefinition};

use super::{Identity, LoadOptions, Placement, PluginInfo};
use crate::bindings::types::Query as WitQuery;
use crate::convert;
use crate::memo::{self, Memo};
use crate::{Action, LoadedPolicy, PluginEngine, PluginError, PolicyInstance, Query, Verdict};

/// Idle instances kept per plugin. Instances hold their plugin's memory (a blocklist
/// of 100,000 domains takes a few MiB each), so the pool is capped: an instance
/// given back to a full pool is dropped, and a pool found empty builds a new one.
pub const MAX_IDLE_INSTANCES: usize = 8;

/// The enabled query-policy plugins, in ascending order, then by name.
#[derive(Debug, Default)]
pub struct PolicyChain {
    links: Vec<PolicyLink>,
}

/// What the chain decided about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Every plugin allowed the query (or failed open): answer it as usual.
    Continue,
    /// A plugin decided something other than `allow`; later plugins were not asked.
    Act {
        plugin: Arc<str>,
        action: Action,
        /// Labels for the query log.
        tags: Vec<String>,
    },
    /// A fail-closed plugin failed (or is disabled): the query gets SERVFAIL.
    Fail {
        plugin: Arc<str>,
        error: PluginError,
    },
}

/// A query on its way through the chain: its memo key and its WIT form are each built
/// once, when a plugin first needs them, and lent to the rest. A query whose verdicts are
/// all remembered never has its name put in presentation form.
struct Asked<'q> {
    query: &'q Query,
    /// The name in lowercase wire form; `None` inside for a name too long to have one
    /// (hickory never builds such a name: a guard), which is then not memoized.
    key: OnceCell<Option<LookupName>>,
    wit: OnceCell<WitQuery>,
}

impl<'q> Asked<'q> {
    fn new(query: &'q Query) -> Self {
        Asked {
            query,
            key: OnceCell::new(),
            wit: OnceCell::new(),
        }
    }

    fn key(&self) -> Option<&[u8]> {
        self.key
            .get_or_init(|| LookupName::new(&self.query.name))
            .as_ref()
            .map(LookupName::key)
    }

    fn wit(&self) -> &WitQuery {
        self.wit.get_or_init(|| convert::query_to_wit(self.query))
    }
}

/// One plugin's place in the chain.
#[derive(Debug, Clone)]
pub(super) struct PolicyLink {
    placement: Placement,
    /// Shared with the previous and next sets when carried over.
    plugin: Arc<PolicyPlugin>,
}

/// A loaded plugin and its idle instances.
#[derive(Debug)]
struct PolicyPlugin {
    identity: Identity,
    loaded: LoadedPolicy,
    /// Taken from and returned to the back: the instance used last is the one whose
    /// memory is most likely still in the CPU's caches.
    idle: Mutex<Vec<PolicyInstance>>,
    /// Instances dropped after a trap and not yet replaced.
    owed: AtomicUsize,
    /// Whether a thread is building the owed instances.
    rebuilding: AtomicBool,
    /// The verdicts by question, when the plugin declares them memoizable.
    memo: Option<Memo>,
}

impl PolicyChain {
    pub(super) fn from_links(links: Vec<PolicyLink>) -> PolicyChain {
        PolicyChain { links }
    }

    /// Runs the plugins in order: `allow` goes on to the next; the first other
    /// verdict stops the chain; a failed call goes on (fail-open) or stops the chain
    /// with [`PolicyOutcome::Fail`] (fail-closed).
    pub fn decide(&self, query: Query) -> PolicyOutcome {
        if self.links.is_empty() {
            return PolicyOutcome::Continue;
        }
        let query = Asked::new(&query);
        for link in &self.links {
            let plugin = &link.plugin;
            let stats = plugin.loaded.stats();
            // A disabled plugin is not called, until its retry is due: failing open
            // costs nothing per query, and no instance is taken only to be refused.
            if stats.is_disabled()
                && !stats.retry_due()
                && link.placement.on_error == FailureMode::FailOpen
            {
                continue;
            }
            match plugin.decide(&query) {
                Ok(Verdict {
                    action: Action::Allow,
                    tags,
                }) => {
                    if !tags.is_empty() {
                        tracing::debug!(plugin = &*plugin.identity.name, ?tags, "allowed");
                    }
                }
                Ok(Verdict { action, tags }) => {
                    return PolicyOutcome::Act {
                        plugin: plugin.identity.name.clone(),
                        action,
                        tags,
                    };
                }
                // The instance already logged the failure.
                Err(_) if link.placement.on_error == FailureMode::FailOpen => {}
                Err(error) => {
                    return PolicyOutcome::Fail {
                        plugin: plugin.identity.name.clone(),
                        error,
                    };
                }
            }
        }
        PolicyOutcome::Continue
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// The plugins in chain order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.links
            .iter()
            .map(|link| {
                let plugin = &link.plugin;
                plugin
                    .identity
                    .info(Hook::QueryPolicy, link.placement, plugin.loaded.stats())
            })
            .collect()
    }

    /// This chain's plugin for `definition`, if the definition has not changed.
    pub(super) fn carry_over(
        &self,
        definition: &PluginDefinition,
        placement: Placement,
        limits: crate::Limits,
    ) -> Option<PolicyLink> {
        self.links
            .iter()
            .find(|link| link.plugin.identity.matches(definition, limits))
            .map(|link| PolicyLink {
                placement,
                plugin: link.plugin.clone(),
            })
    }
}

impl PolicyLink {
    /// Compiles the plugin and builds its first instances; the first `init` error
    /// is the load's.
    pub(super) fn load(
        engine: &PluginEngine,
        definition: &PluginDefinition,
        placement: Placement,
        options: LoadOptions,
    ) -> Result<PolicyLink, PluginError> {
        let limits = options.policy_limits;
        let loaded = engine.load_policy(&definition.name, &definition.component, limits)?;
        let count = options.prebuilt_instances.clamp(1, MAX_IDLE_INSTANCES);
        let idle = (0..count)
            .map(|_| loaded.instantiate_shared(definition.config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PolicyLink {
            placement,
            plugin: Arc::new(PolicyPlugin {
                identity: Identity::of(definition, limits),
                loaded,
                idle: Mutex::new(idle),
                owed: AtomicUsize::new(0),
                rebuilding: AtomicBool::new(false),
                memo: memo::declares_memo(&definition.component).then(Memo::new),
            }),
        })
    }
}

impl PolicyPlugin {
    /// The verdict for `query`: remembered for its question when the plugin declares its
    /// verdicts memoizable, else from one `decide` on an idle instance (or a new one),
    /// which then goes back to the pool: after a trap too, since the instance rebuilds
    /// itself before its next call.
    fn decide(self: &Arc<Self>, query: &Asked<'_>) -> Result<Verdict, PluginError> {
        let memo = self
            .memo
            .as_ref()
            .and_then(|memo| Some((memo, query.key()?)));
        let remember = match memo {
            Some((memo, name)) => {
                let (qtype, qclass) = (query.query.qtype.into(), query.query.qclass.into());
                match memo.get(name, qtype, qclass) {
                    Ok(verdict) => {
                        self.loaded.stats().record_memo_hit();
                        return Ok(verdict);
                    }
                    Err(question) => Some((memo, question)),
                }
            }
            None => None,
        };
        let verdict = self.call(query.wit());
        if let (Some((memo, question)), Ok(verdict)) = (remember, &verdict) {
            memo.put(question, verdict);
        }
        verdict
    }

    /// One call of the plugin, on an idle instance or a new one. An instance that
    /// trapped is replaced in the background, not rebuilt here.
    fn call(self: &Arc<Self>, query: &WitQuery) -> Result<Verdict, PluginError> {
        let taken = self.idle().pop();
        let mut instance = match taken {
            Some(instance) => instance,
            None => self.build_on_demand()?,
        };
        let verdict = instance.decide_converted(query);
        if instance.is_live() {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE_INSTANCES {
                idle.push(instance);
            }
        } else {
            drop(instance);
            self.replace_in_background();
        }
        verdict
    }

    /// Owes the pool one instance, and starts the thread that builds what is owed
    /// unless one is already at it. If no thread can be started, the pool builds on
    /// demand once it runs dry.
    fn replace_in_background(self: &Arc<Self>) {
        self.owed.fetch_add(1, Ordering::AcqRel);
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let plugin = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("plugin-rebuild".into())
            .spawn(move || plugin.rebuild_owed());
        if let Err(error) = spawned {
            self.owed.store(0, Ordering::Release);
            self.rebuilding.store(false, Ordering::Release);
            let plugin = &*self.identity.name;
            tracing::warn!(plugin, %error, "no thread to rebuild a plugin instance: built on demand");
        }
    }

    /// The rebuild thread: builds the owed instances into the pool, then ends. A
    /// build that fails counts as a failed call of the plugin.
    fn rebuild_owed(&self) {
        let stats = self.loaded.stats();
        let plugin = &*self.identity.name;
        loop {
            while self.owed.load(Ordering::Acquire) > 0 {
                self.owed.fetch_sub(1, Ordering::AcqRel);
                match self.loaded.instantiate_shared(self.identity.config.clone()) {
                    Ok(instance) => {
                        stats.record_rebuild();
                        tracing::debug!(plugin, "plugin instance rebuilt after a trap");
                        let mut idle = self.idle();
                        if idle.len() < MAX_IDLE_INSTANCES {
                            idle.push(instance);
                        }
                    }
                    Err(error) => {
                        stats.fail(plugin, &error, "plugin instance could not be rebuilt")
                    }
                }
            }
            self.rebuilding.store(false, Ordering::Release);
            // A trap between the last check and the store above owes an instance
            // that no thread was started for: take it on, unless another thread did.
            if self.owed.load(Ordering::Acquire) == 0
                || self.rebuilding.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    }

    /// A new instance for a call that found the pool empty: the query waits for
    /// `init`. Counted; a failure counts as a failed call.
    fn build_on_demand(&self) -> Result<PolicyInstance, PluginError> {
        let stats = self.loaded.stats();
        stats.record_instance_built_on_demand();
        let plugin = &*self.identity.name;
        tracing::debug!(plugin, "no idle instance: building one for this query");
        self.loaded
            .instantiate_shared(self.identity.config.clone())
            .inspect_err(|error| stats.fail(plugin, error, "plugin instance could not be built"))
    }

    /// The pool holds no invariant a panic could break: a poisoned lock is used.
    fn idle(&self) -> MutexGuard<'_, Vec<PolicyInstance>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
