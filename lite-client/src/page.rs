//! The Lite client's own page, on loopback only (`--page`, default [`DEFAULT_PAGE`]):
//! - `GET /`: what a person reads: the sync state, the appliance, cursor and lag, the
//!   last contact and change, the replica's zones, the plugins, the newest queries;
//!   it refreshes itself every 5 s and needs no script;
//! - `GET /status.json`: the same document `outpost-lite status --json` reads;
//! - `GET /querylog`: this client's recent queries (`?limit=N`), as the appliance's
//!   `/v1/querylog` lists them;
//! - `GET /metrics`: Prometheus text: the DNS counters (answers, cache) and the sync
//!   state (cursor, head, lag, replica size, seconds since the last contact).
//!
//! HTTP/1.1 at its smallest: one request per connection, its head read within
//! [`PAGE_REQUEST_TIMEOUT`] and at most [`MAX_REQUEST_HEAD`] bytes, GET only, answered
//! and closed. At most [`MAX_PAGE_CONNECTIONS`] at once; one past it is closed.
//! **Invariant:** only a loopback address is ever bound (the config refuses others):
//! the query log never leaves the laptop.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::replica::LiveState;
use hickory_proto::rr::RData;
use outpost_dns::metrics::{Metrics, write_sample};
use outpost_dns::querylog::{Filter, QueryLog, Record};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::status::{DocsStatus, StatusBoard, StatusFile, SyncState, unix_now, with_zone_names};

/// Default address of the page: loopback, beside the client's DNS.
pub const DEFAULT_PAGE: &str = "127.0.0.1:5380";
/// Connections served at once.
pub const MAX_PAGE_CONNECTIONS: usize = 16;
/// How long a request's head may take to arrive, and its answer to be written.
pub const PAGE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a request's head (request line and headers) may take.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Queries the page lists, and `/querylog` returns by default.
pub const PAGE_QUERIES: usize = 50;

/// What the page shows.
pub struct Page {
    pub board: Arc<StatusBoard>,
    pub published: LiveState,
    pub log: Arc<QueryLog>,
    pub metrics: Arc<Metrics>,
}

/// Serves the page on `listener` until `shutdown`.
pub fn spawn(
    listener: TcpListener,
    page: Arc<Page>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(MAX_PAGE_CONNECTIONS));
    let connections = tracker.clone();
    // The bound port, which a Host header must name.
    let port = listener.local_addr().map_or(0, |addr| addr.port());
    tracker.spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "page accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => return,
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let page = Arc::clone(&page);
            connections.spawn(async move {
                let _ =
                    tokio::time::timeout(PAGE_REQUEST_TIMEOUT, serve(stream, &page, port)).await;
                drop(slot);
            });
        }
    });
}

