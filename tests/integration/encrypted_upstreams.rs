//! Forwarding over DNS over TLS and DNS over HTTPS: the upstream is another outpost
//! serving DoT and DoH with its self-signed certificate, trusted through
//! `forward.tls_ca_file`. Many questions at once share one kept connection; a
//! connection the upstream closed is replaced; a certificate that does not name the
//! upstream is refused; a hostile upstream (wrong question, garbage, silence) is
//! skipped for the next; the Lite client forwards the same way.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::appliance::check_config_error;
use outpost_tests::{
    Appliance, Ask, Lite, answers_of, ask_udp, create_lite_token, describe, sync_url,
    unused_upstream,
};

/// Questions asked at once through the forwarder.
const NAMES: usize = 48;

/// The upstream's `server::encrypted::ENCRYPTED_TIMEOUT` (10 s), after which it closes an
/// idle connection, and a margin for a loaded machine.
const UPSTREAM_IDLE_CLOSE: Duration = Duration::from_secs(10 + 3);

/// A zone with `NAMES` hosts, served by the upstream.
fn far_zone() -> String {
    let mut zone = String::from(
        "$ORIGIN far.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 10.7.0.1\n",
    );
    for host in 0..NAMES {
        zone.push_str(&format!("h{host} IN A 10.7.1.{host}\n"));
    }
    zone
}

/// An outpost serving `far.test.` (and `near.test.`) over DoT and DoH, recursing for
/// nobody.
fn upstream() -> Appliance {
    let appliance = Appliance::start(&format!(
        "[dns]\nallow_recursion = []\ntls_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\
         [forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    appliance.import_zone("far.test.", &far_zone());
    appliance.import_zone(
        "near.test.",
        "$ORIGIN near.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nwww IN A 10.8.0.1\n",
    );
    appliance
}

/// The upstream's self-signed certificate (the PEM file also holds its key, which
/// a CA file reader skips).
fn certificate(appliance: &Appliance) -> String {
    appliance
        .data_dir()
        .join("dns-tls.pem")
        .display()
        .to_string()
}

/// An outpost that forwards everything to `upstream_form`.
fn forwarder(upstream_form: &str, ca_file: &str) -> Appliance {
    Appliance::start(&format!(
        "[forward]\nupstreams = [\"{upstream_form}\"]\ntls_ca_file = \"{ca_file}\"\ntimeout_ms = 3000\n"
    ))
}

/// Asks `forwarder` for every host of `far.test.` at once and checks each answer.
fn ask_all_at_once(forwarder: &Appliance) {
    std::thread::scope(|scope| {
        for host in 0..NAMES {
            scope.spawn(move || {
                let name = format!("h{host}.far.test.");
                let answer = ask_udp(forwarder.dns_addr(), &Ask::new(&name, RecordType::A));
                assert_eq!(
                    answer.metadata.response_code,
                    ResponseCode::NoError,
                    "{name}: {}",
                    describe(&answer)
                );
                assert_eq!(
                    answers_of(&answer, RecordType::A),
                    [format!("10.7.1.{host}")]
                );
            });
        }
    });
}

/// The whole check for one encrypted form: `NAMES` questions at once over one
/// connection, then, once the upstream has closed it for idleness, a new one.
fn forwards_over(form: impl Fn(SocketAddr) -> String, key: &str, protocol: &str) {
    let upstream = upstream();
    let form = form(upstream.listener(key));
    let forwarder = forwarder(&form, &certificate(&upstream));
    ask_all_at_once(&forwarder);
    assert_eq!(
        forwarder.metric("outpost_upstream_connections_total"),
        1.0,
        "{form}: {NAMES} questions at once share one connection"
    );
    let over = format!("outpost_dns_queries_total{{protocol=\"{protocol}\",rcode=\"NOERROR\"}}");
    assert_eq!(
        upstream.metric(&over),
        NAMES as f64,
        "{form}: asked over {protocol}"
    );
    // The upstream closes a connection idle for ENCRYPTED_TIMEOUT; the next question
    // opens another. Nothing to poll meanwhile: asking would keep the connection alive.
    std::thread::sleep(UPSTREAM_IDLE_CLOSE);
    let answer = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("www.near.test.", RecordType::A),
    );
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.8.0.1"],
        "{}",
        describe(&answer)
    );
    assert_eq!(forwarder.metric("outpost_upstream_connections_total"), 2.0);
    assert_eq!(forwarder.metric("outpost_upstream_failures_total"), 0.0);
}

