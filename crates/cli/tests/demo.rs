//! `agentsh demo` from the built binary: all five design scenarios and the two file scenarios
//! (device paths mapped through the volume table) behave as designed, the table
//! names rule, risk and technique, the approval timeout is recorded as a timeout, and the exit
//! code is 0.
#![cfg(unix)]

use std::process::Command;

#[test]
fn demo_passes_the_five_scenarios() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["demo", "--approval-timeout", "1"])
        .output()
        .expect("runs agentsh demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let row = |label: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row `{label}` in\n{stdout}"))
            .to_owned()
    };
    let checks = [
        (
            "1. ",
            [
                "ACCESS_DENIED (0xC0000022)",
                "deny ok",
                "builtin:run-keys-hkcu",
                "T1547.001",
            ],
        ),
        (
            "2. ",
            [
                "success (0x00000000)",
                "allow ok",
                "writes its app settings",
                "service",
            ],
        ),
        (
            "3. ",
            [
                "success (0x00000000)",
                "allow ok",
                "builtin:services",
                "person",
            ],
        ),
        (
            "4. ",
            [
                "ACCESS_DENIED (0xC0000022)",
                "deny ok",
                "T1543.003",
                "timeout",
            ],
        ),
        (
            "5. ",
            [
                "success (0x00000000)",
                "allow ok",
                "outside the sandbox",
                "unsandboxed",
            ],
        ),
        (
            "6. ",
            ["success (0x00000000)", "allow ok", "service", "service"],
        ),
        (
            "7. ",
            [
                "ACCESS_DENIED (0xC0000022)",
                "deny ok",
                "default",
                "service",
            ],
        ),
    ];
    for (label, needles) in checks {
        let line = row(label);
        for needle in needles {
            assert!(line.contains(needle), "row `{line}` lacks `{needle}`");
        }
    }
    assert!(
        stdout.contains(r#""type":"registry_approval_response""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""reason":"timeout""#), "{stdout}");
    assert!(stdout.contains(r#""reason":"person""#), "{stdout}");
    assert!(
        stdout.contains(r#""process_id":5200"#),
        "the outsider's write is logged\n{stdout}"
    );
    // The file operations reached the service in the minifilter's device form (the denied one is
    // logged); the workspace write was allowed only because `\Device\HarddiskVolume3\work` was
    // mapped to the `C:\work` the `${WORKSPACE}\*` rule is written in (the policy's file default
    // is deny).
    assert!(
        stdout.contains(r#""key_path":"\\Device\\HarddiskVolume3\\Users\\Public\\payload.dll""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("all 7 scenarios behaved as designed"),
        "{stdout}"
    );
}
