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
    ApiListening {
        addr: SocketAddr,
        token_file: PathBuf,
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
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Connected { fail_mode } => write!(
                f,
                "connected to the driver ({fail_mode:?} mode); this process is excluded from interception"
            ),
            Status::ApiListening { addr, token_file } => write!(
                f,
                "approvals API on http://{addr} (token in `{}`)",
                token_file.display()
            ),
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
            Status::Stopped => f.write_str("stopped"),
        }
    }
}

/// Receives [`Status`] reports.
pub type StatusSink = Arc<dyn Fn(&Status) + Send + Sync>;

/// Protects the API token file once written (see [`RunOptions::protect_token_file`]).
pub type TokenFileGuard = Arc<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

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
    /// The approvals API's loopback address.
    pub api_listen: SocketAddr,
    /// Where the API token is written.
    pub api_token_file: PathBuf,
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
    /// Applied to the API token file right after it is written (on Windows: a protected DACL and
    /// a no-read-up label, `agentsh_windows::secure::protect_token_file`); a failure stops the
    /// service rather than leave the token readable by sandboxed processes.
    pub protect_token_file: Option<TokenFileGuard>,
    pub status: StatusSink,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("policy_path", &self.policy_path)
            .field("overrides", &self.overrides)
            .field("sinks", &self.sinks)
            .field("api_listen", &self.api_listen)
            .field("api_token_file", &self.api_token_file)
            .field("token_rotation", &self.token_rotation)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options with the guide's defaults: events as the policy says, the API where the policy
    /// says (else [`api::DEFAULT_LISTEN`]), token file where the policy says (else
    /// [`api::default_token_file`]), hourly token rotation, reconnects from 100 ms up to 5 s,
    /// status reported through `tracing`.
    pub fn new(policy: Policy, policy_path: Option<PathBuf>) -> Result<Self, RunError> {
        let approvals = &policy.settings().approvals;
        let api_listen = match &approvals.api_listen {
            Some(a) => a.parse().map_err(|e| {
                RunError::Config(format!(
                    "approvals.api_listen `{a}` is not an address like 127.0.0.1:7878: {e}"
                ))
            })?,
            None => api::DEFAULT_LISTEN,
        };
        let api_token_file = approvals
            .api_token_file
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(api::default_token_file);
        let base = policy_path.as_deref().and_then(Path::parent);
        let sinks = SinkSpec::from_policy(&policy, base);
        let terminal_prompt = approvals.terminal_prompt;
        Ok(RunOptions {
            sinks,
            deliver_to: Vec::new(),
            api_listen,
            api_token_file,
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
            protect_token_file: None,
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
    #[error("approvals API: {0}")]
    Api(std::io::Error),
    #[error("API token file `{path}`: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The connection in use (none while reconnecting) and what outlives it.
struct Shared<T: PortTransport> {
    adapter: Arc<PolicyAdapter>,
    current: RwLock<Option<Arc<Service<T>>>>,
    config: Mutex<DriverConfig>,
    overrides: DriverOverrides,
    status: StatusSink,
}

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

    /// A changed policy: validated (by loading), its driver configuration checked, then swapped
    /// in — on the connection if there is one, else on the adapter, sent on reconnect.
    async fn reload(&self, path: &Path) {
        let loaded = Policy::from_path(path)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                self.overrides
                    .config(&p)
                    .map(|c| (p, c))
                    .map_err(|e| e.to_string())
            });
        let (policy, config) = match loaded {
            Ok(x) => x,
            Err(error) => {
                return self.report(Status::ReloadRejected {
                    path: path.to_owned(),
                    error,
                });
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
    }
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
    // Handshake and exclusion first: nothing the service does afterwards (event files, the token
    // file, the API) is intercepted, so a WinFsp mount it serves is never counted twice.
    let client = DriverClient::connect(first).await?;
    let mut sinks = options
        .sinks
        .iter()
        .map(SinkSpec::open)
        .collect::<Result<Vec<_>, _>>()?;
    sinks.extend(options.deliver_to.iter().cloned().map(Sink::Each));
    let capacity = options.policy.settings().events.queue_capacity as usize;
    let events = EventPipeline::spawn_sinks(capacity, sinks);
    let adapter = Arc::new(PolicyAdapter::for_policy(&options.policy, events));
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
    });

    let service = Arc::new(Service::serve_with(client, adapter.clone(), config).await?);
    shared.set(Some(service));
    shared.report(Status::Connected {
        fail_mode: config.fail_mode,
    });

    let token = api::new_token().map_err(RunError::Api)?;
    api::write_token_file(&options.api_token_file, &token).map_err(|source| {
        RunError::TokenFile {
            path: options.api_token_file.clone(),
            source,
        }
    })?;
    if let Some(protect) = &options.protect_token_file
        && let Err(e) = protect(&options.api_token_file)
    {
        let _ = std::fs::remove_file(&options.api_token_file);
        return Err(RunError::TokenFile {
            path: options.api_token_file.clone(),
            source: std::io::Error::other(format!("cannot protect it: {e}")),
        });
    }
    let (addr, api_task) = api::serve(options.api_listen, adapter.clone(), shared.clone(), token)
        .await
        .map_err(RunError::Api)?;
    shared.report(Status::ApiListening {
        addr,
        token_file: options.api_token_file.clone(),
    });

    let mut tasks = Tasks(vec![api_task]);
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
    // The token dies with the service: a client reading a stale file fails at once.
    let _ = std::fs::remove_file(&options.api_token_file);
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

/// Completes when the service stops answering the driver (the port closed).
async fn closed<T: PortTransport>(service: &Service<T>) {
    while service.is_running() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the policy file; a changed file is validated and swapped in atomically. Editors that
/// save by replacing the file are seen too (modification time and size of the path compared).
async fn watch_policy<T: PortTransport>(shared: Arc<Shared<T>>, path: PathBuf, every: Duration) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(every).await;
        let now = stamp(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        shared.reload(&path).await;
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
