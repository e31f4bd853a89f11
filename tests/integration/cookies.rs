//! DNS cookies (RFC 7873, RFC 9018) on real appliances: `dig +cookie` gets a server cookie
//! it calls good, and a cookie one node of a cluster gave out exempts its client from
//! response rate limiting on another node (the secret is shared through Raft).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use outpost_tests::cluster::start_cluster;
use outpost_tests::{
    Appliance, Lite, authoritative_config, create_lite_token, describe, unused_upstream,
};

/// How long a new cluster may take to make its first secret and replicate it.
const SECRET_WAIT: Duration = Duration::from_secs(30);
/// Queries in a burst, all sent before any answer is read.
const BURST: u16 = 200;
/// The configured allowance per second.
const RATE: u16 = 10;
/// How long the socket stays quiet before a burst's answers are taken as all in.
const SILENCE: Duration = Duration::from_secs(1);
const CLIENT_COOKIE: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
/// `[dns.rate_limit]` with no client exempt for recursing.
const RATE_LIMITED: &str =
    "\n[dns]\nallow_recursion = []\n\n[dns.rate_limit]\nresponses_per_second = 10\nslip = 2\n";

fn query(id: u16, cookie: &[u8]) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(
        Name::from_ascii("www.example.internal.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    if !cookie.is_empty() {
        edns.options_mut()
            .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    }
    message.set_edns(edns);
    message.to_vec().unwrap()
}

fn cookie_of(message: &Message) -> Option<Vec<u8>> {
    match message.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, data) => Some(data.clone()),
        _ => None,
    }
}

/// A client cookie and the server cookie `dns` returned for it, once it has a secret.
fn obtain_cookie(dns: SocketAddr) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    let deadline = Instant::now() + SECRET_WAIT;
    let mut buffer = [0u8; 1232];
    loop {
        socket.send_to(&query(1, &CLIENT_COOKIE), dns).unwrap();
        if let Ok(len) = socket.recv(&mut buffer) {
            let message = Message::from_vec(&buffer[..len]).unwrap();
            if let Some(cookie) = cookie_of(&message) {
                assert_eq!(cookie.len(), 24, "{}", describe(&message));
                assert_eq!(&cookie[..8], CLIENT_COOKIE.as_slice());
                return cookie;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no server cookie from {dns} within {SECRET_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The reply of `dns` to one query carrying `cookie`.
fn ask(dns: SocketAddr, cookie: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&query(3, cookie), dns).unwrap();
    let mut buffer = [0u8; 1232];
    let len = socket.recv(&mut buffer).expect("an answer");
    Message::from_vec(&buffer[..len]).unwrap()
}

/// Sends a burst carrying `cookie` (none when empty) and counts the full answers.
fn burst(dns: SocketAddr, cookie: &[u8]) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    for id in 0..BURST {
        socket.send_to(&query(id, cookie), dns).unwrap();
    }
    let mut full = HashSet::new();
    let mut buffer = [0u8; 1232];
    while let Ok(len) = socket.recv(&mut buffer) {
        let message = Message::from_vec(&buffer[..len]).unwrap();
        if message.metadata.response_code == ResponseCode::NoError
            && !message.metadata.truncation
            && !message.answers.is_empty()
        {
            full.insert(message.metadata.id);
        }
    }
    full.len()
}

#[test]
fn dig_gets_a_server_cookie_it_calls_good() {
    let appliance = Appliance::start(&format!(
        "[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    let dns = appliance.dns_addr();
    // Waits for the first secret, then asks as dig does.
    obtain_cookie(dns);
    let out = Command::new("dig")
        .args([
            &format!("@{}", dns.ip()),
            "-p",
            &dns.port().to_string(),
            "+cookie",
            "+tries=1",
            "+time=5",
            "www.example.internal",
            "A",
        ])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|line| line.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no COOKIE in dig's answer:\n{text}"));
    assert!(line.ends_with("(good)"), "{line}");
    // The client cookie (16 hex digits) and our 16-byte server cookie.
    assert_eq!(
        line.split_whitespace().nth(2).map(str::len),
        Some(48),
        "{line}"
    );
}

#[test]
fn a_cookie_from_one_node_exempts_its_client_from_rate_limiting_on_another() {
    let nodes = start_cluster(3, RATE_LIMITED);
    let cookie = obtain_cookie(nodes[0].dns_addr());
    let other = &nodes[1];
    // Node B has the secret once it calls the cookie valid.
    let deadline = Instant::now() + SECRET_WAIT;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    while other.metric("outpost_dns_cookies_valid_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "node B never accepted node A's cookie"
        );
        socket
            .send_to(&query(2, &cookie), other.dns_addr())
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let with_cookie = burst(other.dns_addr(), &cookie);
    assert_eq!(
        with_cookie,
        usize::from(BURST),
        "every query with the cookie answered"
    );
    let without = burst(other.dns_addr(), &[]);
    assert!(
        without <= usize::from(2 * RATE),
        "{without} full answers without a cookie for an allowance of {RATE} a second"
    );
    // A client cookie alone, past the allowance, gets BADCOOKIE and a fresh cookie.
    let only_client = burst(other.dns_addr(), &CLIENT_COOKIE);
    assert!(only_client <= usize::from(2 * RATE), "{only_client}");
    assert!(other.metric("outpost_dns_cookies_badcookie_total") > 0.0);
}

#[test]
fn a_cookie_stays_good_across_a_restart() {
    let mut appliance = Appliance::start(&authoritative_config());
    let cookie = obtain_cookie(appliance.dns_addr());
    appliance.restart();
    let answer = ask(appliance.dns_addr(), &cookie);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        describe(&answer)
    );
    assert!(cookie_of(&answer).is_some(), "{}", describe(&answer));
    // The secret was kept, not made afresh: the cookie is still valid.
    assert_eq!(appliance.metric("outpost_dns_cookies_valid_total"), 1.0);
}

#[test]
fn a_lite_client_has_no_secret_and_answers_without_a_cookie() {
    let appliance = Appliance::start(&authoritative_config());
    obtain_cookie(appliance.dns_addr());
    let token = create_lite_token(&appliance, "laptop", "example.internal.");
    let lite = Lite::start_for(&appliance, &token);
    lite.wait_synced();
    lite.wait_for_a("www.example.internal.", &["10.0.0.10"]);
    let answer = ask(lite.dns_addr(), &CLIENT_COOKIE);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        describe(&answer)
    );
    assert_eq!(cookie_of(&answer), None, "{}", describe(&answer));
}
