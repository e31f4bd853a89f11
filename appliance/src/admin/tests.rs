//! The admin API over real HTTP: a [`Store`] on a temporary directory, the router on
//! 127.0.0.1:0, and blocking requests from the test thread.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::rr::{Name, Record};
use outpost_core::zonefile::parse_zone;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use ureq::http::Response;
use ureq::{Agent, Body};

use super::*;
use crate::store::{Store, StoreOptions};
use outpost_dns::forward::{ForwardConfig, Forwarder};
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::Metrics;
use outpost_dns::plugin_runtime::PluginDeadlines;

/// An admin API serving on a runtime of its own, so tests call it with blocking ureq.
pub(crate) struct TestServer {
    pub(crate) address: SocketAddr,
    pub(crate) token: String,
    pub(crate) ready: Arc<AtomicBool>,
    /// The store's observer, as in a node (no sync listener runs).
    pub(crate) hub: Arc<Hub>,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) store: Store,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    dir: tempfile::TempDir,
}

impl TestServer {
    pub(crate) fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let token = load_or_create_token(dir.path()).unwrap();
        let hub = Arc::new(Hub::new());
        let options = StoreOptions {
            observer: Some(hub.clone()),
            ..StoreOptions::default()
        };
        let store = runtime
            .block_on(Store::open_with(dir.path(), options))
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(true));
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let forward = ForwardConfig {
            upstreams: Vec::new(),
            timeout: std::time::Duration::from_secs(1),
            cache_entries: 16,
            serve_stale: std::time::Duration::ZERO,
            tls: None,
            zones: Vec::new(),
        };
        let handler = Arc::new(QueryHandler::new(
            store.zone_set(),
            Arc::new(Forwarder::new(&forward, metrics.clone())),
            Vec::new(),
            metrics.clone(),
        ));
        let engine = outpost_plugin_host::PluginEngine::new().unwrap();
        let state = AdminState {
            store: store.clone(),
            metrics,
            token: token.clone(),
            ready: Arc::clone(&ready),
            hub: hub.clone(),
            plugins: Arc::new(PluginRuntime::new(
                engine,
                handler,
                PluginDeadlines::default(),
            )),
            connections: Arc::default(),
            dns_tls: None,
            query_log: None,
            sessions: Default::default(),
            exports: None,
        };
        let served = runtime.spawn(serve(listener, state, shutdown.clone()));
        TestServer {
            address,
            token,
            ready,
            hub,
            runtime,
            store,
            shutdown,
            served,
            dir,
        }
    }

    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Proves shutdown finishes: the server returns, then the store closes.
    pub(crate) fn stop(self) {
        self.shutdown.cancel();
        let served = self.runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), self.served).await
        });
        served.expect("admin API did not stop").unwrap().unwrap();
        self.runtime.block_on(self.store.shutdown()).unwrap();
    }
}

/// Blocking requests with the right token; every answer comes back, error statuses
/// included.
struct Client {
    agent: Agent,
    base: String,
    bearer: String,
}

impl Client {
    fn new(server: &TestServer) -> Client {
        Client {
            agent: Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
            base: format!("http://{}", server.address),
            bearer: format!("Bearer {}", server.token),
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        answer(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("Authorization", &self.bearer)
                .call(),
        )
    }

    fn json(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            _ => unreachable!(),
        };
        json_answer(
            request
                .header("Authorization", &self.bearer)
                .send_json(body),
        )
    }

    fn put_text(&self, path: &str, text: &str) -> (u16, Value) {
        let request = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", &self.bearer)
            .header("Content-Type", "text/plain");
        json_answer(request.send(text))
    }

    fn delete(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let request = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", &self.bearer)
            .query_pairs(query.iter().copied());
        json_answer(request.call())
    }
}

fn answer(response: Result<Response<Body>, ureq::Error>) -> (u16, String) {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn json_answer(response: Result<Response<Body>, ureq::Error>) -> (u16, Value) {
    let (status, text) = answer(response);
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} {text:?} is not JSON: {e}"));
    (status, value)
}

