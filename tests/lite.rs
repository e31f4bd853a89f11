//! One real `outpost-lite run` process on loopback, in its own temporary directory,
//! and the ways a user looks at it: DNS, `outpost-lite status`, signals. Plus the
//! appliance-side helpers Lite tests need (sync URL, tokens, a replica digest).

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use outpost_core::state::{Command as ZoneCommand, ReplicatedState};
use outpost_core::wire::encode_records;
use serde_json::Value;
use tempfile::TempDir;

use crate::appliance::READY_DEADLINE;
use crate::{Appliance, answers_of, query_udp, unused_upstream};

/// How long a change may take to reach a Lite client on a loaded two-core machine.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(20);
/// Lines of the client log quoted when something fails.
const LOG_TAIL_LINES: usize = 40;

/// The `outpost-lite` binary under test: `OUTPOST_LITE_BIN`, else beside `outpost`.
pub fn lite_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("OUTPOST_LITE_BIN") {
        return PathBuf::from(path);
    }
    let outpost = crate::outpost_bin();
    let path = outpost.with_file_name(format!("outpost-lite{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo build -p outpost-lite --bin outpost-lite` first (or set OUTPOST_LITE_BIN)",
        path.display()
    );
    path
}

/// `ws://` URL of the appliance's sync endpoint, from its `addresses.json`.
pub fn sync_url(appliance: &Appliance) -> String {
    format!("ws://{}", appliance.listener("sync"))
}

/// `outpost lite-token create --name NAME --zones ZONES`; returns the token (the
/// last line of its output).
pub fn create_lite_token(appliance: &Appliance, name: &str, zones: &str) -> String {
    let output = appliance.cli_ok(["lite-token", "create", "--name", name, "--zones", zones]);
    output
        .lines()
        .last()
        .expect("lite-token create prints the token last")
        .trim()
        .to_string()
}

/// `outpost export create --name NAME --zones ZONES`; returns the read-only ticket (the
/// last line of its output).
pub fn create_export(appliance: &Appliance, name: &str, zones: &str) -> String {
    let output = appliance.cli_ok(["export", "create", "--name", name, "--zones", zones]);
    let ticket = output.lines().last().unwrap_or_default().trim().to_string();
    assert!(ticket.starts_with("outpost-export-v1:"), "{output}");
    ticket
}

