//! The local API: approvals, sessions and metrics for the approvals CLI and the sandbox (the
//! driver's port admits one client, the service; everything else goes through here).
//!
//! It is served on a local transport whose operating system tells the service who is calling —
//! a Unix socket in a directory only the service's account can write (the caller's uid, gids and
//! pid from `SO_PEERCRED`), or on Windows a named pipe whose security descriptor refuses network
//! logons and lower-integrity writers (the caller's token by impersonation). No secret is
//! written anywhere: each endpoint is authorized from the caller's identity.
//!
//! | method and path | who may call |
//! |---|---|
//! | `GET /v1/approvals` | an approver: root / Administrators, or a member of the configured approvers group |
//! | `GET /v1/approvals/watch` (JSON lines: a snapshot, then each approval opening and closing) | an approver |
//! | `POST /v1/approvals/{id}/allow` (`?scope=session` for the rest of the session; `remember=app` (or `true`) also writes a remembered rule for the session's app, `remember=all-apps` one for every app) | an approver |
//! | `POST /v1/approvals/{id}/deny` (`?remember=app`, `true` or `all-apps`) | an approver |
//! | `POST /v1/sessions` `{root_pid, app, workspace, workspace_device?, user_sid, audit}` | the owner of `root_pid` (an approver: any pid but 0 and 4) |
//! | `DELETE /v1/sessions/{id}` | an approver, or whoever registered the session |
//! | `GET /v1/metrics` | any local caller |
//!
//! Whatever it may do otherwise, a process that belongs to a sandbox session is refused every
//! endpoint (`403`): its pid, or an ancestor's, is a session's root or a process the kernel
//! announced as a session member, or the kernel, asked about the caller's pid (QuerySession,
//! since announcements are one-way and may arrive after the caller connects), places it in a
//! session. When the kernel cannot be asked (the driver is reconnecting) every local caller is
//! refused with `503`. On Windows, AppContainer, restricted and below-Medium tokens are refused
//! as well.
//!
//! The transport is bounded: connections are counted per client and in total (above either
//! limit a connection is closed at once, so idle connections cannot exhaust descriptors), a
//! request's headers must arrive within [`Limits::header_read_timeout`], a whole request within
//! [`Limits::request_timeout`], a connection lives at most [`Limits::connection_lifetime`], and
//! each client gets [`Limits::rate_per_second`] requests per second (`429` beyond).
//!
//! The opt-in TCP listener ([`serve_metrics_tcp`]) serves `GET /metrics` and nothing else.

#[cfg(windows)]
pub mod pipe;
#[cfg(unix)]
pub mod unix;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, Path as UrlPath, Query, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use crate::adapter::PolicyAdapter;
use crate::approvals::ApprovalOutcome;

