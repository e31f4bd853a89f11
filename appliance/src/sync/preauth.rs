//! The pre-auth pool: connections from `accept` until the Lite token in their `Hello`
//! has been checked (TLS, the WebSocket upgrade, the wait for `Hello`).
//!
//! A stranger costs a task, a socket and buffers before it has proved anything, so
//! this stage is kept small and short: at most [`MAX_PREAUTH`] connections in it at
//! once, at most [`MAX_PREAUTH_PER_SOURCE`] from one source (an IPv4 address or an
//! IPv6 /64, the smallest block a host on a LAN is handed), and one deadline,
//! [`PREAUTH_DEADLINE`] from `accept`, for the whole stage rather than one per step, so
//! a client cannot stretch it by finishing each step just in time. A connection over a
//! cap is dropped before a byte is read; one past the deadline is dropped, or closed
//! with 4001 once its WebSocket is open. Only authenticated sessions count toward
//! [`super::MAX_SESSIONS`]: a flood of strangers can fill this pool, never the sessions.
//!
//! **Invariant:** a connection holds its [`PreauthPermit`] from `accept` until its token
//! is accepted (or it ends); dropping the permit is what gives the place back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use outpost_dns::server::connection_source;
use tokio::time::Instant;

/// Connections in the pre-auth stage at once, from every source together. Beyond it a
/// new connection is dropped at `accept` (counted as `pool_full`). A real client passes
/// the stage in milliseconds, so this is room for a site's laptops reconnecting together
/// after an appliance restart, not for idle strangers.
pub const MAX_PREAUTH: usize = 256;

/// Connections in the pre-auth stage at once from one source (an IPv4 address or an
/// IPv6 /64). Beyond it a new connection from that source is dropped at `accept`
/// (counted as `source_full`), so one host cannot fill [`MAX_PREAUTH`] on its own.
pub const MAX_PREAUTH_PER_SOURCE: usize = 16;

/// Time from `accept` to a checked token: TLS, the WebSocket upgrade and `Hello`
/// together. Past it the connection is dropped (closed with 4001 when its WebSocket
/// is open) and counted as `deadline`.
pub const PREAUTH_DEADLINE: Duration = Duration::from_secs(10);

/// The pool's caps and deadline (tests use smaller ones).
#[derive(Debug, Clone, Copy)]
pub struct PreauthLimits {
    pub connections: usize,
    pub per_source: usize,
    pub deadline: Duration,
}

impl Default for PreauthLimits {
    fn default() -> Self {
        PreauthLimits {
            connections: MAX_PREAUTH,
            per_source: MAX_PREAUTH_PER_SOURCE,
            deadline: PREAUTH_DEADLINE,
        }
    }
}

/// Why a connection left the pre-auth stage without a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreauthRefusal {
    /// [`MAX_PREAUTH`] connections were already in the stage.
    PoolFull,
    /// [`MAX_PREAUTH_PER_SOURCE`] connections from its source were already in the stage.
    SourceFull,
    /// It did not reach a checked token within [`PREAUTH_DEADLINE`].
    Deadline,
}

impl PreauthRefusal {
    const ALL: [PreauthRefusal; 3] = [
        PreauthRefusal::PoolFull,
        PreauthRefusal::SourceFull,
        PreauthRefusal::Deadline,
    ];

    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            PreauthRefusal::PoolFull => "pool_full",
            PreauthRefusal::SourceFull => "source_full",
            PreauthRefusal::Deadline => "deadline",
        }
    }
}

/// The pool's counters for `/metrics`; the hub renders them with the other sync
/// metrics.
#[derive(Debug, Default)]
pub struct PreauthMetrics {
    in_stage: AtomicU64,
    refused: [AtomicU64; 3],
}

impl PreauthMetrics {
    pub fn count(&self, refusal: PreauthRefusal) {
        self.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the pre-auth metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        outpost_dns::metrics::write_sample(
            out,
            "outpost_sync_preauth_connections",
            "gauge",
            "Lite sync connections not yet authenticated (TLS, upgrade, waiting for Hello).",
            self.in_stage.load(Ordering::Relaxed),
        );
        let name = "outpost_sync_preauth_refused_total";
        outpost_dns::metrics::write_header(
            out,
            name,
            "counter",
            "Unauthenticated Lite sync connections closed by the pre-auth pool, by reason: pool_full, source_full (per-address cap), deadline.",
        );
        for refusal in PreauthRefusal::ALL {
            let value = self.refused[refusal as usize].load(Ordering::Relaxed);
            outpost_dns::metrics::write_labelled(out, name, &[("reason", refusal.label())], value);
        }
    }
}

