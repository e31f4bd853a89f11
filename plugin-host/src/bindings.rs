//! Host bindings generated from `wit/outpost-plugin.wit`, one module per world. The
//! transform world reuses the policy world's `types` and `host` modules, so a record
//! and the host trait are one Rust type each. Generated code only: what the host does
//! with them is in `host.rs` (the host interface) and `world.rs` (instantiation).

pub mod policy {
    wasmtime::component::bindgen!({
        world: "query-policy",
        path: "../wit",
    });
}

pub mod transform {
    wasmtime::component::bindgen!({
        world: "record-transform",
        path: "../wit",
        with: {
            "outpost:plugin/types": super::policy::outpost::plugin::types,
            "outpost:plugin/host": super::policy::outpost::plugin::host,
        },
    });
}

pub use policy::outpost::plugin::{host, types};
