//! What was acknowledged survives: writes through the CLI and the API are answered
//! after kill -9 and a restart; SIGTERM and SIGINT shut down cleanly and quickly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::dns::tcp_connect;
use outpost_tests::{
    Appliance, answers_of, authoritative_config, describe, query_tcp, query_udp, wait_until,
};

const SITE_ZONE: &str = "$ORIGIN site.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ IN NS ns1
ns1 IN A 10.4.0.1
imported IN A 10.4.0.2
";

/// Asserts that `name` answers `rtype` with exactly `expected` (over UDP).
fn assert_answers(appliance: &Appliance, name: &str, rtype: RecordType, expected: &[&str]) {
    let answer = query_udp(appliance.dns_addr(), name, rtype, None);
    assert_eq!(
        answers_of(&answer, rtype),
        expected,
        "{name} {rtype}\n{}",
        describe(&answer)
    );
}

fn assert_nxdomain(appliance: &Appliance, name: &str) {
    let answer = query_udp(appliance.dns_addr(), name, RecordType::A, None);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{name}\n{}",
        describe(&answer)
    );
}

#[test]
fn writes_acknowledged_through_the_cli_and_the_api_survive_kill_9() {
    let mut appliance = Appliance::start(&authoritative_config());
    let zone_file = appliance.scratch().join("site.zone");
    std::fs::write(&zone_file, SITE_ZONE).unwrap();
    appliance.cli_ok([
        "zone".as_ref(),
        "import".as_ref(),
        zone_file.as_os_str(),
        "--origin".as_ref(),
        "site.test.".as_ref(),
    ]);
    appliance.cli_ok(["zone", "create", "made.test."]);
    for i in 0..5 {
        appliance.cli_ok([
            "record",
            "add",
            &format!("cli{i}.site.test."),
            "A",
            &format!("10.4.1.{i}"),
            "--ttl",
            "120",
        ]);
    }
    appliance.cli_ok([
        "record",
        "add",
        "note.site.test.",
        "TXT",
        "\"kept after a crash\"",
    ]);
    appliance.cli_ok(["record", "rm", "printer.example.internal.", "A", "10.0.0.7"]);
    for i in 0..30 {
        let body =
            format!(r#"{{"name":"api{i}.site.test.","type":"A","data":"10.4.2.{i}","ttl":60}}"#);
        let (status, text) = appliance.api("POST", "/v1/records", Some(&body));
        assert_eq!(status, 201, "{text}");
    }
    let (status, text) = appliance.api(
        "PUT",
        "/v1/records",
        Some(r#"{"name":"www.example.internal.","type":"A","ttl":300,"data":["10.0.0.11","10.0.0.12"]}"#),
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = appliance.api("DELETE", "/v1/records?name=api29.site.test.&type=A", None);
    assert_eq!(status, 200, "{text}");
    // Straight after the last acknowledgement: no clean shutdown, no flush.
    appliance.kill9();
    appliance.restart();

    assert_answers(
        &appliance,
        "imported.site.test.",
        RecordType::A,
        &["10.4.0.2"],
    );
    for i in 0..5 {
        assert_answers(
            &appliance,
            &format!("cli{i}.site.test."),
            RecordType::A,
            &[&format!("10.4.1.{i}")],
        );
    }
    assert_answers(
        &appliance,
        "note.site.test.",
        RecordType::TXT,
        &["\"kept after a crash\""],
    );
    for i in 0..29 {
        assert_answers(
            &appliance,
            &format!("api{i}.site.test."),
            RecordType::A,
            &[&format!("10.4.2.{i}")],
        );
    }
    assert_nxdomain(&appliance, "api29.site.test.");
    assert_nxdomain(&appliance, "printer.example.internal.");
    assert_answers(
        &appliance,
        "www.example.internal.",
        RecordType::A,
        &["10.0.0.11", "10.0.0.12"],
    );
    assert_answers(
        &appliance,
        "made.test.",
        RecordType::SOA,
        &["ns1.made.test. hostmaster.made.test. 1 7200 3600 1209600 300"],
    );
    // The token survived too: the CLI still gets in.
    let zones = appliance.cli_ok(["zone", "list"]);
    for origin in ["example.internal.", "made.test.", "site.test."] {
        assert!(
            zones.contains(origin),
            "{origin} listed after the restart:\n{zones}"
        );
    }
}

#[test]
fn a_write_loop_killed_mid_way_loses_nothing_it_acknowledged() {
    let mut appliance = Appliance::start(&authoritative_config());
    let url = format!("http://{}/v1/records", appliance.admin_addr());
    let token = appliance.token().to_string();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .new_agent();
            for i in 0..2000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = format!(
                    r#"{{"name":"w{i}.example.internal.","type":"A","data":"10.5.{}.{}"}}"#,
                    i / 256,
                    i % 256
                );
                let response = agent
                    .post(&url)
                    .header("Authorization", format!("Bearer {token}"))
                    .header("Content-Type", "application/json")
                    .send(body.as_str());
                match response {
                    Ok(response) if response.status().as_u16() == 201 => {
                        acknowledged.lock().unwrap().push(i)
                    }
                    // The server is gone: whatever was not acknowledged may be lost.
                    _ => break,
                }
            }
        })
    };
    let enough = wait_until(Duration::from_secs(60), || {
        acknowledged.lock().unwrap().len() >= 25
    });
    appliance.kill9();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(enough, "the writer got 25 acknowledgements before the kill");
    let acknowledged = acknowledged.lock().unwrap().clone();

    appliance.restart();
    for i in acknowledged {
        let name = format!("w{i}.example.internal.");
        assert_answers(
            &appliance,
            &name,
            RecordType::A,
            &[&format!("10.5.{}.{}", i / 256, i % 256)],
        );
    }
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly_within_10_seconds() {
    let mut appliance = Appliance::start(&authoritative_config());
    appliance.cli_ok([
        "record",
        "add",
        "before-term.example.internal.",
        "A",
        "10.6.0.1",
    ]);
    // An idle TCP client must not hold the shutdown up.
    let idle = tcp_connect(appliance.dns_addr());
    let status = appliance.terminate();
    drop(idle);
    let status = status
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM\n{}", appliance.log_tail()));
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        appliance.log_tail()
    );

    appliance.restart();
    assert_answers(
        &appliance,
        "before-term.example.internal.",
        RecordType::A,
        &["10.6.0.1"],
    );
    let answer = query_tcp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.0.0.10"],
        "{}",
        describe(&answer)
    );
    appliance.cli_ok([
        "record",
        "add",
        "before-int.example.internal.",
        "A",
        "10.6.0.2",
    ]);
    let status = appliance
        .stop_with("INT")
        .unwrap_or_else(|| panic!("still running 10 s after SIGINT\n{}", appliance.log_tail()));
    assert!(
        status.success(),
        "exit status after SIGINT: {status}\n{}",
        appliance.log_tail()
    );

    appliance.restart();
    assert_answers(
        &appliance,
        "before-int.example.internal.",
        RecordType::A,
        &["10.6.0.2"],
    );
}

#[test]
fn a_deleted_example_zone_stays_deleted_after_a_restart() {
    let mut appliance = Appliance::start(&authoritative_config());
    let out = appliance.cli_ok(["zone", "rm", "example.internal."]);
    assert!(out.contains("example.internal."), "{out}");
    let answer = query_udp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        describe(&answer)
    );
    appliance.kill9();
    appliance.restart();
    let answer = query_udp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::Refused,
        "the example zone is created on first start only\n{}",
        describe(&answer)
    );
    let (status, zones) = appliance.api_json("GET", "/v1/zones", None);
    assert_eq!(status, 200);
    assert_eq!(zones, serde_json::json!([]));
}
