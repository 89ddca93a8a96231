//! `agentsh emulator`: check driver-emulator traces, and play agentsh.sys on a local socket for a
//! service while replaying a trace.

mod api_registrar;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::registrar::AwaitRegistration;
use agentsh_emulator::replay::{LineReport, replay};
use agentsh_emulator::table::TextTable;
use agentsh_emulator::trace::{Action, Trace};
use agentsh_emulator::volumes::VolumeTable;
use agentsh_wire::control::{Counter, Metrics};
use clap::Subcommand;

use crate::api_client::ApiArgs;
use api_registrar::ApiRegistrar;

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Parse trace files (JSON lines, schema in docs/emulator.md) and summarise them
    Check {
        /// Trace files
        #[arg(required = true)]
        traces: Vec<PathBuf>,
    },
    /// Listen on a socket as the driver, wait for the service, replay a trace, report each outcome
    /// (exit 1 if any outcome differs from the trace's `expect`)
    Run {
        /// Unix domain socket the service connects to
        #[arg(long)]
        socket: PathBuf,
        /// Trace file to replay
        #[arg(long)]
        trace: PathBuf,
        /// Seconds to wait for the service to connect, and for each session registration
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Print one JSON object per operation instead of a table
        #[arg(long)]
        json: bool,
        /// Register the trace's sessions through the running service's local API (POST
        /// /v1/sessions) instead of waiting for someone else to register them
        #[arg(long)]
        register_through_api: bool,
        /// The service's local API socket (with --register-through-api; default: the service's
        /// default location)
        #[arg(long, requires = "register_through_api")]
        api_socket: Option<PathBuf>,
        /// The emulated machine's volumes (`<device> = <mount point>` lines, docs/emulator.md;
        /// default: `\Device\HarddiskVolume3 = C:\`, `\Device\HarddiskVolume4 = D:\`). File
        /// operations are sent in device form through it, and it is written to `<socket>.volumes`
        /// for the service
        #[arg(long, value_name = "FILE")]
        volumes: Option<PathBuf>,
    },
}

pub fn run(cmd: EmulatorCommand) -> ExitCode {
    match cmd {
        EmulatorCommand::Check { traces } => check(&traces),
        EmulatorCommand::Run {
            socket,
            trace,
            wait,
            json,
            register_through_api,
            api_socket,
            volumes,
        } => {
            let api = register_through_api.then_some(ApiArgs { api_socket });
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: starting the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(serve_and_replay(
                &socket,
                &trace,
                Duration::from_secs(wait),
                json,
                api,
                volumes.as_deref(),
            )) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
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
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads and parses a trace file; errors say which file and where.
pub fn load(path: &Path) -> Result<Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Trace::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

/// Returns whether every outcome matched its expectation.
async fn serve_and_replay(
    socket: &Path,
    trace_path: &Path,
    wait: Duration,
    json: bool,
    api: Option<ApiArgs>,
    volumes: Option<&Path>,
) -> Result<bool, String> {
    let trace = load(trace_path)?;
    let volumes = match volumes {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
            VolumeTable::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?
        }
        None => VolumeTable::default(),
    };
    let emulator = Arc::new(
        Emulator::start_with_volumes(socket, seed(), volumes)
            .map_err(|e| format!("listening on `{}`: {e}", socket.display()))?,
    );
    eprintln!(
        "driver emulator listening on {}; waiting for the service",
        socket.display()
    );
    let connected = tokio::time::timeout(wait, async {
        while emulator.metrics().get(Counter::ServiceConnected) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if connected.is_err() {
        return Err(format!(
            "no service connected to `{}` within {wait:?}",
            socket.display()
        ));
    }
    let source = trace_path.display().to_string();
    let print = |r: &LineReport| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    };
    let reports = match api {
        None => {
            let registrar = AwaitRegistration::new(emulator.clone(), wait);
            replay(&emulator, &registrar, &source, &trace, print).await
        }
        Some(api) => {
            eprintln!(
                "registering the trace's sessions through the service's API at `{}`",
                api.endpoint().display()
            );
            let registrar = ApiRegistrar::new(api, wait).with_volumes(emulator.volumes().clone());
            let reports = replay(&emulator, &registrar, &source, &trace, print).await;
            // The emulator is still listening, so the service can tell it the sessions ended.
            let (ended, failed) = registrar.unregister_remaining().await;
            for (pid, id) in ended {
                eprintln!("ended session `{id}` of process {pid}, left registered by the trace");
            }
            for e in failed {
                eprintln!("warning: {e}");
            }
            reports
        }
    }
    .map_err(|e| e.to_string())?;
    if !json {
        print!("{}", outcome_table(&reports));
        println!();
        print!("{}", metrics_table(&emulator.metrics()));
    }
    let mismatches = reports.iter().filter(|r| !r.as_expected()).count();
    if mismatches > 0 {
        eprintln!(
            "{mismatches} of {} operations did not have the expected outcome",
            reports.len()
        );
    }
    Ok(mismatches == 0)
}

fn seed() -> u64 {
    // The kernel core seeds its cache and session hashing; any per-run value will do.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

pub fn outcome_table(reports: &[LineReport]) -> TextTable {
    let mut table = TextTable::new([
        "line",
        "process",
        "operation",
        "target",
        "status",
        "reason",
        "latency",
        "expected",
    ]);
    for r in reports {
        table.row([
            r.line.to_string(),
            format!("{} ({})", r.process, r.pid),
            r.operation.to_owned(),
            r.target.clone(),
            format!(
                "{} {}",
                r.status,
                if r.verdict.status() == 0 {
                    "success"
                } else {
                    "access denied"
                }
            ),
            r.reason.name().to_owned(),
            format!("{} µs", r.latency_us),
            match (r.expected, r.as_expected()) {
                (None, _) => String::new(),
                (Some(_), true) => "ok".to_owned(),
                (Some(e), false) => format!("MISMATCH (expected {e:?})").to_lowercase(),
            },
        ]);
    }
    table
}

pub fn metrics_table(metrics: &Metrics) -> TextTable {
    let mut table = TextTable::new(["driver counter", "value"]);
    for c in Counter::ALL {
        table.row([c.name().to_owned(), metrics.get(c).to_string()]);
    }
    if let Some(rate) = metrics.cache_hit_rate_percent() {
        table.row(["cache hit rate".to_owned(), format!("{rate:.1}%")]);
    }
    table
}
