//! The query log: what this node's clients asked, kept in memory, never sent anywhere
//! unless an operator asks for it (`/v1/querylog`, the console).
//!
//! Two views, both bounded:
//! - **recent queries**: the last [`Settings::capacity`] answered queries (time, client,
//!   name, type, transport, rcode, where the answer came from, latency), searched by
//!   the console's log page and tailed by its live view;
//! - **per-minute aggregates** for the last [`aggregate::HISTORY_MINUTES`] minutes
//!   (`aggregate`): counts, cache hits, blocks, failures, upstream latency and the
//!   busiest clients, names and blocked names.
//!
//! Cost: the query path records each answer with one uncontended lock of its worker's
//! shard (one per thread, up to [`SHARDS`]), a name copied into a reused buffer, three
//! counting-table updates and no system call (a shard reads the clock once a second);
//! no allocation once the ring and the tables are warm. `mode = "off"` costs one
//! atomic load.
//!
//! **Bound:** the recent queries are shared among the shards in use: each keeps at most
//! `capacity` / (shards in use), oldest dropped first.
//! **Invariant:** a record's sequence number is unique and grows with the time it was
//! taken, and it is taken and the record pushed under the same shard lock; a search
//! reads the next number with every shard locked (`search`), so it sees every record
//! below that cut, and a live tail that asks after the cursor it was given misses
//! nothing that is still in the log.

pub mod aggregate;
mod search;
mod text;

pub use search::{Filter, Found};

use text::{dotted, read_name, write_name};
pub use text::{parse_rcode, rcode_name};

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use outpost_core::answer::Transport;
use serde::Serialize;

use aggregate::{History, Minute};

/// Recent queries kept by default.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// The most recent queries a log may be configured to keep (about 150 bytes each with
/// typical names, up to about 400 with the longest: 150 to 400 MiB).
pub const MAX_CAPACITY: usize = 1_000_000;
/// Shards of the log: the query path's threads take one each (round robin), so two
/// workers never wait on the same lock.
pub const SHARDS: usize = 8;
/// Records one search returns at most.
pub const MAX_SEARCH_RESULTS: usize = 1_000;

/// How often a shard reads the system clock; between two reads, a query's time is
/// counted from its arrival instant.
const CLOCK_REREAD: Duration = Duration::from_secs(1);

/// Which queries the log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every answered query.
    #[default]
    All,
    /// Only queries a plugin decided, and answers with an error rcode (SERVFAIL,
    /// REFUSED, FORMERR, NOTIMP, ...; NXDOMAIN is an answer, not an error).
    BlockedOrFailed,
    /// Nothing: neither recent queries nor aggregates.
    Off,
}

impl Mode {
    fn code(self) -> u8 {
        match self {
            Mode::All => 0,
            Mode::BlockedOrFailed => 1,
            Mode::Off => 2,
        }
    }

    fn from_code(code: u8) -> Mode {
        match code {
            0 => Mode::All,
            1 => Mode::BlockedOrFailed,
            _ => Mode::Off,
        }
    }
}

/// The log's settings, from `[query_log]`; swapped whole on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// Recent queries kept.
    pub capacity: usize,
    /// Keep clients' addresses without their last octet (IPv4) or last 80 bits
    /// (IPv6), as AdGuard Home does.
    pub anonymize_clients: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::All,
            capacity: DEFAULT_CAPACITY,
            anonymize_clients: false,
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Our zones (an answer, a referral, NXDOMAIN).
    Zone,
    /// The forwarder's cache, without asking an upstream.
    Cache,
    /// An upstream, asked for this query (or SERVFAIL when none answered).
    Upstream,
    /// A query-policy plugin decided it.
    Plugin { plugin: Arc<str>, verdict: Verdict },
    /// Refused: not ours, and the client may not recurse.
    Refused,
    /// Response rate limiting answered it (a slip or BADCOOKIE).
    RateLimited,
    /// Answered before the answer engine: a zone transfer or NOTIFY this node does not
    /// take (REFUSED, NOTIMP). Malformed queries, answered FORMERR from the packet alone,
    /// have no question to log: they are counted in the metrics only.
    Early,
}

/// What a plugin decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Block,
    Answer,
    Redirect,
    /// A fail-closed plugin failed: SERVFAIL.
    Fail,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Zone => "zone",
            Source::Cache => "cache",
            Source::Upstream => "upstream",
            Source::Plugin { .. } => "plugin",
            Source::Refused => "refused",
            Source::RateLimited => "rate-limited",
            Source::Early => "early",
        }
    }

    fn is_block(&self) -> bool {
        matches!(
            self,
            Source::Plugin {
                verdict: Verdict::Block,
                ..
            }
        )
    }
}

/// One answered query, as the query path hands it over.
pub struct Answered<'a> {
    /// When the query arrived.
    pub at: Instant,
    pub client: IpAddr,
    pub name: &'a Name,
    pub qtype: RecordType,
    pub transport: Transport,
    pub rcode: ResponseCode,
    pub source: Source,
    pub latency: Duration,
}

