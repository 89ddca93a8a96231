//! The `agentsh` binary: parses the command line and hands each command group to its module.

mod driver_cmd;
mod policy;
mod sandbox;
mod winservice;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run commands in a Windows sandbox (AppContainer, job object, driver session).
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Install, control or run the agentsh Windows service.
    #[command(subcommand)]
    Service(winservice::ServiceCommand),
    /// Install, load, unload or inspect the agentsh.sys minifilter.
    #[command(subcommand)]
    Driver(driver_cmd::DriverCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTSH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let outcome = match cli.command {
        Command::Policy(cmd) => return policy::run(cmd),
        Command::Sandbox(c) => sandbox::run(c),
        Command::Service(c) => winservice::run(c),
        Command::Driver(c) => driver_cmd::run(c),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agentsh: {e:#}");
            ExitCode::FAILURE
        }
    }
}
