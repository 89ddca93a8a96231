//! `agentsh emulator`: check driver-emulator traces and replay them against a running service.

use std::path::PathBuf;
use std::process::ExitCode;

use agentsh_emulator::trace::{Action, Trace};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Parse trace files (JSON lines, schema in docs/emulator.md) and summarise them
    Check {
        /// Trace files
        #[arg(required = true)]
        traces: Vec<PathBuf>,
    },
}

pub fn run(cmd: EmulatorCommand) -> ExitCode {
    match cmd {
        EmulatorCommand::Check { traces } => check(&traces),
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in paths {
        match load(path) {
            Ok(trace) => {
                let ops = trace
                    .lines
                    .iter()
                    .filter(|l| matches!(l.action, Action::Registry(_) | Action::File(_)))
                    .count();
                let expectations = trace.lines.iter().filter(|l| l.expect.is_some()).count();
                println!(
                    "{}: {} lines, {ops} operations, {expectations} with an expected outcome",
                    path.display(),
                    trace.lines.len()
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads and parses a trace file; errors say which file and where.
pub fn load(path: &std::path::Path) -> Result<Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Trace::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
}
