//! F1 (security review, py/surrogate.py) with the real binaries: `agentsh emulator run` replays a
//! trace whose value names are given as code units (`value_units`) against `agentsh service run`.
//! A session's Run-key write whose value name holds an unpaired surrogate, or an embedded NUL, is
//! denied by the catalog and logged with the exact name; the same writes by a process outside the
//! session are allowed and logged (the kernel's notification is no longer dropped).
#![cfg(unix)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRACE: &str = r#"{"process":"agent","operation":"start","pid":4100,"image":"C:\\Tools\\agent\\agent.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\work","app_name":"TestApp"}
{"process":"python","operation":"start","parent":"agent","image":"C:\\Python311\\python.exe"}
{"process":"python","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_units":[55296,85,112,100,97,116,101,114],"value_type":"REG_SZ","data":"C:\\x.exe","expect":"deny","label":"lead surrogate"}
{"process":"python","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_units":[85,112,100,56320],"expect":"deny","label":"trail surrogate"}
{"process":"python","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_units":[0,120],"expect":"deny","label":"poweliks"}
{"process":"editor","operation":"start","pid":5200,"image":"C:\\Windows\\System32\\notepad.exe"}
{"process":"editor","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_units":[55296,85,112,100,97,116,101,114],"expect":"allow","label":"outside, surrogate"}
{"process":"editor","operation":"set_value","key":"HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_units":[0,120],"expect":"allow","label":"outside, poweliks"}
{"process":"python","operation":"exit"}
{"process":"agent","operation":"unregister_session"}
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
fn f1_lone_surrogate_and_nul_value_names_are_denied_in_a_session_and_logged_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("agentsh.sock");
    let trace = dir.path().join("trace.jsonl");
    std::fs::write(&trace, TRACE).expect("trace");
    let events = dir.path().join("events.jsonl");
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
        .stderr(Stdio::null())
        .spawn()
        .expect("agentsh service run starts");
    let mut service = Reaped(Some(service));

    let mut child = emulator.0.take().expect("emulator");
    let out = std::thread::spawn({
        let mut pipe = child.stdout.take().expect("stdout");
        move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        }
    });
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    let status = child.wait().expect("emulator exit status");
    let stdout = out.join().expect("stdout reader");

    let pid = service.0.as_ref().expect("service").id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stopped = service.0.take().expect("service").wait().expect("exit");
    assert!(stopped.success(), "{stopped:?}");

    assert!(
        status.success(),
        "every outcome as the trace expects\n{stdout}\n{stderr}"
    );
    // The runner's table shows the names in the display rendering, never raw.
    assert!(stdout.contains("Run\\\\u{d800}Updater"), "{stdout}");
    assert!(
        !stdout.contains('\u{10f800}') && !stdout.contains('\0'),
        "{stdout}"
    );

    let log = std::fs::read_to_string(&events).expect("events");
    let line = |value: &str, session: bool| {
        log.lines()
            .find(|l| {
                l.contains(&format!(r#""value_name":"{value}""#))
                    && l.contains(r#""session_id":"s-1""#) == session
            })
            .unwrap_or_else(|| panic!("an event naming {value} (session {session})\n{log}"))
            .to_owned()
    };
    for value in [r"\ud800Updater", r"Upd\udc00", r"\u0000x"] {
        let denied = line(value, true);
        assert!(
            denied.contains(r#""decision":"deny""#)
                && denied.contains(r#""rule_name":"builtin:run-keys-hkcu""#)
                && denied.contains(r#""mitre_id":"T1547.001""#),
            "{denied}"
        );
    }
    for value in [r"\ud800Updater", r"\u0000x"] {
        let outside = line(value, false);
        assert!(
            outside.contains(r#""decision":"allow""#)
                && outside.contains(r#""reason":"unsandboxed""#)
                && outside.contains(r#""mitre_id":"T1547.001""#),
            "{outside}"
        );
    }
    assert!(!log.contains(r#""reason":"malformed""#), "{log}");
}
