//! Real runs of the service against the driver emulator whose every event is kept as OCSF, one
//! file per run under `<target>/tmp/ocsf-events/`, for scripts/ci.d/15-ocsf.sh to validate
//! against the released OCSF schema. Each run also checks here that the kinds of event it exists
//! for were produced.
#![cfg(unix)]

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::events::{Event, EventKind, EventPipeline};
use agentsh_service::{ApprovalOutcome, Service, SocketTransport};
use agentsh_wire::{FileOperation, Operation};
use tokio::sync::mpsc;

const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";
const ROOT: u32 = 4100;
const OUTSIDER: u32 = 900;
const RUN: &str = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";

fn hkcu(path: &str) -> String {
    format!("\\REGISTRY\\USER\\{SID}\\{path}")
}

fn reg(pid: u32, op: Operation, key: &str, value: &str, ty: u32) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::registry(op, key, value, None, ty, 8),
    }
}

fn rename(pid: u32, key: &str, new_name: &str) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::registry(Operation::RenameKey, key, "", Some(new_name), 0, 0),
    }
}

fn file(pid: u32, op: FileOperation, path: &str, new_path: Option<&str>) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::file(op, path, new_path),
    }
}

/// Writes every event as one OCSF line to `<target>/tmp/ocsf-events/<run>.jsonl`.
fn record(run: &str, events: &[Event]) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ocsf-events");
    std::fs::create_dir_all(&dir).expect("creates the event directory");
    let mut out = std::fs::File::create(dir.join(format!("{run}.jsonl"))).expect("creates");
    for e in events {
        writeln!(out, "{}", e.to_ocsf()).expect("writes");
    }
}

/// Every event queued so far, after a moment for the last ones to arrive.
async fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<Event> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn kinds(events: &[Event]) -> HashSet<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

