//! `outpost cluster invite|status|remove`: the cluster's membership, through `/v1/cluster`.

use std::io::Write;

use anyhow::Context as _;

use super::api::Api;
use super::table::write_table;
use crate::admin::body::{InviteBody, RemovedBody};
use crate::store::ClusterStatus;

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Make a one-time join ticket; prints it on its last line. Start the new box with
    /// `outpost serve --raft IP:PORT --join TICKET`
    Invite {
        /// Seconds the ticket is good for (1 to 604800)
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Show the nodes, their roles, the leader, term, applied index and lag per node
    Status {
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Retire a node (refused when the voters left would not make a quorum)
    Remove {
        /// The node id, as `outpost cluster status` shows it
        node_id: u64,
    },
}

/// Runs `command`, writing what it prints to `out`.
pub fn run(api: &Api, command: ClusterCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Invite { ttl } => {
            let invite: InviteBody = api.send_json(
                "POST",
                &format!("/v1/cluster/invites?ttl_secs={ttl}"),
                &serde_json::json!({}),
            )?;
            writeln!(
                out,
                "join ticket for one new node, good until unix time {} (it names {}); start the node with --raft IP:PORT --join:",
                invite.expires_unix,
                invite.nodes.join(", ")
            )
            .context("writing to stdout")?;
            writeln!(out, "{}", invite.ticket).context("writing to stdout")
        }
        ClusterCommand::Status { json } => {
            let status: serde_json::Value = api.get_json("/v1/cluster")?;
            if json {
                return writeln!(out, "{status:#}").context("writing to stdout");
            }
            print_status(&status, out)
        }
        ClusterCommand::Remove { node_id } => {
            let removed: RemovedBody = api.delete(&format!("/v1/cluster/nodes/{node_id}"), &[])?;
            writeln!(
                out,
                "removed node {} from the cluster; wipe its data directory before it joins again",
                removed.removed
            )
            .context("writing to stdout")
        }
    }
}

fn print_status(status: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let status: ClusterStatus =
        serde_json::from_value(status.clone()).context("reading the cluster status")?;
    let text = |value: Option<u64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    writeln!(
        out,
        "cluster {}: asked node {} ({}), term {}, leader {}, commit index {}, applied index {}",
        status.cluster_id,
        status.node_id,
        status.role,
        status.term,
        status
            .leader
            .map_or_else(|| "unknown".to_string(), |id| format!("node {id}")),
        text(status.commit_index),
        text(status.applied_index),
    )
    .context("writing to stdout")?;
    let rows: Vec<[String; 7]> = status
        .nodes
        .into_iter()
        .map(|node| {
            let role = match (node.leader, node.voter) {
                (true, _) => "leader",
                (false, true) => "voter",
                (false, false) => "learner",
            };
            let health = match node.healthy {
                Some(true) => "ok",
                Some(false) => "unreachable",
                None => "-",
            };
            [
                node.id.to_string(),
                role.to_string(),
                health.to_string(),
                text(node.matched_index),
                text(node.lag),
                node.last_contact_ms
                    .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms")),
                node.address,
            ]
        })
        .collect();
    write_table(
        out,
        [
            "NODE", "ROLE", "HEALTH", "MATCHED", "LAG", "CONTACT", "ADDRESS",
        ],
        &rows,
    )
    .context("writing to stdout")
}
