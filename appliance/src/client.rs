//! The admin subcommands of `outpost` (`zone …`, `record …`, `lite-token …`, `plugin …`,
//! `status`): blocking calls to the admin API of a running appliance, with tables for
//! people and errors that say what to do.
//!
//! # Layout
//! - [`api`]: the HTTP client, token lookup and error messages.
//! - [`table`]: aligned columns for the list commands.
//! - [`progress`]: upload progress of large imports, on stderr.
//! - [`tokens`]: `lite-token create|list|revoke`.
//! - [`plugins`]: `plugin install|list|rm`.
//! - [`cluster`]: `cluster invite|status|remove`.
//!
//! **Boundary:** the JSON bodies read here mirror those of [`crate::admin`]; they are
//! declared again on purpose, so that the CLI reads only the fields it prints.

mod api;
mod cluster;
mod exports;
mod follow;
mod plugins;
mod progress;
mod table;
mod tokens;

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;

pub use self::api::Connection;
use self::api::{Api, path_segment};
use self::progress::{PROGRESS_MIN_BYTES, Progress, human_bytes};
use self::table::write_table;
use crate::admin::body::{
    CreatedZone, ImportedZone, IndexBody, RecordBody, RecordsWritten, StatusBody, ZoneSummary,
};

pub use self::cluster::ClusterCommand;
pub use self::exports::ExportCommand;
pub use self::plugins::PluginCommand;
pub use self::tokens::LiteTokenCommand;

#[derive(clap::Subcommand, Debug)]
pub enum ZoneCommand {
    /// Replace a zone (or create it) from a master file, in one atomic write
    Import {
        /// The master file
        file: PathBuf,
        /// Origin of the zone, like site.internal.
        #[arg(long)]
        origin: String,
    },
    /// Print a zone as a master file
    Export { origin: String },
    /// List the zones served
    List,
    /// Create a zone with a default SOA and NS record
    Create { origin: String },
    /// Delete a zone and all its records
    Rm { origin: String },
    /// Follow a zone from an external primary (a secondary zone): the cluster transfers
    /// it by AXFR/IXFR, and it refuses local writes
    Follow {
        origin: String,
        /// The primary, IP or IP:PORT (repeat for several, tried in order)
        #[arg(long = "primary", required = true)]
        primaries: Vec<String>,
        /// TSIG key the transfers are signed with: NAME:ALGORITHM:BASE64-SECRET (the
        /// algorithm hmac-sha256, hmac-sha384 or hmac-sha512)
        #[arg(long)]
        tsig: Option<String>,
    },
    /// Stop following a zone
    Unfollow {
        origin: String,
        /// Keep its data as a zone written here (default: delete it)
        #[arg(long)]
        keep_data: bool,
    },
    /// List the followed zones and how their last refresh went
    Follows,
}

