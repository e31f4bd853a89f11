//! Query-policy plugins on a Lite client: the definitions arrive on the sync stream,
//! the client runs them on its own queries, keeps running them with the appliance
//! gone and across its own restarts, and drops them when they are removed; records a
//! transform shaped on the appliance arrive as stored.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::lite::SYNC_DEADLINE;
use outpost_tests::{
    Appliance, Ask, Lite, PATIENT_LITE_PLUGINS, answers_of, ask_udp_from, create_lite_token,
    describe, install_plugin, patient_plugins_config, sync_url, wait_plugin_loaded, wait_until,
};

const EXAMPLE: &str = "example.internal.";
const BLOCKED: &str = "printer.example.internal.";

/// An appliance (example zone included, its sync address pinned for restarts) and a
/// Lite client synced to it with a token for `zones`.
fn synced_pair(zones: &str) -> (Appliance, Lite) {
    let mut appliance = Appliance::start(&patient_plugins_config());
    appliance.pin_sync_address();
    let token = create_lite_token(&appliance, "laptop", zones);
    let lite = Lite::start_with_args(&[sync_url(&appliance)], &token, &PATIENT_LITE_PLUGINS);
    lite.wait_synced();
    (appliance, lite)
}

/// Asserts the Lite client answers NXDOMAIN for [`BLOCKED`], with no records, and
/// still answers the names the plugin does not list.
fn assert_blocked_on(lite: &Lite, when: &str) {
    let answer = lite.query(BLOCKED, RecordType::A);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{BLOCKED} on the Lite client {when}: {}\n{}",
        describe(&answer),
        lite.log_tail()
    );
    assert!(answer.answers.is_empty(), "{}", describe(&answer));
    assert_eq!(
        lite.a_records("www.example.internal."),
        ["10.0.0.10"],
        "{when}"
    );
}

#[test]
fn a_lite_client_runs_a_blocklist_online_offline_and_after_a_restart() {
    let (mut appliance, mut lite) = synced_pair(EXAMPLE);
    lite.wait_for_a(BLOCKED, &["10.0.0.7"]);

    install_plugin(
        &appliance,
        "blocklist",
        "ads",
        "query-policy",
        "printer.example.internal\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "ads");
    let mut last = None;
    let blocked = wait_until(SYNC_DEADLINE, || {
        let answer = lite.query(BLOCKED, RecordType::A);
        let done = answer.metadata.response_code == ResponseCode::NXDomain;
        last = Some(answer);
        done
    });
    assert!(
        blocked,
        "{BLOCKED} on the Lite client after the install: {}\nstatus: {}\n{}",
        last.as_ref().map(describe).unwrap_or_default(),
        lite.status_file(),
        lite.log_tail()
    );
    assert_blocked_on(&lite, "once synced");

    // The appliance goes away: the client keeps its plugin.
    assert!(appliance.terminate().is_some());
    lite.wait_for_status("a lost appliance", SYNC_DEADLINE, |status| {
        status["state"] != "Synced" && status["error"].is_string()
    });
    assert_blocked_on(&lite, "with the appliance stopped");

    // Restarted with no appliance to reach: the plugin comes from its own replica,
    // in force from the first query.
    lite.restart();
    assert_blocked_on(&lite, "restarted with the appliance stopped");

    // The appliance is back; removing the plugin reaches the client.
    appliance.restart();
    appliance.cli_ok(["plugin", "rm", "ads"]);
    lite.wait_for_a(BLOCKED, &["10.0.0.7"]);
    lite.wait_caught_up(&appliance);
    assert_eq!(lite.a_records(BLOCKED), ["10.0.0.7"]);
}

/// The A records a query for `name` from `source` gets from the Lite client.
fn a_records_from(lite: &Lite, source: [u8; 4], name: &str) -> Vec<String> {
    let source = IpAddr::V4(Ipv4Addr::from(source));
    let answer = ask_udp_from(source, lite.dns_addr(), &Ask::new(name, RecordType::A));
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NoError,
        "{name} from {source}: {}",
        describe(&answer)
    );
    answers_of(&answer, RecordType::A)
}

#[test]
fn split_horizon_and_transformed_records_hold_on_an_offline_lite_client() {
    let (mut appliance, lite) = synced_pair(EXAMPLE);
    install_plugin(
        &appliance,
        "split_horizon",
        "views",
        "query-policy",
        "127.0.0.2/32 printer.example.internal 10.2.2.2\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "views");
    install_plugin(
        &appliance,
        "ttl_floor",
        "floor",
        "record-transform",
        "600\n",
        &[],
    );
    wait_plugin_loaded(&appliance, "floor");
    appliance.cli_ok([
        "record",
        "add",
        "short.example.internal.",
        "A",
        "10.0.0.99",
        "--ttl",
        "30",
    ]);
    let viewed = wait_until(SYNC_DEADLINE, || {
        a_records_from(&lite, [127, 0, 0, 2], BLOCKED) == ["10.2.2.2"]
    });
    assert!(
        viewed,
        "the view never reached the Lite client\n{}",
        lite.log_tail()
    );
    lite.wait_for_a("short.example.internal.", &["10.0.0.99"]);
    lite.wait_caught_up(&appliance);

    // Offline: the view still depends on who asks, and the record keeps the TTL the
    // appliance's transform gave it.
    assert!(appliance.terminate().is_some());
    lite.wait_for_status("a lost appliance", SYNC_DEADLINE, |status| {
        status["state"] != "Synced" && status["error"].is_string()
    });
    assert_eq!(a_records_from(&lite, [127, 0, 0, 2], BLOCKED), ["10.2.2.2"]);
    assert_eq!(a_records_from(&lite, [127, 0, 0, 1], BLOCKED), ["10.0.0.7"]);
    let answer = lite.query("short.example.internal.", RecordType::A);
    assert!(
        !answer.answers.is_empty() && answer.answers.iter().all(|record| record.ttl == 600),
        "{}",
        describe(&answer)
    );
    let status = lite.status_file();
    let plugins = status["plugins"].as_array().cloned().unwrap_or_default();
    assert!(
        plugins
            .iter()
            .any(|p| p["name"] == "views" && p["state"] == "running" && p["version"] == 1),
        "{status}"
    );
}
