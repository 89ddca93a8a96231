//! The emulator runs the real kernel core's flow: queries reach the scripted service and its
//! answers decide; cached answers are not asked again; `pending` holds the caller until the final
//! decision or the hold's end; a silent or absent service falls to the fail mode; a replay reports
//! every operation line.

pub mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::replay::{RegistrarFuture, SessionRegistrar, replay};
use agentsh_emulator::request::{OperationRequest, Reason, Target, Verdict};
use agentsh_emulator::trace::Trace;
use agentsh_wire::Operation;
use agentsh_wire::control::{ControlRepr, Counter, SendStatus};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::CacheTtl;
use support::{Answer, ScriptedService, wait_until};

const ROOT: u32 = 4100;
const CHILD: u32 = 4104;

/// Answers by the key's last character: `a` allow (cached), `d` deny, `p` pending then allowed
/// after 20 ms, `q` pending and never decided, `s` silence.
fn by_suffix(request: &RegistryRequestRepr) -> Answer {
    let key = request.key_path.to_string();
    match key.chars().last() {
        Some('a') => Answer::Allow {
            ttl: CacheTtl::Seconds(60),
        },
        Some('d') => Answer::Deny {
            ttl: CacheTtl::None,
        },
        Some('p') => Answer::Pending {
            ticket: 7,
            timeout_secs: 1,
            then: Some((Duration::from_millis(20), true)),
        },
        Some('q') => Answer::Pending {
            ticket: 8,
            timeout_secs: 1,
            then: None,
        },
        _ => Answer::Silence,
    }
}

fn set_value(pid: u32, key: &str) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::registry(Operation::SetValue, key, "v", None, 1, 4),
    }
}

async fn started() -> (tempfile::TempDir, Emulator, ScriptedService) {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(&dir.path().join("agentsh.sock"), 1).expect("start");
    let service = ScriptedService::connect(emulator.port().path(), Arc::new(by_suffix)).await;
    emulator.process_created(ROOT, 0, "agent.exe");
    service.register(ROOT, 0x1234_5678, 1).await;
    emulator.process_created(CHILD, ROOT, "python.exe");
    (dir, emulator, service)
}

