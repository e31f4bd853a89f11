//! The second sync path: iroh-docs exports (`docs/iroh-docs.md`). Real appliances with
//! an export endpoint, real `outpost-lite run --docs` clients, real iroh over loopback.
//! A client that follows an export fetches it from the cluster or from any other client,
//! and applies only whole snapshots signed by the cluster's author.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::convergence::assert_converged_with_satellites;
use outpost_tests::lite::SYNC_DEADLINE;
use outpost_tests::{
    Appliance, Lite, PATIENT_LITE_PLUGINS, create_export, describe, install_plugin,
    patient_plugins_config, wait_plugin_loaded, wait_until,
};

const EXAMPLE: &str = "example.internal.";

/// `outpost-lite run --docs TICKET` on loopback, with `--docs-peer`s, and nothing else:
/// no appliance URL, no token.
fn docs_client(ticket: &str, peers: &[String]) -> Lite {
    let mut args = vec!["--docs", ticket, "--docs-listen", "127.0.0.1:0"];
    for peer in peers {
        args.extend(["--docs-peer", peer.as_str()]);
    }
    args.extend(PATIENT_LITE_PLUGINS);
    Lite::start_with_args(&[], "", &args)
}

/// This client's docs endpoint, as other clients give it to `--docs-peer`.
fn docs_endpoint(lite: &Lite) -> String {
    let status = lite.wait_for_status("its docs endpoint", SYNC_DEADLINE, |status| {
        status["docs"]["endpoint"].is_string()
    });
    status["docs"]["endpoint"].as_str().unwrap().to_string()
}

