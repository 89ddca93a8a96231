//! The `agentsh` binary: parses the command line and hands each command group to its module.

mod api_client;
mod approvals;
mod audit;
#[cfg(unix)]
mod demo;
mod driver_cmd;
#[cfg(unix)]
mod emulator_cmd;
#[cfg_attr(
    all(not(windows), not(test)),
    expect(dead_code, reason = "the Windows service's Event Log sink")
)]
mod eventlog_map;
mod policy;
mod sandbox;
mod selftest;
mod service_cmd;
mod suggest;
#[cfg_attr(
    all(not(windows), not(test)),
    expect(
        dead_code,
        reason = "the wall check runs on Windows; its logic is tested everywhere"
    )
)]
mod wallcheck;
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
    /// Run the policy service, or install and control it as a Windows service
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// List, approve and deny operations held for a person (through the running service)
    Approvals(approvals::ApprovalsArgs),
    /// Print the service's and the driver's metrics (through the running service)
    Metrics(api_client::ApiArgs),
    /// Summarise an audit-mode run and propose the rules that would allow its would-be denials
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run commands in a Windows sandbox (AppContainer, job object, driver session)
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Prove a running installation on this machine: the design's scenarios, the file scenarios
    /// and the wall check with real operations (needs the driver loaded and the service running)
    Selftest(selftest::SelftestArgs),
    /// Install, load, unload or inspect the agentsh.sys minifilter
    #[command(subcommand)]
    Driver(driver_cmd::DriverCommand),
    /// Play the driver over a local socket: check and replay operation traces
    #[cfg(unix)]
    #[command(subcommand)]
    Emulator(emulator_cmd::EmulatorCommand),
    /// Play the design's five manual scenarios through the driver emulator and check the outcomes
    #[cfg(unix)]
    Demo(demo::DemoArgs),
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
        Command::Service(cmd) => return service_cmd::run(cmd),
        Command::Approvals(args) => return approvals::run(args),
        Command::Metrics(args) => return approvals::metrics(args),
        Command::Audit(cmd) => return audit::run(cmd),
        #[cfg(unix)]
        Command::Emulator(cmd) => return emulator_cmd::run(cmd),
        #[cfg(unix)]
        Command::Demo(args) => return demo::run(args),
        Command::Selftest(args) => return selftest::main(args),
        Command::Sandbox(c) => sandbox::run(c),
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
