//! The real service against the driver emulator (the same kernel core and bytes as agentsh.sys):
//! the design's five manual scenarios, session grants, audit mode, hostile requests, and a service
//! that goes away and comes back.
#![cfg(unix)]

use std::path::PathBuf;
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::events::{Event, EventKind, EventPipeline, Reason};
use agentsh_service::{ApprovalOutcome, Service, SocketTransport};
use agentsh_wire::Operation;
use agentsh_wire::control::Counter;
use tokio::sync::mpsc;

const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";
const ROOT: u32 = 4100;
const OUTSIDER: u32 = 900;

struct Rig {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    emulator: Emulator,
    service: Service<SocketTransport>,
    events: mpsc::Receiver<Event>,
}

async fn rig(policy: &Policy) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 11).expect("emulator listens");
    let (pipeline, events) = EventPipeline::channel(1024);
    let transport = SocketTransport::connect(&socket).await.expect("connects");
    let service = Service::start(transport, policy, pipeline)
        .await
        .expect("service starts");
    Rig {
        _dir: dir,
        socket,
        emulator,
        service,
        events,
    }
}

fn reg(pid: u32, op: Operation, key: &str, value: &str) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::registry(op, key, value, None, 1, 4),
    }
}

fn hkcu(path: &str) -> String {
    format!("\\REGISTRY\\USER\\{SID}\\{path}")
}

const RUN: &str = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
const SERVICE_KEY: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\AgentUpdater";

