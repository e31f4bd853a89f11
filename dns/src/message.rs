//! Decoding a query and encoding an answer: the two ends of the query path.
//!
//! Decoding cleans the packet before any logic runs: responses are dropped (no
//! reflection), opcodes other than QUERY get NOTIMP, anything malformed gets FORMERR
//! with no question echoed; a COOKIE option of a wrong length gets FORMERR (RFC 7873
//! section 5.2.2). Encoding adds the server cookie the handler chose, honours the
//! client's EDNS payload size and, when the answer does not fit, sends the question
//! alone with TC set so the client retries over TCP.

use std::borrow::Cow;

use hickory_proto::op::{
    Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode, emit_message_parts,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};

use crate::cookie::{COOKIE_OPTION, ClientCookie, SERVER_COOKIE_LEN};
use hickory_proto::serialize::binary::BinEncoder;

/// The EDNS payload size we advertise and the most we send over UDP, whatever the
/// client offers (the DNS Flag Day 2020 value, safe from IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// What a client without EDNS can receive over UDP (RFC 1035).
pub const PLAIN_UDP_PAYLOAD: u16 = 512;
/// A DNS message over TCP is prefixed by a 16-bit length.
pub const MAX_TCP_MESSAGE: usize = u16::MAX as usize;
const HEADER_LEN: usize = 12;

/// A cleaned query: one question, class and opcode checked.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: u16,
    pub op_code: OpCode,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub query: Query,
    /// Present when the client sent an OPT record.
    pub edns: Option<ClientEdns>,
    /// The query's COOKIE option (the first, RFC 7873 section 5.2), well-formed.
    pub cookie: Option<ClientCookie>,
    /// The server cookie the reply carries, after the client cookie (set by the handler
    /// when this node has cookie secrets).
    pub server_cookie: Option<[u8; SERVER_COOKIE_LEN]>,
}

#[derive(Debug, Clone, Copy)]
pub struct ClientEdns {
    pub payload: u16,
    pub dnssec_ok: bool,
}

/// A query with its whole message: a zone transfer, or a query signed with TSIG.
pub struct WholeQuery {
    pub question: Question,
    pub message: Message,
}

/// What decoding decided.
pub enum Decoded {
    Query(Question),
    /// Answer at once with this packet (FORMERR, NOTIMP, BADVERS, REFUSED).
    Reply(Vec<u8>),
    /// Send nothing: a response, or too short to hold a header.
    Drop,
    /// An AXFR or IXFR query, for [`crate::transfer`], which needs the whole message.
    Transfer(Box<WholeQuery>),
    /// A query signed with TSIG: its reply is signed too, once the signature is checked.
    Signed(Box<WholeQuery>),
    /// A NOTIFY (RFC 1996) for [`crate::transfer`]: a primary says a zone we follow changed.
    Notify(Box<WholeQuery>),
}

/// Records a query may carry in its answer, authority or additional section (an OPT,
/// perhaps a TSIG or SIG(0) and a cookie's companions); a packet that claims more is not
/// a query we answer.
pub const MAX_QUERY_SECTION_RECORDS: u16 = 8;

/// Whether the header's counts are those of a query: exactly one question, and at most
/// [`MAX_QUERY_SECTION_RECORDS`] records in each other section.
fn counts_fit_a_query(header: &[u8]) -> bool {
    let count = |at: usize| match header.get(at..at + 2) {
        Some(&[high, low]) => u16::from_be_bytes([high, low]),
        _ => u16::MAX,
    };
    count(4) == 1
        && [6, 8, 10]
            .iter()
            .all(|&at| count(at) <= MAX_QUERY_SECTION_RECORDS)
}

