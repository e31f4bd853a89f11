//! Per-minute aggregates of the query log: what the console's dashboard draws.
//!
//! Each shard counts the minute it is in ([`Minute`]); when its clock moves to the next
//! minute, the finished one is folded into the [`History`] as a [`Summary`]: the counts,
//! and the [`TOP_KEPT`] busiest clients, names and blocked names of that minute.
//!
//! **Approximation, stated:** a minute counts at most [`TOP_TRACKED`] distinct keys per
//! table with the Space-Saving algorithm (a new key when the table is full takes the
//! place of the least counted, and inherits its count), so a top entry's count may be
//! high by at most the smallest count in its table; a window's top list merges the
//! minutes' top [`TOP_KEPT`], so a key that was never in a minute's top is missing
//! from the window's. Counts of queries, cache hits, blocks and failures are exact.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use rustc_hash::FxBuildHasher;
use serde::Serialize;

use super::{Answered, Source, is_error, read_name, write_name};

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
    clients: TopTable<IpAddr>,
    names: TopTable<Box<[u8]>>,
    blocked_names: TopTable<Box<[u8]>>,
    /// Reused for the name of the query being counted.
    scratch: Vec<u8>,
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

    pub fn count(&mut self, answered: &Answered<'_>, client: IpAddr) {
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
        self.clients.count_owned(client);
        write_name(&mut self.scratch, answered.name);
        self.names.count(&self.scratch);
        if answered.source.is_block() {
            self.counts.blocked += 1;
            self.blocked_names.count(&self.scratch);
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

/// A counting table of at most [`TOP_TRACKED`] keys (Space-Saving).
struct TopTable<K> {
    counts: HashMap<K, u64, FxBuildHasher>,
}

impl<K> Default for TopTable<K> {
    fn default() -> Self {
        Self {
            counts: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> TopTable<K> {
    fn count_owned(&mut self, key: K) {
        if let Some(count) = self.counts.get_mut(&key) {
            *count += 1;
        } else {
            self.insert(key);
        }
    }

    /// Adds a key not in the table: at once while there is room, else in place of the
    /// least counted, with its count plus one.
    fn insert(&mut self, key: K) {
        let mut count = 1;
        if self.counts.len() >= TOP_TRACKED {
            let least = self
                .counts
                .iter()
                .min_by_key(|(_, count)| **count)
                .map(|(key, count)| (key.clone(), *count));
            if let Some((least, least_count)) = least {
                self.counts.remove(&least);
                count += least_count;
            }
        }
        self.counts.insert(key, count);
    }

    fn top(&self) -> Vec<(K, u64)> {
        let mut top: Vec<(K, u64)> = self
            .counts
            .iter()
            .map(|(key, count)| (key.clone(), *count))
            .collect();
        top.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.1));
        top.truncate(TOP_KEPT);
        top
    }
}

impl TopTable<Box<[u8]>> {
    /// Counts a name, allocating only when it is new to the table.
    fn count(&mut self, name: &[u8]) {
        if let Some(count) = self.counts.get_mut(name) {
            *count += 1;
        } else {
            self.insert(name.into());
        }
    }
}

/// A finished (or, for a window's reader, current) minute.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    minute: u64,
    queries: u64,
    counts: Counts,
    clients: Vec<(IpAddr, u64)>,
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
    pub fn add(&mut self, summary: Summary) {
        if summary.queries == 0 {
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
        let newest = self.minutes.back().map_or(0, |last| last.minute);
        while self
            .minutes
            .front()
            .is_some_and(|first| first.minute + HISTORY_MINUTES <= newest)
        {
            self.minutes.pop_front();
        }
    }

    /// The window of `minutes` minutes that ends with minute `now`, the shards' current
    /// minutes (`current`) included.
    pub fn stats(&self, now: u64, minutes: u64, current: Vec<Summary>) -> Stats {
        let minutes = minutes.clamp(1, HISTORY_MINUTES);
        let since = now.saturating_sub(minutes - 1);
        let mut window: Vec<Summary> = self
            .minutes
            .iter()
            .filter(|summary| summary.minute >= since)
            .cloned()
            .collect();
        for summary in current.into_iter().filter(|s| s.minute >= since) {
            match window.iter_mut().find(|kept| kept.minute == summary.minute) {
                Some(kept) => kept.merge(summary),
                None => window.push(summary),
            }
        }
        window.sort_unstable_by_key(|summary| summary.minute);
        Stats::of(since, window)
    }
}

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
        let (mut clients, mut names, mut blocked) = (Vec::new(), Vec::new(), Vec::new());
        for summary in window {
            stats.queries += summary.queries;
            stats.counts.add(&summary.counts);
            stats.series.push(Point {
                minute: summary.minute,
                queries: summary.queries,
                counts: summary.counts,
            });
            merge_top(&mut clients, summary.clients);
            merge_top(&mut names, summary.names);
            merge_top(&mut blocked, summary.blocked_names);
        }
        stats.top_clients = shown(clients, |client| client.to_string());
        stats.top_names = shown(names, |name| read_name(name));
        stats.top_blocked = shown(blocked, |name| read_name(name));
        stats
    }
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
