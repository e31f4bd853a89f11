//! The integration-test harness: real `outpost` processes on loopback, started on port
//! 0 in their own temporary directories, and a real DNS client over real sockets.
//!
//! # Layout
//! - [`appliance`]: one `outpost serve` process and how a user reaches it (admin API,
//!   CLI, signals, `/metrics`).
//! - [`browser`]: a real headless Chromium through ChromeDriver (WebDriver), and
//!   axe-core's accessibility check, for the console's tests.
//! - [`dns`]: a blocking DNS client over UDP and TCP, and raw packet sending for
//!   malformed input.
//! - [`lite`]: one `outpost-lite run` process (DNS, `outpost-lite status`, signals),
//!   Lite tokens and a replica digest computed from the appliance's zone exports.
//! - [`plugin`]: the test WebAssembly components, installing them with the CLI, and
//!   waiting until a node runs what was installed.
//! - [`cluster`]: clusters of real processes joined by ticket, the leader, writes
//!   through any node.
//! - [`knot`]: a real Knot server as a secondary or a primary of outpost, and `kdig`.
//! - [`partition`]: cutting a node's Raft traffic on loopback with iptables.
//! - [`convergence`]: the convergence checker, comparing every replica (appliances and
//!   Lite clients) with what the cluster holds, over DNS and by digest.
//!
//! **Invariant:** no test traffic leaves loopback. [`Appliance::start`] refuses a
//! config without `forward.upstreams`, whose default would be /etc/resolv.conf.

pub mod appliance;
pub mod browser;
pub mod cluster;
pub mod convergence;
pub mod dns;
pub mod knot;
pub mod lite;
pub mod partition;
pub mod plugin;

pub use appliance::{Appliance, outpost_bin, parse_metric, unused_upstream, wait_until};
pub use dns::{
    Ask, answers_of, ask_tcp, ask_udp, ask_udp_from, describe, query_tcp, query_udp, rdata_strings,
    send_udp,
};
pub use lite::{Lite, appliance_digest, create_export, create_lite_token, sync_url};
pub use plugin::{
    PATIENT_LITE_PLUGINS, PATIENT_PLUGINS, install_plugin, patient_plugins_config, plugin,
    plugin_list_row, plugin_path, plugins, put_plugin, wait_plugin_loaded,
};

/// The config of a purely authoritative server: recursion for nobody (names outside
/// our zones get REFUSED), forwarding pointed at an unused loopback port anyway.
pub fn authoritative_config() -> String {
    format!(
        "[dns]\nallow_recursion = []\n\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    )
}

/// The default config (example zone, recursion for loopback and private ranges) with
/// forwarding pointed at an unused loopback port.
pub fn default_config() -> String {
    format!(
        "[forward]\nupstreams = [\"{}\"]\ntimeout_ms = 300\n",
        unused_upstream()
    )
}
