//! The one wasmtime `Engine` of the process, its epoch clock, the compile caches, and
//! loading: a plugin file becomes a [`LoadedPolicy`] or [`LoadedTransform`] only if it
//! is a component of the right world that imports nothing we do not provide.
//!
//! A component is compiled once per content hash: a load looks in the in-memory cache,
//! then (when the daemon gave a directory, [`PluginEngine::with_disk_cache`]) in the
//! compiled components kept on disk between runs (`disk_cache.rs`), and compiles only
//! when neither has it, writing the result to both.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use outpost_core::state::Hook;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::{self, policy::QueryPolicy, transform::RecordTransform};
use super::disk_cache::DiskCache;
use super::epoch::EpochClock;
use super::host::HostState;
use super::instance::{PolicyInstance, TransformInstance};
use super::shared::Shared;
use super::stats::PluginStats;
use super::world::World;
use super::{Limits, PluginError};

/// The wasm stack one call may use (`Config::max_wasm_stack`). Well below the 2 MiB
/// of a tokio worker thread, which also holds the host's frames around the call.
pub const WASM_STACK_BYTES: usize = 256 << 10;

/// Compiled components kept by content hash. Plugins change rarely; when the cache
/// is full it is emptied, and the next loads compile again.
const MAX_CACHED_COMPONENTS: usize = 64;

/// The first bytes of every WebAssembly file.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// The version field after the magic: 1 for a core module, `0x0d 0x00 0x01 0x00`
/// (version 13, layer 1) for a component.
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// The host interfaces a plugin may import, as name prefixes: any 0.1.x version.
const PROVIDED_IMPORTS: [&str; 2] = ["outpost:plugin/host@0.1.", "outpost:plugin/types@0.1."];
/// WASI interfaces are linked as functions that trap: a Rust guest imports them
/// whether it uses them or not, and we grant none.
const WASI_PREFIX: &str = "wasi:";

/// The process's plugin engine. Cheap to clone; the epoch clock stops when the last
/// clone, loaded plugin and instance are dropped.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    /// Compiled components by SHA-256 of their bytes, in memory: the first place a
    /// load looks.
    cache: Mutex<HashMap<[u8; 32], Component>>,
    /// Compiled components kept between runs, when the daemon gave a directory: the
    /// second place a load looks (`disk_cache.rs`).
    disk: Option<DiskCache>,
    /// The clock deadlines count in, shared with every loaded plugin; its `Drop`
    /// (when the last holder goes) stops the thread.
    clock: Arc<EpochClock>,
}

impl PluginEngine {
    /// Sets up the engine (component model, epoch interruption, the stack limit)
    /// and starts the epoch clock's thread (asleep until the first call).
    pub fn new() -> Result<PluginEngine, PluginError> {
        PluginEngine::build(None)
    }

    /// [`PluginEngine::new`], keeping compiled components in `dir` between runs
    /// (`disk_cache.rs`).
    pub fn with_disk_cache(dir: &Path) -> Result<PluginEngine, PluginError> {
        let disk = DiskCache::open(dir).map_err(|e| {
            PluginError::Engine(format!(
                "cannot create the plugin cache {}: {e}",
                dir.display()
            ))
        })?;
        PluginEngine::build(Some(disk))
    }