/// The appliance's applied Raft index, from `/v1/status`.
pub fn applied_index(appliance: &Appliance) -> u64 {
    let (status, body) = appliance.api_json("GET", "/v1/status", None);
    assert_eq!(status, 200, "{body}");
    body["applied_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("no applied_index in /v1/status: {body}"))
}

/// A digest of the appliance's zones `origins`, computed from their master-file
/// exports exactly as the Lite client computes its `status.json` digest
/// (`outpost_core::digest`), so equal digests mean equal replicas.
pub fn appliance_digest(appliance: &Appliance, origins: &[&str]) -> String {
    let mut zones = ReplicatedState::default();
    for (origin, records) in zone_exports(appliance, origins) {
        let command = ZoneCommand::ReplaceZone {
            origin: origin.clone(),
            records: encode_records(&records).expect("records encode"),
        };
        zones
            .apply(&command)
            .unwrap_or_else(|e| panic!("export of {origin} does not load: {e}"));
    }
    outpost_core::digest::digest(&zones)
}

/// The records of each zone of `origins` the appliance holds, read from its master-file
/// exports (zones it does not hold are left out).
pub fn zone_exports(appliance: &Appliance, origins: &[&str]) -> Vec<(String, Vec<Record>)> {
    let mut exports = Vec::new();
    for origin in origins {
        let (status, text) = appliance.api("GET", &format!("/v1/zones/{origin}/export"), None);
        if status == 404 {
            continue;
        }
        assert_eq!(status, 200, "export of {origin}: {text}");
        let name = Name::from_ascii(origin).expect("a zone name");
        let records = outpost_core::zonefile::parse_zone(&text, &name, 300)
            .unwrap_or_else(|e| panic!("export of {origin} does not parse: {e}\n{text}"));
        exports.push((origin.to_string(), records));
    }
    exports
}

/// A running (or stopped) `outpost-lite run`.
pub struct Lite {
    dir: TempDir,
    child: Option<Child>,
    appliances: Vec<String>,
    token: String,
    upstream: String,
    /// More `run` flags (`--pin`, `--ca`).
    extra_args: Vec<String>,
    dns: SocketAddr,
}

impl Lite {
    /// Starts `outpost-lite run` against `appliances` with DNS on 127.0.0.1 port 0 and
    /// an unused loopback upstream. Returns once `status.json` names this process.
    pub fn start(appliances: &[String], token: &str) -> Lite {
        Lite::start_with_args(appliances, token, &[])
    }

    /// [`Lite::start`] with more `run` flags, e.g. `["--pin", FINGERPRINT]`; an
    /// `--upstream` among them replaces the default unused one.
    pub fn start_with_args(appliances: &[String], token: &str, extra_args: &[&str]) -> Lite {
        let dir = tempfile::Builder::new()
            .prefix("outpost-lite-test-")
            .tempdir()
            .expect("create a temporary directory");
        let mut lite = Lite {
            dir,
            child: None,
            appliances: appliances.to_vec(),
            token: token.to_string(),
            upstream: unused_upstream(),
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            dns: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        lite.spawn();
        lite
    }

    /// [`Lite::start`] against one appliance.
    pub fn start_for(appliance: &Appliance, token: &str) -> Lite {
        Lite::start(&[sync_url(appliance)], token)
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.dns
    }

    /// The status page's address, from `status.json` (bound on port 0).
    pub fn page_addr(&self) -> SocketAddr {
        let status = self.status_file();
        status["page"]
            .as_str()
            .and_then(|page| page.parse().ok())
            .unwrap_or_else(|| panic!("no page address in status.json: {status}"))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("outpost-lite.log")
    }

    /// Uses `token` from the next start on.
    pub fn set_token(&mut self, token: &str) {
        self.token = token.to_string();
    }

    /// Points the next start at other appliance URLs.
    pub fn set_appliances(&mut self, appliances: &[String]) {
        self.appliances = appliances.to_vec();
    }

    /// A DNS query to the client over UDP.
    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        query_udp(self.dns, name, rtype, None)
    }

    /// The A records the client answers for `name`.
    pub fn a_records(&self, name: &str) -> Vec<String> {
        answers_of(&self.query(name, RecordType::A), RecordType::A)
    }

    /// Polls until `name` answers exactly `expected` A records; panics with the log
    /// at [`SYNC_DEADLINE`].
    pub fn wait_for_a(&self, name: &str, expected: &[&str]) {
        let mut last = Vec::new();
        let ok = crate::wait_until(SYNC_DEADLINE, || {
            last = self.a_records(name);
            last == expected
        });
        assert!(
            ok,
            "{name} A on the Lite client: {last:?}, expected {expected:?}\nstatus: {}\n{}",
            self.status_file(),
            self.log_tail()
        );
    }

    /// `status.json` as the running client last wrote it.
    pub fn status_file(&self) -> Value {
        fs::read_to_string(self.data_dir().join("status.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null)
    }

    /// `outpost-lite status --json`, as a user runs it: (exit success, JSON).
    pub fn status(&self) -> (bool, Value) {
        let output = self
            .status_command(true)
            .output()
            .expect("run outpost-lite status");
        let value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output.status.success(), value)
    }

    /// `outpost-lite status [--json] --data-dir DIR`, to run and read.
    pub fn status_command(&self, json: bool) -> Command {
        let mut command = Command::new(lite_bin());
        command.arg("status").arg("--data-dir").arg(self.data_dir());
        if json {
            command.arg("--json");
        }
        command.stdin(Stdio::null());
        command
    }

    /// Polls `outpost-lite status --json` until `condition` holds; panics with the
    /// log at `deadline`. Returns the status that satisfied it.
    pub fn wait_for_status(
        &self,
        what: &str,
        deadline: Duration,
        mut condition: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let ok = crate::wait_until(deadline, || {
            last = self.status().1;
            condition(&last)
        });
        assert!(
            ok,
            "Lite status never showed {what}: {last}\n{}",
            self.log_tail()
        );
        last
    }

    /// Waits for Synced with the cursor at the announced head and the digest of
    /// that replica in the file; returns the status.
    pub fn wait_synced(&self) -> Value {
        self.wait_for_status("Synced with cursor == head", SYNC_DEADLINE, |status| {
            status["state"] == "Synced"
                && status["cursor"] == status["head"]
                && status["digest"].is_string()
        })
    }

    /// [`Lite::wait_synced`], and the cursor at least at the appliance's applied index
    /// (so every write made before the call has been applied).
    pub fn wait_caught_up(&self, appliance: &Appliance) -> Value {
        let applied = applied_index(appliance);
        self.wait_for_status(
            &format!("Synced at the appliance's index {applied}"),
            SYNC_DEADLINE,
            |status| {
                status["state"] == "Synced"
                    && status["cursor"] == status["head"]
                    && status["cursor"].as_u64() >= Some(applied)
                    && status["digest"].is_string()
            },
        )
    }

    pub fn is_running(&mut self) -> bool {
        crate::appliance::child_is_running(&mut self.child)
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        crate::appliance::kill_child(&mut self.child);
    }

    /// SIGTERM, then waits up to [`crate::appliance::EXIT_DEADLINE`]; `None` if it had to be killed.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.take().expect("the Lite client is not running");
        crate::appliance::stop_child(child, "TERM")
    }

    /// Starts the client again on the same data directory (a new DNS port). A client
    /// still running is stopped with SIGTERM first.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the client log");
        let mut command = Command::new(lite_bin());
        command.arg("run");
        for appliance in &self.appliances {
            command.arg("--appliance").arg(appliance);
        }
        // A client that follows an export only (`--docs`) runs without a token.
        if !self.token.is_empty() {
            command.arg("--token").arg(&self.token);
        }
        let child = command
            // The test's own DNS address, or any free one on loopback.
            .args(if self.extra_args.iter().any(|arg| arg == "--dns") {
                vec!["--page", "127.0.0.1:0"]
            } else {
                vec!["--dns", "127.0.0.1:0", "--page", "127.0.0.1:0"]
            })
            // The test's own upstream, or one that goes nowhere (never /etc/resolv.conf).
            .args(if self.extra_args.iter().any(|arg| arg == "--upstream") {
                Vec::new()
            } else {
                vec!["--upstream", self.upstream.as_str()]
            })
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra_args)
            .args(["--log", "info,outpost_lite=debug"])
            .env_remove("RUST_LOG")
            .env_remove("OUTPOST_LITE_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn outpost-lite run");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let status = self.status_file();
            if status["pid"].as_u64() == Some(u64::from(pid))
                && let Some(dns) = status["dns"].as_str().and_then(|dns| dns.parse().ok())
            {
                self.dns = dns;
                return;
            }
            if let Some(child) = &mut self.child
                && let Some(exit) = child.try_wait().expect("poll the child")
            {
                self.child = None;
                panic!("outpost-lite exited at start: {exit}\n{}", self.log_tail());
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "outpost-lite (pid {pid}) wrote no status.json within {READY_DEADLINE:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The whole client log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the client log, for failure messages.
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
}

impl Drop for Lite {
    /// Kills the process, and fails a test that otherwise passed if the client logged
    /// a panic.
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() && self.log().contains("panicked at") {
            panic!(
                "the Lite client panicked during the test\n{}",
                self.log_tail()
            );
        }
    }
}
