//! Helpers for `outpost` processes the harness does not own: where the binary is, an
//! upstream address nothing answers on, a bare `outpost serve` command, waiting, and
//! stopping a child.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::EXIT_DEADLINE;

/// The `outpost` binary under test: `OUTPOST_BIN`, else `outpost` beside the test
/// binary's `deps` folder (`target/debug/deps/integration-…` → `target/debug/outpost`).
pub fn outpost_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("OUTPOST_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "OUTPOST_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("the test binary lives in a target directory");
    let path = profile_dir.join(format!("outpost{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo build -p outpost-appliance --bin outpost` first (or set OUTPOST_BIN)",
        path.display()
    );
    path
}

/// A loopback UDP address with nothing behind it, for configs whose forwarding must
/// stay on this machine but is not under test. (The default upstreams come from
/// /etc/resolv.conf: a test must never use them.)
///
/// The port is below the kernel's ephemeral range (32768 and up on Linux), so no
/// server started on port 0 by a parallel test can take it over later.
pub fn unused_upstream() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % 1000;
    for _ in 0..2000 {
        let port = 21_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % 2000;
        let port = u16::try_from(port).expect("a port below 23000");
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free loopback UDP port between 21000 and 22999");
}

/// `--allow-root` when the tests run as root (as in CI and containers), so that
/// `outpost serve` starts; nothing otherwise.
pub fn allow_root_flag() -> &'static [&'static str] {
    if nix::unistd::geteuid().is_root() {
        &["--allow-root"]
    } else {
        &[]
    }
}

/// `outpost serve` with the config and a fresh data directory, without the harness
/// (and so without `--allow-root` unless `extra` has it).
pub fn serve_command(dir: &Path, config: &str, extra: &[&str]) -> Command {
    let path = dir.join("outpost.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut command = Command::new(outpost_bin());
    command
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--dns",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null());
    command
}

/// Polls `condition` every 50 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` (a kill(1) name: `TERM`, `INT`) to `child` and waits up to
/// [`EXIT_DEADLINE`] for it to exit; kills it and returns `None` if it does not.
pub fn stop_child(mut child: std::process::Child, signal: &str) -> Option<ExitStatus> {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill(1)");
    assert!(sent.success(), "kill -{signal} {} failed", child.id());
    let deadline = Instant::now() + EXIT_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the process in `child` is still alive (it has not exited, by panic or otherwise).
pub fn child_is_running(child: &mut Option<std::process::Child>) -> bool {
    match child {
        Some(child) => child.try_wait().expect("poll the child").is_none(),
        None => false,
    }
}

/// SIGKILL: no chance to flush or shut down. Waits for the process to be gone.
pub fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `outpost check-config` on a config file holding `toml`: it must fail, and what it
/// printed on stderr is returned.
pub fn check_config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("outpost.toml");
    fs::write(&path, toml).expect("write the config");
    let output = Command::new(outpost_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run outpost check-config");
    assert!(!output.status.success(), "check-config accepted:\n{toml}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
