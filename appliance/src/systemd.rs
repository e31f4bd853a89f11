//! Living under systemd: readiness, reload and stop notifications and the watchdog
//! (the `sd_notify` datagram protocol, spoken directly over a Unix socket), and the
//! refusal to run as root unless asked.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where systemd listens for notifications, when it started us as `Type=notify`.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog interval systemd expects pings within (`WatchdogSec=`).
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// Set by systemd to the pid the watchdog applies to.
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Sends one notification (`READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`,
/// `STATUS=...`). Returns `Ok(false)` when not started by systemd.
pub fn notify(message: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(path) => notify_to(&path, message).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `message` to the notification socket at `path` (`@name` for an abstract one).
fn notify_to(path: &std::ffi::OsStr, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let path = path.to_string_lossy();
    match path.strip_prefix('@') {
        // An abstract socket (Linux): the name follows the '@'.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(message.as_bytes(), &address)?;
        }
        None => {
            socket.send_to(message.as_bytes(), &*path)?;
        }
    }
    Ok(())
}

/// How often to ping the watchdog: half the interval systemd asked for, so one late
/// ping does not get us killed. `None` when no watchdog applies to this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var(WATCHDOG_USEC).ok(),
        std::env::var(WATCHDOG_PID).ok(),
        std::process::id(),
    )
}

fn watchdog_interval_from(
    usec: Option<String>,
    pid: Option<String>,
    own_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.parse().ok()?;
    if let Some(pid) = pid
        && pid.parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Why the daemon will not start as root.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to run as root: run outpost as an unprivileged user (it needs only CAP_NET_BIND_SERVICE \
     to bind port 53; under systemd use AmbientCapabilities=CAP_NET_BIND_SERVICE), or pass \
     --allow-root if you really mean it"
)]
pub struct RunningAsRoot;

/// Refuses root unless `allowed`.
pub fn check_not_root(allowed: bool) -> Result<(), RunningAsRoot> {
    if nix::unistd::geteuid().is_root() && !allowed {
        return Err(RunningAsRoot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket_systemd_gave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buffer = [0u8; 64];
        let len = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..len], b"READY=1");
    }

    #[test]
    fn the_watchdog_pings_at_half_the_interval_for_this_process_only() {
        let usec = || Some("4000000".to_string());
        assert_eq!(
            watchdog_interval_from(usec(), Some("42".into()), 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval_from(usec(), None, 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_interval_from(usec(), Some("1".into()), 42), None);
        assert_eq!(watchdog_interval_from(None, None, 42), None);
        assert_eq!(watchdog_interval_from(Some("0".into()), None, 42), None);
    }
}