/// What the API needs from the running service beyond the adapter: the driver, behind a small
/// object-safe seam so the API does not depend on the transport type.
pub trait DriverOps: Send + Sync + 'static {
    /// Registers a session; returns its public id.
    fn register(
        &self,
        req: SessionRequest,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
    /// Ends a session; `false` if unknown.
    fn unregister(
        &self,
        id: String,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + '_>>;
    /// The driver's counters, if the driver answers.
    fn driver_metrics(
        &self,
    ) -> Pin<Box<dyn Future<Output = Option<agentsh_wire::control::Metrics>> + Send + '_>>;
    /// The session the kernel places `pid` in (QuerySession), `None` when in none; an error when
    /// the kernel cannot be asked.
    fn kernel_session_of(
        &self,
        pid: u32,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + '_>>;
}

/// The longest `app` name (units of a registry key name component).
pub const MAX_APP_LEN: usize = 255;
/// The longest `workspace` (a Windows path without the long-path prefix).
pub const MAX_WORKSPACE_LEN: usize = 259;
/// The longest `workspace_device` (a volume device name and a workspace path).
pub const MAX_WORKSPACE_DEVICE_LEN: usize = 512;
/// The longest `user_sid` (a SID in text with 15 sub-authorities fits).
pub const MAX_SID_LEN: usize = 184;
/// The largest request body the API reads.
pub const MAX_BODY: usize = 4096;

/// A session registration request. Unknown fields are refused, not ignored: a misspelt
/// `workspace` or `audit` must not silently register a session without them.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub root_pid: u32,
    pub app: Option<String>,
    pub workspace: Option<String>,
    /// The workspace as the file system names it (`\Device\HarddiskVolume3\work`), resolved by
    /// the sandbox in its user's context; `${WORKSPACE}` then matches the minifilter's paths even
    /// when `workspace` is spelled through that user's `subst` or mapped drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_device: Option<String>,
    pub user_sid: Option<String>,
    #[serde(default)]
    pub audit: bool,
    /// The wall check's canary (`agentsh-wallcheck-` and 16 hex digits): the service denies
    /// this session's writes to keys and files of that name (`sandbox run`'s driver probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// The wall check's result for the command this session runs (`passed: …`, `skipped`),
    /// recorded with the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_check: Option<String>,
}

/// The prefix of a wall check canary name.
pub const CANARY_PREFIX: &str = "agentsh-wallcheck-";
/// The longest `wall_check` summary.
pub const MAX_WALL_CHECK_LEN: usize = 512;

impl SessionRequest {
    /// The checks that need no caller: the pid is a real process's (never Idle 0 or System 4)
    /// and each text field fits its field.
    pub fn check(&self) -> Result<(), String> {
        if matches!(self.root_pid, 0 | 4) {
            return Err(format!(
                "`root_pid` {} is the system's own process; a session's root must be a process the caller started",
                self.root_pid
            ));
        }
        let fields = [
            ("app", &self.app, MAX_APP_LEN),
            ("workspace", &self.workspace, MAX_WORKSPACE_LEN),
            (
                "workspace_device",
                &self.workspace_device,
                MAX_WORKSPACE_DEVICE_LEN,
            ),
            ("user_sid", &self.user_sid, MAX_SID_LEN),
            ("wall_check", &self.wall_check, MAX_WALL_CHECK_LEN),
        ];
        for (name, value, max) in fields {
            if let Some(v) = value
                && v.chars().count() > max
            {
                return Err(format!(
                    "`{name}` is {} characters long; at most {max} are allowed",
                    v.chars().count()
                ));
            }
        }
        if let Some(c) = &self.canary {
            let digits = c.strip_prefix(CANARY_PREFIX).unwrap_or("");
            if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "`canary` `{c}` is not `{CANARY_PREFIX}` followed by 16 hex digits"
                ));
            }
        }
        Ok(())
    }
}

/// Who is calling, as the transport's operating system reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling process, when the transport knows it (Unix sockets and named pipes do).
    pub pid: Option<u32>,
    /// The account: a Unix uid, or a Windows user SID, in text.
    pub account: String,
    /// Root / Administrators, or a member of the configured approvers group.
    pub approver: bool,
    /// A token Windows marks as sandboxed whatever the session tables say: AppContainer,
    /// restricted, or below Medium integrity.
    pub restricted_token: bool,
    /// How the caller reached the service.
    pub via: Via,
}

/// The transport a caller came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The Unix socket or the named pipe: identity from the operating system.
    Local,
    /// The opt-in TCP listener: no identity; metrics only.
    Tcp,
}

/// Transport limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in total; above it a new connection is closed at once.
    pub max_connections: usize,
    /// Open connections of one account.
    pub max_connections_per_client: usize,
    /// A request's headers must be complete within this.
    pub header_read_timeout: Duration,
    /// A whole request, its body included, must be read and answered within this.
    pub request_timeout: Duration,
    /// A connection is closed after this, whatever it does.
    pub connection_lifetime: Duration,
    /// Requests per second per account (a bucket of twice as many absorbs bursts).
    pub rate_per_second: u32,
    /// Sessions one account may have registered at once.
    pub max_sessions_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_connections_per_client: 32,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
            rate_per_second: 50,
            max_sessions_per_client: 64,
        }
    }
}

/// Decides whether a pid belongs to a sandbox session. The adapter knows session roots and
/// the members the kernel announced; on Linux the service also walks the pid's ancestors.
pub type MembershipProbe = Arc<dyn Fn(u32) -> Option<String> + Send + Sync>;

/// Reports problems of the API itself (a refused bind, accept errors), for the status sink.
pub type ProblemSink = Arc<dyn Fn(String) + Send + Sync>;

