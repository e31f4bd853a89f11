//! The wire around the sessions: malformed frames, unknown types, other paths, the
//! session cap and TLS.

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_with_their_code_and_the_server_keeps_serving() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let oversize = u32::try_from(outpost_core::sync::MAX_FRAME_BODY + 1).unwrap();
    let mut huge = raw_frame(frame_type::HELLO, oversize, &[]);
    huge.resize(HEADER_LEN + outpost_core::sync::MAX_FRAME_BODY + 1, 0);
    let cases: Vec<(&str, Message, u16)> = vec![
        (
            "bad magic",
            Message::Binary(b"HTTP/1.1 200 OK\r\n".to_vec().into()),
            close::PROTOCOL_ERROR,
        ),
        (
            "shorter than a header",
            Message::Binary(b"OPS".to_vec().into()),
            close::PROTOCOL_ERROR,
        ),
        (
            "declared length over the cap",
            Message::Binary(raw_frame(frame_type::HELLO, oversize, b"abc").into()),
            close::TOO_LARGE,
        ),
        (
            "declared length not what follows",
            Message::Binary(raw_frame(frame_type::HELLO, 10, b"abc").into()),
            close::PROTOCOL_ERROR,
        ),
        (
            "garbage body",
            Message::Binary(raw_frame(frame_type::HELLO, 4, &[0xff; 4]).into()),
            close::PROTOCOL_ERROR,
        ),
        (
            "text message",
            Message::text("hello"),
            close::PROTOCOL_ERROR,
        ),
        (
            "a server frame from a client",
            Message::Binary(
                Frame::Heartbeat(outpost_core::sync::Heartbeat { head: 1 })
                    .encode()
                    .unwrap()
                    .into(),
            ),
            close::PROTOCOL_ERROR,
        ),
    ];
    let count = cases.len();
    for (what, message, code) in cases {
        // Before the Hello, and in the live phase after it.
        for after_hello in [false, true] {
            let mut client = Client::connect(harness.addr).await;
            if after_hello {
                client.hello(&token, None).await;
                client.snapshot().await;
            }
            client.ws.send(message.clone()).await.unwrap();
            let reason = client.expect_error_and_close(code).await;
            println!("{what} (after hello: {after_hello}): {reason}");
        }
    }

    // A message larger than any frame is refused while it arrives: the server says so
    // (4005) and closes, so the client may see its send fail and the close reset.
    let mut client = Client::connect(harness.addr).await;
    let _ = client.ws.send(Message::Binary(huge.into())).await;
    if let Some(Ok(Message::Binary(bytes))) = client.ws.next().await {
        match Frame::decode(&bytes).unwrap() {
            Some(Frame::Error(error)) => assert_eq!(error.code, close::TOO_LARGE),
            other => panic!("expected an Error frame, got {other:?}"),
        }
    }

    // Still serving, and a frame of a type from the future is skipped.
    let mut client = Client::connect(harness.addr).await;
    client.send_raw(raw_frame(999, 3, b"new")).await;
    client.hello(&token, None).await;
    client.snapshot().await;
    client.send_raw(raw_frame(1000, 0, b"")).await;
    let index = harness.add_a("site.internal.", "www", "10.0.0.1").await;
    assert_eq!(client.changes_until(index).await.len(), 1);

    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains(&format!(
            "\noutpost_sync_protocol_errors_total {}\n",
            2 * count + 1
        )),
        "{metrics}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_get_404() {
    let harness = Harness::start().await;
    let stream = TcpStream::connect(harness.addr).await.unwrap();
    let refused = client_async(format!("ws://{}/v1/other", harness.addr), stream)
        .await
        .unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 404);
        }
        other => panic!("expected 404, got {other}"),
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_session_cap_are_told_to_try_again_later() {
    let harness = Harness::start_with(Options {
        max_sessions: 1,
        ..Options::default()
    })
    .await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut first = Client::connect(harness.addr).await;
    first.hello(&token, None).await;
    first.snapshot().await;

    let mut second = Client::connect(harness.addr).await;
    second.expect_close(TRY_AGAIN_LATER).await;

    drop(first);
    // The first session's slot frees once the server sees it gone.
    let mut third = loop {
        let mut client = Client::connect(harness.addr).await;
        client.hello(&token, None).await;
        match client.next().await {
            Received::Frame(Frame::Welcome(_)) => break client,
            Received::Closed { code, .. } if code == TRY_AGAIN_LATER => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(matches!(third.frame().await, Frame::SnapshotBegin(_)));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sync/testdata");
    let tls = TlsConfig::load(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    // What `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints.
    assert_eq!(
        tls.fingerprint(),
        "88:11:E7:80:66:A8:EB:9D:91:F9:4D:2F:99:D3:78:84:E0:CE:43:5D:4E:C9:A1:99:5F:86:C4:21:76:C3:B8:F0"
    );
    let harness = Harness::start_with(Options {
        tls: Some(tls),
        ..Options::default()
    })
    .await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(harness.addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (ws, _) = client_async(format!("wss://localhost{SYNC_PATH}"), stream)
        .await
        .unwrap();
    let mut client = Client { ws, position: None };
    client.hello(&token, None).await;
    let (_, snapshot) = client.snapshot().await;
    assert_eq!(snapshot.len(), 4);

    // Plain WebSocket on a TLS port gets nowhere.
    let plain = TcpStream::connect(harness.addr).await.unwrap();
    let refused = tokio::time::timeout(
        WAIT,
        client_async(format!("ws://{}{SYNC_PATH}", harness.addr), plain),
    )
    .await
    .unwrap();
    assert!(refused.is_err());
    harness.stop().await;
}

#[test]
fn unreadable_certificates_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = TlsConfig::load(&missing, &missing).unwrap_err().to_string();
    assert!(error.starts_with("sync.tls_cert "), "{error}");
    assert!(error.contains("missing.pem"), "{error}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = TlsConfig::load(&empty, &empty).unwrap_err().to_string();
    assert!(error.contains("no certificate in the file"), "{error}");

    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sync/testdata");
    let error = TlsConfig::load(&testdata.join("cert.pem"), &empty)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("sync.tls_key "), "{error}");
}