    fn build(disk: Option<DiskCache>) -> Result<PluginEngine, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(WASM_STACK_BYTES);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let clock = EpochClock::start(engine.clone())
            .map_err(|e| PluginError::Engine(format!("the epoch clock did not start: {e}")))?;
        Ok(PluginEngine {
            inner: Arc::new(EngineInner {
                engine,
                cache: Mutex::new(HashMap::new()),
                disk,
                clock: Arc::new(clock),
            }),
        })
    }

    /// Whether the epoch clock is parked: for tests.
    #[cfg(test)]
    pub(super) fn clock_is_asleep(&self) -> bool {
        self.inner.clock.is_asleep()
    }

    /// Loads a plugin for `hook`, named `name` in logs and errors.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        hook: Hook,
        limits: Limits,
    ) -> Result<LoadedPlugin, PluginError> {
        Ok(match hook {
            Hook::QueryPolicy => LoadedPlugin::Policy(self.load_policy(name, bytes, limits)?),
            Hook::RecordTransform => {
                LoadedPlugin::Transform(self.load_transform(name, bytes, limits)?)
            }
        })
    }

    /// Loads a query-policy plugin.
    pub fn load_policy(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<LoadedPolicy, PluginError> {
        self.load_world::<QueryPolicy>(name, bytes, Hook::QueryPolicy, limits)
            .map(|shared| LoadedPolicy { shared })
    }

    /// Loads a record-transform plugin.
    pub fn load_transform(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<LoadedTransform, PluginError> {
        self.load_world::<RecordTransform>(name, bytes, Hook::RecordTransform, limits)
            .map(|shared| LoadedTransform { shared })
    }

    fn load_world<W: World>(
        &self,
        name: &str,
        bytes: &[u8],
        hook: Hook,
        limits: Limits,
    ) -> Result<Arc<Shared<W>>, PluginError> {
        check_header(bytes)?;
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let component = self.compile(bytes, sha256)?;
        check_world(&self.inner.engine, &component, hook)?;

        // Every import starts as a trap (`check_world` allowed only WASI and ours);
        // then our host interfaces replace their stubs.
        let mut linker = Linker::<HostState>::new(&self.inner.engine);
        let link_error = |e: wasmtime::Error| PluginError::InvalidComponent(format!("{e:#}"));
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(link_error)?;
        linker.allow_shadowing(true);
        bindings::host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(link_error)?;
        bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(link_error)?;
        let pre = linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = W::new_pre(pre).map_err(|e| PluginError::WrongWorld {
            hook,
            expected: format!("{}@0.1.x", export_interface(hook)),
            found: format!("an export of another shape ({e:#})"),
        })?;
        Ok(Arc::new(Shared {
            engine: self.inner.engine.clone(),
            clock: self.inner.clock.clone(),
            name: name.into(),
            hook,
            limits,
            sha256,
            stats: Arc::new(PluginStats::new(limits.first_retry)),
            pre,
        }))
    }

    /// The compiled component for `bytes`, from the cache or compiled now.
    fn compile(&self, bytes: &[u8], sha256: [u8; 32]) -> Result<Component, PluginError> {
        if let Some(component) = self.inner.cache().get(&sha256) {
            return Ok(component.clone());
        }
        // Compiled outside the lock: it takes a while, and a concurrent load of the same
        // bytes at worst compiles twice.
        let disk = self.inner.disk.as_ref();
        let component = match disk.and_then(|disk| disk.get(&self.inner.engine, &sha256)) {
            Some(component) => component,
            None => {
                let component = Component::new(&self.inner.engine, bytes)
                    .map_err(|e| PluginError::InvalidComponent(format!("{e:#}")))?;
                if let Some(disk) = disk {
                    disk.put(&sha256, &component);
                }
                component
            }
        };
        let mut cache = self.inner.cache();
        if cache.len() >= MAX_CACHED_COMPONENTS {
            cache.clear();
        }
        cache.insert(sha256, component.clone());
        Ok(component)
    }
}

impl EngineInner {
    /// The cache holds no invariant a panic could break, so a poisoned lock is used.
    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Component>> {
        match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").finish_non_exhaustive()
    }
}

/// Refuses what is not a component before wasmtime parses it, with an error that
/// says what the file is instead.
fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(PluginError::NotWasm);
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(PluginError::CoreModule);
    }
    Ok(())
}

/// The interface `hook`'s world exports, without its version.
fn export_interface(hook: Hook) -> &'static str {
    match hook {
        Hook::QueryPolicy => "outpost:plugin/policy",
        Hook::RecordTransform => "outpost:plugin/transform",
    }
}

