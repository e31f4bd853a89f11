//! Counters for `/metrics`, in the Prometheus text format.
//!
//! Plain atomics, bumped on the query path with relaxed ordering: a scrape sees each
//! counter at some recent value, which is all Prometheus asks. The per-plugin
//! counters live in the plugin host; [`render_plugins`] writes them.

mod plugin_calls;

pub use plugin_calls::render_plugins;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use outpost_core::answer::Transport;

/// Upper bounds, in seconds, of the answer latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.05, 0.25, 1.0,
];

/// The response codes we count separately; anything else is "other".
const RCODES: [(ResponseCode, &str); 6] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::NotImp, "NOTIMP"),
];

/// Where a transport's counters are in `Metrics::queries`.
fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
        Transport::Https => 3,
        Transport::Quic => 4,
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// `[transport][rcode index]`, the last index being "other".
    queries: [[AtomicU64; RCODES.len() + 1]; Transport::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    /// Packets dropped before an answer: responses sent to us, unparseable headers,
    /// and queries shed because the in-flight limit was reached.
    pub dropped: AtomicU64,
    pub truncated: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_stale_served: AtomicU64,
    pub upstream_failures: AtomicU64,
    /// DoT and DoH upstream connections opened (each then carries many queries).
    pub upstream_connections: AtomicU64,
    pub tcp_connections_refused: AtomicU64,
    /// Queries a policy plugin blocked (NXDOMAIN, REFUSED or a sinkhole address).
    pub policy_blocked: AtomicU64,
    /// Queries a policy plugin answered with its own records.
    pub policy_answered: AtomicU64,
    /// Queries a policy plugin redirected to another name.
    pub policy_redirected: AtomicU64,
    /// Queries answered SERVFAIL because a fail-closed policy plugin failed.
    pub policy_failed: AtomicU64,
    /// UDP answers response rate limiting dropped.
    pub rate_limit_dropped: AtomicU64,
    /// UDP answers response rate limiting sent truncated instead (slip).
    pub rate_limit_slipped: AtomicU64,
    /// Queries whose server cookie was valid (the source is proven).
    pub cookie_valid: AtomicU64,
    /// Queries whose server cookie was not ours, stale, or made with a retired secret.
    pub cookie_invalid: AtomicU64,
    /// BADCOOKIE answers sent instead of a rate-limited answer.
    pub cookie_badcookie_sent: AtomicU64,
    /// Zone transfers served whole (AXFR, and IXFR the journal could not answer).
    pub transfers_axfr: AtomicU64,
    /// IXFR queries answered (incrementally, or with the SOA alone when current).
    pub transfers_ixfr: AtomicU64,
    /// Zone transfer queries refused (not allowed, bad TSIG, not our zone).
    pub transfers_refused: AtomicU64,
    /// NOTIFYs the secondaries answered.
    pub notify_sent: AtomicU64,
    /// NOTIFYs not answered after every attempt, or not sent (too many out).
    pub notify_failed: AtomicU64,
    /// NOTIFYs accepted from a followed zone's primary.
    pub notify_received: AtomicU64,
    /// NOTIFYs refused: not a zone we follow, not from its primary, or badly signed.
    pub notify_refused: AtomicU64,
}

