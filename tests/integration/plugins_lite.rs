//! Query-policy plugins on a Lite client: the definitions arrive on the sync stream,
//! the client runs them on its own queries, keeps running them with the appliance
//! gone and across its own restarts, and drops them when they are removed.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::lite::SYNC_DEADLINE;
use outpost_tests::{
    Appliance, Lite, authoritative_config, create_lite_token, describe, install_plugin,
    wait_plugin_loaded, wait_until,
};

const EXAMPLE: &str = "example.internal.";
const BLOCKED: &str = "printer.example.internal.";

/// An appliance (example zone included, its sync address pinned for restarts) and a
/// Lite client synced to it with a token for `zones`.
fn synced_pair(zones: &str) -> (Appliance, Lite) {
    let mut appliance = Appliance::start(&authoritative_config());
    appliance.pin_sync_address();
    let token = create_lite_token(&appliance, "laptop", zones);
    let lite = Lite::start_for(&appliance, &token);
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
