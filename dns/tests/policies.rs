//! Query-policy plugins on the DNS path, end to end: real components from
//! `target/plugins/` (built by `./scripts/build-plugins.sh`) loaded into a
//! `PluginSet`, a server on loopback port 0, and real UDP queries.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use outpost_core::state::{FailureMode, Hook, PluginDefinition};
use outpost_dns::forward::{ForwardConfig, Forwarder};
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::{Metrics, render_plugins};
use outpost_dns::server::DnsSockets;
use outpost_plugin_host::{Limits, LoadOptions, PluginEngine, PluginSet};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const ZONE: &str = "
@      300 SOA ns1 hostmaster 1 7200 3600 1209600 60
@      300 NS  ns1
ns1    300 A   10.0.0.1
www    300 A   10.0.0.10
panic  300 A   10.0.0.66
";

/// One engine for every test: components compile once.
fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new().unwrap())
}

fn plugin_bytes(crate_name: &str) -> Arc<[u8]> {
    let dir = std::env::var_os("OUTPOST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins"))
        });
    let path = dir.join(format!("outpost_plugin_{crate_name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test plugins first with ./scripts/build-plugins.sh",
            path.display()
        )
    });
    bytes.into()
}

fn policy(
    crate_name: &str,
    order: i32,
    on_error: FailureMode,
    config: &str,
) -> Arc<PluginDefinition> {
    let component = plugin_bytes(crate_name);
    Arc::new(PluginDefinition {
        name: crate_name.replace('_', "-"),
        hook: Hook::QueryPolicy,
        order,
        on_error,
        enabled: true,
        version: 1,
        sha256: Sha256::digest(&component).into(),
        component,
        config: config.as_bytes().into(),
    })
}

/// Loads the plugins with a relaxed call deadline: the test threads share two cores,
/// and a preempted call must not time out and fail open.
fn load(definitions: &[Arc<PluginDefinition>]) -> PluginSet {
    let options = LoadOptions {
        policy_limits: Limits {
            call_ticks: 1_000,
            ..Limits::for_hook(Hook::QueryPolicy)
        },
        prebuilt_instances: 2,
        ..LoadOptions::default()
    };
    let (set, failures) = PluginSet::load_with(engine(), definitions, &PluginSet::empty(), options);
    assert_eq!(failures, []);
    set
}

/// A server on loopback for zone example.internal., with no upstreams.
struct Server {
    addr: SocketAddr,
    handler: Arc<QueryHandler>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    async fn start(plugins: &PluginSet) -> Server {
        let metrics = Arc::new(Metrics::default());
        let forward = ForwardConfig {
            upstreams: Vec::new(),
            timeout: Duration::from_secs(1),
            cache_entries: 100,
            serve_stale: Duration::ZERO,
            tls: None,
            zones: Vec::new(),
        };
        let handler = Arc::new(QueryHandler::new(
            Arc::new(ArcSwap::from_pointee(common::zone_set(
                "example.internal.",
                ZONE,
            ))),
            Arc::new(Forwarder::new(&forward, metrics.clone())),
            vec!["127.0.0.0/8".parse().unwrap()],
            metrics.clone(),
        ));
        handler.set_policies(plugins.policies().clone());
        let sockets = DnsSockets::bind(
            &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            NonZeroUsize::MIN,
        )
        .await
        .unwrap();
        let addr = sockets.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        sockets
            .spawn(handler.clone(), shutdown.clone(), &tracker)
            .unwrap();
        Server {
            addr,
            handler,
            metrics,
            shutdown,
            tracker,
        }
    }