#[test]
fn laptops_keep_each_other_current_through_an_export_when_the_appliance_is_gone() {
    let mut appliance = Appliance::start_with_args(
        &patient_plugins_config(),
        &["--export-listen", "127.0.0.1:0"],
    );
    appliance.cli_ok(["zone", "create", "lab.internal."]);
    appliance.cli_ok(["zone", "create", "private.internal."]);
    appliance.cli_ok(["record", "add", "secret.private.internal.", "A", "10.9.9.9"]);
    let ticket = create_export(&appliance, "field-kit", "example.internal.,lab.internal.");
    let shown = appliance.cli_ok(["export", "ticket", "field-kit"]);
    assert!(shown.contains(&ticket), "{shown}");

    let a = docs_client(&ticket, &[]);
    let c = docs_client(&ticket, &[]);
    let satellite = Appliance::start_with_args(
        &patient_plugins_config(),
        &["--satellite", &ticket, "--export-listen", "127.0.0.1:0"],
    );
    a.wait_for_a("www.example.internal.", &["10.0.0.10"]);

    // Writes, a delete, a zone replaced whole and a plugin: all reach the clients and the
    // satellite over the export.
    appliance.cli_ok(["record", "add", "vpn.example.internal.", "A", "10.0.0.50"]);
    appliance.cli_ok(["record", "rm", "printer.example.internal."]);
    let zone_file = appliance.scratch().join("lab.zone");
    std::fs::write(
        &zone_file,
        "@ 3600 SOA ns1 hostmaster 7 7200 3600 1209600 300\n@ NS ns1\nns1 A 10.2.0.1\nbench A 10.2.0.2\n",
    )
    .unwrap();
    appliance.cli_ok([
        "zone",
        "import",
        zone_file.to_str().unwrap(),
        "--origin",
        "lab.internal.",
    ]);
    install_plugin(
        &appliance,
        "blocklist",
        "ads",
        "query-policy",
        "ads.example.internal\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "ads");
    assert_converged_with_satellites(
        &appliance,
        &[EXAMPLE, "lab.internal."],
        &["printer.example.internal."],
        &[],
        &[&a, &c],
        &[&satellite],
    );
    let status = a.status_file();
    assert_eq!(status["last_change_path"], "docs", "{status}");
    // After the first whole snapshot, changes arrive as differences.
    assert!(
        a.log().contains("how=\"as changes\""),
        "A installed every snapshot whole:\n{}",
        a.log_tail()
    );
    assert_eq!(status["docs"]["export"], "field-kit", "{status}");
    assert_eq!(status["docs"]["foreign_entries"], 0, "{status}");
    assert_eq!(
        status["zone_names"],
        serde_json::json!(["example.internal.", "lab.internal."]),
        "a zone outside the export never reaches the client: {status}"
    );
    let secret = a.query("secret.private.internal.", RecordType::A);
    assert_ne!(
        secret.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        describe(&secret)
    );

    // One more change reaches A; then the appliance stops for good.
    appliance.cli_ok(["record", "add", "late.example.internal.", "A", "10.0.0.77"]);
    a.wait_for_a("late.example.internal.", &["10.0.0.77"]);
    assert!(appliance.terminate().is_some());

    // B never met the appliance: it gets everything from A alone.
    let b = docs_client(&ticket, &[docs_endpoint(&a)]);
    b.wait_for_a("late.example.internal.", &["10.0.0.77"]);
    let b_status = b.wait_for_status("A's digest and cursor", SYNC_DEADLINE, |status| {
        let a_now = a.status_file();
        status["digest"].is_string()
            && status["digest"] == a_now["digest"]
            && status["cursor"] == a_now["cursor"]
    });
    let a_status = a.status_file();
    assert!(!a.log().contains("panicked"), "{}", a.log());
    assert!(!b.log().contains("panicked"), "{}", b.log());
    assert_eq!(b_status["cursor"], a_status["cursor"], "{b_status}");
    assert_eq!(b_status["last_change_path"], "docs", "{b_status}");
    assert_eq!(b_status["plugins"], a_status["plugins"], "{b_status}");
    assert_eq!(b.a_records("bench.lab.internal."), ["10.2.0.2"]);
    let blocked = b.query("ads.example.internal.", RecordType::A);
    assert_eq!(
        blocked.metadata.response_code,
        ResponseCode::NXDomain,
        "the plugin came with the export: {}",
        describe(&blocked)
    );

    // Restarted with no peer reachable at all, B answers from its own replica.
    let mut b = b;
    b.restart();
    assert_eq!(b.a_records("late.example.internal."), ["10.0.0.77"]);
    let restarted = b.status_file();
    assert_eq!(restarted["cursor"], a_status["cursor"], "{restarted}");
    assert!(
        wait_until(SYNC_DEADLINE, || b.status_file()["docs"]["state"]
            != "Synced"),
        "no peer answers, so the docs path is not Synced: {}",
        b.status_file()
    );
}

#[test]
fn bad_docs_flags_are_refused_with_the_reason() {
    let output = std::process::Command::new(outpost_tests::lite::lite_bin())
        .args(["run", "--docs", "doc123", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not an export ticket: it must start with outpost-export-v1:"),
        "{stderr}"
    );

    let appliance = Appliance::start(&outpost_tests::default_config());
    let refused = appliance.cli([
        "export",
        "create",
        "--name",
        "kit",
        "--zones",
        "example.internal.",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no export endpoint (start it with --export-listen IP:PORT"),
        "a node without an export endpoint says so: {stderr}"
    );
    let missing = appliance.cli([
        "export",
        "create",
        "--name",
        "kit2",
        "--zones",
        "nowhere.internal.",
    ]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("zone nowhere.internal. does not exist"),
        "{stderr}"
    );
    let listed = appliance.cli_ok(["export", "list"]);
    assert!(
        listed.contains("kit") && listed.contains("example.internal."),
        "{listed}"
    );
    let removed = appliance.cli_ok(["export", "rm", "kit"]);
    assert!(removed.contains("removed export kit"), "{removed}");
    let gone = appliance.cli(["export", "ticket", "kit"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no export is named kit"));
}

#[test]
fn entries_of_another_author_are_counted_and_never_applied() {
    let mut appliance = Appliance::start_with_args(
        &outpost_tests::default_config(),
        &["--export-listen", "127.0.0.1:0"],
    );
    let ticket = create_export(&appliance, "field-kit", EXAMPLE);
    appliance.cli_ok(["record", "add", "vpn.example.internal.", "A", "10.0.0.50"]);
    let a = docs_client(&ticket, &[]);
    a.wait_for_a("vpn.example.internal.", &["10.0.0.50"]);
    assert!(appliance.terminate().is_some());

    // Someone who took the appliance's disk has the namespace secret, not the cluster's
    // author key: they write a head and a record bucket of their own and serve them.
    let db = redb::Database::open(appliance.data_dir().join("outpost.redb")).unwrap();
    let state = outpost_replica::load(&redb::ReadableDatabase::begin_read(&db).unwrap()).unwrap();
    let export = state.export("field-kit").unwrap().clone();
    drop(db);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let forger = runtime.block_on(async {
        let key = outpost_export::SecretKey::from_bytes(&[42; 32]);
        let node = outpost_export::DocsNode::bind(key, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let namespace = iroh_docs::NamespaceSecret::from_bytes(&export.namespace_secret);
        let doc = node
            .api()
            .import_namespace(iroh_docs::Capability::Write(namespace))
            .await
            .unwrap();
        let author = node.api().author_create().await.unwrap();
        doc.set_bytes(
            author,
            outpost_export::HEAD_KEY.to_vec(),
            b"forged".to_vec(),
        )
        .await
        .unwrap();
        doc.set_bytes(
            author,
            b"z\x00\x11example.internal.\x01".to_vec(),
            b"forged".to_vec(),
        )
        .await
        .unwrap();
        doc.start_sync(Vec::new()).await.unwrap();
        node
    });
    let forger_peer = {
        let addr = forger.addr();
        format!("{}@{}", addr.id, addr.ip_addrs().next().unwrap())
    };

    let a_peer = docs_endpoint(&a);
    let b = docs_client(&ticket, &[forger_peer.clone(), a_peer.clone()]);
    b.wait_for_status("the forged entries counted", SYNC_DEADLINE, |status| {
        status["docs"]["foreign_entries"].as_u64() >= Some(2)
    });
    b.wait_for_status("A's replica, from A", SYNC_DEADLINE, |s| {
        let a_now = a.status_file();
        s["digest"].is_string() && s["digest"] == a_now["digest"] && s["cursor"] == a_now["cursor"]
    });
    assert_eq!(b.a_records("vpn.example.internal."), ["10.0.0.50"]);
    assert!(
        b.log().contains("not signed by the cluster's author"),
        "{}",
        b.log_tail()
    );

    // A satellite given the same two peers refuses the same entries.
    let config = format!(
        "{}\n[satellite]\npeers = [\"{forger_peer}\", \"{a_peer}\"]\n",
        outpost_tests::default_config()
    );
    let satellite = Appliance::start_with_args(
        &config,
        &["--satellite", &ticket, "--export-listen", "127.0.0.1:0"],
    );
    let mut last = serde_json::Value::Null;
    let counted = wait_until(SYNC_DEADLINE, || {
        last = satellite.api_json("GET", "/v1/status", None).1;
        last["satellite"]["docs"]["foreign_entries"].as_u64() >= Some(2)
            && last["satellite"]["cursor"] == a.status_file()["cursor"]
            && last["satellite"]["digest"].is_string()
            && last["satellite"]["digest"] == a.status_file()["digest"]
    });
    assert!(counted, "{last}\n{}", satellite.log_tail());
    // An operator's alert sees them too.
    assert!(satellite.metric("outpost_lite_docs_foreign_entries_total") >= 2.0);
    assert_eq!(satellite.a_records("vpn.example.internal."), ["10.0.0.50"]);
    runtime.block_on(forger.shutdown());
    for lite in [&a, &b] {
        assert!(!lite.log().contains("panicked"), "{}", lite.log());
    }
}
