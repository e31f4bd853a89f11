//! DNS over TLS and over HTTPS served by the appliance, asked with a real client
//! (`kdig +tls`, `kdig +https` with POST and GET, Debian's knot-dnsutils): the same answers as over UDP,
//! counted under their own transport; a certificate that cannot be read is a clear
//! error at start and in `check-config`. DNS over QUIC is asked with hickory-net's DoQ
//! client (kdig 3.2 has none), verifying the self-signed certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use outpost_tests::appliance::{allow_root_flag, serve_command};
use outpost_tests::{Appliance, Ask, ask_udp, describe, unused_upstream};

const ZONE: &str = "$ORIGIN enc.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
@ IN NS ns1\nns1 IN A 10.9.0.1\nwww IN A 10.9.0.2\nwww IN A 10.9.0.3\nmail IN CNAME www\n\
txt IN TXT \"hello over tls\"\n";

/// The questions asked over each transport: an answer, a CNAME chain, TXT, NODATA,
/// NXDOMAIN, and a name not ours (REFUSED: no recursion).
const QUESTIONS: [(&str, &str); 6] = [
    ("www.enc.test.", "A"),
    ("mail.enc.test.", "A"),
    ("txt.enc.test.", "TXT"),
    ("www.enc.test.", "AAAA"),
    ("nothing.enc.test.", "A"),
    ("example.org.", "A"),
];

fn config() -> String {
    format!(
        "[dns]\nallow_recursion = []\ntls_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\
         quic_listen = \"127.0.0.1:0\"\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    )
}

/// What `kdig` printed for one question: the status and the answer section, sorted.
pub(crate) fn kdig(
    addr: SocketAddr,
    transport: &[&str],
    name: &str,
    rtype: &str,
) -> (String, Vec<String>) {
    let output = Command::new("kdig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string()])
        .args(transport)
        .args([
            "+timeout=5",
            "+retry=0",
            "+noall",
            "+header",
            "+answer",
            name,
            rtype,
        ])
        .output()
        .expect("run kdig (Debian package knot-dnsutils; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "kdig {transport:?} {name} {rtype} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = text
        .split("; status: ")
        .nth(1)
        .and_then(|rest| rest.split([';', ',']).next())
        .unwrap_or_else(|| panic!("no status in kdig's output: {text}"))
        .to_string();
    let mut answers: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    answers.sort();
    (status, answers)
}

#[test]
fn kdig_over_tls_and_https_gets_the_udp_answers() {
    let appliance = Appliance::start(&config());
    appliance.import_zone("enc.test.", ZONE);
    let tls = appliance.listener("dns_tls");
    let https = appliance.listener("dns_https");
    appliance.listener("dns_quic");
    for (name, rtype) in QUESTIONS {
        let udp = kdig(appliance.dns_addr(), &["+notcp"], name, rtype);
        assert!(
            name == "example.org." || udp.0 != "REFUSED",
            "{name} {rtype} over UDP: {udp:?}"
        );
        let over_tls = kdig(tls, &["+tls"], name, rtype);
        assert_eq!(over_tls, udp, "{name} {rtype}: DoT against UDP");
        let over_https = kdig(https, &["+https"], name, rtype);
        assert_eq!(over_https, udp, "{name} {rtype}: DoH (POST) against UDP");
        let over_get = kdig(https, &["+https", "+https-get"], name, rtype);
        assert_eq!(over_get, udp, "{name} {rtype}: DoH (GET) against UDP");
    }
    let www = kdig(tls, &["+tls"], "www.enc.test.", "A").1;
    assert_eq!(www.len(), 2, "{www:?}");
    // Counted under their own transport.
    let tls_answered =
        appliance.metric("outpost_dns_queries_total{protocol=\"tls\",rcode=\"NOERROR\"}");
    let https_answered =
        appliance.metric("outpost_dns_queries_total{protocol=\"https\",rcode=\"NOERROR\"}");
    assert!(tls_answered >= 4.0, "tls NOERROR: {tls_answered}");
    assert!(https_answered >= 8.0, "https NOERROR: {https_answered}");
    // The self-signed certificate's pin, as openssl computes it, is logged at start
    // and shown by `outpost status`.
    let pin = openssl_pin(&appliance.data_dir().join("dns-tls.pem"));
    assert!(
        appliance.log().contains(&pin),
        "{pin} not in the log: {}",
        appliance.log_tail()
    );
    let status = appliance.cli_ok(["status"]);
    assert!(
        status.contains(&format!("dns tls pin:    {pin}")),
        "{status}"
    );
}

/// `openssl x509 -noout -fingerprint -sha256` of the certificate in `pem`.
fn openssl_pin(pem: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    let Some((_, pin)) = text.trim().split_once('=') else {
        panic!("no fingerprint from openssl: {text}");
    };
    pin.to_string()
}

fn assert_fails_with(output: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "should fail: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

fn config_with_files(cert: &Path, key: &Path) -> String {
    format!(
        "[dns]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n[forward]\nupstreams = [\"{}\"]\n",
        cert.display().to_string(),
        key.display().to_string(),
        unused_upstream()
    )
}

#[test]
fn an_unreadable_or_half_given_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let config = config_with_files(&missing, &missing);
    let output = serve_command(dir.path(), &config, allow_root_flag())
        .output()
        .unwrap();
    assert_fails_with(&output, &["dns.tls_cert", "missing.pem"]);
    let path = dir.path().join("check.toml");
    std::fs::write(&path, &config).unwrap();
    let output = Command::new(outpost_tests::outpost_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_fails_with(&output, &["dns.tls_cert", "missing.pem"]);

    // Not a certificate.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let output = serve_command(
        dir.path(),
        &config_with_files(&garbage, &garbage),
        allow_root_flag(),
    )
    .output()
    .unwrap();
    assert_fails_with(&output, &["dns.tls_cert", "garbage.pem", "no certificate"]);

    // A certificate without its key.
    let half = format!(
        "[dns]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\n[forward]\nupstreams = [\"{}\"]\n",
        garbage.display().to_string(),
        unused_upstream()
    );
    let output = serve_command(dir.path(), &half, allow_root_flag())
        .output()
        .unwrap();
    assert_fails_with(&output, &["dns.tls_key"]);
}

/// Asks `name` over DoQ (RFC 9250) with hickory-net's QUIC client, trusting only the
/// appliance's self-signed certificate (read from its data directory) for `localhost`.
pub(crate) fn ask_quic(
    addr: SocketAddr,
    certificate: &Path,
    name: &str,
    rtype: RecordType,
) -> Message {
    use futures_util::StreamExt;
    use hickory_net::quic::QuicClientStream;
    use hickory_net::xfer::DnsRequestSender;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certificate).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let crypto = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = QuicClientStream::builder()
            .crypto_config(crypto)
            .request_timeout(Duration::from_secs(5))
            .build(addr, Arc::from("localhost"))
            .await
            .expect("a DoQ connection");
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let mut responses =
            client.send_message(DnsRequest::new(query, DnsRequestOptions::default()));
        let response = tokio::time::timeout(Duration::from_secs(10), responses.next())
            .await
            .expect("a DoQ answer in time")
            .expect("a DoQ answer")
            .expect("a DoQ answer without error");
        response.into_message()
    })
}