#[tokio::test]
async fn answers_decide_and_cached_answers_are_not_asked_again() {
    let (_dir, emulator, service) = started().await;
    let allow = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-a"))
        .await;
    assert_eq!(
        (allow.verdict, allow.reason, allow.status()),
        (Verdict::Allow, Reason::Service, 0)
    );
    let again = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-a"))
        .await;
    assert_eq!(
        (again.verdict, again.reason),
        (Verdict::Allow, Reason::Cached)
    );
    let deny = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_eq!(
        (deny.verdict, deny.reason, deny.status()),
        (Verdict::Deny, Reason::Service, 0xC000_0022)
    );
    assert_eq!(
        service.queries.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let m = emulator.metrics();
    assert_eq!(
        (
            m.get(Counter::CacheHitCount),
            m.get(Counter::CacheMissCount)
        ),
        (1, 2)
    );
}

#[tokio::test]
async fn processes_outside_the_session_are_not_asked() {
    let (_dir, emulator, service) = started().await;
    emulator.process_created(9000, 0, "notepad.exe");
    let outside = emulator
        .perform(&set_value(9000, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_eq!(
        (outside.verdict, outside.reason),
        (Verdict::Allow, Reason::Unsandboxed)
    );
    assert_eq!(
        service.queries.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn pending_holds_until_the_final_decision_or_the_end_of_the_hold() {
    let (_dir, emulator, service) = started().await;
    let mut config = emulator.with_core(|c| *c.config());
    config.pending_grace_ms = 100;
    let r = service.send(&ControlRepr::SetConfig(config)).await;
    assert_eq!(r.status(), SendStatus::Ok);
    let approved = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-p"))
        .await;
    assert_eq!(
        (approved.verdict, approved.reason),
        (Verdict::Allow, Reason::Approval)
    );
    assert!(
        approved.latency >= Duration::from_millis(20),
        "held until the final decision"
    );
    assert!(
        approved.latency < Duration::from_millis(900),
        "woken by it, not by the hold's end"
    );
    let expired = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-q"))
        .await;
    assert_eq!(
        (expired.verdict, expired.reason),
        (Verdict::Deny, Reason::ApprovalExpired)
    );
    assert!(
        expired.latency >= Duration::from_millis(1100),
        "held for the timeout plus grace"
    );
}

#[tokio::test]
async fn silence_and_absence_fall_to_the_fail_mode() {
    let (_dir, emulator, service) = started().await;
    // The default policy query timeout is 5 s; the service shortens it as a real one would.
    let mut config = emulator.with_core(|c| *c.config());
    config.policy_query_timeout_ms = 100;
    let r = service.send(&ControlRepr::SetConfig(config)).await;
    assert_eq!(r.status(), SendStatus::Ok);
    let silent = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-s"))
        .await;
    assert_eq!(
        (silent.verdict, silent.reason),
        (Verdict::Allow, Reason::FailOpen)
    );
    assert_eq!(emulator.metrics().get(Counter::PolicyQueryTimeouts), 1);

    service.close().await;
    wait_until(|| !emulator.port().is_connected()).await;
    let absent = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-a"))
        .await;
    assert_eq!(
        (absent.verdict, absent.reason),
        (Verdict::Allow, Reason::FailOpen)
    );
    assert!(
        !emulator.transitions().is_empty(),
        "the disconnect is a mode transition"
    );
}

#[derive(Default)]
struct RecordingRegistrar(Mutex<Vec<String>>);

impl SessionRegistrar for RecordingRegistrar {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("register {root_pid} {workspace} {app_name}"));
        Box::pin(async { Ok(()) })
    }
    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("unregister {root_pid}"));
        Box::pin(async { Err("service unavailable".to_owned()) })
    }
}

#[tokio::test]
async fn replay_reports_every_operation_and_stops_at_an_impossible_line() {
    let (_dir, emulator, _service) = started().await;
    let text = r#"
{"process":"agent","operation":"start","pid":5100,"image":"a.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\w","app_name":"App"}
{"process":"child","operation":"start","parent":"agent","image":"c.exe","user_sid":"S-1-5-21-5"}
{"process":"child","operation":"set_value","key":"HKCU\\x-a","value":"v","expect":"allow","label":"ok"}
{"process":"child","operation":"set_value","key":"HKCU\\x-d","expect":"allow"}
{"process":"agent","operation":"unregister_session"}
"#;
    let trace = Trace::parse("t.jsonl", text).expect("parses");
    let registrar = RecordingRegistrar::default();
    let mut streamed = Vec::new();
    let result = replay(&emulator, &registrar, "t.jsonl", &trace, |r| {
        streamed.push(r.clone())
    })
    .await;
    let err = result.expect_err("unregister fails");
    assert_eq!(
        err.to_string(),
        "t.jsonl:7: unregistering the session of `agent`: service unavailable"
    );
    assert_eq!(
        *registrar.0.lock().expect("lock"),
        ["register 5100 C:\\w App", "unregister 5100"]
    );
    assert_eq!(streamed.len(), 2);
    // The recording registrar did not register anything, so the child is outside any session.
    assert_eq!(streamed[0].target, "\\REGISTRY\\USER\\S-1-5-21-5\\x-a\\v");
    assert_eq!(streamed[0].reason, Reason::Unsandboxed);
    assert_eq!(streamed[0].status, "0x00000000");
    assert!(streamed[0].as_expected());
    assert!(streamed[1].as_expected());
    let json = serde_json::to_value(&streamed[0]).expect("json");
    assert_eq!(json["reason"], "unsandboxed");
    assert_eq!(json["label"], "ok");
}

#[tokio::test]
async fn exclude_self_excludes_the_connected_process_by_its_socket_credentials() {
    let (_dir, emulator, service) = started().await;
    let me = std::process::id();
    // This test process is the client: make it a session member to show exclusion wins.
    emulator.process_created(me, ROOT, "agentsh.exe");
    let before = emulator
        .perform(&set_value(me, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_eq!(
        (before.verdict, before.reason),
        (Verdict::Deny, Reason::Service)
    );
    let r = service.send(&ControlRepr::ExcludeSelf).await;
    assert_eq!(r.status(), SendStatus::Ok);
    let excluded = emulator
        .perform(&set_value(me, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_eq!(
        (excluded.verdict, excluded.reason),
        (Verdict::Allow, Reason::Excluded)
    );
    // Another session process is not excluded by the client's request.
    let other = emulator
        .perform(&set_value(CHILD, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_eq!(
        (other.verdict, other.reason),
        (Verdict::Deny, Reason::Service)
    );
    service.close().await;
    wait_until(|| !emulator.port().is_connected()).await;
    let after = emulator
        .perform(&set_value(me, "\\REGISTRY\\MACHINE\\k-d"))
        .await;
    assert_ne!(
        after.reason,
        Reason::Excluded,
        "exclusion ends with the connection"
    );
}
