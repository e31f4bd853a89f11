//! Response rate limiting (`[dns.rate_limit]`) on the real appliance: a burst from one
//! source over UDP gets its allowance, then every second limited answer truncated and
//! the rest dropped, all counted; the same source over TCP is answered in full; clients
//! that may recurse are exempt.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::{Appliance, Ask, answers_of, ask_tcp, describe, unused_upstream};

/// Queries in the burst, all sent before any answer is read.
const BURST: u16 = 200;
/// The configured allowance per second.
const RATE: u16 = 10;
/// How long the socket stays quiet before the burst's answers are taken as all in.
const SILENCE: Duration = Duration::from_secs(1);

fn config(allow_recursion: &str) -> String {
    format!(
        "[dns]\nallow_recursion = {allow_recursion}\n\n[dns.rate_limit]\nresponses_per_second = {RATE}\nslip = 2\n\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    )
}

/// Sends the burst over UDP and sorts the answers that came: (full, truncated).
pub(crate) fn burst(appliance: &Appliance) -> (u16, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    let ask = Ask::new("www.example.internal.", RecordType::A);
    for id in 0..BURST {
        socket
            .send_to(&ask.to_bytes(id), appliance.dns_addr())
            .unwrap();
    }
    let mut answers = HashMap::new();
    let mut buffer = [0u8; 1232];
    while let Ok(len) = socket.recv(&mut buffer) {
        let message = Message::from_vec(&buffer[..len]).expect("an answer decodes");
        assert_eq!(
            message.metadata.response_code,
            ResponseCode::NoError,
            "{}",
            describe(&message)
        );
        let full = !message.metadata.truncation;
        if full {
            assert_eq!(answers_of(&message, RecordType::A), ["10.0.0.10"]);
        } else {
            assert!(message.answers.is_empty(), "{}", describe(&message));
            assert_eq!(message.queries.len(), 1, "the question is echoed");
        }
        assert!(
            answers.insert(message.metadata.id, full).is_none(),
            "one answer per query"
        );
    }
    let full = answers.values().filter(|full| **full).count();
    let truncated = answers.len() - full;
    (
        u16::try_from(full).unwrap(),
        u16::try_from(truncated).unwrap(),
    )
}

#[test]
fn a_burst_past_the_rate_is_dropped_or_truncated_and_tcp_still_answers() {
    let appliance = Appliance::start(&config("[]"));
    let (full, truncated) = burst(&appliance);
    let dropped = appliance.metric("outpost_dns_rate_limit_dropped_total");
    let slipped = appliance.metric("outpost_dns_rate_limit_slipped_total");
    // The burst may straddle a second's boundary: one or two allowances.
    assert!(
        (RATE..=2 * RATE).contains(&full),
        "{full} full answers for an allowance of {RATE} a second"
    );
    assert_eq!(f64::from(truncated), slipped, "each slip is counted");
    assert_eq!(f64::from(full) + slipped + dropped, f64::from(BURST));
    // Slip 2: every second limited answer is truncated, the others dropped.
    assert!(
        (slipped - dropped).abs() <= 2.0,
        "slipped {slipped}, dropped {dropped}"
    );

    // The same source over TCP is not limited: its address is proven.
    let answer = ask_tcp(
        appliance.dns_addr(),
        &Ask::new("www.example.internal.", RecordType::A),
    );
    assert_eq!(answers_of(&answer, RecordType::A), ["10.0.0.10"]);
}

#[test]
fn clients_that_may_recurse_are_not_limited() {
    let appliance = Appliance::start(&config("[\"127.0.0.0/8\"]"));
    assert_eq!(burst(&appliance), (BURST, 0));
    assert_eq!(
        appliance.metric("outpost_dns_rate_limit_dropped_total"),
        0.0
    );
}
