//! `agentsh sandbox run`: one command in a Windows sandbox (AppContainer, or the reported fallback),
//! registered as a driver session through the running service, its output passed through in full
//! and its exit code returned.

use std::path::PathBuf;
use std::process::ExitCode;

use agentsh_windows::network::NetworkAccess;
use clap::{Args, Subcommand};

use crate::api_client::ApiArgs;

#[cfg(any(windows, test))]
pub(crate) mod registrar;

#[cfg(windows)]
pub(crate) use imp::wall_check;

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run COMMAND ARGS inside a sandbox and report which isolation was in force.
    Run(RunArgs),
    /// The wall check's probe, run by `sandbox run` inside the sandbox (not for direct use).
    #[command(hide = true)]
    WallProbe(WallProbeArgs),
    /// Remove every grant kept for sandbox NAME (`sandbox run --keep-grants`), its AppContainer
    /// profile and its journal.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The sandbox name given to `sandbox run --name`.
    name: String,
    /// Where grant journals are kept (default: %LOCALAPPDATA%\agentsh\sandboxes).
    #[arg(long)]
    journal_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WallProbeArgs {
    /// The canary name the session's driver rules deny.
    #[arg(long)]
    canary: String,
    /// The application key under HKCU\SOFTWARE granted to the container.
    #[arg(long)]
    app_key: String,
    /// Run the driver probes (a minifilter session).
    #[arg(long)]
    driver: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy file whose `sandbox:` section gives the defaults of every option below (the
    /// command line wins; `--allow` paths are added to the policy's).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Sandbox name (AppContainer profile `agentsh.<name>`); required here or in the policy.
    #[arg(long)]
    name: Option<String>,
    /// Directory the command may read and write; required here or in the policy.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Extra path the command may read (repeatable).
    #[arg(long = "allow", value_name = "PATH")]
    allow: Vec<PathBuf>,
    /// Network access: none, outbound, local or full (default: the policy's, else none).
    #[arg(long)]
    network: Option<NetworkAccess>,
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
    /// Start the command without first proving the sandbox's walls (the skip is printed and
    /// recorded in the session's registration).
    #[arg(long)]
    skip_wall_check: bool,
    /// Keep the workspace's grants after the run for this (workspace, name) pair, so the next run
    /// with both writes no security descriptor; a Low-labelled workspace then stays writable by
    /// the user's other low-integrity processes (docs/security.md). `sandbox reset NAME` removes
    /// them.
    #[arg(long)]
    keep_grants: bool,
    /// The running service that registers the session (its API address and token file).
    #[command(flatten)]
    api: ApiArgs,
    /// Where grant journals are kept (default: %LOCALAPPDATA%\agentsh\sandboxes).
    #[arg(long)]
    journal_dir: Option<PathBuf>,
    /// Output kept in memory per stream, in KiB; the command's output is streamed as it arrives
    /// and, past this limit, captured in full in a spill file under --output-dir (named on stderr).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..=4_194_304))]
    capture_memory_kb: u64,
    /// Folder of spill files (default: the journal folder's `output` subfolder).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(command: SandboxCommand) -> anyhow::Result<ExitCode> {
    match command {
        SandboxCommand::Run(args) => {
            let settings = match &args.policy {
                Some(path) => Some(
                    agentsh_policy::Policy::from_path(path)
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .settings()
                        .sandbox
                        .clone(),
                ),
                None => None,
            };
            let options = resolve(&args, settings.as_ref())?;
            imp::run(args, options)
        }
        SandboxCommand::WallProbe(args) => imp::wall_probe(args),
        SandboxCommand::Reset(args) => imp::reset(args),
    }
}

/// A sandbox run's options: the command line's, else the policy's `sandbox:` section, else the
/// defaults (no network, AppContainer and the minifilter on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub name: String,
    pub workspace: PathBuf,
    pub allow: Vec<PathBuf>,
    pub network: NetworkAccess,
    pub appcontainer: bool,
    pub fail_on_appcontainer_error: bool,
    pub minifilter: bool,
}

