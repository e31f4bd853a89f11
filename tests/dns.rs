//! A small blocking DNS client over real sockets, built on hickory-proto for the
//! wire format: what `dig` would do, so tests can assert what a user would see.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How long one UDP try waits for its answer before sending again.
pub const UDP_TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// UDP tries before giving up (a loaded machine may be slow, never lossy on loopback,
/// but a server shedding load may drop).
const UDP_TRIES: usize = 5;
/// How long a TCP exchange may take in all.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// What to ask and how.
#[derive(Debug, Clone)]
pub struct Ask {
    pub name: Name,
    pub rtype: RecordType,
    /// `Some(payload)` adds an OPT record offering that UDP payload size.
    pub edns: Option<u16>,
    /// The RD bit; `dig` sets it by default, and so do we.
    pub recursion_desired: bool,
    pub op_code: OpCode,
}

impl Ask {
    /// `name` in presentation form, absolute (`www.example.internal.`).
    pub fn new(name: &str, rtype: RecordType) -> Ask {
        let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad test name {name:?}: {e}"));
        Ask::for_name(name, rtype)
    }

    /// For names that presentation form cannot carry through hickory (escapes).
    pub fn for_name(name: Name, rtype: RecordType) -> Ask {
        Ask {
            name,
            rtype,
            edns: None,
            recursion_desired: true,
            op_code: OpCode::Query,
        }
    }

    pub fn edns(mut self, payload: u16) -> Ask {
        self.edns = Some(payload);
        self
    }

    pub fn no_recursion(mut self) -> Ask {
        self.recursion_desired = false;
        self
    }

    pub fn op_code(mut self, op_code: OpCode) -> Ask {
        self.op_code = op_code;
        self
    }

    /// The query in wire format, with id `id`.
    pub fn to_bytes(&self, id: u16) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.op_code = self.op_code;
        message.metadata.recursion_desired = self.recursion_desired;
        message.add_query(Query::query(self.name.clone(), self.rtype));
        if let Some(payload) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            edns.set_version(0);
            message.set_edns(edns);
        }
        message.to_vec().expect("encode a query")
    }
}

/// A query id that differs between calls, so late answers are not taken for new ones.
fn next_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x1234);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// `dig @addr name rtype` over UDP (RD set), optionally with EDNS.
pub fn query_udp(addr: SocketAddr, name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut ask = Ask::new(name, rtype);
    ask.edns = edns;
    ask_udp(addr, &ask)
}

/// `dig +tcp @addr name rtype`.
pub fn query_tcp(addr: SocketAddr, name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut ask = Ask::new(name, rtype);
    ask.edns = edns;
    ask_tcp(addr, &ask)
}

/// Sends `ask` over UDP and returns the decoded answer, retrying a few times; panics
/// when nothing answers.
pub fn ask_udp(addr: SocketAddr, ask: &Ask) -> Message {
    ask_udp_raw(addr, ask).1
}

/// [`ask_udp`] from another loopback source address, such as 127.0.0.2 (Linux
/// delivers all of 127.0.0.0/8 on `lo`): for answers that depend on the client.
pub fn ask_udp_from(source: IpAddr, addr: SocketAddr, ask: &Ask) -> Message {
    ask_udp_raw_from(source, addr, ask).1
}

/// [`ask_udp`], also returning the answer's bytes (to check sizes).
pub fn ask_udp_raw(addr: SocketAddr, ask: &Ask) -> (Vec<u8>, Message) {
    ask_udp_raw_from(IpAddr::V4(Ipv4Addr::LOCALHOST), addr, ask)
}