/// Reads one request head and answers it.
async fn serve(mut stream: TcpStream, page: &Page, port: u16) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    loop {
        // Only the new bytes (and the three before them) can complete the blank line.
        let from = head.len().saturating_sub(3);
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
        if head[from..].windows(4).any(|end| end == b"\r\n\r\n") {
            break;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return respond(&mut stream, 431, "text/plain", "request head too large\n").await;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut stream, 405, "text/plain", "only GET\n").await;
    }
    // DNS rebinding: a web page whose name now points at 127.0.0.1 would reach the page
    // from its own origin; its Host header still names it, so only ours is answered.
    let host = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("host").then(|| value.trim())
    });
    if !host.is_some_and(|host| is_our_host(host, port)) {
        return respond(
            &mut stream,
            421,
            "text/plain",
            "ask for this page as 127.0.0.1, [::1] or localhost\n",
        )
        .await;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" => respond(&mut stream, 200, "text/html; charset=utf-8", &page.html()).await,
        "/status.json" => {
            let json = serde_json::to_string_pretty(&page.status()).unwrap_or_default();
            respond(&mut stream, 200, "application/json", &json).await
        }
        "/querylog" => {
            let limit = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("limit="))
                .and_then(|limit| limit.parse().ok())
                .unwrap_or(PAGE_QUERIES);
            let records = page.queries(limit);
            let json = serde_json::json!({ "records": records }).to_string();
            respond(&mut stream, 200, "application/json", &json).await
        }
        "/metrics" => {
            let text = page.metrics_text();
            respond(&mut stream, 200, "text/plain; version=0.0.4", &text).await
        }
        _ => respond(&mut stream, 404, "text/plain", "no such page\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        _ => "Request Header Fields Too Large",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    // What the client still sends is read and dropped, briefly: closing with unread
    // input would reset the connection and could lose the answer.
    let mut sink = [0u8; 1024];
    let drain = async {
        let mut left = MAX_REQUEST_HEAD * 8;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
    Ok(())
}

/// Whether a Host header names this page: a loopback name, and its `port`.
fn is_our_host(host: &str, port: u16) -> bool {
    let Some((name, given)) = host.rsplit_once(':') else {
        return false;
    };
    given.parse() == Ok(port) && matches!(name, "127.0.0.1" | "[::1]" | "localhost")
}

impl Page {
    fn status(&self) -> StatusFile {
        // The digest is the status file's business (it is costly); the page leaves it out.
        with_zone_names(self.board.to_file(None), &self.published.state.view)
    }

    fn queries(&self, limit: usize) -> Vec<Record> {
        self.log
            .search(&Filter {
                limit,
                ..Filter::default()
            })
            .records
    }

    /// The replica's zones: origin, records, serial.
    fn zones(&self) -> Vec<(String, usize, u32)> {
        let state = self.published.state.load();
        state
            .zones
            .iter()
            .map(|zone| {
                let serial = match zone.soa().map(|soa| soa.data) {
                    Some(RData::SOA(soa)) => soa.serial,
                    _ => 0,
                };
                (zone.origin().to_ascii(), zone.record_count(), serial)
            })
            .collect()
    }

    fn html(&self) -> String {
        let status = self.status();
        let now = unix_now();
        let ago = |at: Option<u64>| {
            at.map_or_else(
                || "never (this run)".to_owned(),
                |at| format!("{} s ago", now.saturating_sub(at)),
            )
        };
        let number = |value: Option<u64>| value.map_or_else(|| "–".to_owned(), |v| v.to_string());
        let mut out = String::from(PAGE_HEAD);
        let _ = write!(
            out,
            "<h1>outpost-lite: {}</h1><dl>\
             <dt>Appliance</dt><dd>{}</dd>\
             <dt>Cursor</dt><dd>{} (head {}, lag {})</dd>\
             <dt>Last contact</dt><dd>{}</dd>\
             <dt>Last change</dt><dd>{}</dd>\
             <dt>DNS</dt><dd>{}</dd>",
            status.state,
            escape(status.appliance.as_deref().unwrap_or("none yet")),
            number(status.cursor),
            number(status.head),
            number(status.lag),
            ago(status.last_contact_unix),
            ago(status.last_change_unix),
            escape(&status.dns),
        );
        if let Some(error) = &status.error {
            let _ = write!(out, "<dt>Error</dt><dd>{}</dd>", escape(error));
        }
        out.push_str("</dl>");
        if status.state != SyncState::Synced {
            out.push_str("<p>Answers come from the local replica in every state.</p>");
        }
        out.push_str("<h2>Zones</h2><table><thead><tr><th scope=col>Zone</th><th scope=col>Records</th><th scope=col>Serial</th></tr></thead><tbody>");
        for (origin, records, serial) in self.zones() {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{records}</td><td>{serial}</td></tr>",
                escape(&origin)
            );
        }
        out.push_str("</tbody></table>");
        if !status.plugins.is_empty() {
            out.push_str("<h2>Plugins</h2><ul>");
            for plugin in &status.plugins {
                let _ = write!(
                    out,
                    "<li>{} ({}, version {}): {}</li>",
                    escape(&plugin.name),
                    escape(&plugin.hook),
                    plugin.version,
                    escape(&plugin.state.to_string())
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("<h2>Recent queries</h2><table id=log><thead><tr><th scope=col>Time</th><th scope=col>Client</th><th scope=col>Name</th><th scope=col>Type</th><th scope=col>Rcode</th><th scope=col>Answered by</th></tr></thead><tbody>");
        for record in self.queries(PAGE_QUERIES) {
            let source = match (&record.plugin, record.verdict) {
                (Some(plugin), Some(verdict)) => format!("{verdict:?} by {plugin}").to_lowercase(),
                _ => record.source.to_owned(),
            };
            let _ = write!(
                out,
                "<tr><td>{} s ago</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                now.saturating_sub(record.time_ms / 1000),
                record.client,
                escape(&record.name),
                escape(&record.qtype),
                escape(&record.rcode),
                escape(&source),
            );
        }
        out.push_str("</tbody></table></main></body></html>\n");
        out
    }

    /// Prometheus text: the DNS counters and the sync state.
    pub(crate) fn metrics_text(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        let status = self.status();
        let sample = |out: &mut String, name: &str, help: &str, value: Option<u64>| {
            if let Some(value) = value {
                write_sample(out, name, "gauge", help, value);
            }
        };
        let state = |wanted: SyncState| u64::from(status.state == wanted);
        for (name, wanted) in [
            ("disconnected", SyncState::Disconnected),
            ("connecting", SyncState::Connecting),
            ("syncing", SyncState::Syncing),
            ("synced", SyncState::Synced),
            ("stale", SyncState::Stale),
        ] {
            sample(
                &mut out,
                &format!("outpost_lite_state_{name}"),
                "1 when the sync state is this one.",
                Some(state(wanted)),
            );
        }
        sample(
            &mut out,
            "outpost_lite_cursor",
            "The replica's stored cursor (a log index of the cluster).",
            status.cursor,
        );
        sample(
            &mut out,
            "outpost_lite_head",
            "The latest head the appliance announced.",
            status.head,
        );
        sample(
            &mut out,
            "outpost_lite_lag",
            "Entries the replica is behind the announced head.",
            status.lag,
        );
        sample(
            &mut out,
            "outpost_lite_zones",
            "Zones in the replica.",
            Some(status.zones as u64),
        );
        sample(
            &mut out,
            "outpost_lite_records",
            "Records in the replica.",
            Some(status.records as u64),
        );
        sample(
            &mut out,
            "outpost_lite_last_contact_age_seconds",
            "Seconds since the last frame from an appliance (this run).",
            status
                .last_contact_unix
                .map(|at| unix_now().saturating_sub(at)),
        );
        if let Some(docs) = &status.docs {
            write_docs_samples(&mut out, docs);
        }
        out
    }
}

/// The `--docs` path's samples: its state, head, peers and what it refused.
fn write_docs_samples(out: &mut String, docs: &DocsStatus) {
    for (name, kind, help, value) in [
        (
            "outpost_lite_docs_synced",
            "gauge",
            "1 when a peer of the export synced within 15 s and a snapshot was taken.",
            u64::from(docs.state == "Synced"),
        ),
        (
            "outpost_lite_docs_head",
            "gauge",
            "The index of the last whole snapshot the export gave (0: none yet).",
            docs.head,
        ),
        (
            "outpost_lite_docs_neighbors",
            "gauge",
            "Peers in the export document's swarm now.",
            docs.neighbors as u64,
        ),
        (
            "outpost_lite_docs_foreign_entries_total",
            "counter",
            "Entries of the export not signed by the cluster's author, ignored.",
            docs.foreign_entries,
        ),
        (
            "outpost_lite_docs_bad_heads_total",
            "counter",
            "Heads of the cluster's author that could not be read.",
            docs.bad_heads,
        ),
    ] {
        write_sample(out, name, kind, help, value);
    }
    if let Some(at) = docs.last_sync_unix {
        let help = "Seconds since a peer of the export last synced with this one.";
        let age = unix_now().saturating_sub(at);
        write_sample(
            out,
            "outpost_lite_docs_last_sync_age_seconds",
            "gauge",
            help,
            age,
        );
    }
}

const PAGE_HEAD: &str = "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=refresh content=5><title>outpost-lite</title><style>\
body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24}main{max-width:60rem;margin:0 auto;padding:1rem}\
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}\
dt{color:#57606a}dd{margin:0}table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de}th{background:#f6f8fa}\
</style></head><body><main>";

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