#[test]
fn a_doq_client_gets_the_udp_answers() {
    let appliance = Appliance::start(&config());
    appliance.import_zone("enc.test.", ZONE);
    let quic = appliance.listener("dns_quic");
    let certificate = appliance.data_dir().join("dns-tls.pem");
    for (name, rtype) in QUESTIONS {
        let rtype: RecordType = rtype.parse().unwrap();
        let udp = ask_udp(appliance.dns_addr(), &Ask::new(name, rtype));
        let over_quic = ask_quic(quic, &certificate, name, rtype);
        assert_eq!(
            over_quic.metadata.response_code,
            udp.metadata.response_code,
            "{name} {rtype}: DoQ {} against UDP {}",
            describe(&over_quic),
            describe(&udp)
        );
        let records = |message: &Message| {
            let mut records: Vec<String> =
                message.answers.iter().map(ToString::to_string).collect();
            records.sort();
            records
        };
        assert_eq!(records(&over_quic), records(&udp), "{name} {rtype}");
    }
    let answered =
        appliance.metric("outpost_dns_queries_total{protocol=\"quic\",rcode=\"NOERROR\"}");
    assert!(answered >= 4.0, "quic NOERROR: {answered}");
}

/// A fresh self-signed certificate for localhost from `openssl req`, written to
/// `cert` and `key`.
fn openssl_certificate(cert: &Path, key: &Path) {
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn certificate_files_are_read_again_on_sighup() {
    let scratch = tempfile::tempdir().unwrap();
    let (cert, key) = (
        scratch.path().join("dns.crt"),
        scratch.path().join("dns.key"),
    );
    openssl_certificate(&cert, &key);
    let first = openssl_pin(&cert);
    let appliance = Appliance::start(&config_with_files(&cert, &key));
    appliance.import_zone("enc.test.", ZONE);
    let tls = appliance.listener("dns_tls");
    let pin_in_status = || {
        let status = appliance.cli_ok(["status"]);
        let line = status.lines().find(|line| line.starts_with("dns tls pin:"));
        line.map(|line| line.trim_start_matches("dns tls pin:").trim().to_string())
    };
    assert_eq!(pin_in_status().as_deref(), Some(first.as_str()));
    assert!(
        !appliance.data_dir().join("dns-tls.pem").exists(),
        "no self-signed one with files"
    );

    openssl_certificate(&cert, &key);
    let second = openssl_pin(&cert);
    assert_ne!(first, second);
    appliance.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        outpost_tests::wait_until(Duration::from_secs(20), || pin_in_status().as_deref()
            == Some(second.as_str())),
        "the new pin {second} is not shown: {:?}\n{}",
        pin_in_status(),
        appliance.log_tail()
    );
    let (status, answers) = kdig(tls, &["+tls"], "www.enc.test.", "A");
    assert_eq!(
        (status.as_str(), answers.len()),
        ("NOERROR", 2),
        "{answers:?}"
    );

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&cert, "broken\n").unwrap();
    appliance.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        outpost_tests::wait_until(Duration::from_secs(20), || appliance
            .log()
            .contains("kept the DNS over TLS, HTTPS and QUIC certificate in use")),
        "{}",
        appliance.log_tail()
    );
    assert_eq!(pin_in_status().as_deref(), Some(second.as_str()));
    assert_eq!(kdig(tls, &["+tls"], "www.enc.test.", "A").0, "NOERROR");
}

