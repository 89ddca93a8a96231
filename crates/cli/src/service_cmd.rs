//! `agentsh service run`: the policy service, connected to the driver (or its emulator), with the
//! local approvals API, event output and policy hot reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentsh_policy::Policy;
use agentsh_service::events::Format;
use agentsh_service::runner::{DriverOverrides, RunOptions, SinkSpec};
use agentsh_wire::control::FailMode;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Run the policy service (in the foreground, or under the SCM once installed)
    Run(RunArgs),
    /// Register the Windows service (automatic start) and the "AgentSH" event source
    Install {
        /// agentsh.exe to register (default: this executable)
        #[arg(long)]
        exe: Option<PathBuf>,
    },
    /// Stop and delete the Windows service and its event source
    Uninstall,
    /// Start the Windows service and wait until it runs
    Start,
    /// Stop the Windows service and wait until it has stopped
    Stop,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EventFormat {
    Jsonl,
    Ocsf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailModeArg {
    Open,
    Closed,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The driver emulator's socket (`agentsh emulator run --socket`); on Windows the filter port
    /// is used when this is not given
    #[arg(long)]
    pub driver_socket: Option<PathBuf>,
    /// Policy file (default: the embedded default policy); reloaded when it changes
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Where events go, instead of the policy's `events.sinks` (default: standard output)
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Format of `--events` (or of standard output when only this is given)
    #[arg(long, value_enum)]
    pub event_format: Option<EventFormat>,
    /// The local API's Unix socket (default: /run/agentsh/api.sock as root, else under this
    /// account's runtime directory), or on Windows its pipe (default: \\.\pipe\agentsh-api)
    #[arg(long)]
    pub api_socket: Option<PathBuf>,
    /// Also serve read-only Prometheus metrics over TCP at this loopback address (default: the
    /// policy's `approvals.api.listen`, else none)
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// A group whose members may list and answer approvals, besides root / Administrators
    #[arg(long)]
    pub approvers_group: Option<String>,
    /// Override the policy's driver fail mode
    #[arg(long, value_enum)]
    pub fail_mode: Option<FailModeArg>,
    /// Override the policy query timeout, in ms (100..=60000)
    #[arg(long)]
    pub policy_query_timeout_ms: Option<u32>,
    /// Override MaxConsecutiveFailures (1..=1000)
    #[arg(long)]
    pub max_consecutive_failures: Option<u32>,
    /// Override CacheMaxEntries (100..=100000)
    #[arg(long)]
    pub cache_max_entries: Option<u32>,
    /// Override CacheDefaultTTLMs (100..=3600000)
    #[arg(long)]
    pub cache_default_ttl_ms: Option<u32>,
    /// Also ask about approvals here: each pending approval is shown on standard error and
    /// answered on standard input (a = allow once, s = allow for the session, d = deny)
    #[arg(long)]
    pub approve_in_terminal: bool,
    /// Seconds between session token rotations (60..=86400); processes keep their session
    #[arg(long, default_value_t = 3600)]
    pub token_rotation_secs: u32,
    /// Where the sessions are kept so that a restarted service knows the ones the driver still
    /// has (default on Windows: %ProgramData%\agentsh\sessions.json; elsewhere none)
    #[arg(long)]
    pub session_file: Option<PathBuf>,
}

/// The runner's options from the command line: the policy (file or embedded default) with the
/// command line's overrides. Every value is checked here, before anything connects.
pub fn options(args: &RunArgs) -> anyhow::Result<RunOptions> {
    let policy = match &args.policy {
        Some(p) => Policy::from_path(p),
        None => Policy::embedded_default(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut o = RunOptions::new(policy, args.policy.clone())?;
    o.overrides = DriverOverrides {
        fail_mode: args.fail_mode.map(|m| match m {
            FailModeArg::Open => FailMode::Open,
            FailModeArg::Closed => FailMode::Closed,
        }),
        policy_query_timeout_ms: args.policy_query_timeout_ms,
        max_consecutive_failures: args.max_consecutive_failures,
        cache_max_entries: args.cache_max_entries,
        cache_default_ttl_ms: args.cache_default_ttl_ms,
    };
    // Checked now, so a bad value is reported before the service connects.
    o.overrides.config(&o.policy)?;
    if args.events.is_some() || args.event_format.is_some() {
        o.sinks = vec![SinkSpec {
            format: match args.event_format {
                Some(EventFormat::Ocsf) => Format::Ocsf,
                Some(EventFormat::Jsonl) | None => Format::Jsonl,
            },
            path: args.events.clone(),
        }];
    }
    if let Some(s) = &args.api_socket {
        o.api_socket = s.clone();
    }
    if let Some(a) = args.metrics_listen {
        o.metrics_listen = Some(a);
    }
    if let Some(g) = &args.approvers_group {
        o.approvers_group = Some(g.clone());
    }
    if !(60..=86_400).contains(&args.token_rotation_secs) {
        anyhow::bail!(
            "--token-rotation-secs `{}` is out of range 60..=86400",
            args.token_rotation_secs
        );
    }
    o.token_rotation = Duration::from_secs(u64::from(args.token_rotation_secs));
    o.terminal_prompt |= args.approve_in_terminal;
    if let Some(f) = &args.session_file {
        o.session_file = Some(f.clone());
    }
    o.status = std::sync::Arc::new(|s| eprintln!("agentsh service: {s}"));
    Ok(o)
}

pub fn run(cmd: ServiceCommand) -> ExitCode {
    use crate::winservice::ServiceCommand as Win;
    let win = match cmd {
        ServiceCommand::Run(args) if args.driver_socket.is_some() || !cfg!(windows) => {
            return run_socket(args);
        }
        ServiceCommand::Run(args) => match options(&args) {
            Ok(o) => Win::Run(Box::new(o)),
            Err(e) => {
                eprintln!("agentsh service: {e:#}");
                return ExitCode::from(1);
            }
        },
        ServiceCommand::Install { exe } => Win::Install { exe },
        ServiceCommand::Uninstall => Win::Uninstall,
        ServiceCommand::Start => Win::Start,
        ServiceCommand::Stop => Win::Stop,
    };
    match crate::winservice::run(win) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agentsh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(unix)]
use socket::run_socket;

#[cfg(not(unix))]
fn run_socket(_: RunArgs) -> ExitCode {
    eprintln!(
        "agentsh service: --driver-socket is the Linux emulator's transport; on Windows run without it to use the filter port"
    );
    ExitCode::from(2)
}

/// The service over the loopback transport (Unix domain sockets).
#[cfg(unix)]
mod socket {
    use std::process::ExitCode;

    use agentsh_service::SocketTransport;
    use agentsh_service::runner;
    use anyhow::bail;

    use super::{RunArgs, options};

    pub(super) fn run_socket(args: RunArgs) -> ExitCode {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("agentsh service: cannot start the runtime: {e}");
                return ExitCode::from(1);
            }
        };
        match runtime.block_on(serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("agentsh service: {e:#}");
                ExitCode::from(1)
            }
        }
    }

    async fn serve(args: RunArgs) -> anyhow::Result<()> {
        let mut options = options(&args)?;
        let Some(socket) = args.driver_socket.clone() else {
            bail!(
                "no driver transport: pass --driver-socket PATH to use the driver emulator (`agentsh emulator run`); \
                 the filter port is used on Windows once agentsh.sys is installed and loaded (`agentsh driver install`, `agentsh driver load`)"
            );
        };
        // The emulated machine's volumes, as the emulator describes them beside its socket.
        options.volumes = Some(agentsh_service::volumes::table_file(
            agentsh_service::volumes::table_beside(&socket),
        ));
        // The emulated machine's processes (command lines, images), from the table beside its
        // socket.
        options.processes = Some(agentsh_service::processes::table_file(
            agentsh_service::processes::table_beside(&socket),
        ));
        let first = SocketTransport::connect(&socket).await?;
        let reconnect = move || {
            let socket = socket.clone();
            async move {
                SocketTransport::connect(&socket)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        runner::run(options, first, reconnect, stop_requested()).await?;
        Ok(())
    }

    /// Ctrl-C or SIGTERM.
    async fn stop_requested() {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}
