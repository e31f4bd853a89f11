//! The client against our own primary (`Transfers`, served over a real TCP socket) and
//! against primaries that misbehave.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;
use tokio::net::TcpListener;

use super::*;
use crate::message::{Decoded, decode};
use crate::metrics::Metrics;
use crate::transfer::tsig::TsigKeys;
use crate::transfer::{Secondary, Transfer, TransferRules, Transfers};

const ZONE: &str = "hq.example.";
const SECRET: &str = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBzZWNvbmRhcnkgMDEyMzQ1Njc4OQ==";

fn rec(name: &str, rtype: RecordType, data: &str) -> Record {
    let name = Name::from_ascii(name).unwrap();
    Record::from_rdata(name, 300, RData::try_from_str(rtype, data).unwrap())
}

fn zone() -> Name {
    Name::from_ascii(ZONE).unwrap()
}

fn key(secret: &str) -> TSigner {
    let mut keys = TsigKeys::default();
    keys.add("xfr.", "hmac-sha256", secret).unwrap();
    keys.get(&Name::from_ascii("xfr.").unwrap())
        .unwrap()
        .clone()
}

/// A primary serving `shared` over TCP on loopback, transfers signed with [`SECRET`] only.
async fn primary(shared: Arc<ArcSwap<ReplicatedState>>) -> (SocketAddr, Arc<Transfers>) {
    let source = shared.clone();
    let transfers = Arc::new(Transfers::new(Box::new(move || source.load_full())));
    let mut keys = TsigKeys::default();
    keys.add("xfr.", "hmac-sha256", SECRET).unwrap();
    transfers.set_rules(TransferRules {
        keys,
        secondaries: vec![Secondary {
            zones: Vec::new(),
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            key: Some(Name::from_ascii("xfr.").unwrap()),
            notify: Vec::new(),
        }],
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = transfers.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let len = usize::from(stream.read_u16().await.unwrap());
            let mut query = vec![0; len];
            stream.read_exact(&mut query).await.unwrap();
            let Decoded::Transfer(whole) = decode(&query) else {
                continue;
            };
            let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let messages = match serving.answer(&query, *whole, client, &Metrics::default(), false)
            {
                Transfer::Reply(reply) => vec![reply],
                Transfer::Stream(mut outgoing) => {
                    std::iter::from_fn(|| outgoing.next_message().unwrap()).collect()
                }
            };
            for message in messages {
                stream.write_u16(message.len() as u16).await.unwrap();
                stream.write_all(&message).await.unwrap();
            }
        }
    });
    (addr, transfers)
}

fn site(hosts: u32) -> ReplicatedState {
    let soa = "ns1.hq.example. hostmaster.hq.example. 1 7200 3600 1209600 300";
    let mut records = vec![rec(ZONE, RecordType::SOA, soa)];
    records.extend((0..hosts).map(|i| {
        rec(
            &format!("h{i}.hq.example."),
            RecordType::A,
            &Ipv4Addr::from(0x0a00_0000 + i).to_string(),
        )
    }));
    let mut state = ReplicatedState::default();
    let records = encode_records(&records).unwrap();
    state
        .apply(&Command::CreateZone {
            origin: ZONE.into(),
            records,
        })
        .unwrap();
    state
}

#[tokio::test]
async fn a_signed_axfr_then_ixfr_from_our_own_primary() {
    let mut state = site(3_000);
    let shared = Arc::new(ArcSwap::from_pointee(state.clone()));
    let (addr, transfers) = primary(shared.clone()).await;
    transfers.journal().reset(shared.load_full(), 1);
    let signer = key(SECRET);
    let primary = Primary {
        addr,
        key: Some(&signer),
    };

    let Fetched::Whole(records) = primary.fetch(&zone(), None).await.unwrap() else {
        panic!("AXFR gives the whole zone");
    };
    assert_eq!(records.len(), 3_001);
    assert_eq!(soa_serial(&records[0]), Some(1));

    let change = Command::ReplaceRRset {
        owner: "h0.hq.example.".into(),
        rtype: RecordType::A.into(),
        records: encode_records(&[rec("h0.hq.example.", RecordType::A, "10.9.9.9")]).unwrap(),
    };
    let changes = state.apply(&change).unwrap();
    shared.store(Arc::new(state));
    transfers
        .journal()
        .applied(2, 2, shared.load_full(), [changes.as_slice()]);
    let Fetched::Changes { soa, steps } = primary.fetch(&zone(), Some(1)).await.unwrap() else {
        panic!("IXFR gives the difference");
    };
    assert_eq!(soa_serial(&soa), Some(2));
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].removed,
        [rec("h0.hq.example.", RecordType::A, "10.0.0.0")]
    );
    assert_eq!(
        steps[0].added,
        [rec("h0.hq.example.", RecordType::A, "10.9.9.9")]
    );
    let current = primary.fetch(&zone(), Some(2)).await.unwrap();
    assert_eq!(current, Fetched::Current { serial: 2 });
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_primary() {
    let shared = Arc::new(ArcSwap::from_pointee(site(1)));
    let (addr, _) = primary(shared).await;
    let wrong = key("d3Jvbmc=");
    let primary = Primary {
        addr,
        key: Some(&wrong),
    };
    let error = primary.fetch(&zone(), None).await.unwrap_err();
    // The NOTAUTH answer carries an unsigned TSIG (BADSIG), which our chain refuses.
    assert!(
        matches!(error, FetchError::Tsig(_) | FetchError::Refused(_)),
        "{error}"
    );
}

