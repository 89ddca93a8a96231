//! The local API under a hostile local account: 20,000 idle connections, and another account
//! squatting the metrics port or the socket's directory. Whatever happens to the API, the
//! service keeps answering the driver and deciding; squatting is reported.
//!
//! The hostile account is `nobody` (uid 65534, through `setpriv`) when the tests run as root,
//! as CI does; otherwise it is this test's own account, which still exercises the limits (the
//! squatted directory is then made writable by others instead of owned by another account).
//! The hostile programs are Perl one-liners: Perl is part of every Debian base system.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_policy::Policy;
use agentsh_service::SocketTransport;
use agentsh_service::api::unix::effective_uid;
use agentsh_service::runner::{self, RunError, RunOptions, Status};
use agentsh_wire::Operation;
use agentsh_wire::control::Counter;
use tokio::sync::oneshot;

#[path = "common/http.rs"]
mod common_http;
use common_http::http;

const ROOT: u32 = 4100;
const RUN: &str =
    "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\Microsoft\\Windows\\CurrentVersion\\Run";
const SESSION: &str =
    r#"{"root_pid":4100,"app":"TestApp","workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}"#;

fn run_key_write() -> OperationRequest {
    OperationRequest {
        pid: ROOT,
        thread_id: 1,
        target: Target::registry(Operation::SetValue, RUN, "v", None, 1, 8),
    }
}

fn as_root() -> bool {
    effective_uid().expect("uid") == 0
}

/// `program` as the hostile account, with room for `files` descriptors.
fn hostile(files: u32, program: &[&str]) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--nofile={files}:{files}")).arg("--");
    if as_root() {
        c.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    c.args(program);
    c
}

/// A directory every account may traverse (tempdir makes 0700 ones).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

struct Running {
    statuses: Arc<Mutex<Vec<Status>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    emulator: Emulator,
}

