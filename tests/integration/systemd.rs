//! The daemon under systemd, played by the test: `READY=1` on the `NOTIFY_SOCKET` it
//! is given once it serves, `WATCHDOG=1` while healthy, `STOPPING=1` and a clean exit
//! on SIGTERM; SIGHUP re-reads the config file and applies it without failing a query,
//! and a bad file keeps the running config; `outpost serve` refuses root unless told;
//! `outpost-lite run --token-file`.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use nix::sys::signal::Signal;
use outpost_tests::appliance::{EXIT_DEADLINE, READY_DEADLINE, allow_root_flag, serve_command};
use outpost_tests::lite::{lite_bin, sync_url};
use outpost_tests::{
    Appliance, Ask, answers_of, create_lite_token, describe, query_udp, unused_upstream, wait_until,
};

/// How long a notification may take to arrive on a loaded machine.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(20);

/// The systemd side of `sd_notify`: a datagram socket in a temporary directory whose
/// path is handed to the daemon as `NOTIFY_SOCKET`.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            path,
            socket,
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }

    /// The next notification, or `None` after `wait`.
    fn next(&self, wait: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = [0u8; 4096];
        let len = self.socket.recv(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..len]).into_owned())
    }

    /// Reads notifications until one has `line` among its lines; returns it and
    /// panics (with what was seen) at [`NOTIFY_DEADLINE`].
    fn expect_line(&self, line: &str) -> String {
        let deadline = Instant::now() + NOTIFY_DEADLINE;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(message) if message.lines().any(|l| l == line) => return message,
                Some(message) => seen.push(message),
                None => break,
            }
        }
        panic!("no notification with {line:?} within {NOTIFY_DEADLINE:?}; saw {seen:?}");
    }
}

/// The value of `KEY=` in a notification.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// Starts `outpost serve` on `config` with systemd's notification socket, and no
/// watchdog unless `watchdog_usec` is given (`WATCHDOG_PID` stays unset, which means
/// "this process").
fn start_notifying(config: &str, notify: &NotifySocket, watchdog_usec: Option<&str>) -> Appliance {
    let mut env = vec![("NOTIFY_SOCKET", notify.path())];
    if let Some(usec) = watchdog_usec {
        env.push(("WATCHDOG_USEC", usec));
    }
    Appliance::start_with_env(config, &env)
}

#[test]
fn ready_once_serving_then_stopping_and_a_clean_exit_on_sigterm() {
    let notify = NotifySocket::bind();
    let mut appliance = start_notifying(&outpost_tests::default_config(), &notify, None);

    // The harness returns once addresses.json is written and /ready is 200; READY=1
    // was sent at that point, naming the DNS address.
    let ready = notify.expect_line("READY=1");
    assert_eq!(
        field(&ready, "STATUS"),
        Some(format!("serving dns on {}", appliance.dns_addr()).as_str()),
        "{ready:?}"
    );
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);

    let started = Instant::now();
    let status = appliance.terminate();
    let took = started.elapsed();
    let stopping = notify.expect_line("STOPPING=1");
    assert_eq!(field(&stopping, "STATUS"), Some("shutting down"));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?} after SIGTERM\n{}",
        appliance.log_tail()
    );
    assert!(
        took < EXIT_DEADLINE,
        "shutdown took {took:?}\n{}",
        appliance.log_tail()
    );
}

#[test]
fn the_watchdog_is_pinged_while_the_node_is_healthy() {
    let notify = NotifySocket::bind();
    // 500 ms: pings every 250 ms.
    let appliance = start_notifying(&outpost_tests::default_config(), &notify, Some("500000"));
    notify.expect_line("READY=1");
    let started = Instant::now();
    let mut pings = 0;
    while pings < 4 && started.elapsed() < NOTIFY_DEADLINE {
        if let Some(message) = notify.next(Duration::from_secs(1)) {
            assert_eq!(message, "WATCHDOG=1", "only pings while healthy");
            pings += 1;
        }
    }
    assert_eq!(
        pings,
        4,
        "pings in {:?}\n{}",
        started.elapsed(),
        appliance.log_tail()
    );
    assert!(
        appliance
            .log()
            .contains("pinging the systemd watchdog while healthy")
    );
}