/// The HTTP status `curl --http2` gets from the DoH listener for `path`, with `extra`
/// arguments (method, headers, body).
fn doh_status(addr: SocketAddr, path: &str, extra: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["--http2", "--insecure", "--silent", "--max-time", "10"])
        .args([
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_version} %{http_code}",
        ])
        .args(extra)
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The response headers of a DoH GET, lowercased.
fn doh_headers(addr: SocketAddr, path: &str) -> String {
    let output = Command::new("curl")
        .args(["--http2", "--insecure", "--silent", "--max-time", "10"])
        .args(["--output", "/dev/null", "--dump-header", "-"])
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).to_lowercase()
}

#[test]
fn doh_answers_may_be_cached_no_longer_than_their_ttl() {
    let appliance = Appliance::start(&config());
    let https = appliance.listener("dns_https");
    appliance.cli_ok([
        "record",
        "add",
        "short.example.internal.",
        "A",
        "10.0.0.77",
        "--ttl",
        "42",
    ]);
    // short.example.internal. A (TTL 42), and example.internal. A (NODATA: the SOA's
    // negative TTL, min(3600, 300)), base64url without padding.
    for (name, expected) in [("short.example.internal.", 42), ("example.internal.", 300)] {
        let encoded = URL_SAFE_NO_PAD.encode(Ask::new(name, RecordType::A).to_bytes(0));
        let headers = doh_headers(https, &format!("/dns-query?dns={encoded}"));
        assert!(
            headers.contains(&format!("cache-control: max-age={expected}\r\n")),
            "{name}: {headers}"
        );
    }
}

#[test]
fn doh_requests_that_are_not_dns_get_http_errors() {
    let appliance = Appliance::start(&config());
    let https = appliance.listener("dns_https");
    // A query for example.internal. A, base64url without padding (RFC 8484's form).
    let good = "/dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUIaW50ZXJuYWwAAAEAAQ";
    assert_eq!(doh_status(https, good, &[]), "2 200");
    assert_eq!(doh_status(https, "/other?dns=AAAB", &[]), "2 404");
    assert_eq!(doh_status(https, "/dns-query?dns=not*base64", &[]), "2 400");
    assert_eq!(doh_status(https, "/dns-query", &[]), "2 400");
    let form = ["--data-binary", "x", "-H", "content-type: text/plain"];
    assert_eq!(doh_status(https, "/dns-query", &form), "2 415");
    let put = [
        "-X",
        "PUT",
        "--data-binary",
        "x",
        "-H",
        "content-type: application/dns-message",
    ];
    assert_eq!(doh_status(https, "/dns-query", &put), "2 405");
    // Still serving.
    assert_eq!(doh_status(https, good, &[]), "2 200");
}

#[test]
fn doh_holds_a_source_to_its_connection_cap_and_serves_others_meanwhile() {
    use std::io::Read;
    let appliance = Appliance::start(&config());
    let https = appliance.listener("dns_https");
    let good = "/dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUIaW50ZXJuYWwAAAEAAQ";
    // 32 connections (MAX_TCP_CONNECTIONS_PER_SOURCE) that never start TLS hold every
    // place of 127.0.0.1 until the handshake timeout.
    let held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(https).unwrap())
        .collect();
    // The next one from the same source is closed at once, without a TLS handshake.
    let mut refused = std::net::TcpStream::connect(https).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = refused.read(&mut byte);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the 33rd connection from one source should be closed at once: {read:?}"
    );
    // Another source is served meanwhile.
    let other = ["--interface", "127.0.0.2"];
    assert_eq!(doh_status(https, good, &other), "2 200");
    let refusals = appliance.metric("outpost_dns_tcp_refused_total");
    assert!(refusals >= 1.0, "refused: {refusals}");
    // Once they close, the source is served again.
    drop(held);
    assert!(
        outpost_tests::wait_until(Duration::from_secs(20), || doh_status(https, good, &[])
            == "2 200"),
        "127.0.0.1 is not served after its connections closed"
    );
}
