//! Per-minute aggregates of the query log: what the console's dashboard draws.
//!
//! Each shard counts the minute it is in ([`Minute`]); when its clock moves to the next
//! minute, the finished one is folded into the [`History`] as a [`Summary`]: the counts,
//! and the [`TOP_KEPT`] busiest clients, names and blocked names of that minute.
//!
//! **Approximation, stated:** a minute counts at most [`TOP_TRACKED`] distinct keys per
//! table (Space-Saving, evicting the less counted half when full; [`TopTable`]), so a
//! top entry's count may be high by at most the highest count evicted that minute; a
//! window's top list merges the minutes' top [`TOP_KEPT`], so a key that was never in a
//! minute's top is missing from the window's. Two keys whose 64-bit hashes collide are
//! counted as one. Counts of queries, cache hits, blocks and failures are exact.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::net::IpAddr;

use rustc_hash::FxBuildHasher;
use serde::Serialize;

use super::{Answered, Source, is_error, read_name};

/// Minutes of aggregates kept: a day.
pub const HISTORY_MINUTES: u64 = 24 * 60;
/// Distinct keys each top table of a minute counts.
pub const TOP_TRACKED: usize = 256;
/// Entries of each top table a finished minute keeps, and a window's lists show.
pub const TOP_KEPT: usize = 10;

/// The minute a shard is counting.
#[derive(Default)]
pub(super) struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub queries: u64,
    counts: Counts,
    clients: TopTable,
    names: TopTable,
    blocked_names: TopTable,
}

/// What a minute counts exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Answered from the forwarder's cache.
    pub cached: u64,
    /// Sent to an upstream.
    pub forwarded: u64,
    /// Blocked by a plugin.
    pub blocked: u64,
    /// Answered with an error rcode (SERVFAIL, REFUSED, ...).
    pub failed: u64,
    /// Microseconds the forwarded queries took, in all.
    pub upstream_us: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.cached += other.cached;
        self.forwarded += other.forwarded;
        self.blocked += other.blocked;
        self.failed += other.failed;
        self.upstream_us += other.upstream_us;
    }
}

impl Minute {
    pub fn starting(minute: u64) -> Self {
        Self {
            minute,
            ..Self::default()
        }
    }

    /// Counts an answer; `name` is its name as `text::write_name` wrote it.
    pub fn count(&mut self, answered: &Answered<'_>, client: IpAddr, name: &[u8]) {
        self.queries += 1;
        match &answered.source {
            Source::Cache => self.counts.cached += 1,
            Source::Upstream => {
                self.counts.forwarded += 1;
                self.counts.upstream_us += answered.latency.as_micros() as u64;
            }
            _ => {}
        }
        if is_error(answered.rcode) {
            self.counts.failed += 1;
        }
        match client {
            IpAddr::V4(v4) => self.clients.count(&v4.octets()),
            IpAddr::V6(v6) => self.clients.count(&v6.octets()),
        }
        self.names.count(name);
        if answered.source.is_block() {
            self.counts.blocked += 1;
            self.blocked_names.count(name);
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            minute: self.minute,
            queries: self.queries,
            counts: self.counts,
            clients: self.clients.top(),
            names: self.names.top(),
            blocked_names: self.blocked_names.top(),
        }
    }
}

/// A counting table of at most [`TOP_TRACKED`] keys (byte strings: a name's wire form,
/// an address's octets), found by a 64-bit hash of the key.
///
/// Space-Saving with evictions in halves: when the table is full, the less counted half
/// is dropped at once (a sort of [`TOP_TRACKED`] entries every [`TOP_TRACKED`] / 2 new
/// keys), and a key that comes in later starts at the highest count dropped (`floor`),
/// so no count is ever under its true value and none is over it by more than `floor`.
/// The dropped entries' buffers are kept for the keys that come next: no allocation
/// once the table is warm.
#[derive(Default)]
struct TopTable {
    index: HashMap<u64, usize, FxBuildHasher>,
    entries: Vec<TopEntry>,
    spare: Vec<Vec<u8>>,
    floor: u64,
}

struct TopEntry {
    hash: u64,
    count: u64,
    key: Vec<u8>,
}

impl TopTable {
    fn count(&mut self, key: &[u8]) {
        let hash = FxBuildHasher.hash_one(key);
        if let Some(&at) = self.index.get(&hash) {
            self.entries[at].count += 1;
            return;
        }
        if self.entries.len() >= TOP_TRACKED {
            self.evict_half();
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(key);
        self.index.insert(hash, self.entries.len());
        self.entries.push(TopEntry {
            hash,
            count: self.floor + 1,
            key: buffer,
        });
    }

    /// Drops the less counted half; the highest count dropped becomes the floor.
    fn evict_half(&mut self) {
        self.entries
            .sort_unstable_by_key(|entry| std::cmp::Reverse(entry.count));
        let kept = self.entries.len() / 2;
        for dropped in self.entries.drain(kept..) {
            self.floor = self.floor.max(dropped.count);
            self.spare.push(dropped.key);
        }
        self.index.clear();
        for (at, entry) in self.entries.iter().enumerate() {
            self.index.insert(entry.hash, at);
        }
    }

    fn top(&self) -> Vec<(Box<[u8]>, u64)> {
        let mut top: Vec<&TopEntry> = self.entries.iter().collect();
        top.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.count));
        top.iter()
            .take(TOP_KEPT)
            .map(|entry| (entry.key.as_slice().into(), entry.count))
            .collect()
    }
}

/// A finished (or, for a window's reader, current) minute.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    minute: u64,
    queries: u64,
    counts: Counts,
    /// An address's octets (4 or 16).
    clients: Vec<(Box<[u8]>, u64)>,
    names: Vec<(Box<[u8]>, u64)>,
    blocked_names: Vec<(Box<[u8]>, u64)>,
}

