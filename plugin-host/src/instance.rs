//! A live plugin instance: one `Store` and its instantiated component, owned by one
//! worker and reused for every call.
//!
//! Every call runs under an epoch deadline and the store's memory cap. A call that
//! traps (timeouts and memory exhaustion included) leaves the instance poisoned, so
//! its store is dropped; an instance used on its own is rebuilt, `init` included,
//! before its next call, while the policy chain sees it is no longer live
//! ([`PolicyInstance::is_live`]) and replaces it in the background instead. Every
//! failure is counted in the plugin's shared [`PluginStats`](super::PluginStats), which
//! disables the plugin after [`MAX_CONSECUTIVE_FAILURES`](super::MAX_CONSECUTIVE_FAILURES)
//! and lets one call through after its backoff, to see whether it recovered.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::rr::{Name, Record};
use wasmtime::{Store, Trap};

use super::bindings::policy::QueryPolicy;
use super::bindings::transform::RecordTransform;
use super::bindings::types::Query as WitQuery;
use super::convert::{self, Query, Verdict};
use super::host::HostState;
use super::shared::Shared;
use super::stats::PluginStats;
use super::world::World;
use super::{Limits, PluginError};

/// An instance of a query-policy plugin. Not `Sync`: give each worker its own.
pub struct PolicyInstance(InstanceCore<QueryPolicy>);

/// An instance of a record-transform plugin.
pub struct TransformInstance(InstanceCore<RecordTransform>);

impl PolicyInstance {
    pub(super) fn new(
        shared: Arc<Shared<QueryPolicy>>,
        config: Arc<[u8]>,
    ) -> Result<PolicyInstance, PluginError> {
        InstanceCore::new(shared, config).map(PolicyInstance)
    }

    /// Asks the plugin about one query, within the call deadline.
    pub fn decide(&mut self, query: &Query) -> Result<Verdict, PluginError> {
        self.decide_converted(&convert::query_to_wit(query))
    }

    /// [`PolicyInstance::decide`] for a query already in its WIT form.
    pub(super) fn decide_converted(&mut self, query: &WitQuery) -> Result<Verdict, PluginError> {
        let verdict = self
            .0
            .call(|bindings, store| bindings.outpost_plugin_policy().call_decide(store, query))?;
        self.0.check_output(convert::verdict_from_wit(verdict))
    }

    pub fn name(&self) -> &str {
        &self.0.shared.name
    }

    pub fn stats(&self) -> &PluginStats {
        &self.0.shared.stats
    }

    /// Whether the instance can take a call as it is: false after a trap, when its
    /// next call would first rebuild it.
    pub fn is_live(&self) -> bool {
        self.0.live.is_some()
    }
}

impl TransformInstance {
    pub(super) fn new(
        shared: Arc<Shared<RecordTransform>>,
        config: Arc<[u8]>,
    ) -> Result<TransformInstance, PluginError> {
        InstanceCore::new(shared, config).map(TransformInstance)
    }

    /// Runs the transform over the records of one write to `zone`. The plugin's own
    /// refusal is [`PluginError::TransformRefused`], which is an answer, not a failure.
    pub fn transform(
        &mut self,
        zone: &Name,
        records: &[Record],
    ) -> Result<Vec<Record>, PluginError> {
        let wit_records =
            convert::records_to_wit(records).map_err(|reason| PluginError::InvalidInput {
                plugin: self.0.shared.name.to_string(),
                reason,
            })?;
        let zone = zone.to_lowercase().to_ascii();
        let result = self.0.call(|bindings, store| {
            bindings
                .outpost_plugin_transform()
                .call_transform(store, &zone, &wit_records)
        })?;
        match result {
            Ok(records) => self.0.check_output(convert::records_from_wit(
                records,
                convert::MAX_TRANSFORM_RECORDS,
            )),
            Err(message) => {
                self.0.shared.stats.record_success(&self.0.shared.name);
                Err(PluginError::TransformRefused {
                    plugin: self.0.shared.name.to_string(),
                    message,
                })
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.0.shared.name
    }

    pub fn stats(&self) -> &PluginStats {
        &self.0.shared.stats
    }
}

impl std::fmt::Debug for PolicyInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyInstance")
            .field("plugin", &self.0.shared.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TransformInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformInstance")
            .field("plugin", &self.0.shared.name)
            .finish_non_exhaustive()
    }
}

/// The world-independent part of an instance.
struct InstanceCore<W: World> {
    shared: Arc<Shared<W>>,
    /// Given to `init` again whenever the instance is rebuilt.
    config: Arc<[u8]>,
    /// `None` after a trap: rebuilt before the next call.
    live: Option<Live<W>>,
    /// A `Store` must not be entered from two threads at once; the instance is
    /// `Send` (it may move to a worker) but deliberately not `Sync`.
    _not_sync: PhantomData<Cell<()>>,
}

struct Live<W> {
    store: Store<HostState>,
    bindings: W,
}

impl<W: World> InstanceCore<W> {
    /// Builds and initialises the first instance. A failure here is reported, not
    /// counted: nothing has been installed yet.
    fn new(shared: Arc<Shared<W>>, config: Arc<[u8]>) -> Result<Self, PluginError> {
        let live = build(&shared, &config)?;
        Ok(InstanceCore {
            shared,
            config,
            live: Some(live),
            _not_sync: PhantomData,
        })
    }

