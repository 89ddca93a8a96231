//! The service as it runs until stopped, on any transport: connect, answer the driver, serve the
//! local API, reload the policy when its file changes, rotate session tokens, read the driver's
//! counters — and when the driver side goes away, withdraw the approvals held on that connection
//! and reconnect with backoff, keeping sessions, grants and the policy. `agentsh service run`
//! uses it over the emulator's socket, and the Windows service over the filter port.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use agentsh_policy::Policy;
use agentsh_policy::settings::SinkFormat;
use agentsh_wire::control::{DriverConfig, FailMode, Metrics};
use tokio::task::JoinHandle;

use crate::api::DriverOps;
use crate::events::{Deliver, EventPipeline, Format, Sink};
use crate::{ClientError, DriverClient, PolicyAdapter, PortTransport, Service, api};

/// Command-line overrides of the policy's `driver:` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverOverrides {
    pub fail_mode: Option<FailMode>,
    pub policy_query_timeout_ms: Option<u32>,
    pub max_consecutive_failures: Option<u32>,
    pub cache_max_entries: Option<u32>,
    pub cache_default_ttl_ms: Option<u32>,
}

impl DriverOverrides {
    /// The configuration to send: `policy`'s `driver:` section with these overrides, each checked
    /// against the guide's range.
    pub fn config(&self, policy: &Policy) -> Result<DriverConfig, RunError> {
        let mut c = crate::driver_config_for(policy);
        if let Some(m) = self.fail_mode {
            c.fail_mode = m;
        }
        if let Some(v) = self.policy_query_timeout_ms {
            c.policy_query_timeout_ms = v;
        }
        if let Some(v) = self.max_consecutive_failures {
            c.max_consecutive_failures = v;
        }
        if let Some(v) = self.cache_max_entries {
            c.cache_max_entries = v;
        }
        if let Some(v) = self.cache_default_ttl_ms {
            c.cache_default_ttl_ms = v;
        }
        c.validate()
            .map_err(|e| RunError::Config(format!("driver configuration: {e}")))?;
        Ok(c)
    }
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    pub format: Format,
    /// A file (appended to), or `None` for standard output.
    pub path: Option<PathBuf>,
}

impl SinkSpec {
    /// The policy's `events.sinks`; a relative path is taken from `base` (the policy file's
    /// directory). Standard output in JSON lines when the policy names none.
    pub fn from_policy(policy: &Policy, base: Option<&Path>) -> Vec<SinkSpec> {
        let sinks: Vec<SinkSpec> = policy
            .settings()
            .events
            .sinks
            .iter()
            .map(|s| SinkSpec {
                format: match s.format {
                    SinkFormat::Jsonl => Format::Jsonl,
                    SinkFormat::Ocsf => Format::Ocsf,
                },
                path: (s.path != "-").then(|| match base {
                    Some(b) if Path::new(&s.path).is_relative() => b.join(&s.path),
                    _ => PathBuf::from(&s.path),
                }),
            })
            .collect();
        if sinks.is_empty() {
            vec![SinkSpec {
                format: Format::Jsonl,
                path: None,
            }]
        } else {
            sinks
        }
    }

    fn open(&self) -> Result<Sink, RunError> {
        self.open_writer().map(|w| Sink::Lines(self.format, w))
    }

    fn open_writer(&self) -> Result<Box<dyn Write + Send>, RunError> {
        match &self.path {
            None => Ok(Box::new(std::io::stdout())),
            Some(p) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(|f| Box::new(f) as Box<dyn Write + Send>)
                .map_err(|e| RunError::Config(format!("events file `{}`: {e}", p.display()))),
        }
    }
}

