//! The Lite client against a scripted fake appliance (a blocking WebSocket server in
//! the test), for what a real appliance never sends: unknown frame types (skipped),
//! garbage (closed with 4001) and oversized messages (closed with 4005). The replica
//! and cursor committed before survive each of them.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use hickory_proto::rr::Name;
use outpost_core::sync::{
    ChangeEntry, Changes, Frame, Heartbeat, Hello, SnapshotBegin, SnapshotChunk, SnapshotEnd,
    SyncMode, Welcome, WireChange,
};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use outpost_tests::Lite;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

const CLUSTER: &str = "fake-cluster";
const TOKEN: &str = "fake:token";

type Socket = WebSocket<TcpStream>;

fn accept(listener: &TcpListener) -> Socket {
    let (stream, _) = listener.accept().expect("the client connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    tungstenite::accept(stream).expect("a WebSocket handshake")
}

fn send(socket: &mut Socket, frame: Frame) {
    let bytes = frame.encode().unwrap();
    socket.send(Message::Binary(bytes.into())).unwrap();
}

/// The next frame from the client (pings and pongs skipped).
fn receive(socket: &mut Socket) -> Frame {
    loop {
        match socket.read().expect("a message from the client") {
            Message::Binary(bytes) => {
                return Frame::decode(&bytes).unwrap().expect("a known frame type");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Reads until the client's close frame; returns its code.
fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match socket.read() {
            Ok(Message::Close(Some(frame))) => return u16::from(frame.code),
            Ok(Message::Close(None)) => return 1005,
            Ok(_) => {}
            Err(error) => panic!("no close frame from the client: {error}"),
        }
    }
}

fn hello(socket: &mut Socket) -> Hello {
    match receive(socket) {
        Frame::Hello(hello) => hello,
        other => panic!("expected Hello, got {other:?}"),
    }
}

fn fake_zone() -> Vec<WireChange> {
    let origin = Name::from_ascii("fake.test.").unwrap();
    let soa = parse_zone(
        "@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
        &origin,
        300,
    )
    .unwrap();
    let host = parse_zone("host 300 IN A 10.9.0.1", &origin, 300).unwrap();
    vec![
        WireChange::ZonePut {
            origin: "fake.test.".into(),
        },
        WireChange::RRsetPut {
            zone: "fake.test.".into(),
            owner: "fake.test.".into(),
            rtype: 6,
            records: encode_records(&soa).unwrap(),
        },
        WireChange::RRsetPut {
            zone: "fake.test.".into(),
            owner: "host.fake.test.".into(),
            rtype: 1,
            records: encode_records(&host).unwrap(),
        },
    ]
}

/// A well-formed frame of a type no version defines yet.
fn unknown_frame() -> Vec<u8> {
    let body = b"from a newer appliance";
    let mut bytes = b"OPST".to_vec();
    bytes.extend_from_slice(&0x7777u16.to_be_bytes());
    bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn unknown_frames_are_skipped_and_malformed_or_oversized_ones_close_the_session() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        // Session 1: a snapshot, behind an unknown frame; then garbage.
        let mut socket = accept(&listener);
        let first = hello(&mut socket);
        assert_eq!(first.token, TOKEN);
        assert_eq!(first.cursor, None);
        assert!(
            first.min_version <= 1 && first.max_version >= 1,
            "{first:?}"
        );
        socket
            .send(Message::Binary(unknown_frame().into()))
            .unwrap();
        send(
            &mut socket,
            Frame::Welcome(Welcome {
                version: 1,
                cluster_id: CLUSTER.into(),
                head: 2,
                zones: vec!["fake.test.".into()],
                mode: SyncMode::Snapshot,
            }),
        );
        send(
            &mut socket,
            Frame::SnapshotBegin(SnapshotBegin { as_of: 2 }),
        );
        send(
            &mut socket,
            Frame::SnapshotChunk(SnapshotChunk {
                changes: fake_zone(),
            }),
        );
        send(&mut socket, Frame::SnapshotEnd(SnapshotEnd { as_of: 2 }));
        assert_eq!(
            receive(&mut socket),
            Frame::Ack(outpost_core::sync::Ack { cursor: 2 })
        );
        send(&mut socket, Frame::Heartbeat(Heartbeat { head: 2 }));
        socket
            .send(Message::Binary(b"definitely not a frame".to_vec().into()))
            .unwrap();
        let garbage_close = close_code(&mut socket);

        // Session 2: resumes from the stored cursor; a delete; then an oversized message.
        let mut socket = accept(&listener);
        let second = hello(&mut socket);
        let cursor = second.cursor.expect("the cursor was stored");
        assert_eq!((cursor.cluster_id.as_str(), cursor.index), (CLUSTER, 2));
        send(
            &mut socket,
            Frame::Welcome(Welcome {
                version: 1,
                cluster_id: CLUSTER.into(),
                head: 3,
                zones: vec!["fake.test.".into()],
                mode: SyncMode::Resume,
            }),
        );
        send(
            &mut socket,
            Frame::Changes(Changes {
                up_to: 3,
                entries: vec![ChangeEntry {
                    index: 3,
                    changes: vec![WireChange::RRsetDeleted {
                        zone: "fake.test.".into(),
                        owner: "host.fake.test.".into(),
                        rtype: 1,
                    }],
                }],
            }),
        );
        assert_eq!(
            receive(&mut socket),
            Frame::Ack(outpost_core::sync::Ack { cursor: 3 })
        );
        // Over the largest message any version takes (protocol 2: one large change).
        let largest = outpost_core::sync::HEADER_LEN + outpost_core::sync::MAX_LONE_CHANGE_BODY;
        let oversized = vec![0u8; largest + 1];
        let _ = socket.send(Message::Binary(oversized.into()));
        let oversized_close = close_code(&mut socket);
        (garbage_close, oversized_close)
    });

    let lite = Lite::start(&[url], TOKEN);
    let (garbage_close, oversized_close) = server.join().expect("the fake appliance's script");
    assert_eq!(garbage_close, 4001, "{}", lite.log_tail());
    assert_eq!(oversized_close, 4005, "{}", lite.log_tail());
    assert!(
        lite.log().contains("malformed frame"),
        "{}",
        lite.log_tail()
    );

    // The snapshot was kept, the later delete too, and the cursor says so.
    lite.wait_for_a("host.fake.test.", &[]);
    let answer = lite.query("fake.test.", hickory_proto::rr::RecordType::SOA);
    assert!(answer.metadata.authoritative);
    let status = lite.wait_for_status("cursor 3", outpost_tests::lite::SYNC_DEADLINE, |status| {
        status["cursor"] == 3
    });
    assert_eq!(status["zones"], 1, "{status}");
    assert_eq!(status["records"], 1, "{status}");
}
