//! `/v1/plugins…`: WebAssembly plugins installed, listed and removed.
//!
//! An install is checked on the node that takes it before anything is proposed: the
//! bytes must be a component of the hook's world, and its `init` must accept the
//! configuration. A plugin that fails either is refused with 422 and nothing is stored.
//! The definition then goes through Raft; every node (and every Lite client) loads it
//! after applying it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use outpost_core::state::{
    Command, FailureMode, Hook, MAX_PLUGIN_BYTES, PluginDefinition, check_plugin_name,
};
use outpost_dns::plugin_runtime::PluginState;
use outpost_plugin_host::{Limits, LoadedPlugin, PluginEngine};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AdminState;
use super::cluster::Consistent;
use super::error::{ApiError, JsonBody};
use super::idempotency::Idempotency;
use crate::secret_file::hex;

/// Largest `PUT /v1/plugins/{name}` body: the component and configuration in base64
/// (4 bytes per 3), and room for the other fields.
pub const PLUGIN_BODY_LIMIT_BYTES: usize = MAX_PLUGIN_BYTES / 3 * 4 + 64 * 1024;

/// Body of `PUT /v1/plugins/{name}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstallPlugin {
    /// `query-policy` or `record-transform`: the world the component was built for.
    pub hook: String,
    /// Plugins of a hook run in ascending order; default 0.
    #[serde(default)]
    pub order: i32,
    /// `fail-open` (default) or `fail-closed`.
    #[serde(default)]
    pub on_error: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The component's bytes, base64.
    pub component: String,
    /// The configuration `init` receives, base64; default empty.
    #[serde(default)]
    pub config: String,
}

/// One plugin in `GET /v1/plugins`: the replicated definition, and how it runs on
/// this node.
#[derive(Debug, Serialize, Deserialize)]
pub struct PluginSummary {
    pub name: String,
    pub hook: String,
    pub version: u64,
    pub order: i32,
    pub on_error: String,
    pub enabled: bool,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    pub component_bytes: usize,
    pub config_bytes: usize,
    /// `running`, `disabled` (by the operator), `stopped: <why>` (it kept failing; the
    /// reason says when it is retried),
    /// `failed: <why>` (it did not load), or `loading`.
    pub state: PluginState,
    /// The version in force on this node, when one is.
    pub loaded_version: Option<u64>,
    pub calls: u64,
    /// Queries answered from a remembered verdict, without a call (plugins that declare
    /// memoizable verdicts).
    pub memo_hits: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub stack_overflows: u64,
    pub traps: u64,
    pub invalid_outputs: u64,
    pub mean_micros: f64,
    pub median_micros: f64,
    pub p99_micros: f64,
}

fn hook_of(text: &str) -> Result<Hook, ApiError> {
    match text {
        "query-policy" => Ok(Hook::QueryPolicy),
        "record-transform" => Ok(Hook::RecordTransform),
        other => Err(ApiError::BadRequest(format!(
            "hook {other:?} is not known (use query-policy or record-transform)"
        ))),
    }
}

fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    BASE64
        .decode(text)
        .map_err(|e| ApiError::BadRequest(format!("{field} is not valid base64: {e}")))
}

