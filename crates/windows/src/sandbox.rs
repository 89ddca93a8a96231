//! The sandbox's configuration, result and error types, shared by the Windows implementation and the
//! command line. Lifecycle (on Windows): [`Sandbox::create`] → [`Sandbox::execute`] any number of
//! times (each cancellable) → [`Sandbox::close`], which undoes every grant; a journal undoes them on
//! the next start after a crash.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::grants::JournalError;
use crate::network::NetworkAccess;

#[cfg(windows)]
pub use crate::imp::sandbox::{Sandbox, reset};

/// Security descriptors this process has written (every `SetNamedSecurityInfoW` of the crate):
/// the set-up cost `--keep-grants` removes from repeated runs.
#[cfg(windows)]
pub fn security_descriptor_writes() -> u64 {
    crate::imp::security::security_descriptor_writes()
}

/// Prefix of every AppContainer profile agentsh creates (names are global per user).
pub const PROFILE_PREFIX: &str = "agentsh.";

/// The guide's `SandboxConfig` with its Windows options.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Sandbox name: 1-48 characters of `A-Z a-z 0-9 . _ -`; the profile is `agentsh.<name>`.
    pub name: String,
    /// Read/write for the sandbox.
    pub workspace: PathBuf,
    /// Read-only for the sandbox.
    pub allowed_paths: Vec<PathBuf>,
    pub network: NetworkAccess,
    pub use_app_container: bool,
    /// Run with the restricted-token fallback when AppContainer cannot be applied (or is
    /// disabled). Off by default: the fallback is never chosen silently, and even when allowed it
    /// is refused where it cannot give what was asked for ([`SandboxConfig::fallback_refused`]).
    pub allow_fallback: bool,
    /// Variables of agentsh's environment passed to the command beyond
    /// [`crate::environment::ALLOWED`].
    pub pass_env: Vec<String>,
    /// Register each root process with the driver (through the service) before it runs.
    pub use_minifilter: bool,
    /// `HKCU\SOFTWARE\<app_key>` is granted to the container; defaults to the sandbox name.
    pub app_key: Option<String>,
    /// Where grant journals are kept (one file per sandbox name).
    pub journal_dir: PathBuf,
    /// Process-count and memory limits of the command's job object.
    pub job_limits: JobLimits,
    /// How the command's output is captured (streaming, memory limit, spill folder).
    pub capture: crate::capture::CaptureConfig,
    /// Keep the grants after the run for this (workspace, name) pair, so the next run with both
    /// reuses them and writes no security descriptor (`--keep-grants`; off by default: the
    /// grants are removed at the end of every run). `agentsh sandbox reset NAME` removes them.
    pub keep_grants: bool,
    /// The guide's standalone mode: no AppContainer, no restricted token, no grants — the command
    /// runs with the caller's own (medium-integrity) token in a job object and a driver session,
    /// so only the driver stands between it and the machine. Used by `agentsh selftest`, whose
    /// high-risk scenarios an AppContainer's ACLs would stop before the driver saw them.
    pub session_only: bool,
}

/// The job object's limits: besides kill-on-close and die-on-unhandled-exception, at most
/// `max_processes` live processes (a fork bomb stops there) and `max_memory_bytes` of committed
/// memory for the whole job, and every UI restriction ([`UI_RESTRICTIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    pub max_processes: u32,
    pub max_memory_bytes: u64,
}

impl Default for JobLimits {
    /// 512 processes (a parallel build's compilers fit, a fork bomb does not) and 8 GiB.
    fn default() -> Self {
        JobLimits {
            max_processes: 512,
            max_memory_bytes: 8 << 30,
        }
    }
}

/// `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION |
/// JOB_OBJECT_LIMIT_ACTIVE_PROCESS | JOB_OBJECT_LIMIT_JOB_MEMORY` (winnt.h: 0x2000, 0x400, 0x8,
/// 0x200).
pub const JOB_LIMIT_FLAGS: u32 = 0x2000 | 0x400 | 0x8 | 0x200;

/// Every `JOB_OBJECT_UILIMIT_*` (winnt.h): USER handles of other processes (0x1), reading (0x2)
/// and writing (0x4) the clipboard, `SystemParametersInfo` (0x8), display settings (0x10), global
/// atoms (0x20), desktops (0x40), `ExitWindows` (0x80) — as Chromium's sandbox sets for its
/// renderers.
pub const UI_RESTRICTIONS: u32 = 0xFF;

