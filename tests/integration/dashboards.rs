//! The Grafana dashboard in `docs/grafana/outpost.json` reads only metrics the daemons
//! export: every metric name in its queries is in a real appliance's `/metrics`, or in a
//! real Lite client's page `/metrics` (`outpost_lite_*`).

use std::collections::BTreeSet;

use outpost_tests::{Appliance, Lite, create_lite_token, default_config};

/// The metric names an expression reads: identifiers starting `outpost_`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("outpost_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// The names of the samples in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_grafana_dashboard_reads_only_metrics_the_daemons_export() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/outpost.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let wanted: BTreeSet<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .flat_map(|target| metric_names(target["expr"].as_str().unwrap_or_default()))
        .collect();
    assert!(wanted.len() > 20, "{wanted:?}");

    // An appliance with a plugin (its call histogram) and a Lite client (its gauges).
    let appliance = Appliance::start(&default_config());
    outpost_tests::install_plugin(
        &appliance,
        "blocklist",
        "ads",
        "query-policy",
        "ads.example.internal\n",
        &[],
    );
    outpost_tests::wait_plugin_loaded(&appliance, "ads");
    let token = create_lite_token(&appliance, "laptop", "example.internal.");
    let lite = Lite::start_for(&appliance, &token);
    lite.wait_caught_up(&appliance);
    let (status, text) = appliance.api("GET", "/metrics", None);
    assert_eq!(status, 200);
    let mut have = exported(&text);
    let page = lite.page_addr();
    let lite_metrics = ureq::get(&format!("http://{page}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    have.extend(exported(&lite_metrics));

    let missing: Vec<&String> = wanted.iter().filter(|name| !have.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "docs/grafana/outpost.json reads metrics nobody exports: {missing:?}"
    );
}