/// The state every request is served with.
#[derive(Clone)]
pub struct Api {
    adapter: Arc<PolicyAdapter>,
    driver: Arc<dyn DriverOps>,
    limits: Limits,
    membership: MembershipProbe,
    /// Who registered each session through the API (it may end it again).
    owners: Arc<Mutex<HashMap<String, String>>>,
    rates: Arc<Mutex<HashMap<String, Bucket>>>,
    connections: Arc<Mutex<Connections>>,
    problems: ProblemSink,
    /// The policy file whose remembered-rules overlay `?remember=true` writes (none: the
    /// embedded default policy, nothing to remember into).
    policy_path: Option<Arc<std::path::PathBuf>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Connections {
    total: usize,
    per_client: HashMap<String, usize>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admission {
    connections: Arc<Mutex<Connections>>,
    account: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut c) = self.connections.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_client.get_mut(&self.account) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_client.remove(&self.account);
                }
            }
        }
    }
}

impl Api {
    /// The API of `adapter` and `driver`. `membership` is [`Api::default_membership`] unless a
    /// test supplies another.
    pub fn new(
        adapter: Arc<PolicyAdapter>,
        driver: Arc<dyn DriverOps>,
        limits: Limits,
        problems: ProblemSink,
    ) -> Self {
        let membership = Api::default_membership(adapter.clone());
        Api {
            adapter,
            driver,
            limits,
            membership,
            owners: Arc::default(),
            rates: Arc::default(),
            connections: Arc::default(),
            problems,
            policy_path: None,
        }
    }

    /// Answers with `?remember=true` write their rule into the overlay of this policy file.
    pub fn remember_into(mut self, policy: std::path::PathBuf) -> Self {
        self.policy_path = Some(Arc::new(policy));
        self
    }

    /// Membership as the service knows it: session roots and announced members, then (on
    /// Linux) the same question for each ancestor of the pid.
    pub fn default_membership(adapter: Arc<PolicyAdapter>) -> MembershipProbe {
        Arc::new(move |pid| {
            if let Some(s) = adapter.session_of_process(pid) {
                return Some(s);
            }
            #[cfg(target_os = "linux")]
            for ancestor in unix::ancestors(pid) {
                if let Some(s) = adapter.session_of_process(ancestor) {
                    return Some(s);
                }
            }
            None
        })
    }

    /// Counts a new connection of `account`; `None` when a limit is reached (the caller closes
    /// the connection at once).
    pub fn admit(&self, account: &str) -> Option<Admission> {
        let mut c = self.connections.lock().ok()?;
        let mine = c.per_client.get(account).copied().unwrap_or(0);
        if c.total >= self.limits.max_connections || mine >= self.limits.max_connections_per_client
        {
            return None;
        }
        c.total += 1;
        c.per_client.insert(account.to_owned(), mine + 1);
        Some(Admission {
            connections: self.connections.clone(),
            account: account.to_owned(),
        })
    }