/// Merges the command line with the policy's `sandbox:` section; a name or workspace given by
/// neither is an error that says where to give it.
pub fn resolve(
    args: &RunArgs,
    policy: Option<&agentsh_policy::settings::SandboxSettings>,
) -> anyhow::Result<Options> {
    use agentsh_policy::settings::NetworkAccess as PolicyNetwork;
    let defaults = agentsh_policy::settings::SandboxSettings::default();
    let p = policy.unwrap_or(&defaults);
    let name = args
        .name
        .clone()
        .or_else(|| p.name.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("sandbox run: give `--name` or `sandbox.name` in the policy")
        })?;
    let workspace = args
        .workspace
        .clone()
        .or_else(|| p.workspace.as_ref().map(PathBuf::from))
        .ok_or_else(|| {
            anyhow::anyhow!("sandbox run: give `--workspace` or `sandbox.workspace` in the policy")
        })?;
    let mut allow: Vec<PathBuf> = p.allow.iter().map(PathBuf::from).collect();
    allow.extend(args.allow.iter().cloned());
    let network = args.network.unwrap_or(match p.network {
        PolicyNetwork::None => NetworkAccess::None,
        PolicyNetwork::Outbound => NetworkAccess::Outbound,
        PolicyNetwork::Local => NetworkAccess::Local,
        PolicyNetwork::Full => NetworkAccess::Full,
    });
    Ok(Options {
        name,
        workspace,
        allow,
        network,
        appcontainer: p.appcontainer && !args.no_appcontainer,
        fail_on_appcontainer_error: p.fail_on_appcontainer_error || args.fail_on_appcontainer_error,
        minifilter: p.minifilter && !args.no_minifilter,
    })
}

#[cfg(windows)]
mod imp {
    use std::io::Write;
    use std::process::ExitCode;
    use std::sync::Arc;

    use agentsh_windows::sandbox::{
        CancelToken, Isolation, Sandbox, SandboxConfig, SessionRegistrar, SessionTags,
    };

    use super::registrar::{ServiceRegistrar, no_service};
    use super::{Options, RunArgs, WallProbeArgs};
    use crate::wallcheck::{self, Expectations, Observations, TokenFacts, WallReport};