impl Summary {
    /// Folds another shard's summary of the same minute into this one.
    fn merge(&mut self, other: Summary) {
        self.queries += other.queries;
        self.counts.add(&other.counts);
        merge_top(&mut self.clients, other.clients);
        merge_top(&mut self.names, other.names);
        merge_top(&mut self.blocked_names, other.blocked_names);
    }
}

/// Adds `other`'s counts into `into`, key by key, keeping every key (a window's list
/// is cut when it is shown).
fn merge_top<K: Eq>(into: &mut Vec<(K, u64)>, other: Vec<(K, u64)>) {
    for (key, count) in other {
        match into.iter_mut().find(|(known, _)| *known == key) {
            Some((_, total)) => *total += count,
            None => into.push((key, count)),
        }
    }
}

/// The finished minutes of the last day, oldest first, one entry per minute that had
/// queries.
#[derive(Default)]
pub(super) struct History {
    minutes: VecDeque<Summary>,
}

impl History {
    /// Keeps a finished minute; `now` is the current minute. A minute from ahead of the
    /// clock (a clock stepped back since) is dropped, so it cannot push the real ones out.
    pub fn add(&mut self, summary: Summary, now: u64) {
        if summary.queries == 0 || summary.minute > now + 1 {
            return;
        }
        match self
            .minutes
            .iter_mut()
            .rev()
            .find(|kept| kept.minute == summary.minute)
        {
            Some(kept) => kept.merge(summary),
            None => {
                let at = self
                    .minutes
                    .iter()
                    .rposition(|kept| kept.minute < summary.minute)
                    .map_or(0, |at| at + 1);
                self.minutes.insert(at, summary);
            }
        }
        while self
            .minutes
            .front()
            .is_some_and(|first| first.minute + HISTORY_MINUTES <= now)
        {
            self.minutes.pop_front();
        }
        // What the clock stepped back from: nothing kept may be ahead of it.
        while self
            .minutes
            .back()
            .is_some_and(|last| last.minute > now + 1)
        {
            self.minutes.pop_back();
        }
    }

    /// Copies of the minutes from `since` on: taken under the lock, merged outside it.
    pub fn window(&self, since: u64) -> Vec<Summary> {
        self.minutes
            .iter()
            .filter(|summary| summary.minute >= since)
            .cloned()
            .collect()
    }
}

/// The window from minute `since` of `kept` minutes and the shards' `current` ones.
pub(super) fn stats(since: u64, mut window: Vec<Summary>, current: Vec<Summary>) -> Stats {
    for summary in current.into_iter().filter(|s| s.minute >= since) {
        match window.iter_mut().find(|kept| kept.minute == summary.minute) {
            Some(kept) => kept.merge(summary),
            None => window.push(summary),
        }
    }
    window.sort_unstable_by_key(|summary| summary.minute);
    Stats::of(since, window)
}

/// A top list's counts by key, summed over a window.
type Totals = HashMap<Box<[u8]>, u64, FxBuildHasher>;

/// A window of aggregates, as `/v1/querylog/stats` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The first minute of the window (minutes since the Unix epoch).
    pub since_minute: u64,
    pub queries: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// One point per minute that had queries, oldest first.
    pub series: Vec<Point>,
    pub top_clients: Vec<Top>,
    pub top_names: Vec<Top>,
    pub top_blocked: Vec<Top>,
}

/// A minute of the chart.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub minute: u64,
    pub queries: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A top list's entry.
#[derive(Debug, Clone, Serialize)]
pub struct Top {
    pub key: String,
    pub count: u64,
}

impl Stats {
    fn of(since: u64, window: Vec<Summary>) -> Self {
        let mut stats = Stats {
            since_minute: since,
            queries: 0,
            counts: Counts::default(),
            series: Vec::with_capacity(window.len()),
            top_clients: Vec::new(),
            top_names: Vec::new(),
            top_blocked: Vec::new(),
        };
        // Keyed tables: a day of minutes may hold ~14,000 keys per list.
        let mut clients: Totals = HashMap::default();
        let mut names: Totals = HashMap::default();
        let mut blocked: Totals = HashMap::default();
        for summary in window {
            stats.queries += summary.queries;
            stats.counts.add(&summary.counts);
            stats.series.push(Point {
                minute: summary.minute,
                queries: summary.queries,
                counts: summary.counts,
            });
            for (totals, top) in [
                (&mut clients, summary.clients),
                (&mut names, summary.names),
                (&mut blocked, summary.blocked_names),
            ] {
                for (key, count) in top {
                    *totals.entry(key).or_default() += count;
                }
            }
        }
        stats.top_clients = shown(clients.into_iter().collect(), |octets| address(octets));
        stats.top_names = shown(names.into_iter().collect(), |name| read_name(name));
        stats.top_blocked = shown(blocked.into_iter().collect(), |name| read_name(name));
        stats
    }
}

/// The address whose octets `octets` are.
fn address(octets: &[u8]) -> String {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets)
            .map(IpAddr::from)
            .map(|ip| ip.to_string()),
        _ => <[u8; 16]>::try_from(octets)
            .map(IpAddr::from)
            .map(|ip| ip.to_string()),
    }
    .unwrap_or_else(|_| "?".to_owned())
}

fn shown<K>(mut counted: Vec<(K, u64)>, key: impl Fn(&K) -> String) -> Vec<Top> {
    counted.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.1));
    counted
        .iter()
        .take(TOP_KEPT)
        .map(|(k, count)| Top {
            key: key(k),
            count: *count,
        })
        .collect()
}
