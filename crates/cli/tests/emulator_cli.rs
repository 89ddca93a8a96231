//! `agentsh emulator check`: a good trace is summarised, a bad one is refused with file, line and
//! field, and the exit code says which.
#![cfg(unix)]

use std::process::Command;

fn agentsh(args: &[&str]) -> (i32, String, String) {
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

#[test]
fn check_summarises_a_good_trace_and_locates_errors_in_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, agentsh_emulator::scenarios::FIVE_SCENARIOS).expect("write");
    let (code, stdout, _) = agentsh(&["emulator", "check", good.to_str().expect("utf-8")]);
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with("good.jsonl: 12 lines, 5 operations, 5 with an expected outcome\n"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.jsonl");
    let text = "{\"process\":\"p\",\"operation\":\"start\",\"image\":\"a.exe\"}\n\
                {\"process\":\"p\",\"operation\":\"set_value\"}\n";
    std::fs::write(&bad, text).expect("write");
    let (code, _, stderr) = agentsh(&["emulator", "check", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.jsonl:2: field `key`: missing"),
        "{stderr}"
    );

    let (code, _, stderr) = agentsh(&["emulator", "check", "/nonexistent/trace.jsonl"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`/nonexistent/trace.jsonl`"), "{stderr}");
}

/// A minimal service for `emulator run`: connects, completes the handshake, then drains what
/// the driver sends until it closes.
fn handshaking_client(socket: &std::path::Path) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let mut stream = loop {
            match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
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

#[test]
fn run_waits_for_the_service_replays_and_reports_mismatches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t.jsonl");
    std::fs::write(
        &trace,
        "{\"process\":\"editor\",\"operation\":\"start\",\"pid\":5200,\"image\":\"notepad.exe\"}\n\
         {\"process\":\"editor\",\"operation\":\"set_value\",\"key\":\"HKCU\\\\SOFTWARE\\\\Editor\",\"value\":\"x\",\"expect\":\"allow\"}\n\
         {\"process\":\"editor\",\"operation\":\"delete_key\",\"key\":\"HKCU\\\\SOFTWARE\\\\Editor\",\"expect\":\"deny\"}\n",
    )
    .expect("write");
    let socket = dir.path().join("agentsh.sock");
    let client = handshaking_client(&socket);
    let (code, stdout, stderr) = agentsh(&[
        "emulator",
        "run",
        "--socket",
        socket.to_str().expect("utf-8"),
        "--trace",
        trace.to_str().expect("utf-8"),
        "--wait",
        "10",
    ]);
    client.join().expect("client thread");
    assert_eq!(code, 1, "one outcome differs\n{stdout}\n{stderr}");
    let row = |op: &str| {
        stdout
            .lines()
            .find(|l| l.contains(op))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("set_value").contains("0x00000000 success"), "{stdout}");
    assert!(row("set_value").contains("unsandboxed"), "{stdout}");
    assert!(row("set_value").ends_with("ok"), "{stdout}");
    assert!(
        row("delete_key").contains("mismatch (expected deny)"),
        "{stdout}"
    );
    assert!(stdout.contains("ServiceConnected"), "{stdout}");
    assert!(
        stderr.contains("1 of 2 operations did not have the expected outcome"),
        "{stderr}"
    );
}
