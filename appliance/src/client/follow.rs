//! `outpost zone follow|unfollow|follows`: zones the cluster follows from external
//! primaries (`docs/transfers.md`).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;

use super::api::{Api, path_segment};
use super::table::write_table;
use crate::admin::body::IndexBody;
use crate::admin::follow::FollowSummary;

/// `zone follow ORIGIN --primary IP[:PORT]... [--tsig NAME:ALG:SECRET]`.
pub(super) fn follow(
    api: &Api,
    origin: &str,
    primaries: &[String],
    tsig: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let body = json!({ "origin": origin, "primaries": primaries, "tsig": tsig });
    let written: IndexBody = api.send_json("POST", "/v1/follows", &body)?;
    writeln!(
        out,
        "following {origin} from {} (index {}); the leader transfers it now",
        primaries.join(", "),
        written.index
    )
    .context("writing to stdout")
}

/// `zone unfollow ORIGIN [--keep-data]`.
pub(super) fn unfollow(
    api: &Api,
    origin: &str,
    keep_data: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let path = format!("/v1/follows/{}", path_segment(origin));
    let keep = if keep_data { "true" } else { "false" };
    let written: IndexBody = api.delete(&path, &[("keep_data", keep)])?;
    let what = if keep_data {
        "its data stays as a zone written here"
    } else {
        "its data is deleted"
    };
    writeln!(
        out,
        "stopped following {origin}: {what} (index {})",
        written.index
    )
    .context("writing to stdout")
}

/// `zone follows`: each followed zone, its primaries and how its last refresh went.
pub(super) fn list(api: &Api, out: &mut dyn Write) -> anyhow::Result<()> {
    let follows: Vec<FollowSummary> = api.get_json("/v1/follows")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let rows: Vec<[String; 4]> = follows
        .into_iter()
        .map(|zone| {
            let primaries = (zone.primaries.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(",");
            let refreshed = match zone.refreshed_unix {
                Some(at) => format!("{}s ago", now.saturating_sub(at)),
                None => "never".into(),
            };
            let state = match (zone.expired, zone.refreshed_unix, &zone.last_error) {
                (true, _, error) => format!("EXPIRED: {}", error.as_deref().unwrap_or("")),
                (false, None, None) => "waiting for the first transfer".into(),
                (false, None, Some(error)) => format!("no transfer yet: {error}"),
                (false, Some(_), Some(error)) => format!("retrying: {error}"),
                (false, Some(_), None) => "current".into(),
            };
            [zone.origin, primaries, refreshed, state]
        })
        .collect();
    write_table(out, ["ORIGIN", "PRIMARIES", "REFRESHED", "STATE"], &rows)
        .context("writing to stdout")
}
