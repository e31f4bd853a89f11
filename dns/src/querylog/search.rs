//! Searching the recent queries: filters, the cut a search sees, the live tail's cursor.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde::Serialize;

use super::{MAX_SEARCH_RESULTS, QueryLog, Record, Slot, lock};

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Newest first.
    pub records: Vec<Record>,
    /// Every record up to this number has been considered: a live tail asks `after`
    /// it next.
    pub cursor: u64,
}

/// What a search asks for; every field set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records after this sequence number (the live tail).
    pub after: Option<u64>,
    pub client: Option<IpAddr>,
    /// A part of the name, lowercase.
    pub name: Option<String>,
    pub qtype: Option<RecordType>,
    pub rcode: Option<ResponseCode>,
    /// `zone`, `cache`, ..., or a verdict (`block`, `answer`, `redirect`, `fail`).
    pub source: Option<String>,
    pub limit: usize,
}

impl QueryLog {
    /// The records that match `filter`, newest first, and the cursor a live tail goes on
    /// from.
    ///
    /// Without `after`: the newest `limit` matches. With `after`: the oldest `limit`
    /// matches after it, so a tail that falls behind catches up rather than skipping.
    /// Either way the search sees a cut: every record numbered below it and still kept,
    /// and nothing above it, so the cursor never passes a record a later search could
    /// still return.
    pub fn search(&self, filter: &Filter) -> Found {
        let limit = filter.limit.clamp(1, MAX_SEARCH_RESULTS);
        // With every shard locked, each number below `next_seq` is in its ring already
        // (a record takes its number and is pushed under its shard's lock).
        let cut = {
            let _all: Vec<_> = self.shards.iter().map(|shard| lock(shard)).collect();
            self.next_seq.load(Ordering::Relaxed)
        };
        let mut found = Vec::new();
        let mut scratch = Vec::with_capacity(256);
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let mut take = |slot: &Slot| {
                let matched = slot.matches(filter, &mut scratch);
                if matched {
                    found.push(slot.record());
                }
                matched
            };
            let mut taken = 0;
            match filter.after {
                // Oldest first from `after` on: the ring is in number order.
                Some(after) => {
                    let start = shard.ring.partition_point(|slot| slot.seq <= after);
                    for slot in shard.ring.range(start..) {
                        if taken == limit || slot.seq >= cut {
                            break;
                        }
                        taken += usize::from(take(slot));
                    }
                }
                None => {
                    for slot in shard.ring.iter().rev().filter(|slot| slot.seq < cut) {
                        if taken == limit {
                            break;
                        }
                        taken += usize::from(take(slot));
                    }
                }
            }
        }
        let cursor = if filter.after.is_some() {
            found.sort_unstable_by_key(|record| record.seq);
            found.truncate(limit);
            // A full page: go on after its newest; otherwise everything up to the cut
            // has been seen.
            match found.last() {
                Some(last) if found.len() == limit => last.seq,
                _ => cut - 1,
            }
        } else {
            cut - 1
        };
        found.sort_unstable_by_key(|record| std::cmp::Reverse(record.seq));
        found.truncate(limit);
        Found {
            records: found,
            cursor,
        }
    }
}
