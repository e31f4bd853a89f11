//! Secret files in the data directory (the admin token, the node key): created once,
//! read on every start after.
//!
//! **Invariant:** a secret file is never seen half written and never readable by other
//! users: it is written to a temporary file with mode 0600, synced, then linked into
//! place (a link, unlike a rename, fails when another process got there first), and the
//! directory entry is synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

/// Compares two secrets (or their hashes) without stopping at the first difference, so the
/// response time does not tell an attacker how much of a guess was right. The length is not
/// secret: every secret we make of a kind has the same length.
pub(crate) fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    let difference = presented
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| {
            difference | std::hint::black_box(a ^ b)
        });
    std::hint::black_box(difference) == 0
}

/// What [`create_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// The file is ours, with the given contents.
    Written,
    /// Another process created it between the caller's read and our link: read theirs.
    Existed,
}

/// Creates `<dir>/<name>` holding `text` and a newline, unless it exists.
pub(crate) fn create_once(dir: &Path, name: &str, text: &str) -> io::Result<Created> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let written = write_private(&temporary, text).and_then(|()| fs::hard_link(&temporary, &path));
    // The temporary name is gone either way; a leftover would only be clutter.
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(Created::Written)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(Created::Existed),
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("cannot write {}: {error}", path.display()),
        )),
    }
}

/// Warns when the secret at `path` is readable by other users.
pub(crate) fn warn_if_shared(path: &Path, what: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the {what} is readable by other users (chmod 600 it)");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// `bytes` as lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `N` random bytes as hex: tokens, session ids, idempotency keys.
pub(crate) fn random_hex<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Makes the new directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
