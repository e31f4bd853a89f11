//! Bad input on the DNS port: malformed packets get FORMERR (with no question echoed)
//! or are dropped, other opcodes get NOTIMP, responses are never answered, and after
//! all of it the server still answers.

use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::dns::{tcp_connect, tcp_read, tcp_send};
use outpost_tests::{
    Appliance, Ask, answers_of, ask_tcp, ask_udp, authoritative_config, describe, send_udp,
};

/// How long to wait for an answer that should come (a loaded machine is slow).
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long to listen for an answer that must not come.
const SILENCE_WAIT: Duration = Duration::from_secs(1);

/// The process is alive and answers over UDP and TCP.
fn assert_still_answers(appliance: &mut Appliance) {
    assert!(
        appliance.is_running(),
        "outpost exited\n{}",
        appliance.log_tail()
    );
    let ask = Ask::new("www.example.internal.", RecordType::A);
    assert_eq!(
        answers_of(&ask_udp(appliance.dns_addr(), &ask), RecordType::A),
        ["10.0.0.10"]
    );
    assert_eq!(
        answers_of(&ask_tcp(appliance.dns_addr(), &ask), RecordType::A),
        ["10.0.0.10"]
    );
    assert!(
        !appliance.log().contains("panicked"),
        "the server log shows a panic\n{}",
        appliance.log_tail()
    );
}

/// Asserts a FORMERR answer to id `id` that echoes no question.
fn assert_formerr(bytes: &[u8], id: u16, what: &str) {
    let answer = Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("{what}: the FORMERR does not decode: {e}"));
    let text = describe(&answer);
    assert_eq!(
        answer.metadata.message_type,
        MessageType::Response,
        "{what}\n{text}"
    );
    assert_eq!(answer.metadata.id, id, "{what}: the id is echoed\n{text}");
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::FormErr,
        "{what}\n{text}"
    );
    assert!(
        answer.queries.is_empty(),
        "{what}: no question echoed from a malformed query\n{text}"
    );
    assert!(
        answer.answers.is_empty() && answer.authorities.is_empty(),
        "{what}\n{text}"
    );
}

/// A header: id, flags (RD), counts.
fn header(id: u16, qdcount: u16, ancount: u16) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x01, 0x00]);
    for count in [qdcount, ancount, 0, 0] {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

#[test]
fn a_truncated_header_is_dropped_or_formerr_and_the_server_keeps_answering() {
    let mut appliance = Appliance::start(&authoritative_config());
    let valid = Ask::new("www.example.internal.", RecordType::A).to_bytes(0x5151);
    for len in 0..12 {
        if let Some(bytes) = send_udp(appliance.dns_addr(), &valid[..len], SILENCE_WAIT) {
            // An answer is only acceptable as a FORMERR to a readable id.
            assert!(len >= 2, "{len} bytes got an answer: {bytes:02x?}");
            assert_formerr(&bytes, 0x5151, &format!("{len}-byte header"));
        }
    }
    assert_still_answers(&mut appliance);
}

#[test]
fn bad_label_pointers_and_pointer_loops_get_formerr() {
    let mut appliance = Appliance::start(&authoritative_config());
    let question_tail = [0x00, 0x01, 0x00, 0x01];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "pointer past the end",
            [&[0xc0, 0xff][..], &question_tail].concat(),
        ),
        (
            "pointer to itself",
            [&[0xc0, 12][..], &question_tail].concat(),
        ),
        (
            "label then pointer back to it",
            [&[1, b'a', 0xc0, 12][..], &question_tail].concat(),
        ),
        (
            "two pointers to each other",
            [&[0xc0, 14, 0xc0, 12][..], &question_tail].concat(),
        ),
        (
            "reserved label type 0x40",
            [&[0x41, b'a', 0][..], &question_tail].concat(),
        ),
        (
            "label longer than the packet",
            [&[63, b'a', b'b', 0][..], &question_tail].concat(),
        ),
        (
            "question cut after the name",
            vec![3, b'w', b'w', b'w', 0, 0x00],
        ),
        ("name of 300 bytes", {
            let mut name = Vec::new();
            for _ in 0..5 {
                name.push(60);
                name.extend_from_slice(&[b'a'; 60]);
            }
            name.push(0);
            [&name[..], &question_tail].concat()
        }),
    ];
    for (index, (what, question)) in cases.into_iter().enumerate() {
        let id = 0x7000 + index as u16;
        let packet = [header(id, 1, 0), question].concat();
        let bytes = send_udp(appliance.dns_addr(), &packet, ANSWER_WAIT)
            .unwrap_or_else(|| panic!("{what}: no answer (expected FORMERR)"));
        assert_formerr(&bytes, id, what);
        // The same over TCP, on a connection that is then still usable or closed.
        let mut stream = tcp_connect(appliance.dns_addr());
        tcp_send(&mut stream, &packet);
        let bytes = tcp_read(&mut stream)
            .unwrap_or_else(|| panic!("{what}: no TCP answer (expected FORMERR)"));
        assert_formerr(&bytes, id, &format!("{what} (TCP)"));
    }
    assert_still_answers(&mut appliance);
}

