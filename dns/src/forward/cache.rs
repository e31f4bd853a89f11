//! The answer cache for forwarded names: bounded in entries, TTL-honouring for
//! positive and negative answers (RFC 2308), and able to hand back expired answers
//! for serve-stale (RFC 8767).
//!
//! **Bound:** at most `capacity` entries. When full, an insert first drops entries
//! past their stale window, then the sampled entry closest to expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};

use super::Resolved;

/// Longest time any answer is kept fresh, whatever its TTL says.
const MAX_POSITIVE_TTL: u32 = 86_400;
/// Longest time a negative answer is kept (RFC 2308 section 5 suggests 1 to 3 hours).
const MAX_NEGATIVE_TTL: u32 = 3 * 3600;
/// How many entries an insert into a full cache looks at to choose a victim.
const EVICTION_SAMPLE: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub name: LowerName,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

impl CacheKey {
    pub fn of(query: &Query) -> CacheKey {
        CacheKey {
            name: LowerName::from(query.name()),
            qtype: query.query_type(),
            qclass: query.query_class(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    resolved: Resolved,
    stored: Instant,
    ttl: Duration,
}

/// What the cache holds for a key.
pub enum Lookup {
    Fresh(Resolved),
    /// Expired, but within the stale window: usable if every upstream fails.
    Stale(Resolved),
    Miss,
}

#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
    /// Changed by a config reload, so read on each use.
    capacity: AtomicUsize,
    serve_stale_secs: AtomicU64,
}

impl Cache {
    pub fn new(capacity: usize, serve_stale: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: AtomicUsize::new(capacity),
            serve_stale_secs: AtomicU64::new(serve_stale.as_secs()),
        }
    }

    /// New limits; a smaller capacity takes effect as entries are inserted.
    pub fn reconfigure(&self, capacity: usize, serve_stale: Duration) {
        self.capacity.store(capacity, Ordering::Relaxed);
        self.serve_stale_secs
            .store(serve_stale.as_secs(), Ordering::Relaxed);
    }

    fn serve_stale(&self) -> Duration {
        Duration::from_secs(self.serve_stale_secs.load(Ordering::Relaxed))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &CacheKey, now: Instant) -> Lookup {
        let Ok(entries) = self.entries.lock() else {
            return Lookup::Miss;
        };
        let Some(entry) = entries.get(key) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        if age < entry.ttl {
            let elapsed = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
            Lookup::Fresh(entry.resolved.aged(elapsed))
        } else if age < entry.ttl + self.serve_stale() {
            Lookup::Stale(entry.resolved.clone())
        } else {
            Lookup::Miss
        }
    }

    /// Stores an upstream answer if it may be cached.
    pub fn put(&self, key: CacheKey, resolved: &Resolved, now: Instant) {
        let Some(ttl) = cache_ttl(resolved) else {
            return;
        };
        let capacity = self.capacity.load(Ordering::Relaxed);
        if capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        while entries.len() >= capacity && !entries.contains_key(&key) {
            self.evict(&mut entries, now);
        }
        entries.insert(
            key,
            Entry {
                resolved: resolved.clone(),
                stored: now,
                ttl: Duration::from_secs(u64::from(ttl)),
            },
        );
    }

    fn evict(&self, entries: &mut HashMap<CacheKey, Entry>, now: Instant) {
        let serve_stale = self.serve_stale();
        let dead: Vec<CacheKey> = entries
            .iter()
            .filter(|(_, entry)| {
                now.saturating_duration_since(entry.stored) >= entry.ttl + serve_stale
            })
            .take(EVICTION_SAMPLE)
            .map(|(key, _)| key.clone())
            .collect();
        if !dead.is_empty() {
            for key in dead {
                entries.remove(&key);
            }
            return;
        }
        let victim = entries
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, entry)| entry.stored + entry.ttl)
            .map(|(key, _)| key.clone());
        if let Some(key) = victim {
            entries.remove(&key);
        }
    }
}

