//! The command line as users type it, and the commands against a real admin API.

use clap::Parser;

use super::*;
use crate::admin::tests::TestServer;

/// The admin part of `outpost`'s command line, shaped as in `main.rs`.
#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand, Debug)]
enum Top {
    Zone {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: ZoneCommand,
    },
    Record {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: RecordCommand,
    },
    Status {
        #[command(flatten)]
        connection: Connection,
    },
}

/// What the tests look at: the connection and the command.
#[derive(Debug)]
enum Command {
    Zone(ZoneCommand),
    Record(RecordCommand),
    Status,
}

struct Parsed {
    connection: Connection,
    command: Command,
}

fn parse(line: &str) -> Result<Parsed, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("outpost").chain(line.split_whitespace()))?;
    Ok(match cli.command {
        Top::Zone {
            connection,
            command,
        } => Parsed {
            connection,
            command: Command::Zone(command),
        },
        Top::Record {
            connection,
            command,
        } => Parsed {
            connection,
            command: Command::Record(command),
        },
        Top::Status { connection } => Parsed {
            connection,
            command: Command::Status,
        },
    })
}

#[test]
fn ttl_may_follow_the_record_data() {
    let cli = parse("record add printer.site.internal. A 10.0.0.7 --ttl 300").unwrap();
    let Command::Record(RecordCommand::Add {
        name,
        rtype,
        data,
        ttl,
    }) = cli.command
    else {
        panic!("{:?}", cli.command);
    };
    assert_eq!(
        (name.as_str(), rtype.as_str(), ttl),
        ("printer.site.internal.", "A", Some(300))
    );
    assert_eq!(data, ["10.0.0.7"]);
}

#[test]
fn ttl_may_come_first_and_data_may_have_several_words() {
    let cli = parse("record add --ttl 60 mail.site.internal. MX 10 mx.site.internal.").unwrap();
    let Command::Record(RecordCommand::Add { data, ttl, .. }) = cli.command else {
        panic!("{:?}", cli.command);
    };
    assert_eq!(data, ["10", "mx.site.internal."]);
    assert_eq!(ttl, Some(60));
}

#[test]
fn data_starting_with_a_dash_follows_a_double_dash() {
    let cli = parse("record add x.site.internal. TXT --ttl 5 -- -dash").unwrap();
    let Command::Record(RecordCommand::Add { data, ttl, .. }) = cli.command else {
        panic!("{:?}", cli.command);
    };
    assert_eq!((data, ttl), (vec!["-dash".to_string()], Some(5)));
}

#[test]
fn record_add_needs_data() {
    assert!(parse("record add printer.site.internal. A").is_err());
}

#[test]
fn record_rm_takes_optional_type_and_data() {
    let cli = parse("record rm printer.site.internal.").unwrap();
    assert!(
        matches!(cli.command, Command::Record(RecordCommand::Rm { rtype: None, ref data, .. }) if data.is_empty())
    );
    let cli = parse("record rm mail.site.internal. MX 10 mx.site.internal.").unwrap();
    let Command::Record(RecordCommand::Rm { rtype, data, .. }) = cli.command else {
        panic!("{:?}", cli.command);
    };
    assert_eq!(rtype.as_deref(), Some("MX"));
    assert_eq!(data, ["10", "mx.site.internal."]);
}

#[test]
fn zone_commands_and_connection_defaults() {
    let cli = parse("zone import site.zone --origin site.internal.").unwrap();
    assert_eq!(cli.connection.data_dir, PathBuf::from("./outpost-data"));
    assert!(
        matches!(cli.command, Command::Zone(ZoneCommand::Import { ref origin, .. }) if origin == "site.internal.")
    );
    for line in [
        "zone --admin 10.0.0.1:9000 --data-dir /var/lib/outpost list",
        "zone list --admin 10.0.0.1:9000 --data-dir /var/lib/outpost",
        "record add a.site.internal. A 10.0.0.1 --admin 10.0.0.1:9000 --data-dir /var/lib/outpost",
        "status --data-dir /var/lib/outpost --admin 10.0.0.1:9000",
    ] {
        let cli = parse(line).unwrap();
        assert_eq!(cli.connection.admin, "10.0.0.1:9000", "{line}");
        assert_eq!(
            cli.connection.data_dir,
            PathBuf::from("/var/lib/outpost"),
            "{line}"
        );
    }
    assert!(
        parse("zone import site.zone").is_err(),
        "--origin is required"
    );
    assert!(matches!(parse("status").unwrap().command, Command::Status));
}