/// One kept query, as a search returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Grows by one per kept query on this node; the live tail's cursor.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub client: IpAddr,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub transport: &'static str,
    pub rcode: String,
    /// `zone`, `cache`, `upstream`, `plugin`, `refused`, `rate-limited` or `early`.
    pub source: &'static str,
    /// The deciding plugin, when `source` is `plugin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub latency_us: u64,
}

/// The log of one node. Shared by every socket loop through the query handler.
pub struct QueryLog {
    /// [`Settings::mode`], as [`Mode::code`]: read with one relaxed load per query.
    mode: AtomicU8,
    anonymize_clients: AtomicBool,
    capacity: AtomicUsize,
    shards: Box<[Mutex<Shard>]>,
    /// Which shards have taken a record, and how many: the capacity is shared among them.
    shard_active: [AtomicBool; SHARDS],
    active_shards: AtomicUsize,
    history: Mutex<History>,
    next_seq: AtomicU64,
}

/// One shard: a ring of recent queries and the minute being counted.
struct Shard {
    /// Oldest first.
    ring: VecDeque<Slot>,
    /// The oldest slots dropped when the capacity shrank, kept for their buffers.
    spare: Vec<Slot>,
    /// An instant and the Unix time in milliseconds it was: a query's time is read
    /// from its arrival instant, and the clock is asked again at most once a second.
    clock: Option<(Instant, u64)>,
    minute: Minute,
}

/// A ring slot, reused: its name buffer keeps its allocation.
struct Slot {
    seq: u64,
    time_ms: u64,
    client: IpAddr,
    /// The name's labels, lowercase, each behind its length (wire form, no root).
    name: Vec<u8>,
    qtype: RecordType,
    transport: Transport,
    rcode: ResponseCode,
    source: Source,
    latency_us: u64,
}

thread_local! {
    /// The shard this thread writes to, chosen on its first record.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl QueryLog {
    pub fn new(settings: Settings) -> Self {
        let log = Self {
            mode: AtomicU8::new(settings.mode.code()),
            anonymize_clients: AtomicBool::new(settings.anonymize_clients),
            capacity: AtomicUsize::new(settings.capacity.clamp(1, MAX_CAPACITY)),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            shard_active: std::array::from_fn(|_| AtomicBool::new(false)),
            active_shards: AtomicUsize::new(0),
            history: Mutex::new(History::default()),
            next_seq: AtomicU64::new(1),
        };
        log.reconfigure(settings);
        log
    }

    pub fn settings(&self) -> Settings {
        Settings {
            mode: Mode::from_code(self.mode.load(Ordering::Relaxed)),
            capacity: self.capacity.load(Ordering::Relaxed),
            anonymize_clients: self.anonymize_clients.load(Ordering::Relaxed),
        }
    }

    /// Applies reloaded settings. A smaller capacity drops the oldest queries at once
    /// and gives their memory back; the aggregates are kept.
    pub fn reconfigure(&self, settings: Settings) {
        self.mode.store(settings.mode.code(), Ordering::Relaxed);
        self.anonymize_clients
            .store(settings.anonymize_clients, Ordering::Relaxed);
        let capacity = settings.capacity.clamp(1, MAX_CAPACITY);
        self.capacity.store(capacity, Ordering::Relaxed);
        self.trim();
    }

    /// The most a shard keeps: its share of the capacity.
    fn per_shard(&self) -> usize {
        let active = self.active_shards.load(Ordering::Relaxed).max(1);
        self.capacity.load(Ordering::Relaxed).div_ceil(active)
    }

    /// Drops every shard's oldest queries beyond its share, giving their memory back.
    fn trim(&self) {
        let per_shard = self.per_shard();
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let excess = shard.ring.len().saturating_sub(per_shard);
            if excess > 0 {
                shard.ring.drain(..excess);
                shard.ring.shrink_to_fit();
            }
        }
    }

    /// Records an answered query, as the settings say.
    pub fn record(&self, answered: Answered<'_>) {
        let keep = match Mode::from_code(self.mode.load(Ordering::Relaxed)) {
            Mode::Off => return,
            Mode::All => true,
            Mode::BlockedOrFailed => {
                matches!(answered.source, Source::Plugin { .. }) || is_error(answered.rcode)
            }
        };
        if !keep {
            return;
        }
        let client = if self.anonymize_clients.load(Ordering::Relaxed) {
            anonymize(answered.client)
        } else {
            answered.client
        };
        let index = shard_index();
        // A load first: the swap, a write to a line every worker reads, happens once.
        if !self.shard_active[index].load(Ordering::Relaxed)
            && !self.shard_active[index].swap(true, Ordering::Relaxed)
        {
            // One more shard shares the capacity: the others give up their excess now,
            // so the log never holds more than the capacity (at most SHARDS times).
            self.active_shards.fetch_add(1, Ordering::Relaxed);
            self.trim();
        }
        let mut shard = lock(&self.shards[index]);
        let time_ms = shard.unix_ms(answered.at);
        let minute = time_ms / 60_000;
        if shard.minute.minute != minute {
            let done = std::mem::replace(&mut shard.minute, Minute::starting(minute));
            lock(&self.history).add(done.summary(), minute);
        }
        let mut slot = shard.take_slot(self.per_shard());
        write_name(&mut slot.name, answered.name);
        shard.minute.count(&answered, client, &slot.name);
        slot.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        slot.time_ms = time_ms;
        slot.client = client;
        slot.qtype = answered.qtype;
        slot.transport = answered.transport;
        slot.rcode = answered.rcode;
        slot.latency_us = answered.latency.as_micros().try_into().unwrap_or(u64::MAX);
        slot.source = answered.source;
        shard.ring.push_back(slot);
    }

    /// The aggregates of the last `minutes` minutes (at most a day), the minutes still
    /// being counted included.
    pub fn stats(&self, minutes: u64) -> aggregate::Stats {
        let now = unix_ms() / 60_000;
        let since = now.saturating_sub(minutes.clamp(1, aggregate::HISTORY_MINUTES) - 1);
        let mut current = Vec::with_capacity(SHARDS);
        for shard in self.shards.iter() {
            let shard = lock(shard);
            if shard.minute.queries > 0 {
                current.push(shard.minute.summary());
            }
        }
        // Copied under the lock, merged outside it: a worker that finishes a minute waits
        // for the copy only.
        let window = lock(&self.history).window(since);
        aggregate::stats(since, window, current)
    }
}