    /// Runs the probe inside the sandbox and judges what it saw; every key and file it may have
    /// created is removed whatever the outcome.
    pub(crate) fn wall_check(
        sandbox: &mut Sandbox,
        options: &Options,
    ) -> anyhow::Result<WallReport> {
        let canary = wallcheck::new_canary().map_err(|e| anyhow::anyhow!("wall check: {e}"))?;
        let exe = std::env::current_exe()?;
        let mut probe_args = vec![
            "sandbox".to_owned(),
            "wall-probe".to_owned(),
            "--canary".to_owned(),
            canary.clone(),
            "--app-key".to_owned(),
            options.name.clone(),
        ];
        if options.minifilter {
            probe_args.push("--driver".to_owned());
        }
        let tags = SessionTags {
            canary: options.minifilter.then(|| canary.clone()),
            wall_check: None,
        };
        sandbox.set_streaming(false);
        let ran = sandbox.execute_tagged(
            &exe.to_string_lossy(),
            &probe_args,
            &CancelToken::new(),
            &tags,
        );
        sandbox.set_streaming(true);
        let (keys, files) = wallcheck::leftovers(&canary, &options.name, &options.workspace);
        for failure in wallcheck::clean(&Janitor, &keys, &files) {
            eprintln!(
                "agentsh: sandbox `{}`: wall check cleanup: could not remove {failure}",
                options.name
            );
        }
        let result = ran.map_err(|e| {
            anyhow::anyhow!(
                "sandbox `{}`: wall check: the probe could not run: {e}",
                options.name
            )
        })?;
        let observations = match result.stdout.contents() {
            Ok(bytes) => wallcheck::parse_observations(&String::from_utf8_lossy(&bytes))
                .map_err(|e| anyhow::anyhow!("sandbox `{}`: {e}", options.name))?,
            Err(e) => anyhow::bail!(
                "sandbox `{}`: wall check: the probe's output could not be read: {e}",
                options.name
            ),
        };
        if result.exit_code != 0 && observations == Observations::default() {
            anyhow::bail!(
                "sandbox `{}`: wall check: the probe did not run (exit code {}): {}",
                options.name,
                result.exit_code,
                String::from_utf8_lossy(&result.stderr.contents().unwrap_or_default()).trim()
            );
        }
        let expectations = Expectations {
            driver: options.minifilter,
            appcontainer: matches!(sandbox.isolation(), Isolation::AppContainer { .. }),
            capabilities: options
                .network
                .capability_sids()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        Ok(wallcheck::decide(&observations, &expectations))
    }

    struct Janitor;

    impl wallcheck::Janitor for Janitor {
        fn delete_key(&self, subkey: &str) -> Result<(), String> {
            agentsh_windows::probe::delete_user_key(subkey)
                .map_err(|code| format!("win32 error {code}"))
        }
        fn delete_file(&self, path: &std::path::Path) -> Result<(), String> {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        }
    }

    /// The probe: each operation's outcome on stdout (see crate::wallcheck).
    pub fn wall_probe(args: WallProbeArgs) -> anyhow::Result<ExitCode> {
        use agentsh_windows::probe;
        let mut obs = Observations::default();
        let file = |name: &str| -> wallcheck::OpResult {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(name)
                .map(drop)
                .map_err(|e| e.raw_os_error().map_or(u32::MAX, |c| c as u32))
        };
        if args.driver {
            let key = |leaf: &str| format!("SOFTWARE\\{}\\{leaf}", args.app_key);
            let control = format!("{}-control", args.canary);
            obs.registry_control = Some(probe::create_user_key(&key(&control)));
            obs.registry_canary = Some(probe::create_user_key(&key(&args.canary)));
            obs.file_control = Some(file(&control));
            obs.file_canary = Some(file(&args.canary));
        }
        match probe::token_facts() {
            Ok(t) => {
                obs.token = Some(TokenFacts {
                    appcontainer: t.appcontainer,
                    capabilities: t.capabilities,
                    integrity: t.integrity,
                })
            }
            Err(e) => eprintln!("wall probe: {e}"),
        }
        obs.run_key = Some(probe::open_user_key_for_write(wallcheck::RUN_KEY));
        print!("{}", wallcheck::render_observations(&obs));
        std::io::stdout().flush()?;
        Ok(ExitCode::SUCCESS)
    }

    fn default_journal_dir() -> std::path::PathBuf {
        std::env::var_os("LOCALAPPDATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("agentsh")
            .join("sandboxes")
    }

    pub fn reset(args: super::ResetArgs) -> anyhow::Result<ExitCode> {
        let dir = args.journal_dir.unwrap_or_else(default_journal_dir);
        let count = agentsh_windows::sandbox::reset(&args.name, &dir)?;
        println!(
            "sandbox `{}`: {count} grant(s) removed; its journal is gone",
            args.name
        );
        Ok(ExitCode::SUCCESS)
    }

    pub fn run(args: RunArgs, options: Options) -> anyhow::Result<ExitCode> {
        let journal_dir = args.journal_dir.clone().unwrap_or_else(default_journal_dir);
        let mut config = SandboxConfig::new(&options.name, &options.workspace, journal_dir);
        config.allowed_paths = options.allow.clone();
        config.network = options.network;
        agentsh_windows::environment::check_pass(&args.pass_env)
            .map_err(|e| anyhow::anyhow!("sandbox `{}`: {e}", options.name))?;
        config.use_app_container = options.appcontainer;
        // The policy's `fail_on_appcontainer_error: true` forbids the fallback even when asked.
        config.allow_fallback = args.allow_fallback && !options.fail_on_appcontainer_error;
        config.pass_env = args.pass_env.clone();
        config.job_limits = agentsh_windows::sandbox::JobLimits {
            max_processes: args.max_processes,
            max_memory_bytes: args.max_memory_mb.saturating_mul(1 << 20),
        };
        config.capture.memory_limit =
            usize::try_from(args.capture_memory_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
        if let Some(dir) = &args.output_dir {
            config.capture.spill_dir = dir.clone();
        }
        // The output reaches the caller as it arrives; the capture is what the summary reports.
        config.capture.stream = true;
        config.use_minifilter = options.minifilter;
        let registrar: Option<Arc<dyn SessionRegistrar>> = if config.use_minifilter {
            let registrar = ServiceRegistrar::connect(&args.api)
                .map_err(|e| anyhow::anyhow!(no_service(&options.name, &e)))?;
            Some(Arc::new(registrar))
        } else {
            None
        };
        config.keep_grants = args.keep_grants;
        let started = std::time::Instant::now();
        let writes_before = agentsh_windows::sandbox::security_descriptor_writes();
        eprintln!(
            "agentsh: sandbox `{}`: preparing `{}` (a first run grants every file under it to the container; a large tree takes a while){}",
            options.name,
            options.workspace.display(),
            if args.keep_grants {
                "; grants kept from an earlier --keep-grants run are reused"
            } else {
                ""
            }
        );
        let mut sandbox = Sandbox::create(config, registrar)?;
        eprintln!(
            "agentsh: sandbox `{}`: ready in {:.1} s; {} security descriptor(s) written{}",
            options.name,
            started.elapsed().as_secs_f64(),
            agentsh_windows::sandbox::security_descriptor_writes() - writes_before,
            if args.keep_grants {
                "; grants are kept after the run (`agentsh sandbox reset` removes them)"
            } else {
                ""
            }
        );
        if let Some(reason) = sandbox.fallback_reason() {
            eprintln!(
                "agentsh: sandbox `{}`: appcontainer not in force ({reason}); isolation: {}",
                options.name,
                sandbox.isolation()
            );
        }
        for warning in sandbox.warnings() {
            eprintln!("agentsh: sandbox `{}`: {warning}", options.name);
        }
        if !options.minifilter {
            eprintln!(
                "agentsh: sandbox `{}`: minifilter off: no driver session, registry and file policy are not enforced for this command",
                options.name
            );
        }
        let (program, rest) = args
            .command
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("sandbox run: no command given after `--`"))?;
        let report = if args.skip_wall_check {
            eprintln!(
                "agentsh: sandbox `{}`: wall check skipped (--skip-wall-check); the skip is recorded with the session",
                options.name
            );
            WallReport::skipped()
        } else {
            let refused = match wall_check(&mut sandbox, &options) {
                Ok(report) => {
                    eprint!("{}", report.table());
                    if report.passed() {
                        None
                    } else {
                        Some(report.refusal(&options.name))
                    }
                    .ok_or(report)
                }
                // Walls that could not be tested are walls not proven.
                Err(e) => Ok(format!(
                    "{e:#}; the command was not started (pass --skip-wall-check to run without the check; the skip is recorded)"
                )),
            };
            match refused {
                Err(report) => report,
                Ok(why) => {
                    eprintln!("agentsh: {why}");
                    sandbox.close()?;
                    return Ok(ExitCode::from(wallcheck::EXIT_WALL_FAILED));
                }
            }
        };
        let tags = SessionTags {
            canary: None,
            wall_check: Some(report.summary()),
        };
        let result = sandbox.execute_tagged(program, rest, &CancelToken::new(), &tags);
        let close = sandbox.close();
        let result = result?;
        std::io::stdout().flush()?;
        for (stream, captured) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
            if let Some(spill) = &captured.spill {
                eprintln!(
                    "agentsh: sandbox `{}`: {stream} passed the in-memory limit; all {} bytes are in {}",
                    options.name,
                    captured.len,
                    spill.display()
                );
            }
            if let Some(why) = &captured.incomplete {
                eprintln!(
                    "agentsh: sandbox `{}`: {stream} may be incomplete: {why}",
                    options.name
                );
            }
        }
        let session = result
            .session
            .as_ref()
            .map(|id| format!("; driver session `{id}`"))
            .unwrap_or_default();
        eprintln!(
            "agentsh: sandbox `{}`: exit code {}; isolation: {}{session}",
            options.name, result.exit_code, result.isolation
        );
        close?;
        // Windows exit codes are 32-bit; ExitCode only carries 8 bits portably.
        std::process::exit(result.exit_code as i32)
    }
}

#[cfg(not(windows))]
mod imp {
    use std::process::ExitCode;

