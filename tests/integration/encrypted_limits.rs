//! DNS over TLS holds the limits of plain TCP (it is the same loop behind a TLS
//! handshake): a client that pipelines queries and never reads its answers is cut off
//! at the write deadline, one source cannot hold more than its share of connections,
//! a client that sends something other than a DNS query is disconnected, and a
//! well-behaved client is served meanwhile. A DoH client that never reads is cut off
//! too.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use outpost_tests::{Appliance, unused_upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

/// `server::tcp::TCP_WRITE_TIMEOUT` (5 s) and time to notice.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(20);

fn start() -> (Appliance, SocketAddr) {
    let appliance = Appliance::start(&format!(
        "[dns]\nallow_recursion = []\ntls_listen = \"127.0.0.1:0\"\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    let tls = appliance.listener("dns_tls");
    (appliance, tls)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS connection to the appliance's DoT listener, trusting only its self-signed
/// certificate.
async fn dot_connect(appliance: &Appliance, addr: SocketAddr) -> TlsStream<TcpStream> {
    tls_connect(appliance, addr, b"dot").await
}

async fn tls_connect(appliance: &Appliance, addr: SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    let pem = appliance.data_dir().join("dns-tls.pem");
    for cert in CertificateDer::pem_file_iter(&pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake")
}

fn framed_query(id: u16, name: &str) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = message.to_vec().unwrap();
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    framed
}

/// `kdig +tls` from `source`: its status, or what went wrong.
fn kdig_tls(addr: SocketAddr, source: &str) -> String {
    kdig_status(addr, source, "+tls")
}

/// `kdig` over `transport` (`+tls`, `+https`) from `source`: its status, or what went
/// wrong.
fn kdig_status(addr: SocketAddr, source: &str, transport: &str) -> String {
    let output = Command::new("kdig")
        .args(["-b", source, &format!("@{}", addr.ip())])
        .args(["-p", &addr.port().to_string()])
        .args([
            transport,
            "+timeout=5",
            "+retry=0",
            "+noall",
            "+header",
            "ns1.example.internal.",
            "A",
        ])
        .output()
        .expect("run kdig (Debian package knot-dnsutils; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.split("; status: ")
        .nth(1)
        .and_then(|rest| rest.split([';', ',']).next())
        .map_or_else(
            || {
                format!(
                    "no answer: {text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            },
            str::to_string,
        )
}

#[test]
fn a_dot_client_that_never_reads_is_cut_off_and_others_are_served() {
    let (appliance, tls) = start();
    appliance.import_zone(
        "example.internal.",
        "$ORIGIN example.internal.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nns1 300 IN A 10.0.0.1\n",
    );
    // The flood runs on the runtime's own thread while kdig asks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(dot_connect(&appliance, tls));
    let (_unread, mut writer) = tokio::io::split(stream);
    let flood = runtime.spawn(async move {
        let batch = framed_query(1, "ns1.example.internal.").repeat(512);
        loop {
            // Ends once the server has closed the connection.
            if let Err(error) = writer.write_all(&batch).await {
                return error;
            }
        }
    });
    // A well-behaved client is answered meanwhile.
    assert_eq!(kdig_tls(tls, "127.0.0.1"), "NOERROR");
    let ended = runtime
        .block_on(async { tokio::time::timeout(CUT_OFF_WITHIN, flood).await })
        .expect("the server cut off a DoT client that never reads")
        .unwrap();
    assert!(
        matches!(
            ended.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{ended}"
    );
    assert_eq!(kdig_tls(tls, "127.0.0.1"), "NOERROR");
}

#[test]
fn dot_holds_a_source_to_its_connection_cap_and_serves_others_meanwhile() {
    let (appliance, tls) = start();
    appliance.import_zone(
        "example.internal.",
        "$ORIGIN example.internal.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nns1 300 IN A 10.0.0.1\n",
    );
    // 32 connections (MAX_TCP_CONNECTIONS_PER_SOURCE) that never start TLS.
    let held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(tls).unwrap())
        .collect();
    assert!(
        kdig_tls(tls, "127.0.0.1").starts_with("no answer"),
        "the 33rd from one source is refused"
    );
    assert!(appliance.metric("outpost_dns_tcp_refused_total") >= 1.0);
    assert_eq!(
        kdig_tls(tls, "127.0.0.2"),
        "NOERROR",
        "another source is served"
    );
    drop(held);
    assert!(
        outpost_tests::wait_until(Duration::from_secs(20), || kdig_tls(tls, "127.0.0.1")
            == "NOERROR"),
        "127.0.0.1 is not served after its connections closed"
    );
}

#[test]
fn a_dot_client_that_sends_no_query_is_disconnected() {
    let (appliance, tls) = start();
    let runtime = runtime();
    runtime.block_on(async {
        // A response where a query belongs: the same as over TCP, the connection ends.
        let mut stream = dot_connect(&appliance, tls).await;
        let mut response = framed_query(7, "ns1.example.internal.");
        response[4] |= 0x80;
        stream.write_all(&response).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the server closes the connection at once, not at the idle timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // A client that completes the handshake and says nothing is closed at the
        // idle timeout (10 s).
        let mut silent = dot_connect(&appliance, tls).await;
        let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut byte))
            .await
            .expect("a silent DoT client is closed at the idle timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    });
}

#[test]
fn a_doh_client_that_never_reads_is_cut_off() {
    let appliance = Appliance::start(&format!(
        "[dns]\nallow_recursion = []\nhttps_listen = \"127.0.0.1:0\"\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    let https = appliance.listener("dns_https");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ended = runtime.block_on(async {
        let stream = tls_connect(&appliance, https, b"h2").await;
        // A window of 0 that is never opened: the server can send headers but no
        // answer, so every stream stays open, as with a client that does not read.
        let (mut sender, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .initial_connection_window_size(65_535)
            .handshake::<_, bytes::Bytes>(stream)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let query = bytes::Bytes::from(framed_query(0, "ns1.example.internal.")[2..].to_vec());
        let mut responses = Vec::new();
        for _ in 0..200 {
            let Ok(Ok(ready)) = tokio::time::timeout(Duration::from_secs(2), sender.ready()).await
            else {
                // The server's stream limit is reached: every slot holds an unread answer.
                break;
            };
            sender = ready;
            let request =
                http::Request::post(format!("https://localhost:{}/dns-query", https.port()))
                    .header("content-type", "application/dns-message")
                    .body(())
                    .unwrap();
            let Ok((response, mut body)) = sender.send_request(request, false) else {
                break;
            };
            let _ = body.send_data(query.clone(), true);
            responses.push(response);
        }
        assert!(!responses.is_empty(), "no request was taken");
        tokio::time::timeout(CUT_OFF_WITHIN + Duration::from_secs(10), connection)
            .await
            .is_ok()
    });
    assert!(
        ended,
        "the server closed a DoH connection whose client never reads"
    );
    // And serves others.
    assert_eq!(kdig_status(https, "127.0.0.1", "+https"), "NOERROR");
}