/// Checks the component exports the hook's interface and imports only what we link.
fn check_world(engine: &Engine, component: &Component, hook: Hook) -> Result<(), PluginError> {
    let ty = component.component_type();
    let wanted = format!("{}@0.1.", export_interface(hook));
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if !exports.iter().any(|name| name.starts_with(&wanted)) {
        let found = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(PluginError::WrongWorld {
            hook,
            expected: format!("{}@0.1.x", export_interface(hook)),
            found,
        });
    }
    for (import, _) in ty.imports(engine) {
        let provided = import.starts_with(WASI_PREFIX)
            || PROVIDED_IMPORTS
                .iter()
                .any(|prefix| import.starts_with(prefix));
        if !provided {
            return Err(PluginError::UnknownImport {
                import: import.to_string(),
            });
        }
    }
    Ok(())
}

/// A query-policy plugin, compiled and checked. Shared by every worker (`Send +
/// Sync`, cheap to clone); each worker calls [`LoadedPolicy::instantiate`] once.
#[derive(Clone)]
pub struct LoadedPolicy {
    shared: Arc<Shared<QueryPolicy>>,
}

/// A record-transform plugin, compiled and checked.
#[derive(Clone)]
pub struct LoadedTransform {
    shared: Arc<Shared<RecordTransform>>,
}

/// A loaded plugin of either hook.
#[derive(Clone, Debug)]
pub enum LoadedPlugin {
    Policy(LoadedPolicy),
    Transform(LoadedTransform),
}

impl LoadedPolicy {
    /// A new instance, initialised with `config` (under the init deadline). Errors
    /// if `init` refuses the configuration, traps or runs out of time.
    pub fn instantiate(&self, config: &[u8]) -> Result<PolicyInstance, PluginError> {
        PolicyInstance::new(self.shared.clone(), config.into())
    }

    /// As [`LoadedPolicy::instantiate`], sharing the configuration's bytes with the
    /// caller instead of copying them (a pool of instances keeps one copy).
    pub fn instantiate_shared(&self, config: Arc<[u8]>) -> Result<PolicyInstance, PluginError> {
        PolicyInstance::new(self.shared.clone(), config)
    }
}

impl LoadedTransform {
    /// As [`LoadedPolicy::instantiate`].
    pub fn instantiate(&self, config: &[u8]) -> Result<TransformInstance, PluginError> {
        TransformInstance::new(self.shared.clone(), config.into())
    }

    /// As [`LoadedPolicy::instantiate_shared`].
    pub fn instantiate_shared(&self, config: Arc<[u8]>) -> Result<TransformInstance, PluginError> {
        TransformInstance::new(self.shared.clone(), config)
    }
}

macro_rules! loaded_accessors {
    ($loaded:ty) => {
        impl $loaded {
            pub fn name(&self) -> &str {
                &self.shared.name
            }

            pub fn hook(&self) -> Hook {
                self.shared.hook
            }

            pub fn limits(&self) -> Limits {
                self.shared.limits
            }

            /// SHA-256 of the component's bytes: its identity in caches and
            /// definitions.
            pub fn sha256(&self) -> [u8; 32] {
                self.shared.sha256
            }

            /// Counters of all instances of this plugin.
            pub fn stats(&self) -> &Arc<PluginStats> {
                &self.shared.stats
            }
        }

        impl std::fmt::Debug for $loaded {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($loaded))
                    .field("name", &self.shared.name)
                    .field("limits", &self.shared.limits)
                    .finish_non_exhaustive()
            }
        }
    };
}

loaded_accessors!(LoadedPolicy);
loaded_accessors!(LoadedTransform);

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        match self {
            LoadedPlugin::Policy(plugin) => plugin.name(),
            LoadedPlugin::Transform(plugin) => plugin.name(),
        }
    }

    pub fn hook(&self) -> Hook {
        match self {
            LoadedPlugin::Policy(_) => Hook::QueryPolicy,
            LoadedPlugin::Transform(_) => Hook::RecordTransform,
        }
    }

    pub fn stats(&self) -> &Arc<PluginStats> {
        match self {
            LoadedPlugin::Policy(plugin) => plugin.stats(),
            LoadedPlugin::Transform(plugin) => plugin.stats(),
        }
    }
}
