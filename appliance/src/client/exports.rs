//! `outpost export create|list|ticket|rm`: the iroh-docs exports of `/v1/exports`.

use std::io::Write;

use anyhow::Context as _;
use serde_json::json;

use super::api::{Api, path_segment};
use super::table::write_table;
use crate::admin::body::{ExportBody, RemovedExport};

#[derive(clap::Subcommand, Debug)]
pub enum ExportCommand {
    /// Export zones (and every plugin definition) as a signed iroh-docs document; prints
    /// its read-only ticket on the last line
    Create {
        /// Name of the export, like field-kit (a-z, 0-9, '-' and '.')
        #[arg(long)]
        name: String,
        /// Zones it carries, comma-separated: site.internal.,lab.internal.
        #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
        zones: Vec<String>,
    },
    /// List the exports and their zones
    List,
    /// Print an export's read-only ticket, naming the node asked first, then every other
    /// node that serves exports
    Ticket { name: String },
    /// Remove an export: no node writes or serves its document any more
    Rm { name: String },
}

/// Runs `command`, writing what it prints to `out`.
pub fn run(api: &Api, command: ExportCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        ExportCommand::Create { name, zones } => {
            let zones: Vec<String> = zones
                .iter()
                .map(|zone| zone.trim().to_string())
                .filter(|zone| !zone.is_empty())
                .collect();
            let body = json!({ "name": name, "zones": zones });
            let created: ExportBody = api.send_json("POST", "/v1/exports", &body)?;
            writeln!(
                out,
                "created export {} of {} (index {})",
                created.name,
                created.zones.join(", "),
                created.index.unwrap_or_default()
            )
            .context("writing to stdout")?;
            write_ticket(out, &created)
        }
        ExportCommand::List => {
            let exports: Vec<ExportBody> = api.get_json("/v1/exports")?;
            let rows: Vec<[String; 2]> = exports
                .into_iter()
                .map(|export| [export.name, export.zones.join(",")])
                .collect();
            write_table(out, ["NAME", "ZONES"], &rows).context("writing to stdout")
        }
        ExportCommand::Ticket { name } => {
            let export: ExportBody =
                api.get_json(&format!("/v1/exports/{}", path_segment(&name)))?;
            write_ticket(out, &export)
        }
        ExportCommand::Rm { name } => {
            let removed: RemovedExport =
                api.delete(&format!("/v1/exports/{}", path_segment(&name)), &[])?;
            writeln!(
                out,
                "removed export {name} (index {}); no node of the cluster writes or serves it any more (satellites and Lite clients keep the copy they hold)",
                removed.index
            )
            .context("writing to stdout")
        }
    }
}

fn write_ticket(out: &mut dyn Write, export: &ExportBody) -> anyhow::Result<()> {
    match &export.ticket {
        Some(ticket) => {
            writeln!(
                out,
                "read-only ticket (for outpost serve --satellite or outpost-lite run --docs):"
            )
            .context("writing to stdout")?;
            writeln!(out, "{ticket}").context("writing to stdout")
        }
        None => anyhow::bail!(
            "{}",
            export
                .ticket_unavailable
                .as_deref()
                .unwrap_or("this node gives no ticket")
        ),
    }
}
