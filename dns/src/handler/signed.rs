//! The queries that need their whole message: zone transfers, handed to
//! [`crate::transfer`], and queries signed with TSIG, whose replies are signed too.

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use outpost_core::answer::Transport;

use super::{Handled, Hop, QueryHandler};
use crate::message::{self, Outcome, Question, WholeQuery};
use crate::querylog::Source;
use crate::transfer::Transfer;
use crate::transfer::tsig::TSIG_ROOM;

impl QueryHandler {
    /// A query signed with TSIG (a secondary's SOA check, say): with one of our keys, the
    /// reply is signed with it, room left for the signature; a bad signature gets NOTAUTH
    /// with the TSIG error. Without transfer rules (a Lite client) it is answered unsigned.
    pub(super) fn signed(
        &self,
        packet: &[u8],
        query: WholeQuery,
        (client, transport, started): (IpAddr, Transport, Instant),
        limit: Option<usize>,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let WholeQuery { question, message } = query;
        let signed = match &self.transfers {
            None => None,
            Some(transfers) => match transfers.verify(packet, &question, &message, client) {
                Ok(signed) => signed,
                Err(bytes) => return self.reply_with(&bytes, transport, started, reply),
            },
        };
        let Some(mut signed) = signed else {
            return self.answer(question, client, transport, limit, started, reply);
        };
        let limit = limit.unwrap_or_else(|| message::udp_limit(&question));
        let limit = Some(limit.saturating_sub(TSIG_ROOM));
        let handled = self.answer(question, client, transport, limit, started, reply);
        if let Handled::Reply = handled {
            signed.sign(reply);
        }
        handled
    }

    /// A NOTIFY: for the transfer rules to weigh; NOTIMP without them (a Lite client,
    /// which follows no zone).
    pub(super) fn notify(
        &self,
        packet: &[u8],
        query: WholeQuery,
        client: IpAddr,
        (transport, started): (Transport, Instant),
        reply: &mut Vec<u8>,
    ) -> Handled {
        let Some(transfers) = &self.transfers else {
            let at = (client, transport, started);
            return self.bare(&query.question, ResponseCode::NotImp, at, reply);
        };
        let bytes = transfers.notify(packet, query, client, &self.metrics);
        self.reply_with(&bytes, transport, started, reply)
    }

    /// A zone transfer query: what the transfer rules make of it over TCP, TLS and UDP
    /// (where IXFR gets the SOA alone and AXFR the question with TC, RFC 1995 section 2
    /// and RFC 5936 section 4.2); REFUSED without transfer rules, or over DoH and DoQ.
    pub(super) fn transfer(
        &self,
        packet: &[u8],
        query: WholeQuery,
        client: IpAddr,
        transport: Transport,
        started: Instant,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let (transfers, datagram) = match (&self.transfers, transport) {
            (Some(transfers), Transport::Tcp | Transport::Tls) => (transfers, false),
            (Some(transfers), Transport::Udp) => (transfers, true),
            _ => {
                let at = (client, transport, started);
                return self.bare(&query.question, ResponseCode::Refused, at, reply);
            }
        };
        match transfers.answer(packet, query, client, &self.metrics, datagram) {
            Transfer::Reply(bytes) => self.reply_with(&bytes, transport, started, reply),
            // One message: IXFR's SOA alone, which tells the client to ask over TCP.
            Transfer::Stream(mut outgoing) if datagram => match outgoing.next_message() {
                Ok(Some(bytes)) => self.reply_with(&bytes, transport, started, reply),
                _ => Handled::Drop,
            },
            Transfer::Stream(outgoing) => Handled::Transfer(outgoing),
        }
    }

    /// The question alone with `rcode`.
    fn bare(
        &self,
        question: &Question,
        rcode: ResponseCode,
        (client, transport, started): (IpAddr, Transport, Instant),
        reply: &mut Vec<u8>,
    ) -> Handled {
        let hop = Hop {
            client,
            transport,
            limit: usize::MAX,
            started,
        };
        self.reply(question, Outcome::bare(rcode), hop, Source::Early, reply)
    }
}