impl SandboxConfig {
    /// A configuration with the guide's defaults: AppContainer, minifilter, no network.
    pub fn new(
        name: impl Into<String>,
        workspace: impl Into<PathBuf>,
        journal_dir: PathBuf,
    ) -> Self {
        SandboxConfig {
            name: name.into(),
            workspace: workspace.into(),
            allowed_paths: Vec::new(),
            network: NetworkAccess::None,
            use_app_container: true,
            allow_fallback: false,
            pass_env: Vec::new(),
            use_minifilter: true,
            app_key: None,
            capture: crate::capture::CaptureConfig::new(journal_dir.join("output")),
            journal_dir,
            job_limits: JobLimits::default(),
            keep_grants: false,
            session_only: false,
        }
    }

    /// Checks the name; AppContainer names are at most 64 characters including the prefix.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 48
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(())
        } else {
            Err(SandboxError::InvalidName(self.name.clone()))
        }
    }

    /// Why the restricted-token fallback may not run this sandbox, if it may not: it is opt-in
    /// (`--allow-fallback`, or `--no-appcontainer` which asks for it), and it cannot provide a
    /// network limit (it keeps the user's network access). A minifilter session it can provide:
    /// the driver decides its operations like any session's; what the fallback's user SID could
    /// otherwise reach — the service's API token — carries a no-read-up label its low integrity
    /// cannot pass (docs/security.md).
    pub fn fallback_refused(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.use_app_container && !self.allow_fallback {
            why.push("the fallback is opt-in (--allow-fallback)".to_owned());
        }
        if self.network != NetworkAccess::Full {
            why.push(format!(
                "network `{}` was asked for and the fallback cannot limit the network; pass --network full",
                self.network
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The AppContainer profile name.
    pub fn profile_name(&self) -> String {
        format!("{PROFILE_PREFIX}{}", self.name)
    }

    /// The application key under `HKCU\SOFTWARE` the container may write.
    pub fn app_key(&self) -> &str {
        self.app_key.as_deref().unwrap_or(&self.name)
    }
}

/// Which isolation a command actually ran under. Reported in every result and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// AppContainer token with the capabilities of the network level, plus a job object.
    AppContainer { network: NetworkAccess },
    /// Fallback: restricted token (Administrators deny-only, privileges removed), low integrity,
    /// job object. Network is not restricted by this layer.
    RestrictedToken,
    /// Standalone (`SandboxConfig::session_only`): the caller's token, a job object and the
    /// driver session; nothing else.
    SessionOnly,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Isolation::AppContainer { network } => {
                write!(f, "appcontainer (network {network}) + job object")
            }
            Isolation::RestrictedToken => f.write_str(
                "restricted token (administrators deny-only, privileges removed) + low integrity + job object; no network isolation",
            ),
            Isolation::SessionOnly => f.write_str(
                "driver session only (caller's token) + job object; no container, no network isolation",
            ),
        }
    }
}

/// Outcome of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: u32,
    /// The command's stdout: in memory, or in full in a spill file past the memory limit.
    pub stdout: crate::capture::Captured,
    pub stderr: crate::capture::Captured,
    pub isolation: Isolation,
    /// The service's session id, when the minifilter layer registered the process.
    pub session: Option<String>,
    /// The command was stopped through its [`CancelToken`] (the exit code is then 1).
    pub cancelled: bool,
}

/// What a session registration carries: the service turns it into the policy's session context
/// (`${WORKSPACE}`, the application's keys, and `HKCU` as `HKU\<user_sid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// The suspended root process.
    pub root_pid: u32,
    /// The application name: the sandbox name.
    pub app: String,
    /// The workspace as an absolute Windows path (`C:\...`).
    pub workspace: String,
    /// The workspace as the file system names it (`\Device\HarddiskVolume3\...`), resolved in
    /// the sandbox user's context (`GetFinalPathNameByHandleW`, `VOLUME_NAME_NT`).
    pub workspace_device: Option<String>,
    /// The string SID of the user the process runs as (`S-1-5-21-...`).
    pub user_sid: String,
    /// The wall check's canary name, for the wall probe's session (the service denies its
    /// writes to keys and files of that name).
    pub canary: Option<String>,
    /// The wall check's result, carried by the command's registration.
    pub wall_check: Option<String>,
}

/// What one execution's registration adds to the sandbox's [`SessionStart`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTags {
    pub canary: Option<String>,
    pub wall_check: Option<String>,
}

/// Registers a suspended root process with the driver as a session before it resumes. The service
/// owns the single port connection, so the real implementation calls the running service.
pub trait SessionRegistrar: Send + Sync {
    /// Makes `start.root_pid` (suspended) a session; returns the service's session id.
    fn register(&self, start: &SessionStart) -> Result<String, String>;
    /// Ends the session when the command has finished.
    fn unregister(&self, session: &str) -> Result<(), String>;
}

