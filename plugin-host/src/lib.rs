//! The WebAssembly plugin host: components built against `wit/outpost-plugin.wit`
//! (`outpost:plugin@0.1.0`), run under a deadline and a memory cap.
//!
//! One [`PluginEngine`] per process compiles components (once per content hash) and
//! drives the epoch clock that every deadline counts in. Loading checks the file is a
//! component of the right world ([`LoadedPolicy`], [`LoadedTransform`]); a loaded
//! plugin is shared by every worker, and each worker instantiates it once and keeps
//! the instance ([`PolicyInstance`], [`TransformInstance`]): an instance owns its
//! wasmtime `Store`, is not `Sync`, and is reused for every call.
//!
//! A call that traps, runs out of time or memory, overflows its stack or returns
//! invalid output is a [`PluginError`], counted in the plugin's [`PluginStats`]. A
//! trapped instance is rebuilt (and re-initialised): the policy chain drops it and
//! builds its replacement on a background thread, so neither the query that trapped
//! nor the next one waits for `init`. A plugin that fails [`MAX_CONSECUTIVE_FAILURES`]
//! calls in a row is disabled, and retried after a backoff ([`Limits::first_retry`],
//! doubling up to [`MAX_RETRY_BACKOFF`]): one call is let through, and the plugin is
//! enabled again if it succeeds. What the query path does with an error (fail open or
//! closed) is the chain's decision, by the plugin's
//! [`FailureMode`](outpost_core::state::FailureMode).
//!
//! The memory cap holds for an instance as a whole: the bytes of all its linear
//! memories are added up (`host.rs`), so a component that declares several memories
//! gets no more than one that declares one.
//!
//! The replicated definitions
//! ([`PluginDefinition`](outpost_core::state::PluginDefinition), each naming its
//! [`Hook`]) are loaded into a [`PluginSet`]: the [`PolicyChain`] the DNS
//! path runs for every query (a pool of pre-built instances per plugin, no lock held
//! during a call) and the [`TransformChain`] the write path runs for every write.
//! This crate depends on the model; the model knows nothing of the host.
//!
//! # Layout
//! Every public item is at the crate root; the modules are private.
//! - `chain`: the installed plugins as chains: loading a [`PluginSet`] from
//!   definitions (carrying unchanged plugins over), the policy chain and its
//!   instance pools, the transform chain, failure modes.
//! - `engine`: the shared `Engine`, the epoch ticker thread, the compile caches (in
//!   memory, and on disk through `disk_cache`), the load-time checks (component,
//!   world, imports), and the loaded plugins' handles.
//! - `shared`: what every instance of one loaded plugin shares (engine, clock,
//!   limits, counters, the pre-instantiated component).
//! - `epoch`: the epoch clock, which parks while no call needs it.
//! - `disk_cache`: compiled components kept on disk by content hash between runs
//!   (one of the workspace's two `unsafe`, and why it is sound).
//! - `instance`: a live instance: deadlines, error classification, rebuild after a
//!   trap, the failure count.
//! - `memo`: the verdicts of a plugin that declares them memoizable, by question.
//! - `convert`: our boundary types ([`Query`], [`Verdict`]) and hickory records to
//!   and from the generated WIT types, with the output caps.
//! - `host`: what the host interface offers a plugin (log, clock, config) and the
//!   per-store memory limiter.
//! - `bindings`: the host bindings generated from `wit/`, one module per world.
//! - `world`: the one trait over both worlds' bindings that loading and instances
//!   are written against.
//! - `stats`: the per-plugin counters, time-per-call histogram and status.
//!
//! **Boundary:** `wit/` is a compatibility boundary: plugins built against
//! `outpost:plugin@0.1.0` must keep loading. See `docs/plugins.md`, "Evolution".
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod bindings;
mod chain;
mod convert;
mod disk_cache;
mod engine;
mod epoch;
mod host;
mod instance;
mod memo;
mod shared;
mod stats;
#[cfg(test)]
mod tests;
mod world;

use std::time::Duration;

use outpost_core::state::Hook;

pub use chain::{
    LoadOptions, MAX_IDLE_INSTANCES, PluginInfo, PluginSet, PolicyChain, PolicyOutcome,
    TransformFailure,
};
pub(crate) use convert::Verdict;
pub use convert::{Action, Block, MAX_ANSWER_RECORDS, Query};
pub use engine::{LoadedPlugin, PluginEngine};
pub(crate) use engine::{LoadedPolicy, LoadedTransform};
pub use instance::PolicyInstance;
pub(crate) use instance::TransformInstance;
pub use stats::{CALL_TIME_BUCKETS, PluginStats, StatsSnapshot};

