//! `agentsh demo` from the built binary: all five design scenarios behave as designed, the table
//! names rule, risk and technique, the approval timeout is recorded as a timeout, and the exit
//! code is 0.

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
                "allow-app-settings",
                "service",
            ],
        ),
        (
            "3. ",
            [
                "success (0x00000000)",
                "allow ok",
                "builtin:services",
                "approved",
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
                "builtin:run-keys-hklm",
                "unsandboxed",
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
    assert!(
        stdout.contains("all 5 scenarios behaved as designed"),
        "{stdout}"
    );
}
