//! The messages of a transfer, made one at a time as the connection takes them: a
//! 100,000-record zone never sits encoded in memory whole.
//!
//! AXFR (RFC 5936 section 2.2): the SOA, every other record, the SOA again. IXFR (RFC
//! 1995 section 4): the current SOA, then per step the SOA it starts from, the records
//! it removed, the SOA it leaves and the records it added, then the current SOA; or the
//! current SOA alone for a client that is current. Records go out as the model holds
//! them (names uncompressed), up to [`TRANSFER_MESSAGE_BYTES`] a message, each message
//! with the question and, for a signed query, its TSIG.

use std::collections::VecDeque;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use outpost_core::name::key_of;
use outpost_core::state::ReplicatedState;

use super::journal::Step;
use super::tsig::{Signed, TSIG_ROOM};
use crate::message::Question;

/// A transfer message is closed once it holds this many bytes (a record that would
/// cross it starts the next one): large enough that TSIG and the header are little of
/// it, small enough for any TCP client's buffer.
pub const TRANSFER_MESSAGE_BYTES: usize = 16 * 1024;

/// One transfer's messages, made on demand.
pub struct Outgoing {
    /// The header (QR, AA, the query's id and opcode) and question every message starts
    /// with.
    start: Vec<u8>,
    signed: Option<Signed>,
    records: Records,
    /// A record that did not fit in the last message.
    held: Option<Vec<u8>>,
    done: bool,
}

/// Where the records come from.
enum Records {
    /// A list made up front (IXFR from the journal, a lone SOA).
    List(std::vec::IntoIter<Vec<u8>>),
    /// The zone, owner by owner, between its SOA twice.
    Zone(Box<ZoneWalk>),
}

/// An AXFR's walk through one zone of one state.
struct ZoneWalk {
    state: Arc<ReplicatedState>,
    zone: Name,
    soa: Vec<u8>,
    /// The records of the owner being sent.
    pending: VecDeque<Vec<u8>>,
    /// The last owner taken; `None` before the first.
    last_owner: Option<Box<[u8]>>,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    FirstSoa,
    Owners,
    LastSoa,
    Done,
}

impl Outgoing {
    /// The whole zone.
    pub fn axfr(
        state: Arc<ReplicatedState>,
        zone: Name,
        question: &Question,
        signed: Option<Signed>,
    ) -> Outgoing {
        let soa = soa_wire(&state, &zone);
        let walk = ZoneWalk {
            state,
            zone,
            soa,
            pending: VecDeque::new(),
            last_owner: None,
            phase: Phase::FirstSoa,
        };
        Outgoing::new(question, signed, Records::Zone(Box::new(walk)))
    }

    /// The current SOA alone: the client is current.
    pub fn current_soa(
        state: Arc<ReplicatedState>,
        zone: Name,
        question: &Question,
        signed: Option<Signed>,
    ) -> Outgoing {
        let list = vec![soa_wire(&state, &zone)];
        Outgoing::new(question, signed, Records::List(list.into_iter()))
    }

    /// The journal's `steps`, which lead to the current SOA.
    pub fn incremental(
        state: Arc<ReplicatedState>,
        zone: Name,
        question: &Question,
        steps: &[Arc<Step>],
        signed: Option<Signed>,
    ) -> Outgoing {
        let current = soa_wire(&state, &zone);
        let mut list = vec![current.clone()];
        for step in steps {
            list.push(step.from_soa.clone());
            list.extend(step.removed.iter().cloned());
            list.push(step.to_soa.clone());
            list.extend(step.added.iter().cloned());
        }
        list.push(current);
        Outgoing::new(question, signed, Records::List(list.into_iter()))
    }

    fn new(question: &Question, signed: Option<Signed>, records: Records) -> Outgoing {
        let mut start = Vec::with_capacity(64);
        start.extend_from_slice(&question.id.to_be_bytes());
        let op_code: u8 = question.op_code.into();
        // QR, the opcode, AA, and RD as asked; RCODE 0.
        start.push(0x80 | (op_code << 3) | 0x04 | u8::from(question.recursion_desired));
        start.push(0);
        start.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        // Its own buffer: an encoder writes from the start of the one it is given.
        let mut query = Vec::with_capacity(64);
        // A question we decoded encodes again.
        let _ = question.query.emit(&mut BinEncoder::new(&mut query));
        start.extend_from_slice(&query);
        Outgoing {
            start,
            signed,
            records,
            held: None,
            done: false,
        }
    }

    /// The next message, or `None` when the transfer is complete. `Err` when a record is
    /// too large for any message (the transfer then stops).
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, RecordTooLarge> {
        if self.done {
            return Ok(None);
        }
        let mut message = Vec::with_capacity(TRANSFER_MESSAGE_BYTES + 1024);
        message.extend_from_slice(&self.start);
        let mut count: u16 = 0;
        loop {
            let Some(record) = self.held.take().or_else(|| self.records.next()) else {
                self.done = true;
                break;
            };
            if message.len() + record.len() > TRANSFER_MESSAGE_BYTES && count > 0 {
                self.held = Some(record);
                break;
            }
            if message.len() + record.len() > usize::from(u16::MAX) - TSIG_ROOM {
                self.done = true;
                return Err(RecordTooLarge);
            }
            message.extend_from_slice(&record);
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        message[6..8].copy_from_slice(&count.to_be_bytes());
        if let Some(signed) = &mut self.signed {
            signed.sign(&mut message);
        }
        Ok(Some(message))
    }
}

/// A record larger than a DNS message can carry.
#[derive(Debug, thiserror::Error)]
#[error("a record is too large for a transfer message")]
pub struct RecordTooLarge;

impl Records {
    fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Records::List(list) => list.next(),
            Records::Zone(walk) => walk.next(),
        }
    }
}

impl ZoneWalk {
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.phase {
                Phase::FirstSoa => {
                    self.phase = Phase::Owners;
                    return Some(self.soa.clone());
                }
                Phase::Owners => {
                    if let Some(record) = self.pending.pop_front() {
                        return Some(record);
                    }
                    if !self.take_owner() {
                        self.phase = Phase::LastSoa;
                    }
                }
                Phase::LastSoa => {
                    self.phase = Phase::Done;
                    return Some(self.soa.clone());
                }
                Phase::Done => return None,
            }
        }
    }

    /// Queues the records of the next owner (the apex SOA left out: it opens and closes
    /// the transfer); `false` past the last owner.
    fn take_owner(&mut self) -> bool {
        let Some(zone) = self.state.get(&self.zone) else {
            return false;
        };
        let Some(owner) = zone.owner_after(self.last_owner.as_deref()) else {
            return false;
        };
        let apex = key_of(zone.origin());
        for rrset in owner.rrsets() {
            if rrset.record_type() == RecordType::SOA && owner.key() == &*apex {
                continue;
            }
            let records = rrset.rdata().map(|rdata| rrset.record_wire(rdata));
            self.pending.extend(records);
        }
        self.last_owner = Some(owner.key().into());
        true
    }
}

/// The zone's SOA record, whole, as it goes into a message.
fn soa_wire(state: &ReplicatedState, zone: &Name) -> Vec<u8> {
    let soa = state
        .get(zone)
        .and_then(|zone| zone.rrset(zone.origin(), RecordType::SOA));
    soa.and_then(|rrset| rrset.rdata().next().map(|rdata| rrset.record_wire(rdata)))
        .unwrap_or_default()
}