/// What the running service reports about itself (the console, or the Windows Event Log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Connected {
        fail_mode: FailMode,
    },
    /// The local API is served at `endpoint` (a Unix socket path or a pipe name).
    ApiListening {
        endpoint: String,
    },
    /// The opt-in TCP listener serves metrics at `addr`.
    MetricsListening {
        addr: SocketAddr,
    },
    /// The local API (or the metrics listener) cannot be served; the service keeps answering
    /// the driver and tries again after `retry_in` (none: it does not retry, e.g. a setting).
    ApiUnavailable {
        endpoint: String,
        error: String,
        retry_in: Option<Duration>,
    },
    /// The API reports a problem while it runs (accept errors, descriptor exhaustion).
    ApiProblem {
        error: String,
    },
    /// The driver side closed the port; `withdrawn` approvals were held on it.
    Disconnected {
        withdrawn: usize,
    },
    Reconnecting {
        attempt: u32,
        error: String,
        retry_in: Duration,
    },
    /// Connected again; `restored` sessions had been lost by the driver and were registered again.
    Reconnected {
        attempt: u32,
        restored: Vec<String>,
    },
    Reloaded {
        path: PathBuf,
    },
    /// The new policy is in force but the driver did not take its configuration or cache flush.
    ReloadIncomplete {
        path: PathBuf,
        error: String,
    },
    /// The changed file could not be read (an I/O error, not an invalid policy); the last good
    /// policy stays and the file is read again at the next poll.
    ReloadDeferred {
        path: PathBuf,
        error: String,
    },
    /// The changed file is invalid; the last good policy stays.
    ReloadRejected {
        path: PathBuf,
        error: String,
    },
    TokenRotationFailed {
        session: String,
        error: String,
    },
    DriverCountersUnavailable {
        error: String,
    },
    /// The volume map changed: `volumes` volumes are known by drive letter or mount point.
    VolumesChanged {
        volumes: usize,
    },
    /// The volumes could not be read; the last map stays in force.
    VolumesUnavailable {
        error: String,
    },
    /// `sessions` sessions of the previous run of the service were taken back from `path`.
    SessionsRestored {
        path: PathBuf,
        sessions: usize,
    },
    /// The session file cannot be read, used or written (see [`RunOptions::session_file`]).
    SessionFileProblem {
        path: PathBuf,
        error: String,
    },
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Connected { fail_mode } => write!(
                f,
                "connected to the driver ({fail_mode:?} mode); this process is excluded from interception"
            ),
            Status::ApiListening { endpoint } => write!(
                f,
                "local API at `{endpoint}` (callers authorized by their operating-system identity)"
            ),
            Status::MetricsListening { addr } => {
                write!(f, "metrics (read-only) on http://{addr}/metrics")
            }
            Status::ApiUnavailable {
                endpoint,
                error,
                retry_in,
            } => {
                write!(
                    f,
                    "the local API at `{endpoint}` is unavailable: {error}; the driver is still answered"
                )?;
                match retry_in {
                    Some(d) => write!(f, "; retrying in {} s", d.as_secs()),
                    None => Ok(()),
                }
            }
            Status::ApiProblem { error } => write!(f, "local API: {error}"),
            Status::Disconnected { withdrawn } => {
                f.write_str("the driver closed the port; it applies its fail mode until the service is back")?;
                if *withdrawn > 0 {
                    write!(
                        f,
                        "; {withdrawn} approval(s) held on the connection were withdrawn (the driver denied them)"
                    )?;
                }
                f.write_str("; reconnecting")
            }
            Status::Reconnecting {
                attempt,
                error,
                retry_in,
            } => write!(
                f,
                "reconnect attempt {attempt} failed: {error}; retrying in {} ms",
                retry_in.as_millis()
            ),
            Status::Reconnected { attempt, restored } => {
                write!(f, "reconnected to the driver (attempt {attempt})")?;
                if !restored.is_empty() {
                    write!(
                        f,
                        "; the driver had lost session(s) {} and they were registered again (their root processes only)",
                        restored.join(", ")
                    )?;
                }
                Ok(())
            }
            Status::Reloaded { path } => write!(
                f,
                "reloaded `{}`; driver configuration sent and cache flushed",
                path.display()
            ),
            Status::ReloadIncomplete { path, error } => write!(
                f,
                "reloaded `{}`, but the driver did not take its configuration or cache flush: {error}",
                path.display()
            ),
            Status::ReloadDeferred { path, error } => write!(
                f,
                "`{}` changed but cannot be read ({error}); keeping the last good policy and trying again",
                path.display()
            ),
            Status::ReloadRejected { path, error } => write!(
                f,
                "`{}` changed but is invalid; keeping the last good policy:\n{error}",
                path.display()
            ),
            Status::TokenRotationFailed { session, error } => {
                write!(
                    f,
                    "session `{session}` keeps its token; rotation failed: {error}"
                )
            }
            Status::DriverCountersUnavailable { error } => {
                write!(f, "cannot read the driver's counters: {error}")
            }
            Status::VolumesChanged { volumes } => write!(
                f,
                "volume map: {volumes} volume(s) known by drive letter or mount point"
            ),
            Status::VolumesUnavailable { error } => write!(
                f,
                "cannot read the volumes (the last volume map stays in force; paths on unknown volumes stay in device form and drive-letter rules do not match them): {error}"
            ),
            Status::SessionsRestored { path, sessions } => write!(
                f,
                "{sessions} session(s) of the previous run restored from {}",
                path.display()
            ),
            Status::SessionFileProblem { path, error } => {
                write!(f, "session file {}: {error}", path.display())
            }
            Status::Stopped => f.write_str("stopped"),
        }
    }
}