fn ask_udp_raw_from(source: IpAddr, addr: SocketAddr, ask: &Ask) -> (Vec<u8>, Message) {
    let id = next_id();
    let request = ask.to_bytes(id);
    let socket = UdpSocket::bind(SocketAddr::new(source, 0))
        .unwrap_or_else(|e| panic!("bind a UDP client socket on {source}: {e}"));
    socket.connect(addr).expect("connect the UDP socket");
    let mut buffer = vec![0u8; 65_535];
    for _ in 0..UDP_TRIES {
        socket.send(&request).expect("send the query");
        let deadline = Instant::now() + UDP_TRY_TIMEOUT;
        while let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            socket
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            let Ok(len) = socket.recv(&mut buffer) else {
                break;
            };
            let bytes = buffer[..len].to_vec();
            let message = Message::from_vec(&bytes).unwrap_or_else(|e| {
                panic!("the answer to {ask:?} does not decode: {e}\n{bytes:02x?}")
            });
            if message.metadata.id == id {
                return (bytes, message);
            }
        }
    }
    panic!("no UDP answer from {addr} to {ask:?} after {UDP_TRIES} tries");
}

/// Sends `ask` over one new TCP connection and returns the decoded answer.
pub fn ask_tcp(addr: SocketAddr, ask: &Ask) -> Message {
    let id = next_id();
    let mut stream = tcp_connect(addr);
    tcp_send(&mut stream, &ask.to_bytes(id));
    let bytes =
        tcp_read(&mut stream).unwrap_or_else(|| panic!("no TCP answer from {addr} to {ask:?}"));
    let message = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("the TCP answer to {ask:?} does not decode: {e}"));
    assert_eq!(
        message.metadata.id, id,
        "the TCP answer has the id of its query"
    );
    message
}

pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&addr, TCP_TIMEOUT).expect("connect to the DNS server over TCP");
    stream
        .set_read_timeout(Some(TCP_TIMEOUT))
        .expect("set a read timeout");
    stream
        .set_write_timeout(Some(TCP_TIMEOUT))
        .expect("set a write timeout");
    stream
}

/// Writes one message with its two-byte length prefix.
pub fn tcp_send(stream: &mut TcpStream, message: &[u8]) {
    let len = u16::try_from(message.len()).expect("a DNS message fits in 64 KiB");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).expect("write to the TCP stream");
}

/// Reads one length-prefixed message; `None` when the server closed the connection
/// (or did not answer within the timeout).
pub fn tcp_read(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Sends raw bytes over UDP and returns the first datagram that comes back within
/// `wait`, or `None`.
pub fn send_udp(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client socket");
    socket.connect(addr).expect("connect the UDP socket");
    socket.send(bytes).expect("send the packet");
    socket
        .set_read_timeout(Some(wait))
        .expect("set a read timeout");
    let mut buffer = vec![0u8; 65_535];
    let len = socket.recv(&mut buffer).ok()?;
    Some(buffer[..len].to_vec())
}

/// The record data of `records` in presentation form (`10.0.0.10`,
/// `10 www.example.internal.`), sorted, for comparisons.
pub fn rdata_strings<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<String> {
    let mut strings: Vec<String> = records
        .into_iter()
        .map(|record| rdata_string(&record.data))
        .collect();
    strings.sort();
    strings
}

/// One record's data in presentation form; TXT strings quoted and space-separated.
pub fn rdata_string(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The answers of `message` whose type is `rtype`, as presentation strings.
pub fn answers_of(message: &Message, rtype: RecordType) -> Vec<String> {
    rdata_strings(message.answers.iter().filter(|r| r.record_type() == rtype))
}

/// A compact description of a message for assertion failures.
pub fn describe(message: &Message) -> String {
    let m = &message.metadata;
    let section = |records: &[Record]| {
        records
            .iter()
            .map(|r| {
                format!(
                    "  {} {} {} {}",
                    r.name,
                    r.ttl,
                    r.record_type(),
                    rdata_string(&r.data)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "id={} qr={} opcode={:?} rcode={} aa={} tc={} rd={} ra={} edns={:?}\nquestion: {:?}\nanswer:\n{}\nauthority:\n{}\nadditional:\n{}",
        m.id,
        m.message_type == MessageType::Response,
        m.op_code,
        m.response_code,
        m.authoritative,
        m.truncation,
        m.recursion_desired,
        m.recursion_available,
        message.edns.as_ref().map(|e| e.max_payload()),
        message.queries,
        section(&message.answers),
        section(&message.authorities),
        section(&message.additionals),
    )
}
