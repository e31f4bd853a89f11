//! A query-policy plugin that misbehaves on request, for the host's sandbox tests
//! (plugin-host/src/tests.rs). The first label of the query name picks the attack:
//!
//! | first label | what `decide` does                                  | the host's limit   |
//! |-------------|-----------------------------------------------------|--------------------|
//! | `loop`      | spins forever                                       | epoch deadline     |
//! | `alloc`     | allocates and touches 1 MiB blocks until it fails   | memory cap         |
//! | `recurse`   | recurses without end                                | wasm stack limit   |
//! | `panic`     | panics (a trap: `unreachable`)                      | trap               |
//! | `oversized` | answers with 10,000 A records                       | answer record cap  |
//! | `random`    | builds a std `HashMap` (asks WASI for randomness)   | WASI linked as traps |
//! | anything    | allows                                              |                    |
//!
//! The configuration `init=loop` makes `init` spin forever; `init=fail` makes it
//! return an error.

#[cfg(target_arch = "wasm32")]
mod component;
