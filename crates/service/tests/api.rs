//! The local API: loopback only, a bearer token on every request, sessions registered through it
//! reach the driver, and approvals are answered through it.
#![cfg(unix)]

use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::Policy;
use agentsh_service::events::EventPipeline;
use agentsh_service::{Service, SocketTransport, api};
use agentsh_wire::Operation;

#[path = "common/http.rs"]
mod common_http;
use common_http::http;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_approvals_through_the_token_protected_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 3).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = std::sync::Arc::new(
        Service::start(
            SocketTransport::connect(&socket).await.expect("connects"),
            &policy,
            pipeline,
        )
        .await
        .expect("starts"),
    );
    let token = api::new_token().expect("token");
    let addr = "127.0.0.1:0".parse().expect("addr");
    let (addr, _task) = api::serve(
        addr,
        service.adapter.clone(),
        service.clone(),
        token.clone(),
    )
    .await
    .expect("serves");

    assert_eq!(
        http(addr, "GET", "/v1/approvals", None, "").await.0,
        401,
        "no token"
    );
    assert_eq!(
        http(addr, "GET", "/v1/approvals", Some("wrong"), "")
            .await
            .0,
        401,
        "wrong token"
    );
    let bad = r#"{"root_pid":7,"app":"Microsoft","workspace":"C:\\work"}"#;
    assert_eq!(
        http(addr, "POST", "/v1/sessions", Some(&token), bad)
            .await
            .0,
        400,
        "a shared key is no app name"
    );
    let good = r#"{"root_pid":4100,"app":"TestApp","workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}"#;
    let (status, body) = http(addr, "POST", "/v1/sessions", Some(&token), good).await;
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
            let (_, list) = http(addr, "GET", "/v1/approvals", Some(&token), "").await;
            let v: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
            if let Some(id) = v.get(0).and_then(|a| a["id"].as_u64()) {
                assert!(v[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
                return http(
                    addr,
                    "POST",
                    &format!("/v1/approvals/{id}/allow"),
                    Some(&token),
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
        http(addr, "POST", "/v1/approvals/999/deny", Some(&token), "")
            .await
            .0,
        404
    );

    let (status, metrics) = http(addr, "GET", "/v1/metrics", Some(&token), "").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("agentsh_decision_latency_microseconds_count"));
    assert!(
        metrics.contains("agentsh_driver_pending_decisions 1"),
        "{metrics}"
    );
    assert!(metrics.contains("agentsh_approvals_pending 0"));

    assert_eq!(
        http(addr, "DELETE", "/v1/sessions/s-1", Some(&token), "")
            .await
            .0,
        200
    );
    assert_eq!(
        http(addr, "DELETE", "/v1/sessions/s-1", Some(&token), "")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn the_api_refuses_non_loopback_addresses() {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _rx) = EventPipeline::channel(4);
    let adapter = std::sync::Arc::new(agentsh_service::PolicyAdapter::new(
        policy.engine().clone(),
        pipeline,
    ));
    struct NoDriver;
    impl api::DriverOps for NoDriver {
        fn register(
            &self,
            _: api::SessionRequest,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>>
        {
            Box::pin(async { Err("no driver".to_owned()) })
        }
        fn unregister(
            &self,
            _: String,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + '_>>
        {
            Box::pin(async { Ok(false) })
        }
        fn driver_metrics(
            &self,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = Option<agentsh_wire::control::Metrics>>
                    + Send
                    + '_,
            >,
        > {
            Box::pin(async { None })
        }
    }
    let err = api::serve(
        "0.0.0.0:0".parse().expect("addr"),
        adapter,
        std::sync::Arc::new(NoDriver),
        "t".into(),
    )
    .await
    .expect_err("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}