fn error_of(value: &Value) -> &str {
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {value}"))
}

const LAB_ZONE: &str = r#"$ORIGIN lab.internal.
$TTL 600
@        SOA  ns1 hostmaster 42 7200 3600 1209600 300
@        NS   ns1
ns1      A    10.1.0.1
printer  A    10.1.0.7
printer  A    10.1.0.8
www      CNAME printer
notes    TXT  "hello world" "semi;colon"
_ipp._tcp SRV 0 5 631 printer
"#;

#[test]
fn health_ready_and_metrics_need_no_token() {
    let server = TestServer::start();
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let base = format!("http://{}", server.address);
    assert_eq!(
        answer(agent.get(format!("{base}/health")).call()),
        (200, "ok".to_string())
    );
    // Ready once the leader applied its first entry, a moment after the store opened.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut ready = answer(agent.get(format!("{base}/ready")).call());
    while ready.0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        ready = answer(agent.get(format!("{base}/ready")).call());
    }
    assert_eq!(ready, (200, "ready".to_string()));
    server.ready.store(false, Ordering::Release);
    assert_eq!(
        answer(agent.get(format!("{base}/ready")).call()),
        (503, "not ready: starting or stopping".to_string())
    );

    let response = agent.get(format!("{base}/metrics")).call().unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let (status, text) = answer(Ok(response));
    assert_eq!(status, 200);
    for gauge in [
        "outpost_raft_applied_index",
        "outpost_raft_last_log_index",
        "outpost_raft_term",
        "outpost_zones",
        "outpost_records",
    ] {
        assert!(
            text.contains(&format!("# TYPE {gauge} gauge\n{gauge} ")),
            "{gauge} missing from\n{text}"
        );
    }
    assert!(text.contains("outpost_dns_queries_total"), "{text}");
    assert!(text.contains("\noutpost_zones 0\n"), "{text}");
    server.stop();
}

#[test]
fn v1_needs_the_bearer_token() {
    let server = TestServer::start();
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("http://{}/v1/status", server.address);
    for authorization in [
        None,
        Some("Bearer wrong".to_string()),
        Some(server.token.clone()),
    ] {
        let mut request = agent.get(&url);
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let (status, body) = json_answer(request.call());
        assert_eq!(status, 401, "{body}");
        assert!(error_of(&body).contains("bearer token"), "{body}");
    }
    let (status, body) = json_answer(
        agent
            .get(&url)
            .header("Authorization", format!("Bearer {}", server.token))
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_id"], 1);
    assert_eq!(body["raft_state"], "leader");
    assert_eq!(body["zones"], 0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for field in ["term", "records"] {
        assert!(body[field].is_number(), "{field} in {body}");
    }
    // Openraft's metrics may not show the first applied entry yet: null, not 0.
    for field in ["last_log_index", "applied_index"] {
        assert!(
            body[field].is_number() || body[field].is_null(),
            "{field} in {body}"
        );
    }
    server.stop();
}

#[test]
fn zones_are_created_listed_and_deleted() {
    let server = TestServer::start();
    let client = Client::new(&server);
    let (status, body) = client.json("POST", "/v1/zones", json!({ "origin": "Site.Internal" }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["origin"], "site.internal.");
    assert!(body["index"].as_u64().unwrap() > 0);

    let (status, body) = client.json("POST", "/v1/zones", json!({ "origin": "site.internal." }));
    assert_eq!(status, 409, "{body}");
    assert!(error_of(&body).contains("already exists"), "{body}");

    let (status, text) = client.get("/v1/zones");
    assert_eq!(status, 200);
    let zones: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        zones,
        json!([{ "origin": "site.internal.", "records": 2, "serial": 1 }])
    );

    let (status, body) = client.delete("/v1/zones/site.internal", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body["index"].is_u64(), "{body}");
    let (status, body) = client.delete("/v1/zones/site.internal.", &[]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_of(&body), "zone site.internal. does not exist");
    server.stop();
}

#[test]
fn import_replaces_the_zone_and_export_reads_back() {
    let server = TestServer::start();
    let client = Client::new(&server);
    let (status, body) = client.put_text("/v1/zones/lab.internal.", LAB_ZONE);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["origin"], "lab.internal.");
    assert_eq!(body["records"], 8);

    let (status, exported) = client.get("/v1/zones/lab.internal./export");
    assert_eq!(status, 200, "{exported}");
    assert!(
        exported.starts_with("$ORIGIN lab.internal.\nlab.internal. 600 IN SOA "),
        "{exported}"
    );
    let origin = Name::from_ascii("lab.internal.").unwrap();
    let original = sorted(parse_zone(LAB_ZONE, &origin, 3600).unwrap());
    let read_back = sorted(parse_zone(&exported, &origin, 1).unwrap());
    assert_eq!(read_back, original);

    // A broken file changes nothing and names its line.
    let broken = LAB_ZONE.replace("printer  A    10.1.0.8", "printer  A    10.1.0.888");
    let (status, body) = client.put_text("/v1/zones/lab.internal.", &broken);
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).starts_with("zone file line 7: bad A record data \"10.1.0.888\""),
        "{body}"
    );
    assert_eq!(client.get("/v1/zones/lab.internal./export").1, exported);

    // A file the model refuses (no SOA) changes nothing either.
    let (status, body) = client.put_text("/v1/zones/lab.internal.", "www A 10.0.0.1\n");
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("no SOA"), "{body}");

    let (status, body) = client.json("POST", "/v1/zones", json!({ "origin": "lab.internal." }));
    assert_eq!(status, 409, "{body}");
    let (status, text) = client.get("/v1/zones/missing.internal./export");
    assert_eq!(status, 404, "{text}");
    server.stop();
}