    /// Runs one export call under the call deadline. Success is recorded by the
    /// caller once the output is checked ([`InstanceCore::check_output`]).
    fn call<R>(
        &mut self,
        export: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let _span = tracing::trace_span!("plugin_call", plugin = &*self.shared.name).entered();
        let stats = &self.shared.stats;
        if !stats.admit() {
            return Err(PluginError::Disabled {
                plugin: self.shared.name.to_string(),
                reason: stats.disabled_reason().unwrap_or_default(),
            });
        }
        let live = match self.live.take() {
            Some(live) => live,
            None => match build(&self.shared, &self.config) {
                Ok(live) => {
                    stats.record_rebuild();
                    live
                }
                Err(error) => return Err(self.fail(error)),
            },
        };
        let Live {
            mut store,
            bindings,
        } = live;
        store.data_mut().start_call();
        store.set_epoch_deadline(self.shared.limits.call_ticks);
        self.shared.clock.keep_awake(self.shared.limits.call_ticks);
        let started = Instant::now();
        let result = export(&bindings, &mut store);
        stats.record_call(started.elapsed());
        match result {
            Ok(value) => {
                self.live = Some(Live { store, bindings });
                Ok(value)
            }
            // The instance is dropped: a component that trapped cannot be entered again.
            Err(error) => {
                let error = classify(&self.shared, &store, error, self.shared.limits.call_ticks);
                Err(self.fail(error))
            }
        }
    }

    /// Records the outcome of checking a call's output.
    fn check_output<T>(&self, output: Result<T, String>) -> Result<T, PluginError> {
        match output {
            Ok(value) => {
                self.shared.stats.record_success(&self.shared.name);
                Ok(value)
            }
            Err(reason) => Err(self.fail(PluginError::InvalidOutput {
                plugin: self.shared.name.to_string(),
                reason,
            })),
        }
    }

    /// Counts a failure, logs it, and disables the plugin if it keeps failing.
    fn fail(&self, error: PluginError) -> PluginError {
        let stats = &self.shared.stats;
        stats.fail(&self.shared.name, &error, "plugin call failed");
        error
    }
}

/// A fresh store and instance, initialised with `config` under the init deadline.
fn build<W: World>(shared: &Shared<W>, config: &Arc<[u8]>) -> Result<Live<W>, PluginError> {
    let limits = shared.limits;
    let state = HostState::new(shared.name.clone(), config.clone(), limits.memory_bytes);
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(limits.init_ticks);
    shared.clock.keep_awake(limits.init_ticks);
    let bindings = match W::instantiate(&shared.pre, &mut store) {
        Ok(bindings) => bindings,
        Err(error) => return Err(classify(shared, &store, error, limits.init_ticks)),
    };
    match bindings.call_init(&mut store, config) {
        Ok(Ok(())) => Ok(Live { store, bindings }),
        Ok(Err(message)) => Err(PluginError::ConfigRefused {
            plugin: shared.name.to_string(),
            message,
        }),
        Err(error) => Err(classify(shared, &store, error, limits.init_ticks)),
    }
}

/// Names what went wrong in a call that returned an error.
fn classify<W: World>(
    shared: &Shared<W>,
    store: &Store<HostState>,
    error: wasmtime::Error,
    ticks: u64,
) -> PluginError {
    let plugin = shared.name.to_string();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            budget: Limits::budget(ticks),
        },
        Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin },
        // Rust's allocator aborts (`unreachable`) when `memory.grow` is refused.
        _ if store.data().limiter.denied => PluginError::OutOfMemory {
            plugin,
            limit_bytes: shared.limits.memory_bytes,
        },
        // The root cause names the trap or the WASI import that was called; the
        // wasm backtrace around it goes to the debug log only.
        _ => {
            tracing::debug!(plugin, "plugin trap: {error:?}");
            PluginError::Trap {
                plugin,
                message: error.root_cause().to_string(),
            }
        }
    }
}
