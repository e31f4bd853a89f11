//! One real `outpost serve` process on loopback, in its own temporary directory, and
//! the ways a user talks to it: signals here, the admin API and the CLI in
//! `appliance/admin.rs`; `appliance/process.rs` has the helpers for processes the
//! harness does not own.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use ureq::Agent;

mod admin;
mod process;

pub use admin::parse_metric;
pub use process::{
    allow_root_flag, check_config_error, child_is_running, kill_child, outpost_bin, serve_command,
    stop_child, unused_upstream, wait_until,
};

/// How long a node may take to become ready. Generous: the suite runs in parallel on
/// a loaded two-core machine, and a first start creates a Raft cluster and fsyncs.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a stopped node may take to exit after SIGTERM (the drain deadline of the
/// appliance is 5 s; the acceptance asks for 10).
pub const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Per-request limit of the admin client (a large zone import parses and fsyncs).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server log quoted when something fails.
const LOG_TAIL_LINES: usize = 40;

/// A running (or stopped) `outpost serve` with its own data directory.
pub struct Appliance {
    dir: TempDir,
    child: Option<Child>,
    dns: SocketAddr,
    admin: SocketAddr,
    token: String,
    agent: Agent,
    /// What `--sync` binds: port 0 until [`Appliance::pin_sync_address`].
    sync_listen: String,
    /// Extra environment of the server process (e.g. systemd's `NOTIFY_SOCKET`).
    env: Vec<(String, String)>,
    /// Extra arguments of `outpost serve` (`--join`), kept for restarts.
    args: Vec<String>,
}

impl Appliance {
    /// Writes `config_toml` to a file in a fresh temporary directory and starts
    /// `outpost serve` on it, with DNS and admin on 127.0.0.1 port 0. Returns once
    /// `addresses.json` names this process and `/ready` answers 200.
    ///
    /// The config must set `forward.upstreams`: the default reads /etc/resolv.conf and
    /// would send test traffic off this machine.
    pub fn start(config_toml: &str) -> Appliance {
        Appliance::start_with_env(config_toml, &[])
    }

    /// [`Appliance::start`] with extra environment variables for the server process,
    /// kept for its restarts.
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Appliance {
        Appliance::start_with(config_toml, env, &[])
    }

    /// [`Appliance::start`] with extra arguments to `outpost serve` (`--join TICKET`), kept
    /// for its restarts.
    pub fn start_with_args(config_toml: &str, args: &[&str]) -> Appliance {
        Appliance::start_with(config_toml, &[], args)
    }

    fn start_with(config_toml: &str, env: &[(&str, &str)], args: &[&str]) -> Appliance {
        assert!(
            config_toml.contains("upstreams"),
            "test configs must set [forward] upstreams to a loopback address (see unused_upstream()):\n{config_toml}"
        );
        let dir = tempfile::Builder::new()
            .prefix("outpost-test-")
            .tempdir()
            .expect("create a temporary directory");
        fs::write(dir.path().join("outpost.toml"), config_toml).expect("write the config");
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .new_agent();
        let mut appliance = Appliance {
            dir,
            child: None,
            dns: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: String::new(),
            agent,
            sync_listen: "127.0.0.1:0".to_string(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
        };
        appliance.spawn();
        appliance
    }

    /// The DNS address, UDP and TCP.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns
    }

    /// The A records this appliance answers for `name` over UDP.
    pub fn a_records(&self, name: &str) -> Vec<String> {
        crate::answers_of(
            &crate::query_udp(self.dns, name, hickory_proto::rr::RecordType::A, None),
            hickory_proto::rr::RecordType::A,
        )
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// An address the appliance wrote to `addresses.json` under `key` (`sync`, `raft`,
    /// and `dns_tls`, `dns_https`, `dns_quic`: the encrypted listeners, when configured).
    pub fn listener(&self, key: &str) -> SocketAddr {
        let value = self.addresses();
        let Some(addr) = value[key].as_str() else {
            panic!("addresses.json has no {key}: {value}");
        };
        addr.parse()
            .unwrap_or_else(|e| panic!("addresses.json's {key} {addr:?}: {e}"))
    }

    /// The admin bearer token, read from `<data-dir>/admin.token`.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory for the test's own files (zone files, configs).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("outpost.log")
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the appliance is not running")
            .id()
    }

    /// Whether the process is still alive (it has not exited, by panic or otherwise).
    pub fn is_running(&mut self) -> bool {
        child_is_running(&mut self.child)
    }

