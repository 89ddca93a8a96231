//! The service as `agentsh service run` runs it: when the driver side goes away it withdraws the
//! approvals held on that connection, reconnects with backoff, and carries on with its sessions
//! and policy; a changed policy file is swapped in with the driver's configuration, an invalid
//! one is refused; stopping removes the API socket.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::{DEFAULT_POLICY_YAML, Policy};
use agentsh_service::SocketTransport;
use agentsh_service::events::Format;
use agentsh_service::runner::{self, RunError, RunOptions, SinkSpec, Status};
use agentsh_wire::Operation;
use tokio::sync::oneshot;

#[path = "common/http.rs"]
mod common_http;
use common_http::http;

const ROOT: u32 = 4100;
const RUN: &str =
    "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\Microsoft\\Windows\\CurrentVersion\\Run";
const SESSION: &str =
    r#"{"root_pid":4100,"app":"TestApp","workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}"#;

fn write(pid: u32, op: Operation, key: &str) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: 1,
        target: Target::registry(op, key, "v", None, 1, 8),
    }
}

struct Running {
    statuses: Arc<Mutex<Vec<Status>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    api_socket: PathBuf,
    events: PathBuf,
}

impl Running {
    /// Waits (up to 10 s) for a status `pick` accepts.
    async fn wait_for<R>(&self, what: &str, pick: impl Fn(&Status) -> Option<R>) -> R {
        for _ in 0..1000 {
            if let Some(r) = self
                .statuses
                .lock()
                .expect("statuses")
                .iter()
                .find_map(&pick)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no status {what}; saw {:?}",
            self.statuses.lock().expect("statuses")
        );
    }

    async fn api(&self) -> PathBuf {
        self.wait_for("api listening", |s| {
            matches!(s, Status::ApiListening { .. }).then_some(())
        })
        .await;
        self.api_socket.clone()
    }

    async fn stop(mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops in time")
            .expect("runner task")
    }
}

async fn start(dir: &Path, socket: &Path, policy: Policy, policy_path: Option<PathBuf>) -> Running {
    start_with(dir, socket, policy, policy_path, None).await
}

async fn start_with(
    dir: &Path,
    socket: &Path,
    policy: Policy,
    policy_path: Option<PathBuf>,
    before_compile: Option<runner::CompileHook>,
) -> Running {
    start_tweaked(dir, socket, policy, policy_path, |o| {
        o.before_compile = before_compile
    })
    .await
}

