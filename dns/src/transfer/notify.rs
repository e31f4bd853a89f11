//! NOTIFY (RFC 1996) to the secondaries after each change of one of their zones, so they
//! transfer it at once instead of at their next SOA refresh.
//!
//! Sent by the node that leads the cluster (one NOTIFY per change, not one per node),
//! over UDP, signed with the secondary's key, retried until the secondary answers.
//! Changes that come while a NOTIFY for the same zone and target is out coalesce into
//! one more, which carries the SOA of its time. Each NOTIFY is echoed once,
//! [`NOTIFY_ECHO`] later: a secondary whose primary is a follower asks that follower
//! for the SOA, and a follower a moment behind the leader says "nothing new", which the
//! secondary would otherwise believe until its next refresh.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Transfers;
use super::tsig::sign_query;
use crate::metrics::Metrics;

/// How long a NOTIFY waits for its answer before it is sent again.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a NOTIFY is sent before the secondary is left to its SOA refresh.
pub const NOTIFY_ATTEMPTS: u32 = 5;
/// How long after a NOTIFY its echo is sent (followers apply a commit within a heartbeat
/// or two of the leader).
pub const NOTIFY_ECHO: Duration = Duration::from_secs(2);
/// NOTIFYs (zone and target) out at once; a change past it notifies nobody new
/// (counted in `outpost_notify_failed_total`; the secondary refreshes on its timer).
pub const MAX_NOTIFY_IN_FLIGHT: usize = 256;

/// Sends NOTIFY for changed zones.
pub struct Notifier {
    transfers: Arc<Transfers>,
    metrics: Arc<Metrics>,
    /// Whether this node sends them (it leads the cluster).
    leads: Box<dyn Fn() -> bool + Send + Sync>,
    /// NOTIFYs out, by zone and target; `true` when another change came meanwhile.
    in_flight: Mutex<HashMap<(Name, SocketAddr), bool>>,
    runtime: tokio::runtime::Handle,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Notifier {
    /// A notifier that spawns its sends on the current runtime.
    pub fn new(
        transfers: Arc<Transfers>,
        metrics: Arc<Metrics>,
        leads: Box<dyn Fn() -> bool + Send + Sync>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Notifier> {
        Arc::new(Notifier {
            transfers,
            metrics,
            leads,
            in_flight: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            tracker,
            shutdown,
        })
    }

    /// Notifies the secondaries of `zones` (their data changed). Never blocks: the
    /// sends run on tasks of their own.
    pub fn changed(self: &Arc<Self>, zones: impl IntoIterator<Item = Name>) {
        if !(self.leads)() {
            return;
        }
        let rules = self.transfers.rules();
        for zone in zones {
            let targets = rules
                .secondaries
                .iter()
                .filter(|secondary| secondary.covers(&zone))
                .flat_map(|secondary| secondary.notify.iter().copied());
            for target in targets {
                self.start(zone.clone(), target);
            }
        }
    }

    fn start(self: &Arc<Self>, zone: Name, target: SocketAddr) {
        {
            let mut in_flight = self.lock();
            if let Some(again) = in_flight.get_mut(&(zone.clone(), target)) {
                *again = true;
                return;
            }
            if in_flight.len() >= MAX_NOTIFY_IN_FLIGHT {
                Metrics::bump(&self.metrics.notify_failed);
                tracing::warn!(%zone, %target, "too many NOTIFYs out; this one is not sent");
                return;
            }
            in_flight.insert((zone.clone(), target), false);
        }
        let notifier = self.clone();
        let _guard = self.runtime.enter();
        self.tracker
            .spawn(async move { notifier.run(zone, target).await });
    }

    /// Sends NOTIFY for `zone` to `target` until it is answered or the attempts run out,
    /// then once more for each batch of changes that came meanwhile, and its echo.
    async fn run(self: Arc<Self>, zone: Name, target: SocketAddr) {
        let mut echoed = false;
        loop {
            let sent = tokio::select! {
                sent = self.send(&zone, target) => sent,
                () = self.shutdown.cancelled() => return,
            };
            match sent {
                Ok(()) => Metrics::bump(&self.metrics.notify_sent),
                Err(error) => {
                    Metrics::bump(&self.metrics.notify_failed);
                    tracing::warn!(%zone, %target, %error, "NOTIFY not answered");
                }
            }
            let key = (zone.clone(), target);
            {
                let mut in_flight = self.lock();
                match in_flight.get_mut(&key) {
                    Some(again) if *again => {
                        *again = false;
                        echoed = false;
                        continue;
                    }
                    _ if echoed => {
                        in_flight.remove(&key);
                        return;
                    }
                    _ => {}
                }
            }
            // Changes during the wait coalesce into the echo (`start` sees the key).
            tokio::select! {
                () = tokio::time::sleep(NOTIFY_ECHO) => echoed = true,
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// One NOTIFY, sent up to [`NOTIFY_ATTEMPTS`] times until its answer comes.
    async fn send(&self, zone: &Name, target: SocketAddr) -> io::Result<()> {
        let packet = self.notify_packet(zone, target)?;
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        let local: SocketAddr = match target {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(target).await?;
        let mut answer = [0u8; 512];
        for _ in 0..NOTIFY_ATTEMPTS {
            socket.send(&packet).await?;
            let deadline = tokio::time::Instant::now() + NOTIFY_TIMEOUT;
            while let Ok(received) =
                tokio::time::timeout_at(deadline, socket.recv(&mut answer)).await
            {
                // An ICMP error from an earlier send: try again after the timeout.
                let Ok(len) = received else { continue };
                if is_answer_to(&answer[..len], id) {
                    return Ok(());
                }
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))
    }

    /// The NOTIFY for `zone`, with its current SOA, signed when the target's secondary
    /// names a key.
    fn notify_packet(&self, zone: &Name, target: SocketAddr) -> io::Result<Vec<u8>> {
        let state = self.transfers.state();
        let soa = state.get(zone).and_then(|zone| zone.soa());
        let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Notify);
        message.metadata.authoritative = true;
        message.add_query(Query::query(zone.clone(), RecordType::SOA));
        if let Some(soa) = soa {
            message.add_answer(soa);
        }
        let rules = self.transfers.rules();
        let key = rules
            .secondaries
            .iter()
            .find(|secondary| secondary.covers(zone) && secondary.notify.contains(&target))
            .and_then(|secondary| secondary.key.as_ref())
            .and_then(|key| rules.keys.get(key));
        if let Some(signer) = key {
            sign_query(signer, &mut message).map_err(io::Error::other)?;
        }
        message.to_vec().map_err(io::Error::other)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Name, SocketAddr), bool>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `packet` is a response to the NOTIFY `id`.
fn is_answer_to(packet: &[u8], id: u16) -> bool {
    matches!(packet, [high, low, flags, ..] if u16::from_be_bytes([*high, *low]) == id && flags & 0x80 != 0)
}

fn rand_id() -> u16 {
    let mut id = [0u8; 2];
    // Without randomness the id is 0: the answer is still matched by the socket.
    let _ = getrandom::fill(&mut id);
    u16::from_be_bytes(id)
}