/// Cooperative cancellation of a running command: the job object is terminated.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Sandbox failures: each says which step and which object.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox name `{0}` is invalid (1-48 characters of A-Z a-z 0-9 . _ -)")]
    InvalidName(String),
    #[error(
        "sandbox `{name}`: appcontainer not in force ({reason}) and the restricted-token fallback is refused: {refused}; nothing was run"
    )]
    AppContainerRequired {
        name: String,
        reason: String,
        refused: String,
    },
    #[error(
        "sandbox `{name}`: minifilter session requested but no session registrar is available: {reason}; pass --no-minifilter to run with appcontainer only"
    )]
    NoRegistrar { name: String, reason: String },
    #[error(
        "sandbox `{name}`: session registration of process {pid} failed: {reason}; the process was killed before it ran"
    )]
    Registration {
        name: String,
        pid: u32,
        reason: String,
    },
    #[error("sandbox `{name}`: {step} failed: {message} (win32 error {code})")]
    Os {
        name: String,
        step: String,
        code: u32,
        message: String,
    },
    #[error("sandbox `{name}`: path `{path}`: {reason}")]
    Path {
        name: String,
        path: String,
        reason: String,
    },
    #[error("sandbox `{name}` is closed")]
    Closed { name: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_profile_is_made() {
        let journal = std::env::temp_dir();
        for ok in ["demo", "agent-1", "a.b_c"] {
            SandboxConfig::new(ok, "w", journal.clone())
                .validate()
                .expect(ok);
        }
        for bad in ["", "has space", "slash/name", &"x".repeat(49)] {
            let err = SandboxConfig::new(bad, "w", journal.clone())
                .validate()
                .expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with(&format!("sandbox name `{bad}` is invalid"))
            );
        }
    }

    #[test]
    fn defaults_follow_the_guide() {
        let c = SandboxConfig::new("demo", "w", std::env::temp_dir());
        assert!(c.use_app_container && c.use_minifilter && !c.allow_fallback);
        assert!(!c.keep_grants, "grants are removed at the end unless asked");
        assert_eq!(c.network, NetworkAccess::None);
        assert_eq!(c.profile_name(), "agentsh.demo");
        assert_eq!(c.app_key(), "demo");
    }

    #[test]
    fn the_fallback_is_opt_in_and_refused_where_it_cannot_give_what_was_asked() {
        let mut c = SandboxConfig::new("demo", "w", std::env::temp_dir());
        let all = c.fallback_refused().expect("refused by default");
        assert!(all.contains("opt-in (--allow-fallback)"), "{all}");
        assert!(all.contains("network `none`"), "{all}");
        c.allow_fallback = true;
        assert!(
            c.fallback_refused()
                .expect("network")
                .contains("network `none`")
        );
        c.network = NetworkAccess::Outbound;
        assert!(
            c.fallback_refused()
                .expect("network")
                .contains("network `outbound`")
        );
        c.network = NetworkAccess::Local;
        assert!(
            c.fallback_refused()
                .expect("network")
                .contains("network `local`")
        );
        c.network = NetworkAccess::Full;
        assert_eq!(c.fallback_refused(), None, "a minifilter session is kept");
        c.allow_fallback = false;
        assert!(
            c.fallback_refused()
                .expect("opt-in")
                .contains("--allow-fallback")
        );
        // --no-appcontainer asks for the fallback itself; the network limit still applies.
        let mut d = SandboxConfig::new("demo", "w", std::env::temp_dir());
        d.use_app_container = false;
        assert!(
            d.fallback_refused()
                .expect("network")
                .contains("network `none`")
        );
        d.network = NetworkAccess::Full;
        assert_eq!(d.fallback_refused(), None);
    }

    #[test]
    fn the_job_limits_are_the_documented_flags() {
        // winnt.h values, not the windows-sys constants the Windows code uses.
        assert_eq!(JOB_LIMIT_FLAGS, 0x2608);
        assert_eq!(
            UI_RESTRICTIONS,
            0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80
        );
        let d = JobLimits::default();
        assert_eq!(
            (d.max_processes, d.max_memory_bytes),
            (512, 8 * 1024 * 1024 * 1024)
        );
    }

    #[test]
    fn fallback_isolation_says_what_is_missing() {
        let text = Isolation::RestrictedToken.to_string();
        assert!(text.contains("low integrity") && text.contains("no network isolation"));
        let ac = Isolation::AppContainer {
            network: NetworkAccess::Outbound,
        };
        assert_eq!(
            ac.to_string(),
            "appcontainer (network outbound) + job object"
        );
    }

    #[test]
    fn cancel_token_is_shared_between_clones() {
        let t = CancelToken::new();
        let u = t.clone();
        assert!(!u.is_cancelled());
        t.cancel();
        assert!(u.is_cancelled());
    }
}