#[test]
fn question_counts_other_than_one_get_formerr() {
    let mut appliance = Appliance::start(&authoritative_config());
    let question = [&[3, b'w', b'w', b'w', 0][..], &[0x00, 0x01, 0x00, 0x01]].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no question", header(0x6001, 0, 0)),
        (
            "two questions",
            [header(0x6002, 2, 0), question.clone(), question.clone()].concat(),
        ),
        ("count says one, none present", header(0x6003, 1, 0)),
        (
            "count says two, one present",
            [header(0x6004, 2, 0), question.clone()].concat(),
        ),
        (
            "an answer count with no answer",
            [header(0x6005, 1, 3), question.clone()].concat(),
        ),
        // What the fuzzer found: the parser sized 65,535 questions (megabytes) before
        // reading one; refused from the header now.
        ("65,535 questions claimed", header(0x6006, u16::MAX, 0)),
        (
            "65,535 answers claimed",
            [header(0x6007, 1, u16::MAX), question].concat(),
        ),
    ];
    for (what, packet) in cases {
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        let bytes = send_udp(appliance.dns_addr(), &packet, ANSWER_WAIT)
            .unwrap_or_else(|| panic!("{what}: no answer (expected FORMERR)"));
        assert_formerr(&bytes, id, what);
    }
    assert_still_answers(&mut appliance);
}

#[test]
fn meta_query_types_get_formerr_and_other_classes_refused() {
    let appliance = Appliance::start(&authoritative_config());
    // Type OPT (41) in a question is malformed (RFC 6891 section 6.1.1).
    let answer = ask_udp(
        appliance.dns_addr(),
        &Ask::new("www.example.internal.", RecordType::OPT),
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::FormErr,
        "{}",
        describe(&answer)
    );
    // Class CH: not served here.
    let mut packet = Ask::new("version.bind.", RecordType::TXT).to_bytes(0x4343);
    let len = packet.len();
    packet[len - 2..].copy_from_slice(&3u16.to_be_bytes());
    let bytes =
        send_udp(appliance.dns_addr(), &packet, ANSWER_WAIT).expect("an answer to a CH query");
    let answer = Message::from_vec(&bytes).expect("the answer decodes");
    assert_eq!(answer.metadata.id, 0x4343);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        describe(&answer)
    );
    assert!(answer.answers.is_empty(), "{}", describe(&answer));
}

#[test]
fn opcodes_other_than_query_get_notimp() {
    let mut appliance = Appliance::start(&authoritative_config());
    // NOTIFY is spoken (for followed zones), and refused for a zone we do not follow.
    let packet = Ask::new("example.internal.", RecordType::SOA)
        .op_code(OpCode::Notify)
        .to_bytes(0x2299);
    let bytes = send_udp(appliance.dns_addr(), &packet, ANSWER_WAIT).expect("an answer");
    let answer = Message::from_vec(&bytes).expect("the answer decodes");
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    assert_eq!(answer.metadata.op_code, OpCode::Notify);
    for (index, op_code) in [OpCode::Status, OpCode::Update, OpCode::Unknown(15)]
        .into_iter()
        .enumerate()
    {
        let id = 0x2200 + index as u16;
        let packet = Ask::new("example.internal.", RecordType::SOA)
            .op_code(op_code)
            .to_bytes(id);
        let bytes = send_udp(appliance.dns_addr(), &packet, ANSWER_WAIT)
            .unwrap_or_else(|| panic!("{op_code:?}: no answer (expected NOTIMP)"));
        let answer = Message::from_vec(&bytes).expect("the NOTIMP decodes");
        let text = describe(&answer);
        assert_eq!(answer.metadata.id, id, "{op_code:?}\n{text}");
        assert_eq!(
            answer.metadata.message_type,
            MessageType::Response,
            "{text}"
        );
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NotImp,
            "{op_code:?}\n{text}"
        );
        assert_eq!(
            answer.metadata.op_code, op_code,
            "the opcode is echoed\n{text}"
        );
        assert!(answer.answers.is_empty(), "{text}");
    }
    assert_still_answers(&mut appliance);
}