pub fn decode(packet: &[u8]) -> Decoded {
    let Some(header) = packet.get(..HEADER_LEN) else {
        return Decoded::Drop;
    };
    let id = u16::from_be_bytes([header[0], header[1]]);
    let flags = header[2];
    if flags & 0x80 != 0 {
        return Decoded::Drop;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    let recursion_desired = flags & 0x01 != 0;
    let bare = |rcode| Decoded::Reply(encode_bare(id, op_code, recursion_desired, rcode));
    if !counts_fit_a_query(header) {
        // Refused from the header: the parser sizes its sections from these counts before
        // reading them, so 65,535 claimed questions would cost megabytes per packet.
        return bare(if op_code == OpCode::Query {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        });
    }
    let Ok(message) = Message::from_vec(packet) else {
        return bare(if op_code == OpCode::Query {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        });
    };
    let [query] = message.queries.as_slice() else {
        return bare(if op_code == OpCode::Query {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        });
    };
    let cookie = message
        .edns
        .as_ref()
        .and_then(|edns| match edns.option(EdnsCode::Cookie) {
            // hickory keeps COOKIE's data as it came.
            Some(EdnsOption::Unknown(_, data)) => Some(ClientCookie::parse(data)),
            _ => None,
        });
    let mut question = Question {
        id,
        op_code,
        recursion_desired,
        checking_disabled: message.metadata.checking_disabled,
        query: query.clone(),
        edns: message.edns.as_ref().map(|edns| ClientEdns {
            payload: edns.max_payload().max(PLAIN_UDP_PAYLOAD),
            dnssec_ok: edns.flags().dnssec_ok,
        }),
        cookie: None,
        server_cookie: None,
    };
    match cookie {
        // RFC 7873 section 5.2.2: a COOKIE option of a wrong length is FORMERR.
        Some(Err(_)) => {
            let outcome = Outcome::bare(ResponseCode::FormErr);
            return Decoded::Reply(encode(&question, outcome, usize::MAX));
        }
        Some(Ok(cookie)) => question.cookie = Some(cookie),
        None => {}
    }
    classify(question, message)
}

/// What a well-formed question is: a NOTIFY, an early refusal, a zone transfer, a signed
/// query (all with their whole message), or a query to answer.
fn classify(question: Question, message: Message) -> Decoded {
    let notify = question.op_code == OpCode::Notify
        && question.query.query_type() == RecordType::SOA
        && message.edns.as_ref().is_none_or(|edns| edns.version() == 0);
    if notify {
        return Decoded::Notify(Box::new(WholeQuery { question, message }));
    }
    match refusal(&question, &message) {
        Some(rcode) => Decoded::Reply(encode(&question, Outcome::bare(rcode), usize::MAX)),
        None if matches!(
            question.query.query_type(),
            RecordType::AXFR | RecordType::IXFR
        ) =>
        {
            Decoded::Transfer(Box::new(WholeQuery { question, message }))
        }
        None if message.signature.is_some() => {
            Decoded::Signed(Box::new(WholeQuery { question, message }))
        }
        None => Decoded::Query(question),
    }
}

/// The answer a well-formed question gets at once, with the question and OPT echoed:
/// BADVERS for an EDNS version over 0 (RFC 6891 section 6.1.3, with the version we
/// speak), NOTIMP for opcodes other than QUERY, FORMERR for meta types, REFUSED for
/// classes other than IN; `None` for a question to answer or a zone transfer to weigh.
fn refusal(question: &Question, message: &Message) -> Option<ResponseCode> {
    if message.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        return Some(ResponseCode::BADVERS);
    }
    if question.op_code != OpCode::Query {
        return Some(ResponseCode::NotImp);
    }
    match question.query.query_type() {
        // Meta types, which only ever travel in the additional section; SIG (24) is a data
        // type like any other (RFC 8906: it gets its records or NODATA).
        RecordType::OPT | RecordType::TSIG | RecordType::Unknown(0) => {
            return Some(ResponseCode::FormErr);
        }
        _ => {}
    }
    (question.query.query_class() != DNSClass::IN).then_some(ResponseCode::Refused)
}

/// The flags and sections of an answer.
#[derive(Debug, Default)]
pub struct Outcome<'a> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub recursion_available: bool,
    pub answers: Vec<Cow<'a, Record>>,
    pub authorities: Vec<Cow<'a, Record>>,
    pub additionals: Vec<Cow<'a, Record>>,
}

impl Outcome<'_> {
    pub fn bare(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            ..Self::default()
        }
    }
}

/// The most a response to `question` may take over UDP.
pub fn udp_limit(question: &Question) -> usize {
    match question.edns {
        Some(edns) => usize::from(edns.payload.min(MAX_UDP_PAYLOAD)),
        None => usize::from(PLAIN_UDP_PAYLOAD),
    }
}

/// Encodes a response of at most `limit` bytes; one that does not fit goes out as
/// the question alone with TC set.
pub fn encode(question: &Question, outcome: Outcome<'_>, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    encode_into(question, outcome, limit, &mut bytes);
    bytes
}

/// [`encode`] into `out` (cleared first), so a socket loop reuses one buffer per reply
/// slot instead of allocating a reply per query.
pub fn encode_into(question: &Question, outcome: Outcome<'_>, limit: usize, out: &mut Vec<u8>) {
    if encode_sections(question, &outcome, false, out) && out.len() <= limit {
        return;
    }
    let empty = Outcome {
        answers: Vec::new(),
        authorities: Vec::new(),
        additionals: Vec::new(),
        ..outcome
    };
    if !encode_sections(question, &empty, true, out) {
        out.clear();
        out.extend_from_slice(&encode_bare(
            question.id,
            question.op_code,
            question.recursion_desired,
            ResponseCode::ServFail,
        ));
    }
}