    /// SIGKILL: no chance to flush or shut down. Waits for the process to be gone.
    pub fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// The config file the server reads (`--config`); rewrite it and send SIGHUP
    /// ([`Appliance::signal`]) to reload.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("outpost.toml")
    }

    /// Sends `signal` and returns at once (see [`Appliance::stop_with`] to wait for an
    /// exit).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = i32::try_from(self.pid()).expect("a pid fits in i32");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
    }

    /// SIGTERM, then waits up to [`EXIT_DEADLINE`]. Returns the exit status, or
    /// `None` when the process was still running at the deadline (it is then killed).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.stop_with("TERM")
    }

    /// Sends `signal` (a kill(1) name: `TERM`, `INT`) and waits like
    /// [`Appliance::terminate`].
    pub fn stop_with(&mut self, signal: &str) -> Option<ExitStatus> {
        let child = self.child.take().expect("the appliance is not running");
        stop_child(child, signal)
    }

    /// Makes later restarts bind the sync address bound now, so Lite clients started
    /// with its URL find the appliance again (other addresses stay on port 0).
    pub fn pin_sync_address(&mut self) {
        self.sync_listen = self.listener("sync").to_string();
    }

    /// The node's Raft endpoint as `addresses.json` names it: `<endpoint id>@<ip:port>`.
    pub fn raft_peer(&self) -> String {
        let value = self.addresses();
        format!(
            "{}@{}",
            value["endpoint_id"]
                .as_str()
                .expect("addresses.json names the endpoint id"),
            value["raft"]
                .as_str()
                .expect("addresses.json names the raft address")
        )
    }

    /// The UDP port of the node's Raft endpoint (what a partition cuts).
    pub fn raft_port(&self) -> u16 {
        self.listener("raft").port()
    }

    /// Makes later restarts bind the Raft address bound now, as a real box keeps its address.
    pub fn pin_raft_address(&mut self) {
        let raft = self.listener("raft");
        self.args.retain(|arg| !arg.starts_with("--raft="));
        self.args.push(format!("--raft={raft}"));
    }

    fn addresses(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.data_dir().join("addresses.json"))
            .expect("addresses.json of a started appliance");
        serde_json::from_str(&text).expect("addresses.json is JSON")
    }

    /// Starts the server again without waiting for it to be ready (a node that cannot reach a
    /// quorum is never ready); [`Appliance::wait_ready`] waits.
    pub fn restart_unready(&mut self) {
        self.kill9();
        self.spawn_process();
    }

    /// Waits until the running server's `/ready` answers 200.
    pub fn wait_ready(&mut self) {
        self.await_ready();
    }

    /// Starts the server again on the same data directory and config (new ports, but
    /// see [`Appliance::pin_sync_address`]). A server still running is killed with
    /// SIGKILL first.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.await_ready();
    }

    fn spawn_process(&mut self) {
        let data_dir = self.data_dir();
        // The previous run's file must not be mistaken for this one's.
        let _ = fs::remove_file(data_dir.join("addresses.json"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let child = Command::new(outpost_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--dns", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--sync", &self.sync_listen])
            .arg("--config")
            .arg(self.dir.path().join("outpost.toml"))
            .args(["--log", "info"])
            .args(allow_root_flag())
            .args(&self.args)
            .env_remove("RUST_LOG")
            .env_remove("OUTPOST_TOKEN")
            // Never the test runner's own systemd; tests that want one pass it in `env`.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn outpost serve");
        self.child = Some(child);
    }

    /// Waits for `addresses.json` of the running process, then for `/ready`.
    fn await_ready(&mut self) {
        let data_dir = self.data_dir();
        let pid = self.pid();
        let deadline = Instant::now() + READY_DEADLINE;
        let (dns, admin) = loop {
            if let Some(addresses) = read_addresses(&data_dir.join("addresses.json"), pid) {
                break addresses;
            }
            self.fail_if_exited("before writing addresses.json");
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "outpost (pid {pid}) did not write addresses.json within {READY_DEADLINE:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        self.dns = dns;
        self.admin = admin;
        loop {
            let ready = self
                .http("GET", "/ready", None, None, None)
                .map(|(status, _)| status);
            if ready == Ok(200) {
                break;
            }
            self.fail_if_exited("before /ready turned 200");
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "outpost (pid {pid}) was not ready within {READY_DEADLINE:?} (last /ready: {ready:?})\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.token = fs::read_to_string(data_dir.join("admin.token"))
            .expect("the admin token exists once the node is ready")
            .trim()
            .to_string();
    }

    fn fail_if_exited(&mut self, when: &str) {
        let Some(child) = &mut self.child else { return };
        if let Some(status) = child.try_wait().expect("poll the child") {
            self.child = None;
            panic!("outpost exited {when}: {status}\n{}", self.log_tail());
        }
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let length = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)));
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!(
            "--- last lines of {} ---\n{tail}\n---",
            self.log_path().display()
        )
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Appliance {
    /// Kills the process, and fails a test that otherwise passed if the server
    /// logged a panic (a panic in a task does not end the process, so it would go
    /// unseen): nothing a test sends may make the server panic.
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() && self.log().contains("panicked at") {
            panic!("the server panicked during the test\n{}", self.log_tail());
        }
    }
}

/// `(dns, admin)` from `addresses.json`, once it exists and names `pid`.
fn read_addresses(path: &Path, pid: u32) -> Option<(SocketAddr, SocketAddr)> {
    let text = fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    if value["pid"].as_u64()? != u64::from(pid) {
        return None;
    }
    let dns = value["dns"].as_str()?.parse().ok()?;
    let admin = value["admin"].as_str()?.parse().ok()?;
    Some((dns, admin))
}
