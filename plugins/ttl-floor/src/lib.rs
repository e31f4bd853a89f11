//! The `ttl-floor` record-transform plugin: the component glue around [`logic`].
//!
//! Config: the floor in seconds (`300`, or `floor=300`). Every written record whose
//! TTL is below the floor is stored with the floor instead.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component;