fn sorted(mut records: Vec<Record>) -> Vec<(String, u32, String)> {
    records.sort_by(|a, b| {
        (&a.name, a.record_type(), &a.data).cmp(&(&b.name, b.record_type(), &b.data))
    });
    records
        .into_iter()
        .map(|record| {
            (
                record.name.to_ascii().to_lowercase(),
                record.ttl,
                format!("{:?}", record.data),
            )
        })
        .collect()
}

#[test]
fn zone_file_over_the_limit_is_413() {
    let server = TestServer::start();
    let client = Client::new(&server);
    let body = vec![b';'; ZONE_FILE_LIMIT_BYTES + 1];
    let request = client
        .agent
        .put(format!("{}/v1/zones/big.internal.", client.base))
        .header("Authorization", &client.bearer)
        .header("Content-Type", "text/plain");
    let (status, body) = json_answer(request.send(&body[..]));
    assert_eq!(status, 413, "{body}");
    assert!(error_of(&body).contains("64 MiB"), "{body}");
    server.stop();
}

#[test]
fn records_are_added_replaced_listed_and_deleted() {
    let server = TestServer::start();
    let client = Client::new(&server);
    assert_eq!(
        client
            .json("POST", "/v1/zones", json!({ "origin": "site.internal." }))
            .0,
        201
    );

    let (status, body) = client.json(
        "POST",
        "/v1/records",
        json!({ "name": "printer.site.internal", "type": "a", "data": "10.0.0.7", "ttl": 300 }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["zone"], "site.internal.");
    let (status, body) = client.json(
        "POST",
        "/v1/records",
        json!({ "name": "mail.site.internal.", "type": "MX", "data": "10 printer" }),
    );
    assert_eq!(status, 201, "{body}");

    let (status, text) = client.get("/v1/zones/site.internal./records");
    assert_eq!(status, 200, "{text}");
    let records: Value = serde_json::from_str(&text).unwrap();
    let records = records.as_array().unwrap();
    assert!(records.contains(&json!({ "name": "printer.site.internal.", "type": "A", "ttl": 300, "data": "10.0.0.7" })), "{text}");
    assert!(records.contains(&json!({ "name": "mail.site.internal.", "type": "MX", "ttl": 3600, "data": "10 printer.site.internal." })), "{text}");

    let (status, body) = client.json("PUT", "/v1/records", json!({ "name": "printer.site.internal.", "type": "A", "ttl": 60, "data": ["10.0.0.8", "10.0.0.9"] }));
    assert_eq!(status, 200, "{body}");
    let (_, text) = client.get("/v1/zones/site.internal./records");
    assert!(
        text.contains(r#"{"name":"printer.site.internal.","type":"A","ttl":60,"data":"10.0.0.9"}"#),
        "{text}"
    );
    assert!(!text.contains("10.0.0.7"), "{text}");

    let (status, body) = client.delete(
        "/v1/records",
        &[
            ("name", "printer.site.internal."),
            ("type", "A"),
            ("data", "10.0.0.8"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = client.delete(
        "/v1/records",
        &[
            ("name", "printer.site.internal."),
            ("type", "A"),
            ("data", "10.0.0.8"),
        ],
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = client.delete("/v1/records", &[("name", "mail.site.internal.")]);
    assert_eq!(status, 200, "{body}");
    let (_, text) = client.get("/v1/zones/site.internal./records");
    assert!(!text.contains("mail."), "{text}");
    server.stop();
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let server = TestServer::start();
    let client = Client::new(&server);
    assert_eq!(
        client
            .json("POST", "/v1/zones", json!({ "origin": "site.internal." }))
            .0,
        201
    );
    let cases = [
        (
            json!({ "name": "printer.nowhere.", "type": "A", "data": "10.0.0.7" }),
            404,
            "no zone served here contains printer.nowhere. (create it with: outpost zone create nowhere.)",
        ),
        (
            json!({ "name": "printer.site.internal.", "type": "A", "data": "10.0.0.700" }),
            400,
            "bad A record data \"10.0.0.700\"",
        ),
        (
            json!({ "name": "printer.site.internal.", "type": "BOGUS", "data": "x" }),
            400,
            "field \"type\": unknown record type \"BOGUS\"",
        ),
        (
            json!({ "name": "printer.site.internal.", "type": "A" }),
            400,
            "missing field `data`",
        ),
        (
            json!({ "name": "printer.site.internal.", "type": "A", "data": 7 }),
            400,
            "data",
        ),
        (
            json!({ "name": "www.site.internal.", "type": "CNAME", "data": "a.b." }),
            201,
            "",
        ),
        (
            json!({ "name": "www.site.internal.", "type": "A", "data": "10.0.0.1" }),
            400,
            "CNAME",
        ),
    ];
    for (request, status, message) in cases {
        let (got, body) = client.json("POST", "/v1/records", request.clone());
        assert_eq!(got, status, "{request} answered {body}");
        if !message.is_empty() {
            assert!(
                error_of(&body).contains(message),
                "{request} answered {body}"
            );
        }
    }

    let request = client
        .agent
        .post(format!("{}/v1/zones", client.base))
        .header("Authorization", &client.bearer)
        .header("Content-Type", "application/json");
    let (status, body) = json_answer(request.send("{not json"));
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).starts_with("request body is not valid JSON"),
        "{body}"
    );

    let (status, body) = client.delete(
        "/v1/records",
        &[("name", "www.site.internal."), ("data", "a.b.")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("needs \"type\""), "{body}");
    let (status, body) = client.delete("/v1/records", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("name"), "{body}");
    let (status, body) = client.delete(
        "/v1/records",
        &[("name", "site.internal."), ("type", "SOA")],
    );
    assert_eq!(status, 400, "{body}");

    let (status, text) = client.get("/v1/nothing");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no such route: /v1/nothing"), "{text}");
    let (status, body) = client.json("POST", "/v1/status", json!({}));
    assert_eq!(status, 405, "{body}");
    assert_eq!(error_of(&body), "/v1/status does not take POST");
    server.stop();
}
