//! `agentsh emulator run --register-through-api` against a real `agentsh service run`: the trace's
//! `register_session` line registers the session through the service's local API, the service
//! registers it with the (emulated) driver, and the session's operations are decided by the
//! service's policy; `unregister_session` ends it the same way, and a session the trace leaves
//! registered is ended when the replay finishes.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRACE: &str = r#"# a session root, a sandboxed child, a process outside the sandbox
{"process":"agent","operation":"start","pid":4100,"image":"C:\\Tools\\agent\\agent.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"python","operation":"start","parent":"agent","image":"C:\\Python311\\python.exe"}
{"process":"python","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value":"Updater","value_type":"REG_SZ","data":"C:\\Users\\Public\\updater.exe","expect":"deny","label":"run key"}
{"process":"python","operation":"set_value","key":"HKCU\\SOFTWARE\\TestApp\\config","value":"theme","value_type":"REG_SZ","data":"dark","expect":"allow","label":"app settings"}
{"process":"editor","operation":"start","pid":5200,"image":"C:\\Windows\\System32\\notepad.exe"}
{"process":"editor","operation":"set_value","key":"HKCU\\SOFTWARE\\Editor","value":"x","expect":"allow","label":"outside"}
{"process":"python","operation":"exit"}
{"process":"agent","operation":"unregister_session"}
{"process":"agent","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value":"After","expect":"allow","label":"after the session ended"}
{"process":"tool","operation":"start","pid":6100,"image":"C:\\Tools\\tool.exe"}
{"process":"tool","operation":"register_session","workspace":"C:\\other","app_name":"Tool"}
{"process":"tool","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value":"Tool","expect":"deny","label":"second session"}
"#;

/// Kills the child on drop, so a failing assertion does not leave processes behind.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn register_session_lines_go_through_the_running_services_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let trace = dir.path().join("trace.jsonl");
    std::fs::write(&trace, TRACE).expect("trace");
    let events = dir.path().join("events.jsonl");
    // The emulator is started before the service (which needs its socket), so the API's socket
    // is chosen here.
    let api = dir.path().join("api").join("api.sock");
    let api = api.to_str().expect("utf-8 path").to_owned();

    let emulator = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["emulator", "run", "--socket"])
        .arg(&socket)
        .arg("--trace")
        .arg(&trace)
        .args([
            "--wait",
            "20",
            "--register-through-api",
            "--api-socket",
            &api,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentsh emulator run starts");
    let mut emulator = Reaped(Some(emulator));
    wait_for("the emulator's socket", Duration::from_secs(20), || {
        socket.exists()
    });

    let service = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["service", "run", "--driver-socket"])
        .arg(&socket)
        .args(["--api-socket", &api])
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentsh service run starts");
    let mut service = Reaped(Some(service));
    let service_log = std::thread::spawn({
        let stderr = service.0.as_mut().and_then(|c| c.stderr.take());
        move || {
            let mut lines = Vec::new();
            if let Some(stderr) = stderr {
                lines.extend(BufReader::new(stderr).lines().map_while(Result::ok));
            }
            lines.join("\n")
        }
    });

    let mut child = emulator.0.take().expect("emulator");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let out = std::thread::spawn({
        let mut pipe = child.stdout.take().expect("stdout");
        move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        }
    });
    let mut err_pipe = child.stderr.take().expect("stderr");
    let _ = err_pipe.read_to_string(&mut stderr);
    let status = child.wait().expect("emulator exit status");
    stdout.push_str(&out.join().expect("stdout reader"));

    // Stop the service the way an operator does.
    let pid = service.0.as_ref().expect("service").id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stopped = service
        .0
        .take()
        .expect("service")
        .wait()
        .expect("service exit status");
    let service_log = service_log.join().expect("service log");

    assert!(
        status.success(),
        "every outcome as expected\n{stdout}\n{stderr}\n{service_log}"
    );
    assert!(
        stderr.contains(&format!(
            "registering the trace's sessions through the service's API at `{api}`"
        )),
        "{stderr}"
    );
    let row = |label: &str| {
        stdout
            .lines()
            .filter(|l| l.contains(label))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let run_key = row("python (");
    assert!(
        run_key.contains("CurrentVersion\\Run\\Updater")
            && run_key.contains("0xC0000022 access denied")
            && run_key.contains("service"),
        "the session's child is denied the Run key by the service\n{stdout}"
    );
    assert!(
        run_key.contains("TestApp\\config\\theme") && run_key.contains("0x00000000 success"),
        "and allowed its app settings\n{stdout}"
    );
    assert!(
        row("editor (5200)").contains("unsandboxed"),
        "a process outside the session is not asked about\n{stdout}"
    );
    let after = row("agent (4100)");
    assert!(
        after.contains("0x00000000 success") && after.contains("unsandboxed"),
        "the session ended through the API, in the driver too\n{stdout}"
    );
    let second = row("tool (6100)");
    assert!(
        second.contains("0xC0000022 access denied") && second.contains("service"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.trim_end().ends_with(" ok"))
            .count(),
        5,
        "{stdout}"
    );
    assert!(
        stderr.contains("ended session `s-2` of process 6100, left registered by the trace"),
        "{stderr}"
    );
    let active = stdout
        .lines()
        .find(|l| l.starts_with("ActiveSessions"))
        .and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(
        active,
        Some("0"),
        "the driver's sessions ended with the replay\n{stdout}"
    );

    assert!(stopped.success(), "{stopped:?}\n{service_log}");
    let log = std::fs::read_to_string(&events).expect("events");
    let denial = log
        .lines()
        .find(|l| l.contains("builtin:run-keys-hkcu") && l.contains("Updater"))
        .unwrap_or_else(|| panic!("the service logged the denial\n{log}"));
    assert!(denial.contains(r#""s-1""#), "in session s-1: {denial}");
}

#[test]
fn a_service_api_that_is_not_there_fails_the_replay_naming_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let trace = dir.path().join("trace.jsonl");
    std::fs::write(
        &trace,
        "{\"process\":\"agent\",\"operation\":\"start\",\"pid\":4100,\"image\":\"a.exe\"}\n\
         {\"process\":\"agent\",\"operation\":\"register_session\",\"workspace\":\"C:\\\\w\",\"app_name\":\"A\"}\n",
    )
    .expect("trace");
    let api = dir.path().join("api.sock");
    let api = api.to_str().expect("utf-8 path").to_owned();
    let client = handshaking_client(&socket);
    let out = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["emulator", "run", "--socket"])
        .arg(&socket)
        .arg("--trace")
        .arg(&trace)
        .args([
            "--wait",
            "1",
            "--register-through-api",
            "--api-socket",
            &api,
        ])
        .output()
        .expect("agentsh emulator run");
    client.join().expect("client thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "trace.jsonl:2: registering a session for `agent`: cannot reach the agentsh service at `{api}`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("(still failing after 1s)"), "{stderr}");
}

/// A minimal service side of the port: connects, completes the handshake, then drains what the
/// driver sends until it closes.
fn handshaking_client(socket: &std::path::Path) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let mut stream = loop {
            match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let hello = agentsh_wire::control::ControlRepr::Hello {
            protocol_version: agentsh_wire::PROTOCOL_VERSION,
        };
        let mut body = vec![0u8; hello.buffer_len()];
        hello.emit(&mut body).expect("emit");
        let mut frame = ((body.len() + 1) as u32).to_le_bytes().to_vec();
        frame.push(3);
        frame.extend_from_slice(&body);
        stream.write_all(&frame).expect("send hello");
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    })
}
