//! Forwarding for names outside our zones: the cache first, then each upstream in
//! order (UDP retried over TCP when truncated, TCP, DoT or DoH), then, if every
//! upstream failed, a stale answer (RFC 8767), then SERVFAIL. A query is resolved
//! before it is answered: nothing is "filled in later".

mod address;
mod cache;
mod doh;
pub mod dot;
mod exchange;
mod tls;
mod upstream;

use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::Record;

use crate::metrics::Metrics;
pub use address::{HttpsUpstream, UPSTREAM_FORMS, Upstream, UpstreamError};
pub(crate) use cache::{Cache, CacheKey, Lookup};
pub use tls::{UpstreamTls, UpstreamTlsError};
use upstream::Link;

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub upstreams: Vec<Upstream>,
    /// Per-upstream wait before trying the next one.
    pub timeout: Duration,
    /// Answer cache capacity in entries.
    pub cache_entries: usize,
    /// How long past expiry an answer may be served when every upstream fails.
    pub serve_stale: Duration,
    /// What DoT and DoH upstreams are trusted by; needed when one is configured.
    pub tls: Option<UpstreamTls>,
}

impl ForwardConfig {
    /// The TLS settings `upstreams` need: none unless one of them is encrypted.
    pub fn tls_for(
        upstreams: &[Upstream],
        ca_file: Option<&std::path::Path>,
    ) -> Result<Option<UpstreamTls>, UpstreamTlsError> {
        match upstreams.iter().any(Upstream::encrypted) {
            true => UpstreamTls::new(ca_file).map(Some),
            false => Ok(None),
        }
    }
}

/// The `nameserver` lines of /etc/resolv.conf: the default upstreams of both daemons.
pub fn system_nameservers() -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .map(|rest| rest.trim().to_string())
        .filter(|addr| addr.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// The upstreams, how each is reached, and how long to wait for each.
struct Route {
    upstreams: Vec<(Upstream, Link)>,
    timeout: Duration,
}

impl Route {
    fn of(config: &ForwardConfig, metrics: &std::sync::Arc<Metrics>) -> Self {
        let upstreams = config
            .upstreams
            .iter()
            .map(|upstream| {
                let link = Link::new(upstream, config.tls.as_ref(), metrics);
                (upstream.clone(), link)
            })
            .collect();
        Self {
            upstreams,
            timeout: config.timeout,
        }
    }
}

/// TTL given to a stale answer (RFC 8767 section 4 recommends 30 seconds).
const STALE_ANSWER_TTL: u32 = 30;

/// A forwarded answer, without the OPT record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Resolved {
    /// A copy whose TTLs are lowered by `elapsed` seconds.
    fn aged(&self, elapsed: u32) -> Self {
        self.with_ttl(|ttl| ttl.saturating_sub(elapsed))
    }

    fn with_ttl(&self, ttl: impl Fn(u32) -> u32) -> Self {
        let adjust = |records: &[Record]| {
            records
                .iter()
                .map(|record| {
                    let mut record = record.clone();
                    record.ttl = ttl(record.ttl);
                    record
                })
                .collect()
        };
        Self {
            rcode: self.rcode,
            answers: adjust(&self.answers),
            authorities: adjust(&self.authorities),
            additionals: adjust(&self.additionals),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream is configured (set forward.upstreams)")]
    NoUpstreams,
    #[error("every upstream failed; last error: {0}")]
    AllFailed(String),
}

pub struct Forwarder {
    /// Swapped whole on a config reload; queries in flight keep the set they loaded.
    route: arc_swap::ArcSwap<Route>,
    cache: Cache,
    metrics: std::sync::Arc<Metrics>,
}

impl Forwarder {
    pub fn new(config: &ForwardConfig, metrics: std::sync::Arc<Metrics>) -> Self {
        Self {
            route: arc_swap::ArcSwap::from_pointee(Route::of(config, &metrics)),
            cache: Cache::new(config.cache_entries, config.serve_stale),
            metrics,
        }
    }

    /// Applies a reloaded config: new upstreams and timeout at once, cache settings
    /// for what is cached from now on. The cached answers stay.
    pub fn reconfigure(&self, config: &ForwardConfig) {
        self.route
            .store(std::sync::Arc::new(Route::of(config, &self.metrics)));
        self.cache
            .reconfigure(config.cache_entries, config.serve_stale);
    }

    /// The cached answer to `query` while it is fresh: what the socket loops answer
    /// inline, without a task or the network.
    pub fn cached(&self, query: &Query) -> Option<Resolved> {
        match self.cache.get(&CacheKey::of(query), Instant::now()) {
            Lookup::Fresh(resolved) => {
                Metrics::bump(&self.metrics.cache_hits);
                Some(resolved)
            }
            Lookup::Stale(_) | Lookup::Miss => None,
        }
    }

    pub async fn resolve(&self, query: &Query) -> Result<Resolved, ForwardError> {
        let key = CacheKey::of(query);
        let stale = match self.cache.get(&key, Instant::now()) {
            Lookup::Fresh(resolved) => {
                Metrics::bump(&self.metrics.cache_hits);
                return Ok(resolved);
            }
            Lookup::Stale(resolved) => Some(resolved),
            Lookup::Miss => None,
        };
        Metrics::bump(&self.metrics.cache_misses);
        let route = self.route.load();
        if route.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let mut last_error = String::new();
        for (upstream, link) in &route.upstreams {
            match link.exchange(query, route.timeout).await {
                Ok(resolved)
                    if matches!(
                        resolved.rcode,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    self.cache.put(key, &resolved, Instant::now());
                    return Ok(resolved);
                }
                Ok(resolved) => last_error = format!("{upstream} answered {}", resolved.rcode),
                Err(error) => last_error = format!("{upstream}: {error}"),
            }
            Metrics::bump(&self.metrics.upstream_failures);
        }
        if let Some(stale) = stale {
            Metrics::bump(&self.metrics.cache_stale_served);
            return Ok(stale.with_ttl(|_| STALE_ANSWER_TTL));
        }
        Err(ForwardError::AllFailed(last_error))
    }
}