/// Receives [`Status`] reports.
pub type StatusSink = Arc<dyn Fn(&Status) + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    pub policy: Policy,
    /// The policy's file, watched for changes (none: the embedded default, never reloaded).
    pub policy_path: Option<PathBuf>,
    pub overrides: DriverOverrides,
    /// Event sinks (see [`SinkSpec::from_policy`]).
    pub sinks: Vec<SinkSpec>,
    /// Further sinks given every event (the Windows Event Log); return whether it was delivered.
    pub deliver_to: Vec<Deliver>,
    /// The local API: a Unix socket path, or on Windows a named pipe's name.
    pub api_socket: PathBuf,
    /// The opt-in TCP listener for read-only metrics (the policy's `approvals.api.listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// The group whose members may list and answer approvals besides root / Administrators.
    pub approvers_group: Option<String>,
    /// The local API's connection, time and rate limits.
    pub api_limits: api::Limits,
    /// The longest wait between attempts to bring the API up after a failure.
    pub api_retry: Duration,
    /// The local API's endpoint if the caller took it already (the Windows service creates its
    /// pipe before it waits for the driver to load); empty, `run` takes it before the handshake.
    pub api_listener: Arc<Mutex<Option<api::LocalListener>>>,
    /// Called on the blocking thread before each reload's compile (tests hold a compile there
    /// to show that decisions keep flowing meanwhile).
    pub before_compile: Option<CompileHook>,
    /// Session token rotation period (60 s ..= 24 h).
    pub token_rotation: Duration,
    /// First and longest wait between reconnect attempts (doubling in between).
    pub reconnect_backoff: (Duration, Duration),
    /// How often the driver's counters are read (fail-mode transitions the service could not see).
    pub poll_interval: Duration,
    /// How often the policy file is checked for changes.
    pub watch_interval: Duration,
    /// Ask about approvals on this process's terminal too (standard input, standard error);
    /// from the policy's `approvals.terminal_prompt`.
    pub terminal_prompt: bool,
    /// Where NT device names are mapped to drive letters and folder mount points from (none:
    /// device paths stay in device form), read before the service answers the driver and then
    /// every `volume_interval`.
    pub volumes: Option<crate::volumes::VolumeSource>,
    pub volume_interval: Duration,
    /// Names a process's image when a request arrives before the kernel announced the process,
    /// and a session's root (see [`crate::adapter::ImageLookup`]); none: only announcements do.
    pub image_lookup: Option<crate::adapter::ImageLookup>,
    /// Where the session table is kept across restarts of the service (see
    /// [`crate::sessions::SavedSession`]); none: sessions live in memory only.
    pub session_file: Option<PathBuf>,
    /// Where an approval reads the requesting process's command line and the images the kernel
    /// did not report (none: approvals show neither).
    pub processes: Option<crate::processes::ProcessSource>,
    pub status: StatusSink,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("policy_path", &self.policy_path)
            .field("overrides", &self.overrides)
            .field("sinks", &self.sinks)
            .field("api_socket", &self.api_socket)
            .field("metrics_listen", &self.metrics_listen)
            .field("approvers_group", &self.approvers_group)
            .field("token_rotation", &self.token_rotation)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options with the guide's defaults: events as the policy says, the local API at
    /// [`api::default_endpoint`], metrics over TCP only where the policy's
    /// `approvals.api.listen` says, hourly token rotation, reconnects from 100 ms up to 5 s,
    /// status reported through `tracing`.
    pub fn new(policy: Policy, policy_path: Option<PathBuf>) -> Result<Self, RunError> {
        let approvals = &policy.settings().approvals;
        let metrics_listen = match &approvals.api_listen {
            Some(a) => Some(a.parse().map_err(|e| {
                RunError::Config(format!(
                    "approvals.api.listen `{a}` is not an address like 127.0.0.1:7878: {e}"
                ))
            })?),
            None => None,
        };
        let base = policy_path.as_deref().and_then(Path::parent);
        let sinks = SinkSpec::from_policy(&policy, base);
        let terminal_prompt = approvals.terminal_prompt;
        Ok(RunOptions {
            sinks,
            deliver_to: Vec::new(),
            api_socket: api::default_endpoint(),
            metrics_listen,
            approvers_group: None,
            api_limits: api::Limits::default(),
            api_retry: Duration::from_secs(30),
            api_listener: Arc::default(),
            before_compile: None,
            policy_path,
            policy,
            overrides: DriverOverrides::default(),
            token_rotation: Duration::from_secs(3600),
            reconnect_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            poll_interval: Duration::from_secs(5),
            watch_interval: Duration::from_secs(1),
            terminal_prompt,
            volumes: None,
            volume_interval: Duration::from_secs(2),
            image_lookup: None,
            session_file: default_session_file(),
            processes: None,
            status: Arc::new(|s: &Status| tracing::info!("{s}")),
        })
    }
}

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Driver(#[from] ClientError),
}

