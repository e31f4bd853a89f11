//! Satellites (`outpost serve --satellite TICKET`): nodes outside the cluster that serve
//! an export's read-only copy, fetched over iroh-docs from any peer, with the cluster
//! up, stopped, and across their own kill -9 and restart; from a ticket whose giver is gone.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_export::ExportTicket;
use outpost_tests::cluster::{CLUSTER_WAIT, leader, start_cluster};
use outpost_tests::lite::SYNC_DEADLINE;
use outpost_tests::{
    Appliance, create_export, default_config, describe, parse_metric, query_udp, wait_until,
};

/// A satellite of the export `ticket`, with its own data directory.
fn satellite(ticket: &str, config: &str) -> Appliance {
    Appliance::start_with_args(
        config,
        &["--satellite", ticket, "--export-listen", "127.0.0.1:0"],
    )
}

/// Waits until `node` answers `name` A with `expected`.
fn wait_for_a(node: &Appliance, name: &str, expected: &[&str]) {
    let mut last = Vec::new();
    let ok = wait_until(SYNC_DEADLINE, || {
        last = node.a_records(name);
        last == expected
    });
    assert!(
        ok,
        "{name} on the satellite: {last:?}, expected {expected:?}\n{}",
        node.log_tail()
    );
}

#[test]
fn a_satellite_serves_the_export_takes_changes_and_keeps_answering_offline() {
    let mut cluster =
        Appliance::start_with_args(&default_config(), &["--export-listen", "127.0.0.1:0"]);
    cluster.cli_ok(["zone", "create", "private.internal."]);
    cluster.cli_ok(["record", "add", "secret.private.internal.", "A", "10.9.9.9"]);
    let ticket = create_export(&cluster, "field-kit", "example.internal.");

    let mut satellite = satellite(
        &ticket,
        &format!(
            "{}\n[query_log]\ncapacity = 500\nanonymize_clients = true\n",
            default_config()
        ),
    );
    wait_for_a(&satellite, "www.example.internal.", &["10.0.0.10"]);
    let secret = query_udp(
        satellite.dns_addr(),
        "secret.private.internal.",
        RecordType::A,
        None,
    );
    assert_ne!(
        secret.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        describe(&secret)
    );

    // A write on the cluster reaches the satellite.
    cluster.cli_ok(["record", "add", "vpn.example.internal.", "A", "10.0.0.50"]);
    wait_for_a(&satellite, "vpn.example.internal.", &["10.0.0.50"]);
    let status = satellite.cli_ok(["status"]);
    for line in [
        "role:",
        "satellite",
        "export:         field-kit",
        "state:          Synced",
    ] {
        assert!(status.contains(line), "{line:?} in\n{status}");
    }

    // Writes go to the cluster, never to a satellite.
    let refused = satellite.cli(["record", "add", "x.example.internal.", "A", "10.0.0.1"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("this node is a satellite of export field-kit")
            && stderr.contains("takes no writes"),
        "{stderr}"
    );
    let (code, body) = satellite.api("DELETE", "/v1/zones/example.internal.", None);
    assert_eq!(code, 403, "{body}");

    // What a member's operator watches, a satellite shows too: the queries it answered
    // (with a member's search parameters, refusals and token, under its [query_log]) and
    // its counters.
    let (code, found) = satellite.api_json("GET", "/v1/querylog?name=vpn.example&type=A", None);
    assert_eq!(code, 200, "{found}");
    assert_eq!(found["capacity"], 500, "{found}");
    let records = found["records"].as_array().cloned().unwrap_or_default();
    assert!(!records.is_empty(), "{found}");
    for record in &records {
        assert_eq!(record["name"], "vpn.example.internal.", "{found}");
        assert_eq!(record["client"], "127.0.0.0", "anonymized: {found}");
    }
    let (code, body) = satellite.api("GET", "/v1/querylog?type=NOPE", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("type"), "{body}");
    for path in ["/v1/querylog", "/v1/querylog/stats"] {
        let (code, body) = satellite.api_with("GET", path, None, None, None);
        assert_eq!(code, 401, "{path} without the token: {body}");
    }
    let (code, text) = satellite.api("GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    let sample = |name: &str| {
        parse_metric(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    let answered = sample(r#"outpost_dns_queries_total{protocol="udp",rcode="NOERROR"}"#);
    assert!(answered >= 2.0, "{answered} NOERROR answers over UDP");
    assert_eq!(sample("outpost_lite_docs_synced"), 1.0);
    assert!(sample("outpost_lite_docs_head") > 0.0);
    assert_eq!(sample("outpost_lite_docs_foreign_entries_total"), 0.0);

    // The cluster stops: the satellite answers on; killed and restarted offline, too.
    assert!(cluster.terminate().is_some());
    assert_eq!(satellite.a_records("vpn.example.internal."), ["10.0.0.50"]);
    satellite.restart();
    assert_eq!(satellite.a_records("vpn.example.internal."), ["10.0.0.50"]);
    assert_eq!(satellite.a_records("www.example.internal."), ["10.0.0.10"]);
    let status = satellite.cli_ok(["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["role"], "satellite", "{status}");
    assert!(status["satellite"]["cursor"].is_u64(), "{status}");
}

#[test]
fn a_satellite_refuses_a_bad_ticket_and_a_members_data_directory() {
    let cluster =
        Appliance::start_with_args(&default_config(), &["--export-listen", "127.0.0.1:0"]);
    let output = std::process::Command::new(outpost_tests::outpost_bin())
        .args(["check-config"])
        .arg({
            let path = cluster.scratch().join("satellite.toml");
            std::fs::write(
                &path,
                format!(
                    "{}\n[satellite]\nticket_file = \"/nonexistent/ticket\"\n",
                    default_config()
                ),
            )
            .unwrap();
            path
        })
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("satellite.ticket_file") && stderr.contains("cannot be read"),
        "{stderr}"
    );

    let output = std::process::Command::new(outpost_tests::outpost_bin())
        .args([
            "serve",
            "--allow-root",
            "--satellite",
            "outpost-export-v1:AAAA",
            "--data-dir",
        ])
        .arg(cluster.scratch().join("bad"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the ticket is damaged"), "{stderr}");

    let ticket = create_export(&cluster, "kit", "example.internal.");
    let output = std::process::Command::new(outpost_tests::outpost_bin())
        .args([
            "serve",
            "--allow-root",
            "--satellite",
            &ticket,
            "--data-dir",
        ])
        .arg(cluster.data_dir())
        .args(["--dns", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds a cluster member's state"),
        "{stderr}"
    );
}

/// The export's ticket as `node` gives it, decoded.
fn ticket_of(node: &Appliance, name: &str) -> (String, ExportTicket) {
    let shown = node.cli_ok(["export", "ticket", name]);
    let text = shown.lines().last().unwrap_or_default().trim().to_string();
    let ticket = text
        .parse()
        .unwrap_or_else(|error| panic!("{error}: {shown}"));
    (text, ticket)
}

#[test]
fn a_ticket_names_every_node_so_a_satellite_starts_with_its_giver_gone() {
    let mut nodes = start_cluster(3, "\n[export]\nlisten = \"127.0.0.1:0\"\n");
    let leader = leader(&nodes, &[0, 1, 2]);
    let giver = (leader + 1) % 3;
    create_export(&nodes[leader], "field-kit", "example.internal.");

    // Every node records its export endpoint through Raft; any node's ticket names all
    // three, its own first.
    let mut shown = None;
    let all_named = wait_until(CLUSTER_WAIT, || {
        let (text, ticket) = ticket_of(&nodes[giver], "field-kit");
        let named = ticket.peers.len();
        shown = Some((text, ticket));
        named == 3
    });
    let (text, ticket) = shown.expect("a ticket");
    assert!(all_named, "{ticket:?}\n{}", nodes[giver].log_tail());
    let ids: std::collections::BTreeSet<_> = ticket.peers.iter().map(|peer| peer.id).collect();
    assert_eq!(ids.len(), 3, "three distinct endpoints: {ticket:?}");

    // The node that gave the ticket is killed; the others take a write and feed a new
    // satellite, which has only the ticket to find them.
    nodes[giver].kill9();
    let writer = (giver + 1) % 3;
    let written = wait_until(CLUSTER_WAIT, || {
        nodes[writer]
            .cli(["record", "add", "late.example.internal.", "A", "10.0.0.77"])
            .status
            .success()
    });
    assert!(written, "{}", nodes[writer].log_tail());
    let satellite = satellite(&text, &default_config());
    wait_for_a(&satellite, "late.example.internal.", &["10.0.0.77"]);
    wait_for_a(&satellite, "www.example.internal.", &["10.0.0.10"]);
}

#[test]
fn a_satellite_answers_over_tls_https_and_quic_takes_the_dns_settings_and_limits_a_burst() {
    let cluster =
        Appliance::start_with_args(&default_config(), &["--export-listen", "127.0.0.1:0"]);
    let ticket = create_export(&cluster, "kiosk", "example.internal.");
    let config = format!(
        "[dns]\nallow_recursion = []\nfull_any_over_tcp = true\ntls_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\
         quic_listen = \"127.0.0.1:0\"\n\n[dns.rate_limit]\nresponses_per_second = 10\nslip = 2\n\n\
         [forward]\nupstreams = [\"{}\"]\n",
        outpost_tests::unused_upstream()
    );
    let satellite = satellite(&ticket, &config);
    wait_for_a(&satellite, "www.example.internal.", &["10.0.0.10"]);

    // The export's names over DoT, DoH and DoQ, as over UDP.
    for (key, transport) in [("dns_tls", "+tls"), ("dns_https", "+https")] {
        let (status, answers) = crate::encrypted::kdig(
            satellite.listener(key),
            &[transport],
            "www.example.internal.",
            "A",
        );
        assert_eq!(status, "NOERROR", "{transport}");
        assert!(
            answers.len() == 1 && answers[0].ends_with("IN A 10.0.0.10"),
            "{transport}: {answers:?}"
        );
    }
    let over_quic = crate::encrypted::ask_quic(
        satellite.listener("dns_quic"),
        &satellite.data_dir().join("dns-tls.pem"),
        "www.example.internal.",
        RecordType::A,
    );
    assert_eq!(
        outpost_tests::answers_of(&over_quic, RecordType::A),
        ["10.0.0.10"],
        "{}",
        describe(&over_quic)
    );

    // `full_any_over_tcp`, as on a member: every RRset of the name over TCP.
    let any = outpost_tests::ask_tcp(
        satellite.dns_addr(),
        &outpost_tests::Ask::new("www.example.internal.", RecordType::ANY),
    );
    let mut types: Vec<RecordType> = any.answers.iter().map(|r| r.record_type()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [RecordType::A, RecordType::AAAA],
        "{}",
        describe(&any)
    );

    // A burst from one source over UDP: the allowance answered, the rest slipped or
    // dropped, as on a member.
    let (full, truncated) = crate::rate_limit::burst(&satellite);
    let answers = full + truncated;
    let dropped = satellite.metric("outpost_dns_rate_limit_dropped_total");
    assert!(
        answers < 200 && dropped > 0.0,
        "{answers} answers, {dropped} dropped"
    );
}
