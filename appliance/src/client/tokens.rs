//! `outpost lite-token create|list|revoke`: the Lite tokens of `/v1/lite-tokens`.

use std::io::Write;

use anyhow::Context as _;
use serde_json::json;

use super::api::{Api, path_segment};
use super::table::write_table;
use crate::admin::body::{CreatedToken, RevokedToken, TokenSummary};

#[derive(clap::Subcommand, Debug)]
pub enum LiteTokenCommand {
    /// Create a token for some zones; prints the token (shown this once) on its last line
    Create {
        /// Name of the token, like alice-laptop (a-z, 0-9, '-' and '.')
        #[arg(long)]
        name: String,
        /// ReplicatedState the token may see, comma-separated: site.internal.,lab.internal.
        #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
        zones: Vec<String>,
    },
    /// List the tokens, their zones and their live sessions (never the secrets)
    List,
    /// Revoke a token: refused from now on, and its live sessions are closed
    Revoke { name: String },
}

/// Runs `command`, writing what it prints to `out`.
pub fn run(api: &Api, command: LiteTokenCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        LiteTokenCommand::Create { name, zones } => {
            let zones: Vec<String> = zones
                .iter()
                .map(|zone| zone.trim().to_string())
                .filter(|zone| !zone.is_empty())
                .collect();
            let body = json!({ "name": name, "zones": zones });
            let created: CreatedToken = api.send_json("POST", "/v1/lite-tokens", &body)?;
            writeln!(
                out,
                "created Lite token {} for {} (index {})",
                created.name,
                created.zones.join(", "),
                created.index
            )
            .context("writing to stdout")?;
            writeln!(
                out,
                "the token is shown only now; pass it to outpost-lite run --token:"
            )
            .context("writing to stdout")?;
            writeln!(out, "{}", created.token).context("writing to stdout")
        }
        LiteTokenCommand::List => {
            let tokens: Vec<TokenSummary> = api.get_json("/v1/lite-tokens")?;
            let rows: Vec<[String; 3]> = tokens
                .into_iter()
                .map(|token| {
                    [
                        token.name,
                        token.sessions.to_string(),
                        token.zones.join(","),
                    ]
                })
                .collect();
            write_table(out, ["NAME", "SESSIONS", "ZONES"], &rows).context("writing to stdout")
        }
        LiteTokenCommand::Revoke { name } => {
            let revoked: RevokedToken =
                api.delete(&format!("/v1/lite-tokens/{}", path_segment(&name)), &[])?;
            writeln!(
                out,
                "revoked Lite token {name} (index {}); its sessions are closed",
                revoked.index
            )
            .context("writing to stdout")
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::admin::tests::TestServer;
    use crate::client::Connection;

    /// `outpost lite-token …` as in `main.rs`.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        LiteToken {
            #[command(flatten)]
            connection: Connection,
            #[command(subcommand)]
            command: LiteTokenCommand,
        },
    }

    /// Parses `line` as typed, runs it against `server`, returns what it printed.
    fn run_line(server: &TestServer, line: &str) -> anyhow::Result<String> {
        let words = std::iter::once("outpost").chain(line.split_whitespace());
        let Top::LiteToken {
            mut connection,
            command,
        } = Cli::try_parse_from(words)?.command;
        connection.admin = server.address.to_string();
        connection.data_dir = server.data_dir().to_path_buf();
        let mut out = Vec::new();
        run(&Api::connect(&connection)?, command, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn create_prints_the_token_alone_on_its_last_line() {
        let server = TestServer::start();
        for origin in ["site.internal.", "lab.internal."] {
            let body = json!({ "origin": origin });
            let api = Api::connect(&Connection {
                admin: server.address.to_string(),
                data_dir: server.data_dir().to_path_buf(),
            })
            .unwrap();
            let _: serde_json::Value = api.send_json("POST", "/v1/zones", &body).unwrap();
        }

        let out = run_line(
            &server,
            "lite-token create --name alice-laptop --zones site.internal.,lab.internal",
        )
        .unwrap();
        assert!(
            out.starts_with(
                "created Lite token alice-laptop for lab.internal., site.internal. (index "
            ),
            "{out}"
        );
        let token = out.lines().last().unwrap();
        let (name, secret) = token.rsplit_once(':').unwrap();
        assert_eq!(name, "alice-laptop");
        assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(crate::sync::token::check(&server.store.zones(), token).is_some());

        let out = run_line(&server, "lite-token list").unwrap();
        assert_eq!(
            out,
            "NAME          SESSIONS  ZONES\nalice-laptop  0         lab.internal.,site.internal.\n"
        );
        let error = run_line(
            &server,
            "lite-token create --name bob --zones nope.internal.",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(error, "zone nope.internal. does not exist");
        assert!(run_line(&server, "lite-token create --name bob").is_err());

        let out = run_line(&server, "lite-token revoke alice-laptop").unwrap();
        assert!(
            out.starts_with("revoked Lite token alice-laptop (index "),
            "{out}"
        );
        let error = run_line(&server, "lite-token revoke alice-laptop")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "no Lite token is named alice-laptop");
        server.stop();
    }
}