/// The connection in use (none while reconnecting) and what outlives it.
struct Shared<T: PortTransport> {
    adapter: Arc<PolicyAdapter>,
    current: RwLock<Option<Arc<Service<T>>>>,
    config: Mutex<DriverConfig>,
    overrides: DriverOverrides,
    status: StatusSink,
    before_compile: Option<CompileHook>,
}

/// Called on the blocking thread before each reload's compile.
pub type CompileHook = Arc<dyn Fn() + Send + Sync>;

impl<T: PortTransport> Shared<T> {
    fn service(&self) -> Option<Arc<Service<T>>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    fn set(&self, service: Option<Arc<Service<T>>>) {
        if let Ok(mut c) = self.current.write() {
            *c = service;
        }
    }

    fn config(&self) -> DriverConfig {
        self.config
            .lock()
            .map(|c| *c)
            .unwrap_or_else(|p| *p.into_inner())
    }

    fn report(&self, s: Status) {
        (self.status)(&s);
    }

    /// A changed policy: read, then validated (by loading), checked against the complexity
    /// budget and its driver configuration checked — all on a blocking thread, so no decision
    /// waits for a compile — then swapped in: on the connection if there is one, else on the
    /// adapter, sent on reconnect. `Err` only when the file could not be read (the caller
    /// tries again); an invalid policy is reported here.
    async fn reload(&self, path: &Path) -> Result<(), String> {
        let overrides = self.overrides;
        let hook = self.before_compile.clone();
        let file = path.to_owned();
        let compiled = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&file).map_err(|e| Err(e.to_string()))?;
            let overlay = Policy::read_overlay(&file).map_err(|e| Err(e.to_string()))?;
            if let Some(hook) = hook {
                hook();
            }
            Policy::from_str_with(
                &text,
                &file.display().to_string(),
                overlay.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
            )
            .map_err(|e| e.to_string())
            .and_then(|p| check_complexity(&p).map(|()| p))
            .and_then(|p| {
                overrides
                    .config(&p)
                    .map(|c| (p, c))
                    .map_err(|e| e.to_string())
            })
            .map_err(Ok)
        })
        .await;
        let (policy, config) = match compiled {
            Ok(Ok(x)) => x,
            Ok(Err(Err(io))) => return Err(io),
            Ok(Err(Ok(error))) => {
                self.report(Status::ReloadRejected {
                    path: path.to_owned(),
                    error,
                });
                return Ok(());
            }
            Err(e) => {
                self.report(Status::ReloadRejected {
                    path: path.to_owned(),
                    error: format!("the policy compile did not finish: {e}"),
                });
                return Ok(());
            }
        };
        if let Ok(mut c) = self.config.lock() {
            *c = config;
        }
        let path = path.to_owned();
        match self.service() {
            Some(service) => match service.reload(&policy, config).await {
                Ok(()) => self.report(Status::Reloaded { path }),
                Err(e) => self.report(Status::ReloadIncomplete {
                    path,
                    error: e.to_string(),
                }),
            },
            None => {
                self.adapter.apply_policy(&policy);
                self.report(Status::ReloadIncomplete {
                    path,
                    error: "the driver is not connected; its configuration is sent on reconnect"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

/// The most path patterns a policy may have that the prefix index cannot file (a leading
/// wildcard): each is tried against every uncached request, so their number bounds the cost
/// of a decision.
pub const MAX_UNINDEXED_PATTERNS: usize = 2_000;

/// Refuses a policy with more than [`MAX_UNINDEXED_PATTERNS`] patterns starting with a
/// wildcard.
pub fn check_complexity(policy: &Policy) -> Result<(), String> {
    let doc = policy.document();
    let unindexed = doc
        .registry
        .rules
        .iter()
        .chain(&doc.files.rules)
        .flat_map(|r| &r.paths)
        .filter(|p| p.text.starts_with(['*', '?']))
        .count();
    if unindexed > MAX_UNINDEXED_PATTERNS {
        return Err(format!(
            "{}: {unindexed} path patterns start with a wildcard; at most {MAX_UNINDEXED_PATTERNS} \
             are allowed, since each one is tried against every request the cache does not \
             answer (start patterns with a literal key or folder)",
            policy.origin()
        ));
    }
    Ok(())
}

const NOT_CONNECTED: &str =
    "the driver is not connected (the service is reconnecting); try again shortly";

impl<T: PortTransport> DriverOps for Shared<T> {
    fn register(
        &self,
        req: api::SessionRequest,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            match self.service() {
                Some(s) => s.register(req).await,
                None => Err(NOT_CONNECTED.into()),
            }
        })
    }

    fn unregister(
        &self,
        id: String,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + '_>> {
        Box::pin(async move {
            match self.service() {
                Some(s) => s.unregister(id).await,
                None => Err(NOT_CONNECTED.into()),
            }
        })
    }

    fn driver_metrics(&self) -> Pin<Box<dyn Future<Output = Option<Metrics>> + Send + '_>> {
        Box::pin(async move {
            match self.service() {
                Some(s) => s.poll_driver().await.ok(),
                None => None,
            }
        })
    }

    fn kernel_session_of(
        &self,
        pid: u32,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + '_>> {
        Box::pin(async move {
            match self.service() {
                Some(s) => s.kernel_session_of(pid).await.map_err(|e| e.to_string()),
                None => Err(NOT_CONNECTED.into()),
            }
        })
    }
}

/// Aborts background tasks when the run ends.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Runs the service on `first` (an already opened transport, so the caller decides what a
/// driver that cannot be reached at start means) until `stop` completes. When the driver side
/// goes away, `reconnect` is called with backoff until it yields a transport that handshakes.
/// `%ProgramData%\agentsh\sessions.json` on Windows; none elsewhere.
fn default_session_file() -> Option<PathBuf> {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        Some(PathBuf::from(base).join("agentsh").join("sessions.json"))
    } else {
        None
    }
}

