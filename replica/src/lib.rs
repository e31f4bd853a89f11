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
//! [`Change`]: outpost_core::state::Change
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod published;
mod tables;

pub use published::{Published, Rebuild, View};

/// Creates the data directory a daemon keeps its replica in (and parents), readable by
/// its owner only (0700 on Unix): it holds secrets (keys, tokens) beside the state.
pub fn create_data_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
pub use tables::{StateError, StateTables, begin_durable_write, create_tables, load, read_state};
