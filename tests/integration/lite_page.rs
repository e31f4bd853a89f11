//! The Lite client's own page on loopback: what a person reads at `/`, the status and
//! the recent queries as JSON, `/metrics` for Prometheus; other methods and paths
//! refused; an address off loopback refused at start.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use hickory_proto::rr::RecordType;
use outpost_tests::lite::lite_bin;
use outpost_tests::{Appliance, Lite, create_lite_token, default_config, parse_metric, sync_url};

/// One raw HTTP request: (status, body).
fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the page accepts");
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

#[test]
fn the_page_shows_the_state_the_zones_and_the_queries_asked_of_the_replica() {
    let appliance = Appliance::start(&default_config());
    let token = create_lite_token(&appliance, "laptop", "example.internal.");
    let lite = Lite::start_for(&appliance, &token);
    lite.wait_for_a("www.example.internal.", &["10.0.0.10"]);
    lite.wait_caught_up(&appliance);
    lite.query("printer.example.internal.", RecordType::A);
    let page = lite.page_addr();

    let (status, html) = get(page, "/");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("outpost-lite: Synced"), "{html}");
    assert!(html.contains(&sync_url(&appliance)), "{html}");
    assert!(html.contains("<td>example.internal.</td>"), "{html}");
    assert!(html.contains("printer.example.internal."), "{html}");

    let (status, json) = get(page, "/status.json");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["state"], "Synced", "{json}");
    assert_eq!(json["zones"], 1, "{json}");
    assert_eq!(
        json["zone_names"],
        serde_json::json!(["example.internal."]),
        "{json}"
    );
    assert!(json["last_change_unix"].is_u64(), "{json}");

    let (status, log) = get(page, "/querylog?limit=5");
    assert_eq!(status, 200);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(
        log["records"][0]["name"], "printer.example.internal.",
        "{log}"
    );
    assert_eq!(log["records"][0]["source"], "zone", "{log}");

    let (status, metrics) = get(page, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        parse_metric(&metrics, "outpost_lite_state_synced"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        parse_metric(&metrics, "outpost_lite_zones"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        parse_metric(&metrics, "outpost_lite_lag"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        parse_metric(
            &metrics,
            "outpost_dns_queries_total{protocol=\"udp\",rcode=\"NOERROR\"}"
        )
        .is_some_and(|answers| answers >= 2.0),
        "{metrics}"
    );

    // A page of another site whose name now points here (DNS rebinding) is refused: its
    // Host names that site.
    let port = page.port();
    let rebound = http(
        page,
        &format!("GET /querylog HTTP/1.1\r\nHost: rebind.example:{port}\r\n\r\n"),
    );
    assert_eq!(rebound.0, 421, "{}", rebound.1);
    assert!(!rebound.1.contains("printer"), "{}", rebound.1);
    assert_eq!(
        http(
            page,
            &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n")
        )
        .0,
        200
    );
    assert_eq!(
        http(page, "GET / HTTP/1.1\r\n\r\n").0,
        421,
        "no Host at all"
    );

    // Anything else is refused, and a head that never ends is cut off.
    assert_eq!(http(page, "POST / HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(get(page, "/admin").0, 404);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(http(page, &huge).0, 431);
    // The client still answers, from its replica.
    assert_eq!(lite.a_records("www.example.internal."), ["10.0.0.10"]);
}

#[test]
fn a_page_off_loopback_is_refused_at_start() {
    let output = Command::new(lite_bin())
        .args(["run", "--appliance", "ws://127.0.0.1:9", "--token", "t"])
        .args(["--page", "0.0.0.0:5380"])
        .output()
        .expect("outpost-lite runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--page \"0.0.0.0:5380\" is not a loopback address"),
        "{stderr}"
    );
}