/// Takes back the sessions a previous run of the service kept in `path` (the driver keeps its
/// sessions while no service is connected: their requests carry the same tokens), then keeps the
/// table there. A file that cannot be read or used is reported and set aside
/// (`<file>.unusable`): the service runs on, those sessions' requests decided as a session's
/// whose registration is unknown.
fn restore_sessions(adapter: &PolicyAdapter, path: &Path, status: &StatusSink) {
    let restored = crate::sessions::load_file(path)
        .map_err(|e| e.to_string())
        .and_then(|saved| {
            adapter
                .sessions
                .restore(&saved)
                .map_err(|e| format!("session file {}: {e}", path.display()))
        });
    match restored {
        Ok(0) => {}
        Ok(n) => status(&Status::SessionsRestored {
            path: path.to_path_buf(),
            sessions: n,
        }),
        Err(e) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".unusable");
            let _ = std::fs::rename(path, &aside);
            status(&Status::SessionFileProblem {
                path: path.to_path_buf(),
                error: format!("{e}; set aside as {}", PathBuf::from(aside).display()),
            });
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create the session file's folder");
    }
    if let Err(e) = adapter.sessions.keep_in(path.to_path_buf()) {
        status(&Status::SessionFileProblem {
            path: path.to_path_buf(),
            error: format!("{e}; sessions are kept in memory only until it can be written"),
        });
    }
}

pub async fn run<T, C, F>(
    options: RunOptions,
    first: T,
    mut reconnect: C,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), RunError>
