//! The local API over its Unix socket: callers are identified by the operating system
//! (`SO_PEERCRED`), each endpoint is authorized from that identity, sandboxed processes are
//! refused whatever they may otherwise do, input is bounded, and the transport limits hold.
//!
//! What this proves on Linux: the authorization rules, the session-membership refusal (roots,
//! announced members, a real pid's ancestors, and a real pid the kernel placed in a session whose
//! announcement the service has not read), the limits and timeouts. What only Windows
//! can show: the named pipe's identity (impersonation, token groups, integrity level,
//! AppContainer) — the rules it feeds are the same `Caller` checks exercised here.
#![cfg(target_os = "linux")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::api::{self, Api, Caller, Limits, Via};
use agentsh_service::events::EventPipeline;
use agentsh_service::{PolicyAdapter, Service, SocketTransport};
use agentsh_wire::Operation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/http.rs"]
mod common_http;
use common_http::http;

fn no_problems() -> api::ProblemSink {
    Arc::new(|_| {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_approvals_through_the_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 3).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = Arc::new(
        Service::start(
            SocketTransport::connect(&socket).await.expect("connects"),
            &policy,
            pipeline,
        )
        .await
        .expect("starts"),
    );
    let local = Api::new(
        service.adapter.clone(),
        service.clone(),
        Limits::default(),
        no_problems(),
    );
    let api_socket = dir.path().join("api").join("api.sock");
    let _task = api::serve_local(&local, &api_socket, None).expect("serves");

    let bad = r#"{"root_pid":7,"app":"Microsoft","workspace":"C:\\work"}"#;
    assert_eq!(
        http(&api_socket, "POST", "/v1/sessions", bad).await.0,
        400,
        "a shared key is no app name"
    );
    let good = r#"{"root_pid":4100,"app":"TestApp","workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}"#;
    let (status, body) = http(&api_socket, "POST", "/v1/sessions", good).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"session_id\":\"s-1\""), "{body}");

    let create = OperationRequest {
        pid: 4100,
        thread_id: 1,
        target: Target::registry(
            Operation::CreateKey,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x",
            "",
            None,
            0,
            0,
        ),
    };
    let approve = async {
        for _ in 0..200 {
            let (_, list) = http(&api_socket, "GET", "/v1/approvals", "").await;
            let v: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
            if let Some(id) = v.get(0).and_then(|a| a["id"].as_u64()) {
                return http(
                    &api_socket,
                    "POST",
                    &format!("/v1/approvals/{id}/allow"),
                    "",
                )
                .await
                .0;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        0
    };
    let (out, status) = tokio::join!(emulator.perform(&create), approve);
    assert_eq!(status, 200);
    assert_eq!(out.verdict, Verdict::Allow);
    assert_eq!(
        http(&api_socket, "POST", "/v1/approvals/999/deny", "")
            .await
            .0,
        404
    );
    let (status, metrics) = http(&api_socket, "GET", "/v1/metrics", "").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("agentsh_approvals_pending 0"), "{metrics}");
    assert_eq!(
        http(&api_socket, "DELETE", "/v1/sessions/s-1", "").await.0,
        200
    );
    assert_eq!(
        http(&api_socket, "DELETE", "/v1/sessions/s-1", "").await.0,
        404
    );
}

/// A driver that registers every session it is asked to (as `s-<pid>`) and ends any; its kernel
/// places the pids of `kernel_members` in sessions, and cannot be asked at all when
/// `unreachable`.
#[derive(Default)]
struct FakeDriver {
    registered: Mutex<Vec<u32>>,
    kernel_members: Mutex<std::collections::HashMap<u32, String>>,
    unreachable: bool,
}