#[derive(clap::Subcommand, Debug)]
pub enum RecordCommand {
    /// Add a record: `outpost record add printer.site.internal. A 10.0.0.7 --ttl 300`
    Add {
        /// Owner name (absolute; a missing final dot is added)
        name: String,
        /// Record type, like A, AAAA, CNAME, MX, TXT
        rtype: String,
        /// Record data as in a master file (quote TXT strings: '"v=spf1 -all"'; put `--`
        /// before data that starts with a dash)
        #[arg(required = true, num_args = 1..)]
        data: Vec<String>,
        /// TTL in seconds (default 3600)
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Delete one record (with data), an RRset (with a type) or every record at a name
    Rm {
        /// Owner name
        name: String,
        /// Record type; without it every record at the name goes
        rtype: Option<String>,
        /// Record data of the one record to delete; without it the whole RRset goes
        data: Vec<String>,
    },
    /// List the records of a zone
    List { zone: String },
}

pub fn zone(connection: &Connection, command: ZoneCommand) -> anyhow::Result<()> {
    run_zone(connection, command, &mut io::stdout().lock())
}

pub fn record(connection: &Connection, command: RecordCommand) -> anyhow::Result<()> {
    run_record(connection, command, &mut io::stdout().lock())
}

pub fn lite_token(connection: &Connection, command: LiteTokenCommand) -> anyhow::Result<()> {
    run_lite_token(connection, command, &mut io::stdout().lock())
}

/// [`lite_token`], writing what it prints to `out`.
fn run_lite_token(
    connection: &Connection,
    command: LiteTokenCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    tokens::run(&Api::connect(connection)?, command, out)
}

pub fn export(connection: &Connection, command: ExportCommand) -> anyhow::Result<()> {
    exports::run(
        &Api::connect(connection)?,
        command,
        &mut io::stdout().lock(),
    )
}

pub fn plugin(connection: &Connection, command: PluginCommand) -> anyhow::Result<()> {
    plugins::run(
        &Api::connect(connection)?,
        command,
        &mut io::stdout().lock(),
    )
}

pub fn cluster(connection: &Connection, command: ClusterCommand) -> anyhow::Result<()> {
    cluster::run(
        &Api::connect(connection)?,
        command,
        &mut io::stdout().lock(),
    )
}

pub fn status(connection: &Connection, json: bool) -> anyhow::Result<()> {
    run_status(connection, json, &mut io::stdout().lock())
}

/// [`zone`], writing what it prints to `out`.
fn run_zone(
    connection: &Connection,
    command: ZoneCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let api = Api::connect(connection)?;
    match command {
        ZoneCommand::Import { file, origin } => import(&api, &file, &origin, out),
        ZoneCommand::Export { origin } => {
            api.get_text(&format!("/v1/zones/{}/export", path_segment(&origin)), out)?;
            out.flush().context("writing to stdout")
        }
        ZoneCommand::List => {
            let zones: Vec<ZoneSummary> = api.get_json("/v1/zones")?;
            let rows: Vec<[String; 3]> = zones
                .into_iter()
                .map(|zone| {
                    [
                        zone.origin,
                        zone.records.to_string(),
                        zone.serial.to_string(),
                    ]
                })
                .collect();
            write_table(out, ["ORIGIN", "RECORDS", "SERIAL"], &rows).context("writing to stdout")
        }
        ZoneCommand::Create { origin } => {
            let created: CreatedZone =
                api.send_json("POST", "/v1/zones", &json!({ "origin": origin }))?;
            writeln!(
                out,
                "created zone {} (index {})",
                created.origin, created.index
            )
            .context("writing to stdout")
        }
        ZoneCommand::Follow {
            origin,
            primaries,
            tsig,
        } => follow::follow(&api, &origin, &primaries, tsig.as_deref(), out),
        ZoneCommand::Unfollow { origin, keep_data } => {
            follow::unfollow(&api, &origin, keep_data, out)
        }
        ZoneCommand::Follows => follow::list(&api, out),
        ZoneCommand::Rm { origin } => {
            let deleted: IndexBody =
                api.delete(&format!("/v1/zones/{}", path_segment(&origin)), &[])?;
            writeln!(out, "deleted zone {origin} (index {})", deleted.index)
                .context("writing to stdout")
        }
    }
}

fn import(
    api: &Api,
    file: &std::path::Path,
    origin: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let opened =
        File::open(file).with_context(|| format!("cannot open zone file {}", file.display()))?;
    let length = opened
        .metadata()
        .with_context(|| format!("cannot read the size of {}", file.display()))?
        .len();
    let path = format!("/v1/zones/{}", path_segment(origin));
    let imported: anyhow::Result<ImportedZone> = if length >= PROGRESS_MIN_BYTES {
        eprintln!("uploading {} ({})", file.display(), human_bytes(length));
        let mut body = Progress::new(opened, length, io::stderr());
        api.put_text(&path, &mut body, length)
    } else {
        let mut body = opened;
        api.put_text(&path, &mut body, length)
    };
    // The server reports "zone file line N: ..."; name the file it is about.
    let imported = imported.map_err(|error| anyhow::anyhow!("{}: {error:#}", file.display()))?;
    writeln!(
        out,
        "imported {} records into {} (index {})",
        imported.records, imported.origin, imported.index
    )
    .context("writing to stdout")
}

/// [`record`], writing what it prints to `out`.
fn run_record(
    connection: &Connection,
    command: RecordCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let api = Api::connect(connection)?;
    match command {
        RecordCommand::Add {
            name,
            rtype,
            data,
            ttl,
        } => {
            let data = data.join(" ");
            let body = json!({ "name": name, "type": rtype, "data": data, "ttl": ttl });
            let added: RecordsWritten = api.send_json("POST", "/v1/records", &body)?;
            writeln!(
                out,
                "added {name} {rtype} {data} to {} (index {})",
                added.zone, added.index
            )
            .context("writing to stdout")
        }
        RecordCommand::Rm { name, rtype, data } => {
            let data = data.join(" ");
            let mut query = vec![("name", name.as_str())];
            if let Some(rtype) = rtype.as_deref() {
                query.push(("type", rtype));
            }
            if !data.is_empty() {
                query.push(("data", data.as_str()));
            }
            let deleted: IndexBody = api.delete("/v1/records", &query)?;
            let what: Vec<&str> = query.iter().map(|(_, value)| *value).collect();
            writeln!(out, "deleted {} (index {})", what.join(" "), deleted.index)
                .context("writing to stdout")
        }
        RecordCommand::List { zone } => {
            let records: Vec<RecordBody> =
                api.get_json(&format!("/v1/zones/{}/records", path_segment(&zone)))?;
            let rows: Vec<[String; 4]> = records
                .into_iter()
                .map(|record| {
                    [
                        record.name,
                        record.ttl.to_string(),
                        record.rtype,
                        record.data,
                    ]
                })
                .collect();
            write_table(out, ["NAME", "TTL", "TYPE", "DATA"], &rows).context("writing to stdout")
        }
    }
}

/// [`status`], writing what it prints to `out`.
fn run_status(connection: &Connection, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let api = Api::connect(connection)?;
    let status: serde_json::Value = api.get_json("/v1/status")?;
    if json {
        return writeln!(out, "{status:#}").context("writing to stdout");
    }
    if status["role"] == "satellite" {
        return write_satellite_status(&status, out);
    }
    let status: StatusBody =
        serde_json::from_value(status).context("the node's status does not parse")?;
    let index =
        |index: Option<u64>| index.map_or_else(|| "-".to_string(), |index| index.to_string());
    let rows = [
        ["node".to_string(), status.node_id.to_string()],
        ["role".to_string(), status.role.to_string()],
        [
            "leader".to_string(),
            status
                .leader
                .map_or_else(|| "unknown".to_string(), |id| format!("node {id}")),
        ],
        ["term".to_string(), status.term.to_string()],
        ["last log index".to_string(), index(status.last_log_index)],
        ["applied index".to_string(), index(status.applied_index)],
        ["zones".to_string(), status.zones.to_string()],
        ["records".to_string(), status.records.to_string()],
        ["version".to_string(), status.version],
    ];
    let pin = status
        .dns_tls_fingerprint
        .map(|pin| ["dns tls pin".to_string(), pin]);
    let export = status.export.map(|export| {
        [
            "export".to_string(),
            format!(
                "{} ({} exports, written at index {})",
                export.endpoint, export.exports, export.written_index
            ),
        ]
    });
    for [key, value] in rows.into_iter().chain(pin).chain(export) {
        writeln!(out, "{:<15} {value}", format!("{key}:")).context("writing to stdout")?;
    }
    Ok(())
}

/// A satellite's status: the export it follows, over which peers, and its replica.
fn write_satellite_status(status: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let replica = &status["satellite"];
    let docs = &replica["docs"];
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let rows = [
        ("role", "satellite (read-only; takes no writes)".to_string()),
        ("export", text(&status["export"])),
        ("state", text(&docs["state"])),
        ("head index", text(&docs["head"])),
        ("applied index", text(&replica["cursor"])),
        ("peers", text(&docs["neighbors"])),
        ("last sync", text(&docs["last_sync_unix"])),
        ("last change", text(&replica["last_change_unix"])),
        (
            "foreign",
            format!("{} entries ignored", text(&docs["foreign_entries"])),
        ),
        ("endpoint", text(&docs["endpoint"])),
        ("zones", text(&replica["zones"])),
        ("records", text(&replica["records"])),
    ];
    for (key, value) in rows {
        writeln!(out, "{:<15} {value}", format!("{key}:")).context("writing to stdout")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
