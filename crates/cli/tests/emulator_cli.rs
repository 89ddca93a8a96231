//! `agentsh emulator check`: a good trace is summarised, a bad one is refused with file, line and
//! field, and the exit code says which.

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
