//! What a plugin's store holds and the host interface it may call: a log, a clock
//! and its own configuration. Nothing else is granted.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use super::bindings::{host, types};

/// Lines one call may log; the rest of that call's lines are dropped, so a plugin
/// cannot flood the server's log from the query path.
pub const MAX_LOG_LINES_PER_CALL: u32 = 16;

/// Bytes of one log message kept; the rest is cut.
pub const MAX_LOG_MESSAGE_BYTES: usize = 1024;

/// Core instances, tables and memories one component may create. A Rust guest for
/// wasm32-wasip2 needs a handful of each; these bounds only stop a component that
/// tries to create thousands.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;
/// Elements of one table (function references): far above what compiled code needs.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The data of one plugin instance's `Store`.
pub struct HostState {
    /// The plugin's name, for log lines.
    plugin: Arc<str>,
    /// Returned by `host.config`; the same bytes `init` gets.
    config: Arc<[u8]>,
    pub(super) limiter: MemoryLimiter,
    /// Lines logged during the current call; reset by [`HostState::start_call`].
    lines_logged: u32,
    /// The origin of `host.monotonic-now`.
    clock_origin: Instant,
}

impl HostState {
    pub(super) fn new(plugin: Arc<str>, config: Arc<[u8]>, memory_bytes: usize) -> HostState {
        HostState {
            plugin,
            config,
            limiter: MemoryLimiter::new(memory_bytes),
            lines_logged: 0,
            clock_origin: Instant::now(),
        }
    }

    /// Called before each export call.
    pub(super) fn start_call(&mut self) {
        self.lines_logged = 0;
        self.limiter.denied = false;
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, mut message: String) {
        if self.lines_logged >= MAX_LOG_LINES_PER_CALL {
            return;
        }
        self.lines_logged += 1;
        if message.len() > MAX_LOG_MESSAGE_BYTES {
            let mut cut = MAX_LOG_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        let plugin = &*self.plugin;
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn monotonic_now(&mut self) -> u64 {
        u64::try_from(self.clock_origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn config(&mut self) -> Vec<u8> {
        self.config.to_vec()
    }
}

/// The store's resource limiter. Memory is counted for the instance as a whole: the
/// bytes of every linear memory it created (each memory's creation is reported as a
/// growth from 0) are added up and held to one cap, so a component that declares
/// several memories gets no more than one with a single memory. wasmtime's
/// `StoreLimits` caps each memory on its own and keeps the other bounds (tables,
/// instances, the number of memories). It remembers whether it refused a growth, so
/// a trap that follows (Rust's allocator aborts when `memory.grow` fails) is
/// reported as out of memory rather than as a bare `unreachable`.
pub(super) struct MemoryLimiter {
    limits: StoreLimits,
    /// The cap on the sum of all memories' sizes.
    memory_bytes: usize,
    /// The sum of all memories' sizes granted so far.
    granted: usize,
    /// The last growth granted, given back if wasmtime could not carry it out.
    last_grant: usize,
    pub(super) denied: bool,
}

impl MemoryLimiter {
    pub(super) fn new(memory_bytes: usize) -> MemoryLimiter {
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(MAX_INSTANCES)
            .tables(MAX_TABLES)
            .memories(MAX_MEMORIES)
            .build();
        MemoryLimiter {
            limits,
            memory_bytes,
            granted: 0,
            last_grant: 0,
            denied: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.granted.saturating_add(growth);
        let allowed =
            total <= self.memory_bytes && self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.granted = total;
            self.last_grant = growth;
        } else {
            self.denied = true;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.granted = self.granted.saturating_sub(self.last_grant);
        self.last_grant = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_holds_for_all_memories_together() {
        let mut limiter = MemoryLimiter::new(16 * MIB);
        // Two memories created at 10 and 6 MiB: 16 MiB in all, at the cap.
        assert!(limiter.memory_growing(0, 10 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, 6 * MIB, None).unwrap());
        assert!(!limiter.denied);
        // Either growing by one more page would go beyond it, though each memory
        // alone is well under the cap.
        assert!(
            !limiter
                .memory_growing(6 * MIB, 6 * MIB + 65_536, None)
                .unwrap()
        );
        assert!(
            !limiter
                .memory_growing(10 * MIB, 10 * MIB + 65_536, None)
                .unwrap()
        );
        assert!(limiter.denied);
        // A third memory gets nothing either.
        assert!(!limiter.memory_growing(0, 65_536, None).unwrap());
    }

    #[test]
    fn a_growth_wasmtime_could_not_carry_out_is_given_back() {
        let mut limiter = MemoryLimiter::new(16 * MIB);
        assert!(limiter.memory_growing(0, 8 * MIB, None).unwrap());
        // Granted, then not carried out (the system had no memory to give).
        assert!(limiter.memory_growing(8 * MIB, 16 * MIB, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("maximum exceeded"))
            .unwrap();
        assert!(limiter.memory_growing(0, 8 * MIB, None).unwrap());
    }
}
