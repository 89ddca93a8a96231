//! The local API: loopback only, a bearer token on every request but the proof of the token,
//! sessions registered through it reach the driver, and approvals are answered through it.
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
    assert!(metrics.contains("agentsh_decision_latency_seconds_count"));
    assert!(
        metrics.contains("agentsh_driver_pending_decisions_total 1"),
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

/// A service without a driver: enough for the API's own behaviour.
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
        Box<dyn std::future::Future<Output = Option<agentsh_wire::control::Metrics>> + Send + '_>,
    > {
        Box::pin(async { None })
    }
}

async fn serve_without_driver(
    addr: &str,
    token: &str,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _rx) = EventPipeline::channel(4);
    let adapter = std::sync::Arc::new(agentsh_service::PolicyAdapter::new(
        policy.engine().clone(),
        pipeline,
    ));
    api::serve(
        addr.parse().expect("addr"),
        adapter,
        std::sync::Arc::new(NoDriver),
        token.to_owned(),
    )
    .await
}

#[tokio::test]
async fn the_api_refuses_non_loopback_addresses() {
    let err = serve_without_driver("0.0.0.0:0", "t")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}

/// HMAC-SHA256 written out from RFC 2104 over SHA-256 alone: H((K ^ opad) || H((K ^ ipad) || m)),
/// K the key zero-padded to the 64-byte block (hashed first when longer).
fn rfc2104_hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_reference_hmac_matches_rfc_4231() {
    // RFC 4231 test case 2: key "Jefe".
    assert_eq!(
        hex(&rfc2104_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?"
        )),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a 131-byte key, hashed first.
    assert_eq!(
        hex(&rfc2104_hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[tokio::test]
async fn the_proof_endpoint_answers_the_hmac_of_the_nonce_without_a_token() {
    let token = "00112233445566778899aabbccddeeff";
    let (addr, _task) = serve_without_driver("127.0.0.1:0", token)
        .await
        .expect("serves");
    let nonce: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let mut message = b"agentsh-api-proof\0".to_vec();
    message.extend_from_slice(addr.to_string().as_bytes());
    message.push(0);
    message.extend_from_slice(&nonce);
    let expected = hex(&rfc2104_hmac_sha256(token.as_bytes(), &message));

    for spelled in [hex(&nonce), hex(&nonce).to_uppercase()] {
        let (status, body) =
            http(addr, "GET", &format!("/v1/proof?nonce={spelled}"), None, "").await;
        assert_eq!(status, 200, "no token needed: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["proof"].as_str(), Some(expected.as_str()), "{body}");
    }
    // Another token, another proof: the proof depends on the token.
    let (other, _task) = serve_without_driver("127.0.0.1:0", "ffeeddccbbaa99887766554433221100")
        .await
        .expect("serves");
    let (_, body) = http(
        other,
        "GET",
        &format!("/v1/proof?nonce={}", hex(&nonce)),
        None,
        "",
    )
    .await;
    assert!(!body.contains(&expected), "{body}");
    // The same token on another address, another proof: a relayed answer does not pass.
    let (elsewhere, _task) = serve_without_driver("127.0.0.1:0", token)
        .await
        .expect("serves");
    let (status, body) = http(
        elsewhere,
        "GET",
        &format!("/v1/proof?nonce={}", hex(&nonce)),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&expected), "{body}");
    // The proof is the only route without the token.
    assert_eq!(http(addr, "GET", "/v1/approvals", None, "").await.0, 401);
}

#[tokio::test]
async fn the_proof_endpoint_rejects_malformed_nonces() {
    let (addr, _task) = serve_without_driver("127.0.0.1:0", "00112233445566778899aabbccddeeff")
        .await
        .expect("serves");
    let good = "ab".repeat(32);
    for (query, says) in [
        ("".to_owned(), "missing `nonce`"),
        ("?nonce=".to_owned(), "not 0 characters"),
        (format!("?nonce={}", &good[..62]), "not 62 characters"),
        (format!("?nonce={}", &good[..63]), "not 63 characters"),
        (format!("?nonce={good}00"), "not 66 characters"),
        (
            format!("?nonce={}zz", &good[..62]),
            "character 63 `z` is not a hex digit",
        ),
        (
            format!("?nonce=+{}", &good[..63]),
            "character 1 ` ` is not a hex digit",
        ),
        (format!("?nonce={}%C3%A9", &good[..62]), "not 63 characters"),
    ] {
        let (status, body) = http(addr, "GET", &format!("/v1/proof{query}"), None, "").await;
        assert_eq!(status, 400, "`{query}`: {body}");
        assert!(
            body.contains(says),
            "`{query}`: expected `{says}` in {body}"
        );
    }
}
