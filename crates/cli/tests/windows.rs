//! agentsh.exe end to end on Windows — in CI under Wine, which has no filter manager and no
//! AppContainer: the missing driver must be reported plainly with exit code 3, and the sandbox must
//! run with the fallback isolation, say so, and pass output and exit code through.
#![cfg(windows)]

use std::process::{Command, Output};

fn agentsh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(args)
        .env("AGENTSH_LOG", "warn")
        .output()
        .expect("agentsh.exe runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

fn workspace(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("agentsh-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("workspace");
    dir.to_string_lossy().into_owned()
}

#[test]
fn driver_status_reports_a_missing_driver_with_exit_code_and_next_step() {
    let out = agentsh(&["driver", "status"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.starts_with("Filter Name "), "{stdout}");
    if stdout.contains("agentsh loaded") && out.status.code() == Some(0) {
        return;
    }
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains("connection:    none: driver port `\\AgentshPort`"),
        "{stdout}"
    );
    assert!(stdout.contains("fail mode:     unknown"), "{stdout}");
    assert!(stderr.contains("exit code 3"), "{stderr}");
    assert!(stderr.contains("next step: `agentsh driver"), "{stderr}");
}

/// Registers the driver in the (Wine or test) machine, checks what `driver install` wrote, that
/// loading fails with a reason, and that uninstall removes it all again.
#[test]
fn driver_install_registers_instances_and_uninstall_removes_them() {
    let dir = workspace("driver");
    let sys = format!("{dir}\\agentsh.sys");
    std::fs::write(&sys, b"not a real driver").expect("image");
    let out = agentsh(&["driver", "install", "--sys", &sys]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = r"HKLM\SYSTEM\CurrentControlSet\Services\agentsh\Instances\AgentSH Instance";
    let reg = Command::new("reg.exe")
        .args(["query", key, "/v", "Altitude"])
        .output()
        .expect("reg.exe");
    assert!(
        text(&reg.stdout).contains("385200"),
        "{}",
        text(&reg.stdout)
    );
    let status = agentsh(&["driver", "status"]);
    assert!(
        text(&status.stdout).contains("service registered"),
        "{}",
        text(&status.stdout)
    );

    let load = agentsh(&["driver", "load"]);
    let stderr = text(&load.stderr);
    if load.status.code() != Some(0) {
        assert!(
            stderr.starts_with("agentsh: driver load `agentsh`: "),
            "{stderr}"
        );
    }

    let out = agentsh(&["driver", "uninstall"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reg = Command::new("reg.exe")
        .args(["query", r"HKLM\SYSTEM\CurrentControlSet\Services\agentsh"])
        .output()
        .expect("reg.exe");
    assert_ne!(reg.status.code(), Some(0), "service key left behind");
    let status = agentsh(&["driver", "status"]);
    assert!(
        text(&status.stdout).contains("service not registered"),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn service_install_registers_service_and_event_source_and_uninstall_removes_them() {
    let out = agentsh(&["service", "install"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let source = r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\System\AgentSH";
    let reg = Command::new("reg.exe")
        .args(["query", source, "/v", "EventMessageFile"])
        .output()
        .expect("reg.exe");
    assert!(
        text(&reg.stdout).contains("agentsh.exe"),
        "{}",
        text(&reg.stdout)
    );
    let out = agentsh(&["service", "uninstall"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reg = Command::new("reg.exe")
        .args(["query", source])
        .output()
        .expect("reg.exe");
    assert_ne!(reg.status.code(), Some(0), "event source left behind");
}

#[test]
fn service_run_without_driver_says_so_and_exits_3() {
    let out = agentsh(&["service", "run"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("driver port `\\AgentshPort`"), "{stderr}");
    assert!(stderr.contains("agentsh driver install"), "{stderr}");
}

#[test]
fn sandbox_run_passes_output_and_exit_code_and_names_the_isolation() {
    let ws = workspace("run");
    let out = agentsh(&[
        "sandbox",
        "run",
        "--name",
        "cli-run",
        "--workspace",
        &ws,
        "--no-minifilter",
        "--",
        "cmd.exe",
        "/c",
        "echo hello&& echo oops 1>&2&& exit /b 5",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stdout}{stderr}");
    assert_eq!(stdout.trim_end(), "hello");
    assert!(stderr.contains("oops"), "{stderr}");
    assert!(
        stderr.contains("sandbox `cli-run`: exit code 5; isolation: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("--no-minifilter: no driver session"),
        "{stderr}"
    );
    if stderr.contains("appcontainer not in force") {
        assert!(stderr.contains("isolation: restricted token"), "{stderr}");
    } else {
        assert!(
            stderr.contains("isolation: appcontainer (network none)"),
            "{stderr}"
        );
    }
}

#[test]
fn sandbox_run_with_fail_on_appcontainer_error_never_degrades() {
    let ws = workspace("strict");
    let out = agentsh(&[
        "sandbox",
        "run",
        "--name",
        "cli-strict",
        "--workspace",
        &ws,
        "--no-minifilter",
        "--fail-on-appcontainer-error",
        "--",
        "cmd.exe",
        "/c",
        "exit /b 0",
    ]);
    let stderr = text(&out.stderr);
    match out.status.code() {
        Some(0) => assert!(stderr.contains("isolation: appcontainer"), "{stderr}"),
        code => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains("appcontainer unavailable and --fail-on-appcontainer-error is set"),
                "{stderr}"
            );
            assert!(
                !stderr.contains("exit code 0; isolation"),
                "the command must not have run: {stderr}"
            );
        }
    }
}

#[test]
fn sandbox_run_without_a_service_refuses_minifilter_mode() {
    let ws = workspace("nosvc");
    let out = agentsh(&[
        "sandbox",
        "run",
        "--name",
        "cli-nosvc",
        "--workspace",
        &ws,
        "--",
        "cmd.exe",
        "/c",
        "exit /b 0",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pass --no-minifilter"), "{stderr}");
}
