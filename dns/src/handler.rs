//! The query path, hop by hop: decode and clean → who may recurse → the DNS cookie
//! (`check_cookie`: a fresh server cookie for the reply; a valid one proves the source)
//! → response rate limiting over UDP (a proven source is exempt; an unproven one with a
//! client cookie gets BADCOOKIE instead of a drop or slip) → the query-policy
//! plugins ([`policy`]: block, answer, redirect, SERVFAIL on a fail-closed failure,
//! or continue) → answer from our zones → or, for clients allowed to recurse, the
//! forwarder with its cache → encode.

#[cfg(test)]
mod cookie_tests;
pub(crate) mod policy;
mod signed;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use ipnet::IpNet;
use outpost_core::answer::ZoneSet;
use outpost_core::state::CookieSecrets;
use outpost_plugin_host::{self as plugins, PolicyChain};

use crate::cookie::server_cookie;
use crate::forward::{ForwardConfig, ForwardError, Forwarder, Resolved};
use crate::message::{self, Decoded, Outcome, Question};
use crate::metrics::Metrics;
use crate::querylog::{self, Answered, QueryLog, Source};
use crate::rate_limit::{RateLimit, RateLimiter, Verdict};
use crate::transfer::{Outgoing, Transfers};
use outpost_core::answer::Transport;
use policy::{Applied, Redirect};

/// Everything a query needs, shared by every socket task.
pub struct QueryHandler {
    zones: Arc<ArcSwap<ZoneSet>>,
    forwarder: Arc<Forwarder>,
    /// Who may recurse; swapped whole on a config reload.
    recursion_networks: ArcSwap<Vec<IpNet>>,
    metrics: Arc<Metrics>,
    /// The query-policy plugins, swapped whole when the plugin definitions change;
    /// empty (and then skipped at the cost of one atomic load) without plugins.
    policies: ArcSwap<PolicyChain>,
    /// Response rate limiting over UDP; `None` (one atomic load) when off.
    rate_limit: ArcSwapOption<RateLimiter>,
    /// ANY over TCP gets every RRset of the name (over UDP, always one: RFC 8482).
    full_any_over_tcp: AtomicBool,
    /// The cluster's DNS cookie secrets, swapped by the store's publish step; empty (cookies
    /// ignored) until there are some, and always on a Lite client.
    cookie_secrets: Arc<ArcSwapOption<CookieSecrets>>,
    /// Zone transfers out; `None` (every transfer REFUSED) on a Lite client.
    transfers: Option<Arc<Transfers>>,
    /// Where answered queries are recorded; `None` when this daemon keeps no log.
    query_log: Option<Arc<QueryLog>>,
}

/// What a query's DNS cookie proves about its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// No cookie, or no secrets to check one with.
    None,
    /// A client cookie without a valid server cookie: the reply carries a fresh one.
    Unproven,
    /// A valid server cookie: the source is not spoofed (RFC 7873 section 5.2.4).
    Proven,
}

/// What to do with a packet.
pub enum Handled {
    /// Send the reply [`QueryHandler::handle`] wrote into the caller's buffer.
    Reply,
    /// The answer needs the network: run [`QueryHandler::forward`] off the socket
    /// loop.
    Forward(ForwardRequest),
    Drop,
    /// A zone transfer the client may have: send its messages in order (TCP and TLS
    /// only).
    Transfer(Box<Outgoing>),
}

/// Where an answer goes: who asked, the transport it is counted under, the most it may
/// take, and when its query arrived.
#[derive(Clone, Copy)]
struct Hop {
    client: IpAddr,
    transport: Transport,
    limit: usize,
    started: Instant,
}

/// A question to resolve through the forwarder.
#[derive(Debug)]
pub struct ForwardRequest {
    pub question: Question,
    /// Who asked, for the query log.
    client: IpAddr,
    /// Set when a policy plugin redirected the query: the forwarder resolves the
    /// target, and the answer starts with the CNAME to it.
    redirect: Option<Box<Redirect>>,
}

