//! `/v1/querylog` and `/v1/querylog/stats`: what this node's DNS clients asked, from its
//! in-memory query log (`outpost_dns::querylog`). Every node keeps its own; nothing is
//! replicated.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use hickory_proto::rr::RecordType;
use outpost_dns::querylog::aggregate::{HISTORY_MINUTES, Stats};
use outpost_dns::querylog::{self, Filter, QueryLog, Record};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{ApiError, QueryParams};

/// Records a search returns when it does not say.
const DEFAULT_LIMIT: usize = 100;

/// `GET /v1/querylog`'s parameters; every one given must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Only records after this sequence number (the live tail's cursor).
    after: Option<u64>,
    client: Option<String>,
    /// A part of the name.
    name: Option<String>,
    #[serde(rename = "type")]
    qtype: Option<String>,
    rcode: Option<String>,
    /// `zone`, `cache`, `upstream`, `plugin`, `refused`, `rate-limited`, `early`, or a
    /// plugin's verdict: `block`, `answer`, `redirect`, `fail`.
    source: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct Found {
    /// `all`, `blocked-or-failed` or `off`.
    mode: querylog::Mode,
    capacity: usize,
    anonymize_clients: bool,
    /// Newest first.
    records: Vec<Record>,
    /// Ask `after` this next to see only what came since (the live tail).
    cursor: u64,
}

const SOURCES: [&str; 11] = [
    "zone",
    "cache",
    "upstream",
    "plugin",
    "refused",
    "rate-limited",
    "early",
    "block",
    "answer",
    "redirect",
    "fail",
];

pub async fn search(
    State(state): State<Arc<AdminState>>,
    QueryParams(search): QueryParams<Search>,
) -> Result<Json<Found>, ApiError> {
    search_in(log(&state)?, search).map(Json)
}

/// A search of `log` (a member's or a satellite's).
pub fn search_in(log: &QueryLog, search: Search) -> Result<Found, ApiError> {
    let filter = filter(search)?;
    let settings = log.settings();
    let found = log.search(&filter);
    Ok(Found {
        mode: settings.mode,
        capacity: settings.capacity,
        anonymize_clients: settings.anonymize_clients,
        records: found.records,
        cursor: found.cursor,
    })
}

/// `GET /v1/querylog/stats`'s parameter: the window, `1h` (default), `24h`, or minutes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    window: Option<String>,
}

pub async fn stats(
    State(state): State<Arc<AdminState>>,
    QueryParams(window): QueryParams<Window>,
) -> Result<Json<Stats>, ApiError> {
    stats_of(log(&state)?, window).map(Json)
}

/// The aggregates of `log` over the window asked (a member's or a satellite's).
pub fn stats_of(log: &QueryLog, window: Window) -> Result<Stats, ApiError> {
    let minutes = match window.window.as_deref() {
        None | Some("1h") => 60,
        Some("24h") => HISTORY_MINUTES,
        Some(other) => other
            .parse::<u64>()
            .ok()
            .filter(|minutes| (1..=HISTORY_MINUTES).contains(minutes))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "window {other:?} is not 1h, 24h or a number of minutes (1 to {HISTORY_MINUTES})"
                ))
            })?,
    };
    Ok(log.stats(minutes))
}

fn log(state: &AdminState) -> Result<&Arc<QueryLog>, ApiError> {
    state
        .query_log
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this node keeps no query log".to_owned()))
}

/// The search's parameters, checked; a wrong one names itself.
fn filter(search: Search) -> Result<Filter, ApiError> {
    let bad = |key: &str, value: &str, expected: &str| {
        ApiError::BadRequest(format!("{key} {value:?} is not {expected}"))
    };
    let client = search
        .client
        .map(|client| {
            IpAddr::from_str(&client).map_err(|_| bad("client", &client, "an IP address"))
        })
        .transpose()?;
    let qtype = search
        .qtype
        .map(|qtype| {
            RecordType::from_str(&qtype.to_ascii_uppercase())
                .map_err(|_| bad("type", &qtype, "a record type (A, AAAA, MX, ...)"))
        })
        .transpose()?;
    let rcode = search
        .rcode
        .map(|rcode| {
            querylog::parse_rcode(&rcode).ok_or_else(|| {
                bad(
                    "rcode",
                    &rcode,
                    "an rcode (NOERROR, NXDOMAIN, SERVFAIL, ...)",
                )
            })
        })
        .transpose()?;
    if let Some(source) = &search.source
        && !SOURCES.contains(&source.as_str())
    {
        return Err(bad(
            "source",
            source,
            &format!("one of {}", SOURCES.join(", ")),
        ));
    }
    let limit = search.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=querylog::MAX_SEARCH_RESULTS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range (1 to {})",
            querylog::MAX_SEARCH_RESULTS
        )));
    }
    Ok(Filter {
        after: search.after,
        client,
        name: search.name.map(|name| name.to_ascii_lowercase()),
        qtype,
        rcode,
        source: search.source,
        limit,
    })
}