async fn session(r: &Rig, app: &str) -> String {
    let ctx = SessionContext::new(Some(app), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    let info = r
        .service
        .register_session(ROOT, ctx, false)
        .await
        .expect("registers");
    info.id.clone()
}

/// The events queued so far. Each is also appended as OCSF to
/// `<target>/tmp/ocsf-events/through_emulator-<test>.jsonl`, which scripts/ci.d/15-ocsf.sh
/// validates against the OCSF schema.
fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<Event> {
    let events: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    if events.is_empty() {
        return events;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ocsf-events");
    std::fs::create_dir_all(&dir).expect("creates the event directory");
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", "-");
    let mut lines = String::new();
    for e in &events {
        lines.push_str(&e.to_ocsf().to_string());
        lines.push('\n');
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("through_emulator-{test}.jsonl")))
        .expect("opens the event file");
    std::io::Write::write_all(&mut out, lines.as_bytes()).expect("writes");
    events
}

/// Approves the first pending approval once it shows up.
async fn answer_when_pending(service: &Service<SocketTransport>, outcome: ApprovalOutcome) {
    for _ in 0..200 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_designs_five_manual_scenarios() {
    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    let sid = session(&r, "TestApp").await;

    // 1. A sandboxed process writes a Run key: blocked.
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::SetValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    // 2. It writes its own application key: allowed.
    let out = r
        .emulator
        .perform(&reg(
            ROOT,
            Operation::SetValue,
            &hkcu("SOFTWARE\\TestApp\\config"),
            "theme",
        ))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    // 3. It creates a service key: approval requested, a person approves, it succeeds.
    let create = reg(ROOT, Operation::CreateKey, SERVICE_KEY, "");
    let (out, ()) = tokio::join!(
        r.emulator.perform(&create),
        answer_when_pending(&r.service, ApprovalOutcome::AllowOnce)
    );
    assert_eq!(out.verdict, Verdict::Allow);
    // 5. A process outside the sandbox writes a Run key: allowed, and logged.
    let out = r
        .emulator
        .perform(&reg(OUTSIDER, Operation::SetValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);

    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let blocked = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryBlocked)
        .expect("a blocked event");
    assert_eq!(blocked.session_id, sid);
    assert_eq!(blocked.mitre_id, Some("T1547.001"));
    assert_eq!(blocked.driver_operation, "SetValue");
    assert_eq!(
        (blocked.value_type, blocked.data_size),
        (Some("REG_SZ"), Some(4)),
        "the written value's type and size, as the kernel reported them"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::RegistryApprovalRequest)
    );
    let response = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryApprovalResponse)
        .expect("response event");
    assert_eq!(
        (response.decision, response.reason),
        ("allow", Reason::Person)
    );
    let outside = events
        .iter()
        .find(|e| e.process_id == OUTSIDER)
        .expect("the outsider's write is logged");
    assert_eq!(outside.decision, "allow");
    assert_eq!(outside.reason, Reason::Unsandboxed);
    // The kernel decided this one alone; the event still says what the location is.
    assert_eq!(outside.mitre_id, Some("T1547.001"));
    assert_eq!(outside.risk_level, Some("critical"));
    assert_eq!(outside.mitre_tactic, Some("persistence"));
    assert!(
        events
            .iter()
            .all(|e| !e.session_id.contains(&format!("{:x}", 0))),
        "no token in events"
    );
    // Decision events are stamped when emitted: every one carries the time it was decided.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    for e in &events {
        assert!(
            e.timestamp_ms > now_ms - 60_000 && e.timestamp_ms <= now_ms,
            "{:?} event stamped {} (now {now_ms})",
            e.kind,
            e.timestamp_ms
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_times_out_as_a_timeout() {
    let yaml = r#"
registry_rules:
  - name: approve-service-create
    paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*']
    operations: [create]
    decision: approve
    timeout: 1s
"#;
    let policy = Policy::from_str(yaml, "inline.yaml").expect("policy loads");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let started = std::time::Instant::now();
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::CreateKey, SERVICE_KEY, ""))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held for the rule's timeout"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let response = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryApprovalResponse)
        .expect("response event");
    assert_eq!(
        (response.decision, response.reason),
        ("deny", Reason::Timeout)
    );
    assert_eq!(response.to_ocsf()["status_detail"], "approval timeout");
    assert_ne!(
        response.to_ocsf()["disposition_id"],
        25,
        "a timeout is never recorded as a person's rejection"
    );
    let text = r
        .service
        .adapter
        .metrics
        .render(None, agentsh_wire::control::FailMode::Open, 0, 0);
    for line in [
        "agentsh_approvals_timed_out_total 1",
        "agentsh_approval_decision_seconds_bucket{outcome=\"timed_out\",le=\"0.5\"} 0",
        "agentsh_approval_decision_seconds_bucket{outcome=\"timed_out\",le=\"2\"} 1",
        "agentsh_approval_decision_seconds_count{outcome=\"timed_out\"} 1",
        "agentsh_approval_decision_seconds_count{outcome=\"allowed\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_for_the_session_is_remembered_by_the_service() {
    let policy = Policy::embedded_default().expect("default policy");
    let r = rig(&policy).await;
    session(&r, "TestApp").await;
    let create = reg(ROOT, Operation::CreateKey, SERVICE_KEY, "");
    let (out, ()) = tokio::join!(
        r.emulator.perform(&create),
        answer_when_pending(&r.service, ApprovalOutcome::AllowSession)
    );
    assert_eq!(out.verdict, Verdict::Allow);
    // The same operation again: no person asked (approvals are never cached in the kernel, the
    // service's grant answers).
    let out = r.emulator.perform(&create).await;
    assert_eq!(out.verdict, Verdict::Allow);
    assert!(r.service.adapter.approvals.list().is_empty());
    assert_eq!(
        r.service
            .adapter
            .metrics
            .approvals_opened
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let text = r
        .service
        .adapter
        .metrics
        .render(None, agentsh_wire::control::FailMode::Open, 0, 0);
    for line in [
        "agentsh_approval_decision_seconds_count{outcome=\"allowed\"} 1",
        "agentsh_approval_decision_seconds_bucket{outcome=\"allowed\",le=\"+Inf\"} 1",
        "agentsh_approval_decision_seconds_count{outcome=\"timed_out\"} 0",
        "agentsh_approvals_timed_out_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_allows_and_records_would_deny() {
    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    let ctx =
        SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID)).expect("valid");
    r.service
        .register_session(ROOT, ctx, true)
        .await
        .expect("registers");
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::SetValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let events = drain(&mut r.events);
    assert!(
        events
            .iter()
            .any(|e| e.decision == "would deny" && e.reason == Reason::Audit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_session_token_is_rotated_without_dropping_processes() {
    let policy = Policy::embedded_default().expect("default policy");
    let r = rig(&policy).await;
    let id = session(&r, "TestApp").await;
    r.emulator.process_created(ROOT + 1, ROOT, "python.exe");
    assert!(r.service.rotate_token(&id).await.expect("rotates"));
    let out = r
        .emulator
        .perform(&reg(ROOT + 1, Operation::SetValue, &hkcu(RUN), "x"))
        .await;
    assert_eq!(
        out.verdict,
        Verdict::Deny,
        "the child is still a session process under the new token"
    );
    assert!(
        r.service
            .unregister_session(&id)
            .await
            .expect("unregisters")
    );
    let out = r
        .emulator
        .perform(&reg(ROOT + 1, Operation::SetValue, &hkcu(RUN), "x"))
        .await;
    assert_eq!(
        out.verdict,
        Verdict::Allow,
        "after the session ends the process is an outsider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_excludes_itself_and_reconnects_cleanly() {
    let policy = Policy::embedded_default().expect("default policy");
    let r = rig(&policy).await;
    assert_eq!(
        r.emulator.with_core(|c| c.excluded_process()),
        Some(std::process::id())
    );
    drop(r.service);
    // A new service on the same port: the handshake succeeds again and decisions resume.
    let (pipeline, _events) = EventPipeline::channel(16);
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(t) = SocketTransport::connect(&r.socket).await
            && let Ok(s) = Service::start(t, &policy, pipeline.clone()).await
        {
            connected = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let service = connected.expect("a new service connects after the first went away");
    let ctx =
        SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID)).expect("valid");
    service
        .register_session(ROOT + 50, ctx, false)
        .await
        .expect("registers");
    let out = r
        .emulator
        .perform(&reg(ROOT + 50, Operation::SetValue, &hkcu(RUN), "x"))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_the_process_image_the_kernel_reported() {
    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    const CHILD: u32 = ROOT + 8;
    r.emulator.process_created(
        CHILD,
        ROOT,
        "\\Device\\HarddiskVolume3\\Python311\\python.exe",
    );
    // The process event reaches the service before the child's first request (same port, in
    // order), but give the event task a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = r
        .emulator
        .perform(&reg(CHILD, Operation::SetValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let blocked = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryBlocked && e.process_id == CHILD)
        .expect("the child's blocked write");
    assert_eq!(
        blocked.process_image,
        "\\Device\\HarddiskVolume3\\Python311\\python.exe"
    );
    assert_eq!(blocked.process_name, "python.exe");
}

/// A registry request whose value name is given as code units, as a hostile process can name it
/// through the counted-string API (`RegSetValueExW` with an unpaired surrogate or a NUL inside).
fn reg_units(pid: u32, key: &str, value: &[u16]) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: pid + 1,
        target: Target::Registry {
            op: Operation::SetValue,
            key: key.encode_utf16().collect(),
            value: value.to_vec(),
            value_type: 1,
            data_size: 4,
        },
    }
}

fn units_of(name: Option<&str>) -> Vec<u16> {
    agentsh_winstr::name::units(name.unwrap_or_default()).collect()
}

/// F1 (security review, py/surrogate.py): a value name holding an unpaired surrogate made the
/// service's decoder refuse the request, which was then answered by the fail mode (allow by
/// default) with no event, and the kernel's notification of an unsandboxed Run-key write was
/// dropped. Through the emulator and the real service: the session write is denied by the
/// catalog with an event naming the value exactly, the unsandboxed one is allowed and logged,
/// and a value name with an embedded NUL (Poweliks) is reported whole, not as the default value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_lone_surrogates_and_nuls_in_value_names_are_decided_and_logged_exactly() {
    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    let sid = session(&r, "TestApp").await;
    let run = hkcu(RUN);
    let lead: Vec<u16> = [0xD800]
        .into_iter()
        .chain("Updater".encode_utf16())
        .collect();
    let trail: Vec<u16> = "Upd".encode_utf16().chain([0xDC00]).collect();
    let poweliks: Vec<u16> = vec![0, u16::from(b'x')];

    for name in [&lead, &trail, &poweliks] {
        let out = r.emulator.perform(&reg_units(ROOT, &run, name)).await;
        assert_eq!(out.verdict, Verdict::Deny, "session write of {name:04x?}");
    }
    let out = r.emulator.perform(&reg_units(OUTSIDER, &run, &lead)).await;
    assert_eq!(out.verdict, Verdict::Allow, "outside every session");
    let out = r
        .emulator
        .perform(&reg_units(OUTSIDER, &run, &poweliks))
        .await;
    assert_eq!(out.verdict, Verdict::Allow, "outside every session");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = drain(&mut r.events);
    for name in [&lead, &trail, &poweliks] {
        let blocked = events
            .iter()
            .find(|e| {
                e.kind == EventKind::RegistryBlocked && units_of(e.value_name.as_deref()) == **name
            })
            .unwrap_or_else(|| panic!("a blocked event naming {name:04x?}: {events:#?}"));
        assert_eq!(blocked.session_id, sid);
        assert_eq!(blocked.rule_name, "builtin:run-keys-hkcu");
        assert_eq!(blocked.mitre_id, Some("T1547.001"));
        assert_eq!(blocked.decision, "deny");
    }
    for name in [&lead, &poweliks] {
        let outside = events
            .iter()
            .find(|e| e.process_id == OUTSIDER && units_of(e.value_name.as_deref()) == **name)
            .unwrap_or_else(|| {
                panic!("the outsider's write of {name:04x?} is logged: {events:#?}")
            });
        assert_eq!(
            (outside.decision, outside.reason),
            ("allow", Reason::Unsandboxed)
        );
        assert_eq!(outside.mitre_id, Some("T1547.001"));
    }
    // The JSON line names the values losslessly: the surrogate as its own escape, the NUL as
    // \u0000 (never cut, never the default value).
    let lines: Vec<String> = events
        .iter()
        .map(|e| e.line(agentsh_service::events::Format::Jsonl))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""value_name":"\ud800Updater""#)),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""value_name":"\u0000x""#)),
        "{lines:#?}"
    );
    let malformed = r
        .service
        .adapter
        .metrics
        .malformed_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(malformed, 0, "no name makes a request malformed");
}

/// The deployment guide's example policy names no TTL anywhere: its decisions are cached for the
/// driver's CacheDefaultTTLMs, so a repeated trace is answered mostly by the kernel's cache (the
/// guide expects a hit rate above 80 %). A rule with `cache_ttl: 0` is never cached, nor is an
/// approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_policy_caches_with_the_drivers_default_ttl() {
    let yaml = r#"
registry_rules:
  - name: allow-app-settings
    paths: ['HKCU\SOFTWARE\MyApp\*']
    operations: ["*"]
    decision: allow
  - name: block-run-keys
    paths:
      - 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*'
      - 'HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*'
    operations: [write, create, delete]
    decision: deny
    priority: 100
    notify: true
  - name: approve-service-changes
    paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*']
    operations: [write, create, delete]
    decision: approve
    message: "Agent wants to modify service: {{.Path}}"
    timeout: 1s
  - name: never-cached
    paths: ['HKCU\SOFTWARE\Volatile\*']
    operations: ["*"]
    decision: allow
    cache_ttl: 0
"#;
    let policy = Policy::from_str(yaml, "guide.yaml").expect("the guide's policy loads");
    let r = rig(&policy).await;
    session(&r, "MyApp").await;
    let hits = |r: &Rig| r.emulator.metrics().get(Counter::CacheHitCount);
    let misses = |r: &Rig| r.emulator.metrics().get(Counter::CacheMissCount);
    let trace = [
        (
            Operation::SetValue,
            hkcu("SOFTWARE\\MyApp\\config"),
            "theme",
        ),
        (Operation::SetValue, hkcu("SOFTWARE\\MyApp\\config"), "size"),
        (Operation::CreateKey, hkcu("SOFTWARE\\MyApp\\cache"), ""),
        (Operation::SetValue, hkcu(RUN), "Updater"),
        (
            Operation::DeleteValue,
            hkcu("SOFTWARE\\MyApp\\config"),
            "old",
        ),
    ];
    for _ in 0..10 {
        for (op, key, value) in &trace {
            r.emulator.perform(&reg(ROOT, *op, key, value)).await;
        }
    }
    let m = r.emulator.metrics();
    let rate = m.cache_hit_rate_percent().expect("operations were counted");
    assert_eq!(
        (hits(&r), misses(&r)),
        (45, 5),
        "each distinct operation asked once"
    );
    assert!(rate > 80.0, "hit rate {rate:.1} %");

    // `cache_ttl: 0`: asked every time.
    let before = (hits(&r), misses(&r));
    for _ in 0..5 {
        let out = r
            .emulator
            .perform(&reg(
                ROOT,
                Operation::SetValue,
                &hkcu("SOFTWARE\\Volatile\\x"),
                "v",
            ))
            .await;
        assert_eq!(out.verdict, Verdict::Allow);
    }
    assert_eq!((hits(&r), misses(&r)), (before.0, before.1 + 5));

    // An approval: asked every time (here it times out, twice).
    let before = (hits(&r), misses(&r));
    for _ in 0..2 {
        let out = r
            .emulator
            .perform(&reg(ROOT, Operation::CreateKey, SERVICE_KEY, ""))
            .await;
        assert_eq!(out.verdict, Verdict::Deny);
    }
    assert_eq!((hits(&r), misses(&r)), (before.0, before.1 + 2));
}

/// `notify: false` on a deny rule is a silent deny: no `registry_blocked` notification; logged
/// (under the operation's own type, `notify: false`) only when the log flag says so — here
/// because a catalog location is involved — and always counted. A denial the rule set notifies
/// (`notify_on_deny`, the default) is `registry_blocked` with `notify: true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_notified_denies_differ() {
    let yaml = r#"
registry_policy:
  default_action: deny
  rules:
    - name: quiet
      paths: ['HKCU\SOFTWARE\Quiet\*']
      operations: ['*']
      action: deny
      notify: false
    - name: quiet-run
      paths: ['HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run']
      operations: ['*']
      action: deny
      notify: false
"#;
    let policy = Policy::from_str(yaml, "silent.yaml").expect("policy loads");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let quiet = reg(ROOT, Operation::SetValue, &hkcu("SOFTWARE\\Quiet\\x"), "v");
    for _ in 0..3 {
        assert_eq!(r.emulator.perform(&quiet).await.verdict, Verdict::Deny);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        drain(&mut r.events).is_empty(),
        "a silent deny without the log flag leaves no event"
    );
    let m = &r.service.adapter.metrics;
    assert_eq!(
        m.denials_silent.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "counted by the service once (then answered from the kernel's cache)"
    );
    assert_eq!(
        r.emulator.metrics().get(Counter::DenyDecisions),
        3,
        "every denial counted by the driver"
    );

    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::SetValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    let out = r
        .emulator
        .perform(&reg(
            ROOT,
            Operation::SetValue,
            &hkcu("SOFTWARE\\Elsewhere"),
            "v",
        ))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let run = events
        .iter()
        .find(|e| e.key_path.ends_with("CurrentVersion\\Run"))
        .expect("the Run key's silent deny is logged: a catalog location");
    assert_eq!(
        (run.kind, run.decision, run.notify),
        (EventKind::RegistryWrite, "deny", false)
    );
    assert_eq!(run.to_ocsf()["is_alert"], false);
    let blocked = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryBlocked)
        .expect("the default denial notifies");
    assert!(blocked.notify && blocked.key_path.ends_with("Elsewhere"));
    assert_eq!(blocked.to_ocsf()["is_alert"], true);
    assert_eq!(
        events.len(),
        2,
        "nothing for the silent deny of Quiet: {events:?}"
    );
    assert_eq!(
        m.denials_notified
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        m.denials_silent.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// What `policy check` says of an operation (the engine alone, no driver): the design's
/// behaviour as an administrator reads it before deploying.
fn policy_check(policy: &Policy, sid_app: &str, op: Operation, key: &str, value: &str) -> Verdict {
    let ctx = SessionContext::new(Some(sid_app), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    let mut q = agentsh_policy::RegistryQuery::new(key, op, &ctx);
    q.value = matches!(
        op,
        Operation::QueryValue | Operation::SetValue | Operation::DeleteValue
    )
    .then_some(value);
    match policy.engine().decide_registry(&q).decision {
        agentsh_policy::Decision::Allow => Verdict::Allow,
        _ => Verdict::Deny,
    }
}

/// A typical process start reads machine and user configuration. Under the design's example
/// policy (`default_action: deny`, `log_all: true`, no read rule) every read is allowed — reads
/// are decided by rules that name them, never by `default_action` — answered by the driver
/// without a query, and logged (`log_all`); a Run key read is logged with its technique. What
/// `policy check` says is what happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_designs_policy_answers_process_start_reads_in_the_driver_and_logs_them() {
    let yaml = r#"
registry_policy:
  default_action: deny
  log_all: true
  default_cache_ttl: 30
  notify_on_deny: true
  rules:
    - name: allow-app-settings
      paths: ["HKCU\\SOFTWARE\\${APP_NAME}\\*"]
      operations: [read, write, create, delete]
      action: allow
      cache_ttl: 60
    - name: block-run-keys
      paths:
        - "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
        - "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\RunOnce"
        - "HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
      operations: [write, create, delete]
      action: deny
      priority: 1000
      notify: true
    - name: approve-service-install
      paths: ["HKLM\\SYSTEM\\CurrentControlSet\\Services\\*"]
      operations: [create]
      action: approve
      timeout_seconds: 30
      cache_ttl: 0
"#;
    let policy = Policy::from_str(yaml, "design.yaml").expect("the design's example loads");
    let reads = policy.engine().read_handling();
    assert!(!reads.query && reads.report, "{reads:?}");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let machine = "\\REGISTRY\\MACHINE";
    let trace = [
        (
            Operation::OpenKey,
            format!("{machine}\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"),
            "",
        ),
        (
            Operation::QueryValue,
            format!("{machine}\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"),
            "SafeDllSearchMode",
        ),
        (
            Operation::OpenKey,
            format!("{machine}\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"),
            "",
        ),
        (
            Operation::QueryValue,
            format!("{machine}\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"),
            "ProductName",
        ),
        (
            Operation::EnumValues,
            format!("{machine}\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\SideBySide"),
            "",
        ),
        (
            Operation::QueryValue,
            format!("{machine}\\SYSTEM\\CurrentControlSet\\Control\\Nls\\CodePage"),
            "ACP",
        ),
        (Operation::EnumKeys, hkcu("SOFTWARE\\Classes"), ""),
        (
            Operation::QueryValue,
            hkcu("SOFTWARE\\TestApp\\config"),
            "theme",
        ),
        (
            Operation::QueryValue,
            format!("{machine}\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"),
            "Updater",
        ),
    ];
    for (op, key, value) in &trace {
        let out = r.emulator.perform(&reg(ROOT, *op, key, value)).await;
        assert_eq!(
            out.verdict,
            policy_check(&policy, "TestApp", *op, key, value),
            "{op:?} {key}: the driver and `policy check` agree"
        );
        assert_eq!(out.verdict, Verdict::Allow, "{op:?} {key}");
    }
    assert_eq!(
        r.emulator.metrics().get(Counter::RegistryPolicyQueries),
        0,
        "every read answered in the driver, none queried"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let events = drain(&mut r.events);
    let reads_logged = events
        .iter()
        .filter(|e| e.kind == EventKind::RegistryRead && e.decision == "allow")
        .count();
    assert_eq!(
        reads_logged,
        trace.len(),
        "log_all logs every read: {events:?}"
    );
    let run = events
        .iter()
        .find(|e| e.key_path.ends_with("CurrentVersion\\Run"))
        .expect("the Run key read");
    assert_eq!(run.mitre_id, Some("T1547.001"));
}

/// A rule that denies reads makes the driver ask about session reads: the denied read is denied
/// with an event, other reads are allowed, and `policy check` agrees with each. Under the default
/// policy (no `log_all`) an ordinary read is neither queried nor logged, and a Run key read is
/// allowed and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_rule_is_enforced_and_high_risk_reads_are_logged() {
    let yaml = r#"
registry_policy:
  default_action: deny
  rules:
    - name: deny-secret-reads
      paths: ['HKCU\SOFTWARE\Secret\*']
      operations: [read]
      action: deny
"#;
    let policy = Policy::from_str(yaml, "read-rule.yaml").expect("policy loads");
    assert!(policy.engine().read_handling().query);
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let secret = hkcu("SOFTWARE\\Secret\\token");
    let other = hkcu("SOFTWARE\\Other");
    for (key, expected) in [(&secret, Verdict::Deny), (&other, Verdict::Allow)] {
        let out = r
            .emulator
            .perform(&reg(ROOT, Operation::QueryValue, key, "v"))
            .await;
        assert_eq!(out.verdict, expected, "{key}");
        assert_eq!(
            out.verdict,
            policy_check(&policy, "TestApp", Operation::QueryValue, key, "v")
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let blocked = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryBlocked)
        .expect("the denied read is an event");
    assert_eq!(
        (blocked.driver_operation, blocked.rule_name.as_str()),
        ("QueryValue", "deny-secret-reads")
    );

    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let before = r.emulator.metrics().get(Counter::RegistryPolicyQueries);
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::QueryValue, &other, "v"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::QueryValue, &hkcu(RUN), "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    assert_eq!(
        r.emulator.metrics().get(Counter::RegistryPolicyQueries),
        before,
        "reads answered in the driver"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    assert_eq!(
        events.len(),
        1,
        "only the Run key read is logged: {events:?}"
    );
    assert_eq!(
        (events[0].kind, events[0].decision, events[0].mitre_id),
        (EventKind::RegistryRead, "allow", Some("T1547.001"))
    );
}

/// The design's example policy with one read-deny rule on a subtree: the service sends the
/// compiled read scope, so the kernel queries only reads under that subtree. A denied read inside
/// the scope is denied with an event; a read outside it is answered in the kernel without a query
/// (and logged, `log_all`); a Run key read is allowed and logged with its technique; `policy
/// check` agrees with each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_reads_in_the_compiled_read_scope_are_queried() {
    let yaml = r#"
registry_policy:
  default_action: deny
  log_all: true
  default_cache_ttl: 30
  notify_on_deny: true
  rules:
    - name: allow-app-settings
      paths: ["HKCU\\SOFTWARE\\${APP_NAME}\\*"]
      operations: [read, write, create, delete]
      action: allow
      cache_ttl: 60
    - name: block-run-keys
      paths:
        - "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
        - "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\RunOnce"
        - "HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
      operations: [write, create, delete]
      action: deny
      priority: 1000
      notify: true
    - name: approve-service-install
      paths: ["HKLM\\SYSTEM\\CurrentControlSet\\Services\\*"]
      operations: [create]
      action: approve
      timeout_seconds: 30
      cache_ttl: 0
    - name: deny-vault-reads
      paths: ["HKLM\\SOFTWARE\\Vault\\*"]
      operations: [read]
      action: deny
"#;
    let policy = Policy::from_str(yaml, "design-read-rule.yaml").expect("policy loads");
    let scope = policy.engine().read_scope();
    assert_eq!(
        scope.registry,
        [
            "\\REGISTRY\\MACHINE\\SOFTWARE\\VAULT\\",
            "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE\\VAULT\\",
        ]
    );
    assert!(!scope.files);
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    let queries = |r: &Rig| r.emulator.metrics().get(Counter::RegistryPolicyQueries);

    let vault = "\\REGISTRY\\MACHINE\\SOFTWARE\\Vault\\Keys".to_string();
    let before = queries(&r);
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::QueryValue, &vault, "master"))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    assert_eq!(
        out.verdict,
        policy_check(&policy, "TestApp", Operation::QueryValue, &vault, "master")
    );
    assert_eq!(
        queries(&r),
        before + 1,
        "the read inside the scope is queried"
    );

    let outside = [
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion".to_string(),
        "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Session Manager".to_string(),
        hkcu("SOFTWARE\\Other"),
    ];
    let before = queries(&r);
    for key in &outside {
        for _ in 0..3 {
            let out = r
                .emulator
                .perform(&reg(ROOT, Operation::QueryValue, key, "v"))
                .await;
            assert_eq!(out.verdict, Verdict::Allow, "{key}");
            assert_eq!(
                out.verdict,
                policy_check(&policy, "TestApp", Operation::QueryValue, key, "v")
            );
        }
    }
    let run = hkcu(RUN);
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::QueryValue, &run, "Updater"))
        .await;
    assert_eq!(out.verdict, Verdict::Allow);
    assert_eq!(
        queries(&r),
        before,
        "reads outside the scope are answered in the kernel"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let blocked = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryBlocked)
        .expect("the denied read is an event");
    assert_eq!(
        (blocked.driver_operation, blocked.rule_name.as_str()),
        ("QueryValue", "deny-vault-reads")
    );
    let run_event = events
        .iter()
        .find(|e| e.key_path.ends_with("CurrentVersion\\Run"))
        .expect("the Run key read is logged");
    assert_eq!(
        (run_event.kind, run_event.decision, run_event.mitre_id),
        (EventKind::RegistryRead, "allow", Some("T1547.001"))
    );
}

