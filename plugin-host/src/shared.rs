//! What every instance of one loaded plugin shares: the engine it was compiled for,
//! the epoch clock its deadlines count in, its limits and counters, and the
//! pre-instantiated component. Loading (`engine.rs`) makes one; every instance
//! (`instance.rs`) holds it.

use std::sync::Arc;

use outpost_core::state::Hook;
use wasmtime::Engine;

use super::Limits;
use super::epoch::EpochClock;
use super::stats::PluginStats;
use super::world::World;

/// One loaded plugin's parts, behind the `Arc` its handle and instances hold.
pub(super) struct Shared<W: World> {
    /// The engine the component was compiled for; instances make their stores in it.
    pub(super) engine: Engine,
    /// Kept alive while any instance of the plugin lives: its deadlines count in it.
    pub(super) clock: Arc<EpochClock>,
    pub(super) name: Arc<str>,
    pub(super) hook: Hook,
    pub(super) limits: Limits,
    pub(super) sha256: [u8; 32],
    pub(super) stats: Arc<PluginStats>,
    pub(super) pre: W::Pre,
}
