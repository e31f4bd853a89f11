//! The running appliance as the bench sees it: where it listens (`addresses.json`),
//! its admin API (blocking ureq; call it from `spawn_blocking`), and its memory.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use ureq::Agent;

/// Written by `outpost serve` once it listens.
const ADDRESSES_FILE: &str = "addresses.json";
/// The admin bearer token `outpost serve` writes into its data directory.
const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Longest wait for one admin request; a 10,000-record import takes well under a
/// second on loopback, so a minute means the appliance is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The appliance's listeners and process, from `<data-dir>/addresses.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Addresses {
    pub admin: SocketAddr,
    /// Absent before the sync server existed; the bench needs it.
    pub sync: Option<SocketAddr>,
    pub pid: u32,
}

impl Addresses {
    pub fn read(data_dir: &Path) -> anyhow::Result<Addresses> {
        let path = data_dir.join(ADDRESSES_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is outpost serve running with this --data-dir?)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not what outpost serve writes", path.display()))
    }

    /// The sync listener, or why there is none.
    pub fn sync(&self) -> anyhow::Result<SocketAddr> {
        self.sync.ok_or_else(|| {
            anyhow!(
                "addresses.json has no \"sync\" entry (does this outpost serve the Lite sync endpoint? start it with --sync ADDR)"
            )
        })
    }
}

/// The admin API at one address, with the bearer token.
pub struct Admin {
    agent: Agent,
    base: String,
    bearer: String,
}

/// What a write returned, and when it was sent and answered.
#[derive(Debug, Clone, Copy)]
pub struct Write {
    /// The Raft log index the API returned.
    pub index: u64,
    /// Just before the request was sent.
    pub sent: Instant,
    /// When the answer was read.
    pub answered: Instant,
}

#[derive(Deserialize)]
struct Indexed {
    index: u64,
}

impl Admin {
    /// The admin API at `admin`, with the token from `<data_dir>/admin.token`.
    pub fn new(admin: SocketAddr, data_dir: &Path) -> anyhow::Result<Admin> {
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the admin token {}", path.display()))?;
        let agent = Agent::config_builder()
            // Read the server's JSON message on errors instead of a bare status.
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        Ok(Admin {
            agent,
            base: format!("http://{admin}"),
            bearer: format!("Bearer {}", token.trim()),
        })
    }

    /// `POST /v1/records`: adds one record.
    pub fn add_record(&self, name: &str, rtype: &str, data: &str) -> anyhow::Result<Write> {
        let body = serde_json::json!({ "name": name, "type": rtype, "data": data, "ttl": 60 });
        let sent = Instant::now();
        let response = self
            .agent
            .post(format!("{}/v1/records", self.base))
            .header("Authorization", &self.bearer)
            .send_json(&body);
        let written: Indexed = read_answer(response, "POST /v1/records")?;
        Ok(Write {
            index: written.index,
            sent,
            answered: Instant::now(),
        })
    }

    /// `PUT /v1/zones/{origin}`: replaces the zone with a master file. Returns the
    /// write and the number of records the appliance parsed.
    pub fn import_zone(&self, origin: &str, text: &str) -> anyhow::Result<(Write, usize)> {
        #[derive(Deserialize)]
        struct Imported {
            index: u64,
            records: usize,
        }
        let sent = Instant::now();
        let response = self
            .agent
            .put(format!("{}/v1/zones/{origin}", self.base))
            .header("Authorization", &self.bearer)
            .content_type("text/plain; charset=utf-8")
            .send(text);
        let imported: Imported = read_answer(response, "PUT /v1/zones")?;
        let write = Write {
            index: imported.index,
            sent,
            answered: Instant::now(),
        };
        Ok((write, imported.records))
    }

    /// `POST {path}` with a JSON body: the JSON answer.
    pub fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.bearer)
            .send_json(body);
        read_answer(response, &format!("POST {path}"))
    }

    /// `GET {path}` (like `/v1/status`): the JSON answer.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.bearer)
            .call();
        read_answer(response, &format!("GET {path}"))
    }
}

/// The JSON of a 2xx answer; otherwise the status and the server's message.
fn read_answer<T: DeserializeOwned>(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> anyhow::Result<T> {
    let mut response = response.with_context(|| format!("{what}: no answer"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("{what}: cannot read the answer"))?;
    if !status.is_success() {
        bail!("{what} answered {status}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{what} answered {body:?}"))
}

/// Resident and peak resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The anonymous part of the resident memory (heap, stacks): what the process
    /// allocated, as opposed to mapped files.
    pub anon_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {path} (has the process exited?)"))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| anyhow!("{path} has no {name} line"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            anon_kib: field("RssAnon:")?,
        })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {} (anonymous {})  VmHWM {}",
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.hwm_kib)
        )
    }
}

/// User plus system CPU time a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    /// Linux reports these times in USER_HZ, 100 a second on every architecture.
    const TICKS_PER_SECOND: u64 = 100;
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces; the fields after it do not. utime and stime
    // are fields 14 and 15, the 12th and 13th after the name.
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |at: usize| -> anyhow::Result<u64> {
        fields
            .get(at)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| anyhow!("{path} has no CPU time field {}", at + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// `kib` in MiB with one decimal, for the report.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
