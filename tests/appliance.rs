//! One real `outpost serve` process on loopback, in its own temporary directory, and
//! the ways a user talks to it: the admin API, the CLI and signals.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use ureq::Agent;

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

    /// An address the appliance wrote to `addresses.json` under `key` (`dns_tls`,
    /// `dns_https`, `dns_quic`: the encrypted listeners, on when configured).
    pub fn listener(&self, key: &str) -> SocketAddr {
        let text = fs::read_to_string(self.data_dir().join("addresses.json"))
            .expect("read addresses.json");
        let value: serde_json::Value = serde_json::from_str(&text).expect("addresses.json is JSON");
        let Some(addr) = value[key].as_str() else {
            panic!("addresses.json has no {key}: {text}");
        };
        addr.parse().expect("an address")
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
        let text = fs::read_to_string(self.data_dir().join("addresses.json"))
            .expect("addresses.json of a started appliance");
        let value: serde_json::Value = serde_json::from_str(&text).expect("addresses.json is JSON");
        self.sync_listen = value["sync"]
            .as_str()
            .expect("addresses.json names the sync address")
            .to_string();
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
        let raft = self.addresses()["raft"]
            .as_str()
            .expect("addresses.json names the raft address")
            .to_string();
        raft.parse::<SocketAddr>()
            .unwrap_or_else(|e| panic!("raft address {raft:?}: {e}"))
            .port()
    }

    /// Makes later restarts bind the Raft address bound now, as a real box keeps its address.
    pub fn pin_raft_address(&mut self) {
        let raft = self.addresses()["raft"]
            .as_str()
            .expect("addresses.json names the raft address")
            .to_string();
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

    /// Runs `outpost <args> --admin ADDR --data-dir DIR`, as a user would type it.
    pub fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cli_command(args)
            .output()
            .expect("run the outpost CLI")
    }

    /// The command [`Appliance::cli`] runs, to add environment or input.
    pub fn cli_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(outpost_bin());
        command
            .args(args)
            .arg("--admin")
            .arg(self.admin.to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("OUTPOST_TOKEN")
            .env_remove("OUTPOST_ADMIN")
            .stdin(Stdio::null());
        command
    }

    /// Like [`Appliance::cli`], and asserts it succeeded; returns stdout.
    pub fn cli_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self.cli(&args);
        assert!(
            output.status.success(),
            "outpost {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
        String::from_utf8(output.stdout).expect("CLI output is UTF-8")
    }

    /// An admin API request with the token; a body is sent as JSON.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let content_type = body.map(|_| "application/json");
        self.api_with(method, path, content_type, body, Some(&self.token))
    }

    /// [`Appliance::api`] with the body parsed as JSON (`Null` when it is not JSON).
    pub fn api_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, text) = self.api(method, path, body);
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// An admin API request with full control of the content type and the token.
    pub fn api_with(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        self.http(method, path, content_type, body, token)
            .unwrap_or_else(|error| {
                panic!(
                    "admin API {method} {path} did not answer: {error}\n{}",
                    self.log_tail()
                )
            })
    }

    fn http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Result<(u16, String), String> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin));
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => self
                .agent
                .run(request.body(body.to_string()).expect("a valid request")),
            None => self.agent.run(request.body(()).expect("a valid request")),
        };
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| format!("reading the body of a {status}: {e}"))?;
        Ok((status, text))
    }

    /// Replaces (or creates) zone `origin` from master-file text through the API;
    /// asserts success.
    pub fn import_zone(&self, origin: &str, text: &str) {
        let (status, body) = self.api_with(
            "PUT",
            &format!("/v1/zones/{origin}"),
            Some("text/plain"),
            Some(text),
            Some(&self.token),
        );
        assert_eq!(status, 200, "importing {origin} failed: {body}");
    }

    /// The value of one sample of `/metrics`, e.g.
    /// `outpost_dns_queries_total{protocol="udp",rcode="NOERROR"}`; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let (status, text) = self.api("GET", "/metrics", None);
        assert_eq!(status, 200, "GET /metrics: {text}");
        parse_metric(&text, sample).unwrap_or(0.0)
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

/// `--allow-root` when the tests run as root (as in CI and containers), so that
/// `outpost serve` starts; nothing otherwise.
pub fn allow_root_flag() -> &'static [&'static str] {
    if nix::unistd::geteuid().is_root() {
        &["--allow-root"]
    } else {
        &[]
    }
}

/// One sample's value from Prometheus text.
pub fn parse_metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
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