#[test]
fn forwards_over_tls_on_one_pipelined_connection() {
    forwards_over(|addr| format!("tls://{addr}#localhost"), "dns_tls", "tls");
}

#[test]
fn forwards_over_https_on_one_http2_connection() {
    forwards_over(
        |addr| format!("https://{addr}/dns-query#localhost"),
        "dns_https",
        "https",
    );
}

#[test]
fn an_upstream_whose_certificate_does_not_verify_is_not_used() {
    let upstream = upstream();
    let tls = upstream.listener("dns_tls");
    let https = upstream.listener("dns_https");
    let elsewhere = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(elsewhere.path(), rcgen_free_certificate()).unwrap();
    for (form, ca_file) in [
        // The certificate names localhost and 127.0.0.1, not this.
        (
            format!("tls://{tls}#dns.elsewhere.test"),
            certificate(&upstream),
        ),
        (
            format!("https://{https}/dns-query#dns.elsewhere.test"),
            certificate(&upstream),
        ),
        // The right name, but a CA that did not sign it.
        (
            format!("tls://{tls}#localhost"),
            elsewhere.path().display().to_string(),
        ),
    ] {
        let forwarder = forwarder(&form, &ca_file);
        let answer = ask_udp(
            forwarder.dns_addr(),
            &Ask::new("www.near.test.", RecordType::A),
        );
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::ServFail,
            "{form}: {}",
            describe(&answer)
        );
        assert_eq!(
            forwarder.metric("outpost_upstream_failures_total"),
            1.0,
            "{form}"
        );
        assert_eq!(
            forwarder.metric("outpost_upstream_connections_total"),
            0.0,
            "{form}"
        );
    }
    let tls_asked =
        upstream.metric("outpost_dns_queries_total{protocol=\"tls\",rcode=\"NOERROR\"}");
    assert_eq!(tls_asked, 0.0, "no question reached the upstream");
}

/// Another self-signed certificate: the forwarder's own DNS certificate, made by a
/// second outpost, signs nothing the upstream serves.
fn rcgen_free_certificate() -> String {
    let other = Appliance::start(&format!(
        "[dns]\ntls_listen = \"127.0.0.1:0\"\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    std::fs::read_to_string(other.data_dir().join("dns-tls.pem")).unwrap()
}

#[test]
fn a_bad_ca_file_or_upstream_is_a_clear_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for (forward, expected) in [
        (
            format!(
                "upstreams = [\"tls://127.0.0.1:853#localhost\"]\ntls_ca_file = \"{}\"",
                empty.display()
            ),
            "holds no certificate",
        ),
        (
            "upstreams = [\"tls://127.0.0.1:853#localhost\"]\ntls_ca_file = \"/nonexistent/ca.pem\""
                .to_string(),
            "cannot read PEM certificates",
        ),
        (
            "upstreams = [\"https://dns.example/q?dns=1\"]".to_string(),
            "the path must have no query string",
        ),
        (
            "upstreams = [\"tls://dns.example\"]".to_string(),
            "use IP, IP:PORT, tcp://IP:PORT, tls://IP:PORT#NAME or https://HOST/dns-query",
        ),
    ] {
        let stderr = check_config_error(&format!("[forward]\n{forward}\n"));
        assert!(stderr.contains(expected), "{forward}: {stderr}");
    }
}

#[test]
fn the_lite_client_forwards_over_tls() {
    let upstream = upstream();
    let token = create_lite_token(&upstream, "laptop", "near.test.");
    let tls = upstream.listener("dns_tls");
    let lite = Lite::start_with_args(
        &[sync_url(&upstream)],
        &token,
        &[
            "--upstream",
            &format!("tls://{tls}#localhost"),
            "--upstream-ca",
            &certificate(&upstream),
        ],
    );
    lite.wait_synced();
    let answer = lite.query("h3.far.test.", RecordType::A);
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.7.1.3"],
        "{}",
        describe(&answer)
    );
    assert!(
        !answer.metadata.authoritative,
        "forwarded, not from the replica"
    );
    let over_tls = upstream.metric("outpost_dns_queries_total{protocol=\"tls\",rcode=\"NOERROR\"}");
    assert_eq!(over_tls, 1.0);
}