impl ForwardRequest {
    /// What the upstream is asked: the question, or a redirect's target.
    fn upstream_query(&self) -> Cow<'_, Query> {
        match &self.redirect {
            None => Cow::Borrowed(&self.question.query),
            Some(redirect) => {
                let mut query = self.question.query.clone();
                query.set_name(redirect.target.clone());
                Cow::Owned(query)
            }
        }
    }
}

/// The answer to a forwarded question: the upstream's sections (behind a redirect's
/// CNAME), or SERVFAIL when every upstream failed.
fn forwarded(
    resolved: Result<Resolved, ForwardError>,
    redirect: Option<Box<Redirect>>,
) -> Outcome<'static> {
    match resolved {
        Ok(resolved) => Outcome {
            rcode: resolved.rcode,
            authoritative: resolved.authoritative,
            recursion_available: true,
            answers: redirect
                .map(|redirect| redirect.cname)
                .into_iter()
                .chain(resolved.answers)
                .map(Cow::Owned)
                .collect(),
            authorities: resolved.authorities.into_iter().map(Cow::Owned).collect(),
            additionals: resolved.additionals.into_iter().map(Cow::Owned).collect(),
        },
        Err(_) => Outcome {
            recursion_available: true,
            ..Outcome::bare(ResponseCode::ServFail)
        },
    }
}

/// The query log's source of an answer behind a plugin's redirect.
fn redirected(redirect: Option<&Redirect>) -> Option<Source> {
    redirect.map(|redirect| Source::Plugin {
        plugin: Arc::clone(&redirect.plugin),
        verdict: querylog::Verdict::Redirect,
    })
}

/// RFC 8482: an ANY question gets one of the name's RRsets, not all of them, so our
/// zones never amplify a spoofed ANY; the first (lowest type) is the one kept. Over
/// TCP, every RRset when the operator asked for it (`dns.full_any_over_tcp`).
fn minimal_any(answers: &mut Vec<Cow<'_, Record>>) {
    let Some(first) = answers.first() else {
        return;
    };
    let (name, rtype) = (first.name.clone(), first.record_type());
    answers.retain(|record| record.record_type() == rtype && record.name == name);
}

