//! What the instance code needs from each world's generated bindings, as one trait
//! ([`World`]), so that loading and instances are written once for both hooks.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{policy, transform};
use super::host::HostState;

/// What the instance code needs from a world's generated bindings.
pub(super) trait World: Sized + Send + Sync + 'static {
    /// The pre-instantiated component: imports resolved, exports looked up.
    type Pre: Send + Sync + 'static;

    fn new_pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;

    fn call_init(
        &self,
        store: &mut Store<HostState>,
        config: &[u8],
    ) -> wasmtime::Result<Result<(), String>>;
}

impl World for policy::QueryPolicy {
    type Pre = policy::QueryPolicyPre<HostState>;

    fn new_pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        policy::QueryPolicyPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn call_init(
        &self,
        store: &mut Store<HostState>,
        config: &[u8],
    ) -> wasmtime::Result<Result<(), String>> {
        self.outpost_plugin_policy().call_init(store, config)
    }
}

impl World for transform::RecordTransform {
    type Pre = transform::RecordTransformPre<HostState>;

    fn new_pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        transform::RecordTransformPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn call_init(
        &self,
        store: &mut Store<HostState>,
        config: &[u8],
    ) -> wasmtime::Result<Result<(), String>> {
        self.outpost_plugin_transform().call_init(store, config)
    }
}