async fn answer(service: &Service<SocketTransport>, outcome: ApprovalOutcome) {
    for _ in 0..300 {
        if let Some(a) = service.adapter.approvals.list().first() {
            service
                .adapter
                .approvals
                .answer(a.id, outcome)
                .expect("answer taken");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no approval was requested");
}

const BROAD: &str = r#"
registry_policy:
  default_action: deny
  log_all: true
  rules:
    - name: allow-app-settings
      description: the application's own key, at any depth
      paths: ['HKCU\SOFTWARE\${APP_NAME}\*']
      operations: ['*']
      action: allow
    - name: ask-vendor
      paths: ['HKCU\SOFTWARE\Vendor\*']
      operations: ['*']
      action: approve
      timeout_seconds: 1
file_policy:
  default_action: deny
  log_all: true
  rules:
    - name: workspace
      paths: ['${WORKSPACE}\*']
      operations: ['*']
      action: allow
"#;

async fn start(
    policy: &Policy,
    socket: &std::path::Path,
) -> (Service<SocketTransport>, mpsc::Receiver<Event>) {
    let (pipeline, events) = EventPipeline::channel(4096);
    let transport = SocketTransport::connect(socket).await.expect("connects");
    let service = Service::start(transport, policy, pipeline)
        .await
        .expect("service starts");
    (service, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broad_trace_through_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 5).expect("emulator listens");
    let policy = Policy::from_str(BROAD, "broad.yaml").expect("policy loads");
    let (service, mut rx) = start(&policy, &socket).await;
    let ctx = SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    service
        .register_session(ROOT, ctx, false)
        .await
        .expect("registers");
    emulator.process_created(
        ROOT + 2,
        ROOT,
        "\\Device\\HarddiskVolume3\\Python311\\python.exe",
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let child = ROOT + 2;
    let app = hkcu("SOFTWARE\\TestApp");
    // Every value type Windows defines, the default value among them.
    for (ty, value) in [
        (1, "sz"),
        (2, ""),
        (3, "binary"),
        (4, "dword"),
        (7, "multi"),
        (8, "resources"),
        (11, "qword"),
        (0, "none"),
    ] {
        let out = emulator
            .perform(&reg(child, Operation::SetValue, &app, value, ty))
            .await;
        assert_eq!(out.verdict, Verdict::Allow);
    }
    for op in [
        Operation::DeleteValue,
        Operation::CreateKey,
        Operation::SetKeySecurity,
        Operation::SaveKey,
        Operation::RestoreKey,
        Operation::ReplaceKey,
        Operation::LoadKey,
        Operation::DeleteKey,
    ] {
        let value = if op == Operation::DeleteValue {
            "sz"
        } else {
            ""
        };
        let out = emulator
            .perform(&reg(child, op, &format!("{app}\\sub"), value, 0))
            .await;
        assert_eq!(out.verdict, Verdict::Allow, "{op:?}");
    }
    let out = emulator
        .perform(&rename(child, &format!("{app}\\sub"), "sub2"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    // Denied: a Run key (catalog), another application's key (default).
    let out = emulator
        .perform(&reg(child, Operation::SetValue, &hkcu(RUN), "Updater", 1))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    let out = emulator
        .perform(&reg(
            child,
            Operation::DeleteKey,
            &hkcu("SOFTWARE\\OtherApp"),
            "",
            0,
        ))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    // Approvals: allowed once, denied by a person, timed out.
    let vendor = hkcu("SOFTWARE\\Vendor\\tool");
    let ask = reg(child, Operation::CreateKey, &vendor, "", 0);
    let (out, ()) = tokio::join!(
        emulator.perform(&ask),
        answer(&service, ApprovalOutcome::AllowOnce)
    );
    assert_eq!(out.verdict, Verdict::Allow);
    let ask = reg(child, Operation::SetValue, &vendor, "v", 1);
    let (out, ()) = tokio::join!(
        emulator.perform(&ask),
        answer(&service, ApprovalOutcome::Denied)
    );
    assert_eq!(out.verdict, Verdict::Deny);
    let out = emulator
        .perform(&reg(child, Operation::DeleteKey, &vendor, "", 0))
        .await;
    assert_eq!(out.verdict, Verdict::Deny, "timed out");
    // Files: every operation in the workspace, a write outside it.
    let ws = "C:\\work\\project";
    for (op, path, target) in [
        (FileOperation::Create, format!("{ws}\\a.txt"), None),
        (FileOperation::Write, format!("{ws}\\a.txt"), None),
        (
            FileOperation::Rename,
            format!("{ws}\\a.txt"),
            Some(format!("{ws}\\b.txt")),
        ),
        (
            FileOperation::HardLink,
            format!("{ws}\\b.txt"),
            Some(format!("{ws}\\c.txt")),
        ),
        (FileOperation::Delete, format!("{ws}\\c.txt"), None),
    ] {
        let out = emulator
            .perform(&file(child, op, &path, target.as_deref()))
            .await;
        assert_eq!(out.verdict, Verdict::Allow, "{op:?} {path}");
    }
    let out = emulator
        .perform(&file(
            child,
            FileOperation::Write,
            "C:\\Windows\\x.dll",
            None,
        ))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    // A process outside every session writes a Run key: allowed and logged.
    let out = emulator
        .perform(&reg(
            OUTSIDER,
            Operation::SetValue,
            &hkcu(RUN),
            "Updater",
            1,
        ))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);

    let events = drain(&mut rx).await;
    record("broad", &events);
    let seen = kinds(&events);
    for k in [
        EventKind::RegistryWrite,
        EventKind::RegistryCreate,
        EventKind::RegistryDelete,
        EventKind::RegistryRename,
        EventKind::RegistryRead,
        EventKind::RegistryBlocked,
        EventKind::RegistryApprovalRequest,
        EventKind::RegistryApprovalResponse,
        EventKind::FileCreate,
        EventKind::FileWrite,
        EventKind::FileRename,
        EventKind::FileDelete,
        EventKind::FileBlocked,
    ] {
        assert!(seen.contains(&k), "{k:?} missing from {seen:?}");
    }
    let renamed = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryRename)
        .expect("rename event");
    assert_eq!(
        renamed.target_path.as_deref(),
        Some(format!("{app}\\sub2").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_through_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 6).expect("emulator listens");
    let policy = Policy::embedded_default().expect("default policy");
    let (service, mut rx) = start(&policy, &socket).await;
    let ctx = SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    service
        .register_session(ROOT, ctx, true)
        .await
        .expect("registers");
    for req in [
        reg(ROOT, Operation::SetValue, &hkcu(RUN), "Updater", 1),
        reg(
            ROOT,
            Operation::CreateKey,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x",
            "",
            0,
        ),
        file(ROOT, FileOperation::Write, "C:\\Windows\\x.dll", None),
    ] {
        assert_eq!(emulator.perform(&req).await.verdict, Verdict::Allow);
    }
    let events = drain(&mut rx).await;
    record("audit", &events);
    assert!(events.iter().any(|e| e.decision == "would deny"));
    assert!(events.iter().any(|e| e.decision == "would ask"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_closed_outage_and_a_new_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 7).expect("emulator listens");
    let yaml = "driver:\n  fail_mode: closed\n";
    let policy = Policy::from_str(yaml, "closed.yaml").expect("policy loads");
    let (service, _rx) = start(&policy, &socket).await;
    let ctx = SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    service
        .register_session(ROOT, ctx, false)
        .await
        .expect("registers");
    drop(service);
    // The service is gone: the kernel decides alone, fail closed.
    let mut closed = 0;
    for _ in 0..200 {
        let out = emulator
            .perform(&reg(
                ROOT,
                Operation::SetValue,
                &hkcu("SOFTWARE\\TestApp"),
                "x",
                1,
            ))
            .await;
        if out.verdict == Verdict::Deny {
            closed += 1;
            if closed == 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(closed, 3, "the kernel denied without the service");
    // A new service connects and goes away again at once: it read the driver's counters when it
    // connected (no poll, no request needed), so both transitions are reported.
    let (service, mut rx) = start(&policy, &socket).await;
    drop(service);
    let events = drain(&mut rx).await;
    record("fail-closed", &events);
    let seen = kinds(&events);
    assert!(
        seen.contains(&EventKind::FailModeEngaged) && seen.contains(&EventKind::FailModeRecovered),
        "{seen:?}"
    );
    let engaged = events
        .iter()
        .find(|e| e.kind == EventKind::FailModeEngaged)
        .expect("engaged");
    assert!(
        engaged
            .message
            .as_deref()
            .is_some_and(|m| m.contains("3 denied")),
        "{engaged:?}"
    );
}
