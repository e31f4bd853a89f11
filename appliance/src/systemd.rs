//! Living under systemd: readiness, reload and stop notifications and the watchdog
//! (the `sd_notify` datagram protocol, spoken directly over a Unix socket), and the
//! refusal to run as root unless asked.
//!
//! The daemon's side of the protocol, in the order it happens: `READY=1` once every
//! socket is bound and the node serves; `WATCHDOG=1` every half `WatchdogSec=` while
//! [`watchdog`]'s health check passes; `RELOADING=1` … `READY=1` around a SIGHUP;
//! `STOPPING=1` when shutdown begins. Each comes with a `STATUS=` line for
//! `systemctl status`.

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where systemd listens for notifications, when it started us as `Type=notify`.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog interval systemd expects pings within (`WatchdogSec=`).
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// Set by systemd to the pid the watchdog applies to.
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Sends one notification (`READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`,
/// `STATUS=...`). Returns `Ok(false)` when not started by systemd.
pub fn notify(message: &str) -> io::Result<bool> {
    Notifier::from_env().send(message)
}

/// Where notifications go: the socket systemd named, or nowhere.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    path: Option<OsString>,
}

impl Notifier {
    /// The socket in `NOTIFY_SOCKET`, if any.
    pub fn from_env() -> Notifier {
        Notifier {
            path: std::env::var_os(NOTIFY_SOCKET),
        }
    }

    /// Sends `message`; `Ok(false)` when there is no socket.
    pub fn send(&self, message: &str) -> io::Result<bool> {
        match &self.path {
            Some(path) => notify_to(path, message).map(|()| true),
            None => Ok(false),
        }
    }

    /// [`Notifier::send`], logging a failure instead of returning it: a notification
    /// that cannot be sent must not stop the daemon (systemd acts on its absence).
    pub fn send_or_log(&self, message: &str) {
        if let Err(error) = self.send(message) {
            tracing::warn!(%error, message, "cannot notify systemd");
        }
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

/// Pings the watchdog every `interval` while `check` passes, until `stop`.
///
/// A failing (or hanging: it gets one `interval`) check skips the ping and is logged
/// and shown as `STATUS=unhealthy: ...` once; when no ping arrives within
/// `WatchdogSec=`, systemd kills and restarts us. A check that passes again resumes the
/// pings, and `healthy_status` is shown again.
pub async fn watchdog<Check, Checked>(
    notifier: Notifier,
    interval: Duration,
    healthy_status: String,
    mut check: Check,
    stop: CancellationToken,
) where
    Check: FnMut() -> Checked,
    Checked: Future<Output = Result<(), String>>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(interval, check()) => outcome,
        };
        let outcome = outcome.unwrap_or_else(|_| {
            Err(format!(
                "the health check did not finish within {interval:?}"
            ))
        });
        match outcome {
            Ok(()) => {
                if healthy {
                    notifier.send_or_log("WATCHDOG=1");
                } else {
                    tracing::info!("healthy again; watchdog pings resume");
                    notifier.send_or_log(&format!("WATCHDOG=1\nSTATUS={healthy_status}"));
                    healthy = true;
                }
            }
            Err(reason) => {
                if healthy {
                    tracing::error!(%reason, "unhealthy; watchdog pings stop, so systemd restarts us");
                    notifier.send_or_log(&format!("STATUS=unhealthy: {reason}"));
                    healthy = false;
                }
            }
        }
    }
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

    /// Notifications received on a socket in `dir`, and a notifier that sends there.
    fn listener(dir: &tempfile::TempDir) -> (UnixDatagram, Notifier) {
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        let notifier = Notifier {
            path: Some(path.into_os_string()),
        };
        (socket, notifier)
    }

    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut messages = Vec::new();
        let mut buffer = [0u8; 256];
        while let Ok(len) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
        }
        messages
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_pings_only_while_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, notifier) = listener(&dir);
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let stop = CancellationToken::new();
        let check = {
            let healthy = healthy.clone();
            move || {
                let healthy = healthy.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if healthy {
                        Ok(())
                    } else {
                        Err("the store stopped".to_string())
                    }
                }
            }
        };
        let task = tokio::spawn(watchdog(
            notifier,
            Duration::from_secs(1),
            "serving".into(),
            check,
            stop.clone(),
        ));

        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(received(&socket), ["WATCHDOG=1"; 3]);

        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(received(&socket), ["STATUS=unhealthy: the store stopped"]);

        healthy.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            received(&socket),
            ["WATCHDOG=1\nSTATUS=serving", "WATCHDOG=1"]
        );

        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_counts_as_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, notifier) = listener(&dir);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watchdog(
            notifier,
            Duration::from_secs(1),
            "serving".into(),
            std::future::pending::<Result<(), String>>,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            received(&socket),
            ["STATUS=unhealthy: the health check did not finish within 1s"]
        );
        stop.cancel();
        task.await.unwrap();
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