/// How long an answer stays fresh: the smallest TTL of its answer records, or for a
/// negative answer the lesser of the SOA's TTL and MINIMUM. `None`: do not cache
/// (failures, TTL 0, negative answers without an SOA).
fn cache_ttl(resolved: &Resolved) -> Option<u32> {
    let ttl = match resolved.rcode {
        ResponseCode::NoError if !resolved.answers.is_empty() => resolved
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()?
            .min(MAX_POSITIVE_TTL),
        ResponseCode::NoError | ResponseCode::NXDomain => {
            negative_ttl(&resolved.authorities)?.min(MAX_NEGATIVE_TTL)
        }
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

fn negative_ttl(authorities: &[Record]) -> Option<u32> {
    authorities.iter().find_map(|record| match &record.data {
        RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    fn key(name: &str) -> CacheKey {
        CacheKey {
            name: LowerName::from(Name::from_ascii(name).unwrap()),
            qtype: RecordType::A,
            qclass: DNSClass::IN,
        }
    }

    fn positive(ttl: u32) -> Resolved {
        let name = Name::from_ascii("www.example.com.").unwrap();
        Resolved {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name,
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            ..Resolved::default()
        }
    }

    fn nxdomain(soa_ttl: u32, minimum: u32) -> Resolved {
        let origin = Name::from_ascii("example.com.").unwrap();
        let soa = SOA::new(
            origin.clone(),
            origin.clone(),
            1,
            7200,
            3600,
            1209600,
            minimum,
        );
        Resolved {
            rcode: ResponseCode::NXDomain,
            authorities: vec![Record::from_rdata(origin, soa_ttl, RData::SOA(soa))],
            ..Resolved::default()
        }
    }

    #[test]
    fn fresh_answers_age_and_expire_into_stale_then_miss() {
        let cache = Cache::new(10, Duration::from_secs(100));
        let start = Instant::now();
        cache.put(key("www.example.com."), &positive(60), start);
        let Lookup::Fresh(aged) =
            cache.get(&key("WWW.example.com."), start + Duration::from_secs(20))
        else {
            panic!("expected a fresh hit");
        };
        assert_eq!(aged.answers[0].ttl, 40);
        assert!(matches!(
            cache.get(&key("www.example.com."), start + Duration::from_secs(61)),
            Lookup::Stale(_)
        ));
        assert!(matches!(
            cache.get(&key("www.example.com."), start + Duration::from_secs(161)),
            Lookup::Miss
        ));
    }

    #[test]
    fn negative_answers_live_for_the_lesser_of_soa_ttl_and_minimum() {
        let cache = Cache::new(10, Duration::ZERO);
        let start = Instant::now();
        cache.put(key("nope.example.com."), &nxdomain(3600, 30), start);
        assert!(matches!(
            cache.get(&key("nope.example.com."), start + Duration::from_secs(29)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            cache.get(&key("nope.example.com."), start + Duration::from_secs(31)),
            Lookup::Miss
        ));
    }

    #[test]
    fn failures_and_zero_ttls_are_not_cached() {
        let cache = Cache::new(10, Duration::from_secs(100));
        let now = Instant::now();
        cache.put(
            key("a.example.com."),
            &Resolved {
                rcode: ResponseCode::ServFail,
                ..Resolved::default()
            },
            now,
        );
        cache.put(key("b.example.com."), &positive(0), now);
        cache.put(
            key("c.example.com."),
            &Resolved {
                rcode: ResponseCode::NXDomain,
                ..Resolved::default()
            },
            now,
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_never_exceeds_its_capacity() {
        let cache = Cache::new(3, Duration::ZERO);
        let now = Instant::now();
        for i in 0..10 {
            cache.put(
                key(&format!("host{i}.example.com.")),
                &positive(60 + i),
                now,
            );
        }
        assert_eq!(cache.len(), 3);
        assert!(
            matches!(cache.get(&key("host9.example.com."), now), Lookup::Fresh(_)),
            "the newest entry is kept"
        );
    }

    #[test]
    fn a_smaller_capacity_from_a_reload_applies_on_the_next_insert() {
        let cache = Cache::new(10, Duration::ZERO);
        let now = Instant::now();
        for i in 0..10 {
            cache.put(key(&format!("host{i}.example.com.")), &positive(60), now);
        }
        cache.reconfigure(4, Duration::ZERO);
        cache.put(key("late.example.com."), &positive(60), now);
        assert_eq!(cache.len(), 4);
    }
}
