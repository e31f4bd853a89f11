//! A blocking HTTP client of the admin API: finds the token, sends requests, and turns
//! failures into messages that say what to do.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

use crate::admin::TOKEN_FILE_NAME;

/// Environment variable that overrides the token file.
pub const TOKEN_ENV: &str = "OUTPOST_TOKEN";
/// How long to wait for the TCP connection. On loopback or a LAN an answer comes in
/// milliseconds; five seconds is a host that is down or filtered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JSON answer read (a record listing of a large zone is tens of MiB).
const JSON_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;
/// Attempts of one write whose answer was ambiguous (the connection broke after the
/// request went out, or the server said the write "may or may not" have been
/// committed). Every attempt carries the same `Idempotency-Key`, so the cluster applies
/// the write once, however many attempts reach it.
const WRITE_ATTEMPTS: usize = 3;
/// The pause before a write is tried again: about an election.
const WRITE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where the admin API is and where its token lives.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// Address of the admin API (`host:port`)
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:8053",
        env = "OUTPOST_ADMIN"
    )]
    pub admin: String,
    /// Data directory of the appliance, for its admin.token (OUTPOST_TOKEN overrides it)
    #[arg(long, global = true, default_value = "./outpost-data")]
    pub data_dir: PathBuf,
}

/// The admin API at one address, with its token.
pub struct Api {
    agent: Agent,
    /// As given (`127.0.0.1:8053`), for messages.
    address: String,
    /// `http://127.0.0.1:8053`.
    base: String,
    token: String,
}

impl Api {
    pub fn connect(connection: &Connection) -> anyhow::Result<Api> {
        let token = find_token(std::env::var(TOKEN_ENV).ok(), &connection.data_dir)?;
        let config = Agent::config_builder()
            // Error statuses carry our JSON message; read it instead of a bare status.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .build();
        let address = connection.admin.trim().trim_end_matches('/').to_string();
        let base = if address.contains("://") {
            address.clone()
        } else {
            format!("http://{address}")
        };
        Ok(Api {
            agent: config.new_agent(),
            address,
            base,
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .agent
            .get(self.url(path))
            .header("Authorization", self.bearer())
            .call();
        read_json(self.checked(response)?)
    }

    pub fn send_json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let url = self.url(path);
        let response = self.write(|key| {
            let request = match method {
                "POST" => self.agent.post(&url),
                "PUT" => self.agent.put(&url),
                other => return Err(ureq::Error::BadUri(format!("{other} takes no JSON body"))),
            };
            request
                .header("Authorization", self.bearer())
                .header(IDEMPOTENCY_KEY, key)
                .send_json(body)
        })?;
        read_json(response)
    }

    pub fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let url = self.url(path);
        let response = self.write(|key| {
            self.agent
                .delete(&url)
                .header("Authorization", self.bearer())
                .header(IDEMPOTENCY_KEY, key)
                .query_pairs(query.iter().copied())
                .call()
        })?;
        read_json(response)
    }

    /// Sends `body` (of `length` bytes) as text and reads the JSON answer. Sent once (the
    /// body is read as it goes), under an idempotency key all the same.
    pub fn put_text<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &mut dyn Read,
        length: u64,
    ) -> anyhow::Result<T> {
        let response = self
            .agent
            .put(self.url(path))
            .header("Authorization", self.bearer())
            .header(IDEMPOTENCY_KEY, new_idempotency_key()?)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", length.to_string())
            .send(SendBody::from_reader(body));
        read_json(self.checked(response)?)
    }

    /// One write under a fresh idempotency key, sent again (same key) while its answer is
    /// ambiguous, at most [`WRITE_ATTEMPTS`] times.
    fn write(
        &self,
        send: impl Fn(&str) -> Result<Response<Body>, ureq::Error>,
    ) -> anyhow::Result<Response<Body>> {
        let key = new_idempotency_key()?;
        let mut attempt = 1;
        loop {
            let response = send(&key);
            let ambiguous = match &response {
                Err(ureq::Error::Io(_) | ureq::Error::Timeout(_)) => true,
                Ok(answer) => answer.status().as_u16() == 503,
                Err(_) => false,
            };
            if !ambiguous || attempt >= WRITE_ATTEMPTS {
                return self.checked(response);
            }
            let mut response = response;
            if let Ok(answer) = &mut response {
                let text = answer.body_mut().read_to_string().unwrap_or_default();
                let message = server_message(503, &text);
                if !(message.contains("may or may not")
                    || message.contains("may still take effect"))
                {
                    bail!(message);
                }
            }
            attempt += 1;
            std::thread::sleep(WRITE_RETRY_PAUSE);
        }
    }
    /// Copies a text answer to `out` as it arrives.
    pub fn get_text(&self, path: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let response = self
            .agent
            .get(self.url(path))
            .header("Authorization", self.bearer())
            .call();
        let mut response = self.checked(response)?;
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        io::copy(&mut reader, out).context("reading the answer of the admin API")?;
        Ok(())
    }

    /// Passes a success through; turns the rest into the server's message or a hint.
    fn checked(
        &self,
        response: Result<Response<Body>, ureq::Error>,
    ) -> anyhow::Result<Response<Body>> {
        let mut response = response.map_err(|error| self.transport_error(error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Err(anyhow!(server_message(status.as_u16(), &text)))
    }

    fn transport_error(&self, error: ureq::Error) -> anyhow::Error {
        match error {
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_) => anyhow!(
                "cannot reach the admin API at {}: {error} (is outpost serve running? use --admin ADDR)",
                self.address
            ),
            other => anyhow!(
                "request to the admin API at {} failed: {other}",
                self.address
            ),
        }
    }
}

