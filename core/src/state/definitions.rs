//! Plugin definitions: what the cluster replicates about each installed plugin.
//!
//! A definition is data, never code the model runs: the component's bytes, its hook,
//! its configuration, its place in the order and what a failure means. Every node and
//! every Lite client loads the same definitions into its own plugin host (crate
//! `outpost-plugin-host`, which depends on this model, never the reverse).
//!
//! **Invariant:** a stored definition's `sha256` is the SHA-256 of its `component`,
//! and its `version` is one more than the version it replaced (1 when new).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Change, CommandError, ReplicatedState};

/// Longest plugin name.
pub const MAX_PLUGIN_NAME: usize = 64;

/// Bytes of a component plus its configuration. A definition travels to Lite clients
/// as one change, which must fit in one sync frame ([`crate::sync::MAX_CHANGE_LEN`]);
/// the rest of the frame pays for the name and the fields around the bytes.
pub const MAX_PLUGIN_BYTES: usize = crate::sync::MAX_CHANGE_LEN - 4096;

/// The hook a plugin implements, which is the WIT world it was built against.
///
/// **Boundary:** stored within every `PluginDefinition` (Raft log, redb), postcard by
/// variant index: a new hook goes at the end. The sync wire sends [`Hook::world`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hook {
    /// World `query-policy`: `decide` for every query.
    QueryPolicy,
    /// World `record-transform`: `transform` for every write.
    RecordTransform,
}

impl Hook {
    /// The world's name in `wit/`, as operators type it.
    pub fn world(self) -> &'static str {
        match self {
            Hook::QueryPolicy => "query-policy",
            Hook::RecordTransform => "record-transform",
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// What a plugin's failure (trap, timeout, invalid output, disabled) means for the
/// query or write it was called for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureMode {
    /// Carry on as if the plugin had allowed the query (or left the records as
    /// they were).
    #[default]
    FailOpen,
    /// Answer SERVFAIL (or refuse the write).
    FailClosed,
}

impl FailureMode {
    /// The name operators type: `fail-open` or `fail-closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::FailOpen => "fail-open",
            FailureMode::FailClosed => "fail-closed",
        }
    }
}

impl std::str::FromStr for FailureMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fail-open" => Ok(FailureMode::FailOpen),
            "fail-closed" => Ok(FailureMode::FailClosed),
            other => Err(format!(
                "{other:?} is not a failure mode (use fail-open or fail-closed)"
            )),
        }
    }
}

impl std::fmt::Display for FailureMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed plugin, as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDefinition {
    pub name: String,
    pub hook: Hook,
    /// Plugins of one hook run in ascending order (then by name).
    pub order: i32,
    pub on_error: FailureMode,
    /// A disabled plugin stays installed but is not loaded.
    pub enabled: bool,
    /// Set by the model: 1 when installed, one more on every update.
    pub version: u64,
    /// SHA-256 of `component`.
    pub sha256: [u8; 32],
    /// The WebAssembly component, as installed.
    pub component: Arc<[u8]>,
    /// The bytes `init` receives.
    pub config: Arc<[u8]>,
}

impl PluginDefinition {
    /// The first 12 hex digits of the component's hash, as `plugin list` shows it.
    pub fn short_hash(&self) -> String {
        self.sha256[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Checks a plugin name: 1 to [`MAX_PLUGIN_NAME`] of `a-z`, `0-9`, `-` and `_`.
pub fn check_plugin_name(name: &str) -> Result<(), CommandError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(CommandError::InvalidPluginName {
            name: name.to_string(),
        })
    }
}

impl ReplicatedState {
    /// The installed plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<PluginDefinition>> {
        self.plugins.values()
    }

    pub fn plugin(&self, name: &str) -> Option<&Arc<PluginDefinition>> {
        self.plugins.get(name)
    }

    /// Installs or updates a plugin. The model sets the version; the component's hash
    /// is checked against its bytes, so a definition cannot name code it does not
    /// carry. Installing exactly what is installed changes nothing, unless `restart`
    /// asks for a new version.
    pub(super) fn put_plugin(
        &mut self,
        definition: &PluginDefinition,
        restart: bool,
    ) -> Result<Vec<Change>, CommandError> {
        check_plugin_name(&definition.name)?;
        let bytes = definition.component.len() + definition.config.len();
        if bytes > MAX_PLUGIN_BYTES {
            return Err(CommandError::PluginTooLarge {
                name: definition.name.clone(),
                bytes,
            });
        }
        let sha256: [u8; 32] = Sha256::digest(&definition.component).into();
        if sha256 != definition.sha256 {
            return Err(CommandError::PluginHashMismatch {
                name: definition.name.clone(),
            });
        }
        let previous = self.plugins.get(&definition.name);
        if !restart
            && previous.is_some_and(|previous| {
                PluginDefinition {
                    version: previous.version,
                    ..definition.clone()
                } == **previous
            })
        {
            // The same install again (a script or a NixOS unit re-run): nothing to do.
            return Ok(Vec::new());
        }
        let version = previous.map_or(1, |previous| previous.version + 1);
        let definition = Arc::new(PluginDefinition {
            version,
            ..definition.clone()
        });
        self.plugins
            .insert(definition.name.clone(), Arc::clone(&definition));
        Ok(vec![Change::PluginPut { definition }])
    }

    pub(super) fn delete_plugin(&mut self, name: &str) -> Result<Vec<Change>, CommandError> {
        match self.plugins.remove(name) {
            Some(_) => Ok(vec![Change::PluginDeleted {
                name: name.to_string(),
            }]),
            None => Err(CommandError::NoSuchPlugin {
                name: name.to_string(),
            }),
        }
    }
}
