//! `agentsh service run`: the policy service, connected to the driver (or its emulator), with the
//! local approvals API, event output and policy hot reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

/// The API's default address.
pub const DEFAULT_API: &str = "127.0.0.1:7878";

/// The default API token file: `.agentsh/api-token` under the account's own runtime directory
/// (`XDG_RUNTIME_DIR`), `%LOCALAPPDATA%` or home directory; the shared temporary directory only when
/// none is set (the service then checks the directory's owner and mode before writing).
pub fn default_token_file() -> PathBuf {
    let base = ["XDG_RUNTIME_DIR", "LOCALAPPDATA", "HOME"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(PathBuf::from);
    match base {
        Some(dir) => dir.join(".agentsh").join("api-token"),
        None => std::env::temp_dir()
            .join(format!("agentsh-{}", whoami()))
            .join("api-token"),
    }
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "service".into())
}

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
    /// Where events go (default: standard output)
    #[arg(long)]
    pub events: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub event_format: EventFormat,
    /// Loopback address of the approvals API
    #[arg(long, default_value = DEFAULT_API)]
    pub api: SocketAddr,
    /// File the API token is written to (readable by this account only)
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
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
    /// Seconds between session token rotations (60..=86400); processes keep their session
    #[arg(long, default_value_t = 3600)]
    pub token_rotation_secs: u32,
}

pub fn run(cmd: ServiceCommand) -> ExitCode {
    use crate::winservice::ServiceCommand as Win;
    let win = match cmd {
        ServiceCommand::Run(args) if args.driver_socket.is_some() || !cfg!(windows) => {
            return run_socket(args);
        }
        ServiceCommand::Run(_) => Win::Run,
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
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use agentsh_policy::Policy;
    use agentsh_service::events::{EventPipeline, Format};
    use agentsh_service::{Service, SocketTransport, api};
    use agentsh_wire::control::{DriverConfig, FailMode};
    use anyhow::{Context, bail};

    use super::{EventFormat, FailModeArg, RunArgs, default_token_file};

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

    fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
        let loaded = match path {
            Some(p) => Policy::from_path(p),
            None => Policy::embedded_default(),
        };
        loaded.map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The configuration to send: the policy's `driver:` section with command-line overrides, each
    /// checked against the guide's range.
    fn config(policy: &Policy, args: &RunArgs) -> anyhow::Result<DriverConfig> {
        let mut c = agentsh_service::driver_config(&policy.settings().driver, false, false);
        if let Some(m) = args.fail_mode {
            c.fail_mode = match m {
                FailModeArg::Open => FailMode::Open,
                FailModeArg::Closed => FailMode::Closed,
            };
        }
        if let Some(v) = args.policy_query_timeout_ms {
            c.policy_query_timeout_ms = v;
        }
        if let Some(v) = args.max_consecutive_failures {
            c.max_consecutive_failures = v;
        }
        if let Some(v) = args.cache_max_entries {
            c.cache_max_entries = v;
        }
        if let Some(v) = args.cache_default_ttl_ms {
            c.cache_default_ttl_ms = v;
        }
        if let Err(e) = c.validate() {
            bail!("driver configuration: {e}");
        }
        Ok(c)
    }

    async fn serve(args: RunArgs) -> anyhow::Result<()> {
        let policy = load_policy(args.policy.as_deref())?;
        let config = config(&policy, &args)?;
        if !(60..=86_400).contains(&args.token_rotation_secs) {
            bail!(
                "--token-rotation-secs `{}` is out of range 60..=86400",
                args.token_rotation_secs
            );
        }
        let Some(socket) = &args.driver_socket else {
            bail!(
                "no driver transport: pass --driver-socket PATH to use the driver emulator (`agentsh emulator run`); \
                 the filter port is used on Windows once agentsh.sys is installed and loaded (`agentsh driver install`, `agentsh driver load`)"
            );
        };
        let out: Box<dyn std::io::Write + Send> = match &args.events {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("events file `{}`", p.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let format = match args.event_format {
            EventFormat::Jsonl => Format::Jsonl,
            EventFormat::Ocsf => Format::Ocsf,
        };
        let capacity = policy.settings().events.queue_capacity as usize;
        let events = EventPipeline::spawn(capacity, format, out);
        let transport = SocketTransport::connect(socket).await?;
        let service = Arc::new(Service::start(transport, &policy, events).await?);
        service.client.set_config(config).await?;
        eprintln!(
            "agentsh service: connected to the driver at `{}` ({:?} mode)",
            socket.display(),
            config.fail_mode
        );

        let token = api::new_token()?;
        let token_file = args
            .api_token_file
            .clone()
            .unwrap_or_else(default_token_file);
        api::write_token_file(&token_file, &token)
            .with_context(|| format!("API token file `{}`", token_file.display()))?;
        let (addr, _api) =
            api::serve(args.api, service.adapter.clone(), service.clone(), token).await?;
        eprintln!(
            "agentsh service: approvals API on http://{addr} (token in `{}`)",
            token_file.display()
        );

        tokio::spawn({
            let service = service.clone();
            let every = Duration::from_secs(u64::from(args.token_rotation_secs));
            async move { rotate_tokens(service, every).await }
        });
        if let Some(path) = args.policy.clone() {
            let service = service.clone();
            tokio::spawn(async move { watch_policy(path, service).await });
        }
        let mut ticks: u32 = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !service.is_running() {
                bail!("the driver closed the port");
            }
            ticks = ticks.wrapping_add(1);
            // Every 5 s: the driver's counters, for fail-mode transitions the service could not see.
            if ticks % 25 == 1
                && let Err(e) = service.poll_driver().await
            {
                eprintln!("agentsh service: cannot read the driver's counters: {e}");
            }
        }
    }

    /// Polls the policy file; a changed file is validated and swapped in atomically, and the driver's
    /// cache flushed. An invalid file keeps the last good policy, and says why. Editors that save by
    /// replacing the file are seen too (the modification time and size of the path are compared).
    async fn watch_policy(path: PathBuf, service: Arc<Service<SocketTransport>>) {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut last = stamp(&path);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = stamp(&path);
            if now == last || now.is_none() {
                continue;
            }
            last = now;
            match Policy::from_path(&path) {
                Ok(p) => match service.reload(&p).await {
                    Ok(()) => eprintln!(
                        "agentsh service: reloaded `{}`; driver cache flushed",
                        path.display()
                    ),
                    Err(e) => eprintln!(
                        "agentsh service: reloaded `{}` but the driver cache was not flushed: {e}",
                        path.display()
                    ),
                },
                Err(e) => eprintln!(
                    "agentsh service: `{}` changed but is invalid; keeping the last good policy:\n{e}",
                    path.display()
                ),
            }
        }
    }

    /// Rotates every session's token on a schedule (the guide's security considerations), without
    /// dropping the session's processes: the driver moves them to the new token.
    async fn rotate_tokens(service: Arc<Service<SocketTransport>>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            for session in service.adapter.sessions.list() {
                if let Err(e) = service.rotate_token(&session.id).await {
                    eprintln!(
                        "agentsh service: session `{}` keeps its token; rotation failed: {e}",
                        session.id
                    );
                }
            }
        }
    }
}