#[test]
fn incoming_responses_are_dropped_without_a_reply() {
    let mut appliance = Appliance::start(&authoritative_config());
    let dropped_before = appliance.metric("outpost_dns_dropped_total");
    // A well-formed response, as a reflection attack would send: QR set.
    let mut response = Message::response(0x3131, OpCode::Query);
    response.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("www.example.internal.").unwrap(),
        RecordType::A,
    ));
    let response = response.to_vec().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(appliance.dns_addr()).unwrap();
    socket.send(&response).unwrap();
    // A response with an error code, and one with a malformed body.
    let mut nxdomain = response.clone();
    nxdomain[3] = 0x03;
    socket.send(&nxdomain).unwrap();
    let mut garbage = response[..12].to_vec();
    garbage.extend_from_slice(&[0xc0, 0xff, 0xff]);
    socket.send(&garbage).unwrap();
    socket.set_read_timeout(Some(SILENCE_WAIT)).unwrap();
    let mut buffer = [0u8; 4096];
    if let Ok(len) = socket.recv(&mut buffer) {
        panic!("a response was answered: {:02x?}", &buffer[..len]);
    }
    // The same socket then gets the answer to a real query, and only that.
    socket.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    socket
        .send(&Ask::new("www.example.internal.", RecordType::A).to_bytes(0x3232))
        .unwrap();
    let len = socket
        .recv(&mut buffer)
        .expect("an answer to the real query");
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(
        answer.metadata.id,
        0x3232,
        "the first packet back answers the real query\n{}",
        describe(&answer)
    );
    assert!(
        appliance.metric("outpost_dns_dropped_total") >= dropped_before + 3.0,
        "the dropped responses are counted"
    );
    // Over TCP a response ends the connection without an answer.
    let mut stream = tcp_connect(appliance.dns_addr());
    tcp_send(&mut stream, &response);
    assert_eq!(
        tcp_read(&mut stream),
        None,
        "no answer to a response over TCP"
    );
    assert_still_answers(&mut appliance);
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_and_mutated_packets_never_stop_the_server() {
    let mut appliance = Appliance::start(&authoritative_config());
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let valid = Ask::new("www.example.internal.", RecordType::A)
        .edns(1232)
        .to_bytes(0x0101);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(appliance.dns_addr()).unwrap();
    for round in 0..600 {
        let packet = match round % 3 {
            // Pure noise of any length.
            0 => {
                let len = (random.next() % 600) as usize;
                random.bytes(len)
            }
            // A valid query with a few bytes flipped (QR cleared so it is a query).
            1 => {
                let mut packet = valid.clone();
                for _ in 0..1 + random.next() % 4 {
                    let at = (random.next() as usize) % packet.len();
                    packet[at] = random.next() as u8;
                }
                packet[2] &= 0x7f;
                packet
            }
            // A valid query cut anywhere, with noise appended.
            _ => {
                let cut = (random.next() as usize) % valid.len();
                let extra = (random.next() % 40) as usize;
                [&valid[..cut], &random.bytes(extra)].concat()
            }
        };
        socket.send(&packet).unwrap();
        if round % 50 == 0 {
            // Pace the sender a little so answers are not shed for load.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Noise over TCP too: frames of noise, a frame longer than what follows, an empty
    // frame, and a connection closed mid-frame.
    for round in 0..30 {
        let mut stream = tcp_connect(appliance.dns_addr());
        let len = (random.next() % 300) as usize;
        let frame = random.bytes(len);
        use std::io::Write as _;
        let _ = match round % 3 {
            0 => stream.write_all(&[&(len as u16).to_be_bytes()[..], &frame].concat()),
            1 => stream.write_all(&[&0xffffu16.to_be_bytes()[..], &frame].concat()),
            _ => stream.write_all(&[0, 0]),
        };
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = tcp_read(&mut stream);
    }
    assert_still_answers(&mut appliance);
}