impl Metrics {
    /// Counts one answered query.
    pub fn record_answer(&self, transport: Transport, rcode: ResponseCode, elapsed: Duration) {
        let rcode_index = RCODES
            .iter()
            .position(|(code, _)| *code == rcode)
            .unwrap_or(RCODES.len());
        self.queries[transport_index(transport)][rcode_index].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every counter in the Prometheus text exposition format.
    pub fn render(&self, out: &mut String) {
        self.render_queries(out);
        self.render_latency(out);
        for (name, help, counter) in self
            .counters()
            .into_iter()
            .chain(self.cookie_counters())
            .chain(self.transfer_counters())
        {
            write_sample(out, name, "counter", help, counter.load(Ordering::Relaxed));
        }
    }

    /// Queries answered, by transport and response code.
    fn render_queries(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP outpost_dns_queries_total DNS queries answered, by transport and response code."
        );
        let _ = writeln!(out, "# TYPE outpost_dns_queries_total counter");
        for transport in Transport::ALL {
            let names = RCODES.iter().map(|(_, name)| *name).chain(["OTHER"]);
            for (index, rcode) in names.enumerate() {
                let value = self.queries[transport_index(transport)][index].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "outpost_dns_queries_total{{protocol=\"{}\",rcode=\"{rcode}\"}} {value}",
                    transport.as_str()
                );
            }
        }
    }

    /// The answer-time histogram.
    fn render_latency(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP outpost_dns_answer_seconds Time from a decoded query to an encoded answer."
        );
        let _ = writeln!(out, "# TYPE outpost_dns_answer_seconds histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "outpost_dns_answer_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "outpost_dns_answer_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "outpost_dns_answer_seconds_sum {sum}");
        let _ = writeln!(out, "outpost_dns_answer_seconds_count {count}");
    }

    /// The plain counters: name, help and value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 14] {
        [
            (
                "outpost_dns_dropped_total",
                "Packets dropped without an answer.",
                &self.dropped,
            ),
            (
                "outpost_dns_truncated_total",
                "UDP answers truncated (TC set).",
                &self.truncated,
            ),
            (
                "outpost_cache_hits_total",
                "Forwarded queries answered from the cache.",
                &self.cache_hits,
            ),
            (
                "outpost_cache_misses_total",
                "Forwarded queries sent upstream.",
                &self.cache_misses,
            ),
            (
                "outpost_cache_stale_served_total",
                "Expired answers served because every upstream failed (RFC 8767).",
                &self.cache_stale_served,
            ),
            (
                "outpost_upstream_failures_total",
                "Upstream exchanges that failed or timed out.",
                &self.upstream_failures,
            ),
            (
                "outpost_upstream_connections_total",
                "DoT and DoH upstream connections opened; each carries many queries.",
                &self.upstream_connections,
            ),
            (
                "outpost_dns_tcp_refused_total",
                "TCP, DoT and DoH connections refused at the connection limit, overall or per source.",
                &self.tcp_connections_refused,
            ),
            (
                "outpost_dns_rate_limit_dropped_total",
                "UDP answers response rate limiting dropped.",
                &self.rate_limit_dropped,
            ),
            (
                "outpost_dns_rate_limit_slipped_total",
                "UDP answers response rate limiting sent truncated instead (slip).",
                &self.rate_limit_slipped,
            ),
            (
                "outpost_dns_policy_blocked_total",
                "Queries a policy plugin blocked (NXDOMAIN, REFUSED or a sinkhole address).",
                &self.policy_blocked,
            ),
            (
                "outpost_dns_policy_answered_total",
                "Queries a policy plugin answered with its own records.",
                &self.policy_answered,
            ),
            (
                "outpost_dns_policy_redirected_total",
                "Queries a policy plugin redirected to another name.",
                &self.policy_redirected,
            ),
            (
                "outpost_dns_policy_failed_total",
                "Queries answered SERVFAIL because a fail-closed policy plugin failed.",
                &self.policy_failed,
            ),
        ]
    }
}

impl Metrics {
    /// The DNS cookie counters: name, help and value.
    fn cookie_counters(&self) -> [(&'static str, &'static str, &AtomicU64); 3] {
        [
            (
                "outpost_dns_cookies_valid_total",
                "Queries whose DNS server cookie was valid (exempt from rate limiting).",
                &self.cookie_valid,
            ),
            (
                "outpost_dns_cookies_invalid_total",
                "Queries whose DNS server cookie was not valid (not ours, stale or from a retired secret).",
                &self.cookie_invalid,
            ),
            (
                "outpost_dns_cookies_badcookie_total",
                "BADCOOKIE answers sent to rate-limited queries that carried a client cookie.",
                &self.cookie_badcookie_sent,
            ),
        ]
    }
}

impl Metrics {
    /// The zone transfer and NOTIFY counters: name, help and value.
    fn transfer_counters(&self) -> [(&'static str, &'static str, &AtomicU64); 7] {
        [
            (
                "outpost_transfers_axfr_total",
                "Zone transfers served whole (AXFR, or IXFR beyond the journal).",
                &self.transfers_axfr,
            ),
            (
                "outpost_transfers_ixfr_total",
                "IXFR queries answered.",
                &self.transfers_ixfr,
            ),
            (
                "outpost_transfers_refused_total",
                "Zone transfer queries refused (not allowed, bad TSIG, not our zone).",
                &self.transfers_refused,
            ),
            (
                "outpost_notify_sent_total",
                "NOTIFYs sent and answered.",
                &self.notify_sent,
            ),
            (
                "outpost_notify_failed_total",
                "NOTIFYs unanswered after every attempt, or not sent.",
                &self.notify_failed,
            ),
            (
                "outpost_notify_received_total",
                "NOTIFYs accepted from a followed zone's primary.",
                &self.notify_received,
            ),
            (
                "outpost_notify_refused_total",
                "NOTIFYs refused: not a zone we follow, not from its primary, or badly signed.",
                &self.notify_refused,
            ),
        ]
    }
}

/// Writes one metric with a single sample, with its HELP and TYPE lines, in the
/// Prometheus text format. `kind` is `counter` or `gauge`.
pub fn write_sample(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    write_header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Writes the HELP and TYPE lines of a metric whose samples follow. `kind` is
/// `counter`, `gauge` or `histogram`.
pub fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one labelled sample: `name{label="value",...} value`, label values
/// escaped as the text format requires.
pub fn write_labelled(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, text)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"");
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}