/// F19's second half: the kernel refuses to hold an operation once the session's holds are all
/// taken and denies it at once; it tells the service (a HoldRefused notification with the
/// ticket), which withdraws the approval instead of listing it until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f19_an_approval_whose_hold_the_kernel_refuses_is_withdrawn_not_listed() {
    use agentsh_kcore::pending::MAX_HOLDS_PER_SESSION;
    use agentsh_kcore::{Caller, QueryOutcome, RegistryOp, Request};
    use agentsh_wire::op::{Decision, MessageType, OpFlags};
    use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};

    let yaml = r#"
registry_rules:
  - name: approve-service-create
    paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*']
    operations: [create]
    decision: approve
    timeout: 60s
"#;
    let policy = Policy::from_str(yaml, "inline.yaml").expect("policy loads");
    let mut r = rig(&policy).await;
    session(&r, "TestApp").await;
    // Other threads of the session hold every slot of its quota in the kernel.
    let held = r.emulator.with_core(|core| {
        let token = core.session_of(ROOT).expect("the session's root").token;
        let key: Vec<u16> = SERVICE_KEY.encode_utf16().collect();
        (0..MAX_HOLDS_PER_SESSION as u32)
            .filter(|i| {
                let name: Vec<u16> = format!("v{i}").encode_utf16().collect();
                let req = Request::Registry(RegistryOp {
                    op: Operation::SetValue,
                    flags: OpFlags(0),
                    key: &key,
                    name: &name,
                    value_type: 1,
                    data_size: 4,
                });
                let mut reply = [0u8; 24];
                PolicyResponseRepr {
                    message_type: MessageType::PolicyCheckRegistry,
                    decision: Decision::Pending,
                    cache_ttl: CacheTtl::None,
                    notify: true,
                    log: true,
                    approval_timeout_secs: 600,
                    approval_ticket: 1_000_000 + i,
                }
                .emit(&mut reply)
                .expect("emit");
                let caller = Caller {
                    pid: ROOT,
                    tid: 10_000 + i,
                };
                matches!(
                    core.complete(0, caller, &req, token, QueryOutcome::Reply(&reply)),
                    agentsh_kcore::Verdict::Hold { .. }
                )
            })
            .count()
    });
    assert_eq!(held, MAX_HOLDS_PER_SESSION);

    let started = std::time::Instant::now();
    let out = r
        .emulator
        .perform(&reg(ROOT, Operation::CreateKey, SERVICE_KEY, ""))
        .await;
    assert_eq!(out.verdict, Verdict::Deny);
    assert_eq!(
        out.reason,
        agentsh_emulator::request::Reason::HoldRefused,
        "denied by the kernel's quota, not by a timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "not held");
    // The service withdraws the approval as soon as the kernel's notification arrives.
    let mut listed = r.service.adapter.approvals.list();
    for _ in 0..500 {
        if listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        listed = r.service.adapter.approvals.list();
    }
    assert!(listed.is_empty(), "still listed: {listed:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let response = events
        .iter()
        .find(|e| e.kind == EventKind::RegistryApprovalResponse)
        .expect("response event");
    assert_eq!(
        (response.decision, response.reason),
        ("deny", Reason::HoldRefused)
    );
    assert_eq!(
        response.to_ocsf()["status_detail"],
        "the driver's hold quota for the session was taken"
    );
}

/// A reload sends the new policy's read scope to the kernel before its configuration: a read the
/// first policy leaves to the kernel is queried and denied once a read rule covers it, and when a
/// third policy moves the read rule to another subtree, the first read is answered in the kernel
/// again while a read in the new subtree is queried (the scope was replaced, not just the flags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_resends_the_read_scope() {
    let base = r#"
registry_policy:
  default_action: deny
  default_cache_ttl: 30
  rules:
    - name: allow-app-settings
      paths: ["HKCU\\SOFTWARE\\${APP_NAME}\\*"]
      operations: [read, write, create, delete]
      action: allow
"#;
    let read_rule = |subtree: &str| {
        format!(
            "{base}    - name: deny-{subtree}-reads\n      paths: [\"HKLM\\\\SOFTWARE\\\\{subtree}\\\\*\"]\n      operations: [read]\n      action: deny\n"
        )
    };
    let first = Policy::from_str(base, "first.yaml").expect("policy loads");
    let second = Policy::from_str(&read_rule("Vault"), "second.yaml").expect("policy loads");
    let third = Policy::from_str(&read_rule("Secrets"), "third.yaml").expect("policy loads");
    let r = rig(&first).await;
    session(&r, "TestApp").await;
    let queries = |r: &Rig| r.emulator.metrics().get(Counter::RegistryPolicyQueries);
    async fn read(r: &Rig, key: &str) -> Verdict {
        let req = reg(ROOT, Operation::QueryValue, key, "master");
        r.emulator.perform(&req).await.verdict
    }
    let vault = "\\REGISTRY\\MACHINE\\SOFTWARE\\Vault\\Keys";
    let secrets = "\\REGISTRY\\MACHINE\\SOFTWARE\\Secrets\\Keys";

    let before = queries(&r);
    assert_eq!(read(&r, vault).await, Verdict::Allow);
    assert_eq!(queries(&r), before, "no read rule: answered in the kernel");

    r.service
        .reload(&second, agentsh_service::driver_config_for(&second))
        .await
        .expect("reloads");
    let before = queries(&r);
    assert_eq!(
        read(&r, vault).await,
        Verdict::Deny,
        "the new read rule applies"
    );
    assert_eq!(queries(&r), before + 1, "the kernel has the new scope");

    r.service
        .reload(&third, agentsh_service::driver_config_for(&third))
        .await
        .expect("reloads");
    let before = queries(&r);
    assert_eq!(read(&r, vault).await, Verdict::Allow);
    assert_eq!(
        queries(&r),
        before,
        "the old subtree left the scope: answered in the kernel"
    );
    assert_eq!(read(&r, secrets).await, Verdict::Deny);
    assert_eq!(queries(&r), before + 1, "the new subtree is queried");
}