    use super::{Options, RunArgs};

    pub fn run(_args: RunArgs, options: Options) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "sandbox `{}`: the sandbox needs Windows (AppContainer, job objects); this is {}",
            options.name,
            std::env::consts::OS
        )
    }

    pub fn reset(args: super::ResetArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "sandbox `{}`: reset needs Windows; this is {}",
            args.name,
            std::env::consts::OS
        )
    }

    pub fn wall_probe(_args: super::WallProbeArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "sandbox wall-probe: needs Windows; this is {}",
            std::env::consts::OS
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SandboxCommand,
    }

    fn args(line: &[&str]) -> RunArgs {
        let mut argv = vec!["t", "run"];
        argv.extend_from_slice(line);
        match Cli::parse_from(argv).command {
            SandboxCommand::Run(a) => a,
            other => panic!("expected `run`, parsed {other:?}"),
        }
    }

    fn policy_section(yaml: &str) -> agentsh_policy::settings::SandboxSettings {
        agentsh_policy::Policy::from_str(yaml, "p.yaml")
            .expect("policy loads")
            .settings()
            .sandbox
            .clone()
    }

    #[test]
    fn the_policys_sandbox_section_gives_the_defaults_and_the_command_line_wins() {
        let p = policy_section(
            "sandbox:\n  name: agent\n  workspace: 'C:\\work'\n  allow: ['C:\\tools']\n  network: outbound\n  appcontainer: false\n  minifilter: true\n",
        );
        let o = resolve(&args(&["--", "cmd"]), Some(&p)).expect("resolves");
        assert_eq!(o.name, "agent");
        assert_eq!(o.workspace, PathBuf::from("C:\\work"));
        assert_eq!(o.allow, vec![PathBuf::from("C:\\tools")]);
        assert_eq!(o.network, NetworkAccess::Outbound);
        assert!(!o.appcontainer && o.minifilter);

        let o = resolve(
            &args(&[
                "--name",
                "other",
                "--network",
                "none",
                "--allow",
                "D:\\data",
                "--no-minifilter",
                "--",
                "cmd",
            ]),
            Some(&p),
        )
        .expect("resolves");
        assert_eq!(o.name, "other");
        assert_eq!(o.network, NetworkAccess::None);
        assert_eq!(
            o.allow,
            vec![PathBuf::from("C:\\tools"), PathBuf::from("D:\\data")]
        );
        assert!(!o.minifilter);
    }

    #[test]
    fn a_name_or_workspace_given_nowhere_is_an_error_that_says_where() {
        let e = resolve(&args(&["--workspace", "C:\\w", "--", "cmd"]), None).expect_err("no name");
        assert!(e.to_string().contains("sandbox.name"), "{e}");
        let e = resolve(&args(&["--name", "n", "--", "cmd"]), None).expect_err("no workspace");
        assert!(e.to_string().contains("sandbox.workspace"), "{e}");
        let o = resolve(
            &args(&["--name", "n", "--workspace", "C:\\w", "--", "cmd"]),
            None,
        )
        .expect("resolves");
        assert!(o.appcontainer && o.minifilter && !o.fail_on_appcontainer_error);
        assert_eq!(o.network, NetworkAccess::None);
    }
}
