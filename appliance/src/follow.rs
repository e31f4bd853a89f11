//! Followed zones on an appliance (`docs/transfers.md`): while this node leads, each zone
//! the cluster follows is refreshed from its primaries on the SOA's timers, or at once when
//! a primary's NOTIFY came, and what a transfer brought is proposed through Raft
//! (`outpost_core::state::follow`), so every node and Lite client gets it.
//!
//! A refresh asks each primary in turn for its serial; a newer one is transferred (IXFR
//! from ours, AXFR when we hold nothing or the IXFR does not apply); a zone whose primaries
//! all failed past the SOA's expire is marked expired, and answered SERVFAIL everywhere.
//!
//! **Invariant:** only the leader transfers, and each transfer is proposed whole or not
//! at all: one command per refresh.

mod changes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::{Name, RData};
use outpost_core::state::{Command, CommandError, FollowedZone, ReplicatedState};
use outpost_core::wire::encode_records;
use outpost_dns::transfer::client::{Fetched, Primary};
use outpost_dns::transfer::serial_is_older;
use outpost_dns::transfer::tsig::key_signer;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{CommitObserver, StateEvent, Store, WriteError};

/// Bounds on the SOA's refresh and retry intervals as a refresh uses them (a primary's SOA
/// may say 0 or a year).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a follower that received a NOTIFY leaves the leader (which the primary may
/// have notified too) before it takes the change itself.
pub const NOTIFY_GRACE: Duration = Duration::from_secs(2);
/// How often a node with followed zones checks whether it leads.
pub const LEADER_CHECK: Duration = Duration::from_secs(1);
/// A refresh that finds the zone current writes that through Raft (the time expiry counts
/// from) only when the last one written is older than this; a failure repeating the
/// last one written is not written again. So a primary with a 1 s refresh, or one that
/// is down, costs a write a minute, not a write a second.
pub const STATUS_WRITE_EVERY: Duration = Duration::from_secs(60);

/// Wakes the refresh task: a NOTIFY came for a zone, or the follow settings changed.
#[derive(Default)]
pub struct FollowTrigger {
    notified: Mutex<HashSet<String>>,
    wake: Notify,
}