impl Shard {
    fn new() -> Self {
        Self {
            ring: VecDeque::new(),
            spare: Vec::new(),
            clock: None,
            minute: Minute::default(),
        }
    }

    /// A slot for the next record, the ring left with room for it within `capacity`:
    /// the oldest record's slot once the ring is full, a new one while it grows.
    fn take_slot(&mut self, capacity: usize) -> Slot {
        while self.ring.len() > capacity.saturating_sub(1) {
            let Some(oldest) = self.ring.pop_front() else {
                break;
            };
            self.spare.push(oldest);
        }
        // Keep one spare at most: the rest of a shrunk ring's memory is given back.
        self.spare.truncate(1);
        self.spare.pop().unwrap_or_else(Slot::empty)
    }

    /// The Unix time in milliseconds of `at`.
    fn unix_ms(&mut self, at: Instant) -> u64 {
        match self.clock {
            Some((base, base_ms)) if at >= base && at - base < CLOCK_REREAD => {
                base_ms + (at - base).as_millis() as u64
            }
            _ => {
                let now = Instant::now();
                let now_ms = unix_ms();
                self.clock = Some((now, now_ms));
                now_ms.saturating_sub(now.saturating_duration_since(at).as_millis() as u64)
            }
        }
    }
}

impl Slot {
    fn empty() -> Self {
        Self {
            seq: 0,
            time_ms: 0,
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            name: Vec::new(),
            qtype: RecordType::A,
            transport: Transport::Udp,
            rcode: ResponseCode::NoError,
            source: Source::Zone,
            latency_us: 0,
        }
    }

    /// Whether the slot matches `filter`; `scratch` holds the dotted name when asked.
    fn matches(&self, filter: &Filter, scratch: &mut Vec<u8>) -> bool {
        filter.client.is_none_or(|client| client == self.client)
            && filter.qtype.is_none_or(|qtype| qtype == self.qtype)
            && filter.rcode.is_none_or(|rcode| rcode == self.rcode)
            && filter.source.as_deref().is_none_or(|source| {
                source == self.source.as_str()
                    || matches!(&self.source, Source::Plugin { verdict, .. }
                        if verdict_name(*verdict) == source)
            })
            && filter.name.as_deref().is_none_or(|part| {
                dotted(&self.name, scratch);
                part.is_empty()
                    || scratch
                        .windows(part.len())
                        .any(|window| window == part.as_bytes())
            })
    }

    fn record(&self) -> Record {
        let (plugin, verdict) = match &self.source {
            Source::Plugin { plugin, verdict } => (Some(Arc::clone(plugin)), Some(*verdict)),
            _ => (None, None),
        };
        Record {
            seq: self.seq,
            time_ms: self.time_ms,
            client: self.client,
            name: read_name(&self.name),
            qtype: self.qtype.to_string(),
            transport: self.transport.as_str(),
            rcode: rcode_name(self.rcode),
            source: self.source.as_str(),
            plugin,
            verdict,
            latency_us: self.latency_us,
        }
    }
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Block => "block",
        Verdict::Answer => "answer",
        Verdict::Redirect => "redirect",
        Verdict::Fail => "fail",
    }
}

/// An rcode that says the query was not answered: everything but NOERROR and NXDOMAIN.
fn is_error(rcode: ResponseCode) -> bool {
    !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
}

/// `client` without what identifies one host: the last octet of an IPv4 address, the
/// last 80 bits of an IPv6 one.
pub fn anonymize(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 80) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// The shard of the calling thread.
fn shard_index() -> usize {
    SHARD.with(|cell| {
        cell.get().unwrap_or_else(|| {
            let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            cell.set(Some(index));
            index
        })
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A poisoned lock only means a panic elsewhere; the log's data is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