/// A primary that answers every query with `messages` (each framed), then closes.
async fn scripted(messages: Vec<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let len = usize::from(stream.read_u16().await.unwrap());
            let mut query = vec![0; len];
            stream.read_exact(&mut query).await.unwrap();
            let id = u16::from_be_bytes([query[0], query[1]]);
            for message in &messages {
                let mut message = message.clone();
                message[..2].copy_from_slice(&id.to_be_bytes());
                stream.write_u16(message.len() as u16).await.unwrap();
                stream.write_all(&message).await.unwrap();
            }
        }
    });
    addr
}

fn response(records: Vec<Record>) -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    message.add_query(Query::query(zone(), RecordType::AXFR));
    message.add_answers(records);
    message.to_vec().unwrap()
}

fn soa(serial: u32) -> Record {
    let data = format!("ns1.hq.example. hostmaster.hq.example. {serial} 1 1 1 1");
    rec(ZONE, RecordType::SOA, &data)
}

#[tokio::test]
async fn a_transfer_that_breaks_off_or_strays_outside_the_zone_is_an_error() {
    let www = rec("www.hq.example.", RecordType::A, "192.0.2.1");
    let broken = scripted(vec![response(vec![soa(5), www.clone()])]).await;
    let primary = Primary {
        addr: broken,
        key: None,
    };
    let error = primary.fetch(&zone(), None).await.unwrap_err();
    assert!(matches!(error, FetchError::BrokeOff(2)), "{error}");

    let stray = rec("www.elsewhere.example.", RecordType::A, "192.0.2.2");
    let outside = scripted(vec![response(vec![soa(5), stray, soa(5)])]).await;
    let primary = Primary {
        addr: outside,
        key: None,
    };
    let error = primary.fetch(&zone(), None).await.unwrap_err();
    assert!(
        error.to_string().contains("outside zone hq.example."),
        "{error}"
    );

    let no_soa = scripted(vec![response(vec![www.clone(), soa(5)])]).await;
    let primary = Primary {
        addr: no_soa,
        key: None,
    };
    let error = primary.fetch(&zone(), None).await.unwrap_err();
    assert!(
        error.to_string().contains("first record is not the SOA"),
        "{error}"
    );

    let whole = scripted(vec![
        response(vec![soa(5), www.clone()]),
        response(vec![soa(5)]),
    ])
    .await;
    let primary = Primary {
        addr: whole,
        key: None,
    };
    assert_eq!(
        primary.fetch(&zone(), None).await.unwrap(),
        Fetched::Whole(vec![soa(5), www])
    );
}

#[tokio::test]
async fn a_transfer_larger_than_one_write_is_refused_before_it_is_held() {
    // 300 messages of about 60 KiB each: 18 MB, past the 16 MiB a write may carry, and
    // never closed, so only the bound ends it.
    let txt = "\"".to_string() + &"x".repeat(250) + "\"";
    let filler: Vec<Record> = (0..230)
        .map(|i| rec(&format!("t{i}.hq.example."), RecordType::TXT, &txt))
        .collect();
    let mut messages = vec![response(vec![soa(5)])];
    messages.extend((0..300).map(|_| response(filler.clone())));
    let primary = Primary {
        addr: scripted(messages).await,
        key: None,
    };
    let error = primary.fetch(&zone(), None).await.unwrap_err();
    assert!(matches!(error, FetchError::TooLarge), "{error}");
}
