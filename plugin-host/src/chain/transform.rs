//! The record-transform chain: every enabled record-transform plugin, run in order
//! over the records of a write, each given what the one before returned.
//!
//! Writes are rare and a transform may run for seconds, so each plugin keeps one
//! instance behind a mutex held for the whole call: two writes that need the same
//! plugin take turns. Callers on an async runtime run
//! [`TransformChain::transform`] in `spawn_blocking`.

use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::rr::{Name, Record};
use outpost_core::state::{FailureMode, Hook, PluginDefinition};

use super::{Identity, Placement, PluginInfo};
use crate::{Limits, LoadedTransform, PluginEngine, PluginError, TransformInstance};

/// The enabled record-transform plugins, in ascending order, then by name.
#[derive(Debug, Default)]
pub struct TransformChain {
    links: Vec<TransformLink>,
}

/// Why the chain refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformFailure {
    /// The plugin's own answer (`err(message)` from `transform`): the writer sees the
    /// message.
    #[error("plugin {plugin} refused the write: {message}")]
    Refused { plugin: String, message: String },
    /// A fail-closed plugin failed (trap, timeout, invalid output, disabled).
    #[error("the write is refused because a fail-closed plugin failed: {error}")]
    Failed { plugin: String, error: PluginError },
}

impl TransformFailure {
    /// The plugin that refused the write.
    pub fn plugin(&self) -> &str {
        match self {
            TransformFailure::Refused { plugin, .. } | TransformFailure::Failed { plugin, .. } => {
                plugin
            }
        }
    }
}

/// One plugin's place in the chain.
#[derive(Debug, Clone)]
pub(super) struct TransformLink {
    placement: Placement,
    plugin: Arc<TransformPlugin>,
}

#[derive(Debug)]
struct TransformPlugin {
    identity: Identity,
    loaded: LoadedTransform,
    /// Locked for the whole call.
    instance: Mutex<TransformInstance>,
}

impl TransformChain {
    pub(super) fn from_links(links: Vec<TransformLink>) -> TransformChain {
        TransformChain { links }
    }

    /// Runs the plugins in order over the records of one write to `zone`, each on
    /// the output of the one before. A plugin's refusal refuses the write with its
    /// message. A failed call leaves the records as they were before that plugin
    /// (fail-open) or refuses the write (fail-closed). Blocking: up to each plugin's
    /// deadline (about 2 s) per plugin.
    pub fn transform(
        &self,
        zone: &Name,
        records: Vec<Record>,
    ) -> Result<Vec<Record>, TransformFailure> {
        let mut records = records;
        for link in &self.links {
            let plugin = &link.plugin;
            let name = &*plugin.identity.name;
            let result = {
                let mut instance = plugin
                    .instance
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                instance.transform(zone, &records)
            };
            records = next_records(records, result, name, link.placement.on_error)?;
        }
        Ok(records)
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// The plugins in chain order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.links
            .iter()
            .map(|link| {
                let plugin = &link.plugin;
                plugin
                    .identity
                    .info(Hook::RecordTransform, link.placement, plugin.loaded.stats())
            })
            .collect()
    }

    /// This chain's plugin for `definition`, if the definition has not changed.
    pub(super) fn carry_over(
        &self,
        definition: &PluginDefinition,
        placement: Placement,
        limits: Limits,
    ) -> Option<TransformLink> {
        self.links
            .iter()
            .find(|link| link.plugin.identity.matches(definition, limits))
            .map(|link| TransformLink {
                placement,
                plugin: link.plugin.clone(),
            })
    }
}

impl TransformLink {
    /// Compiles the plugin and builds its instance (`init` errors are the load's).
    pub(super) fn load(
        engine: &PluginEngine,
        definition: &PluginDefinition,
        placement: Placement,
        limits: Limits,
    ) -> Result<TransformLink, PluginError> {
        let loaded = engine.load_transform(&definition.name, &definition.component, limits)?;
        let instance = loaded.instantiate_shared(definition.config.clone())?;
        Ok(TransformLink {
            placement,
            plugin: Arc::new(TransformPlugin {
                identity: Identity::of(definition, limits),
                loaded,
                instance: Mutex::new(instance),
            }),
        })
    }
}

/// What one plugin's call means for the write: its output goes on to the next plugin;
/// its refusal refuses the write; its failure keeps the records it was given
/// (fail-open) or refuses the write (fail-closed).
fn next_records(
    given: Vec<Record>,
    result: Result<Vec<Record>, PluginError>,
    plugin: &str,
    on_error: FailureMode,
) -> Result<Vec<Record>, TransformFailure> {
    match result {
        Ok(transformed) => Ok(transformed),
        Err(PluginError::TransformRefused { plugin, message }) => {
            Err(TransformFailure::Refused { plugin, message })
        }
        Err(error) => match on_error {
            FailureMode::FailOpen => {
                tracing::warn!(
                    plugin,
                    %error,
                    "transform failed; the records go on unchanged (fail-open)"
                );
                Ok(given)
            }
            FailureMode::FailClosed => Err(TransformFailure::Failed {
                plugin: plugin.to_string(),
                error,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    use super::*;

    /// No example component refuses a write, so the refusal is checked here on the
    /// host's side; the chain tests cover real calls that succeed and fail.
    #[test]
    fn each_result_of_a_call_decides_what_the_write_gets() {
        let given = vec![Record::from_rdata(
            Name::from_ascii("a.example.").unwrap(),
            60,
            RData::A(A::new(10, 0, 0, 1)),
        )];
        let mut raised = given.clone();
        raised[0].ttl = 300;
        let refused = || {
            Err(PluginError::TransformRefused {
                plugin: "policy".into(),
                message: "TTL 60 is below the site minimum of 300".into(),
            })
        };
        let trapped = || {
            Err(PluginError::Trap {
                plugin: "policy".into(),
                message: "unreachable".into(),
            })
        };
        let open = FailureMode::FailOpen;
        let closed = FailureMode::FailClosed;

        let next = |result, on_error| next_records(given.clone(), result, "policy", on_error);
        assert_eq!(next(Ok(raised.clone()), closed), Ok(raised));
        for on_error in [open, closed] {
            let err = next(refused(), on_error).unwrap_err();
            assert_eq!(
                err.to_string(),
                "plugin policy refused the write: TTL 60 is below the site minimum of 300"
            );
            assert_eq!(err.plugin(), "policy");
        }
        assert_eq!(next(trapped(), open), Ok(given.clone()));
        let err = next(trapped(), closed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the write is refused because a fail-closed plugin failed: \
             plugin policy: trapped: unreachable"
        );
    }
}
