//! A cluster's network inside one process, for tests: every node's [`RaftRpcHandler`] in one
//! registry, and per directed link the faults a test asks for (cut, bounded delay, lost
//! requests and lost replies), drawn from a seeded generator so a failing run can be replayed
//! from its seed. Every message is encoded and decoded by the real codec and served by the real
//! handler; only the bytes' journey is simulated.
//!
//! What each fault looks like to openraft: a cut link or a crashed node is `Unreachable` (it
//! backs off); a lost request or reply never answers, so the RPC times out (the receiver may
//! well have acted on a request whose reply was lost).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::handler::RaftRpcHandler;
use super::transport::{RaftTransport, TransportError};
use crate::store::types::NodeInfo;

/// The longest delay a link may be given, each way: keeps every test's worst case bounded.
pub(crate) const MAX_LINK_DELAY: Duration = Duration::from_millis(200);

/// What one direction of a link does to the messages on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkFaults {
    /// Nothing gets through: calls fail at once as unreachable.
    pub(crate) cut: bool,
    /// Each message (request, then reply) waits a uniform draw from zero to this.
    pub(crate) max_delay: Duration,
    /// Percent chance that a request is lost (never delivered, never answered).
    pub(crate) drop_request_percent: u8,
    /// Percent chance that a reply is lost after the request was served.
    pub(crate) drop_reply_percent: u8,
}

/// The shared network; [`InProcessNet::transport`] gives each node its own side of it.
#[derive(Clone)]
pub(crate) struct InProcessNet {
    state: Arc<Mutex<NetState>>,
}

struct NetState {
    handlers: HashMap<u64, RaftRpcHandler>,
    /// Faults by (from, to); absent means a healthy link.
    links: HashMap<(u64, u64), LinkFaults>,
    random: SplitMix64,
}

/// What happens to one call, drawn when it starts.
struct Fate {
    request_delay: Duration,
    reply_delay: Duration,
    lose_request: bool,
    lose_reply: bool,
}

impl InProcessNet {
    pub(crate) fn new(seed: u64) -> InProcessNet {
        InProcessNet {
            state: Arc::new(Mutex::new(NetState {
                handlers: HashMap::new(),
                links: HashMap::new(),
                random: SplitMix64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        // A test thread that panicked while holding the lock already failed the test.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The transport node `from` sends with.
    pub(crate) fn transport(&self, from: u64) -> Arc<dyn RaftTransport> {
        Arc::new(InProcessTransport {
            net: self.clone(),
            from,
        })
    }

    /// Starts serving a node's handler (after its store opened, or reopened).
    pub(crate) fn register(&self, handler: RaftRpcHandler) {
        self.lock().handlers.insert(handler.node_id(), handler);
    }

    /// Stops delivering to `node`: calls to it fail as unreachable until it is registered again.
    pub(crate) fn crash(&self, node: u64) {
        self.lock().handlers.remove(&node);
    }

    /// Sets the faults of the link from `from` to `to` (one direction).
    pub(crate) fn set_link(&self, from: u64, to: u64, faults: LinkFaults) {
        assert!(faults.max_delay <= MAX_LINK_DELAY, "{faults:?}");
        assert!(faults.drop_request_percent <= 100 && faults.drop_reply_percent <= 100);
        self.lock().links.insert((from, to), faults);
    }

    /// Cuts both directions between `a` and `b`.
    pub(crate) fn cut(&self, a: u64, b: u64) {
        let mut state = self.lock();
        for key in [(a, b), (b, a)] {
            state.links.entry(key).or_default().cut = true;
        }
    }

    /// Cuts `node` off from each of `others`, both ways.
    pub(crate) fn isolate(&self, node: u64, others: &[u64]) {
        for &other in others {
            if other != node {
                self.cut(node, other);
            }
        }
    }

    /// Every link healthy again.
    pub(crate) fn heal_all(&self) {
        self.lock().links.clear();
    }

    /// Decides what happens to a call from `from` to `to`, or refuses it as unreachable.
    fn fate(&self, from: u64, to: u64) -> Result<Fate, TransportError> {
        let mut state = self.lock();
        let faults = state.links.get(&(from, to)).copied().unwrap_or_default();
        if faults.cut {
            return Err(TransportError::Unreachable {
                node: to,
                reason: format!("link {from} → {to} is cut"),
            });
        }
        let random = &mut state.random;
        Ok(Fate {
            request_delay: random.duration_up_to(faults.max_delay),
            reply_delay: random.duration_up_to(faults.max_delay),
            lose_request: random.percent(faults.drop_request_percent),
            lose_reply: random.percent(faults.drop_reply_percent),
        })
    }

    /// The handler of `to` at delivery time, if it runs and the link was not cut meanwhile.
    fn deliver_to(&self, from: u64, to: u64) -> Result<RaftRpcHandler, TransportError> {
        let state = self.lock();
        if state
            .links
            .get(&(from, to))
            .is_some_and(|faults| faults.cut)
        {
            return Err(TransportError::Failed {
                node: to,
                reason: format!("link {from} → {to} was cut in flight"),
            });
        }
        state
            .handlers
            .get(&to)
            .cloned()
            .ok_or_else(|| TransportError::Unreachable {
                node: to,
                reason: "node is not running".to_string(),
            })
    }
}

/// One node's side of an [`InProcessNet`].
struct InProcessTransport {
    net: InProcessNet,
    from: u64,
}

impl RaftTransport for InProcessTransport {
    fn call<'a>(
        &'a self,
        to: u64,
        _to_node: &'a NodeInfo,
        request: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let fate = self.net.fate(self.from, to)?;
            tokio::time::sleep(fate.request_delay).await;
            if fate.lose_request {
                // Lost on the way: no answer ever comes; the caller's deadline ends the call.
                return std::future::pending().await;
            }
            let handler = self.net.deliver_to(self.from, to)?;
            let reply = handler
                .handle(&request)
                .await
                .map_err(|e| TransportError::Failed {
                    node: to,
                    reason: e.to_string(),
                })?;
            if fate.lose_reply {
                return std::future::pending().await;
            }
            tokio::time::sleep(fate.reply_delay).await;
            Ok(reply)
        })
    }
}

/// A small seeded generator (SplitMix64): enough for fault injection, and no dependency.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0; the tiny modulo bias does not matter here).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn percent(&mut self, percent: u8) -> bool {
        self.below(100) < u64::from(percent)
    }

    fn duration_up_to(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.below(micros.saturating_add(1)))
    }
}
