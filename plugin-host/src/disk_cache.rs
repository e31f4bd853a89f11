//! Compiled components kept on disk between runs, by the SHA-256 of the component's
//! bytes: a restart, and every node of a cluster after the first install, loads a
//! plugin without compiling it again.
//!
//! A cache file is `<sha256 of the component>.cwasm`: the SHA-256 of the rest, then
//! what `Component::serialize` wrote. It is written to a temporary name and renamed,
//! in a directory only the daemon's user may write (the data directory is 0700).
//!
//! **Invariant:** the only `unsafe` of the workspace but `mallopt`'s (appliance
//! `allocator.rs`) is here. Wasmtime's
//! `Component::deserialize` runs the machine code it is given without checking it, so
//! it must only ever see bytes wasmtime produced. We hand it exactly the bytes we
//! wrote: the file's own hash is checked first, a file that fails it is ignored and
//! replaced, and wasmtime itself refuses bytes from another version or configuration
//! of the engine (they are then compiled again). Anyone who can write the data
//! directory can run code as the daemon anyway: it also holds the Raft log, whose
//! plugin definitions are installed from it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled components kept on disk; when a new one would make more, the oldest
/// files are removed.
pub const MAX_DISK_CACHED_COMPONENTS: usize = 32;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub(super) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// Creates the directory (0700) if needed.
    pub(super) fn open(dir: &Path) -> std::io::Result<DiskCache> {
        fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(DiskCache {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.cwasm"))
    }

    /// The component compiled earlier from the bytes hashing to `sha256`, if a sound
    /// cache file for this engine exists.
    pub(super) fn get(&self, engine: &Engine, sha256: &[u8; 32]) -> Option<Component> {
        let path = self.path(sha256);
        let file = fs::read(&path).ok()?;
        let (hash, serialized) = file.split_first_chunk::<32>()?;
        if Sha256::digest(serialized).as_slice() != hash {
            tracing::warn!(path = %path.display(), "damaged compiled plugin ignored; compiling again");
            return None;
        }
        // SAFETY: `serialized` is exactly what `Component::serialize` wrote into this
        // file (its hash matches the one stored beside it), in a directory only this
        // user writes; see the module's invariant. Wasmtime checks the engine version
        // and configuration itself and errors on a mismatch.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, serialized) };
        match component {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::info!(path = %path.display(), error = %format!("{error:#}"), "compiled plugin from another engine; compiling again");
                None
            }
        }
    }

    /// Keeps `component` for the next run; a failure is logged, never fatal.
    pub(super) fn put(&self, sha256: &[u8; 32], component: &Component) {
        if let Err(error) = self.write(sha256, component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot keep a compiled plugin on disk");
        }
        self.prune();
    }

    fn write(&self, sha256: &[u8; 32], component: &Component) -> std::io::Result<()> {
        let serialized = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let path = self.path(sha256);
        let temporary = path.with_extension("tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&Sha256::digest(&serialized))?;
        file.write_all(&serialized)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)
    }

    /// Removes the oldest files beyond [`MAX_DISK_CACHED_COMPONENTS`].
    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"))
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
        if files.len() <= MAX_DISK_CACHED_COMPONENTS {
            return;
        }
        files.sort();
        let excess = files.len() - MAX_DISK_CACHED_COMPONENTS;
        for (_, path) in files.into_iter().take(excess) {
            let _ = fs::remove_file(path);
        }
    }
}