where
    T: PortTransport,
    C: FnMut() -> F + Send,
    F: Future<Output = Result<T, String>> + Send,
{
    if !(60..=86_400).contains(&options.token_rotation.as_secs()) {
        return Err(RunError::Config(format!(
            "token rotation period `{}` s is out of range 60..=86400",
            options.token_rotation.as_secs()
        )));
    }
    let config = options.overrides.config(&options.policy)?;
    check_complexity(&options.policy).map_err(RunError::Config)?;
    // The API's name is taken before the driver handshake, so that no other process can create
    // it while the service connects; it is served once the service's state exists, and kept
    // across driver reconnects. (The pipe lives on the named-pipe file system, which the filter
    // does not attach to, and the Unix socket is not filtered: taking it before the exclusion
    // below is never intercepted.) A name that cannot be taken — a squatter — is reported now
    // and retried in the background; it never stops the service.
    let taken = options
        .api_listener
        .lock()
        .ok()
        .and_then(|mut slot| slot.take());
    let early_api = match taken {
        Some(listener) => Ok(listener),
        None => api::bind_local(&options.api_socket, options.approvers_group.as_deref()),
    };
    if let Err(e) = &early_api {
        options.status.as_ref()(&Status::ApiUnavailable {
            endpoint: options.api_socket.display().to_string(),
            error: e.to_string(),
            retry_in: Some(Duration::from_secs(1).min(options.api_retry)),
        });
    }
    // Handshake and exclusion next: nothing the service does afterwards (event files, the API's
    // clients) is intercepted, so a WinFsp mount it serves is never counted twice.
    let client = match DriverClient::connect(first).await {
        Ok(client) => client,
        Err(e) => {
            // Only a socket this run created: never another's.
            #[cfg(unix)]
            if early_api.is_ok() {
                let _ = std::fs::remove_file(&options.api_socket);
            }
            return Err(e.into());
        }
    };
    let mut sinks = options
        .sinks
        .iter()
        .map(SinkSpec::open)
        .collect::<Result<Vec<_>, _>>()?;
    sinks.extend(options.deliver_to.iter().cloned().map(Sink::Each));
    let capacity = options.policy.settings().events.queue_capacity as usize;
    let events = EventPipeline::spawn_sinks(capacity, sinks);
    let adapter = Arc::new(PolicyAdapter::for_policy(&options.policy, events));
    if let Some(lookup) = &options.image_lookup {
        adapter.set_image_lookup(lookup.clone());
    }
    if let Some(path) = &options.session_file {
        restore_sessions(&adapter, path, &options.status);
    }
    if let Some(source) = &options.processes {
        adapter.set_process_source(source.clone());
    }
    // The volume map is in place before the first file request is decided.
    if let Some(source) = &options.volumes {
        report_volumes(&options.status, &adapter, source).await;
    }
    let shared = Arc::new(Shared {
        adapter: adapter.clone(),
        current: RwLock::new(None),
        config: Mutex::new(config),
        overrides: options.overrides,
        status: options.status.clone(),
        before_compile: options.before_compile.clone(),
    });

    let service = Arc::new(Service::serve_with(client, adapter.clone(), config).await?);
    let unconfirmed = service.confirm_restored_sessions().await;
    if !unconfirmed.is_empty() {
        tracing::warn!(sessions = %unconfirmed.join(", "), "restored sessions the driver does not place their root in: kept for their tokens, never registered again");
    }
    shared.set(Some(service));
    shared.report(Status::Connected {
        fail_mode: config.fail_mode,
    });

    // From here on nothing about the API can stop the service: it is brought up in the
    // background, and a refused name, a bind failure or descriptor exhaustion is reported and
    // retried while the driver keeps being answered.
    let problems: api::ProblemSink = {
        let status = options.status.clone();
        Arc::new(move |error: String| status(&Status::ApiProblem { error }))
    };
    let mut local_api = api::Api::new(
        adapter.clone(),
        shared.clone(),
        options.api_limits,
        problems,
    );
    if let Some(path) = &options.policy_path {
        local_api = local_api.remember_into(path.clone());
    }
    if options.policy.settings().approvals.api_token_file.is_some() {
        shared.report(Status::ApiProblem {
            error: "the policy's approvals.api.token_file is no longer used: the local API \
                    authorizes callers by their operating-system identity, and no token is written"
                .into(),
        });
    }
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Tasks(vec![tokio::spawn(keep_api_up(
        local_api.clone(),
        early_api.map_err(|_| ()),
        options.api_socket.clone(),
        options.approvers_group.clone(),
        options.api_retry,
        options.status.clone(),
        serving.clone(),
    ))]);
    if let Some(addr) = options.metrics_listen {
        tasks.0.push(tokio::spawn(keep_metrics_up(
            local_api,
            addr,
            options.api_retry,
            options.status.clone(),
        )));
    }
    tasks.0.push(tokio::spawn(rotate_tokens(
        shared.clone(),
        options.token_rotation,
    )));
    tasks.0.push(tokio::spawn(poll_counters(
        shared.clone(),
        options.poll_interval,
    )));
    if options.terminal_prompt {
        let approvals = adapter.approvals.clone();
        tasks.0.push(tokio::spawn(async move {
            let prompt =
                crate::terminal::run(approvals, crate::terminal::stdin(), tokio::io::stderr());
            if let Err(e) = prompt.await {
                tracing::warn!(error = %e, "the terminal approver stopped; approvals go through the API");
            }
        }));
    }
    if let Some(source) = options.volumes.clone() {
        let (adapter, status, every) = (
            adapter.clone(),
            options.status.clone(),
            options.volume_interval,
        );
        tasks.0.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                report_volumes(&status, &adapter, &source).await;
            }
        }));
    }
    if let Some(path) = options.policy_path.clone() {
        tasks.0.push(tokio::spawn(watch_policy(
            shared.clone(),
            path,
            options.watch_interval,
        )));
    }

    let outcome = serve_until_stopped(&shared, &options, &mut reconnect, stop).await;
    drop(tasks);
    // The socket goes with the service (its task is stopped asynchronously; removed here so it
    // is gone when `run` returns). Only a socket this run created: never another's.
    #[cfg(unix)]
    if serving.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = std::fs::remove_file(&options.api_socket);
    }
    shared.set(None);
    shared.report(Status::Stopped);
    outcome
}

async fn serve_until_stopped<T, C, F>(
    shared: &Shared<T>,
    options: &RunOptions,
    reconnect: &mut C,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), RunError>
