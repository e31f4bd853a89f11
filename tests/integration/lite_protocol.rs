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

/// `Welcome` (protocol `version`) and a snapshot of [`fake_zone`] as of index 2; the
/// client must acknowledge it with its cursor at 2.
fn welcome_with_the_fake_zone(socket: &mut Socket, version: u16) {
    send(
        socket,
        Frame::Welcome(Welcome {
            version,
            cluster_id: CLUSTER.into(),
            head: 2,
            zones: vec!["fake.test.".into()],
            mode: SyncMode::Snapshot,
        }),
    );
    send(socket, Frame::SnapshotBegin(SnapshotBegin { as_of: 2 }));
    send(
        socket,
        Frame::SnapshotChunk(SnapshotChunk {
            changes: fake_zone(),
        }),
    );
    send(socket, Frame::SnapshotEnd(SnapshotEnd { as_of: 2 }));
    assert_eq!(
        receive(socket),
        Frame::Ack(outpost_core::sync::Ack { cursor: 2 })
    );
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
        welcome_with_the_fake_zone(&mut socket, 1);
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

fn a_record(owner: &str, address: &str) -> WireChange {
    let origin = Name::from_ascii("fake.test.").unwrap();
    let records = parse_zone(&format!("{owner} 300 IN A {address}"), &origin, 300).unwrap();
    WireChange::RRsetPut {
        zone: "fake.test.".into(),
        owner: format!("{owner}.fake.test."),
        rtype: 1,
        records: encode_records(&records).unwrap(),
    }
}

fn changes_after(after: u64, up_to: u64, entries: Vec<ChangeEntry>) -> Frame {
    Frame::ChangesAfter(outpost_core::sync::ChangesAfter {
        after,
        changes: Changes { up_to, entries },
    })
}

/// An entry split over two frames lands whole: until its last part arrives the client
/// answers from the state before it. A `ChangesAfter` that does not follow the client's
/// position is a gap: nothing of it is applied, the cursor stays, and the client
/// resumes from it.
#[test]
fn a_split_entry_lands_whole_and_a_gap_is_resumed_from_the_cursor() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (checked_tx, checked_rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut socket = accept(&listener);
        hello(&mut socket);
        welcome_with_the_fake_zone(&mut socket, 3);
        // Entry 3 replaces host by moved: its first part (the delete) in one frame whose
        // up_to stays below the entry, then a heartbeat the test waits to see.
        let delete = WireChange::RRsetDeleted {
            zone: "fake.test.".into(),
            owner: "host.fake.test.".into(),
            rtype: 1,
        };
        send(
            &mut socket,
            changes_after(
                2,
                2,
                vec![ChangeEntry {
                    index: 3,
                    changes: vec![delete],
                }],
            ),
        );
        send(&mut socket, Frame::Heartbeat(Heartbeat { head: 9 }));
        checked_rx
            .recv()
            .expect("the test looked at the half-received entry");
        send(
            &mut socket,
            changes_after(
                2,
                3,
                vec![ChangeEntry {
                    index: 3,
                    changes: vec![a_record("moved", "10.9.0.2")],
                }],
            ),
        );
        assert_eq!(
            receive(&mut socket),
            Frame::Ack(outpost_core::sync::Ack { cursor: 3 })
        );
        // A batch that follows index 7, not 3: indexes 4 to 7 never arrived.
        send(
            &mut socket,
            changes_after(
                7,
                8,
                vec![ChangeEntry {
                    index: 8,
                    changes: vec![a_record("skipped", "10.9.0.8")],
                }],
            ),
        );
        let gap_close = close_code(&mut socket);
        // The client comes back from the cursor it had, not from 8.
        let mut socket = accept(&listener);
        let again = hello(&mut socket);
        let cursor = again.cursor.expect("a cursor");
        send(
            &mut socket,
            Frame::Welcome(Welcome {
                version: 3,
                cluster_id: CLUSTER.into(),
                head: 3,
                zones: vec!["fake.test.".into()],
                mode: SyncMode::Resume,
            }),
        );
        send(&mut socket, Frame::Heartbeat(Heartbeat { head: 3 }));
        (gap_close, cursor.index, socket)
    });

    let lite = Lite::start(&[url], TOKEN);
    lite.wait_for_status(
        "the heartbeat after the first part",
        outpost_tests::lite::SYNC_DEADLINE,
        |status| status["head"] == 9,
    );
    // The part was received (frames are handled in order) but not applied.
    assert_eq!(lite.a_records("host.fake.test."), ["10.9.0.1"]);
    assert_eq!(lite.a_records("moved.fake.test."), Vec::<String>::new());
    assert_eq!(lite.status_file()["cursor"], 2);
    checked_tx.send(()).unwrap();

    let (gap_close, resumed_from, _socket) = server.join().expect("the fake appliance's script");
    assert_eq!(gap_close, 1000, "{}", lite.log_tail());
    assert_eq!(resumed_from, 3, "the cursor did not move over the gap");
    assert!(
        lite.log().contains("gap in the change stream"),
        "{}",
        lite.log_tail()
    );
    // The whole entry landed at once, and nothing of the frame after the gap.
    assert_eq!(lite.a_records("moved.fake.test."), ["10.9.0.2"]);
    assert_eq!(lite.a_records("host.fake.test."), Vec::<String>::new());
    assert_eq!(lite.a_records("skipped.fake.test."), Vec::<String>::new());
}
