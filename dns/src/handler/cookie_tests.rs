//! DNS cookies through the query path: the server cookie in the reply, FORMERR on a
//! malformed option, and the exemption from rate limiting a valid cookie earns.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use super::tests::handler_without_upstream;
use super::*;
use crate::cookie::{COOKIE_OPTION, ClientCookie};
use crate::rate_limit::RateLimit;

const CLIENT_COOKIE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// A source that may not recurse, so rate limiting applies to it.
fn client() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

fn with_secrets(handler: QueryHandler) -> QueryHandler {
    let secrets = CookieSecrets {
        current: [9; 16],
        previous: None,
        rotated_unix: 0,
    };
    handler.with_cookie_secrets(Arc::new(ArcSwapOption::from_pointee(secrets)))
}

fn query(cookie: Option<&[u8]>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 7;
    message.add_query(Query::query(
        Name::from_ascii("www.example.internal.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    if let Some(cookie) = cookie {
        edns.options_mut()
            .insert(EdnsOption::Unknown(COOKIE_OPTION, cookie.to_vec()));
    }
    message.set_edns(edns);
    message.to_vec().unwrap()
}

/// The reply's rcode (extended) and the COOKIE option it carries; `None` for a drop.
fn ask(handler: &QueryHandler, packet: &[u8]) -> Option<(ResponseCode, Option<Vec<u8>>)> {
    let mut reply = Vec::new();
    match handler.handle(packet, client(), Transport::Udp, None, &mut reply) {
        Handled::Reply => {}
        Handled::Drop | Handled::Transfer(_) => return None,
        Handled::Forward(_) => panic!("a name of ours was forwarded"),
    }
    let message = Message::from_vec(&reply).unwrap();
    let cookie = message
        .edns
        .as_ref()
        .and_then(|edns| match edns.option(EdnsCode::Cookie) {
            Some(EdnsOption::Unknown(_, data)) => Some(data.clone()),
            _ => None,
        });
    Some((message.metadata.response_code, cookie))
}

#[test]
fn a_client_cookie_gets_a_server_cookie_when_the_node_has_secrets() {
    let handler = with_secrets(handler_without_upstream());
    let (rcode, cookie) = ask(&handler, &query(Some(&CLIENT_COOKIE))).unwrap();
    assert_eq!(rcode, ResponseCode::NoError);
    let cookie = cookie.expect("a server cookie in the reply");
    assert_eq!(cookie.len(), 24);
    assert_eq!(&cookie[..8], CLIENT_COOKIE.as_slice());
    // Sent back, it proves the client.
    let sent_back = ClientCookie::parse(&cookie).unwrap();
    let secrets = handler.cookie_secrets.load_full().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert!(sent_back.is_valid(&secrets, client(), now));

    // Without secrets (a Lite client), cookies are ignored.
    let (rcode, cookie) = ask(&handler_without_upstream(), &query(Some(&CLIENT_COOKIE))).unwrap();
    assert_eq!((rcode, cookie), (ResponseCode::NoError, None));
}

#[test]
fn a_cookie_option_of_a_wrong_length_is_formerr() {
    let handler = with_secrets(handler_without_upstream());
    for len in [0, 7, 9, 15, 41] {
        let (rcode, _) = ask(&handler, &query(Some(&vec![1; len]))).unwrap();
        assert_eq!(rcode, ResponseCode::FormErr, "{len} bytes");
    }
}

#[test]
fn a_valid_cookie_is_exempt_from_rate_limiting_and_a_client_cookie_gets_badcookie() {
    let handler = with_secrets(handler_without_upstream());
    handler.set_rate_limit(Some(RateLimit {
        responses_per_second: 1,
        slip: 0,
        exempt_recursion: true,
    }));
    let (_, cookie) = ask(&handler, &query(Some(&CLIENT_COOKIE))).unwrap();
    let cookie = cookie.unwrap();
    // One answer a second: without a cookie, the rest are dropped; with only a client
    // cookie, BADCOOKIE with a fresh cookie; with ours, every one is answered. (A round
    // that starts a new second gets that second's one answer.)
    let (mut dropped, mut badcookie) = (0, 0);
    for _ in 0..20 {
        if ask(&handler, &query(None)).is_none() {
            dropped += 1;
        }
        let (rcode, fresh) = ask(&handler, &query(Some(&CLIENT_COOKIE))).unwrap();
        assert!(
            fresh.is_some(),
            "every reply to a client cookie carries a server cookie"
        );
        if rcode == ResponseCode::BADCOOKIE {
            badcookie += 1;
        }
        let (rcode, _) = ask(&handler, &query(Some(&cookie))).unwrap();
        assert_eq!(rcode, ResponseCode::NoError);
    }
    assert!(
        dropped >= 15 && badcookie >= 15,
        "{dropped} dropped, {badcookie} BADCOOKIE"
    );
    let metrics = handler.metrics();
    assert_eq!(metrics.cookie_valid.load(Ordering::Relaxed), 20);
    assert_eq!(
        metrics.cookie_badcookie_sent.load(Ordering::Relaxed),
        badcookie
    );
}
