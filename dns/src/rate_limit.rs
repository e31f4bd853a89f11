//! Response rate limiting over UDP (RRL, as in Knot and BIND): a source sending more
//! than `responses_per_second` queries in one second gets the rest dropped, but for
//! every `slip`-th one, which goes out truncated (TC, no records) so that a real client
//! behind the prefix retries over TCP, which a spoofed source cannot. Sources are
//! counted by prefix (IPv4 /24, IPv6 /56): the unit a reflection attack's victim
//! shows up as. TCP is never limited: its source is proven by the handshake.
//!
//! The counts live in a fixed table of [`RATE_LIMIT_SLOTS`] atomic words, each holding
//! a one-second window's number and count; a prefix picks its slot by a hash keyed at
//! start (random keys), so an attacker cannot aim at a victim's slot. Two prefixes sharing a slot
//! share its allowance: the table never grows, and is about right for the sources one
//! edge box sees. A window is fixed, not sliding: a burst across a second's boundary
//! may get twice the rate.

use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Slots of the table (8 bytes each: 512 KiB).
pub const RATE_LIMIT_SLOTS: usize = 1 << 16;

/// The operator's settings (`[dns.rate_limit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Answers per second to one prefix before limiting starts.
    pub responses_per_second: u32,
    /// Every `slip`-th limited answer goes out truncated; 0: all dropped, 1: all
    /// truncated.
    pub slip: u32,
    /// Clients that may recurse (`dns.allow_recursion`) are never limited.
    pub exempt_recursion: bool,
}

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Send the question back with TC set and no records.
    Slip,
    Drop,
}

/// The table and the settings it was built for.
pub struct RateLimiter {
    settings: RateLimit,
    /// Per slot: the window (seconds since `epoch`) in the high 32 bits, the answers
    /// counted in it in the low 32.
    slots: Box<[AtomicU64]>,
    epoch: Instant,
    /// The keys of the slot hash (multiply-shift, `multiplier` odd), drawn at start.
    key: u64,
    multiplier: u64,
}

impl RateLimiter {
    pub fn new(settings: RateLimit) -> RateLimiter {
        // Two random words, from the standard library's per-process random keys.
        let random = std::collections::hash_map::RandomState::new();
        RateLimiter::with_keys(settings, random.hash_one(1u8), random.hash_one(2u8))
    }

    fn with_keys(settings: RateLimit, key: u64, multiplier: u64) -> RateLimiter {
        RateLimiter {
            settings,
            slots: (0..RATE_LIMIT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            key,
            multiplier: multiplier | 1,
        }
    }

    /// The slot of a prefix: multiply-shift over the keyed prefix, its top 16 bits.
    fn slot_index(&self, prefix: u128) -> usize {
        let folded = (prefix >> 64) as u64 ^ prefix as u64 ^ self.key;
        (folded.wrapping_mul(self.multiplier) >> (64 - RATE_LIMIT_SLOTS.trailing_zeros())) as usize
    }

    pub fn settings(&self) -> RateLimit {
        self.settings
    }

    /// Counts one answer to `client` at `now` and says what to do with it.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        let window =
            u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX);
        let Some(slot) = self.slots.get(self.slot_index(prefix(client))) else {
            return Verdict::Answer;
        };
        let mut current = slot.load(Ordering::Relaxed);
        let count = loop {
            let (seen, count) = ((current >> 32) as u32, current as u32);
            let count = if seen == window {
                count.saturating_add(1)
            } else {
                1
            };
            let next = (u64::from(window) << 32) | u64::from(count);
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break count,
                Err(actual) => current = actual,
            }
        };
        self.verdict(count)
    }

    fn verdict(&self, count: u32) -> Verdict {
        let RateLimit {
            responses_per_second: rate,
            slip,
            ..
        } = self.settings;
        if count <= rate {
            Verdict::Answer
        } else if slip != 0 && (count - rate).is_multiple_of(slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The prefix a source is counted under: its IPv4 /24 or IPv6 /56, as a number.
fn prefix(client: IpAddr) -> u128 {
    match client {
        IpAddr::V4(v4) => u128::from(v4.to_bits() & 0xffff_ff00),
        IpAddr::V6(v6) => {
            // An IPv4-mapped address is the IPv4 source it maps.
            match v6.to_ipv4_mapped() {
                Some(v4) => u128::from(v4.to_bits() & 0xffff_ff00),
                None => (v6.to_bits() >> 72) << 72 | 1 << 64,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Fixed keys, under which the prefixes these tests use have slots of their own.
    fn limiter(rate: u32, slip: u32) -> RateLimiter {
        let settings = RateLimit {
            responses_per_second: rate,
            slip,
            exempt_recursion: true,
        };
        RateLimiter::with_keys(settings, 0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9)
    }

    #[test]
    fn the_test_prefixes_have_slots_of_their_own() {
        let limiter = limiter(1, 1);
        let mut slots: Vec<usize> = [
            "192.0.2.1",
            "198.51.100.1",
            "2001:db8:0:1::1",
            "2001:db8:1::1",
        ]
        .iter()
        .map(|ip| limiter.slot_index(prefix(ip.parse().unwrap())))
        .collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 4);
    }

    #[test]
    fn past_the_rate_every_slip_th_answer_is_truncated_and_the_rest_dropped() {
        let limiter = limiter(3, 2);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        let verdicts: Vec<Verdict> = (0..8).map(|_| limiter.check(client, now)).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Answer, Answer, Answer, Drop, Slip, Drop, Slip, Drop]
        );
        // The next second starts afresh.
        assert_eq!(limiter.check(client, now + Duration::from_secs(1)), Answer);
    }

    #[test]
    fn a_prefix_shares_its_allowance_and_other_prefixes_have_their_own() {
        let limiter = limiter(2, 0);
        let now = Instant::now();
        let check = |ip: &str| limiter.check(ip.parse().unwrap(), now);
        assert_eq!(check("192.0.2.1"), Verdict::Answer);
        assert_eq!(check("192.0.2.200"), Verdict::Answer);
        // Same /24: over; slip 0 drops everything.
        assert_eq!(check("192.0.2.9"), Verdict::Drop);
        assert_eq!(check("::ffff:192.0.2.9"), Verdict::Drop);
        assert_eq!(check("198.51.100.1"), Verdict::Answer);
        // IPv6: a /56.
        assert_eq!(check("2001:db8:0:1::1"), Verdict::Answer);
        assert_eq!(check("2001:db8:0:ff::2"), Verdict::Answer);
        assert_eq!(check("2001:db8:0:aa::3"), Verdict::Drop);
        assert_eq!(check("2001:db8:1::1"), Verdict::Answer);
    }

    #[test]
    fn slip_one_truncates_every_limited_answer() {
        let limiter = limiter(1, 1);
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(limiter.check(client, now), Verdict::Answer);
        for _ in 0..5 {
            assert_eq!(limiter.check(client, now), Verdict::Slip);
        }
    }
}