/// Every event names its process: the session's root (which the kernel never announces) and a
/// child whose first request reaches the service before its announcement (agentsh.sys sends
/// announcements from a work item) are both named, from the system's process table — what
/// `QueryFullProcessImageNameW` answers on Windows, the emulator's table here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_of_a_new_process_names_its_image() {
    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    r.service
        .adapter
        .set_image_lookup(std::sync::Arc::new(r.emulator.image_lookup()));
    let root_image = "\\Device\\HarddiskVolume3\\tools\\agent.exe";
    r.emulator.process_created(ROOT, OUTSIDER, root_image);
    session(&r, "TestApp").await;
    let child = ROOT + 8;
    let child_image = "\\Device\\HarddiskVolume3\\Python\\python.exe";
    r.emulator
        .process_created_announced_late(child, ROOT, child_image);

    for pid in [ROOT, child] {
        let out = r
            .emulator
            .perform(&reg(pid, Operation::SetValue, &hkcu(RUN), "Updater"))
            .await;
        assert_eq!(out.verdict, Verdict::Deny, "pid {pid}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let named = |pid: u32| {
        let ev = events
            .iter()
            .find(|e| e.process_id == pid && e.kind == EventKind::RegistryBlocked)
            .unwrap_or_else(|| panic!("no block event for pid {pid}: {events:?}"));
        (ev.process_name.clone(), ev.process_image.clone())
    };
    assert_eq!(named(ROOT), ("agent.exe".into(), root_image.into()));
    assert_eq!(named(child), ("python.exe".into(), child_image.into()));
}

