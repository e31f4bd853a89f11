//! The admin HTTP API as scripts use it: JSON errors with a 4xx for bad requests,
//! the bearer token on `/v1`, and the Prometheus counters of `/metrics`.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::{Appliance, authoritative_config, describe, query_tcp, query_udp};

#[test]
fn the_api_answers_bad_requests_with_a_4xx_and_a_json_message() {
    let appliance = Appliance::start(&authoritative_config());
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("POST", "/v1/records", Some("{not json"), 400, "JSON"),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"A"}"#),
            400,
            "data",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"A","data":"10.0.0.1","colour":"red"}"#),
            400,
            "colour",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"A","data":"not-an-address"}"#),
            400,
            "not-an-address",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"NOPE","data":"x"}"#),
            400,
            "NOPE",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"A","data":"10.0.0.1","ttl":-5}"#),
            400,
            "ttl",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"a..example.internal.","type":"A","data":"10.0.0.1"}"#),
            400,
            "a..example.internal",
        ),
        (
            "POST",
            "/v1/records",
            Some(r#"{"name":"elsewhere.test.","type":"A","data":"10.0.0.1"}"#),
            404,
            "elsewhere.test.",
        ),
        (
            "PUT",
            "/v1/records",
            Some(r#"{"name":"a.example.internal.","type":"A","data":"10.0.0.1"}"#),
            400,
            "data",
        ),
        ("POST", "/v1/zones", Some(r#"{}"#), 400, "origin"),
        (
            "POST",
            "/v1/zones",
            Some(r#"{"origin":"example.internal."}"#),
            409,
            "example.internal.",
        ),
        (
            "DELETE",
            "/v1/zones/missing.test.",
            None,
            404,
            "missing.test.",
        ),
        (
            "GET",
            "/v1/zones/missing.test./export",
            None,
            404,
            "missing.test.",
        ),
        ("DELETE", "/v1/records?type=A", None, 400, "name"),
        ("GET", "/v1/nothing-here", None, 404, "/v1/nothing-here"),
    ];
    for (method, path, body, expected, needle) in cases {
        let (status, text) = appliance.api(method, path, *body);
        assert_eq!(status, *expected, "{method} {path} {body:?}: {text}");
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        let message = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no error: {text}"));
        assert!(
            message.contains(needle),
            "{method} {path} {body:?}: {message:?} lacks {needle:?}"
        );
    }
    // A CNAME beside other data, and other data beside a CNAME, are refused.
    let (status, text) = appliance.api(
        "POST",
        "/v1/records",
        Some(r#"{"name":"www.example.internal.","type":"CNAME","data":"printer"}"#),
    );
    assert!((400..500).contains(&status), "{status} {text}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"].is_string(),
        "{text}"
    );
    // A body sent as something other than JSON.
    let (status, text) = appliance.api_with(
        "POST",
        "/v1/records",
        Some("text/plain"),
        Some(r#"{"name":"a.example.internal.","type":"A","data":"10.0.0.1"}"#),
        Some(appliance.token()),
    );
    assert_eq!(status, 400, "{text}");
    // None of it changed the zone, and the server is fine.
    let answer = query_udp(
        appliance.dns_addr(),
        "a.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answer)
    );
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
}

#[test]
fn the_v1_api_needs_the_bearer_token_and_health_does_not() {
    let appliance = Appliance::start(&authoritative_config());
    let body = r#"{"name":"sneaky.example.internal.","type":"A","data":"10.0.0.66"}"#;
    for token in [None, Some("wrong"), Some("")] {
        for (method, path, body) in [
            ("GET", "/v1/zones", None),
            ("GET", "/v1/status", None),
            ("POST", "/v1/records", Some(body)),
            ("DELETE", "/v1/zones/example.internal.", None),
        ] {
            let content_type = body.map(|_| "application/json");
            let (status, text) = appliance.api_with(method, path, content_type, body, token);
            assert_eq!(status, 401, "{method} {path} with token {token:?}: {text}");
            let json: serde_json::Value = serde_json::from_str(&text).expect("a JSON error");
            assert!(json["error"].as_str().unwrap().contains("token"), "{text}");
        }
    }
    assert_eq!(
        appliance.a_records("www.example.internal."),
        ["10.0.0.10"],
        "the zone is still there"
    );
    let answer = query_udp(
        appliance.dns_addr(),
        "sneaky.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answer)
    );
    for path in ["/health", "/ready", "/metrics"] {
        let (status, text) = appliance.api_with("GET", path, None, None, None);
        assert_eq!(status, 200, "{path} without a token: {text}");
    }
}

#[test]
fn metrics_count_queries_by_protocol_and_rcode() {
    let appliance = Appliance::start(&authoritative_config());
    let sample = |protocol: &str, rcode: &str| {
        appliance.metric(&format!(
            "outpost_dns_queries_total{{protocol=\"{protocol}\",rcode=\"{rcode}\"}}"
        ))
    };
    let before = [
        sample("udp", "NOERROR"),
        sample("udp", "NXDOMAIN"),
        sample("tcp", "NOERROR"),
        sample("udp", "REFUSED"),
    ];
    query_udp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    query_udp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    query_udp(
        appliance.dns_addr(),
        "nope.example.internal.",
        RecordType::A,
        None,
    );
    query_tcp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    query_udp(appliance.dns_addr(), "example.com.", RecordType::A, None);
    assert_eq!(sample("udp", "NOERROR"), before[0] + 2.0);
    assert_eq!(sample("udp", "NXDOMAIN"), before[1] + 1.0);
    assert_eq!(sample("tcp", "NOERROR"), before[2] + 1.0);
    assert_eq!(sample("udp", "REFUSED"), before[3] + 1.0);
    let (_, text) = appliance.api_with("GET", "/metrics", None, None, None);
    for name in [
        "outpost_dns_answer_seconds_count",
        "outpost_cache_hits_total",
        "outpost_cache_misses_total",
        "outpost_cache_stale_served_total",
        "outpost_raft_applied_index",
    ] {
        assert!(text.contains(&format!("\n{name} ")), "{name} in /metrics");
    }
    assert!(
        appliance.metric("outpost_raft_applied_index") >= 1.0,
        "the example zone was applied"
    );
}

/// One HTTP/1.1 response read off `stream`: its head (lowercased) and its body.
fn read_response(stream: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).expect("a response head");
        assert_eq!(read, 1, "the connection closed mid-head: {bytes:?}");
        bytes.push(byte[0]);
    }
    let head = String::from_utf8(bytes)
        .expect("an ASCII head")
        .to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().expect("a length"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("the response body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_request_refused_before_its_body_arrives_is_told_the_connection_closes() {
    use std::io::Write;
    let appliance = Appliance::start(&authoritative_config());
    let connect = || {
        let stream = std::net::TcpStream::connect(appliance.admin_addr()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let body = r#"{"name":"late.example.internal.","type":"A","data":"10.0.0.66","ttl":60}"#;
    let post = |token: &str| {
        format!(
            "POST /v1/records HTTP/1.1\r\nHost: outpost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };

    // The head alone, with a wrong token: the refusal comes before the body is sent, so
    // the server cannot read on; the response must say so, or a keep-alive client would
    // send its next request into a closed connection.
    let mut stream = connect();
    stream.write_all(post("wrong").as_bytes()).unwrap();
    let (head, text) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 401"), "{head}{text}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    stream.write_all(body.as_bytes()).ok();

    // Requests whose bodies are read keep their connection: two on one.
    let mut stream = connect();
    stream
        .write_all(post(appliance.token()).as_bytes())
        .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let (head, text) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 201"), "{head}{text}");
    assert!(!head.contains("connection: close"), "{head}");
    let status = format!(
        "GET /v1/status HTTP/1.1\r\nHost: outpost\r\nAuthorization: Bearer {}\r\n\r\n",
        appliance.token()
    );
    stream.write_all(status.as_bytes()).unwrap();
    let (head, text) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 200"), "{head}{text}");
    assert_eq!(appliance.a_records("late.example.internal."), ["10.0.0.66"]);
}

/// `method path` with `Idempotency-Key: key` and a JSON body: (status, JSON answer).
fn keyed(
    appliance: &Appliance,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", appliance.admin_addr()))
        .header("Authorization", format!("Bearer {}", appliance.token()))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .expect("a request");
    let mut response = agent.run(request).expect("the admin API answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn a_write_retried_with_its_idempotency_key_applies_once_and_answers_as_the_first() {
    let appliance = Appliance::start(&outpost_tests::authoritative_config());
    let body = r#"{"origin":"retry.internal."}"#;
    let (first, answer) = keyed(&appliance, "POST", "/v1/zones", "create-retry-1", body);
    assert_eq!(first, 201, "{answer}");
    let (again, replayed) = keyed(&appliance, "POST", "/v1/zones", "create-retry-1", body);
    assert_eq!(
        again, 201,
        "the retry is answered as the first success: {replayed}"
    );
    assert_eq!(
        replayed["index"], answer["index"],
        "with the first write's index"
    );
    // Without the key (or with another), the same request is a second write: refused.
    let (code, refused) = appliance.api_json("POST", "/v1/zones", Some(body));
    assert_eq!(code, 409, "{refused}");

    // A record added twice under one key bumps the SOA serial once.
    let serial = || {
        let answer = outpost_tests::query_udp(
            appliance.dns_addr(),
            "retry.internal.",
            RecordType::SOA,
            None,
        );
        match &answer.answers[0].data {
            hickory_proto::rr::RData::SOA(soa) => soa.serial,
            other => panic!("not an SOA: {other:?}"),
        }
    };
    let before = serial();
    let record = r#"{"name":"printer.retry.internal.","type":"A","data":"10.0.0.7"}"#;
    for _ in 0..2 {
        let (code, answer) = keyed(&appliance, "POST", "/v1/records", "add-printer-1", record);
        assert_eq!(code, 201, "{answer}");
    }
    assert_eq!(serial(), before + 1, "applied once");

    // A Lite token's secret is shown once: its retry says so instead of a new secret.
    let token = r#"{"name":"laptop","zones":["retry.internal."]}"#;
    let (code, created) = keyed(&appliance, "POST", "/v1/lite-tokens", "token-1", token);
    assert_eq!(code, 201, "{created}");
    let (code, conflict) = keyed(&appliance, "POST", "/v1/lite-tokens", "token-1", token);
    assert_eq!(code, 409, "{conflict}");
    assert!(
        conflict["error"]
            .as_str()
            .is_some_and(|e| e.contains("shown only in that first answer")),
        "{conflict}"
    );

    let (code, bad) = keyed(&appliance, "POST", "/v1/zones", "has space", body);
    assert_eq!(code, 400, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("Idempotency")),
        "{bad}"
    );
}