/// `PUT /v1/plugins/{name}`: installs a plugin, or updates the one of that name.
pub async fn install(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<InstallPlugin>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    check_plugin_name(&name).map_err(ApiError::Refused)?;
    let hook = hook_of(&request.hook)?;
    let on_error: FailureMode = match &request.on_error {
        Some(text) => text.parse().map_err(ApiError::BadRequest)?,
        None => FailureMode::default(),
    };
    let component = base64_field("component", &request.component)?;
    let config = base64_field("config", &request.config)?;
    if component.len() + config.len() > MAX_PLUGIN_BYTES {
        return Err(ApiError::TooLarge(format!(
            "component and configuration are {} bytes; a plugin may have at most {MAX_PLUGIN_BYTES}",
            component.len() + config.len()
        )));
    }
    let engine = state.plugins.engine().clone();
    let (component, config) = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            check_plugin(&engine, &name, hook, &component, &config)?;
            Ok::<_, ApiError>((component, config))
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("the plugin check stopped: {e}")))??
    };
    let zones = state.store.zones();
    let existing = zones.plugin(&name);
    let definition = PluginDefinition {
        name: name.clone(),
        hook,
        order: request.order,
        on_error,
        enabled: request.enabled.unwrap_or(true),
        version: 0,
        sha256: Sha256::digest(&component).into(),
        component: component.into(),
        config: config.into(),
    };
    let sha256 = hex(&definition.sha256);
    // The same plugin installed again is a no-op, unless it stopped here after
    // failing: then the install is how an operator starts it again, with a new
    // version that every node loads afresh.
    let restart = existing.is_some_and(|existing| {
        let same = PluginDefinition {
            version: existing.version,
            ..definition.clone()
        } == **existing;
        same && matches!(state.plugins.state_of(existing).0, PluginState::Stopped(_))
    });
    let existed = existing.is_some();
    drop(zones);
    let written = state
        .store
        .write(key.wrap(Command::PutPlugin {
            definition,
            restart,
        }))
        .await?;
    let version = state.store.zones().plugin(&name).map(|d| d.version);
    tracing::info!(plugin = %name, %hook, %sha256, index = written.index, "plugin installed");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(serde_json::json!({
            "name": name, "hook": hook.world(), "version": version,
            "sha256": sha256, "index": written.index,
        })),
    ))
}

/// Loads the component for `hook` and runs its `init` with `config`, as every node
/// will: what fails here would fail everywhere.
fn check_plugin(
    engine: &PluginEngine,
    name: &str,
    hook: Hook,
    component: &[u8],
    config: &[u8],
) -> Result<(), ApiError> {
    let refused =
        |e: &dyn std::fmt::Display| ApiError::Unprocessable(format!("plugin {name}: {e}"));
    let loaded = engine
        .load(name, component, hook, Limits::for_hook(hook))
        .map_err(|e| refused(&e))?;
    match loaded {
        LoadedPlugin::Policy(plugin) => plugin.instantiate(config).map(drop),
        LoadedPlugin::Transform(plugin) => plugin.instantiate(config).map(drop),
    }
    .map_err(|e| refused(&e))
}

/// `GET /v1/plugins`: every installed plugin, with its counters on this node.
pub async fn list(
    State(state): State<Arc<AdminState>>,
    Consistent(zones): Consistent,
) -> Json<Vec<PluginSummary>> {
    let summaries = zones
        .plugins()
        .map(|definition| {
            let (plugin_state, running) = state.plugins.state_of(definition);
            let stats = running
                .as_ref()
                .map(|plugin| plugin.stats.snapshot())
                .unwrap_or_default();
            let micros = |duration: Option<Duration>| {
                duration.map_or(0.0, |duration| duration.as_secs_f64() * 1e6)
            };
            PluginSummary {
                name: definition.name.clone(),
                hook: definition.hook.world().to_string(),
                version: definition.version,
                order: definition.order,
                on_error: definition.on_error.to_string(),
                enabled: definition.enabled,
                sha256: hex(&definition.sha256),
                component_bytes: definition.component.len(),
                config_bytes: definition.config.len(),
                state: plugin_state,
                loaded_version: running.as_ref().map(|plugin| plugin.version),
                calls: stats.calls,
                memo_hits: stats.memo_hits,
                timeouts: stats.timeouts,
                out_of_memory: stats.out_of_memory,
                stack_overflows: stats.stack_overflows,
                traps: stats.traps,
                invalid_outputs: stats.invalid_outputs,
                mean_micros: micros(Some(stats.mean_time())),
                median_micros: micros(stats.median_time()),
                p99_micros: micros(stats.p99_time()),
            }
        })
        .collect();
    Json(summaries)
}

/// `DELETE /v1/plugins/{name}`.
pub async fn remove(
    State(state): State<Arc<AdminState>>,
    key: Idempotency,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let written = state
        .store
        .write(key.wrap(Command::DeletePlugin { name: name.clone() }))
        .await?;
    tracing::info!(plugin = %name, index = written.index, "plugin removed");
    Ok(Json(
        serde_json::json!({ "name": name, "index": written.index }),
    ))
}
