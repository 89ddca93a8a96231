//! `agentsh sandbox run`: one command in a Windows sandbox (AppContainer, or the reported fallback),
//! registered as a driver session through the running service, its output passed through in full
//! and its exit code returned.

use std::path::PathBuf;
use std::process::ExitCode;

use agentsh_windows::network::NetworkAccess;
use clap::{Args, Subcommand};

use crate::api_client::ApiArgs;

#[cfg(any(windows, test))]
mod registrar;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run COMMAND ARGS inside a sandbox and report which isolation was in force.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sandbox name (AppContainer profile `agentsh.<name>`).
    #[arg(long)]
    name: String,
    /// Directory the command may read and write.
    #[arg(long)]
    workspace: PathBuf,
    /// Extra path the command may read (repeatable).
    #[arg(long = "allow", value_name = "PATH")]
    allow: Vec<PathBuf>,
    /// Network access: none, outbound, local or full.
    #[arg(long, default_value = "none")]
    network: NetworkAccess,
    /// Do not use AppContainer: run with the restricted-token fallback (only with --network full:
    /// it cannot limit the network).
    #[arg(long)]
    no_appcontainer: bool,
    /// Allow the restricted-token fallback when AppContainer cannot be applied. Off by default,
    /// and refused even when given if a network limit was asked for (--network other than full).
    #[arg(long, conflicts_with = "fail_on_appcontainer_error")]
    allow_fallback: bool,
    /// Refuse to run when AppContainer cannot be applied (the default; kept for scripts).
    #[arg(long)]
    fail_on_appcontainer_error: bool,
    /// Most processes the command may have alive at once (job object).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_processes: u32,
    /// Most memory, in MiB, the command and its children may commit together (job object).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u64).range(16..))]
    max_memory_mb: u64,
    /// Pass this variable of agentsh's environment to the command too (repeatable); by default
    /// the command gets only the documented allow-list, never agentsh's secrets.
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Do not register the process with the driver (AppContainer-only).
    #[arg(long)]
    no_minifilter: bool,
    /// The running service that registers the session (its API address and token file).
    #[command(flatten)]
    api: ApiArgs,
    /// Where grant journals are kept (default: %LOCALAPPDATA%\agentsh\sandboxes).
    #[arg(long)]
    journal_dir: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(command: SandboxCommand) -> anyhow::Result<ExitCode> {
    match command {
        SandboxCommand::Run(args) => imp::run(args),
    }
}

#[cfg(windows)]
mod imp {
    use std::io::Write;
    use std::process::ExitCode;
    use std::sync::Arc;

    use agentsh_windows::sandbox::{CancelToken, Sandbox, SandboxConfig, SessionRegistrar};

    use super::RunArgs;
    use super::registrar::{ServiceRegistrar, no_service};

    pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
        let journal_dir = args.journal_dir.clone().unwrap_or_else(|| {
            std::env::var_os("LOCALAPPDATA")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join("agentsh")
                .join("sandboxes")
        });
        let mut config = SandboxConfig::new(&args.name, &args.workspace, journal_dir);
        config.allowed_paths = args.allow;
        config.network = args.network;
        agentsh_windows::environment::check_pass(&args.pass_env)
            .map_err(|e| anyhow::anyhow!("sandbox `{}`: {e}", args.name))?;
        config.use_app_container = !args.no_appcontainer;
        config.allow_fallback = args.allow_fallback;
        config.pass_env = args.pass_env.clone();
        config.job_limits = agentsh_windows::sandbox::JobLimits {
            max_processes: args.max_processes,
            max_memory_bytes: args.max_memory_mb.saturating_mul(1 << 20),
        };
        config.use_minifilter = !args.no_minifilter;
        let registrar: Option<Arc<dyn SessionRegistrar>> = if config.use_minifilter {
            let registrar = ServiceRegistrar::connect(&args.api)
                .map_err(|e| anyhow::anyhow!(no_service(&args.name, &e)))?;
            Some(Arc::new(registrar))
        } else {
            None
        };
        let sandbox = Sandbox::create(config, registrar)?;
        if let Some(reason) = sandbox.fallback_reason() {
            eprintln!(
                "agentsh: sandbox `{}`: appcontainer not in force ({reason}); isolation: {}",
                args.name,
                sandbox.isolation()
            );
        }
        for warning in sandbox.warnings() {
            eprintln!("agentsh: sandbox `{}`: {warning}", args.name);
        }
        if args.no_minifilter {
            eprintln!(
                "agentsh: sandbox `{}`: --no-minifilter: no driver session, registry and file policy are not enforced for this command",
                args.name
            );
        }
        let (program, rest) = args
            .command
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("sandbox run: no command given after `--`"))?;
        let result = sandbox.execute(program, rest, &CancelToken::new());
        let close = sandbox.close();
        let result = result?;
        std::io::stdout().write_all(&result.stdout)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&result.stderr)?;
        let session = result
            .session
            .as_ref()
            .map(|id| format!("; driver session `{id}`"))
            .unwrap_or_default();
        eprintln!(
            "agentsh: sandbox `{}`: exit code {}; isolation: {}{session}",
            args.name, result.exit_code, result.isolation
        );
        close?;
        // Windows exit codes are 32-bit; ExitCode only carries 8 bits portably.
        std::process::exit(result.exit_code as i32)
    }
}

#[cfg(not(windows))]
mod imp {
    use std::process::ExitCode;

    use super::RunArgs;

    pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "sandbox `{}`: the sandbox needs Windows (AppContainer, job objects); this is {}",
            args.name,
            std::env::consts::OS
        )
    }
}