    /// `dig @server name rtype` over UDP: the rcode, AA, and the answer section as
    /// "owner TTL data" lines.
    async fn ask(&self, name: &str, rtype: RecordType) -> (ResponseCode, bool, Vec<String>) {
        let mut query = Message::query();
        query.metadata.id = 0x5eed;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let request = query.to_vec().unwrap();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(self.addr).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        for _ in 0..5 {
            socket.send(&request).await.unwrap();
            let received =
                tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer)).await;
            let Ok(Ok(len)) = received else { continue };
            let answer = Message::from_vec(&buffer[..len]).unwrap();
            assert_eq!(answer.metadata.id, 0x5eed);
            let records = answer
                .answers
                .iter()
                .map(|record| format!("{} {} {}", record.name, record.ttl, record.data))
                .collect();
            return (
                answer.metadata.response_code,
                answer.metadata.authoritative,
                records,
            );
        }
        panic!("no answer from {} to {name} {rtype}", self.addr);
    }

    fn rendered(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        out
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|line| line.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklist_blocks_before_our_zones_and_the_rest_is_answered_normally() {
    let plugins = load(&[policy(
        "blocklist",
        0,
        FailureMode::FailClosed,
        "ads.example\nwww.example.internal",
    )]);
    let server = Server::start(&plugins).await;

    assert_eq!(
        server.ask("x.ads.example.", RecordType::A).await,
        (ResponseCode::NXDomain, false, vec![])
    );
    // In our zone, but blocked: the plugins run before the answer engine.
    assert_eq!(
        server.ask("www.example.internal.", RecordType::A).await,
        (ResponseCode::NXDomain, false, vec![])
    );
    assert_eq!(
        server.ask("ns1.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["ns1.example.internal. 300 10.0.0.1"])
        )
    );

    let metrics = server.rendered();
    assert!(
        metrics.contains("\noutpost_dns_policy_blocked_total 2\n"),
        "{metrics}"
    );
    let mut per_plugin = String::new();
    render_plugins(&mut per_plugin, &plugins.plugins());
    assert!(
        per_plugin.contains("\noutpost_plugin_calls_total{plugin=\"blocklist\"} 3\n"),
        "{per_plugin}"
    );
    assert!(
        per_plugin.contains("\noutpost_plugin_call_seconds_count{plugin=\"blocklist\"} 3\n"),
        "{per_plugin}"
    );
    assert!(
        per_plugin.contains("\noutpost_plugin_disabled{plugin=\"blocklist\"} 0\n"),
        "{per_plugin}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sinkhole_answers_with_its_address_for_the_family_asked() {
    let plugins = load(&[policy(
        "blocklist",
        0,
        FailureMode::FailOpen,
        "sinkhole=10.0.0.53\nads.example",
    )]);
    let server = Server::start(&plugins).await;
    assert_eq!(
        server.ask("x.ads.example.", RecordType::A).await,
        (
            ResponseCode::NoError,
            false,
            lines(&["x.ads.example. 60 10.0.0.53"])
        )
    );
    assert_eq!(
        server.ask("x.ads.example.", RecordType::AAAA).await,
        (ResponseCode::NoError, false, vec![])
    );
    assert_eq!(
        server.ask("www.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["www.example.internal. 300 10.0.0.10"])
        )
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_answer_is_authoritative() {
    let plugins = load(&[policy(
        "split_horizon",
        0,
        FailureMode::FailOpen,
        "127.0.0.0/8 www.example.internal 10.1.2.3",
    )]);
    let server = Server::start(&plugins).await;
    assert_eq!(
        server.ask("www.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["www.example.internal. 60 10.1.2.3"])
        )
    );
    assert!(
        server
            .rendered()
            .contains("\noutpost_dns_policy_answered_total 1\n")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_fails_closed_with_servfail_or_open_with_the_normal_answer() {
    let closed = load(&[policy("hostile", 0, FailureMode::FailClosed, "")]);
    let server = Server::start(&closed).await;
    // hostile panics on a first label "panic".
    assert_eq!(
        server.ask("panic.example.internal.", RecordType::A).await,
        (ResponseCode::ServFail, false, vec![])
    );
    assert_eq!(
        server.ask("ns1.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["ns1.example.internal. 300 10.0.0.1"])
        )
    );
    assert!(
        server
            .rendered()
            .contains("\noutpost_dns_policy_failed_total 1\n")
    );

    // The same server, the plugin now failing open.
    let open = load(&[policy("hostile", 0, FailureMode::FailOpen, "")]);
    server.handler.set_policies(open.policies().clone());
    assert_eq!(
        server.ask("panic.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["panic.example.internal. 300 10.0.0.66"])
        )
    );
    let mut per_plugin = String::new();
    render_plugins(&mut per_plugin, &open.plugins());
    assert!(
        per_plugin
            .contains("\noutpost_plugin_failures_total{plugin=\"hostile\",kind=\"trap\"} 1\n"),
        "{per_plugin}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_plugins_nothing_changes() {
    let server = Server::start(&PluginSet::empty()).await;
    assert!(server.handler.policies().is_empty());
    assert_eq!(
        server.ask("www.example.internal.", RecordType::A).await,
        (
            ResponseCode::NoError,
            true,
            lines(&["www.example.internal. 300 10.0.0.10"])
        )
    );
    let mut per_plugin = String::new();
    render_plugins(&mut per_plugin, &[]);
    assert_eq!(per_plugin, "");
    server.stop().await;
}