impl Running {
    async fn wait_for<R>(&self, what: &str, pick: impl Fn(&Status) -> Option<R>) -> R {
        for _ in 0..2000 {
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

    /// The service is still connected and deciding: the Run key write of the session's root
    /// is denied by the service (the kernel alone would apply its fail mode: allow).
    async fn still_deciding(&self) {
        assert!(!self.task.is_finished(), "the service is still running");
        let out = self.emulator.perform(&run_key_write()).await;
        assert_eq!(
            out.verdict,
            Verdict::Deny,
            "decided by the service: {out:?}"
        );
        let m = self.emulator.metrics();
        assert_eq!(m.get(Counter::ServiceConnected), 1);
        assert_eq!(m.get(Counter::FailOpenDecisions), 0);
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops in time")
            .expect("runner task")
            .expect("stops cleanly");
    }
}

async fn start(dir: &Path, api_socket: PathBuf, metrics: Option<std::net::SocketAddr>) -> Running {
    let socket = dir.join("port.sock");
    let emulator = Emulator::start(&socket, 5).expect("listens");
    let statuses: Arc<Mutex<Vec<Status>>> = Arc::default();
    let mut options =
        RunOptions::new(Policy::embedded_default().expect("policy"), None).expect("options");
    options.api_socket = api_socket;
    options.metrics_listen = metrics;
    options.api_retry = Duration::from_millis(200);
    options.sinks = vec![runner::SinkSpec {
        format: agentsh_service::events::Format::Jsonl,
        path: Some(dir.join("events.jsonl")),
    }];
    options.status = {
        let statuses = statuses.clone();
        Arc::new(move |s: &Status| statuses.lock().expect("statuses").push(s.clone()))
    };
    let first = SocketTransport::connect(&socket).await.expect("connects");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(runner::run(
        options,
        first,
        || async { Err::<SocketTransport, _>("no reconnects in this test".to_owned()) },
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        statuses,
        stop: Some(tx),
        task,
        emulator,
    }
}

/// Opens `n` connections to `socket` and holds them idle until its standard input closes.
const FLOOD: &str = r#"
use Socket;
my ($path, $n) = @ARGV;
my @held;
for (1..$n) {
    socket(my $s, PF_UNIX, SOCK_STREAM, 0) or last;
    connect($s, pack_sockaddr_un($path)) or last;
    push @held, $s;
}
$| = 1;
print "open " . scalar(@held) . "\n";
my $wait = <STDIN>;
"#;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_connections_do_not_stop_decisions_or_approvals() {
    let dir = open_tempdir();
    let api_socket = dir.path().join("api").join("api.sock");
    let run = start(dir.path(), api_socket.clone(), None).await;
    run.wait_for("api listening", |s| {
        matches!(s, Status::ApiListening { .. }).then_some(())
    })
    .await;
    let (status, body) = http(&api_socket, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    run.still_deciding().await;

    // Two processes of 10,000 connections each: a container may not let even root raise the
    // hard descriptor limit, and 10,000 fit in one process under any usual one.
    let socket = api_socket.display().to_string();
    let mut floods: Vec<Child> = Vec::new();
    for _ in 0..2 {
        let mut flood = hostile(10_100, &["perl", "-e", FLOOD, &socket, "10000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the flood starts");
        let stdout = flood.stdout.take().expect("stdout");
        let opened = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).expect("reads");
            line
        })
        .await
        .expect("joins");
        assert_eq!(
            opened.trim(),
            "open 10000",
            "a flood holds 10,000 connections"
        );
        floods.push(flood);
    }

    // The service holds few of them: connections beyond the per-account limit are closed.
    let held = open_descriptors();
    assert!(held < 1_000, "the service holds {held} descriptors");
    for _ in 0..20 {
        run.still_deciding().await;
    }
    // The operator's account has its own connection budget.
    let (status, body) = http(&api_socket, "GET", "/v1/approvals", "").await;
    assert_eq!(status, 200, "approvals still reachable: {body}");

    for mut flood in floods {
        if let Some(mut stdin) = flood.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = flood.wait();
    }
    run.still_deciding().await;
    run.stop().await;
}

/// Binds a TCP port on loopback and holds it until standard input closes; prints the port.
const SQUAT_PORT: &str = r#"
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 5, ReuseAddr => 0) or die "bind: $!";
$| = 1;
print $s->sockport() . "\n";
my $wait = <STDIN>;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatted_metrics_port_is_reported_and_decisions_keep_flowing() {
    let dir = open_tempdir();
    let mut squatter = hostile(64, &["perl", "-e", SQUAT_PORT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the squatter starts");
    let stdout = squatter.stdout.take().expect("stdout");
    let port = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reads");
        line
    })
    .await
    .expect("joins");
    let port: u16 = port.trim().parse().expect("a port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let api_socket = dir.path().join("api").join("api.sock");
    let run = start(dir.path(), api_socket.clone(), Some(addr)).await;
    let reported = run
        .wait_for("the squatted port reported", |s| match s {
            Status::ApiUnavailable {
                endpoint,
                error,
                retry_in: Some(_),
            } if endpoint.contains(&port.to_string()) => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(reported.contains("in use"), "{reported}");
    run.wait_for("the local API up all the same", |s| {
        matches!(s, Status::ApiListening { .. }).then_some(())
    })
    .await;
    let (status, body) = http(&api_socket, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    run.still_deciding().await;

    // The squatter leaves: the retry takes the port.
    drop(squatter.stdin.take());
    let _ = squatter.wait();
    let bound = run
        .wait_for("metrics listening", |s| match s {
            Status::MetricsListening { addr } => Some(*addr),
            _ => None,
        })
        .await;
    assert_eq!(bound, addr);
    run.still_deciding().await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_directory_another_account_made_is_reported_and_the_driver_still_answered() {
    let dir = open_tempdir();
    let squatted = dir.path().join("api");
    std::fs::create_dir(&squatted).expect("dir");
    let expect = if as_root() {
        let chown = Command::new("chown")
            .args(["65534:65534"])
            .arg(&squatted)
            .status()
            .expect("chown");
        assert!(chown.success());
        "belongs to uid 65534"
    } else {
        std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        "is writable by other accounts"
    };
    let api_socket = squatted.join("api.sock");
    let run = start(dir.path(), api_socket.clone(), None).await;
    let reported = run
        .wait_for("the squatted directory reported", |s| match s {
            Status::ApiUnavailable { error, .. } => Some(error.clone()),
            _ => None,
        })
        .await;
    assert!(reported.contains(expect), "{reported}");
    // Nothing about the API stopped the service: it is connected and answers the driver.
    assert!(!run.task.is_finished());
    let m = run.emulator.metrics();
    assert_eq!(m.get(Counter::ServiceConnected), 1);
    assert_eq!(m.get(Counter::FailOpenMode), 0);

    // The administrator removes the squatted directory: the retry brings the API up.
    std::fs::remove_dir_all(&squatted).expect("removes");
    run.wait_for("api listening", |s| {
        matches!(s, Status::ApiListening { .. }).then_some(())
    })
    .await;
    let (status, body) = http(&api_socket, "POST", "/v1/sessions", SESSION).await;
    assert_eq!(status, 201, "{body}");
    run.still_deciding().await;
    run.stop().await;
}