impl FollowTrigger {
    /// A primary's NOTIFY for `origin`: refresh it now.
    pub fn notified(&self, origin: &Name) {
        let origin = origin.to_lowercase().to_ascii();
        self.lock().insert(origin);
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.notified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the refresh task when a batch changed the follow settings.
impl CommitObserver for FollowTrigger {
    fn observe(&self, event: &StateEvent) {
        let changed = match event {
            StateEvent::Applied(batch) => batch.entries.iter().any(|entry| {
                entry.changes.iter().any(|change| {
                    matches!(
                        change,
                        outpost_core::state::Change::FollowedZonePut { .. }
                            | outpost_core::state::Change::FollowedZoneRemoved { .. }
                    )
                })
            }),
            StateEvent::Loaded { .. } | StateEvent::Replaced { .. } => true,
        };
        if changed {
            self.wake.notify_one();
        }
    }
}

/// Refreshes the followed zones while this node leads, until `shutdown`; on a follower,
/// takes a change itself when a primary's NOTIFY came here and the leader has not
/// applied it within [`NOTIFY_GRACE`] (the primary may notify this node alone).
pub async fn run(store: Store, trigger: Arc<FollowTrigger>, shutdown: CancellationToken) {
    // When each zone is next due on the leader; a zone not in it is due now.
    let mut due: HashMap<String, Instant> = HashMap::new();
    // On a follower: zones notified here, and when to look whether the leader took them.
    let mut noticed: HashMap<String, Instant> = HashMap::new();
    loop {
        let state = store.zones();
        let notified = trigger.take();
        let round = async {
            if store.is_leader() {
                noticed.clear();
                lead(&store, &state, &notified, &mut due).await;
            } else {
                due.clear();
                let grace = Instant::now() + NOTIFY_GRACE;
                for origin in notified
                    .into_iter()
                    .filter(|origin| state.followed(origin).is_some())
                {
                    noticed.entry(origin).or_insert(grace);
                }
                catch_up(&store, &state, &mut noticed).await;
            }
        };
        tokio::select! {
            () = round => {}
            () = shutdown.cancelled() => return,
        }
        let next = due.values().chain(noticed.values()).min();
        let wait = match (state.followed_zones().next(), next) {
            (None, _) => None,
            (Some(_), None) => Some(LEADER_CHECK),
            (Some(_), Some(at)) => Some(
                at.saturating_duration_since(Instant::now())
                    .min(LEADER_CHECK),
            ),
        };
        tokio::select! {
            () = sleep_or_forever(wait) => {}
            () = trigger.wake.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The leader's round: each zone due, or notified, is refreshed.
async fn lead(
    store: &Store,
    state: &ReplicatedState,
    notified: &HashSet<String>,
    due: &mut HashMap<String, Instant>,
) {
    for zone in state.followed_zones() {
        let is_due = due.get(&zone.origin).is_none_or(|at| *at <= Instant::now());
        if is_due || notified.contains(&zone.origin) {
            let next = refresh(store, state, zone).await;
            due.insert(zone.origin.clone(), Instant::now() + next);
        }
    }
    due.retain(|origin, _| state.followed(origin).is_some());
}

/// A follower's round: each zone notified here whose grace has passed is transferred
/// when the primary still has a newer serial than the cluster. The transfer is proposed
/// like any write (relayed to the leader); if the leader got there first, the write is
/// stale and changes nothing. Failures are logged, not written: the leader keeps the
/// zone's status.
async fn catch_up(store: &Store, state: &ReplicatedState, noticed: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    let ripe: Vec<String> = (noticed.iter())
        .filter(|(_, at)| **at <= now)
        .map(|(origin, _)| origin.clone())
        .collect();
    for origin in ripe {
        noticed.remove(&origin);
        let Some(zone) = state.followed(&origin) else {
            continue;
        };
        let Ok(name) = Name::from_ascii(&zone.origin) else {
            continue;
        };
        let serial = timers(&store.zones(), &name).serial;
        let key = zone.tsig.as_ref().and_then(|key| key_signer(key).ok());
        for addr in &zone.primaries {
            let primary = Primary {
                addr: *addr,
                key: key.as_ref(),
            };
            match transfer(store, &store.zones(), zone, &primary, serial, Status::Leave).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(zone = %origin, primary = %addr, %error, "catching up after a NOTIFY failed");
                }
            }
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// The zone's SOA timers as a refresh uses them.
struct Timers {
    serial: Option<u32>,
    refresh: Duration,
    retry: Duration,
    expire: Duration,
}

fn timers(state: &ReplicatedState, origin: &Name) -> Timers {
    let soa = state.get(origin).and_then(|zone| zone.soa());
    let clamp = |seconds: u32| {
        Duration::from_secs(u64::from(seconds)).clamp(MIN_REFRESH_INTERVAL, MAX_REFRESH_INTERVAL)
    };
    match soa.map(|soa| soa.data) {
        Some(RData::SOA(soa)) => Timers {
            serial: Some(soa.serial),
            refresh: clamp(soa.refresh as u32),
            retry: clamp(soa.retry as u32),
            expire: Duration::from_secs(u64::from(soa.expire as u32)),
        },
        // Nothing transferred yet: retry soon, never expire what we do not hold.
        _ => Timers {
            serial: None,
            refresh: MIN_REFRESH_INTERVAL,
            retry: Duration::from_secs(10),
            expire: Duration::MAX,
        },
    }
}

/// One refresh of `zone`: returns when the next is due.
async fn refresh(store: &Store, state: &ReplicatedState, zone: &FollowedZone) -> Duration {
    let Ok(origin) = Name::from_ascii(&zone.origin) else {
        return MAX_REFRESH_INTERVAL;
    };
    let timers = timers(state, &origin);
    let key = match &zone.tsig {
        Some(key) => match key_signer(key) {
            Ok(signer) => Some(signer),
            Err(error) => {
                record_failure(store, zone, &error.to_string(), &timers).await;
                return timers.retry;
            }
        },
        None => None,
    };
    let mut last_error = String::from("no primary");
    for addr in &zone.primaries {
        let primary = Primary {
            addr: *addr,
            key: key.as_ref(),
        };
        match transfer(store, state, zone, &primary, timers.serial, Status::Write).await {
            Ok(()) => return timers_after(store, &origin).refresh,
            Err(error) => {
                tracing::warn!(zone = %origin, primary = %addr, %error, "refresh failed");
                last_error = format!("{addr}: {error}");
            }
        }
    }
    record_failure(store, zone, &last_error, &timers).await;
    timers.retry
}

/// Whether a refresh writes the zone's status (the leader) or leaves it (a follower
/// catching up after a NOTIFY).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Write,
    Leave,
}

/// The timers of the zone as it now is (a transfer may have brought a new SOA).
fn timers_after(store: &Store, origin: &Name) -> Timers {
    timers(&store.zones(), origin)
}

/// Asks `primary` and proposes what it has that we do not.
async fn transfer(
    store: &Store,
    state: &ReplicatedState,
    zone: &FollowedZone,
    primary: &Primary<'_>,
    serial: Option<u32>,
    status: Status,
) -> Result<(), String> {
    let origin = &Name::from_ascii(&zone.origin).map_err(|e| e.to_string())?;
    let now_unix = now_unix();
    let current = Command::FollowStatus {
        origin: origin.to_ascii(),
        now_unix,
        error: None,
        expired: false,
    };
    if let Some(ours) = serial {
        let theirs = primary.serial(origin).await.map_err(|e| e.to_string())?;
        if !serial_is_older(ours, theirs) {
            let written_lately = zone
                .refreshed_unix
                .is_some_and(|at| now_unix.saturating_sub(at) < STATUS_WRITE_EVERY.as_secs());
            let fresh = written_lately && zone.last_error.is_none() && !zone.expired;
            if fresh || status == Status::Leave {
                return Ok(());
            }
            return propose(store, current).await;
        }
    }
    let fetched = primary
        .fetch(origin, serial)
        .await
        .map_err(|e| e.to_string())?;
    let command = match fetched {
        Fetched::Current { .. } => current,
        Fetched::Whole(records) => whole(origin, &records, now_unix)?,
        Fetched::Changes { soa, steps } => {
            let from = serial.unwrap_or_default();
            let command = changes::command(state, origin, from, *soa, &steps, now_unix)?;
            match propose(store, command).await {
                Ok(()) => return Ok(()),
                // The differences do not apply to what we hold: take the whole zone.
                Err(error) => {
                    tracing::warn!(zone = %origin, %error, "IXFR did not apply; asking for AXFR");
                    match primary.fetch(origin, None).await {
                        Ok(Fetched::Whole(records)) => whole(origin, &records, now_unix)?,
                        Ok(_) => return Err("the AXFR after a failed IXFR was not a zone".into()),
                        Err(error) => return Err(error.to_string()),
                    }
                }
            }
        }
    };
    propose(store, command).await
}

fn whole(
    origin: &Name,
    records: &[hickory_proto::rr::Record],
    now_unix: u64,
) -> Result<Command, String> {
    let records = encode_records(records).map_err(|e| e.to_string())?;
    Ok(Command::TransferZone {
        origin: origin.to_ascii(),
        records,
        now_unix,
    })
}

async fn propose(store: &Store, command: Command) -> Result<(), String> {
    match store.write(command).await {
        Ok(_) => Ok(()),
        // Another node applied this transfer first: the zone is already there.
        Err(WriteError::Rejected(CommandError::TransferStale { .. })) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Records a refresh that failed everywhere: expired once the SOA's expire has passed
/// since the last success.
async fn record_failure(store: &Store, zone: &FollowedZone, error: &str, timers: &Timers) {
    let now_unix = now_unix();
    let expired = zone
        .refreshed_unix
        .is_some_and(|at| Duration::from_secs(now_unix.saturating_sub(at)) >= timers.expire);
    if zone.last_error.as_deref() == Some(error) && zone.expired == expired {
        return;
    }
    if expired && !zone.expired {
        tracing::error!(zone = %zone.origin, error, "followed zone expired: answering SERVFAIL until a primary answers");
    }
    let status = Command::FollowStatus {
        origin: zone.origin.clone(),
        now_unix,
        error: Some(error.to_string()),
        expired,
    };
    if let Err(error) = propose(store, status).await {
        tracing::warn!(zone = %zone.origin, %error, "could not record the failed refresh");
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
