//! Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995) to the secondaries the
//! config names, over TCP or TLS, with TSIG (RFC 8945, [`tsig`]); and NOTIFY (RFC 1996,
//! [`notify`]) to them after every change.
//!
//! Every node holds the same state, so a secondary may transfer from any of them; IXFR
//! answers from this node's [`journal`] and with the whole zone when the journal does not
//! reach back far enough. Everyone the rules do not name is REFUSED, as before.
//!
//! **Invariant:** a transfer reads one state from start to end (the `Arc` loaded when
//! it starts): a write committed meanwhile is in the next transfer, never half in this
//! one.

pub mod client;
pub mod journal;
pub mod notify;
mod stream;
pub mod tsig;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;
use outpost_core::state::ReplicatedState;

use crate::message::{self, Outcome, Question, WholeQuery};
use crate::metrics::Metrics;
pub use journal::Journal;
pub use stream::Outgoing;
use tsig::{Signed, TsigKeys};

/// The state transfers read: the replicated state as now published.
pub type StateSource = Box<dyn Fn() -> Arc<ReplicatedState> + Send + Sync>;

/// Who may transfer which zones, and where NOTIFY goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secondary {
    /// The zones it may transfer and is notified of; every zone when empty.
    pub zones: Vec<Name>,
    /// The addresses it may transfer from.
    pub allow: Vec<IpNet>,
    /// The TSIG key its transfers must be signed with, and NOTIFY is signed with.
    pub key: Option<Name>,
    /// Where NOTIFY is sent after each change of one of its zones.
    pub notify: Vec<SocketAddr>,
}

impl Secondary {
    fn covers(&self, zone: &Name) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|covered| covered == zone)
    }
}

/// The transfer rules of the config: the TSIG keys this node knows, and the secondaries.
#[derive(Debug, Clone, Default)]
pub struct TransferRules {
    pub keys: TsigKeys,
    pub secondaries: Vec<Secondary>,
}

/// What a transfer query gets: one message, or the transfer's messages.
pub enum Transfer {
    Reply(Vec<u8>),
    Stream(Box<Outgoing>),
}

/// Told the zone a primary's NOTIFY named (a zone we follow changed there).
pub type NotifyHook = Box<dyn Fn(&Name) + Send + Sync>;

/// Zone transfers out, as a node serves them, and the NOTIFYs of our primaries.
pub struct Transfers {
    state: StateSource,
    rules: ArcSwap<TransferRules>,
    journal: Journal,
    notified: std::sync::OnceLock<NotifyHook>,
}

impl Transfers {
    pub fn new(state: StateSource) -> Transfers {
        Transfers {
            state,
            rules: ArcSwap::default(),
            journal: Journal::new(),
            notified: std::sync::OnceLock::new(),
        }
    }

    /// Who hears of the NOTIFYs accepted (the appliance's refresh task); set once.
    pub fn on_notify(&self, hook: NotifyHook) {
        if self.notified.set(hook).is_err() {
            tracing::warn!("the NOTIFY hook was set twice; the first stays");
        }
    }

    /// Applies the config's rules (at start and on a reload); transfers running keep
    /// theirs.
    pub fn set_rules(&self, rules: TransferRules) {
        self.rules.store(Arc::new(rules));
    }