where
    T: PortTransport,
    C: FnMut() -> F + Send,
    F: Future<Output = Result<T, String>> + Send,
{
    let mut stop = std::pin::pin!(stop);
    loop {
        let Some(service) = shared.service() else {
            return Ok(());
        };
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = closed(&service) => {}
        }
        shared.set(None);
        drop(service);
        let withdrawn = shared.adapter.approvals.withdraw_all();
        shared.report(Status::Disconnected { withdrawn });

        let (mut delay, longest) = options.reconnect_backoff;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let config = shared.config();
            let attempt_once = async {
                let transport = reconnect().await?;
                Service::resume(transport, shared.adapter.clone(), config)
                    .await
                    .map_err(|e| e.to_string())
            };
            let result = tokio::select! {
                () = &mut stop => return Ok(()),
                r = attempt_once => r,
            };
            match result {
                Ok(service) => {
                    let restored = service.reregister_sessions().await;
                    shared.set(Some(Arc::new(service)));
                    shared.report(Status::Reconnected { attempt, restored });
                    break;
                }
                Err(error) => {
                    shared.report(Status::Reconnecting {
                        attempt,
                        error,
                        retry_in: delay,
                    });
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(longest);
                }
            }
        }
    }
}

/// Reads the volumes on a blocking thread (the Windows calls and the table file block) and swaps
/// a changed map into the adapter, reporting the change or the failure.
async fn report_volumes(
    status: &StatusSink,
    adapter: &Arc<PolicyAdapter>,
    source: &crate::volumes::VolumeSource,
) {
    let (a, s) = (adapter.clone(), source.clone());
    let outcome = tokio::task::spawn_blocking(move || crate::volumes::refresh(&a, &s))
        .await
        .unwrap_or_else(|e| Err(format!("volume reader stopped: {e}")));
    match outcome {
        Ok(Some(volumes)) => status(&Status::VolumesChanged { volumes }),
        Ok(None) => {}
        Err(error) => status(&Status::VolumesUnavailable { error }),
    }
}

