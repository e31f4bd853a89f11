//! The admin CLI as an operator uses it: `outpost zone …`, `outpost record …`,
//! `outpost status` and `outpost check-config`.

use std::process::Output;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::appliance::serve_command;
use outpost_tests::{
    Appliance, Ask, answers_of, ask_udp, authoritative_config, describe, outpost_bin, query_tcp,
    query_udp, unused_upstream,
};

/// A master file using what RFC 1035 allows: `$ORIGIN`, `$TTL` with units,
/// parentheses over several lines, comments, relative and absolute names, `@`, blank
/// owners, escapes and quoted strings.
const SITE_ZONE: &str = r#"; the site's own zone
$ORIGIN site.test.
$TTL 1h
@   IN  SOA ns1.site.test. hostmaster (
            2024060101 ; serial
            2h         ; refresh
            1h         ; retry
            2w         ; expire
            5m )       ; minimum
    IN  NS  ns1
    IN  MX  10 mail
ns1         IN A    10.7.0.1
printer 300 IN A    10.7.0.7
            IN AAAA fd00::7
mail        IN A    10.7.0.25
www.site.test. IN CNAME printer
notes       IN TXT  "v=spf1 -all" "two words" "quote \" inside"
odd\032name IN A    10.7.0.32
_ipp._tcp   IN SRV  0 5 631 printer
"#;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the CLI failed with a message containing every one of `needles`.
fn assert_fails_with(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected a failure; stdout: {}\nstderr: {err}",
        stdout(output)
    );
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn write_file(appliance: &Appliance, name: &str, text: &str) -> String {
    let path = appliance.scratch().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The A records of `odd\032name.site.test.`, whose first label holds a space.
fn odd_name(appliance: &Appliance) -> Vec<String> {
    let name = hickory_proto::rr::Name::from_labels([&b"odd name"[..], b"site", b"test"]).unwrap();
    answers_of(
        &ask_udp(appliance.dns_addr(), &Ask::for_name(name, RecordType::A)),
        RecordType::A,
    )
}

#[test]
fn zone_import_reads_an_rfc_1035_master_file() {
    let mut appliance = Appliance::start(&authoritative_config());
    let file = write_file(&appliance, "site.zone", SITE_ZONE);
    let out = appliance.cli_ok(["zone", "import", &file, "--origin", "site.test."]);
    assert!(out.contains("imported 11 records into site.test."), "{out}");

    let dns = appliance.dns_addr();
    let soa = query_udp(dns, "site.test.", RecordType::SOA, None);
    assert_eq!(
        answers_of(&soa, RecordType::SOA),
        ["ns1.site.test. hostmaster.site.test. 2024060101 7200 3600 1209600 300"],
        "parentheses, comments and TTL units\n{}",
        describe(&soa)
    );
    assert_eq!(soa.answers[0].ttl, 3600, "$TTL 1h");
    assert_eq!(
        answers_of(
            &query_udp(dns, "site.test.", RecordType::MX, None),
            RecordType::MX
        ),
        ["10 mail.site.test."]
    );
    let printer = query_udp(dns, "printer.site.test.", RecordType::A, None);
    assert_eq!(answers_of(&printer, RecordType::A), ["10.7.0.7"]);
    assert_eq!(printer.answers[0].ttl, 300);
    let aaaa = query_udp(dns, "printer.site.test.", RecordType::AAAA, None);
    assert_eq!(
        answers_of(&aaaa, RecordType::AAAA),
        ["fd00::7"],
        "a blank owner repeats the last one"
    );
    assert_eq!(
        aaaa.answers[0].ttl, 3600,
        "a record without a TTL takes $TTL"
    );
    let www = query_tcp(dns, "www.site.test.", RecordType::A, None);
    assert_eq!(
        answers_of(&www, RecordType::CNAME),
        ["printer.site.test."],
        "{}",
        describe(&www)
    );
    assert_eq!(
        answers_of(
            &query_udp(dns, "notes.site.test.", RecordType::TXT, None),
            RecordType::TXT
        ),
        [r#""v=spf1 -all" "two words" "quote " inside""#]
    );
    assert_eq!(
        odd_name(&appliance),
        ["10.7.0.32"],
        "\\032 is a space inside a label"
    );
    // The stored state, odd names included, loads again after a crash.
    appliance.kill9();
    appliance.restart();
    assert_eq!(
        odd_name(&appliance),
        ["10.7.0.32"],
        "{}",
        appliance.log_tail()
    );
    let dns = appliance.dns_addr();
    assert_eq!(
        answers_of(
            &query_udp(dns, "_ipp._tcp.site.test.", RecordType::SRV, None),
            RecordType::SRV
        ),
        ["0 5 631 printer.site.test."]
    );
}

#[test]
fn a_zone_file_with_an_error_names_the_line_and_changes_nothing() {
    let appliance = Appliance::start(&authoritative_config());
    let good = write_file(&appliance, "good.zone", SITE_ZONE);
    appliance.cli_ok(["zone", "import", &good, "--origin", "site.test."]);

    // Line 4 has an address that is not one; the lines before it are fine. (No
    // $ORIGIN: the file is read against the origin given on the command line.)
    let broken = "$TTL 300\n@ IN SOA ns1 hostmaster 9 7200 3600 1209600 300\n@ IN NS ns1\nprinter IN A 10.7.0.300\n";
    let file = write_file(&appliance, "broken.zone", broken);
    let output = appliance.cli(["zone", "import", &file, "--origin", "site.test."]);
    assert_fails_with(&output, &["line 4"]);
    assert_eq!(
        appliance.a_records("printer.site.test."),
        ["10.7.0.7"],
        "a failed import changes nothing"
    );
    let serial = query_udp(appliance.dns_addr(), "site.test.", RecordType::SOA, None);
    assert!(
        answers_of(&serial, RecordType::SOA)[0].contains(" 2024060101 "),
        "{}",
        describe(&serial)
    );

    let output = appliance.cli(["zone", "import", &file, "--origin", "fresh.test."]);
    assert_fails_with(&output, &["line 4"]);
    let fresh = query_udp(appliance.dns_addr(), "fresh.test.", RecordType::SOA, None);
    assert_eq!(
        fresh.metadata.response_code,
        ResponseCode::Refused,
        "no half-imported zone\n{}",
        describe(&fresh)
    );

    let include = write_file(
        &appliance,
        "include.zone",
        "$ORIGIN site.test.\n$INCLUDE other.zone\n",
    );
    let output = appliance.cli(["zone", "import", &include, "--origin", "site.test."]);
    assert_fails_with(&output, &["line 2", "$INCLUDE"]);

    let output = appliance.cli([
        "zone",
        "import",
        "/nonexistent/site.zone",
        "--origin",
        "site.test.",
    ]);
    assert_fails_with(&output, &["/nonexistent/site.zone"]);

    // The API gives the same message as JSON.
    let (status, body) = appliance.api_with(
        "PUT",
        "/v1/zones/site.test.",
        Some("text/plain"),
        Some(broken),
        Some(appliance.token()),
    );
    assert_eq!(status, 400, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
    let message = body["error"].as_str().expect("an error message");
    assert!(message.starts_with("zone file line 4: "), "{message}");
}

#[test]
fn export_round_trips_through_import() {
    let appliance = Appliance::start(&authoritative_config());
    let file = write_file(&appliance, "site.zone", SITE_ZONE);
    appliance.cli_ok(["zone", "import", &file, "--origin", "site.test."]);
    let (status, before) = appliance.api_json("GET", "/v1/zones/site.test./records", None);
    assert_eq!(status, 200);
    let exported = appliance.cli_ok(["zone", "export", "site.test."]);
    assert!(exported.contains("$ORIGIN site.test."), "{exported}");

    appliance.cli_ok(["zone", "rm", "site.test."]);
    let gone = query_udp(
        appliance.dns_addr(),
        "printer.site.test.",
        RecordType::A,
        None,
    );
    assert_eq!(
        gone.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        describe(&gone)
    );

    let again = write_file(&appliance, "exported.zone", &exported);
    appliance.cli_ok(["zone", "import", &again, "--origin", "site.test."]);
    let (status, after) = appliance.api_json("GET", "/v1/zones/site.test./records", None);
    assert_eq!(status, 200);
    let sorted = |value: &serde_json::Value| {
        let mut records: Vec<String> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        records.sort();
        records
    };
    assert_eq!(
        sorted(&after),
        sorted(&before),
        "the same records after export and import"
    );
    assert_eq!(sorted(&before).len(), 11);
    assert_eq!(
        appliance.cli_ok(["zone", "export", "site.test."]),
        exported,
        "export is stable"
    );
    assert_eq!(
        odd_name(&appliance),
        ["10.7.0.32"],
        "\\032 is a space inside a label"
    );
}

#[test]
fn records_are_added_listed_and_removed_from_the_cli() {
    let appliance = Appliance::start(&authoritative_config());
    appliance.cli_ok(["zone", "create", "site.test."]);
    let out = appliance.cli_ok([
        "record",
        "add",
        "printer.site.test.",
        "A",
        "10.0.0.7",
        "--ttl",
        "300",
    ]);
    assert!(out.contains("site.test."), "{out}");
    appliance.cli_ok(["record", "add", "printer.site.test", "A", "10.0.0.8"]);
    appliance.cli_ok(["record", "add", "site.test.", "MX", "10", "printer"]);
    appliance.cli_ok([
        "record",
        "add",
        "notes.site.test.",
        "TXT",
        "\"hello world\"",
    ]);

    let answer = query_udp(
        appliance.dns_addr(),
        "printer.site.test.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.0.0.7", "10.0.0.8"],
        "{}",
        describe(&answer)
    );
    assert!(answer.metadata.authoritative);
    assert_eq!(
        answers_of(
            &query_udp(appliance.dns_addr(), "site.test.", RecordType::MX, None),
            RecordType::MX
        ),
        ["10 printer.site.test."],
        "relative names in record data are relative to the zone"
    );
    assert_eq!(
        answers_of(
            &query_udp(
                appliance.dns_addr(),
                "notes.site.test.",
                RecordType::TXT,
                None
            ),
            RecordType::TXT
        ),
        ["\"hello world\""]
    );

    let list = appliance.cli_ok(["record", "list", "site.test."]);
    for needle in [
        "printer.site.test.",
        "10.0.0.7",
        "10.0.0.8",
        "300",
        "MX",
        "\"hello world\"",
        "SOA",
        "NS",
    ] {
        assert!(list.contains(needle), "{needle:?} in the listing:\n{list}");
    }

    appliance.cli_ok(["record", "rm", "printer.site.test.", "A", "10.0.0.7"]);
    assert_eq!(appliance.a_records("printer.site.test."), ["10.0.0.8"]);
    appliance.cli_ok(["record", "rm", "printer.site.test.", "A"]);
    let answer = query_udp(
        appliance.dns_addr(),
        "printer.site.test.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answer)
    );
    appliance.cli_ok(["record", "rm", "notes.site.test."]);
    let answer = query_udp(
        appliance.dns_addr(),
        "notes.site.test.",
        RecordType::TXT,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answer)
    );
    let list = appliance.cli_ok(["record", "list", "site.test."]);
    assert!(
        !list
            .lines()
            .any(|line| line.starts_with("printer.") || line.starts_with("notes.")),
        "removed records are not listed:\n{list}"
    );
}

#[test]
fn cli_failures_exit_non_zero_with_a_message() {
    let appliance = Appliance::start(&authoritative_config());
    assert_fails_with(
        &appliance.cli(["record", "add", "host.nowhere.test.", "A", "10.0.0.1"]),
        &["host.nowhere.test."],
    );
    assert_fails_with(
        &appliance.cli(["record", "add", "bad.example.internal.", "A", "10.0.0.300"]),
        &["10.0.0.300"],
    );
    assert_fails_with(
        &appliance.cli(["record", "add", "bad.example.internal.", "BOGUS", "x"]),
        &["BOGUS"],
    );
    assert_fails_with(
        &appliance.cli(["record", "add", "docs.example.internal.", "A", "10.0.0.1"]),
        &["docs.example.internal."],
    );
    assert_fails_with(
        &appliance.cli(["zone", "create", "example.internal."]),
        &["example.internal."],
    );
    assert_fails_with(
        &appliance.cli(["zone", "rm", "missing.test."]),
        &["missing.test."],
    );
    assert_fails_with(
        &appliance.cli(["zone", "export", "missing.test."]),
        &["missing.test."],
    );
    assert_fails_with(
        &appliance.cli(["record", "rm", "nothing.example.internal.", "A", "10.9.9.9"]),
        &[],
    );
    // Nothing changed on the way.
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
    let answer = query_udp(
        appliance.dns_addr(),
        "docs.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answers_of(&answer, RecordType::CNAME),
        ["www.example.internal."],
        "{}",
        describe(&answer)
    );

    // A wrong token, and no server at all.
    let output = appliance
        .cli_command(["zone", "list"])
        .env("OUTPOST_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert_fails_with(&output, &["token"]);
    let output = std::process::Command::new(outpost_bin())
        .args(["zone", "list", "--admin", &unused_upstream(), "--data-dir"])
        .arg(appliance.data_dir())
        .output()
        .unwrap();
    assert_fails_with(&output, &["cannot reach"]);
}

#[test]
fn the_token_from_the_environment_is_used() {
    let appliance = Appliance::start(&authoritative_config());
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(outpost_bin())
        .args([
            "zone",
            "list",
            "--admin",
            &appliance.admin_addr().to_string(),
            "--data-dir",
        ])
        .arg(empty.path())
        .env("OUTPOST_TOKEN", appliance.token())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("example.internal."),
        "{}",
        stdout(&output)
    );
}

#[test]
fn zone_list_create_rm_and_status() {
    let appliance = Appliance::start(&authoritative_config());
    let out = appliance.cli_ok(["zone", "create", "new.test"]);
    assert!(out.contains("new.test."), "{out}");
    let list = appliance.cli_ok(["zone", "list"]);
    assert!(
        list.contains("example.internal.") && list.contains("new.test."),
        "{list}"
    );
    let soa = query_udp(appliance.dns_addr(), "new.test.", RecordType::SOA, None);
    assert_eq!(
        soa.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        describe(&soa)
    );
    assert!(soa.metadata.authoritative, "{}", describe(&soa));

    let status = appliance.cli_ok(["status"]);
    assert!(
        status.to_lowercase().contains("leader"),
        "a single node leads its own cluster:\n{status}"
    );
    assert!(
        status.contains("zones:") && status.contains('2'),
        "{status}"
    );
    let (code, json) = appliance.api_json("GET", "/v1/status", None);
    assert_eq!(code, 200);
    assert_eq!(json["zones"], 2, "{json}");
    assert!(json["applied_index"].as_u64().unwrap_or(0) >= 2, "{json}");

    appliance.cli_ok(["zone", "rm", "new.test."]);
    assert!(!appliance.cli_ok(["zone", "list"]).contains("new.test."));
    let soa = query_udp(appliance.dns_addr(), "new.test.", RecordType::SOA, None);
    assert_eq!(
        soa.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        describe(&soa)
    );
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new(outpost_bin())
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        (path, output)
    };
    let good = "data_dir = \"/tmp/outpost-check\"\nexample_zone = false\n\n[dns]\nlisten = \"127.0.0.1:5353\"\nallow_recursion = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n\n[admin]\nlisten = \"127.0.0.1:8053\"\n\n[sync]\nlisten = \"127.0.0.1:8054\"\n\n[forward]\nupstreams = [\"127.0.0.1:5300\", \"tcp://127.0.0.1:5301\"]\ntimeout_ms = 800\ncache_entries = 5000\nserve_stale_secs = 600\n\n[plugins]\npolicy_deadline_ms = 5\ntransform_deadline_ms = 3000\n";
    let (path, output) = check("good.toml", good);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), format!("{}: ok", path.display()));

    let bad: &[(&str, &str, &[&str])] = &[
        (
            "unknown-key.toml",
            "[dns]\nlisten = \"127.0.0.1:53\"\nlisen = 1\n",
            &["lisen"],
        ),
        (
            "unknown-section.toml",
            "[forwarding]\nupstreams = []\n",
            &["forwarding"],
        ),
        (
            "bad-network.toml",
            "[dns]\nallow_recursion = [\"10.0.0.0/33\"]\n",
            &["dns.allow_recursion", "10.0.0.0/33"],
        ),
        (
            "bad-upstream.toml",
            "[forward]\nupstreams = [\"resolver.example\"]\n",
            &["forward.upstreams", "resolver.example"],
        ),
        (
            "bad-listen.toml",
            "[admin]\nlisten = \"localhost\"\n",
            &["admin.listen"],
        ),
        (
            "bad-timeout.toml",
            "[forward]\nupstreams = []\ntimeout_ms = 0\n",
            &["forward.timeout_ms"],
        ),
        (
            "bad-plugin-deadline.toml",
            "[plugins]\npolicy_deadline_ms = 5000\n",
            &["plugins.policy_deadline_ms", "5000", "1 to 1000"],
        ),
        (
            "bad-type.toml",
            "example_zone = \"yes\"\n[forward]\nupstreams = []\n",
            &["example_zone"],
        ),
        ("not-toml.toml", "[dns\n", &["not-toml.toml"]),
    ];
    for (name, text, needles) in bad {
        let (_, output) = check(name, text);
        assert_fails_with(&output, needles);
    }
    let output = std::process::Command::new(outpost_bin())
        .args(["check-config", "/nonexistent/outpost.toml"])
        .output()
        .unwrap();
    assert_fails_with(&output, &["/nonexistent/outpost.toml"]);
}

#[test]
fn serve_with_a_bad_config_exits_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[dns]\nallow_recursion = [\"everyone\"]\n[forward]\nupstreams = []\n";
    let output = serve_command(dir.path(), config, &[]).output().unwrap();
    assert_fails_with(&output, &["dns.allow_recursion", "everyone"]);
}