/// How a hostile DoT upstream misbehaves.
#[derive(Clone, Copy, Debug)]
enum Hostility {
    /// Answers with the right id but another question.
    WrongQuestion,
    /// Sends a frame too short to be a DNS message, then garbage.
    Garbage,
    /// Completes the handshake, reads every query, never answers.
    Silent,
}

/// A DoT server on loopback that presents `appliance`'s certificate and misbehaves.
fn hostile_dot(
    appliance: &Appliance,
    hostility: Hostility,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::ring};

    let pem = appliance.data_dir().join("dns-tls.pem");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
    let mut config =
        ServerConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    config.alpn_protocols = vec![b"dot".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // Serves for as long as the test needs it, then the thread ends.
            let serve = async {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        loop {
                            let Ok(len) = tls.read_u16().await else {
                                return;
                            };
                            let mut query = vec![0u8; usize::from(len)];
                            if tls.read_exact(&mut query).await.is_err() {
                                return;
                            }
                            let reply = match hostility {
                                Hostility::WrongQuestion => {
                                    let mut message =
                                        hickory_proto::op::Message::from_vec(&query).unwrap();
                                    message.metadata.message_type =
                                        hickory_proto::op::MessageType::Response;
                                    message.queries[0].set_name(
                                        hickory_proto::rr::Name::from_ascii("elsewhere.test.")
                                            .unwrap(),
                                    );
                                    let bytes = message.to_vec().unwrap();
                                    let mut framed =
                                        u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
                                    framed.extend_from_slice(&bytes);
                                    framed
                                }
                                Hostility::Garbage => vec![0, 1, 0xff, 0xff, 0xff, 0xff],
                                Hostility::Silent => continue,
                            };
                            if tls.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), serve).await;
        });
    });
    (addr, thread)
}

#[test]
fn a_hostile_dot_upstream_is_skipped_for_the_next_one() {
    let good = upstream();
    let good_tls = good.listener("dns_tls");
    for hostility in [
        Hostility::WrongQuestion,
        Hostility::Garbage,
        Hostility::Silent,
    ] {
        let (hostile, _server) = hostile_dot(&good, hostility);
        let forwarder = Appliance::start(&format!(
            "[forward]\nupstreams = [\"tls://{hostile}#localhost\", \"tls://{good_tls}#localhost\"]\n\
             tls_ca_file = \"{}\"\ntimeout_ms = 1000\n",
            certificate(&good)
        ));
        // Every answer comes from the good upstream, after the hostile one failed.
        for host in 0..4 {
            let name = format!("h{host}.far.test.");
            let answer = ask_udp(forwarder.dns_addr(), &Ask::new(&name, RecordType::A));
            assert_eq!(
                answers_of(&answer, RecordType::A),
                [format!("10.7.1.{host}")],
                "{hostility:?}: {}",
                describe(&answer)
            );
        }
        assert_eq!(
            forwarder.metric("outpost_upstream_failures_total"),
            4.0,
            "{hostility:?}: each question failed once, at the hostile upstream"
        );
    }
}
