//! `agentsh approvals` and `agentsh metrics` against the real service over its Unix socket, and
//! what the operating system's identity of the caller decides: a process registered in a
//! sandbox session — even running as root, with everything the service writes readable —
//! cannot list, approve or deny approvals, nor end a session; the client refuses a socket whose
//! directory another account controls, sending nothing.
//!
//! On Linux this proves the refusal of a real registered pid (`SO_PEERCRED`) and of its child
//! before any kernel announcement of it. Only Windows can show the named pipe's side (the
//! impersonated token's groups and integrity level, AppContainer and restricted tokens).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::api::{self, Api, Limits};
use agentsh_service::events::EventPipeline;
use agentsh_service::{Service, SocketTransport};
use agentsh_wire::Operation;

fn agentsh(args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(args)
        .output()
        .expect("runs agentsh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || agentsh(&args))
        .await
        .expect("joins")
}

struct Running {
    emulator: Arc<Emulator>,
    service: Arc<Service<SocketTransport>>,
    socket: PathBuf,
    _api: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = dir.path().join("port.sock");
    let emulator = Arc::new(Emulator::start(&port, 3).expect("listens"));
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = Arc::new(
        Service::start(
            SocketTransport::connect(&port).await.expect("connects"),
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
        Arc::new(|_| {}),
    );
    let socket = dir.path().join("api").join("api.sock");
    let task = api::serve_local(&local, &socket, None).expect("serves");
    Running {
        emulator,
        service,
        socket,
        _api: task,
        _dir: dir,
    }
}

fn with_api(socket: &Path, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    v.extend(["--api-socket".to_owned(), socket.display().to_string()]);
    v
}

fn create_service_key(pid: u32) -> OperationRequest {
    OperationRequest {
        pid,
        thread_id: 1,
        target: Target::registry(
            Operation::CreateKey,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x",
            "",
            None,
            0,
            0,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_and_metrics_through_the_real_service() {
    let run = start().await;
    let context = SessionContext::new(Some("TestApp"), Some("C:\\work"), None).expect("context");
    run.service
        .register_session(4100, context, false)
        .await
        .expect("session");
    assert_eq!(
        cli(with_api(&run.socket, &["approvals", "list"])).await,
        (0, "no approvals pending\n".to_owned(), String::new())
    );
    let person = async {
        for _ in 0..100 {
            let (code, list, stderr) = cli(with_api(&run.socket, &["approvals", "list"])).await;
            assert_eq!(code, 0, "{stderr}");
            if let Some(id) = list
                .split_whitespace()
                .next()
                .and_then(|id| id.parse::<u32>().ok())
            {
                assert!(list.contains("CreateKey"), "{list}");
                let id = id.to_string();
                return cli(with_api(
                    &run.socket,
                    &["approvals", "approve", &id, "--session"],
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (-1, String::new(), "no approval showed up".to_owned())
    };
    let create = create_service_key(4100);
    let (out, (code, stdout, stderr)) = tokio::join!(run.emulator.perform(&create), person);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with(": allow\n"), "{stdout}");
    assert_eq!(out.verdict, Verdict::Allow);

    let (code, _, stderr) = cli(with_api(&run.socket, &["approvals", "deny", "999"])).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("404") && stderr.contains("no pending approval with id `999`"),
        "{stderr}"
    );
    let (code, metrics, stderr) = cli(with_api(&run.socket, &["metrics"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        metrics.contains("agentsh_approvals_opened_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deny_remember_write_rules_the_policy_then_decides_without_asking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy_path = dir.path().join("agentsh.yaml");
    let asking = agentsh_policy::DEFAULT_POLICY_YAML.replacen(
        "  rules:\n",
        "  rules:\n    - name: ask-other-vendor\n      paths: ['HKCU\\SOFTWARE\\OtherVendor\\*']\n      operations: ['*']\n      action: approve\n",
        1,
    );
    std::fs::write(&policy_path, &asking).expect("policy");
    let port = dir.path().join("port.sock");
    let emulator = Arc::new(Emulator::start(&port, 3).expect("listens"));
    let policy = Policy::from_path(&policy_path).expect("policy");
    let (pipeline, _events) = EventPipeline::channel(256);
    let service = Arc::new(
        Service::start(
            SocketTransport::connect(&port).await.expect("connects"),
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
        Arc::new(|_| {}),
    )
    .remember_into(policy_path.clone());
    let socket = dir.path().join("api").join("api.sock");
    let _task = api::serve_local(&local, &socket, None).expect("serves");
    let sid = "S-1-5-21-1-2-3-1001";
    let context = SessionContext::new(Some("TestApp"), Some("C:\\work"), Some(sid)).expect("ctx");
    service
        .register_session(4100, context, false)
        .await
        .expect("session");
    let key = |name: &str| format!("\\REGISTRY\\USER\\{sid}\\Software\\OtherVendor\\{name}");
    let set = |k: String| OperationRequest {
        pid: 4100,
        thread_id: 1,
        target: Target::registry(Operation::SetValue, &k, "v", None, 1, 8),
    };
    let person = |answer: &'static [&'static str]| {
        let socket = socket.clone();
        async move {
            for _ in 0..100 {
                let (_, list, _) = cli(with_api(&socket, &["approvals", "list"])).await;
                if let Some(id) = list
                    .split_whitespace()
                    .next()
                    .filter(|w| w.parse::<u32>().is_ok())
                {
                    let mut args = vec!["approvals", answer[0], id];
                    args.extend(&answer[1..]);
                    return cli(with_api(&socket, &args)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (-1, String::new(), "no approval showed up".to_owned())
        }
    };
    let op = set(key("settings"));
    let (out, (code, stdout, stderr)) =
        tokio::join!(emulator.perform(&op), person(&["approve", "--remember"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("remembered as rule `remembered-1`, for the session's app"),
        "{stdout}"
    );
    assert_eq!(out.verdict, Verdict::Allow);
    let op = set(key("secrets"));
    let (out, (code, stdout, stderr)) = tokio::join!(
        emulator.perform(&op),
        person(&["deny", "--remember=all-apps"])
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("remembered as rule `remembered-2`, for every app"),
        "{stdout}"
    );
    assert_eq!(out.verdict, Verdict::Deny);

    // The policy with its overlay, as the service reloads it, decides both without a person for
    // TestApp; for another app only the rule kept for every app applies.
    let reloaded = Policy::from_path(&policy_path).expect("policy and overlay load");
    for (app, name, want, rule) in [
        (
            "TestApp",
            "settings",
            agentsh_policy::Decision::Allow,
            "remembered-1",
        ),
        (
            "TestApp",
            "secrets",
            agentsh_policy::Decision::Deny,
            "remembered-2",
        ),
        (
            "Other",
            "settings",
            agentsh_policy::Decision::Approve,
            "ask-other-vendor",
        ),
        (
            "Other",
            "secrets",
            agentsh_policy::Decision::Deny,
            "remembered-2",
        ),
    ] {
        let context = SessionContext::new(Some(app), Some("C:\\work"), Some(sid)).expect("ctx");
        let k = key(name);
        let mut q = agentsh_policy::RegistryQuery::new(&k, Operation::SetValue, &context);
        q.value = Some("v");
        let v = reloaded.engine().decide_registry(&q);
        assert_eq!(
            (v.decision, v.rule.to_string().as_str()),
            (want, rule),
            "{app} {name}"
        );
    }
    // `policy explain` shows where the rule came from.
    let (code, explained, stderr) = cli(vec![
        "policy".into(),
        "explain".into(),
        "--policy".into(),
        policy_path.display().to_string(),
        "--key".into(),
        key("settings"),
        "--value".into(),
        "v".into(),
        "--op".into(),
        "SetValue".into(),
        "--sid".into(),
        sid.into(),
        "--app".into(),
        "TestApp".into(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        explained.contains("remembered-1 (priority 100000) [remembered, ")
            && explained.contains("[apps: TestApp]: first match"),
        "{explained}"
    );
    assert!(explained.contains("decision:  allow"), "{explained}");
}

/// A raw HTTP client in Perl (in every Debian base system): waits for a line on standard
/// input, then sends each request given as `METHOD PATH` over the socket and prints
/// `METHOD PATH STATUS` for each.
const PERL_CLIENT: &str = r#"
use Socket;
my ($path, @requests) = @ARGV;
my $go = <STDIN>;
$| = 1;
for my $r (@requests) {
    my ($m, $p) = split / /, $r, 2;
    socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
    connect($s, pack_sockaddr_un($path)) or die "connect: $!";
    my $body = $m eq "POST" && $p eq "/v1/sessions" ? "{\"root_pid\":$$}" : "";
    my $req = "$m $p HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    syswrite($s, $req);
    my $answer = do { local $/; <$s> };
    my ($code) = $answer =~ m{^HTTP/1\.1 (\d+)};
    my ($text) = $answer =~ m{\r\n\r\n(.*)}s;
    $text =~ s/\n/ /g;
    print "$m $p $code $text\n";
}
"#;

/// Starts `program` (stopped at its first line of standard input), registers `root` (the
/// process to register, given its pid) through the API as this test (root, an approver), then
/// lets it run; returns its output lines.
async fn sandboxed(
    run: &Running,
    program: Vec<String>,
    register: impl Fn(u32) -> u32,
) -> Vec<String> {
    let mut child = Command::new(&program[0])
        .args(&program[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let root = register(child.id());
    let context = SessionContext::new(Some("TestApp"), Some("C:\\work"), None).expect("context");
    run.service
        .register_session(root, context, false)
        .await
        .expect("registered");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    drop(stdin);
    let stdout = child.stdout.take().expect("stdout");
    tokio::task::spawn_blocking(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = child.wait();
        lines
    })
    .await
    .expect("joins")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_registered_in_a_session_cannot_answer_approvals_or_end_a_session() {
    let run = start().await;
    // A held approval and a session the sandboxed process would like to end.
    let context = SessionContext::new(Some("Held"), Some("C:\\held"), None).expect("context");
    let held = run
        .service
        .register_session(4100, context, false)
        .await
        .expect("session");
    let pending = tokio::spawn({
        let emulator = run.emulator.clone();
        async move { emulator.perform(&create_service_key(4100)).await }
    });
    let mut id = None;
    for _ in 0..200 {
        if let Some(a) = run.service.adapter.approvals.list().first() {
            id = Some(a.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = id.expect("an approval is pending");
    let socket = run.socket.display().to_string();
    let requests = [
        "GET /v1/approvals".to_owned(),
        format!("POST /v1/approvals/{id}/allow?scope=session"),
        format!("POST /v1/approvals/{id}/allow"),
        format!("POST /v1/approvals/{id}/deny"),
        format!("DELETE /v1/sessions/{}", held.id),
        "POST /v1/sessions".to_owned(),
        "GET /v1/metrics".to_owned(),
    ];
    let perl = |prefix: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
        v.extend([
            "perl".to_owned(),
            "-e".to_owned(),
            PERL_CLIENT.to_owned(),
            socket.clone(),
        ]);
        v.extend(requests.iter().cloned());
        v
    };
    // The registered process itself, then a child of the registered process that no kernel
    // announcement names (the shell's child: refused through its ancestry).
    let direct = sandboxed(&run, perl(&[]), |pid| pid).await;
    let mut via_shell = vec!["sh".to_owned(), "-c".to_owned()];
    via_shell.push(r#"read go; echo go | "$@""#.to_owned());
    via_shell.push("sh".to_owned());
    via_shell.extend(perl(&[]));
    let child = sandboxed(&run, via_shell, |pid| pid).await;
    for (what, lines) in [("the registered process", &direct), ("its child", &child)] {
        assert_eq!(lines.len(), requests.len(), "{what}: {lines:?}");
        for (line, request) in lines.iter().zip(&requests) {
            assert!(
                line.starts_with(&format!("{request} 403 process "))
                    && line.contains("belongs to sandbox session `s-"),
                "{what}: {request} must be refused, got: {line}"
            );
        }
    }
    // The approval is still pending and the session still there: nothing the sandboxed
    // processes sent changed them. The operator denies it.
    assert!(
        run.service
            .adapter
            .approvals
            .list()
            .iter()
            .any(|a| a.id == id)
    );
    assert!(
        run.service
            .adapter
            .sessions
            .list()
            .iter()
            .any(|s| s.id == held.id)
    );
    let (code, out, stderr) = cli(with_api(
        &run.socket,
        &["approvals", "deny", &id.to_string()],
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains(": deny"), "{out}");
    assert_eq!(pending.await.expect("operation").verdict, Verdict::Deny);

    // The real client, run inside a session, is refused the same way.
    let agentsh = vec![env!("CARGO_BIN_EXE_agentsh").to_owned()];
    let mut shell = vec!["sh".to_owned(), "-c".to_owned()];
    shell.push(r#"read go; "$@" 2>&1; echo "exit $?""#.to_owned());
    shell.push("sh".to_owned());
    shell.extend(agentsh);
    shell.extend(with_api(&run.socket, &["approvals", "list"]));
    let lines = sandboxed(&run, shell, |pid| pid).await;
    let all = lines.join("\n");
    assert!(all.contains("refused this account (403)"), "{all}");
    assert!(all.contains("belongs to sandbox session"), "{all}");
    assert!(all.ends_with("exit 1"), "{all}");
}

#[test]
fn the_client_sends_nothing_to_a_socket_another_account_controls() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("dir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let socket = shared.join("api.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("binds");
    listener.set_nonblocking(true).expect("nonblocking");
    let (code, _, stderr) = agentsh(&with_api(&socket, &["approvals", "list"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not calling"), "{stderr}");
    assert!(stderr.contains("nobody else may write it"), "{stderr}");
    assert!(
        listener.accept().is_err(),
        "the client did not even connect"
    );
}
