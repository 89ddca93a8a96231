//! The local HTTP API: approvals, sessions and metrics for the approvals CLI and the sandbox
//! (the driver's port admits one client, the service; everything else goes through here).
//! It binds to loopback only and every request must carry the bearer token the service writes to
//! its token file (readable by the service's account only) — except the proof, which lets a
//! client check that whatever listens on the port knows the token before the client sends it:
//! any local process could bind the port while the service is not running.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/proof?nonce=<64 hex digits>` | no token: `{"proof": hex(HMAC-SHA256(token, "agentsh-api-proof\0" ‖ listening address ‖ "\0" ‖ nonce))}` |
//! | `GET /v1/approvals` | approvals waiting for a person |
//! | `POST /v1/approvals/{id}/allow` (`?scope=session` for the rest of the session) | allow |
//! | `POST /v1/approvals/{id}/deny` | deny |
//! | `POST /v1/sessions` `{root_pid, app, workspace, workspace_device?, user_sid, audit}` | register a sandbox session |
//! | `DELETE /v1/sessions/{id}` | end a session |
//! | `GET /v1/metrics` | Prometheus text: the service's metrics and the driver's counters |

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

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
}

/// A session registration request.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
}

#[derive(Clone)]
struct AppState {
    adapter: Arc<PolicyAdapter>,
    driver: Arc<dyn DriverOps>,
    token: Arc<str>,
    /// The address the API listens on (proofs are bound to it).
    local: SocketAddr,
}

/// The API's default address.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7878);

/// The default API token file: `.agentsh/api-token` under the account's own runtime directory
/// (`XDG_RUNTIME_DIR`), `%LOCALAPPDATA%` or home directory; the shared temporary directory only
/// when none is set (the service then checks the directory's owner and mode before writing).
pub fn default_token_file() -> std::path::PathBuf {
    let base = ["XDG_RUNTIME_DIR", "LOCALAPPDATA", "HOME"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(std::path::PathBuf::from);
    match base {
        Some(dir) => dir.join(".agentsh").join("api-token"),
        None => {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "service".into());
            std::env::temp_dir()
                .join(format!("agentsh-{user}"))
                .join("api-token")
        }
    }
}

/// A fresh API token (hex of 16 random bytes).
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(to_hex(&bytes))
}

/// What a proof of the token covers: this context, then the client's nonce.
pub const PROOF_CONTEXT: &[u8] = b"agentsh-api-proof\0";

/// A proof nonce's length in bytes (twice as many hex digits on the wire).
pub const PROOF_NONCE_LEN: usize = 32;

/// The HMAC-SHA256 of [`PROOF_CONTEXT`], the API's listening address (as `127.0.0.1:7878`, then a
/// NUL) and `nonce`, keyed with the token as the token file holds it (its text). The address
/// binds the proof to the listener the client asked: a process squatting on another address
/// cannot relay the client's nonce to the real service and pass its answer off. `None` only if
/// the MAC refuses the key, which HMAC never does.
fn proof_mac(token: &str, addr: SocketAddr, nonce: &[u8; PROOF_NONCE_LEN]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(PROOF_CONTEXT);
    mac.update(addr.to_string().as_bytes());
    mac.update(b"\0");
    mac.update(nonce);
    Some(mac)
}

/// The proof that the listener at `addr` knows `token`, for `nonce`.
pub fn proof(token: &str, addr: SocketAddr, nonce: &[u8; PROOF_NONCE_LEN]) -> Option<[u8; 32]> {
    proof_mac(token, addr, nonce).map(|m| m.finalize().into_bytes().into())
}