impl api::DriverOps for FakeDriver {
    fn register(
        &self,
        req: api::SessionRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>>
    {
        self.registered.lock().expect("lock").push(req.root_pid);
        Box::pin(async move { Ok(format!("s-{}", req.root_pid)) })
    }
    fn unregister(
        &self,
        _: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + '_>>
    {
        Box::pin(async { Ok(true) })
    }
    fn driver_metrics(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<agentsh_wire::control::Metrics>> + Send + '_>,
    > {
        Box::pin(async { None })
    }
    fn kernel_session_of(
        &self,
        pid: u32,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, String>> + Send + '_>,
    > {
        let answer = if self.unreachable {
            Err("the driver is not connected".to_owned())
        } else {
            Ok(self.kernel_members.lock().expect("lock").get(&pid).cloned())
        };
        Box::pin(async move { answer })
    }
}

fn adapter() -> Arc<PolicyAdapter> {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _rx) = EventPipeline::channel(4);
    Arc::new(PolicyAdapter::new(policy.engine().clone(), pipeline))
}

/// One request from `caller` on an in-memory connection; the status code.
async fn ask(api: &Api, caller: &Caller, method: &str, path: &str, body: &str) -> (u16, String) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let router = if caller.via == Via::Tcp && path == "/metrics" {
        api.metrics_router()
    } else {
        api.local_router()
    };
    let served = tokio::spawn({
        let api = api.clone();
        let caller = caller.clone();
        async move { api.serve_connection(server, caller, router).await }
    });
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A server that refuses a body early closes before it is all written: the answer counts.
    let _ = client.write_all(req.as_bytes()).await;
    let mut out = String::new();
    let _ = client.read_to_string(&mut out).await;
    served.await.expect("served");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn caller(pid: u32, account: &str, approver: bool) -> Caller {
    Caller {
        pid: Some(pid),
        account: account.into(),
        approver,
        restricted_token: false,
        via: Via::Local,
    }
}

/// This process's uid, as the API names accounts.
fn my_uid() -> String {
    api::unix::effective_uid().expect("uid").to_string()
}

#[tokio::test]
async fn approving_needs_an_approver_and_registering_needs_the_processs_owner() {
    let adapter = adapter();
    let driver = Arc::new(FakeDriver::default());
    let api = Api::new(
        adapter.clone(),
        driver.clone(),
        Limits::default(),
        no_problems(),
    );
    let me = std::process::id();
    let other = if my_uid() == "0" { "1000" } else { "0" };

    let root = caller(me, &my_uid(), true);
    let stranger = caller(me, other, false);
    assert_eq!(ask(&api, &root, "GET", "/v1/approvals", "").await.0, 200);
    for (method, path) in [
        ("GET", "/v1/approvals"),
        ("GET", "/v1/approvals/watch"),
        ("POST", "/v1/approvals/1/allow"),
        ("POST", "/v1/approvals/1/allow?scope=session"),
        ("POST", "/v1/approvals/1/deny"),
    ] {
        let (status, body) = ask(&api, &stranger, method, path, "").await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body.contains("is not an approver"), "{body}");
    }
    assert_eq!(
        ask(&api, &stranger, "GET", "/v1/metrics", "").await.0,
        200,
        "metrics need only local access"
    );

    // Registering: only a process the caller owns (this test's own pid belongs to my_uid()).
    let mine = format!(r#"{{"root_pid":{me}}}"#);
    let (status, body) = ask(&api, &stranger, "POST", "/v1/sessions", &mine).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(&format!("does not own process {me}")),
        "{body}"
    );
    let owner = caller(me, &my_uid(), false);
    let (status, body) = ask(&api, &owner, "POST", "/v1/sessions", &mine).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(driver.registered.lock().expect("lock").as_slice(), &[me]);
    // Ending it: whoever registered it, or an approver; nobody else.
    let end = format!("/v1/sessions/s-{me}");
    assert_eq!(ask(&api, &stranger, "DELETE", &end, "").await.0, 403);
    assert_eq!(ask(&api, &owner, "DELETE", &end, "").await.0, 200);
    assert_eq!(
        ask(&api, &root, "DELETE", "/v1/sessions/s-77", "").await.0,
        200
    );
}

/// The approvals stream: what waits when the watcher connects, then each approval opening and
/// closing as it happens, and the stream ends by itself before the connection's lifetime.
#[tokio::test]
async fn the_watch_stream_sends_a_snapshot_then_each_change_and_ends_before_the_lifetime() {
    use agentsh_service::approvals::{ApprovalOutcome, GrantKey, PendingApproval, WatchLine};
    let adapter = adapter();
    let limits = Limits {
        connection_lifetime: Duration::from_secs(2),
        ..Limits::default()
    };
    let api = Api::new(
        adapter.clone(),
        Arc::new(FakeDriver::default()),
        limits,
        no_problems(),
    );
    let asking = |path: &str| {
        let info = PendingApproval {
            session_id: "s-1".into(),
            operation: "CreateKey".into(),
            path: path.into(),
            timeout_secs: 30,
            ..PendingApproval::default()
        };
        let grant = GrantKey {
            session_id: "s-1".into(),
            operation: "CreateKey",
            canonical: path.to_ascii_uppercase(),
            value_name: None,
        };
        (info, grant)
    };
    let (info, grant) = asking("\\REGISTRY\\MACHINE\\SYSTEM\\a");
    let (waiting, _timer) = adapter.approvals.open(info, grant);
    let approvals = adapter.approvals.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (info, grant) = asking("\\REGISTRY\\MACHINE\\SYSTEM\\b");
        let (id, outcome) = approvals.open(info, grant);
        approvals
            .answer(id, ApprovalOutcome::Denied)
            .expect("answered");
        (id, outcome.await)
    });
    let started = std::time::Instant::now();
    let (status, body) = ask(
        &api,
        &caller(std::process::id(), &my_uid(), true),
        "GET",
        "/v1/approvals/watch",
        "",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "ended itself before the lifetime: {took:?}"
    );
    let (second, outcome) = later.await.expect("joins");
    assert_eq!(outcome, ApprovalOutcome::Denied);
    // The body is chunked: the JSON lines are the lines that parse.
    let lines: Vec<WatchLine> = body
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(
        matches!(&lines[0], WatchLine::Snapshot { approvals, .. } if approvals.iter().map(|a| a.id).collect::<Vec<_>>() == [waiting]),
        "{lines:?}"
    );
    assert!(
        matches!(&lines[1], WatchLine::Opened { approval, .. } if approval.id == second && approval.path.ends_with("\\b")),
        "{lines:?}"
    );
    assert!(
        matches!(&lines[2], WatchLine::Closed { id, outcome: ApprovalOutcome::Denied, .. } if *id == second),
        "{lines:?}"
    );
}