/// Queries `name` over UDP back to back until stopped, one at a time, each given
/// `QUERY_TIMEOUT` for its answer. Returns (queries, NOERROR answers, what went wrong).
fn query_loop(
    dns: SocketAddr,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(u64, u64, Vec<String>)> {
    const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(dns).unwrap();
        socket.set_read_timeout(Some(QUERY_TIMEOUT)).unwrap();
        let ask = Ask::new(name, RecordType::A);
        let (mut queries, mut answered) = (0u64, 0u64);
        let mut failures = Vec::new();
        let mut buffer = [0u8; 4096];
        let mut id: u16 = 1;
        while !stop.load(Ordering::SeqCst) {
            id = id.wrapping_add(1);
            socket.send(&ask.to_bytes(id)).unwrap();
            queries += 1;
            // One send, no retry: a lost or late answer is a failed query.
            let answer = loop {
                match socket.recv(&mut buffer) {
                    Ok(len) => match Message::from_vec(&buffer[..len]) {
                        Ok(message) if message.metadata.id == id => break Ok(message),
                        Ok(_) => continue,
                        Err(error) => break Err(format!("answer {id} does not decode: {error}")),
                    },
                    Err(error) => break Err(format!("query {id} not answered: {error}")),
                }
            };
            match answer {
                Ok(message) if message.metadata.response_code == ResponseCode::NoError => {
                    answered += 1;
                }
                Ok(message) => failures.push(describe(&message)),
                Err(failure) => failures.push(failure),
            }
        }
        (queries, answered, failures)
    })
}

/// The second server the reload points forwarding at: authoritative for
/// `upstream.test.`, recursion for nobody.
fn start_upstream() -> Appliance {
    let upstream = Appliance::start(&format!(
        "example_zone = false\n[dns]\nallow_recursion = []\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    upstream.import_zone(
        "upstream.test.",
        "$ORIGIN upstream.test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\n",
    );
    upstream
}

/// Sends SIGHUP and waits for the `RELOADING=1` … `READY=1` pair; returns the
/// `READY=1` notification.
fn reload(appliance: &Appliance, notify: &NotifySocket) -> String {
    appliance.signal(Signal::SIGHUP);
    notify.expect_line("RELOADING=1");
    notify.expect_line("READY=1")
}

#[test]
fn sighup_applies_recursion_and_forwarding_without_failing_a_query() {
    let upstream = start_upstream();
    let notify = NotifySocket::bind();
    let appliance = start_notifying(
        &format!(
            "[dns]\nallow_recursion = []\n[forward]\nupstreams = [\"{}\"]\ntimeout_ms = 500\n",
            unused_upstream()
        ),
        &notify,
        None,
    );
    notify.expect_line("READY=1");
    let forwarded = "www.upstream.test.";
    let answer = query_udp(appliance.dns_addr(), forwarded, RecordType::A, None);
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::Refused,
        "nobody may recurse yet\n{}",
        describe(&answer)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let authoritative = query_loop(appliance.dns_addr(), "www.example.internal.", stop.clone());
    // Let the loop run before the reload, and after it.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(
        appliance.config_path(),
        format!(
            "log = \"info,outpost_appliance=debug\"\n[dns]\nallow_recursion = [\"127.0.0.0/8\"]\n[forward]\nupstreams = [\"{}\"]\ntimeout_ms = 500\n",
            upstream.dns_addr()
        ),
    )
    .unwrap();
    let ready = reload(&appliance, &notify);
    assert_eq!(
        field(&ready, "STATUS"),
        Some(format!("serving dns on {}", appliance.dns_addr()).as_str())
    );
    let answer = query_udp(appliance.dns_addr(), forwarded, RecordType::A, None);
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["192.0.2.1"],
        "forwarded after the reload\n{}\n{}",
        describe(&answer),
        appliance.log_tail()
    );
    // More reloads, each swapping the forwarding settings, fail nothing either.
    for round in 0..10 {
        std::fs::write(
            appliance.config_path(),
            format!(
                "[dns]\nallow_recursion = [\"127.0.0.0/8\"]\n[forward]\nupstreams = [\"{}\"]\ntimeout_ms = {}\n",
                upstream.dns_addr(),
                500 + round
            ),
        )
        .unwrap();
        reload(&appliance, &notify);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (queries, answered, failures) = authoritative.join().unwrap();

    eprintln!("{queries} queries across 11 reloads, {answered} answered NOERROR");
    assert!(failures.is_empty(), "failed queries: {failures:?}");
    assert_eq!(answered, queries, "every query answered NOERROR");
    assert!(queries >= 20, "the loop ran ({queries} queries)");
    let log = appliance.log();
    assert!(
        log.contains("reloaded recursion and forwarding settings"),
        "{log}"
    );
    // The harness passes --log, which pins the filter.
    assert!(
        log.contains("the config file's log is not applied: --log sets the filter"),
        "{log}"
    );
    assert!(
        !log.contains("apply only after a restart"),
        "nothing needed a restart\n{log}"
    );
}

