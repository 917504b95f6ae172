//! The client commands flattened into a binary's subcommands, exactly as `src/main.rs` wires them.

use clap::{CommandFactory, Parser, Subcommand};
use nimbus_cli::ClientCommand;

#[derive(Parser)]
#[command(name = "nimbus")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stands in for the binary's own `up`.
    Up,
    #[command(flatten)]
    Client(ClientCommand),
}

fn parse(args: &[&str]) -> ClientCommand {
    match Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}")).command {
        Command::Client(command) => command,
        Command::Up => panic!("parsed as up"),
    }
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_parses_with_its_options() {
    let ClientCommand::Invoke(invoke) = parse(&[
        "nimbus",
        "invoke",
        "etl",
        "--payload",
        "@event.json",
        "--qualifier",
        "prod",
        "--async",
        "--json",
        "--endpoint",
        "http://127.0.0.1:5000",
    ]) else {
        panic!("not invoke")
    };
    assert_eq!(
        (invoke.name.as_str(), invoke.payload.as_str(), invoke.qualifier.as_deref(), invoke.asynchronous),
        ("etl", "@event.json", Some("prod"), true)
    );
    assert!(invoke.common.json);
    assert_eq!(invoke.common.endpoint, "http://127.0.0.1:5000");

    let ClientCommand::Logs(logs) =
        parse(&["nimbus", "logs", "etl", "-f", "--since", "2h", "--filter", "ERROR"])
    else {
        panic!("not logs")
    };
    assert!(logs.follow);
    assert_eq!(logs.since, std::time::Duration::from_secs(7200));
    assert_eq!(logs.filter.as_deref(), Some("ERROR"));

    assert!(matches!(parse(&["nimbus", "functions"]), ClientCommand::Functions(_)));
    assert!(matches!(parse(&["nimbus", "status", "--json"]), ClientCommand::Status(s) if s.common.json));
    assert!(Cli::try_parse_from(["nimbus", "logs", "etl", "--since", "10"]).is_err());
}