async fn start_tweaked(
    dir: &Path,
    socket: &Path,
    policy: Policy,
    policy_path: Option<PathBuf>,
    tweak: impl FnOnce(&mut RunOptions),
) -> Running {
    let statuses: Arc<Mutex<Vec<Status>>> = Arc::default();
    let mut options = RunOptions::new(policy, policy_path).expect("options");
    tweak(&mut options);
    options.api_socket = dir.join("api").join("api.sock");
    let events = dir.join("events.jsonl");
    options.sinks = vec![SinkSpec {
        format: Format::Jsonl,
        path: Some(events.clone()),
    }];
    options.reconnect_backoff = (Duration::from_millis(10), Duration::from_millis(80));
    options.watch_interval = Duration::from_millis(50);
    options.status = {
        let statuses = statuses.clone();
        Arc::new(move |s: &Status| statuses.lock().expect("statuses").push(s.clone()))
    };
    let api_socket = options.api_socket.clone();
    let first = SocketTransport::connect(socket).await.expect("connects");
    let socket = socket.to_owned();
    let reconnect = move || {
        let socket = socket.clone();
        async move {
            SocketTransport::connect(&socket)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(runner::run(options, first, reconnect, async move {
        let _ = rx.await;
    }));
    Running {
        statuses,
        stop: Some(tx),
        task,
        api_socket,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_driver_goes_away_the_service_reconnects_with_its_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let first = Emulator::start(&socket, 1).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let run = start(dir.path(), &socket, policy, None).await;
    let api = run.api().await;
    let (status, body) = http(&api, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    let out = first.perform(&write(ROOT, Operation::SetValue, RUN)).await;
    assert_eq!(out.verdict, Verdict::Deny, "the Run key is blocked");

    first.unload();
    run.wait_for("disconnected", |s| {
        matches!(s, Status::Disconnected { withdrawn: 0 }).then_some(())
    })
    .await;
    // The API stays up, but while the kernel cannot be asked whether a caller is in a session,
    // every local caller is refused.
    let (status, body) = http(&api, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot ask the driver"), "{body}");
    assert!(body.contains("not connected"), "{body}");
    run.wait_for("a failed reconnect attempt", |s| {
        matches!(s, Status::Reconnecting { .. }).then_some(())
    })
    .await;

    // The driver comes back (reloaded: it lost its sessions).
    let second = Emulator::start(&socket, 2).expect("listens again");
    let restored = run
        .wait_for("reconnected", |s| match s {
            Status::Reconnected { restored, .. } => Some(restored.clone()),
            _ => None,
        })
        .await;
    assert_eq!(restored, vec!["s-1".to_owned()]);
    assert_eq!(
        second.with_core(|c| c.excluded_process()),
        Some(std::process::id()),
        "the service excludes itself again"
    );
    let out = second.perform(&write(ROOT, Operation::SetValue, RUN)).await;
    assert_eq!(
        out.verdict,
        Verdict::Deny,
        "decided by the service again, for the same session"
    );
    let (status, body) = http(&api, "GET", "/v1/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("agentsh_driver_"),
        "driver counters are back\n{body}"
    );

    let api_socket = run.api_socket.clone();
    run.stop().await.expect("stops cleanly");
    assert!(!api_socket.exists(), "the socket goes with the service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_held_when_the_driver_goes_away_is_withdrawn_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Arc::new(Emulator::start(&socket, 1).expect("listens"));
    let policy = Policy::embedded_default().expect("policy");
    let run = start(dir.path(), &socket, policy, None).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);
    let held = tokio::spawn({
        let emulator = emulator.clone();
        async move {
            emulator
                .perform(&write(
                    ROOT,
                    Operation::CreateKey,
                    "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil",
                ))
                .await
        }
    });
    let mut listed = false;
    for _ in 0..500 {
        let (_, body) = http(&api, "GET", "/v1/approvals", "").await;
        if body.contains("\"id\":") {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(listed, "the service key creation waits for a person");

    emulator.unload();
    let out = held.await.expect("operation task");
    assert_eq!(out.verdict, Verdict::Deny, "the kernel denies what it held");
    run.wait_for("one approval withdrawn", |s| {
        matches!(s, Status::Disconnected { withdrawn: 1 }).then_some(())
    })
    .await;
    // While the kernel cannot be asked about callers, the API refuses them; once the driver is
    // back, the list shows nothing left waiting.
    let (status, body) = http(&api, "GET", "/v1/approvals", "").await;
    assert_eq!(status, 503, "{body}");
    let _second = Emulator::start(&socket, 2).expect("listens again");
    run.wait_for("reconnected", |s| {
        matches!(s, Status::Reconnected { .. }).then_some(())
    })
    .await;
    let (status, body) = http(&api, "GET", "/v1/approvals", "").await;
    assert_eq!(
        (status, body.trim()),
        (200, "[]"),
        "nothing is left waiting"
    );

    let events = run.events.clone();
    run.stop().await.expect("stops");
    let log = std::fs::read_to_string(&events).expect("events file");
    let response = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "registry_approval_response")
        .unwrap_or_else(|| panic!("no approval response in\n{log}"));
    assert_eq!(response["decision"], "deny");
    assert_eq!(response["reason"], "connection_lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_file_is_swapped_in_with_its_driver_settings_and_a_bad_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    std::fs::write(&path, DEFAULT_POLICY_YAML).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let run = start(dir.path(), &socket, policy, Some(path.clone())).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);
    let other = "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\OtherVendor\\settings";
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(out.verdict, Verdict::Deny, "the default policy denies");

    let widened = DEFAULT_POLICY_YAML.replacen(
        "  rules:\n",
        "  rules:\n    - name: allow-other-vendor\n      paths: ['HKCU\\SOFTWARE\\OtherVendor\\*']\n      operations: ['*']\n      action: allow\n",
        1,
    ) + "\ndriver:\n  cache_default_ttl_ms: 1234\n";
    // Saved the way editors do: a new file renamed over the old one.
    let tmp = dir.path().join("agentsh.yaml.tmp");
    std::fs::write(&tmp, &widened).expect("new policy");
    std::fs::rename(&tmp, &path).expect("replaced");
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;
    assert_eq!(
        emulator.with_core(|c| c.config().cache_default_ttl_ms),
        1234,
        "the driver has the reloaded configuration"
    );
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(out.verdict, Verdict::Allow, "the new rule is in force");

    std::fs::write(&path, "registry_policy: [this is not a policy").expect("broken policy");
    let error = run
        .wait_for("rejected", |s| match s {
            Status::ReloadRejected { error, .. } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(
        error.contains("agentsh.yaml"),
        "the error says where: {error}"
    );
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(out.verdict, Verdict::Allow, "the last good policy stays");
    run.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_rules_overlay_is_hot_reloaded_and_one_lowering_a_critical_entry_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    std::fs::write(&path, DEFAULT_POLICY_YAML).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let run = start(dir.path(), &socket, policy, Some(path.clone())).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);
    let other = "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\OtherVendor\\settings";
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(out.verdict, Verdict::Deny, "the default policy denies");

    // The overlay appearing next to the policy is a change.
    let overlay = dir.path().join("agentsh.remembered.yaml");
    let remembered = "registry_rules:\n  - name: remembered-other-vendor\n    paths: ['HKCU\\SOFTWARE\\OtherVendor\\settings']\n    operations: [write]\n    action: allow\n    priority: 100\n";
    std::fs::write(&overlay, remembered).expect("overlay");
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(
        out.verdict,
        Verdict::Allow,
        "the remembered rule is in force"
    );

    // A remembered rule lowering the per-user Run key is refused; the last good set stays.
    let lowering = format!(
        "{remembered}  - name: remembered-run\n    paths: ['HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run']\n    operations: [write]\n    action: allow\n"
    );
    std::fs::write(&overlay, lowering).expect("overlay");
    let error = run
        .wait_for("rejected", |s| match s {
            Status::ReloadRejected { error, .. } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(
        error.contains("agentsh.remembered.yaml") && error.contains("run-keys-hkcu"),
        "the error says where and what: {error}"
    );
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, RUN))
        .await;
    assert_eq!(out.verdict, Verdict::Deny, "the Run key stays denied");
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, other))
        .await;
    assert_eq!(out.verdict, Verdict::Allow, "the last good overlay stays");
    run.stop().await.expect("stops");
}

/// Answers the first approval that appears with `answer` (`allow?remember=true`, ...); returns
/// the HTTP status and body.
async fn answer_first(api: &Path, answer: &str) -> (u16, String) {
    for _ in 0..500 {
        let (_, list) = http(api, "GET", "/v1/approvals", "").await;
        let v: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
        if let Some(id) = v.get(0).and_then(|a| a["id"].as_u64()) {
            let (status, body) =
                http(api, "POST", &format!("/v1/approvals/{id}/{answer}"), "").await;
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (0, "no approval appeared".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_remembered_becomes_a_rule_the_next_identical_operation_meets_without_asking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    let asking = DEFAULT_POLICY_YAML.replacen(
        "  rules:\n",
        "  rules:\n    - name: ask-other-vendor\n      paths: ['HKCU\\SOFTWARE\\OtherVendor\\*']\n      operations: ['*']\n      action: approve\n",
        1,
    );
    std::fs::write(&path, &asking).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let run = start(dir.path(), &socket, policy, Some(path.clone())).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);
    let settings = "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\OtherVendor\\settings";
    let secrets = "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\OtherVendor\\secrets";

    // Allowed and remembered: the held operation completes, the overlay holds the rule.
    let op = write(ROOT, Operation::SetValue, settings);
    let (out, (status, body)) = tokio::join!(
        emulator.perform(&op),
        answer_first(&api, "allow?remember=true")
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("remembered as rule `remembered-1`"), "{body}");
    assert_eq!(out.verdict, Verdict::Allow);
    let overlay = dir.path().join("agentsh.remembered.yaml");
    let written = std::fs::read_to_string(&overlay).expect("overlay written");
    assert!(
        written.contains("app TestApp") && written.contains("decision: allow"),
        "{written}"
    );
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;
    // The same operation again: decided by the rule, no approval opened.
    let out = tokio::time::timeout(Duration::from_secs(5), emulator.perform(&op))
        .await
        .expect("answered without a person");
    assert_eq!(out.verdict, Verdict::Allow, "the remembered rule allows it");
    let (_, pending) = http(&api, "GET", "/v1/approvals", "").await;
    assert_eq!(pending.trim(), "[]");
    // Another value of the same key still asks (the rule is exact).
    let other_value = OperationRequest {
        pid: ROOT,
        thread_id: 1,
        target: Target::registry(Operation::SetValue, settings, "w", None, 1, 8),
    };
    let (out, (status, _)) =
        tokio::join!(emulator.perform(&other_value), answer_first(&api, "deny"));
    assert_eq!((status, out.verdict), (200, Verdict::Deny));

    // Denied and remembered: the next identical operation is denied without asking.
    let op = write(ROOT, Operation::SetValue, secrets);
    let (out, (status, body)) = tokio::join!(
        emulator.perform(&op),
        answer_first(&api, "deny?remember=true")
    );
    assert_eq!((status, out.verdict), (200, Verdict::Deny), "{body}");
    let reloads = |s: &Status| matches!(s, Status::Reloaded { .. });
    for _ in 0..500 {
        if run
            .statuses
            .lock()
            .expect("statuses")
            .iter()
            .filter(|s| reloads(s))
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(5), emulator.perform(&op))
        .await
        .expect("answered without a person");
    assert_eq!(out.verdict, Verdict::Deny);
    let written = std::fs::read_to_string(&overlay).expect("overlay");
    assert!(
        written.contains("remembered-2") && written.contains("decision: deny"),
        "{written}"
    );
    let events = run.events.clone();
    run.stop().await.expect("stops");
    keep_history("registry", &events);
}

/// Keeps a run's events as an approval history (`target/tmp/approval-history/<name>.jsonl`):
/// `crates/cli/tests/data/approval-history.jsonl`, which `agentsh policy suggest` is tested on,
/// is these runs' histories, `registry` then `files`.
fn keep_history(name: &str, events: &Path) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("approval-history");
    std::fs::create_dir_all(&dir).expect("creates the history directory");
    std::fs::copy(events, dir.join(format!("{name}.jsonl"))).expect("keeps the history");
}

/// Registers a session rooted at `root` with the given app name (none: `null`).
async fn session_of(api: &Path, root: u32, app: Option<&str>) {
    let app = app.map_or("null".to_owned(), |a| format!("\"{a}\""));
    let body = format!(
        r#"{{"root_pid":{root},"app":{app},"workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}}"#
    );
    let (status, text) = http(api, "POST", "/v1/sessions", &body).await;
    assert_eq!(status, 201, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_file_answer_holds_for_its_app_only_and_no_decision_crosses_sessions() {
    use agentsh_wire::FileOperation;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    // The emulated machine's system volume is `\Device\HarddiskVolume3` at `C:`.
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    let asking = DEFAULT_POLICY_YAML.replacen(
        "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n",
        "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n    - name: ask-shared\n      paths: ['C:\\Shared\\*']\n      operations: ['*']\n      action: approve\n",
        1,
    );
    assert_ne!(asking, DEFAULT_POLICY_YAML, "the rule was added");
    std::fs::write(&path, &asking).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let run = start_tweaked(dir.path(), &socket, policy, Some(path.clone()), |o| {
        o.volumes = Some(agentsh_service::volumes::table_file(
            agentsh_service::volumes::table_beside(&socket),
        ));
    })
    .await;
    let api = run.api().await;
    run.wait_for("the emulator's volumes", |s| {
        matches!(s, Status::VolumesChanged { .. }).then_some(())
    })
    .await;
    let (editor, other_app, editor_again, no_app) = (4100, 4200, 4300, 4400);
    session_of(&api, editor, Some("Editor")).await;
    session_of(&api, other_app, Some("Browser")).await;
    session_of(&api, editor_again, Some("editor")).await;
    session_of(&api, no_app, None).await;
    // The kernel names the file by its volume device, as the filter manager does.
    let device_path = r"\Device\HarddiskVolume3\Shared\notes.txt";
    let op = |pid: u32| OperationRequest {
        pid,
        thread_id: 1,
        target: Target::file(FileOperation::Write, device_path, None),
    };

    // The editor's write is held; allowed and remembered for its app (the default scope).
    let first = op(editor);
    let (out, (status, body)) = tokio::join!(
        emulator.perform(&first),
        answer_first(&api, "allow?remember=app")
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("remembered as rule `remembered-1`, for the session's app"),
        "{body}"
    );
    assert_eq!(out.verdict, Verdict::Allow);
    let overlay = dir.path().join("agentsh.remembered.yaml");
    let written = std::fs::read_to_string(&overlay).expect("overlay written");
    // In the form the policy's file rules use: the drive-letter path, not the device path.
    assert!(
        written.contains(r"paths: ['C:\SHARED\NOTES.TXT']")
            && written.contains("apps: ['Editor']")
            && written.contains("operations: [write]")
            && written.contains("decision: allow"),
        "{written}"
    );
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;

    // The editor again, and another session of the same app: decided by the rule, not asked.
    for pid in [editor, editor_again] {
        let out = tokio::time::timeout(Duration::from_secs(5), emulator.perform(&op(pid)))
            .await
            .unwrap_or_else(|_| panic!("pid {pid} answered without a person"));
        assert_eq!(out.verdict, Verdict::Allow, "pid {pid}");
        let (_, pending) = http(&api, "GET", "/v1/approvals", "").await;
        assert_eq!(pending.trim(), "[]", "pid {pid}");
    }
    // Another app's session is still asked: neither the rule nor the editor's cached allow
    // reaches it.
    let other = op(other_app);
    let (out, (status, body)) = tokio::join!(emulator.perform(&other), answer_first(&api, "deny"));
    assert_eq!((status, out.verdict), (200, Verdict::Deny), "{body}");
    let (out, (status, body)) = tokio::join!(emulator.perform(&other), answer_first(&api, "deny"));
    assert_eq!(
        (status, out.verdict),
        (200, Verdict::Deny),
        "asked again: a person's answer is never cached: {body}"
    );

    // A session without an app name: remembering for its app is refused with the reason (and a
    // scope the API does not know is a bad request); the approval stays answerable.
    let nameless = op(no_app);
    let answers = async {
        let bogus = answer_first(&api, "allow?remember=everyone").await;
        let refused = answer_first(&api, "allow?remember=true").await;
        let deny = answer_first(&api, "deny").await;
        (bogus, refused, deny)
    };
    let (out, ((bad, bad_body), (conflict, why), (denied, _))) =
        tokio::join!(emulator.perform(&nameless), answers);
    assert_eq!(bad, 400, "{bad_body}");
    assert!(bad_body.contains("remember=all-apps"), "{bad_body}");
    assert_eq!(conflict, 409, "{why}");
    assert!(why.contains("has no app name"), "{why}");
    assert_eq!((denied, out.verdict), (200, Verdict::Deny));
    let unchanged = std::fs::read_to_string(&overlay).expect("overlay");
    assert_eq!(unchanged, written, "nothing was remembered");

    let events_file = run.events.clone();
    run.stop().await.expect("stops");
    keep_history("files", &events_file);
    // The approval events name the app and the file as the rules do.
    let events = std::fs::read_to_string(&events_file).expect("events");
    let request = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "registry_approval_request")
        .expect("an approval request event");
    assert_eq!(request["key_path"], device_path, "{request}");
    assert_eq!(
        request["canonical_path"], r"C:\SHARED\NOTES.TXT",
        "{request}"
    );
    assert_eq!(request["app"], "Editor", "{request}");
    assert_eq!(request["driver_operation"], "write", "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembering_without_a_policy_file_is_refused_and_the_approval_stays_answerable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let policy = Policy::embedded_default().expect("policy");
    let run = start(dir.path(), &socket, policy, None).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);
    let services = "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\agentsh-demo";
    let op = write(ROOT, Operation::CreateKey, services);
    let answers = async {
        let first = answer_first(&api, "allow?remember=true").await;
        let second = answer_first(&api, "deny").await;
        (first, second)
    };
    let (out, ((status, body), (again, _))) = tokio::join!(emulator.perform(&op), answers);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("--policy"), "{body}");
    assert_eq!(again, 200, "the approval was still pending");
    assert_eq!(out.verdict, Verdict::Deny);
    run.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_settings_are_refused_before_connecting() {
    let policy = Policy::embedded_default().expect("policy");
    let mut options = RunOptions::new(policy, None).expect("options");
    options.overrides.cache_max_entries = Some(5);
    let error = options
        .overrides
        .config(&options.policy)
        .expect_err("5 entries is below the guide's range");
    assert!(error.to_string().contains("100"), "{error}");
}

/// Structural: while a reload's compile is held (on a barrier in the compile hook, on the
/// blocking thread), requests keep being decided by the policy in force; released, the new
/// policy is swapped in. (How long a 20,000-rule compile takes is a benchmark:
/// `cargo bench -p agentsh-service --bench reload`.)
// One runtime thread: a compile held on it would stop every decision, so the test fails unless
// the compile runs elsewhere.
#[tokio::test(flavor = "current_thread")]
async fn decisions_keep_flowing_while_a_reload_compiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    std::fs::write(&path, DEFAULT_POLICY_YAML).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let entered = Arc::new(std::sync::Barrier::new(2));
    let release = Arc::new(std::sync::Barrier::new(2));
    let hook: runner::CompileHook = {
        let (entered, release) = (entered.clone(), release.clone());
        Arc::new(move || {
            entered.wait();
            release.wait();
        })
    };
    let run = start_with(dir.path(), &socket, policy, Some(path.clone()), Some(hook)).await;
    let api = run.api().await;
    assert_eq!(http(&api, "POST", "/v1/sessions", SESSION).await.0, 201);

    let tmp = dir.path().join("agentsh.yaml.tmp");
    std::fs::write(&tmp, format!("{DEFAULT_POLICY_YAML}\n# changed\n")).expect("new policy");
    std::fs::rename(&tmp, &path).expect("replaced");
    let waiting = entered.clone();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || waiting.wait()),
    )
    .await
    .expect("the reload reaches its compile")
    .expect("joins");

    // The compile is held: decisions still flow, from the policy in force.
    for _ in 0..50 {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            emulator.perform(&write(ROOT, Operation::SetValue, RUN)),
        )
        .await
        .expect("decided while the compile is held");
        assert_eq!(out.verdict, Verdict::Deny);
    }
    assert!(
        !run.statuses
            .lock()
            .expect("statuses")
            .iter()
            .any(|s| matches!(s, Status::Reloaded { .. })),
        "not swapped in before the compile finishes"
    );
    let m = emulator.metrics();
    assert_eq!(
        m.get(agentsh_wire::control::Counter::PolicyQueryTimeouts),
        0
    );
    assert_eq!(m.get(agentsh_wire::control::Counter::FailOpenDecisions), 0);

    let releasing = release.clone();
    tokio::task::spawn_blocking(move || releasing.wait())
        .await
        .expect("joins");
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;
    run.stop().await.expect("stops cleanly");
}

/// A policy file that cannot be read is reported as such (not as invalid) and read again at the
/// following polls; once readable it is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_policy_file_is_reported_and_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let _emulator = Emulator::start(&socket, 1).expect("listens");
    let path = dir.path().join("agentsh.yaml");
    std::fs::write(&path, DEFAULT_POLICY_YAML).expect("policy file");
    let policy = Policy::from_path(&path).expect("policy");
    let run = start(dir.path(), &socket, policy, Some(path.clone())).await;
    run.api().await;
    // A directory where the file was: every read fails with an I/O error.
    std::fs::remove_file(&path).expect("removes");
    std::fs::create_dir(&path).expect("a directory in its place");
    let error = run
        .wait_for("a deferred reload", |s| match s {
            Status::ReloadDeferred { error, .. } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(error.to_lowercase().contains("directory"), "{error}");
    let deferred = || {
        run.statuses
            .lock()
            .expect("statuses")
            .iter()
            .filter(|s| matches!(s, Status::ReloadDeferred { .. }))
            .count()
    };
    let first = deferred();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(deferred() > first, "tried again at later polls");
    assert!(
        !run.statuses
            .lock()
            .expect("statuses")
            .iter()
            .any(|s| matches!(s, Status::ReloadRejected { .. })),
        "an I/O error is not reported as an invalid policy"
    );
    std::fs::remove_dir(&path).expect("removes the directory");
    std::fs::write(&path, format!("{DEFAULT_POLICY_YAML}\n# back\n")).expect("policy again");
    run.wait_for("reloaded", |s| {
        matches!(s, Status::Reloaded { .. }).then_some(())
    })
    .await;
    run.stop().await.expect("stops cleanly");
}

/// A transport that records, when the service sends its first message (Hello), what `probe`
/// found then.
struct FirstSend {
    inner: SocketTransport,
    probe: Arc<dyn Fn() -> String + Send + Sync>,
    seen: Arc<Mutex<Option<String>>>,
}

impl agentsh_service::transport::PortTransport for FirstSend {
    async fn recv(&self) -> std::io::Result<Option<agentsh_service::transport::KernelMessage>> {
        self.inner.recv().await
    }
    async fn reply(&self, message_id: u64, reply: &[u8]) -> std::io::Result<()> {
        self.inner.reply(message_id, reply).await
    }
    async fn send(&self, message: &[u8]) -> std::io::Result<Vec<u8>> {
        {
            let mut seen = self.seen.lock().expect("seen");
            if seen.is_none() {
                *seen = Some((self.probe)());
            }
        }
        self.inner.send(message).await
    }
}

/// Runs the service with `first` as its first transport; reconnects go to `socket`.
fn run_with(
    options: RunOptions,
    first: FirstSend,
    socket: &Path,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), RunError>>,
) {
    let socket = socket.to_owned();
    let reconnect = move || {
        let socket = socket.clone();
        async move {
            Ok(FirstSend {
                inner: SocketTransport::connect(&socket)
                    .await
                    .map_err(|e| e.to_string())?,
                probe: Arc::new(String::new),
                seen: Arc::default(),
            })
        }
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(runner::run(options, first, reconnect, async move {
        let _ = rx.await;
    }));
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_socket_is_taken_before_the_driver_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let mut options =
        RunOptions::new(Policy::embedded_default().expect("policy"), None).expect("options");
    let api_socket = dir.path().join("api").join("api.sock");
    options.api_socket = api_socket.clone();
    let seen = Arc::new(Mutex::new(None));
    let probe = {
        let api_socket = api_socket.clone();
        move || {
            use std::os::unix::fs::FileTypeExt;
            match std::fs::symlink_metadata(&api_socket) {
                Ok(m) if m.file_type().is_socket() => "socket".to_owned(),
                Ok(_) => "not a socket".to_owned(),
                Err(e) => format!("missing: {e}"),
            }
        }
    };
    let first = FirstSend {
        inner: SocketTransport::connect(&socket).await.expect("connects"),
        probe: Arc::new(probe),
        seen: seen.clone(),
    };
    let (stop, task) = run_with(options, first, &socket);
    // Served once the service is up, on the socket bound before the handshake.
    let mut served = 0;
    for _ in 0..500 {
        if api_socket.exists() {
            served = http(&api_socket, "GET", "/v1/metrics", "").await.0;
            if served == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.lock().expect("seen").as_deref(),
        Some("socket"),
        "the API socket existed when the driver got the Hello"
    );
    assert_eq!(served, 200, "and it is served");
    assert_eq!(
        emulator.with_core(|c| c.excluded_process()),
        Some(std::process::id())
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops in time")
        .expect("runner task")
        .expect("stops cleanly");
    assert!(!api_socket.exists(), "the socket goes with the service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_name_that_cannot_be_taken_is_reported_before_the_handshake_and_decisions_flow() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    // The socket's directory is writable by every account: anyone could replace the socket, so
    // the service refuses the name (as it refuses a directory another account made).
    let api_dir = dir.path().join("api");
    std::fs::create_dir(&api_dir).expect("mkdir");
    std::fs::set_permissions(&api_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let statuses: Arc<Mutex<Vec<Status>>> = Arc::default();
    let mut options =
        RunOptions::new(Policy::embedded_default().expect("policy"), None).expect("options");
    options.api_socket = api_dir.join("api.sock");
    options.status = {
        let statuses = statuses.clone();
        Arc::new(move |s: &Status| statuses.lock().expect("statuses").push(s.clone()))
    };
    let seen = Arc::new(Mutex::new(None));
    let probe = {
        let statuses = statuses.clone();
        move || {
            statuses
                .lock()
                .expect("statuses")
                .iter()
                .find_map(|s| match s {
                    Status::ApiUnavailable { error, .. } => Some(error.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }
    };
    let first = FirstSend {
        inner: SocketTransport::connect(&socket).await.expect("connects"),
        probe: Arc::new(probe),
        seen: seen.clone(),
    };
    let (stop, task) = run_with(options, first, &socket);
    let mut connected = false;
    for _ in 0..500 {
        if statuses
            .lock()
            .expect("statuses")
            .iter()
            .any(|s| matches!(s, Status::Connected { .. }))
        {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(connected, "the service connects to the driver all the same");
    let reported = seen.lock().expect("seen").clone().unwrap_or_default();
    assert!(
        reported.contains("writable by other accounts"),
        "reported before the Hello: {reported:?}"
    );
    assert_eq!(
        emulator.with_core(|c| c.excluded_process()),
        Some(std::process::id()),
        "handshaken and excluded"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "the service keeps running");
    assert_eq!(
        emulator
            .metrics()
            .get(agentsh_wire::control::Counter::ServiceConnected),
        1,
        "and stays connected to the driver"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops in time")
        .expect("runner task")
        .expect("stops cleanly");
}

/// The service restarts while the driver keeps running: the sessions it kept in its session file
/// are known again, so a surviving session's requests are decided in its own context and its
/// events carry the same `session_id`; a session registered afterwards is numbered after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_service_restart_surviving_sessions_keep_their_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let emulator = Emulator::start(&socket, 1).expect("listens");
    let sessions = dir.path().join("state").join("sessions.json");
    let keep = |o: &mut RunOptions| o.session_file = Some(sessions.clone());
    let policy = || Policy::embedded_default().expect("policy");

    let run = start_tweaked(dir.path(), &socket, policy(), None, keep).await;
    let api = run.api().await;
    let (status, body) = http(&api, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("s-1"), "{body}");
    run.stop().await.expect("stops");
    let saved = std::fs::read_to_string(&sessions).expect("the session file");
    assert!(saved.contains("\"s-1\""), "{saved}");
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&sessions)
                .expect("metadata")
                .permissions()
        ) & 0o777,
        0o600,
        "only the service's account reads the tokens"
    );

    let run = start_tweaked(dir.path(), &socket, policy(), None, keep).await;
    run.wait_for("sessions restored", |s| match s {
        Status::SessionsRestored { sessions, .. } => Some(*sessions),
        _ => None,
    })
    .await;
    let api = run.api().await;
    let out = emulator
        .perform(&write(ROOT, Operation::SetValue, RUN))
        .await;
    assert_eq!(out.verdict, Verdict::Deny, "the Run key is blocked");
    let mut blocked = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&run.events).unwrap_or_default();
        blocked = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["type"] == "registry_blocked" && e["process_id"] == ROOT);
        if blocked.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let blocked = blocked.expect("the surviving session's block is an event");
    assert_eq!(blocked["session_id"], "s-1", "{blocked}");
    let other = r#"{"root_pid":5200,"app":"Other","workspace":"C:\\other","user_sid":"S-1-5-21-1-2-3-1001"}"#;
    let (status, body) = http(&api, "POST", "/v1/sessions", other).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body.contains("s-2"),
        "numbered after the restored session: {body}"
    );
    run.stop().await.expect("stops");
}

/// After a reboot or a driver reload the sessions in the session file are gone from the driver
/// and their root pids may belong to other processes: such a session is kept for its token but
/// never registered with the driver again, while a session of this run is, after a driver
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_sessions_the_driver_does_not_hold_are_never_registered_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let sessions = dir.path().join("sessions.json");
    let keep = |o: &mut RunOptions| o.session_file = Some(sessions.clone());
    let policy = || Policy::embedded_default().expect("policy");

    let first = Emulator::start(&socket, 1).expect("listens");
    let run = start_tweaked(dir.path(), &socket, policy(), None, keep).await;
    let api = run.api().await;
    let (status, body) = http(&api, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    run.stop().await.expect("stops");
    // The machine restarts: the driver comes up without the session.
    first.unload();
    let second = Emulator::start(&socket, 2).expect("listens again");
    let run = start_tweaked(dir.path(), &socket, policy(), None, keep).await;
    run.wait_for("sessions restored", |s| match s {
        Status::SessionsRestored { sessions, .. } => Some(*sessions),
        _ => None,
    })
    .await;
    let api = run.api().await;
    let other = r#"{"root_pid":5200,"app":"Other","workspace":"C:\\other","user_sid":"S-1-5-21-1-2-3-1001"}"#;
    let (status, body) = http(&api, "POST", "/v1/sessions", other).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("s-2"), "{body}");

    second.unload();
    let third = Emulator::start(&socket, 3).expect("listens a third time");
    let restored = run
        .wait_for("reconnected", |s| match s {
            Status::Reconnected { restored, .. } => Some(restored.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        restored,
        vec!["s-2".to_owned()],
        "only the session of this run is registered again"
    );
    assert!(
        third.with_core(|c| c.session_of(ROOT)).is_none(),
        "the old session's root pid is not placed in a session"
    );
    assert!(third.with_core(|c| c.session_of(5200)).is_some());
    run.stop().await.expect("stops");
}

/// A session file that is not a session table is reported and set aside; the service runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_session_file_is_reported_and_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("port.sock");
    let _emulator = Emulator::start(&socket, 1).expect("listens");
    let sessions = dir.path().join("sessions.json");
    std::fs::write(&sessions, "[{\"id\": 7}]").expect("writes");
    let run = start_tweaked(
        dir.path(),
        &socket,
        Policy::embedded_default().expect("policy"),
        None,
        |o| o.session_file = Some(sessions.clone()),
    )
    .await;
    let error = run
        .wait_for("the session file problem", |s| match s {
            Status::SessionFileProblem { error, .. } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(error.contains("sessions.json"), "{error}");
    assert!(dir.path().join("sessions.json.unusable").exists());
    run.api().await;
    run.stop().await.expect("stops");
}