#[test]
fn a_bad_config_on_sighup_keeps_the_running_one() {
    let notify = NotifySocket::bind();
    let config = outpost_tests::authoritative_config();
    let appliance = start_notifying(&config, &notify, None);
    notify.expect_line("READY=1");

    std::fs::write(
        appliance.config_path(),
        "[dns]\nallow_recursion = [\"everyone\"]\n",
    )
    .unwrap();
    let ready = reload(&appliance, &notify);
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("reload failed: dns.allow_recursion: \"everyone\" is not a network"),
        "{ready:?}"
    );
    std::fs::write(appliance.config_path(), "[dns\nlisten = 1\n").unwrap();
    let ready = reload(&appliance, &notify);
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("reload failed: config file "),
        "one line, the file named: {ready:?}"
    );

    // Still serving, with the old settings: authoritative answers, no recursion.
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
    let answer = query_udp(appliance.dns_addr(), "example.com.", RecordType::A, None);
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    let log = appliance.log();
    assert!(
        log.contains("reload failed; the running configuration stays"),
        "{log}"
    );

    // A valid file that changes a key only a restart applies: named in a warning, and
    // the node keeps serving. (The harness pins the listen addresses with flags.)
    std::fs::write(
        appliance.config_path(),
        format!("{config}\n[sync]\nhistory_entries = 10\n"),
    )
    .unwrap();
    let ready = reload(&appliance, &notify);
    assert_eq!(
        field(&ready, "STATUS"),
        Some(
            format!(
                "serving dns on {} (restart to apply: sync.history_entries)",
                appliance.dns_addr()
            )
            .as_str()
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || appliance
            .log()
            .contains("keys=sync.history_entries")),
        "the restart-only keys are named\n{}",
        appliance.log_tail()
    );
    assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
}

#[test]
fn sighup_changes_the_log_filter_set_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind();
    let config = format!("log = \"warn\"\n{}", outpost_tests::authoritative_config());
    let log_path = dir.path().join("outpost.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = serve_command(dir.path(), &config, allow_root_flag())
        .env("NOTIFY_SOCKET", notify.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    notify.expect_line("READY=1");
    let before = std::fs::read_to_string(&log_path).unwrap();
    assert!(!before.contains(" INFO "), "warn and worse only:\n{before}");

    std::fs::write(
        dir.path().join("outpost.toml"),
        config.replace("log = \"warn\"", "log = \"info\""),
    )
    .unwrap();
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    notify.expect_line("RELOADING=1");
    notify.expect_line("READY=1");
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let after = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        after.contains("log filter changed from=warn to=info"),
        "{after}"
    );
    assert!(
        after.contains(" INFO outpost_appliance::node: stopped"),
        "{after}"
    );
}

#[test]
fn serve_refuses_root_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = outpost_tests::authoritative_config();
    if !nix::unistd::geteuid().is_root() {
        // Not root: nothing to refuse, and the harness passes no --allow-root.
        assert!(allow_root_flag().is_empty());
        let appliance = Appliance::start(&config);
        assert_eq!(appliance.a_records("www.example.internal."), ["10.0.0.10"]);
        return;
    }

    let output = serve_command(dir.path(), &config, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started as root\n{stderr}");
    assert!(
        stderr.contains("error: refusing to run as root")
            && stderr.contains("CAP_NET_BIND_SERVICE")
            && stderr.contains("--allow-root"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching the data directory"
    );

    // `allow_root = true` in the file does what --allow-root does.
    let mut child = serve_command(dir.path(), &format!("allow_root = true\n{config}"), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addresses = dir.path().join("data").join("addresses.json");
    let started = wait_until(READY_DEADLINE, || addresses.exists());
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "allow_root = true did not start");
}

#[test]
fn lite_reads_its_token_from_a_file_and_wants_exactly_one_source() {
    let appliance = Appliance::start(&outpost_tests::default_config());
    let token = create_lite_token(&appliance, "file-laptop", "example.internal.");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // As systemd's LoadCredential hands it over: with a trailing newline.
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(lite_bin());
        command
            .arg("run")
            .arg("--appliance")
            .arg(sync_url(&appliance))
            .args(["--dns", "127.0.0.1:0", "--upstream", &unused_upstream()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .env_remove("OUTPOST_LITE_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    };

    let file = token_file.to_str().unwrap();
    let output = run(&["--token", &token, "--token-file", file])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("use exactly one of --token, --token-file and OUTPOST_LITE_TOKEN"),
        "{stderr}"
    );
    let output = run(&[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no Lite token"), "{stderr}");

    let mut child = run(&["--token-file", file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = || {
        let output = Command::new(lite_bin())
            .args(["status", "--json", "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap_or_default()
    };
    let synced = wait_until(outpost_tests::lite::SYNC_DEADLINE, || {
        status()["state"] == "Synced"
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        synced,
        "never synced with the token from the file: {}",
        status()
    );
}
