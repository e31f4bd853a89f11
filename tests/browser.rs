//! A real headless Chromium driven through ChromeDriver's WebDriver API (W3C), for the
//! console's browser tests: Debian's `chromium` and `chromium-driver`, which
//! `scripts/test.sh` installs.
//!
//! The client is the WebDriver protocol itself over HTTP (`ureq`), a few calls: open a
//! page, find an element by CSS, click, type, read text, run a script, take a screenshot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::wait_until;

/// The W3C name of the key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a test waits for something to appear on a page.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A ChromeDriver process with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and a headless Chromium with an empty
    /// profile and the flags that keep it off the network.
    pub fn start() -> Browser {
        let (driver, lines, port) = start_driver();
        // Keep reading what it prints: a closed pipe would end it at its next line.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut lines.into_inner(), &mut std::io::sink());
        });
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let created = post(&base, "/session", &capabilities);
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            driver,
            session,
            base,
            _profile: profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        post(&self.base, &self.url(path), body)
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{}", self.base, self.url(path));
        let mut response = ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("webdriver GET");
        let body: Value = response.body_mut().read_json().expect("webdriver JSON");
        body["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", &json!({ "script": script, "args": args }))
    }

    /// Runs an async `script`: its last argument is the callback that returns.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", &json!({ "script": script, "args": args }))
    }

    /// The first element `css` selects, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let found = self.post(
            "/element",
            &json!({ "using": "css selector", "value": css }),
        );
        found[ELEMENT_KEY].as_str().map(str::to_string)
    }

    /// The first element `css` selects, waiting for it to appear.
    pub fn wait_for(&self, css: &str) -> String {
        let mut found = None;
        wait_until(PATIENCE, || {
            found = self.find(css);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("nothing matches {css} on the page:\n{}", self.page_text()))
    }

    /// Waits until the page's text contains `text`.
    pub fn wait_for_text(&self, text: &str) {
        let appeared = wait_until(PATIENCE, || self.page_text().contains(text));
        assert!(
            appeared,
            "the page never showed {text:?}:\n{}",
            self.page_text()
        );
    }

    pub fn click(&self, css: &str) {
        let element = self.wait_for(css);
        self.post(&format!("/element/{element}/click"), &json!({}));
    }

    /// Types `text` into the element `css` selects, after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css);
        self.post(&format!("/element/{element}/clear"), &json!({}));
        self.post(
            &format!("/element/{element}/value"),
            &json!({ "text": text }),
        );
    }

    /// The visible text of the whole page.
    pub fn page_text(&self) -> String {
        self.execute("return document.body.innerText;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element's visible text.
    pub fn text(&self, css: &str) -> String {
        let element = self.wait_for(css);
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Resizes the window (a phone's is about 390 × 844).
    pub fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", &json!({ "width": width, "height": height }));
    }

    /// Accepts the `confirm()` dialog the page opened (waiting for it).
    pub fn accept_alert(&self) {
        let url = format!("{}{}", self.base, self.url("/alert/accept"));
        let accepted = wait_until(PATIENCE, || {
            ureq::post(&url)
                .config()
                .http_status_as_error(false)
                .build()
                .send_json(json!({}))
                .is_ok_and(|response| response.status().is_success())
        });
        assert!(accepted, "no dialog to accept:\n{}", self.page_text());
    }

    /// The page's cookies, as WebDriver reports them (HttpOnly ones included).
    pub fn cookies(&self) -> Vec<Value> {
        self.get("/cookie").as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.get("/screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        std::fs::write(path, bytes).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = ureq::delete(&url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post(base: &str, path: &str, body: &Value) -> Value {
    let mut response = ureq::post(&format!("{base}{path}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .send_json(body)
        .expect("webdriver POST");
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json().expect("webdriver JSON");
    let value = body["value"].clone();
    // "no such element" is an answer for `find`; every other error is the test's.
    if status >= 400 && value["error"] != "no such element" {
        panic!("webdriver {path} failed ({status}): {value}");
    }
    value
}

/// Where the browser tests put their screenshots: `OUTPOST_SCREENSHOTS` (the docs'
/// folder, to refresh them), or a temporary folder.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("OUTPOST_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("outpost-console-screenshots"),
    }
}

/// axe-core's script, installed from npm by `scripts/test.sh` into `tests/console-tools`.
pub fn axe_script() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("console-tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "read {} ({error}); scripts/test.sh installs it with npm ci",
            path.display()
        )
    })
}

/// The accessibility violations axe-core finds on the page as it is now: each rule's id
/// and the elements that break it.
pub fn accessibility_violations(browser: &Browser, axe: &str) -> Vec<String> {
    browser.execute(axe, json!([]));
    let result = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, { resultTypes: ['violations'] })
            .then((r) => done(r.violations.map((v) =>
                v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ')).join(', '))))
            .catch((e) => done(['axe failed: ' + e]));",
        json!([]),
    );
    result
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec![format!("axe returned {result}")])
}

/// How many times ChromeDriver is started before its start counts as failed. In one cold
/// run of the suite, under its full load, a start ended before naming its port (and 18
/// runs of the console tests alone did not repeat it). Our guess is that with `--port=0`
/// it picks a number and binds it afterwards, racing the suite's own sockets. Each
/// start's output is kept for the failure message, so the next failure says why.
const DRIVER_STARTS: usize = 3;

/// ChromeDriver started, its stdout, and the port it said it listens on.
fn start_driver() -> (Child, BufReader<ChildStdout>, u16) {
    let mut said = Vec::new();
    for _ in 0..DRIVER_STARTS {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/test.sh installs chromium-driver)");
        let stdout = driver.stdout.take().expect("chromedriver's stdout");
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let mut output = String::new();
        while lines.read_line(&mut line).is_ok_and(|read| read > 0) {
            output.push_str(&line);
            let port = line
                .trim_end()
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok());
            if let Some(port) = port {
                return (driver, lines, port);
            }
            line.clear();
        }
        said.push((output, driver.wait()));
    }
    panic!("chromedriver never named its port; each start said, and ended with: {said:?}")
}