/// The wall check `sandbox run` reports when it registers the command's session is carried by
/// that session's first event (JSON and OCSF `unmapped`), and by no later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_first_event_carries_its_wall_check() {
    use agentsh_service::SessionExtras;

    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    let ctx = SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    let extras = SessionExtras {
        canary: None,
        wall_check: Some("passed: driver, container".into()),
    };
    let info = r
        .service
        .register_session_with(ROOT, ctx, false, extras)
        .await
        .expect("registers");
    for _ in 0..2 {
        let out = r
            .emulator
            .perform(&reg(ROOT, Operation::SetValue, &hkcu(RUN), "Updater"))
            .await;
        assert_eq!(out.verdict, Verdict::Deny);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events: Vec<Event> = drain(&mut r.events)
        .into_iter()
        .filter(|e| e.session_id == info.id)
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        events[0].wall_check.as_deref(),
        Some("passed: driver, container")
    );
    assert_eq!(events[1].wall_check, None, "only the first event");
    let json = serde_json::to_value(&events[0]).expect("serializes");
    assert_eq!(json["wall_check"], "passed: driver, container");
    assert!(
        serde_json::to_value(&events[1])
            .expect("serializes")
            .get("wall_check")
            .is_none()
    );
    let ocsf = events[0].to_ocsf();
    assert_eq!(ocsf["unmapped"]["wall_check"], "passed: driver, container");
}