/// The epoch clock's period: every deadline is a whole number of ticks. A deadline of
/// `n` ticks fires between `n - 1` and `n` ticks after the call starts, plus the time
/// the clock's thread takes to wake when no call needed it before (`epoch.rs`).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A plugin that fails this many calls in a row (across all its instances) is
/// disabled; every call then returns [`PluginError::Disabled`] at once, until a retry
/// after its backoff ([`Limits::first_retry`]) succeeds or it is loaded again.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// The longest wait between two retries of a disabled plugin: each failed retry
/// doubles the wait, up to this. A plugin that never recovers costs one failed call
/// every 5 minutes.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(300);

/// What one instance of a plugin may use. The defaults suit the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Epoch ticks a hook call (`decide` or `transform`) may run.
    pub call_ticks: u64,
    /// Epoch ticks `init` may run (it parses the configuration, which may be large).
    pub init_ticks: u64,
    /// Bytes of linear memory one instance may grow to, all its memories together.
    pub memory_bytes: usize,
    /// How long a plugin disabled after [`MAX_CONSECUTIVE_FAILURES`] waits before its
    /// first retry; each failed retry doubles it, up to [`MAX_RETRY_BACKOFF`].
    pub first_retry: Duration,
}

impl Limits {
    /// Default epoch ticks per `decide`: a query may wait between 1 and 2 ms.
    pub const POLICY_CALL_TICKS: u64 = 2;
    /// Default epoch ticks for `init` and for each `transform`: about 2 s.
    pub const SLOW_CALL_TICKS: u64 = 2_000;
    /// Default memory cap per instance (all its memories together).
    pub const MEMORY_BYTES: usize = 64 << 20;
    /// Default wait before the first retry of a disabled plugin.
    pub const FIRST_RETRY: Duration = Duration::from_secs(5);

    /// The defaults for a hook.
    pub fn for_hook(hook: Hook) -> Limits {
        let call_ticks = match hook {
            Hook::QueryPolicy => Self::POLICY_CALL_TICKS,
            Hook::RecordTransform => Self::SLOW_CALL_TICKS,
        };
        Limits {
            call_ticks,
            init_ticks: Self::SLOW_CALL_TICKS,
            memory_bytes: Self::MEMORY_BYTES,
            first_retry: Self::FIRST_RETRY,
        }
    }

    /// The defaults for a hook, with hook calls cut off after `deadline`: rounded up
    /// to whole [`EPOCH_TICK`]s, at least one.
    pub fn with_call_deadline(hook: Hook, deadline: Duration) -> Limits {
        let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        Limits {
            call_ticks: u64::try_from(ticks).unwrap_or(u64::MAX).max(1),
            ..Limits::for_hook(hook)
        }
    }

    /// The wall-clock deadline of one hook call.
    pub fn call_deadline(&self) -> Duration {
        Self::budget(self.call_ticks)
    }

    /// The wall-clock budget `ticks` stands for, for error messages.
    fn budget(ticks: u64) -> Duration {
        EPOCH_TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX))
    }
}

/// Why a plugin could not be loaded, instantiated or called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("the wasmtime engine could not be set up: {0}")]
    Engine(String),
    #[error("the plugin file is not WebAssembly (it does not start with \"\\0asm\")")]
    NotWasm,
    #[error(
        "the plugin file is a core WebAssembly module, not a component (build it for \
         wasm32-wasip2, or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("the plugin file is not a valid component: {0}")]
    InvalidComponent(String),
    #[error(
        "the component is not a {hook} plugin: it exports {found}, and {hook} needs \
         {expected} (build it against world {hook} of wit/outpost-plugin.wit)"
    )]
    WrongWorld {
        hook: Hook,
        expected: String,
        found: String,
    },
    #[error(
        "the component imports {import}, which Outpost does not provide (a plugin may \
         import outpost:plugin/host@0.1.x and WASI interfaces, which are linked as traps)"
    )]
    UnknownImport { import: String },
    #[error("plugin {plugin}: init refused the configuration: {message}")]
    ConfigRefused { plugin: String, message: String },
    #[error("plugin {plugin}: stopped after running longer than its {budget:?} deadline")]
    Timeout { plugin: String, budget: Duration },
    #[error(
        "plugin {plugin}: stopped when it tried to grow its memory beyond {limit_bytes} bytes \
         (all its linear memories together)"
    )]
    OutOfMemory { plugin: String, limit_bytes: usize },
    #[error("plugin {plugin}: stopped when it overflowed its stack")]
    StackOverflow { plugin: String },
    #[error("plugin {plugin}: trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin {plugin}: returned invalid output: {reason}")]
    InvalidOutput { plugin: String, reason: String },
    #[error("plugin {plugin}: the records could not be given to the plugin: {reason}")]
    InvalidInput { plugin: String, reason: String },
    #[error("plugin {plugin}: transform refused the records: {message}")]
    TransformRefused { plugin: String, message: String },
    #[error("plugin {plugin} is disabled: {reason} (load it again to re-enable it at once)")]
    Disabled { plugin: String, reason: String },
}
