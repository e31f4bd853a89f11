//! A Lite client that was away: it resumes from its cursor when the appliance still
//! holds the history, takes a snapshot when it does not (or when the cursor belongs to
//! another cluster), and in every case ends with the appliance's replica, deletes
//! included. Replicas are compared by digest: the client's `status.json` digest
//! against the same digest computed from the appliance's zone exports.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::{Appliance, Lite, appliance_digest, authoritative_config, create_lite_token};

const ZONES: [&str; 2] = ["example.internal.", "later.test."];

/// An appliance with `later.test.` beside the example zone, and a token for both.
fn appliance_with_zones(config: &str) -> (Appliance, String) {
    let appliance = Appliance::start(config);
    appliance.import_zone(
        "later.test.",
        "$ORIGIN later.test.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nhost 300 IN A 10.9.9.0\nold 300 IN A 10.9.9.9\n",
    );
    let token = create_lite_token(&appliance, "laptop", &ZONES.join(","));
    (appliance, token)
}

/// Writes and deletes of every kind, made while the client is stopped: adds, a record
/// removed, an RRset replaced, a zone deleted and created again with other content.
fn change_everything(appliance: &Appliance) {
    for i in 0..3 {
        appliance.cli_ok([
            "record",
            "add",
            &format!("away{i}.example.internal."),
            "A",
            &format!("10.8.0.{i}"),
        ]);
    }
    appliance.cli_ok(["record", "rm", "printer.example.internal.", "A", "10.0.0.7"]);
    appliance.cli_ok(["record", "rm", "away1.example.internal.", "A", "10.8.0.1"]);
    let (status, text) = appliance.api(
        "PUT",
        "/v1/records",
        Some(r#"{"name":"www.example.internal.","type":"A","ttl":120,"data":["10.0.0.11","10.0.0.12"]}"#),
    );
    assert_eq!(status, 200, "{text}");
    appliance.cli_ok(["zone", "rm", "later.test."]);
    appliance.import_zone(
        "later.test.",
        "$ORIGIN later.test.\n@ 300 IN SOA ns1 hostmaster 2 7200 3600 1209600 300\nhost 300 IN A 10.9.9.1\n",
    );
}

/// What a user sees after the client converged.
fn assert_converged(appliance: &Appliance, lite: &Lite) {
    let status = lite.wait_caught_up(appliance);
    assert_eq!(
        status["digest"],
        appliance_digest(appliance, &ZONES),
        "replicas differ: {status}\n{}",
        lite.log_tail()
    );
    assert_eq!(status["zones"], 2, "{status}");
    assert_eq!(lite.a_records("away0.example.internal."), ["10.8.0.0"]);
    assert_eq!(lite.a_records("away2.example.internal."), ["10.8.0.2"]);
    let mut www = lite.a_records("www.example.internal.");
    www.sort();
    assert_eq!(www, ["10.0.0.11", "10.0.0.12"]);
    assert_eq!(lite.a_records("host.later.test."), ["10.9.9.1"]);
    for deleted in [
        "printer.example.internal.",
        "away1.example.internal.",
        "old.later.test.",
    ] {
        let answer = lite.query(deleted, RecordType::A);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{deleted}"
        );
    }
}

/// The log lines of the client's sessions that started in `mode` (Resume, Snapshot).
fn sessions_in_mode(lite: &Lite, mode: &str) -> usize {
    lite.log()
        .lines()
        .filter(|line| line.contains("welcomed") && line.contains(&format!("mode={mode}")))
        .count()
}

#[test]
fn changes_and_deletes_made_while_away_are_resumed_and_converge() {
    let (appliance, token) = appliance_with_zones(&authoritative_config());
    let mut lite = Lite::start_for(&appliance, &token);
    lite.wait_caught_up(&appliance);
    assert_eq!(lite.a_records("old.later.test."), ["10.9.9.9"]);
    assert!(lite.terminate().is_some_and(|exit| exit.success()));

    change_everything(&appliance);
    lite.restart();
    assert_converged(&appliance, &lite);
    assert_eq!(sessions_in_mode(&lite, "Snapshot"), 1, "{}", lite.log());
    assert_eq!(sessions_in_mode(&lite, "Resume"), 1, "{}", lite.log());
}

#[test]
fn a_cursor_older_than_the_retained_history_takes_the_snapshot_path() {
    let config = format!("{}\n[sync]\nhistory_entries = 5\n", authoritative_config());
    let (appliance, token) = appliance_with_zones(&config);
    let mut lite = Lite::start_for(&appliance, &token);
    lite.wait_caught_up(&appliance);
    lite.kill9();

    // Well over five entries: the history no longer reaches the client's cursor.
    change_everything(&appliance);
    for i in 0..4 {
        appliance.cli_ok([
            "record",
            "add",
            &format!("more{i}.later.test."),
            "TXT",
            "\"while away\"",
        ]);
    }
    lite.restart();
    assert_converged(&appliance, &lite);
    assert_eq!(sessions_in_mode(&lite, "Snapshot"), 2, "{}", lite.log());
    assert_eq!(sessions_in_mode(&lite, "Resume"), 0, "{}", lite.log());
}

#[test]
fn a_cursor_from_another_cluster_is_replaced_by_a_snapshot() {
    let first = Appliance::start(&authoritative_config());
    let token = create_lite_token(&first, "laptop", "example.internal.");
    first.cli_ok([
        "record",
        "add",
        "only-first.example.internal.",
        "A",
        "10.1.1.1",
    ]);
    let mut lite = Lite::start_for(&first, &token);
    lite.wait_for_a("only-first.example.internal.", &["10.1.1.1"]);
    let first_status = lite.wait_caught_up(&first);
    assert!(lite.terminate().is_some());

    // A wiped appliance is a new cluster: its log indexes mean nothing to the cursor.
    let second = Appliance::start(&authoritative_config());
    let token = create_lite_token(&second, "laptop", "example.internal.");
    second.cli_ok([
        "record",
        "add",
        "only-second.example.internal.",
        "A",
        "10.2.2.2",
    ]);
    lite.set_token(&token);
    lite.set_appliances(&[outpost_tests::sync_url(&second)]);
    lite.restart();
    lite.wait_for_a("only-second.example.internal.", &["10.2.2.2"]);
    let status = lite.wait_caught_up(&second);
    assert!(lite.a_records("only-first.example.internal.").is_empty());
    assert_eq!(
        status["digest"],
        appliance_digest(&second, &["example.internal."])
    );
    assert_ne!(status["digest"], first_status["digest"]);
    assert_eq!(sessions_in_mode(&lite, "Snapshot"), 2, "{}", lite.log());
}
