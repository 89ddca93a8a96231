//! The `agentsh` binary: parses the command line and hands each command group to its module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod approvals;
mod audit;
mod demo;
mod emulator_cmd;
mod policy;
mod service_cmd;

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
    /// Play the driver over a local socket: check and replay operation traces
    #[command(subcommand)]
    Emulator(emulator_cmd::EmulatorCommand),
    /// Run the policy service
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// List, approve and deny operations held for a person (through the running service)
    Approvals(approvals::ApprovalsArgs),
    /// Print the service's and the driver's metrics (through the running service)
    Metrics(approvals::ApiArgs),
    /// Summarise an audit-mode run and propose the rules that would allow its would-be denials
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Play the design's five manual scenarios through the driver emulator and check the outcomes
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Emulator(cmd) => emulator_cmd::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Service(cmd) => service_cmd::run(cmd),
        Command::Approvals(args) => approvals::run(args),
        Command::Metrics(args) => approvals::metrics(args),
        Command::Audit(cmd) => audit::run(cmd),
    }
}
