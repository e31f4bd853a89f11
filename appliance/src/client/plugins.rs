//! `outpost plugin install|list|rm`: the WebAssembly plugins of `/v1/plugins`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use outpost_dns::plugin_runtime::PluginState;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, path_segment};
use super::table::write_table;

#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// Install a plugin (a WebAssembly component), or replace the one of that name;
    /// every node and Lite client runs it once the write is applied
    Install {
        /// The component: target/wasm32-wasip2/release/<crate>.wasm
        file: PathBuf,
        /// Name of the plugin (a-z, 0-9, '-' and '_')
        #[arg(long)]
        name: String,
        /// query-policy or record-transform: the world the component was built for
        #[arg(long)]
        hook: String,
        /// File whose bytes the plugin's init receives (a blocklist, a subnet table)
        #[arg(long)]
        config_file: Option<PathBuf>,
        /// Plugins of a hook run in ascending order
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        order: i32,
        /// What a failing plugin means: fail-open (carry on) or fail-closed (SERVFAIL,
        /// or refuse the write)
        #[arg(long, default_value = "fail-open")]
        on_error: String,
        /// Install it switched off
        #[arg(long)]
        disabled: bool,
    },
    /// List the plugins, their state and counters on this node
    List,
    /// Remove a plugin from every node and Lite client
    Rm { name: String },
}

/// Runs `command`, writing what it prints to `out`.
pub fn run(api: &Api, command: PluginCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        PluginCommand::Install {
            file,
            name,
            hook,
            config_file,
            order,
            on_error,
            disabled,
        } => {
            let request = InstallRequest {
                file,
                name,
                hook,
                config_file,
                order,
                on_error,
                enabled: !disabled,
            };
            install(api, request, out)
        }
        PluginCommand::List => list(api, out),
        PluginCommand::Rm { name } => remove(api, &name, out),
    }
}

/// The arguments of `plugin install`.
struct InstallRequest {
    file: PathBuf,
    name: String,
    hook: String,
    config_file: Option<PathBuf>,
    order: i32,
    on_error: String,
    enabled: bool,
}

/// `plugin install`: reads the component and its configuration, and sends them to
/// `PUT /v1/plugins/{name}`.
fn install(api: &Api, request: InstallRequest, out: &mut dyn Write) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Installed {
        name: String,
        hook: String,
        version: Option<u64>,
        sha256: String,
        index: u64,
    }
    let component = std::fs::read(&request.file)
        .with_context(|| format!("cannot read plugin {}", request.file.display()))?;
    let config = match &request.config_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?,
        None => Vec::new(),
    };
    let body = json!({
        "hook": request.hook,
        "order": request.order,
        "on_error": request.on_error,
        "enabled": request.enabled,
        "component": BASE64.encode(&component),
        "config": BASE64.encode(&config),
    });
    let path = format!("/v1/plugins/{}", path_segment(&request.name));
    let installed: Installed = api.send_json("PUT", &path, &body)?;
    let version = installed
        .version
        .map_or_else(|| "?".to_string(), |v| v.to_string());
    writeln!(
        out,
        "installed plugin {} ({}, version {version}, sha256 {}) at index {}",
        installed.name,
        installed.hook,
        &installed.sha256[..12.min(installed.sha256.len())],
        installed.index
    )
    .context("writing to stdout")
}

/// One plugin of `GET /v1/plugins`, the fields `plugin list` shows.
#[derive(Deserialize)]
struct ListedPlugin {
    name: String,
    hook: String,
    version: u64,
    order: i32,
    on_error: String,
    state: PluginState,
    calls: u64,
    memo_hits: u64,
    timeouts: u64,
    out_of_memory: u64,
    stack_overflows: u64,
    traps: u64,
    invalid_outputs: u64,
    mean_micros: f64,
    p99_micros: f64,
}

/// `plugin list`: the plugins of `GET /v1/plugins` as a table, one row each.
fn list(api: &Api, out: &mut dyn Write) -> anyhow::Result<()> {
    let plugins: Vec<ListedPlugin> = api.get_json("/v1/plugins")?;
    let rows: Vec<[String; 11]> = plugins.into_iter().map(list_row).collect();
    let header = [
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
    write_table(out, header, &rows).context("writing to stdout")
}

/// The row of one plugin in `plugin list`; TRAPS counts every kind of failed call.
fn list_row(plugin: ListedPlugin) -> [String; 11] {
    let traps = plugin.timeouts
        + plugin.out_of_memory
        + plugin.stack_overflows
        + plugin.traps
        + plugin.invalid_outputs;
    [
        plugin.name,
        plugin.hook,
        plugin.version.to_string(),
        plugin.order.to_string(),
        plugin.on_error,
        plugin.calls.to_string(),
        plugin.memo_hits.to_string(),
        traps.to_string(),
        format!("{:.2}", plugin.mean_micros),
        format!("{:.2}", plugin.p99_micros),
        plugin.state.to_string(),
    ]
}

/// `plugin rm`: `DELETE /v1/plugins/{name}`.
fn remove(api: &Api, name: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Removed {
        index: u64,
    }
    let removed: Removed = api.delete(&format!("/v1/plugins/{}", path_segment(name)), &[])?;
    writeln!(out, "removed plugin {name} (index {})", removed.index).context("writing to stdout")
}