/// Runs one command against `connection` and returns what it printed.
fn run(connection: &Connection, command: Command) -> anyhow::Result<String> {
    let mut out = Vec::new();
    match command {
        Command::Zone(command) => run_zone(connection, command, &mut out)?,
        Command::Record(command) => run_record(connection, command, &mut out)?,
        Command::Status => run_status(connection, false, &mut out)?,
    }
    Ok(String::from_utf8(out).unwrap())
}

/// Parses `line` as typed (words split on blanks) and runs it.
fn run_line(connection: &Connection, line: &str) -> anyhow::Result<String> {
    run(connection, parse(line).unwrap().command)
}

#[test]
fn commands_work_against_a_running_admin_api() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The token comes from the appliance's data directory, as on a real box.
    let connection = Connection {
        admin: server.address.to_string(),
        data_dir: server.data_dir().to_path_buf(),
    };
    let out = run_line(&connection, "zone create site.internal").unwrap();
    assert!(
        out.starts_with("created zone site.internal. (index "),
        "{out}"
    );

    let file = dir.path().join("lab.zone");
    std::fs::write(
        &file,
        "@ SOA ns1 hostmaster 5 7200 3600 1209600 300\n@ NS ns1\nns1 A 10.1.0.1\n",
    )
    .unwrap();
    let import = Command::Zone(ZoneCommand::Import {
        file,
        origin: "lab.internal.".into(),
    });
    let out = run(&connection, import).unwrap();
    assert!(
        out.starts_with("imported 3 records into lab.internal. (index "),
        "{out}"
    );

    let out = run_line(&connection, "zone list").unwrap();
    assert_eq!(
        out,
        "ORIGIN          RECORDS  SERIAL\nlab.internal.   3        5\nsite.internal.  2        1\n"
    );
    let out = run_line(&connection, "zone export lab.internal.").unwrap();
    assert!(
        out.starts_with("$ORIGIN lab.internal.\nlab.internal. 3600 IN SOA ns1.lab.internal. "),
        "{out}"
    );
    assert!(
        out.ends_with("ns1.lab.internal. 3600 IN A 10.1.0.1\n"),
        "{out}"
    );

    let out = run_line(
        &connection,
        "record add printer.site.internal. A 10.0.0.7 --ttl 300",
    )
    .unwrap();
    assert!(
        out.starts_with("added printer.site.internal. A 10.0.0.7 to site.internal. (index "),
        "{out}"
    );
    run_line(&connection, "record add site.internal. MX 10 printer").unwrap();
    let out = run_line(&connection, "record list site.internal.").unwrap();
    assert!(
        out.starts_with("NAME                    TTL   TYPE  DATA\n"),
        "{out}"
    );
    assert!(
        out.contains("\nprinter.site.internal.  300   A     10.0.0.7\n"),
        "{out}"
    );
    assert!(
        out.contains("\nsite.internal.          3600  MX    10 printer.site.internal.\n"),
        "{out}"
    );

    let out = run_line(&connection, "record rm printer.site.internal. A 10.0.0.7").unwrap();
    assert!(
        out.starts_with("deleted printer.site.internal. A 10.0.0.7 (index "),
        "{out}"
    );
    let error = run_line(&connection, "record rm printer.site.internal.")
        .unwrap_err()
        .to_string();
    assert!(error.contains("printer.site.internal."), "{error}");

    let out = run_line(&connection, "status").unwrap();
    assert!(
        out.starts_with("node:           1\nrole:           leader\nleader:         node 1\n"),
        "{out}"
    );
    assert!(out.contains("zones:          2\n"), "{out}");

    let error = run_line(
        &connection,
        "record add printer.nowhere.internal. A 10.0.0.7",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("no zone served here contains printer.nowhere.internal."),
        "{error}"
    );
    let error = run_line(&connection, "zone create site.internal.")
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "zone site.internal. already exists (import a master file to replace it)"
    );

    let no_token = Connection {
        admin: server.address.to_string(),
        data_dir: dir.path().to_path_buf(),
    };
    let error = run_line(&no_token, "status").unwrap_err().to_string();
    assert!(error.starts_with("no admin token"), "{error}");
    server.stop();
}
