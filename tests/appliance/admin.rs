//! The ways a test talks to a running appliance as its users do: the `outpost` CLI,
//! the admin API over HTTP, and `/metrics`.

use std::process::{Command, Output, Stdio};

use super::{Appliance, outpost_bin};

impl Appliance {
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

    pub(super) fn http(
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