fn read_json<T: DeserializeOwned>(mut response: Response<Body>) -> anyhow::Result<T> {
    response
        .body_mut()
        .with_config()
        .limit(JSON_LIMIT_BYTES)
        .read_json()
        .context("the admin API sent an answer this client cannot read (is it the same version?)")
}

/// The header that makes a write idempotent (`docs`: the admin API, Idempotency).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// 16 random bytes in hex: a key no other write uses.
fn new_idempotency_key() -> anyhow::Result<String> {
    crate::secret_file::random_hex::<16>()
        .map_err(|e| anyhow!("no randomness for an idempotency key: {e}"))
}

/// The `error` of a JSON error body, else the status and the text.
fn server_message(status: u16, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => parsed.error,
        Err(_) if body.trim().is_empty() => format!("the admin API answered status {status}"),
        Err(_) => format!("the admin API answered status {status}: {}", body.trim()),
    }
}

/// `OUTPOST_TOKEN` when set, else `<data_dir>/admin.token`.
fn find_token(from_env: Option<String>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = from_env
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
    {
        return Ok(token);
    }
    let path = data_dir.join(TOKEN_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => bail!(
            "no admin token: {} is empty (set OUTPOST_TOKEN or pass --data-dir of the appliance)",
            path.display()
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => bail!(
            "no admin token: set OUTPOST_TOKEN or pass --data-dir of the appliance ({} does not exist)",
            path.display()
        ),
        Err(error) => {
            Err(error).with_context(|| format!("cannot read the admin token {}", path.display()))
        }
    }
}

/// Percent-encodes one path segment (a zone origin).
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_env_wins_then_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            find_token(Some(" abc \n".into()), dir.path()).unwrap(),
            "abc"
        );
        let missing = find_token(None, dir.path()).unwrap_err().to_string();
        assert!(
            missing.starts_with(
                "no admin token: set OUTPOST_TOKEN or pass --data-dir of the appliance"
            ),
            "{missing}"
        );
        std::fs::write(dir.path().join(TOKEN_FILE_NAME), "def\n").unwrap();
        assert_eq!(find_token(Some(String::new()), dir.path()).unwrap(), "def");
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(404, r#"{"error":"zone a. does not exist"}"#),
            "zone a. does not exist"
        );
        assert_eq!(
            server_message(502, "bad gateway"),
            "the admin API answered status 502: bad gateway"
        );
        assert_eq!(server_message(500, ""), "the admin API answered status 500");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("site.internal."), "site.internal.");
        assert_eq!(path_segment("a\\032b/c"), "a%5C032b%2Fc");
    }

    #[test]
    fn unreachable_admin_api_names_the_address_and_the_fix() {
        // Bind then drop a listener so the port is (very likely) closed.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let connection = Connection {
            admin: address.clone(),
            data_dir: "/nonexistent".into(),
        };
        let api = Api {
            agent: Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
            address: connection.admin.clone(),
            base: format!("http://{address}"),
            token: "t".into(),
        };
        let error = api
            .get_json::<serde_json::Value>("/v1/status")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("cannot reach the admin API at {address}: ")),
            "{error}"
        );
        assert!(
            error.ends_with("(is outpost serve running? use --admin ADDR)"),
            "{error}"
        );
    }
}