/// `sandbox run`'s wall check: a session registered with a canary name has its writes to keys
/// and files of that name denied and notified, while the same writes under another name (the
/// control) keep the policy's answer; a session without the canary is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_wall_check_canary_is_denied_by_the_driver_with_its_event() {
    use agentsh_emulator::request::Target;
    use agentsh_service::SessionExtras;
    use agentsh_wire::op::FileOperation;

    let policy = Policy::embedded_default().expect("default policy");
    let mut r = rig(&policy).await;
    let canary = "agentsh-wallcheck-00112233445566ff";
    let ctx = SessionContext::new(Some("TestApp"), Some("C:\\work\\project"), Some(SID))
        .expect("valid session");
    let extras = SessionExtras {
        canary: Some(canary.into()),
        wall_check: None,
    };
    let info = r
        .service
        .register_session_with(ROOT, ctx, false, extras)
        .await
        .expect("registers");
    let key = |leaf: &str| hkcu(&format!("SOFTWARE\\TestApp\\{leaf}"));
    let control = r
        .emulator
        .perform(&reg(
            ROOT,
            Operation::CreateKey,
            &key(&format!("{canary}-control")),
            "",
        ))
        .await;
    assert_eq!(
        control.verdict,
        Verdict::Allow,
        "the app key stays writable"
    );
    // The canary's case does not matter (registry and NTFS names are case-insensitive).
    let denied = r
        .emulator
        .perform(&reg(
            ROOT,
            Operation::CreateKey,
            &key(&canary.to_ascii_uppercase()),
            "",
        ))
        .await;
    assert_eq!(denied.verdict, Verdict::Deny);
    let file = |leaf: &str| OperationRequest {
        pid: ROOT,
        thread_id: ROOT + 1,
        target: Target::file(
            FileOperation::Create,
            &format!("C:\\work\\project\\{leaf}"),
            None,
        ),
    };
    let denied_file = r.emulator.perform(&file(canary)).await;
    assert_eq!(denied_file.verdict, Verdict::Deny);
    // A read of the canary is not a write: the policy decides it.
    let read = r
        .emulator
        .perform(&reg(ROOT, Operation::QueryValue, &key(canary), "x"))
        .await;
    assert_eq!(read.verdict, Verdict::Allow);

    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = drain(&mut r.events);
    let blocked: Vec<&Event> = events
        .iter()
        .filter(|e| e.rule_name == agentsh_service::adapter::CANARY_RULE)
        .collect();
    assert_eq!(blocked.len(), 2, "{events:#?}");
    assert_eq!(blocked[0].kind, EventKind::RegistryBlocked);
    assert_eq!(blocked[1].kind, EventKind::FileBlocked);
    assert!(
        blocked
            .iter()
            .all(|e| e.session_id == info.id && e.decision == "deny")
    );

    // Another session (no canary) writing the same name gets the policy's answer.
    assert!(r.service.unregister_session(&info.id).await.expect("ends"));
    let other = session(&r, "TestApp").await;
    assert_ne!(other, info.id);
    let again = r
        .emulator
        .perform(&reg(ROOT, Operation::CreateKey, &key(canary), ""))
        .await;
    assert_eq!(again.verdict, Verdict::Allow);
}
