//! Integration tests: each test starts real `outpost` processes on 127.0.0.1 port 0,
//! each in its own temporary directory, and talks to them as a user would: DNS over
//! real UDP and TCP sockets, the admin API, the CLI and signals. One binary, one
//! module per area; the harness is the `outpost_tests` library (`tests/lib.rs`).
//!
//! Run: `cargo build -p outpost-appliance --bin outpost && cargo test -p outpost-tests`.
//!
//! # Layout
//! - [`authoritative`]: answers from our zones (AA, NXDOMAIN/NODATA, CNAME, wildcards,
//!   referrals, REFUSED).
//! - [`edns_tcp`]: EDNS payload sizes, truncation, TCP.
//! - [`malformed`]: bad packets, other opcodes, incoming responses.
//! - [`forwarding`]: a second `outpost` as the upstream; cache, serve-stale, access.
//! - [`durability`]: kill -9 and restarts, SIGTERM and SIGINT.
//! - [`admin_cli`]: the CLI (`zone`, `record`, `status`, `check-config`).
//! - [`admin_api`]: the HTTP API's errors, its token, `/metrics`.

mod admin_api;
mod admin_cli;
mod authoritative;
mod durability;
mod edns_tcp;
mod forwarding;
mod malformed;
