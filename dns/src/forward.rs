//! Forwarding for names outside our zones: the cache first, then each upstream in
//! order (UDP retried over TCP when truncated, TCP, DoT or DoH), then, if every
//! upstream failed, a stale answer (RFC 8767), then SERVFAIL. A query is resolved
//! before it is answered: nothing is "filled in later".

mod address;
mod cache;
mod doh;
pub mod dot;
mod exchange;
mod route;
mod tls;
mod upstream;

use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::Record;

use crate::metrics::Metrics;
pub use address::{HttpsUpstream, UPSTREAM_FORMS, Upstream, UpstreamError};
pub(crate) use cache::{CacheKey, Lookup};
use route::{Routes, Target};
pub use tls::{UpstreamTls, UpstreamTlsError};

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
    /// Domains forwarded to upstreams of their own (`[[forward.zones]]`).
    pub zones: Vec<ForwardZone>,
}

/// A domain whose names go to upstreams of its own, with a cache of its own.
#[derive(Debug, Clone)]
pub struct ForwardZone {
    pub name: hickory_proto::rr::Name,
    pub upstreams: Vec<Upstream>,
    pub cache_entries: usize,
    pub serve_stale: Duration,
}

impl ForwardConfig {
    /// The TLS settings `upstreams` need: none unless one of them is encrypted.
    pub fn tls_for<'a>(
        mut upstreams: impl Iterator<Item = &'a Upstream>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Option<UpstreamTls>, UpstreamTlsError> {
        match upstreams.any(Upstream::encrypted) {
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

/// TTL given to a stale answer (RFC 8767 section 4 recommends 30 seconds).
const STALE_ANSWER_TTL: u32 = 30;

/// A forwarded answer, without the OPT record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub rcode: ResponseCode,
    /// Answered here (a private reverse zone), not by an upstream.
    pub authoritative: bool,
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
            authoritative: self.authoritative,
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
    /// Swapped whole on a config reload; queries in flight keep the routes they loaded.
    routes: arc_swap::ArcSwap<Routes>,
    metrics: std::sync::Arc<Metrics>,
}

impl Forwarder {
    pub fn new(config: &ForwardConfig, metrics: std::sync::Arc<Metrics>) -> Self {
        Self {
            routes: arc_swap::ArcSwap::from_pointee(Routes::new(config, &metrics, None)),
            metrics,
        }
    }

    /// Applies a reloaded config: new routes, upstreams and timeout at once; the caches
    /// of the default route and of zones still configured stay, with the new bounds.
    pub fn reconfigure(&self, config: &ForwardConfig) {
        let routes = Routes::new(config, &self.metrics, Some(&self.routes.load()));
        self.routes.store(std::sync::Arc::new(routes));
    }

    /// The cached answer to `query` while it is fresh, or a private reverse zone's:
    /// what the socket loops answer inline, without a task or the network.
    pub fn cached(&self, query: &Query) -> Option<Resolved> {
        let routes = self.routes.load();
        let route = match routes.select(query.name()) {
            Target::Forward(route) => route,
            Target::Local(zone) => return Some(route::local_answer(zone, query)),
        };
        match route.cache.get(&CacheKey::of(query), Instant::now()) {
            Lookup::Fresh(resolved) => {
                Metrics::bump(&self.metrics.cache_hits);
                Some(resolved)
            }
            Lookup::Stale(_) | Lookup::Miss => None,
        }
    }

    pub async fn resolve(&self, query: &Query) -> Result<Resolved, ForwardError> {
        let routes = self.routes.load_full();
        let route = match routes.select(query.name()) {
            Target::Forward(route) => route,
            Target::Local(zone) => return Ok(route::local_answer(zone, query)),
        };
        let key = CacheKey::of(query);
        let stale = match route.cache.get(&key, Instant::now()) {
            Lookup::Fresh(resolved) => {
                Metrics::bump(&self.metrics.cache_hits);
                return Ok(resolved);
            }
            Lookup::Stale(resolved) => Some(resolved),
            Lookup::Miss => None,
        };
        Metrics::bump(&self.metrics.cache_misses);
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
                    route.cache.put(key, &resolved, Instant::now());
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
