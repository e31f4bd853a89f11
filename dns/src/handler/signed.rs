//! The queries that need their whole message: zone transfers, handed to
//! [`crate::transfer`], and queries signed with TSIG, whose replies are signed too.

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use outpost_core::answer::Transport;

use super::{Handled, Hop, QueryHandler};
use crate::message::WholeQuery;
use crate::message::{self, Outcome};
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
            let hop = Hop {
                transport,
                limit: usize::MAX,
                started,
            };
            let outcome = Outcome::bare(ResponseCode::NotImp);
            return self.reply(&query.question, outcome, hop, reply);
        };
        let bytes = transfers.notify(packet, query, client, &self.metrics);
        self.reply_with(&bytes, transport, started, reply)
    }

    /// A zone transfer query: over TCP or TLS, what the transfer rules make of it; over
    /// UDP, the question with TC, for the client to ask again over TCP (RFC 1995 section
    /// 2 and RFC 5936 section 4.2); REFUSED without transfer rules, or over DoH and DoQ.
    pub(super) fn transfer(
        &self,
        packet: &[u8],
        query: WholeQuery,
        client: IpAddr,
        transport: Transport,
        started: Instant,
        reply: &mut Vec<u8>,
    ) -> Handled {
        let datagram = match (&self.transfers, transport) {
            (Some(_), Transport::Tcp | Transport::Tls) => false,
            (Some(_), Transport::Udp) => true,
            _ => {
                let hop = Hop {
                    transport,
                    limit: usize::MAX,
                    started,
                };
                let outcome = Outcome::bare(ResponseCode::Refused);
                return self.reply(&query.question, outcome, hop, reply);
            }
        };
        let Some(transfers) = &self.transfers else {
            return Handled::Drop;
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
}