    /// Open connections now.
    pub fn open_connections(&self) -> usize {
        self.connections.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Reports a problem of the API (not of a request).
    pub fn report(&self, problem: String) {
        (self.problems)(problem);
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn take_rate_token(&self, account: &str) -> bool {
        let Ok(mut rates) = self.rates.lock() else {
            return false;
        };
        let now = Instant::now();
        let rate = f64::from(self.limits.rate_per_second.max(1));
        let burst = rate * 2.0;
        if rates.len() > 4096 {
            // Forget accounts whose bucket is full again: they lose nothing.
            rates.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = rates.entry(account.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The router of the local transports.
    pub fn local_router(&self) -> Router {
        Router::new()
            .route("/v1/approvals", get(list_approvals))
            .route("/v1/approvals/watch", get(watch_approvals))
            .route("/v1/approvals/{id}/{answer}", post(answer_approval))
            .route("/v1/sessions", post(register_session))
            .route("/v1/sessions/{id}", delete(unregister_session))
            .route("/v1/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// The router of the TCP metrics listener.
    pub fn metrics_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/v1/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(0))
            .with_state(self.clone())
    }

    /// Serves one connection of `caller` with `router` until it closes or reaches a limit.
    pub async fn serve_connection<IO>(&self, io: IO, caller: Caller, router: Router)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let caller = Arc::new(caller);
        let api = self.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let api = api.clone();
            let caller = caller.clone();
            let router = router.clone();
            async move {
                if !api.take_rate_token(&caller.account) {
                    return Ok::<_, std::convert::Infallible>(refuse(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "more than {} requests per second from this account; slow down",
                            api.limits.rate_per_second
                        ),
                    ));
                }
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(caller);
                let served = tower::ServiceExt::oneshot(router, req);
                Ok(
                    match tokio::time::timeout(api.limits.request_timeout, served).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => refuse(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the request was not complete within {} s",
                                api.limits.request_timeout.as_secs()
                            ),
                        ),
                    },
                )
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(16 * 1024);
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        // A connection that outlives its lifetime is simply dropped (closed).
        let _ = tokio::time::timeout(self.limits.connection_lifetime, connection).await;
    }
}

fn refuse(status: StatusCode, why: String) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// What an endpoint needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Read metrics: any local caller.
    Local,
    /// Register a session: any local caller (ownership of the pid checked separately).
    Register,
    /// List or answer approvals.
    Approver,
}

impl Api {
    /// Refuses (`403`, or `503` when the kernel cannot be asked) a caller that may not use an
    /// endpoint, with the reason.
    async fn authorize(&self, caller: &Caller, need: Need) -> Result<(), Response> {
        self.check(caller, need)
            .map_err(|why| refuse(StatusCode::FORBIDDEN, why))?;
        // The service learns of a session's new processes one way and maybe late; the kernel's
        // table is current. A caller it places in a session is refused like a known member, and
        // a caller it cannot be asked about is refused too (fail closed).
        if caller.via == Via::Local
            && let Some(pid) = caller.pid
        {
            match self.driver.kernel_session_of(pid).await {
                Ok(None) => {}
                Ok(Some(session)) => {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "process {pid} belongs to sandbox session `{session}` (the kernel says so): sandboxed processes may not use the API"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "cannot ask the driver whether process {pid} is in a sandbox session ({e}); refused until it answers"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Why a caller may not use an endpoint.
    fn check(&self, caller: &Caller, need: Need) -> Result<(), String> {
        let forbid = Err;
        if caller.via == Via::Tcp && need != Need::Local {
            return forbid("the TCP listener serves metrics only".into());
        }
        if caller.via == Via::Local {
            if caller.restricted_token {
                return forbid(
                    "the caller's token is an AppContainer, restricted or below-Medium token: sandboxed processes may not use the API"
                        .into(),
                );
            }
            let Some(pid) = caller.pid else {
                return forbid("the transport did not say which process is calling".into());
            };
            if let Some(session) = (self.membership)(pid) {
                return forbid(format!(
                    "process {pid} belongs to sandbox session `{session}`: sandboxed processes may not use the API"
                ));
            }
        }
        if need == Need::Approver && !caller.approver {
            return forbid(format!(
                "account {} is not an approver (root / Administrators or the approvers group)",
                caller.account
            ));
        }
        Ok(())
    }
}

async fn list_approvals(
    State(s): State<Api>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    if let Err(r) = s.authorize(&caller, Need::Approver).await {
        return r;
    }
    axum::Json(s.adapter.approvals.list()).into_response()
}

/// The approvals stream: a snapshot of what waits, then each approval opening and closing as
/// the approval manager announces it (no polling). The stream ends by itself shortly before the
/// connection's lifetime runs out, so a watcher reconnects (and gets a new snapshot) instead of
/// seeing its connection cut; a watcher that falls behind gets a new snapshot in the stream.
async fn watch_approvals(
    State(s): State<Api>,
    Extension(caller): Extension<Arc<Caller>>,
) -> Response {
    if let Err(r) = s.authorize(&caller, Need::Approver).await {
        return r;
    }
    use crate::approvals::WatchLine;
    use tokio::sync::broadcast::error::RecvError;
    // Subscribed before the snapshot is taken: nothing can open or close unseen in between.
    let changes = s.adapter.approvals.subscribe();
    let approvals = s.adapter.approvals.clone();
    let first = WatchLine::snapshot(&approvals);
    let lifetime = s
        .limits
        .connection_lifetime
        .saturating_sub(s.limits.connection_lifetime / 10)
        .max(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + lifetime;
    // Line-safe JSON: a sandbox-chosen name cannot end a line or carry a raw control character
    // (`agentsh_winstr::name::write_json_safe`).
    let encode = |line: &WatchLine| {
        let json = serde_json::to_string(line).unwrap_or_default();
        let mut safe = String::with_capacity(json.len() + 1);
        let _ = agentsh_winstr::name::write_json_safe(&mut safe, &json);
        safe.push('\n');
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(safe))
    };
    let state = (changes, Some(first));
    let stream = futures_util::stream::unfold(state, move |(mut changes, first)| {
        let approvals = approvals.clone();
        async move {
            if let Some(line) = first {
                return Some((encode(&line), (changes, None)));
            }
            let line = match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => return None,
                Ok(Ok(change)) => WatchLine::of(change),
                Ok(Err(RecvError::Lagged(_))) => WatchLine::snapshot(&approvals),
            };
            Some((encode(&line), (changes, None)))
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    scope: Option<String>,
    /// Also keep the answer as a rule in the policy's remembered-rules overlay: `app` (or
    /// `true`) for the session's app, `all-apps` for every session, `false` not at all.
    remember: Option<String>,
}

/// Whom a remembered answer applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RememberFor {
    /// Sessions of the approval's app (`apps: [<app>]`).
    App,
    /// Every session (no `apps:`).
    AllApps,
}

/// `?remember=`: `None` when the answer is not to be remembered.
fn remember_for(value: Option<&str>) -> Result<Option<RememberFor>, String> {
    match value {
        None | Some("false") => Ok(None),
        Some("app" | "true") => Ok(Some(RememberFor::App)),
        Some("all-apps") => Ok(Some(RememberFor::AllApps)),
        Some(other) => Err(format!(
            "remember=`{}` is not understood: give remember=app (or true) for the session's app, remember=all-apps for every app, or remember=false",
            agentsh_winstr::name::Display(other)
        )),
    }
}

/// Writes the rule `?remember=` asks for: the exact key (and value) or file of approval `id`
/// with the answer's decision, for the session's app or every app, noting the session and its
/// app. Returns the rule's name.
fn remember_answer(
    s: &Api,
    info: &crate::approvals::PendingApproval,
    decision: agentsh_policy::Decision,
    scope: RememberFor,
) -> Result<String, String> {
    let Some(policy) = s.policy_path.as_deref() else {
        return Err("the service runs without a policy file (the embedded default): there is no remembered-rules file to write; start it with --policy FILE".into());
    };
    let (registry, operation) =
        if let Some(op) = agentsh_wire::Operation::from_name(&info.operation) {
            (true, agentsh_policy::Access::from(op).op)
        } else if let Some(op) = agentsh_wire::FileOperation::ALL
            .into_iter()
            .find(|o| o.name() == info.operation)
        {
            (false, agentsh_policy::Operation::from(op))
        } else {
            return Err(format!(
                "approval {}: operation `{}` cannot be remembered",
                info.id, info.operation
            ));
        };
    // The app and the key or file as they were when the approval opened: the session's app, and
    // the target as the rules name it and the policy decided it (the session user's hive as HKCU,
    // a file through the service's volume map: the kernel names it by its volume device).
    let app = info.app.clone();
    if info.canonical.is_empty() {
        return Err(format!(
            "approval {}: the service recorded no canonical target for it",
            info.id
        ));
    }
    let key = info.canonical.clone();
    let rule_app = match (scope, app.as_deref()) {
        (RememberFor::AllApps, _) => None,
        (RememberFor::App, Some(a)) => Some(a),
        (RememberFor::App, None) => {
            return Err(format!(
                "approval {}: session {} has no app name, so the answer cannot be remembered for its app; remember it for every app (remember=all-apps, `--remember=all-apps`) or answer without remembering",
                info.id, info.session_id
            ));
        }
    };
    let note = format!(
        "remembered from approval {} of session {} (app {})",
        info.id,
        info.session_id,
        app.as_deref().unwrap_or("none")
    );
    let note: String = note.chars().filter(|c| !c.is_control()).collect();
    let r = agentsh_policy::overlay::Remembered {
        registry,
        path: &key,
        app: rule_app,
        value: info.value_name.as_deref(),
        operation,
        decision,
        note: &note,
    };
    agentsh_policy::overlay::remember(policy, &r)
        .map_err(|e| format!("approval {}: not remembered: {e}", info.id))
}

async fn answer_approval(
    State(s): State<Api>,
    Extension(caller): Extension<Arc<Caller>>,
    UrlPath((id, answer)): UrlPath<(u32, String)>,
    Query(scope): Query<Scope>,
) -> Response {
    if let Err(r) = s.authorize(&caller, Need::Approver).await {
        return r;
    }
    let outcome = match (answer.as_str(), scope.scope.as_deref()) {
        ("allow", None | Some("once")) => ApprovalOutcome::AllowOnce,
        ("allow", Some("session")) => ApprovalOutcome::AllowSession,
        ("deny", None) => ApprovalOutcome::Denied,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unknown answer (expected allow, allow?scope=session or deny)".into(),
            );
        }
    };
    // Remembered first: a rule that cannot be written leaves the approval pending, so the
    // approver can still answer it without --remember.
    let remember = match remember_for(scope.remember.as_deref()) {
        Ok(r) => r,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let mut remembered = String::new();
    if let Some(remember) = remember {
        let Some(info) = s.adapter.approvals.list().into_iter().find(|a| a.id == id) else {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("no approval {id} is pending"),
            );
        };
        let decision = if outcome == ApprovalOutcome::Denied {
            agentsh_policy::Decision::Deny
        } else {
            agentsh_policy::Decision::Allow
        };
        // Reading, checking (a policy compile) and writing run off the runtime that answers
        // the driver, as a reload's compile does.
        let api = s.clone();
        let written =
            tokio::task::spawn_blocking(move || remember_answer(&api, &info, decision, remember))
                .await;
        let whom = match remember {
            RememberFor::App => "for the session's app",
            RememberFor::AllApps => "for every app",
        };
        match written {
            Ok(Ok(name)) => remembered = format!(" (remembered as rule `{name}`, {whom})"),
            Ok(Err(why)) => return refuse(StatusCode::CONFLICT, why),
            Err(e) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("approval {id}: not remembered: {e}"),
                );
            }
        }
    }
    match s.adapter.approvals.answer(id, outcome) {
        Ok(()) => (
            StatusCode::OK,
            format!("approval {id}: {answer}{remembered}\n"),
        )
            .into_response(),
        Err(e) => refuse(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn register_session(
    State(s): State<Api>,
    Extension(caller): Extension<Arc<Caller>>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = s.authorize(&caller, Need::Register).await {
        return r;
    }
    let req: SessionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the session request is not valid: {e}"),
            );
        }
    };
    if let Err(why) = req.check() {
        return refuse(StatusCode::BAD_REQUEST, why);
    }
    if !caller.approver && !owns_process(&caller, req.root_pid) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "account {} does not own process {}: only its owner or an approver may make it a session's root",
                caller.account, req.root_pid
            ),
        );
    }
    let mine = s
        .owners
        .lock()
        .map(|o| o.values().filter(|a| **a == caller.account).count())
        .unwrap_or(usize::MAX);
    if mine >= s.limits.max_sessions_per_client {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "account {} already has {mine} sessions registered (at most {})",
                caller.account, s.limits.max_sessions_per_client
            ),
        );
    }
    match s.driver.register(req).await {
        Ok(id) => {
            if let Ok(mut o) = s.owners.lock() {
                o.insert(id.clone(), caller.account.clone());
            }
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({ "session_id": id })),
            )
                .into_response()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, e),
    }
}