/// Writes the response into `out` (cleared first); `false` when it could not be encoded.
fn encode_sections(
    question: &Question,
    outcome: &Outcome<'_>,
    truncated: bool,
    out: &mut Vec<u8>,
) -> bool {
    let mut metadata = Metadata::new(question.id, MessageType::Response, question.op_code);
    metadata.authoritative = outcome.authoritative;
    metadata.truncation = truncated;
    metadata.recursion_desired = question.recursion_desired;
    metadata.recursion_available = outcome.recursion_available;
    metadata.checking_disabled = question.checking_disabled;
    metadata.response_code = outcome.rcode;
    let edns = question.edns.map(|client| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        edns.set_dnssec_ok(client.dnssec_ok);
        if let (Some(cookie), Some(server)) = (question.cookie, question.server_cookie) {
            let data = [cookie.client.as_slice(), server.as_slice()].concat();
            edns.options_mut()
                .insert(EdnsOption::Unknown(COOKIE_OPTION, data));
        }
        edns
    });
    out.clear();
    let mut encoder = BinEncoder::new(out);
    emit_message_parts(
        &metadata,
        &mut std::iter::once(&question.query),
        &mut outcome.answers.iter().map(AsRef::as_ref),
        &mut outcome.authorities.iter().map(AsRef::as_ref),
        &mut outcome.additionals.iter().map(AsRef::as_ref),
        edns.as_ref(),
        None,
        &mut encoder,
    )
    .is_ok()
}

/// A header-only response: used when the question cannot be trusted or read.
pub fn encode_bare(
    id: u16,
    op_code: OpCode,
    recursion_desired: bool,
    rcode: ResponseCode,
) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER_LEN];
    bytes[0..2].copy_from_slice(&id.to_be_bytes());
    bytes[2] = 0x80 | (u8::from(op_code) << 3) | u8::from(recursion_desired);
    bytes[3] = u16::from(rcode).to_be_bytes()[1] & 0x0f;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn query_bytes(build: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 7;
        message.add_query(Query::query(
            Name::from_ascii("www.example.internal.").unwrap(),
            RecordType::A,
        ));
        build(&mut message);
        message.to_vec().unwrap()
    }

    fn reply_rcode(decoded: Decoded) -> ResponseCode {
        match decoded {
            Decoded::Reply(bytes) => {
                let message = Message::from_vec(&bytes).unwrap();
                assert_eq!(message.metadata.id, 7);
                assert_eq!(message.metadata.message_type, MessageType::Response);
                message.metadata.response_code
            }
            Decoded::Query(_) | Decoded::Transfer(_) | Decoded::Signed(_) | Decoded::Notify(_) => {
                panic!("expected an early reply, got a query")
            }
            Decoded::Drop => panic!("expected an early reply, got a drop"),
        }
    }

    #[test]
    fn responses_and_short_packets_are_dropped() {
        let response = query_bytes(|m| m.metadata.message_type = MessageType::Response);
        assert!(matches!(decode(&response), Decoded::Drop));
        assert!(matches!(decode(&[0, 7, 0]), Decoded::Drop));
    }

    #[test]
    fn early_replies() {
        let update = query_bytes(|m| m.metadata.op_code = OpCode::Update);
        assert_eq!(reply_rcode(decode(&update)), ResponseCode::NotImp);

        let two = query_bytes(|m| {
            m.add_query(Query::query(
                Name::from_ascii("a.example.").unwrap(),
                RecordType::A,
            ));
        });
        assert_eq!(reply_rcode(decode(&two)), ResponseCode::FormErr);

        let mut truncated = query_bytes(|_| {});
        truncated.truncate(truncated.len() - 3);
        assert_eq!(reply_rcode(decode(&truncated)), ResponseCode::FormErr);

        let axfr = query_bytes(|m| {
            m.queries[0].set_query_type(RecordType::AXFR);
        });
        assert!(
            matches!(decode(&axfr), Decoded::Transfer(_)),
            "for the transfer rules"
        );

        let chaos = query_bytes(|m| {
            m.queries[0].set_query_class(DNSClass::CH);
        });
        assert_eq!(reply_rcode(decode(&chaos)), ResponseCode::Refused);
    }

    #[test]
    fn edns_version_one_gets_badvers() {
        let bytes = query_bytes(|m| {
            let mut edns = Edns::new();
            edns.set_version(1);
            m.set_edns(edns);
        });
        let Decoded::Reply(reply) = decode(&bytes) else {
            panic!("expected a reply")
        };
        let message = Message::from_vec(&reply).unwrap();
        // BADVERS and BADSIG share code 16; hickory names it BADSIG when decoding.
        assert_eq!(u16::from(message.metadata.response_code), 16);
        assert_eq!(message.edns.unwrap().version(), 0);
    }

    #[test]
    fn a_label_pointer_loop_is_formerr() {
        // Header with one question whose name is a pointer to itself (offset 12).
        let packet = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(reply_rcode(decode(&packet)), ResponseCode::FormErr);
    }
}