/// Who is in the stage now.
#[derive(Default)]
struct Occupancy {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The pre-auth stage's places.
pub struct PreauthPool {
    limits: PreauthLimits,
    occupancy: Mutex<Occupancy>,
    metrics: Arc<PreauthMetrics>,
}

/// A connection's place in the pre-auth stage, given back when dropped.
pub struct PreauthPermit {
    pool: Arc<PreauthPool>,
    source: IpAddr,
    deadline: Instant,
}

impl PreauthPool {
    pub fn new(limits: PreauthLimits, metrics: Arc<PreauthMetrics>) -> PreauthPool {
        PreauthPool {
            limits,
            occupancy: Mutex::new(Occupancy::default()),
            metrics,
        }
    }

    /// A place for a connection from `ip` accepted now, or why there is none (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PreauthPermit, PreauthRefusal> {
        let source = connection_source(ip);
        let mut occupancy = self.lock();
        let refusal = if occupancy.total >= self.limits.connections {
            Some(PreauthRefusal::PoolFull)
        } else if occupancy.per_source.get(&source).copied().unwrap_or(0) >= self.limits.per_source
        {
            Some(PreauthRefusal::SourceFull)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(occupancy);
            self.metrics.count(refusal);
            return Err(refusal);
        }
        occupancy.total += 1;
        *occupancy.per_source.entry(source).or_insert(0) += 1;
        self.metrics.in_stage.fetch_add(1, Ordering::Relaxed);
        Ok(PreauthPermit {
            pool: Arc::clone(self),
            source,
            deadline: Instant::now() + self.limits.deadline,
        })
    }

    /// The occupancy, even if a thread panicked while holding it (every update under
    /// the lock is a few integer steps).
    fn lock(&self) -> MutexGuard<'_, Occupancy> {
        self.occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl PreauthPermit {
    /// When the connection must have a checked token.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The connection missed [`PreauthPermit::deadline`].
    pub fn count_expired(&self) {
        self.pool.metrics.count(PreauthRefusal::Deadline);
    }

    /// How long the stage may take (for messages).
    pub fn allowed(&self) -> Duration {
        self.pool.limits.deadline
    }
}

impl Drop for PreauthPermit {
    fn drop(&mut self) {
        let mut occupancy = self.pool.lock();
        occupancy.total = occupancy.total.saturating_sub(1);
        if let Some(count) = occupancy.per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                occupancy.per_source.remove(&self.source);
            }
        }
        self.pool.metrics.in_stage.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(connections: usize, per_source: usize) -> Arc<PreauthPool> {
        let limits = PreauthLimits {
            connections,
            per_source,
            ..PreauthLimits::default()
        };
        Arc::new(PreauthPool::new(limits, Arc::default()))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_is_an_ipv4_address_or_an_ipv6_64() {
        let pool = pool(10, 2);
        let _a = pool.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = pool.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            pool.admit(ip("2001:db8:1:2::77")).err(),
            Some(PreauthRefusal::SourceFull)
        );
        let _other_64 = pool.admit(ip("2001:db8:1:3::1")).unwrap();

        let _c = pool.admit(ip("192.0.2.1")).unwrap();
        let _mapped = pool.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            pool.admit(ip("192.0.2.1")).err(),
            Some(PreauthRefusal::SourceFull)
        );
        let _neighbour = pool.admit(ip("192.0.2.2")).unwrap();
    }

    #[test]
    fn places_come_back_when_permits_drop() {
        let pool = pool(2, 2);
        let first = pool.admit(ip("192.0.2.1")).unwrap();
        let _second = pool.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(
            pool.admit(ip("192.0.2.3")).err(),
            Some(PreauthRefusal::PoolFull)
        );
        drop(first);
        let _third = pool.admit(ip("192.0.2.3")).unwrap();

        let mut metrics = String::new();
        pool.metrics.render(&mut metrics);
        assert!(
            metrics.contains("\noutpost_sync_preauth_connections 2\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\noutpost_sync_preauth_refused_total{reason=\"pool_full\"} 1\n"),
            "{metrics}"
        );
    }
}