/// Whether the caller's account owns `pid` (Linux: the owner of `/proc/<pid>`; Windows: the
/// user of the process's token).
fn owns_process(caller: &Caller, pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        unix::owner_of(pid).is_some_and(|uid| uid.to_string() == caller.account)
    }
    #[cfg(windows)]
    {
        agentsh_windows::pipe::process_user_sid(pid).is_some_and(|sid| sid == caller.account)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (caller, pid);
        false
    }
}

async fn unregister_session(
    State(s): State<Api>,
    Extension(caller): Extension<Arc<Caller>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Err(r) = s.authorize(&caller, Need::Register).await {
        return r;
    }
    let registered_by_caller = s
        .owners
        .lock()
        .map(|o| o.get(&id) == Some(&caller.account))
        .unwrap_or(false);
    if !caller.approver && !registered_by_caller {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "account {} did not register session `{id}` and is not an approver",
                caller.account
            ),
        );
    }
    match s.driver.unregister(id.clone()).await {
        Ok(found) => {
            if let Ok(mut o) = s.owners.lock() {
                o.remove(&id);
            }
            if found {
                (StatusCode::OK, format!("session `{id}` ended\n")).into_response()
            } else {
                refuse(StatusCode::NOT_FOUND, format!("no session `{id}`"))
            }
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e),
    }
}