impl QueryHandler {
    pub fn new(
        zones: Arc<ArcSwap<ZoneSet>>,
        forwarder: Arc<Forwarder>,
        recursion_networks: Vec<IpNet>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            zones,
            forwarder,
            recursion_networks: ArcSwap::from_pointee(recursion_networks),
            metrics,
            policies: ArcSwap::from_pointee(PolicyChain::default()),
            rate_limit: ArcSwapOption::empty(),
            full_any_over_tcp: AtomicBool::new(false),
            cookie_secrets: Arc::new(ArcSwapOption::empty()),
            transfers: None,
            query_log: None,
        }
    }

    /// Records every answered query in `log` (as its settings say).
    pub fn with_query_log(mut self, log: Arc<QueryLog>) -> Self {
        self.query_log = Some(log);
        self
    }

    /// Serves zone transfers by `transfers`' rules. Without it, every one is REFUSED.
    pub fn with_transfers(mut self, transfers: Arc<Transfers>) -> Self {
        self.transfers = Some(transfers);
        self
    }

    /// Makes and checks DNS cookies with the secrets `secrets` holds (the store's, swapped
    /// on every rotation). Without it, cookies are ignored.
    pub fn with_cookie_secrets(mut self, secrets: Arc<ArcSwapOption<CookieSecrets>>) -> Self {
        self.cookie_secrets = secrets;
        self
    }

    /// Whether ANY over TCP gets every RRset of the name rather than one.
    pub fn set_full_any_over_tcp(&self, full: bool) {
        self.full_any_over_tcp.store(full, Ordering::Relaxed);
    }

    /// Turns response rate limiting on with `settings`, or off. A change of settings
    /// starts the counts afresh; the same settings keep them.
    pub fn set_rate_limit(&self, settings: Option<RateLimit>) {
        let current = self.rate_limit.load();
        if current.as_ref().map(|limiter| limiter.settings()) != settings {
            self.rate_limit
                .store(settings.map(|settings| Arc::new(RateLimiter::new(settings))));
        }
    }

    /// Installs the query-policy plugins (`PluginSet::policies` of a freshly loaded
    /// set). Queries in flight finish with the chain they started with.
    pub fn set_policies(&self, policies: Arc<PolicyChain>) {
        self.policies.store(policies);
    }

    /// The query log this handler records into, if any.
    pub fn query_log(&self) -> Option<&Arc<QueryLog>> {
        self.query_log.as_ref()
    }

    /// The query-policy plugins in use.
    pub fn policies(&self) -> Arc<PolicyChain> {
        self.policies.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Applies a reloaded config: who may recurse, and where to forward. Queries in
    /// flight finish with the settings they started with; none is dropped.
    pub fn reconfigure(&self, recursion_networks: Vec<IpNet>, forward: &ForwardConfig) {
        self.recursion_networks.store(Arc::new(recursion_networks));
        self.forwarder.reconfigure(forward);
    }

    /// Answers what can be answered without the network (our zones, the policy
    /// plugins, the forwarder's fresh cache) into `reply`, a buffer the socket loop
    /// reuses; what needs an upstream comes back as [`Handled::Forward`].
    pub fn handle(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        limit: Option<usize>,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let started = Instant::now();
        let question = match message::decode(packet) {
            Decoded::Query(question) => question,
            Decoded::Reply(bytes) => return self.reply_with(&bytes, transport, started, reply),
            Decoded::Drop => {
                Metrics::bump(&self.metrics.dropped);
                return Handled::Drop;
            }
            Decoded::Transfer(query) => {
                return self.transfer(packet, *query, client, transport, started, reply);
            }
            Decoded::Notify(query) => {
                return self.notify(packet, *query, client, (transport, started), reply);
            }
            Decoded::Signed(query) => {
                let at = (client, transport, started);
                return self.signed(packet, *query, at, limit, reply);
            }
        };
        self.answer(question, client, transport, limit, started, reply)
    }

    /// [`QueryHandler::handle`] after decoding: the cookie, rate limiting, the policy
    /// plugins, then the answer engine.
    fn answer(
        &self,
        mut question: Question,
        client: IpAddr,
        transport: Transport,
        limit: Option<usize>,
        started: Instant,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let may_recurse = self.may_recurse(client);
        let hop = Hop {
            client,
            transport,
            limit: limit.unwrap_or_else(|| message::udp_limit(&question)),
            started,
        };
        let proof = self.check_cookie(&mut question, client);
        if transport == Transport::Udp {
            match self.rate_limited(client, may_recurse, proof, started) {
                Verdict::Answer => {}
                // RFC 7873 section 5.2.3: instead of dropping a limited query that
                // carries a client cookie, BADCOOKIE with a fresh one, which the client
                // sends back and is then exempt (Knot does the same).
                Verdict::Slip | Verdict::Drop if proof == Proof::Unproven => {
                    Metrics::bump(&self.metrics.cookie_badcookie_sent);
                    let outcome = Outcome::bare(ResponseCode::BADCOOKIE);
                    return self.reply(&question, outcome, hop, Source::RateLimited, reply);
                }
                Verdict::Slip => {
                    Metrics::bump(&self.metrics.rate_limit_slipped);
                    // The question alone, with TC: a real client retries over TCP.
                    let truncated = Hop { limit: 0, ..hop };
                    let outcome = Outcome::bare(ResponseCode::NoError);
                    return self.reply(&question, outcome, truncated, Source::RateLimited, reply);
                }
                Verdict::Drop => {
                    Metrics::bump(&self.metrics.rate_limit_dropped);
                    return Handled::Drop;
                }
            }
        }
        let redirect = match self.apply_policies(&question, client, transport, may_recurse) {
            Applied::Continue => None,
            Applied::Redirect(redirect) => Some(redirect),
            Applied::Reply(outcome, source) => {
                return self.reply(&question, outcome, hop, source, reply);
            }
        };
        self.resolve(question, redirect, may_recurse, hop, reply)
    }

    /// The answer engine's hop: the answer from our zones to the question, or to a
    /// redirect's target behind its CNAME. A name that is not ours goes to the
    /// forwarder when the client may recurse; otherwise it is REFUSED, or, behind a
    /// redirect's CNAME, left for the client's resolver to follow.
    fn resolve(
        &self,
        question: Question,
        redirect: Option<Box<Redirect>>,
        may_recurse: bool,
        hop: Hop,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let name = redirect
            .as_ref()
            .map_or(question.query.name(), |redirect| &redirect.target);
        let zones = self.zones.load();
        let qtype = question.query.query_type();
        let mut source = redirected(redirect.as_deref()).unwrap_or(Source::Zone);
        let outcome = match zones.lookup(name, qtype) {
            Some(mut answer) => {
                let full_any =
                    hop.transport.is_connected() && self.full_any_over_tcp.load(Ordering::Relaxed);
                if qtype == RecordType::ANY && !full_any {
                    minimal_any(&mut answer.answers);
                }
                Outcome {
                    rcode: answer.rcode,
                    authoritative: answer.authoritative,
                    recursion_available: may_recurse,
                    answers: match redirect {
                        None => answer.answers,
                        Some(redirect) => std::iter::once(Cow::Owned(redirect.cname))
                            .chain(answer.answers)
                            .collect(),
                    },
                    authorities: answer.authorities,
                    additionals: answer.additionals,
                }
            }
            None if may_recurse && question.recursion_desired => {
                let request = ForwardRequest {
                    question,
                    client: hop.client,
                    redirect,
                };
                let Some(resolved) = self.forwarder.cached(&request.upstream_query()) else {
                    return Handled::Forward(request);
                };
                let source = redirected(request.redirect.as_deref()).unwrap_or(Source::Cache);
                let outcome = forwarded(Ok(resolved), request.redirect);
                return self.reply(&request.question, outcome, hop, source, reply);
            }
            // The target is not ours and this client may not recurse: the CNAME alone,
            // as for any CNAME that leaves our zones.
            None if redirect.is_some() => Outcome {
                authoritative: true,
                recursion_available: may_recurse,
                answers: redirect
                    .map(|redirect| Cow::Owned(redirect.cname))
                    .into_iter()
                    .collect(),
                ..Outcome::bare(ResponseCode::NoError)
            },
            // Not ours, and this client may not recurse: never an open resolver.
            None => {
                source = Source::Refused;
                Outcome::bare(ResponseCode::Refused)
            }
        };
        self.reply(&question, outcome, hop, source, reply)
    }

    /// What response rate limiting makes of an answer to `client` over UDP: a source
    /// proven by its cookie is never limited.
    fn rate_limited(
        &self,
        client: IpAddr,
        may_recurse: bool,
        proof: Proof,
        now: Instant,
    ) -> Verdict {
        match &*self.rate_limit.load() {
            Some(_) if proof == Proof::Proven => Verdict::Answer,
            Some(limiter) if !(may_recurse && limiter.settings().exempt_recursion) => {
                limiter.check(client, now)
            }
            _ => Verdict::Answer,
        }
    }

    /// The cookie hop: checks the server cookie the query sent back and puts a fresh one
    /// in the reply; nothing without a cookie or without secrets.
    fn check_cookie(&self, question: &mut Question, client: IpAddr) -> Proof {
        let Some(cookie) = question.cookie else {
            return Proof::None;
        };
        let secrets = self.cookie_secrets.load();
        let Some(secrets) = secrets.as_deref() else {
            return Proof::None;
        };
        // Serial arithmetic over 32 bits (RFC 9018 section 4.3): the truncation is meant.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as u32);
        question.server_cookie = Some(server_cookie(&secrets.current, &cookie.client, now, client));
        match cookie.server() {
            None => Proof::Unproven,
            Some(_) if cookie.is_valid(secrets, client, now) => {
                Metrics::bump(&self.metrics.cookie_valid);
                Proof::Proven
            }
            Some(_) => {
                Metrics::bump(&self.metrics.cookie_invalid);
                Proof::Unproven
            }
        }
    }

    /// The last hop: encodes the answer into `reply`, counts it and logs it.
    fn reply(
        &self,
        question: &Question,
        outcome: Outcome<'_>,
        hop: Hop,
        source: Source,
        reply: &mut Vec<u8>,
    ) -> Handled {
        // The outcome's rcode, not the header's: an extended one (BADCOOKIE) is logged whole.
        let rcode = outcome.rcode;
        message::encode_into(question, outcome, hop.limit, reply);
        let latency = self.count(hop.transport, reply, hop.started);
        let timing = (hop.started, latency);
        self.log(question, (hop.client, hop.transport), rcode, source, timing);
        Handled::Reply
    }

    /// Records an answered query in the query log, if this daemon keeps one.
    fn log(
        &self,
        question: &Question,
        (client, transport): (IpAddr, Transport),
        rcode: ResponseCode,
        source: Source,
        (at, latency): (Instant, Duration),
    ) {
        if let Some(log) = &self.query_log {
            log.record(Answered {
                at,
                client,
                name: question.query.name(),
                qtype: question.query.query_type(),
                transport,
                rcode,
                source,
                latency,
            });
        }
    }

    /// Sends `bytes`, a reply made before the answer engine (an early refusal, a TSIG
    /// error).
    fn reply_with(
        &self,
        bytes: &[u8],
        transport: Transport,
        started: Instant,
        reply: &mut Vec<u8>,
    ) -> Handled {
        self.count(transport, bytes, started);
        reply.clear();
        reply.extend_from_slice(bytes);
        Handled::Reply
    }

    /// The policy hop: what the query-policy plugins make of the question. Nothing
    /// but one atomic load when there are none.
    fn apply_policies(
        &self,
        question: &Question,
        client: IpAddr,
        transport: Transport,
        may_recurse: bool,
    ) -> Applied {
        let policies = self.policies.load();
        if policies.is_empty() {
            return Applied::Continue;
        }
        let query = plugins::Query::new(
            question.query.name(),
            question.query.query_type(),
            question.query.query_class(),
            client,
            transport,
        );
        policy::apply(policies.decide(query), question, may_recurse, &self.metrics)
    }

    /// Resolves a question through the forwarder and its cache.
    pub async fn forward(
        &self,
        request: ForwardRequest,
        transport: Transport,
        limit: Option<usize>,
    ) -> Vec<u8> {
        let started = Instant::now();
        let limit = limit.unwrap_or_else(|| message::udp_limit(&request.question));
        let resolved = self.forwarder.resolve(&request.upstream_query()).await;
        if let Err(error) = &resolved {
            tracing::debug!(name = %request.question.query.name(), %error, "forwarding failed");
        }
        let source = redirected(request.redirect.as_deref()).unwrap_or(Source::Upstream);
        let outcome = forwarded(resolved, request.redirect);
        let rcode = outcome.rcode;
        let bytes = message::encode(&request.question, outcome, limit);
        let latency = self.count(transport, &bytes, started);
        let at = (request.client, transport);
        self.log(&request.question, at, rcode, source, (started, latency));
        bytes
    }

    fn may_recurse(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.recursion_networks
            .load()
            .iter()
            .any(|network| network.contains(&client))
    }

    /// Counts an answer in the metrics; how long it took.
    fn count(&self, transport: Transport, bytes: &[u8], started: Instant) -> Duration {
        let rcode = bytes
            .get(3)
            .map_or(ResponseCode::ServFail, |b| ResponseCode::from(0, b & 0x0f));
        if bytes.get(2).is_some_and(|flags| flags & 0x02 != 0) {
            Metrics::bump(&self.metrics.truncated);
        }
        let latency = started.elapsed();
        self.metrics.record_answer(transport, rcode, latency);
        latency
    }
}
