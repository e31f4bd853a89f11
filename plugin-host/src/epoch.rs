//! The epoch clock every plugin deadline counts in: a thread that advances the engine's
//! epoch every [`EPOCH_TICK`] while some call may still need it, and sleeps otherwise.
//!
//! A clock that ticked forever would wake the machine a thousand times a second for
//! nothing: on a laptop running the Lite client, on an appliance whose plugins only
//! answer from their memo, or with no plugin called at all. So each call tells the clock
//! how many ticks its deadline needs ([`EpochClock::keep_awake`]), and the clock ticks
//! until every such promise is kept, plus [`GRACE_TICKS`], then parks until the next
//! call wakes it.
//!
//! **Invariant:** once `keep_awake(n)` returns, the engine's epoch advances at least `n`
//! more times, so a deadline of `n` ticks set before it always fires. The argument is in
//! [`EpochClock::keep_awake`].
//!
//! **Cost on the call path:** two atomic loads while the clock is already promised far
//! enough ahead; a `fetch_max` at most once per [`GRACE_TICKS`] of calls, and an unpark
//! only when the clock was asleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread::{JoinHandle, Thread};

use wasmtime::Engine;

use super::EPOCH_TICK;

/// Ticks the clock keeps going past the last promise: calls within this window extend
/// the promise with loads only, and a clock that goes to sleep between bursts of calls
/// does so at most every `GRACE_TICKS` ms.
pub const GRACE_TICKS: u64 = 100;

/// The clock's state, shared by the thread and every caller.
struct Shared {
    /// Ticks made so far. Written by the clock thread only, after the engine's epoch:
    /// it is never ahead of the engine, and behind it by at most one.
    ticks: AtomicU64,
    /// The tick count the clock must reach before it may sleep.
    awake_until: AtomicU64,
    /// Set by the clock thread before it parks, cleared when it runs again.
    asleep: AtomicBool,
    stop: AtomicBool,
}

/// The engine's clock. Stopped and joined on drop (within one tick).
pub(super) struct EpochClock {
    shared: Arc<Shared>,
    thread: Thread,
    handle: Option<JoinHandle<()>>,
}

impl EpochClock {
    /// Starts the clock thread, asleep until the first call.
    pub(super) fn start(engine: Engine) -> std::io::Result<EpochClock> {
        let shared = Arc::new(Shared {
            ticks: AtomicU64::new(0),
            awake_until: AtomicU64::new(0),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let handle = std::thread::Builder::new()
            .name("outpost-plugin-epoch".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &engine)
            })?;
        Ok(EpochClock {
            shared,
            thread: handle.thread().clone(),
            handle: Some(handle),
        })
    }

    /// Promises that the engine's epoch advances at least `ticks` more times. Call it
    /// right after `Store::set_epoch_deadline(ticks)`.
    ///
    /// Why the promise holds: the deadline was set at engine epoch `e`; `ticks` read here
    /// is at least `e - 1`, so the clock runs until the engine reaches at least
    /// `e + ticks + 1`. If the clock is about to park, either it reads the raised
    /// `awake_until` after setting `asleep` and does not park, or this call reads
    /// `asleep` after it was set and unparks it (all `SeqCst`: one order for both
    /// sides' store-then-load).
    pub(super) fn keep_awake(&self, ticks: u64) {
        let shared = &*self.shared;
        let needed = shared
            .ticks
            .load(SeqCst)
            .saturating_add(ticks)
            .saturating_add(2);
        if shared.awake_until.load(SeqCst) >= needed {
            return;
        }
        shared
            .awake_until
            .fetch_max(needed.saturating_add(GRACE_TICKS), SeqCst);
        if shared.asleep.load(SeqCst) {
            self.thread.unpark();
        }
    }

    /// Whether the clock thread is parked: for tests.
    #[cfg(test)]
    pub(super) fn is_asleep(&self) -> bool {
        self.shared.asleep.load(SeqCst)
    }
}

/// The clock thread: tick while promised, park when not.
fn run(shared: &Shared, engine: &Engine) {
    while !shared.stop.load(SeqCst) {
        let ticks = shared.ticks.load(SeqCst);
        if shared.awake_until.load(SeqCst) > ticks {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
            shared.ticks.store(ticks + 1, SeqCst);
            continue;
        }
        shared.asleep.store(true, SeqCst);
        if shared.awake_until.load(SeqCst) <= ticks && !shared.stop.load(SeqCst) {
            // Woken by `keep_awake` or `drop`; a spurious wake-up just loops.
            std::thread::park();
        }
        shared.asleep.store(false, SeqCst);
    }
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        self.thread.unpark();
        if let Some(handle) = self.handle.take() {
            // The thread only sleeps, parks and increments: it cannot panic in a way
            // worth reporting from a destructor.
            let _ = handle.join();
        }
    }
}