async fn metrics(State(s): State<Api>, caller: Option<Extension<Arc<Caller>>>) -> Response {
    let Some(Extension(caller)) = caller else {
        return refuse(StatusCode::FORBIDDEN, "no caller identity".into());
    };
    if let Err(r) = s.authorize(&caller, Need::Local).await {
        return r;
    }
    let driver = s.driver.driver_metrics().await;
    let body = s.adapter.metrics.render(
        driver.as_ref(),
        s.adapter.fail_mode(),
        s.adapter.approvals.pending_count(),
        s.adapter.events.dropped(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The local API's default endpoint: the Unix socket ([`unix::default_socket`]) or the named
/// pipe ([`agentsh_windows::pipe::API_PIPE`]).
pub fn default_endpoint() -> std::path::PathBuf {
    #[cfg(unix)]
    {
        unix::default_socket()
    }
    #[cfg(windows)]
    {
        std::path::PathBuf::from(agentsh_windows::pipe::API_PIPE)
    }
}

/// Creates the local API's endpoint (socket or pipe) and serves it in a task; the task ends
/// only if the endpoint fails for good.
pub fn serve_local(
    api: &Api,
    endpoint: &std::path::Path,
    approvers_group: Option<&str>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    bind_local(endpoint, approvers_group).map(|bound| bound.serve(api))
}

/// The local transport's name taken (the Unix socket bound, or the pipe's first instance created
/// with `FILE_FLAG_FIRST_PIPE_INSTANCE`) but not served yet: the service takes it before the
/// driver handshake, so no other process can create the name while it connects, and serves it
/// once its state exists.
#[derive(Debug)]
pub struct LocalListener {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    #[cfg(unix)]
    approvers: unix::Approvers,
    #[cfg(windows)]
    bound: pipe::Bound,
    endpoint: std::path::PathBuf,
}

/// Takes the local transport's name at `endpoint` (see [`LocalListener`]); `approvers_group` is
/// resolved now. A name another process holds (a squatter) is an error that says so.
pub fn bind_local(
    endpoint: &std::path::Path,
    approvers_group: Option<&str>,
) -> std::io::Result<LocalListener> {
    #[cfg(unix)]
    {
        let approvers = unix::Approvers::resolve(approvers_group)?;
        let listener = unix::bind(endpoint)?;
        Ok(LocalListener {
            listener,
            approvers,
            endpoint: endpoint.to_owned(),
        })
    }
    #[cfg(windows)]
    {
        Ok(LocalListener {
            bound: pipe::bind(endpoint, approvers_group)?,
            endpoint: endpoint.to_owned(),
        })
    }
}

impl LocalListener {
    /// Where it listens.
    pub fn endpoint(&self) -> &std::path::Path {
        &self.endpoint
    }

    /// Serves `api` on it in a task, until the task is dropped.
    pub fn serve(self, api: &Api) -> tokio::task::JoinHandle<()> {
        #[cfg(unix)]
        {
            unix::serve(self.listener, self.endpoint, api.clone(), self.approvers)
        }
        #[cfg(windows)]
        {
            self.bound.serve(api.clone())
        }
    }
}

/// Binds the opt-in TCP metrics listener on a loopback address and serves `GET /metrics` until
/// the task is dropped.
pub async fn serve_metrics_tcp(
    addr: SocketAddr,
    api: Api,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the metrics listener must use a loopback address, not `{addr}`"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = api.metrics_router();
    let task = tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => {
                    failures = 0;
                    x
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        api.report(format!("metrics listener {local}: cannot accept: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // TCP carries no identity: every connection counts against one shared account.
            let account = format!("tcp:{}", peer.ip());
            let Some(admission) = api.admit(&account) else {
                drop(stream);
                continue;
            };
            let caller = Caller {
                pid: None,
                account,
                approver: false,
                restricted_token: false,
                via: Via::Tcp,
            };
            let api = api.clone();
            let router = router.clone();
            tokio::spawn(async move {
                api.serve_connection(stream, caller, router).await;
                drop(admission);
            });
        }
    });
    Ok((local, task))
}
