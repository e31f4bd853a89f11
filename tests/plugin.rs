//! WebAssembly plugins for the processes under test: the test components that
//! `./scripts/build-plugins.sh` builds, installed as an operator does (`outpost plugin
//! install`, `PUT /v1/plugins/{name}`), read back (`outpost plugin list`,
//! `GET /v1/plugins`), and waiting until a node has loaded what was installed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Appliance, wait_until};

/// How long a node may take to load an installed plugin (compile the component, run
/// `init` on its first instances) on a loaded two-core machine.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(20);

/// The `[plugins]` section for tests that are not about deadlines: a call may run for
/// a second, 500 times the 2 ms default, so a test thread descheduled in the middle of
/// a `decide` on a loaded CI machine is not cut off as a timeout.
pub const PATIENT_PLUGINS: &str =
    "\n[plugins]\npolicy_deadline_ms = 1000\ntransform_deadline_ms = 60000\n";

/// The Lite client's flags for the same patience (it runs query-policy plugins only).
pub const PATIENT_LITE_PLUGINS: [&str; 2] = ["--policy-deadline-ms", "1000"];

/// [`authoritative_config`](crate::authoritative_config) with [`PATIENT_PLUGINS`].
pub fn patient_plugins_config() -> String {
    crate::authoritative_config() + PATIENT_PLUGINS
}

/// The folder of the test components: `OUTPOST_PLUGIN_DIR`, else the workspace's
/// `target/plugins` (where the script copies them, whatever `CARGO_TARGET_DIR` is).
pub fn plugin_dir() -> PathBuf {
    std::env::var_os("OUTPOST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins")))
}

/// The component of plugin crate `crate_name` (`blocklist`, `split_horizon`,
/// `ttl_floor`, `ptr_synth`, `hostile`): `outpost_plugin_<crate_name>.wasm`.
pub fn plugin_path(crate_name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("outpost_plugin_{crate_name}.wasm"));
    assert!(
        path.is_file(),
        "{} does not exist: build the test plugins first with ./scripts/build-plugins.sh (or set OUTPOST_PLUGIN_DIR)",
        path.display()
    );
    path
}

/// The bytes of [`plugin_path`].
pub fn plugin_bytes(crate_name: &str) -> Vec<u8> {
    let path = plugin_path(crate_name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `outpost plugin install <component of crate_name> --name NAME --hook HOOK
/// --config-file F [extra_args]`, with `config` written to a file in the appliance's
/// scratch directory; asserts success and returns what it printed.
pub fn install_plugin(
    appliance: &Appliance,
    crate_name: &str,
    name: &str,
    hook: &str,
    config: &str,
    extra_args: &[&str],
) -> String {
    let config_file = appliance.scratch().join(format!("{name}.plugin.conf"));
    std::fs::write(&config_file, config).expect("write the plugin config");
    let mut args = vec![
        "plugin".into(),
        "install".into(),
        plugin_path(crate_name).into_os_string(),
        "--name".into(),
        name.into(),
        "--hook".into(),
        hook.into(),
        "--config-file".into(),
        config_file.into_os_string(),
    ];
    args.extend(extra_args.iter().map(|arg| arg.into()));
    appliance.cli_ok(args)
}

/// `PUT /v1/plugins/{name}` with the component and config in base64, order 0,
/// enabled: (status, JSON body).
pub fn put_plugin(
    appliance: &Appliance,
    name: &str,
    hook: &str,
    component: &[u8],
    config: &str,
    on_error: &str,
) -> (u16, Value) {
    let body = json!({
        "hook": hook,
        "order": 0,
        "on_error": on_error,
        "enabled": true,
        "component": base64(component),
        "config": base64(config.as_bytes()),
    });
    appliance.api_json(
        "PUT",
        &format!("/v1/plugins/{name}"),
        Some(&body.to_string()),
    )
}

/// The row of plugin `name` in `outpost plugin list`, by column header (`CALLS`,
/// `STATE`, …). STATE, the last column, may hold spaces (`stopped: 5 consecutive
/// failed calls, …`): it is the rest of the line, its words joined by one space.
pub fn plugin_list_row(appliance: &Appliance, name: &str) -> BTreeMap<String, String> {
    const COLUMNS: [&str; 11] = [
        "NAME",
        "HOOK",
        "VERSION",
        "ORDER",
        "ON-ERROR",
        "CALLS",
        "MEMO-HITS",
        "TRAPS",
        "MEAN-US",
        "P99-US",
        "STATE",
    ];
    let out = appliance.cli_ok(["plugin", "list"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header, COLUMNS,
        "the header of `outpost plugin list`:\n{out}"
    );
    let row = lines
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in `outpost plugin list`:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let (fixed, state) = cells.split_at((COLUMNS.len() - 1).min(cells.len()));
    let mut values: Vec<String> = fixed.iter().map(|cell| cell.to_string()).collect();
    values.push(state.join(" "));
    COLUMNS
        .iter()
        .map(|column| column.to_string())
        .zip(values)
        .collect()
}

/// `GET /v1/plugins`: the installed plugins as this node runs them.
pub fn plugins(appliance: &Appliance) -> Vec<Value> {
    let (status, body) = appliance.api_json("GET", "/v1/plugins", None);
    assert_eq!(status, 200, "GET /v1/plugins: {body}");
    body.as_array()
        .unwrap_or_else(|| panic!("GET /v1/plugins is not an array: {body}"))
        .clone()
}

/// The entry of plugin `name` in `GET /v1/plugins`.
pub fn plugin(appliance: &Appliance, name: &str) -> Option<Value> {
    plugins(appliance)
        .into_iter()
        .find(|entry| entry["name"] == name)
}

/// Polls `GET /v1/plugins` until plugin `name` runs its installed version (`state`
/// `running`, `loaded_version == version`); returns that entry. Panics at once when
/// the node reports that it could not load it.
pub fn wait_plugin_loaded(appliance: &Appliance, name: &str) -> Value {
    let mut last = Value::Null;
    let loaded = wait_until(LOAD_DEADLINE, || {
        last = plugin(appliance, name).unwrap_or(Value::Null);
        if let Some(state) = last["state"].as_str()
            && state.starts_with("failed")
        {
            panic!(
                "plugin {name} did not load: {last}\n{}",
                appliance.log_tail()
            );
        }
        last["state"] == "running"
            && last["version"].is_u64()
            && last["loaded_version"] == last["version"]
    });
    assert!(
        loaded,
        "plugin {name} was not running its installed version within {LOAD_DEADLINE:?}: {last}\n{}",
        appliance.log_tail()
    );
    last
}

/// Standard base64 with padding (RFC 4648), for `PUT /v1/plugins/{name}` bodies.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(group >> shift & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(super::base64(input.as_bytes()), expected, "{input:?}");
        }
    }
}
