//! The query path, hop by hop: decode and clean → answer from our zones → or, for
//! clients allowed to recurse, the forwarder with its cache → encode.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use ipnet::IpNet;
use outpost_core::answer::ZoneSet;

use crate::forward::{ForwardConfig, Forwarder};
use crate::message::{self, Decoded, Outcome, Question};
use crate::metrics::{Metrics, Transport};

/// Everything a query needs, shared by every socket task.
pub struct QueryHandler {
    zones: Arc<ArcSwap<ZoneSet>>,
    forwarder: Arc<Forwarder>,
    /// Who may recurse; swapped whole on a config reload.
    recursion_networks: ArcSwap<Vec<IpNet>>,
    metrics: Arc<Metrics>,
}

/// What to do with a packet.
pub enum Handled {
    Reply(Vec<u8>),
    /// The answer needs the network: run [`QueryHandler::forward`] off the socket
    /// loop.
    Forward(Question),
    Drop,
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
        }
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

    /// Answers what can be answered without the network.
    pub fn handle(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        limit: Option<usize>,
    ) -> Handled {
        let started = Instant::now();
        let question = match message::decode(packet) {
            Decoded::Query(question) => question,
            Decoded::Reply(bytes) => {
                self.count(transport, &bytes, started);
                return Handled::Reply(bytes);
            }
            Decoded::Drop => {
                Metrics::bump(&self.metrics.dropped);
                return Handled::Drop;
            }
        };
        let may_recurse = self.may_recurse(client);
        let limit = limit.unwrap_or_else(|| message::udp_limit(&question));
        let zones = self.zones.load();
        let outcome = match zones.lookup(question.query.name(), question.query.query_type()) {
            Some(answer) => Outcome {
                rcode: answer.rcode,
                authoritative: answer.authoritative,
                recursion_available: may_recurse,
                answers: answer.answers,
                authorities: answer.authorities,
                additionals: answer.additionals,
            },
            None if may_recurse && question.recursion_desired => return Handled::Forward(question),
            // Not ours, and this client may not recurse: never an open resolver.
            None => Outcome::bare(ResponseCode::Refused),
        };
        let bytes = message::encode(&question, outcome, limit);
        self.count(transport, &bytes, started);
        Handled::Reply(bytes)
    }

    /// Resolves a question through the forwarder and its cache.
    pub async fn forward(
        &self,
        question: Question,
        transport: Transport,
        limit: Option<usize>,
    ) -> Vec<u8> {
        let started = Instant::now();
        let limit = limit.unwrap_or_else(|| message::udp_limit(&question));
        let outcome = match self.forwarder.resolve(&question.query).await {
            Ok(resolved) => Outcome {
                rcode: resolved.rcode,
                authoritative: false,
                recursion_available: true,
                answers: resolved.answers.into_iter().map(Cow::Owned).collect(),
                authorities: resolved.authorities.into_iter().map(Cow::Owned).collect(),
                additionals: resolved.additionals.into_iter().map(Cow::Owned).collect(),
            },
            Err(error) => {
                tracing::debug!(name = %question.query.name(), %error, "forwarding failed");
                Outcome {
                    recursion_available: true,
                    ..Outcome::bare(ResponseCode::ServFail)
                }
            }
        };
        let bytes = message::encode(&question, outcome, limit);
        self.count(transport, &bytes, started);
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

    fn count(&self, transport: Transport, bytes: &[u8], started: Instant) {
        let rcode = bytes
            .get(3)
            .map_or(ResponseCode::ServFail, |b| ResponseCode::from(0, b & 0x0f));
        if bytes.get(2).is_some_and(|flags| flags & 0x02 != 0) {
            Metrics::bump(&self.metrics.truncated);
        }
        self.metrics
            .record_answer(transport, rcode, started.elapsed());
    }
}