#[tokio::test]
async fn registration_input_is_bounded_and_checked() {
    let api = Api::new(
        adapter(),
        Arc::new(FakeDriver::default()),
        Limits::default(),
        no_problems(),
    );
    let root = caller(std::process::id(), &my_uid(), true);
    for (body, expect) in [
        (r#"{"root_pid":0}"#.to_owned(), "system's own process"),
        (r#"{"root_pid":4}"#.to_owned(), "system's own process"),
        (
            r#"{"root_pid":77,"Audit":true}"#.to_owned(),
            "unknown field `Audit`",
        ),
        (
            r#"{"root_pid":77,"worksapce":"C:\\w"}"#.to_owned(),
            "unknown field `worksapce`",
        ),
        (
            format!(r#"{{"root_pid":77,"app":"{}"}}"#, "a".repeat(256)),
            "`app` is 256 characters long; at most 255",
        ),
        (
            format!(r#"{{"root_pid":77,"workspace":"{}"}}"#, "w".repeat(260)),
            "`workspace` is 260 characters long; at most 259",
        ),
        (
            r#"{"root_pid":77,"canary":"HKLM-anything"}"#.to_owned(),
            "`canary` `HKLM-anything` is not `agentsh-wallcheck-` followed by 16 hex digits",
        ),
        (
            r#"{"root_pid":77,"canary":"agentsh-wallcheck-0011"}"#.to_owned(),
            "followed by 16 hex digits",
        ),
        (
            format!(r#"{{"root_pid":77,"wall_check":"{}"}}"#, "p".repeat(513)),
            "`wall_check` is 513 characters long; at most 512",
        ),
    ] {
        let (status, text) = ask(&api, &root, "POST", "/v1/sessions", &body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(expect), "{body}: {text}");
    }
    let huge = format!(r#"{{"root_pid":77,"app":"{}"}}"#, "a".repeat(2_000_000));
    assert_eq!(
        ask(&api, &root, "POST", "/v1/sessions", &huge).await.0,
        413,
        "a body over the API's limit is not read"
    );
}

#[tokio::test]
async fn a_process_in_a_sandbox_session_is_refused_every_endpoint() {
    let adapter = adapter();
    let api = Api::new(
        adapter.clone(),
        Arc::new(FakeDriver::default()),
        Limits::default(),
        no_problems(),
    );
    // A session whose root is 4100; the kernel announced 4101 as its member.
    let ctx = SessionContext::new(Some("TestApp"), Some(r"C:\work"), None).expect("context");
    let (_, session) = adapter
        .sessions
        .register(4100, ctx, false, Default::default())
        .expect("session");
    adapter.session_member(4101, session.numeric_id);
    // This test's own parent as another session's root: the test process is its descendant,
    // as a child is before the kernel's announcement of it arrives.
    let parent = std::os::unix::process::parent_id();
    let ctx = SessionContext::new(Some("Other"), Some(r"C:\other"), None).expect("context");
    let (_, parents) = adapter
        .sessions
        .register(parent, ctx, false, Default::default())
        .expect("session");

    for (pid, session) in [
        (4100, &session.id),
        (4101, &session.id),
        (std::process::id(), &parents.id),
    ] {
        // An approver by account (root), holding whatever the service writes: still refused.
        let sandboxed = caller(pid, &my_uid(), true);
        for (method, path, body) in [
            ("GET", "/v1/approvals", ""),
            ("GET", "/v1/approvals/watch", ""),
            ("POST", "/v1/approvals/1/allow?scope=session", ""),
            ("POST", "/v1/approvals/1/deny", ""),
            ("DELETE", "/v1/sessions/s-1", ""),
            ("POST", "/v1/sessions", r#"{"root_pid":4242}"#),
            ("GET", "/v1/metrics", ""),
        ] {
            let (status, text) = ask(&api, &sandboxed, method, path, body).await;
            assert_eq!(status, 403, "pid {pid}: {method} {path}: {text}");
            assert!(
                text.contains(&format!("belongs to sandbox session `{session}`")),
                "{text}"
            );
        }
    }
    let unknown = Caller {
        pid: None,
        ..caller(1, &my_uid(), true)
    };
    assert_eq!(ask(&api, &unknown, "GET", "/v1/approvals", "").await.0, 403);
    let restricted = Caller {
        restricted_token: true,
        ..caller(std::process::id() + 1_000_000, &my_uid(), true)
    };
    assert_eq!(
        ask(&api, &restricted, "GET", "/v1/metrics", "").await.0,
        403
    );
}

#[tokio::test]
async fn the_tcp_listener_serves_metrics_only() {
    let api = Api::new(
        adapter(),
        Arc::new(FakeDriver::default()),
        Limits::default(),
        no_problems(),
    );
    let tcp = Caller {
        pid: None,
        account: "tcp:127.0.0.1".into(),
        approver: false,
        restricted_token: false,
        via: Via::Tcp,
    };
    let (status, body) = ask(&api, &tcp, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("agentsh_approvals_pending"), "{body}");
    assert_eq!(ask(&api, &tcp, "GET", "/v1/approvals", "").await.0, 403);

    let (addr, _task) = api::serve_metrics_tcp("127.0.0.1:0".parse().expect("addr"), api.clone())
        .await
        .expect("binds");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    s.write_all(b"GET /v1/approvals HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(
        out.starts_with("HTTP/1.1 404"),
        "no approvals over TCP: {out}"
    );
    let refused = api::serve_metrics_tcp("0.0.0.0:0".parse().expect("addr"), api).await;
    assert!(refused.is_err(), "loopback only");
}

#[tokio::test]
async fn requests_beyond_the_rate_and_sessions_beyond_the_quota_are_refused() {
    let limits = Limits {
        rate_per_second: 2,
        max_sessions_per_client: 1,
        ..Limits::default()
    };
    let api = Api::new(
        adapter(),
        Arc::new(FakeDriver::default()),
        limits,
        no_problems(),
    );
    let me = caller(std::process::id(), &my_uid(), true);
    let body = r#"{"root_pid":4242}"#;
    assert_eq!(ask(&api, &me, "POST", "/v1/sessions", body).await.0, 201);
    let (status, text) = ask(&api, &me, "POST", "/v1/sessions", body).await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("sessions registered (at most 1)"), "{text}");
    // A bucket of 4 (twice the rate): the two above, two more, then refused.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(ask(&api, &me, "GET", "/v1/metrics", "").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let other = caller(std::process::id(), "4321", false);
    assert_eq!(
        ask(&api, &other, "GET", "/v1/metrics", "").await.0,
        200,
        "another account has its own budget"
    );
}

#[tokio::test]
async fn connections_beyond_the_limits_are_closed_and_idle_ones_time_out() {
    let limits = Limits {
        max_connections_per_client: 2,
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let api = Api::new(
        adapter(),
        Arc::new(FakeDriver::default()),
        limits,
        no_problems(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("api").join("api.sock");
    let _task = api::serve_local(&api, &socket, None).expect("serves");

    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(
            tokio::net::UnixStream::connect(&socket)
                .await
                .expect("connects"),
        );
    }
    for _ in 0..100 {
        if api.open_connections() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.open_connections(), 2);
    // A third connection of the same account is closed at once, without an answer.
    let mut third = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connects");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed, not left waiting")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // The idle ones send no header: closed after the header-read timeout.
    for mut s in idle {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed by the header-read timeout")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    for _ in 0..100 {
        if api.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.open_connections(), 0, "their places are free again");
    assert_eq!(http(&socket, "GET", "/v1/metrics", "").await.0, 200);
}

#[test]
fn the_socket_directory_must_be_private_and_a_live_socket_is_not_taken_over() {
    use std::os::unix::fs::PermissionsExt;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("dir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = api::unix::bind(&shared.join("api.sock")).expect_err("shared dir");
    assert!(
        err.to_string().contains("is writable by other accounts"),
        "{err}"
    );

    let socket = dir.path().join("api").join("api.sock");
    let _live = api::unix::bind(&socket).expect("binds");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "every account may connect");
    let dir_mode = std::fs::metadata(socket.parent().expect("dir"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o755, "nobody else may create entries");
    let err = api::unix::bind(&socket).expect_err("in use");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    std::fs::write(dir.path().join("api").join("file"), "x").expect("file");
    let err = api::unix::bind(&dir.path().join("api").join("file")).expect_err("not a socket");
    assert!(err.to_string().contains("is not a socket"), "{err}");
}

#[tokio::test]
async fn a_caller_the_kernel_places_in_a_session_is_refused_and_an_unanswering_kernel_refuses_all()
{
    // The service knows nothing of pid 4300; the kernel says it is in session `s-9`.
    let driver = FakeDriver::default();
    driver
        .kernel_members
        .lock()
        .expect("lock")
        .insert(4300, "s-9".into());
    let api = Api::new(
        adapter(),
        Arc::new(driver),
        Limits::default(),
        no_problems(),
    );
    let member = caller(4300, &my_uid(), true);
    let (status, text) = ask(&api, &member, "GET", "/v1/approvals", "").await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("belongs to sandbox session `s-9` (the kernel says so)"),
        "{text}"
    );
    // Any other pid the kernel does not place is served.
    assert_eq!(
        ask(
            &api,
            &caller(4301, &my_uid(), true),
            "GET",
            "/v1/approvals",
            ""
        )
        .await
        .0,
        200
    );

    // A kernel that cannot be asked: every local caller is refused (503), metrics included.
    let down = FakeDriver {
        unreachable: true,
        ..FakeDriver::default()
    };
    let api = Api::new(adapter(), Arc::new(down), Limits::default(), no_problems());
    for (method, path) in [("GET", "/v1/approvals"), ("GET", "/v1/metrics")] {
        let (status, text) = ask(&api, &caller(4302, &my_uid(), true), method, path, "").await;
        assert_eq!(status, 503, "{method} {path}: {text}");
        assert!(text.contains("cannot ask the driver"), "{text}");
    }
}

/// The late announcement, with a real pid over the Unix socket: the emulated kernel tracks this
/// test process as a child of a session's root, but its one-way announcement is held back (the
/// kernel core queues it and nothing sends it), so the service has not seen it and the pid's
/// ancestors are no session's root. The API asks the kernel (QuerySession) and refuses every
/// endpoint. What only Windows can show: the same question asked through `FilterSendMessage` to
/// agentsh.sys (its kernel-model test runs the message through the driver's callback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_pid_whose_announcement_the_service_has_not_seen_is_refused_every_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 5).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = Arc::new(
        Service::start(
            SocketTransport::connect(&socket).await.expect("connects"),
            &policy,
            pipeline,
        )
        .await
        .expect("starts"),
    );
    let api = Api::new(
        service.adapter.clone(),
        service.clone(),
        Limits::default(),
        no_problems(),
    );
    let api_socket = dir.path().join("api").join("api.sock");
    let _task = api::serve_local(&api, &api_socket, None).expect("serves");

    // Before: this process is in no session, and is served.
    assert_eq!(http(&api_socket, "GET", "/v1/approvals", "").await.0, 200);

    let ctx = SessionContext::new(Some("TestApp"), Some(r"C:\work"), None).expect("context");
    let session = service
        .register_session(4400, ctx, false)
        .await
        .expect("registers");
    let me = std::process::id();
    let queued_before = emulator.with_core(|core| {
        let before = core.has_notifications();
        let joined = core.on_process_created(me, 4400, 4400, &[]);
        assert_eq!(joined.map(|s| s.id), Some(session.numeric_id));
        before
    });
    assert!(!queued_before, "nothing else was waiting to be announced");
    assert!(
        emulator.with_core(|core| core.has_notifications()),
        "the announcement is still queued in the kernel"
    );
    assert_eq!(
        service.adapter.session_of_process(me),
        None,
        "the service has not seen the announcement"
    );

    for (method, path, body) in [
        ("GET", "/v1/approvals", ""),
        ("POST", "/v1/approvals/1/allow?scope=session", ""),
        ("POST", "/v1/approvals/1/deny", ""),
        (
            "DELETE",
            &format!("/v1/sessions/{}", session.id) as &str,
            "",
        ),
        ("POST", "/v1/sessions", r#"{"root_pid":4242}"#),
        ("GET", "/v1/metrics", ""),
    ] {
        let (status, text) = http(&api_socket, method, path, body).await;
        assert_eq!(status, 403, "{method} {path}: {text}");
        assert!(
            text.contains(&format!(
                "process {me} belongs to sandbox session `{}`",
                session.id
            )),
            "{method} {path}: {text}"
        );
    }
    // The session is still there: the refused DELETE did not end it.
    assert!(
        service
            .adapter
            .sessions
            .list()
            .iter()
            .any(|s| s.id == session.id)
    );
}