/// Whether `proof` is the proof of `token` at `addr` for `nonce`, compared in constant time.
pub fn verify_proof(
    token: &str,
    addr: SocketAddr,
    nonce: &[u8; PROOF_NONCE_LEN],
    proof: &[u8],
) -> bool {
    proof_mac(token, addr, nonce).is_some_and(|m| m.verify_slice(proof).is_ok())
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly 32 bytes in hex (either case); the error names `what` and says what is wrong.
pub fn parse_hex32(what: &str, text: &str) -> Result<[u8; 32], String> {
    let length = text.chars().count();
    if length != 64 {
        return Err(format!(
            "`{what}` must be 64 hex digits (32 bytes), not {length} characters"
        ));
    }
    let mut out = [0u8; 32];
    for (i, c) in text.chars().enumerate() {
        let Some(digit) = c.to_digit(16) else {
            return Err(format!(
                "`{what}` must be hex: character {} `{}` is not a hex digit",
                i + 1,
                c.escape_default()
            ));
        };
        // 64 characters, so `i / 2` is in range.
        if let Some(byte) = out.get_mut(i / 2) {
            *byte = (*byte << 4) | digit as u8;
        }
    }
    Ok(out)
}

/// Writes the token where only this account can read it.
///
/// The directory is created private (0700) when missing; an existing one must be a real directory
/// (not a symbolic link), owned by this account, and writable by nobody else. The token goes to a
/// freshly created file (never an existing one, so a planted link is not followed) that is then
/// renamed over the token path — replacing whatever entry is there, never writing through it.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let refuse = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "API token directory `{}` {why}; choose another with --api-token-file",
                dir.display()
            ),
        )
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let dir_meta = std::fs::symlink_metadata(dir)?;
    if !dir_meta.is_dir() {
        return Err(refuse("is not a directory (a symbolic link?)"));
    }
    let tmp = dir.join(format!(".api-token.{}", new_token()?));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The file was just created by this process, so its owner is this account.
        let mine = file.metadata()?.uid();
        let foreign = dir_meta.uid() != mine;
        let shared = dir_meta.permissions().mode() & 0o022 != 0;
        if foreign || shared {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(refuse(if foreign {
                "belongs to another account"
            } else {
                "is writable by others"
            }));
        }
    }
    let written =
        std::io::Write::write_all(&mut file, token.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Binds the API on a loopback address and serves it until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    adapter: Arc<PolicyAdapter>,
    driver: Arc<dyn DriverOps>,
    token: String,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the API must listen on a loopback address, not `{addr}`"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = AppState {
        adapter,
        driver,
        token: token.into(),
        local,
    };
    let app = Router::new()
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}/{answer}", post(answer_approval))
        .route("/v1/sessions", post(register_session))
        .route("/v1/sessions/{id}", delete(unregister_session))
        .route("/v1/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Added after the token layer, so it is the one route served without the token.
        .route("/v1/proof", get(prove_token))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "approvals API stopped");
        }
    });
    Ok((local, task))
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.as_bytes(), s.token.as_bytes()));
    if !ok {
        return (StatusCode::UNAUTHORIZED, "missing or wrong API token\n").into_response();
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct ProofQuery {
    nonce: Option<String>,
}

async fn prove_token(State(s): State<AppState>, Query(q): Query<ProofQuery>) -> Response {
    let bad = |why: String| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    let Some(text) = q.nonce else {
        return bad(format!(
            "missing `nonce`: ask `GET /v1/proof?nonce=<{} hex digits>`",
            PROOF_NONCE_LEN * 2
        ));
    };
    let nonce = match parse_hex32("nonce", &text) {
        Ok(n) => n,
        Err(why) => return bad(why),
    };
    match proof(&s.token, s.local, &nonce) {
        Some(p) => axum::Json(serde_json::json!({ "proof": to_hex(&p) })).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot compute the proof\n",
        )
            .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_approvals(State(s): State<AppState>) -> Response {
    axum::Json(s.adapter.approvals.list()).into_response()
}

#[derive(Deserialize)]
struct Scope {
    scope: Option<String>,
}

async fn answer_approval(
    State(s): State<AppState>,
    UrlPath((id, answer)): UrlPath<(u32, String)>,
    Query(scope): Query<Scope>,
) -> Response {
    let outcome = match (answer.as_str(), scope.scope.as_deref()) {
        ("allow", None | Some("once")) => ApprovalOutcome::AllowOnce,
        ("allow", Some("session")) => ApprovalOutcome::AllowSession,
        ("deny", None) => ApprovalOutcome::Denied,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown answer `{answer}` (expected allow, allow?scope=session or deny)\n"
                ),
            )
                .into_response();
        }
    };
    match s.adapter.approvals.answer(id, outcome) {
        Ok(()) => (StatusCode::OK, format!("approval {id}: {answer}\n")).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

async fn register_session(
    State(s): State<AppState>,
    axum::Json(req): axum::Json<SessionRequest>,
) -> Response {
    match s.driver.register(req).await {
        Ok(id) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "session_id": id })),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn unregister_session(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.driver.unregister(id.clone()).await {
        Ok(true) => (StatusCode::OK, format!("session `{id}` ended\n")).into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, format!("no session `{id}`\n")).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let driver = s.driver.driver_metrics().await;
    let body = s.adapter.metrics.render(
        driver.as_ref(),
        s.adapter.fail_mode(),
        s.adapter.approvals.pending_count(),
        s.adapter.events.dropped(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