    pub fn rules(&self) -> Arc<TransferRules> {
        self.rules.load_full()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The state transfers and NOTIFY read now.
    pub fn state(&self) -> Arc<ReplicatedState> {
        (self.state)()
    }

    /// Answers an AXFR or IXFR query from `client`: REFUSED unless a secondary with
    /// this zone allows the address (and, when it names a key, the query is signed with
    /// it); NOTAUTH with the TSIG error for a bad signature (RFC 8945 section 5.2) or a
    /// zone not ours; otherwise the transfer. Over UDP (`datagram`), IXFR gets the
    /// current SOA alone (RFC 1995 section 2: ask again over TCP unless current) and AXFR
    /// the question with TC.
    pub fn answer(
        &self,
        packet: &[u8],
        query: WholeQuery,
        client: IpAddr,
        metrics: &Metrics,
        datagram: bool,
    ) -> Transfer {
        let WholeQuery { question, message } = query;
        let refuse = |rcode, reason: &str| {
            Metrics::bump(&metrics.transfers_refused);
            tracing::warn!(%client, zone = %question.query.name(), reason, "zone transfer refused");
            message::encode(&question, Outcome::bare(rcode), usize::MAX)
        };
        let signed = match self.verify(packet, &question, &message, client) {
            Ok(signed) => signed,
            Err(reply) => {
                Metrics::bump(&metrics.transfers_refused);
                return Transfer::Reply(reply);
            }
        };
        let rules = self.rules.load();
        let zone = question.query.name().to_lowercase();
        let allowed = rules.secondaries.iter().any(|secondary| {
            secondary.covers(&zone)
                && secondary.allow.iter().any(|net| net.contains(&client))
                && match (&secondary.key, &signed) {
                    (None, _) => true,
                    (Some(key), Some(signed)) => key == signed.key_name(),
                    (Some(_), None) => false,
                }
        });
        if !allowed {
            return Transfer::Reply(refuse(ResponseCode::Refused, "not allowed"));
        }
        let state = self.state();
        let Some(soa) = state.get(&zone).and_then(|zone| zone.soa()) else {
            return Transfer::Reply(refuse(ResponseCode::NotAuth, "not a zone of ours"));
        };
        let RData::SOA(current) = &soa.data else {
            return Transfer::Reply(refuse(ResponseCode::NotAuth, "not a zone of ours"));
        };
        let current = current.serial;
        if datagram {
            return match question.query.query_type() {
                RecordType::IXFR => Transfer::Stream(Box::new(Outgoing::current_soa(
                    state, zone, &question, signed,
                ))),
                _ => {
                    let mut reply =
                        message::encode(&question, Outcome::bare(ResponseCode::NoError), 0);
                    if let Some(mut signed) = signed {
                        signed.sign(&mut reply);
                    }
                    Transfer::Reply(reply)
                }
            };
        }
        let outgoing = match question.query.query_type() {
            RecordType::IXFR => {
                let Some(serial) = client_serial(&message) else {
                    return Transfer::Reply(refuse(
                        ResponseCode::FormErr,
                        "IXFR without the client's SOA",
                    ));
                };
                Metrics::bump(&metrics.transfers_ixfr);
                self.ixfr(state, zone, &question, serial, current, signed)
            }
            _ => {
                Metrics::bump(&metrics.transfers_axfr);
                Outgoing::axfr(state, zone, &question, signed)
            }
        };
        tracing::info!(%client, zone = %question.query.name(), qtype = %question.query.query_type(), "zone transfer");
        Transfer::Stream(Box::new(outgoing))
    }

    /// A NOTIFY (RFC 1996) from `client`: accepted (NOERROR, the refresh task told) when
    /// the zone is one we follow, the source is one of its primaries and, when the zone
    /// has a key, the NOTIFY is signed with it; REFUSED otherwise (NOTAUTH for a bad
    /// signature), logged and counted. The answer is signed like the NOTIFY.
    pub fn notify(
        &self,
        packet: &[u8],
        query: WholeQuery,
        client: IpAddr,
        metrics: &Metrics,
    ) -> Vec<u8> {
        let WholeQuery { question, message } = query;
        let zone = question.query.name().to_lowercase();
        let refuse = |rcode, reason: &str| {
            Metrics::bump(&metrics.notify_refused);
            tracing::warn!(%client, %zone, reason, "NOTIFY refused");
            message::encode(&question, Outcome::bare(rcode), usize::MAX)
        };
        let state = self.state();
        let Some(followed) = state.followed(&zone.to_ascii()) else {
            return refuse(ResponseCode::Refused, "not a zone we follow");
        };
        if !followed
            .primaries
            .iter()
            .any(|primary| primary.ip() == client)
        {
            return refuse(
                ResponseCode::Refused,
                "not from one of the zone's primaries",
            );
        }
        let mut keys = TsigKeys::default();
        if let Some(key) = &followed.tsig {
            keys.insert(tsig::key_signer(key).ok());
        }
        let signed = match keys.verify(packet, &message) {
            Ok(signed) => signed,
            Err(rejected) => {
                let mut reply = refuse(ResponseCode::NotAuth, rejected.reason());
                rejected.append_tsig(&mut reply);
                return reply;
            }
        };
        if followed.tsig.is_some() && signed.is_none() {
            return refuse(ResponseCode::Refused, "unsigned, and the zone has a key");
        }
        Metrics::bump(&metrics.notify_received);
        tracing::info!(%client, %zone, "NOTIFY");
        if let Some(hook) = self.notified.get() {
            hook(&zone);
        }
        let outcome = Outcome {
            authoritative: true,
            ..Outcome::bare(ResponseCode::NoError)
        };
        let mut reply = message::encode(&question, outcome, usize::MAX);
        if let Some(mut signed) = signed {
            signed.sign(&mut reply);
        }
        reply
    }

    /// Checks the TSIG of a query (a transfer, or any query signed with one of our
    /// keys, such as a secondary's SOA check): `Ok(None)` unsigned, the signing chain of
    /// the reply when it verifies, or the NOTAUTH reply with the TSIG error (RFC 8945
    /// section 5.2), logged.
    pub fn verify(
        &self,
        packet: &[u8],
        question: &Question,
        message: &Message,
        client: IpAddr,
    ) -> Result<Option<Signed>, Vec<u8>> {
        self.rules
            .load()
            .keys
            .verify(packet, message)
            .map_err(|rejected| {
                let key = rejected.key_name();
                tracing::warn!(%client, %key, reason = rejected.reason(), "bad TSIG");
                let outcome = Outcome::bare(ResponseCode::NotAuth);
                let mut reply = message::encode(question, outcome, usize::MAX);
                rejected.append_tsig(&mut reply);
                reply
            })
    }

    /// IXFR from `serial`: the current SOA alone when the client is current (or ahead),
    /// the journal's steps when it reaches back to `serial`, the whole zone otherwise.
    fn ixfr(
        &self,
        state: Arc<ReplicatedState>,
        zone: Name,
        question: &Question,
        serial: u32,
        current: u32,
        signed: Option<Signed>,
    ) -> Outgoing {
        if !serial_is_older(serial, current) {
            return Outgoing::current_soa(state, zone, question, signed);
        }
        match self.journal.steps(&zone, serial, current) {
            Some(steps) => Outgoing::incremental(state, zone, question, &steps, signed),
            None => Outgoing::axfr(state, zone, question, signed),
        }
    }
}

/// The serial of the SOA an IXFR query carries in its authority section.
fn client_serial(message: &Message) -> Option<u32> {
    message
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
}

/// Whether serial `a` comes before `b` in serial number arithmetic (RFC 1982).
pub fn serial_is_older(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

#[cfg(test)]
mod tests;
