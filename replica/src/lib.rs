//! The replicated state as both daemons keep it: the appliance (its Raft state machine)
//! and the Lite client (its replica) apply a change to disk and publish it through this
//! crate, so they apply a change the same way by construction.
//!
//! # Layout
//! - [`tables`]: the state tables in a redb file (`zones`, `rrsets`, `plugins`,
//!   `lite_tokens`, `join_invites`), [`StateTables`] that writes one [`Change`] or a
//!   whole model into them, [`read_state`] and [`load`] that read them back, and the
//!   durable write transaction every commit uses.
//! - [`published`]: [`Published`], the views readers load lock-free (the model with the
//!   index it is the state after, and the query index the DNS path answers from), and
//!   the one step that swaps them after a commit.
//!
//! **Invariant:** the tables change only through [`StateTables`], inside a transaction
//! that also moves the owner's position (the last applied Raft index, or the Lite
//! cursor); the views are swapped only after that transaction committed.
//! **Boundary:** the table layout is part of both files' storage formats
//! (`docs/storage.md`).
//!
//! [`Change`]: outpost_core::zones::Change
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod published;
pub mod tables;

pub use published::{Published, Rebuild, View};
pub use tables::{StateError, StateTables, begin_durable_write, create_tables, load, read_state};
