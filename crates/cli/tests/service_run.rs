//! `agentsh service run` as a person runs it: against the driver emulator, an approval asked and
//! answered in the service's own terminal (`--approve-in-terminal`), and a clean stop on SIGTERM
//! that takes the API socket with it.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Target, Verdict};
use agentsh_wire::Operation;

const ROOT: u32 = 4100;

fn http(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).expect("connects to the API");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("writes");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// Waits (up to 20 s) until the service's standard error has a line `pick` accepts.
async fn wait_line<R>(
    lines: &Mutex<Vec<String>>,
    what: &str,
    pick: impl Fn(&str) -> Option<R>,
) -> R {
    for _ in 0..2000 {
        if let Some(r) = lines.lock().expect("lines").iter().find_map(|l| pick(l)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no line {what} in\n{}",
        lines.lock().expect("lines").join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_answered_in_the_services_terminal_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let emulator = Emulator::start(&socket, 9).expect("emulator");
    let api_socket = dir.path().join("api").join("api.sock");
    let events = dir.path().join("events.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["service", "run", "--driver-socket"])
        .arg(&socket)
        .arg("--api-socket")
        .arg(&api_socket)
        .arg("--events")
        .arg(&events)
        .arg("--approve-in-terminal")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentsh service run starts");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = std::thread::spawn({
        let lines = lines.clone();
        let stderr = child.stderr.take().expect("stderr");
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        }
    });

    let named = api_socket.display().to_string();
    wait_line(&lines, "naming the API socket", |l| {
        l.contains(&format!("local API at `{named}`")).then_some(())
    })
    .await;
    let session = format!(
        r#"{{"root_pid":{ROOT},"app":"TestApp","workspace":"C:\\work","user_sid":"S-1-5-21-1-2-3-1001"}}"#
    );
    let (status, body) = tokio::task::spawn_blocking({
        let api_socket = api_socket.clone();
        move || http(&api_socket, "POST", "/v1/sessions", &session)
    })
    .await
    .expect("request");
    assert_eq!(status, 201, "{body}");

    let create = OperationRequest {
        pid: ROOT,
        thread_id: 1,
        target: Target::registry(
            Operation::CreateKey,
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\agentsh-test",
            "",
            None,
            0,
            0,
        ),
    };
    let held = tokio::spawn({
        let emulator = Arc::new(emulator);
        let e = emulator.clone();
        async move { (e.perform(&create).await, emulator) }
    });
    // The prompt's last line (the choices) waits for the answer on the same line; the lines
    // before it show the request.
    wait_line(&lines, "showing the approval's message", |l| {
        l.trim_start().starts_with("message:").then_some(())
    })
    .await;
    let shown = lines.lock().expect("lines").join("\n");
    assert!(
        shown.contains("agentsh-test"),
        "the prompt names the key\n{shown}"
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"a\n").expect("answers");
    stdin.flush().expect("flushes");
    let (outcome, _emulator) = tokio::time::timeout(Duration::from_secs(20), held)
        .await
        .expect("decided in time")
        .expect("operation task");
    assert_eq!(
        outcome.verdict,
        Verdict::Allow,
        "allowed once, by the person"
    );

    // SIGTERM: the service stops cleanly and the socket goes with it.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait task")
        .expect("exit status");
    reader.join().expect("stderr reader");
    let all = lines.lock().expect("lines").join("\n");
    assert!(status.success(), "{status:?}\n{all}");
    assert!(all.contains("agentsh service: stopped"), "{all}");
    assert!(!api_socket.exists(), "the socket is removed on stop");
    let log = std::fs::read_to_string(&events).expect("events");
    assert!(
        log.lines()
            .any(|l| l.contains(r#""type":"registry_approval_response""#)
                && l.contains(r#""reason":"person""#)),
        "{log}"
    );
}
