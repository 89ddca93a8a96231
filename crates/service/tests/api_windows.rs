//! Registering a session on Windows without being an approver: the caller must own the root
//! process, which the service reads from that process's token (`OpenProcess`,
//! `OpenProcessToken`, `TokenUser`). Run under Wine by scripts/windows.sh.
//!
//! What this shows under Wine: the token of a real process is read and its user compared with
//! the caller's account, so a non-approver caller of the same account registers its own process,
//! and a caller of another account, or a process that does not exist, is refused. The caller's
//! identity is given here as the pipe would report it (the pipe's own impersonation is tested in
//! `agentsh_windows::pipe`): Wine runs every process as one user who is an Administrator, so only
//! a real Windows host shows a standard user's token through the pipe, processes of other users,
//! and `OpenProcess` refused across accounts and integrity levels.
#![cfg(windows)]

use std::sync::{Arc, Mutex};

use agentsh_policy::Policy;
use agentsh_service::PolicyAdapter;
use agentsh_service::api::{self, Api, Caller, Limits, Via};
use agentsh_service::events::EventPipeline;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Registers every session it is asked to (as `s-<pid>`); its kernel places no process in a
/// session.
#[derive(Default)]
struct FakeDriver {
    registered: Mutex<Vec<u32>>,
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
        _: u32,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, String>> + Send + '_>,
    > {
        Box::pin(async { Ok(None) })
    }
}

/// One request from `caller` on an in-memory connection; the status and body.
async fn ask(api: &Api, caller: &Caller, body: &str) -> (u16, String) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let router = api.local_router();
    let served = tokio::spawn({
        let api = api.clone();
        let caller = caller.clone();
        async move { api.serve_connection(server, caller, router).await }
    });
    let req = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
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

#[tokio::test]
async fn a_non_approver_registers_a_process_it_owns_and_nothing_else() {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(16);
    let adapter = Arc::new(PolicyAdapter::new(policy.engine().clone(), pipeline));
    let driver = Arc::new(FakeDriver::default());
    let api = Api::new(adapter, driver.clone(), Limits::default(), Arc::new(|_| {}));
    // A child of this test: a real process of this account, as `sandbox run` would register.
    let mut child = std::process::Command::new("cmd.exe")
        .args(["/c", "ping -n 30 127.0.0.1 >NUL"])
        .spawn()
        .expect("starts a child process");
    let root = child.id();
    let me = agentsh_windows::pipe::process_user_sid(std::process::id())
        .expect("this process's token names its user");
    assert!(me.starts_with("S-1-"), "{me}");
    assert_eq!(
        agentsh_windows::pipe::process_user_sid(root).as_deref(),
        Some(me.as_str()),
        "the child runs as the same account"
    );
    let developer = Caller {
        pid: Some(std::process::id()),
        account: me.clone(),
        approver: false,
        restricted_token: false,
        via: Via::Local,
    };
    let body = format!(r#"{{"root_pid":{root}}}"#);
    let (status, text) = ask(&api, &developer, &body).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(*driver.registered.lock().expect("lock"), vec![root]);

    // Another account's caller may not make this account's process a session's root.
    let stranger = Caller {
        account: "S-1-5-21-1111111111-2222222222-3333333333-1001".into(),
        ..developer.clone()
    };
    let (status, text) = ask(&api, &stranger, &body).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("does not own process"), "{text}");

    // A process id nobody has: its owner cannot be read, so it is refused.
    let _ = child.kill();
    let _ = child.wait();
    let (status, text) = ask(&api, &developer, r#"{"root_pid":4294967292}"#).await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(
        driver.registered.lock().expect("lock").len(),
        1,
        "nothing else was registered"
    );
}

/// The pipe taken before the driver handshake (`bind_local`) and served afterwards
/// (`LocalListener::serve`): a client that checks its server reaches the API and is identified
/// by impersonation. Under Wine the caller is this test itself.
#[tokio::test]
async fn the_pipe_taken_early_is_served_later_to_an_identified_client() {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(16);
    let adapter = Arc::new(PolicyAdapter::new(policy.engine().clone(), pipeline));
    let api = Api::new(
        adapter,
        Arc::new(FakeDriver::default()),
        Limits::default(),
        Arc::new(|_| {}),
    );
    let name = std::path::PathBuf::from(format!(
        r"\\.\pipe\agentsh-test-early-{}",
        std::process::id()
    ));
    let bound = api::bind_local(&name, None).expect("the pipe's first instance");
    assert_eq!(bound.endpoint(), name.as_path());
    // Not served yet: the service would be connecting to the driver now.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let _task = bound.serve(&api);
    let mut client = agentsh_windows::pipe::connect(&name).expect("a server of this user");
    client
        .write_all(b"GET /v1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut out = String::new();
    let _ = client.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("agentsh_approvals_pending 0"), "{out}");
}