/// Serves the local API at `endpoint`, bringing it up again (after a wait doubling from 1 s to
/// `longest`) whenever it cannot be served. Never returns an error: the driver is answered
/// whatever happens here.
async fn keep_api_up(
    api: api::Api,
    early: Result<api::LocalListener, ()>,
    endpoint: PathBuf,
    approvers_group: Option<String>,
    longest: Duration,
    status: StatusSink,
    serving: Arc<std::sync::atomic::AtomicBool>,
) {
    let name = endpoint.display().to_string();
    let mut delay = Duration::from_secs(1).min(longest);
    // The name taken before the handshake is served first; if it could not be taken (already
    // reported), the first retry waits like any other.
    let mut bound = match early {
        Ok(listener) => Some(listener),
        Err(()) => {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(longest);
            None
        }
    };
    loop {
        let served = match bound.take() {
            Some(listener) => Ok(listener.serve(&api)),
            None => api::serve_local(&api, &endpoint, approvers_group.as_deref()),
        };
        match served {
            Ok(task) => {
                serving.store(true, std::sync::atomic::Ordering::SeqCst);
                status(&Status::ApiListening {
                    endpoint: name.clone(),
                });
                delay = Duration::from_secs(1).min(longest);
                // Stopping this task (the service stops) stops the API's own task too.
                let mut task = Tasks(vec![task]);
                let Some(handle) = task.0.first_mut() else {
                    return;
                };
                let ended = handle.await;
                serving.store(false, std::sync::atomic::Ordering::SeqCst);
                match ended {
                    Ok(()) => return,
                    Err(e) if e.is_cancelled() => return,
                    Err(e) => status(&Status::ApiUnavailable {
                        endpoint: name.clone(),
                        error: format!("the API stopped: {e}"),
                        retry_in: Some(delay),
                    }),
                }
            }
            Err(e) => status(&Status::ApiUnavailable {
                endpoint: name.clone(),
                error: e.to_string(),
                retry_in: Some(delay),
            }),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(longest);
    }
}

/// Serves the opt-in TCP metrics listener, retrying a refused bind (a squatted port) like
/// [`keep_api_up`].
async fn keep_metrics_up(api: api::Api, addr: SocketAddr, longest: Duration, status: StatusSink) {
    let mut delay = Duration::from_secs(1).min(longest);
    loop {
        match api::serve_metrics_tcp(addr, api.clone()).await {
            Ok((local, task)) => {
                status(&Status::MetricsListening { addr: local });
                let mut task = Tasks(vec![task]);
                if let Some(handle) = task.0.first_mut() {
                    let _ = handle.await;
                }
                return;
            }
            Err(e) => {
                let retry_in = (e.kind() != std::io::ErrorKind::InvalidInput).then_some(delay);
                status(&Status::ApiUnavailable {
                    endpoint: format!("http://{addr}/metrics"),
                    error: e.to_string(),
                    retry_in,
                });
                if retry_in.is_none() {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(longest);
    }
}

/// Completes when the service stops answering the driver (the port closed).
async fn closed<T: PortTransport>(service: &Service<T>) {
    while service.is_running() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the policy file and its remembered-rules overlay; a change to either is validated and
/// swapped in atomically. Editors that save by replacing the file are seen too (modification
/// time and size of each path compared; an overlay appearing or disappearing is a change).
async fn watch_policy<T: PortTransport>(shared: Arc<Shared<T>>, path: PathBuf, every: Duration) {
    let overlay = agentsh_policy::overlay::overlay_path(&path);
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let stamp = |p: &Path| one(p).map(|s| (s, one(&overlay)));
    let mut stamps = Stamps::new(stamp(&path));
    loop {
        tokio::time::sleep(every).await;
        let now = stamp(&path);
        if !stamps.should_load(now) {
            continue;
        }
        match shared.reload(&path).await {
            Ok(()) => stamps.loaded(now),
            Err(error) => shared.report(Status::ReloadDeferred {
                path: path.clone(),
                error,
            }),
        }
    }
}

/// When to load a watched file, from its (modification time, size) stamps at each poll.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps<S> {
    /// The stamp of the text in force.
    loaded: Option<S>,
    /// The stamp the previous poll saw.
    seen: Option<S>,
}

impl<S: PartialEq + Clone> Stamps<S> {
    fn new(loaded: Option<S>) -> Self {
        Stamps {
            seen: loaded.clone(),
            loaded,
        }
    }

    /// Whether the file should be loaded now: its stamp differs from the loaded one and is the
    /// same as at the previous poll (a file caught half-written by an in-place save has moved
    /// on by the next poll, so it is not loaded). A missing file is never loaded.
    fn should_load(&mut self, now: Option<S>) -> bool {
        let stable = now == self.seen;
        self.seen = now.clone();
        now.is_some() && now != self.loaded && stable
    }

    /// The text with stamp `now` is in force (after a load, valid or not). Not called when
    /// the file could not be read, so the next poll tries again.
    fn loaded(&mut self, now: Option<S>) {
        self.loaded = now;
    }
}

/// Rotates every session's token on a schedule (the guide's security considerations), without
/// dropping the session's processes: the driver moves them to the new token.
async fn rotate_tokens<T: PortTransport>(shared: Arc<Shared<T>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(service) = shared.service() else {
            continue;
        };
        for session in shared.adapter.sessions.list() {
            if let Err(e) = service.rotate_token(&session.id).await {
                shared.report(Status::TokenRotationFailed {
                    session: session.id.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
}

/// Reads the driver's counters for fail-mode transitions the service could not see.
async fn poll_counters<T: PortTransport>(shared: Arc<Shared<T>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Some(service) = shared.service()
            && let Err(e) = service.poll_driver().await
            && service.is_running()
        {
            shared.report(Status::DriverCountersUnavailable {
                error: e.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_loaded_only_once_two_polls_agree() {
        let mut stamps = Stamps::new(Some(1));
        assert!(!stamps.should_load(Some(1)), "unchanged");
        // An in-place save caught half-written: the stamp moves on at every poll.
        assert!(!stamps.should_load(Some(2)), "first sight of a change");
        assert!(!stamps.should_load(Some(3)), "still being written");
        assert!(stamps.should_load(Some(3)), "stable for two polls");
        stamps.loaded(Some(3));
        assert!(!stamps.should_load(Some(3)), "loaded once");
        // A read error leaves the stamp unloaded: the next poll tries again.
        assert!(!stamps.should_load(Some(4)));
        assert!(stamps.should_load(Some(4)));
        assert!(stamps.should_load(Some(4)), "retried after a failed read");
        assert!(!stamps.should_load(None), "a missing file is never loaded");
        assert!(!stamps.should_load(Some(4)), "back: seen anew first");
        assert!(stamps.should_load(Some(4)));
    }

    fn rules(n: usize, pattern: &str) -> String {
        let mut text =
            String::from("version: 1\nregistry_policy:\n  default_action: deny\n  rules:\n");
        for i in 0..n {
            text.push_str(&format!(
                "    - name: r{i}\n      paths: ['{}']\n      operations: ['*']\n      action: allow\n",
                pattern.replace('N', &i.to_string())
            ));
        }
        text
    }

    #[test]
    fn a_policy_over_the_complexity_budget_is_refused() {
        let within = Policy::from_str(&rules(MAX_UNINDEXED_PATTERNS, "*VendorN*x*"), "p.yaml")
            .expect("valid");
        check_complexity(&within).expect("at the budget");
        let over = Policy::from_str(&rules(MAX_UNINDEXED_PATTERNS + 1, "*VendorN*x*"), "p.yaml")
            .expect("valid");
        let error = check_complexity(&over).expect_err("over the budget");
        assert!(
            error.contains("2001 path patterns start with a wildcard; at most 2000"),
            "{error}"
        );
        let indexed =
            Policy::from_str(&rules(300, "HKCU\\SOFTWARE\\VendorN\\*"), "p.yaml").expect("valid");
        check_complexity(&indexed).expect("indexed patterns cost nothing per request");
    }
}
