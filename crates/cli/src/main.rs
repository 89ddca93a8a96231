//! The `agentsh` binary: parses the command line and hands each command group to its module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod policy;

#[derive(Debug, Parser)]
#[command(
    name = "agentsh",
    version,
    about = "Run AI coding agents on Windows under a registry and file policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, explain and test registry and file policies
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
    }
}
