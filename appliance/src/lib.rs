//! The Outpost appliance: a single binary that serves DNS for a site from a
//! Raft-replicated store.
//!
//! # Layout
//! - [`node`]: starts every part in order and shuts them down in the reverse order.
//! - [`config`]: the TOML file and flags, raw then validated.
//! - [`dns`]: UDP and TCP sockets and the query path ([`dns::handler`], [`dns::message`]).
//! - [`forward`]: the forwarder for names outside our zones, with its cache.
//! - [`store`]: openraft with its log and state machine in redb; the only module that
//!   sees openraft types.
//! - [`admin`]: the admin HTTP API (`/v1/…`, `/health`, `/ready`, `/metrics`).
//! - [`client`]: the admin subcommands of the CLI, which talk to that API.
//! - [`metrics`]: counters rendered for Prometheus.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod client;
pub mod config;
pub mod dns;
pub mod forward;
pub mod metrics;
pub mod node;
pub mod store;
