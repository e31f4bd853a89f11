//! `[dns.rate_limit]`: response rate limiting over UDP, read and checked.

use outpost_dns::rate_limit::RateLimit;
use serde::Deserialize;

use super::ConfigError;

/// `[dns.rate_limit]`: response rate limiting over UDP, per IPv4 /24 or IPv6 /56.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Answers per second to one prefix before limiting (default 20).
    pub responses_per_second: Option<u32>,
    /// Every `slip`-th limited answer goes out truncated (default 2; 0 drops them all).
    pub slip: Option<u32>,
    /// Clients in `dns.allow_recursion` are never limited (default true).
    pub exempt_recursion: Option<bool>,
}

/// Most answers per second `dns.rate_limit.responses_per_second` may allow a prefix.
const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Largest `dns.rate_limit.slip` (as BIND's).
const MAX_SLIP: u32 = 10;

/// The `[dns.rate_limit]` table: a rate of 1 to [`MAX_RATE_LIMIT`] (20 by default), a
/// slip of 0 to [`MAX_SLIP`] (2 by default), recursing clients exempt by default.
pub(super) fn resolve_rate_limit(raw: RawRateLimit) -> Result<RateLimit, ConfigError> {
    let ranged = |key, value: Option<u32>, range: std::ops::RangeInclusive<u32>, default| {
        let value = value.unwrap_or(default);
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                key,
                value: value.to_string(),
                problem: format!("is out of range ({} to {})", range.start(), range.end()),
            })
        }
    };
    Ok(RateLimit {
        responses_per_second: ranged(
            "dns.rate_limit.responses_per_second",
            raw.responses_per_second,
            1..=MAX_RATE_LIMIT,
            20,
        )?,
        slip: ranged("dns.rate_limit.slip", raw.slip, 0..=MAX_SLIP, 2)?,
        exempt_recursion: raw.exempt_recursion.unwrap_or(true),
    })
}
