//! Hostile messages from the port never crash the service: each corrupted registry check (sent as
//! a query and as a one-way notification) is survived, and the next valid check is still decided
//! by the service.
#![cfg(unix)]

use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::hostile::hostile_registry_checks;
use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::request::{OperationRequest, Reason, Target, Verdict};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::events::EventPipeline;
use agentsh_service::{Service, SocketTransport};
use agentsh_wire::Operation;

const ROOT: u32 = 4100;

fn app_write(n: usize) -> OperationRequest {
    let key = format!("\\REGISTRY\\USER\\{DEFAULT_USER_SID}\\SOFTWARE\\TestApp\\k{n}");
    OperationRequest {
        pid: ROOT,
        thread_id: ROOT + 1,
        target: Target::registry(Operation::SetValue, &key, "v", None, 1, 4),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_checks_never_stop_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let emulator = Emulator::start(&socket, 5).expect("emulator");
    let policy = Policy::embedded_default().expect("default policy");
    let (pipeline, _events) = EventPipeline::channel(1024);
    let transport = SocketTransport::connect(&socket).await.expect("connect");
    let service = Service::start(transport, &policy, pipeline)
        .await
        .expect("service starts");
    emulator.process_created(ROOT, 0, "agent.exe");
    let context = SessionContext::new(Some("TestApp"), Some("C:\\work"), Some(DEFAULT_USER_SID))
        .expect("session context");
    let session = service
        .register_session(ROOT, context, false)
        .await
        .expect("session");
    let token = service
        .adapter
        .sessions
        .token_of(&session.id)
        .expect("token");

    for (n, (what, bytes)) in hostile_registry_checks(token, ROOT).into_iter().enumerate() {
        // Whatever the service makes of it (an error reply or silence until the timeout), the
        // kernel side gets at most one answer and the service keeps serving.
        let _ = emulator
            .port()
            .query(&bytes, 40, Duration::from_millis(300))
            .await;
        emulator.port().notify(&bytes);
        assert!(service.is_running(), "service stopped after `{what}`");
        let next = emulator.perform(&app_write(n)).await;
        assert_eq!(
            (next.verdict, next.reason),
            (Verdict::Allow, Reason::Service),
            "valid check after `{what}`"
        );
    }
    let counters = emulator.port().counters();
    assert_eq!(
        counters
            .replies_unmatched
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no reply without a request"
    );
}
