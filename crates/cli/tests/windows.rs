//! agentsh.exe end to end on Windows — in CI under Wine, which has no filter manager and no
//! AppContainer: the missing driver must be reported plainly with exit code 3, the sandbox must
//! run with the fallback isolation, say so, and pass output and exit code through, and it must
//! register its session through the service (a stand-in on a named pipe here) or refuse to run.
#![cfg(windows)]

use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    // A registration left by an earlier interrupted run of this test (same Wine prefix).
    let _ = agentsh(&["driver", "uninstall"]);
    // Below the import floor (Wine's default prefix reports Windows 7, build 7601) install is
    // refused with the reason; the rest runs with the prefix's build number raised to Windows 10
    // 22H2's and restored at the end.
    let version = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
    let reg = Command::new("reg.exe")
        .args(["query", version, "/v", "CurrentBuildNumber"])
        .output()
        .expect("reg.exe");
    let build: u32 = text(&reg.stdout)
        .split_whitespace()
        .last()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("CurrentBuildNumber: {}", text(&reg.stdout)));
    let set_build = |b: &str| {
        let out = Command::new("reg.exe")
            .args([
                "add",
                version,
                "/v",
                "CurrentBuildNumber",
                "/t",
                "REG_SZ",
                "/d",
                b,
                "/f",
            ])
            .output()
            .expect("reg.exe");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    };
    set_build("17763");
    let out = agentsh(&["driver", "install", "--sys", &sys]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("Windows build 17763 cannot load agentsh.sys: it needs build 19041"),
        "{}",
        text(&out.stderr)
    );
    set_build(&build.max(19045).to_string());

    // An altitude outside the service's load order group is refused before anything is written.
    let out = agentsh(&["driver", "install", "--sys", &sys, "--altitude", "385200x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("decimal digits"),
        "{}",
        text(&out.stderr)
    );
    let out = agentsh(&["driver", "install", "--sys", &sys, "--altitude", "320000"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("360000-389999"),
        "{}",
        text(&out.stderr)
    );

    // Without --altitude: the default, under the service key and its Parameters subkey.
    let out = agentsh(&["driver", "install", "--sys", &sys]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let services = r"HKLM\SYSTEM\CurrentControlSet\Services\agentsh";
    let altitude_at = |key: &str| {
        let reg = Command::new("reg.exe")
            .args(["query", key, "/v", "Altitude"])
            .output()
            .expect("reg.exe");
        let out = text(&reg.stdout);
        out.lines()
            .find(|l| l.trim_start().starts_with("Altitude"))
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no Altitude under {key}: {out}"))
    };
    for key in [
        format!(r"{services}\Instances\AgentSH Instance"),
        format!(r"{services}\Parameters\Instances\AgentSH Instance"),
    ] {
        assert_eq!(altitude_at(&key), ["Altitude", "REG_SZ", "376300"], "{key}");
    }
    // One Event Log source for driver and service (the name is case-insensitive: `agentsh` is
    // the same key), listing both message tables.
    for source in ["AgentSH", "agentsh"] {
        let key = format!(r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\System\{source}");
        let reg = Command::new("reg.exe")
            .args(["query", &key, "/v", "EventMessageFile"])
            .output()
            .expect("reg.exe");
        let out = text(&reg.stdout);
        assert!(
            out.contains("REG_EXPAND_SZ")
                && out.contains(
                    r"%SystemRoot%\System32\drivers\agentsh.sys;%ProgramFiles%\agentsh\agentsh.exe"
                ),
            "{key}: {out}"
        );
    }
    // With --altitude (a reinstall, as docs/deployment.md describes for a collision): the value
    // given, in both places, and `driver status` names it.
    let out = agentsh(&["driver", "uninstall"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = agentsh(&[
        "driver",
        "install",
        "--sys",
        &sys,
        "--altitude",
        "376300.25",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("at altitude 376300.25"),
        "{}",
        text(&out.stdout)
    );
    for key in [
        format!(r"{services}\Instances\AgentSH Instance"),
        format!(r"{services}\Parameters\Instances\AgentSH Instance"),
    ] {
        assert_eq!(
            altitude_at(&key),
            ["Altitude", "REG_SZ", "376300.25"],
            "{key}"
        );
    }
    let status = agentsh(&["driver", "status"]);
    assert!(
        text(&status.stdout).contains("altitude:      376300.25 (installed)"),
        "{}",
        text(&status.stdout)
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
    set_build(&build.to_string());
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
    // A registration left by an earlier interrupted run of this test (same Wine prefix).
    let _ = agentsh(&["service", "uninstall"]);
    let out = agentsh(&["service", "install"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // What the SCM holds: the copy in %ProgramFiles%\agentsh, the driver as a dependency, restarts.
    let config = agentsh_windows::scm::installed_config().expect("installed configuration");
    let program_files = std::env::var("ProgramW6432")
        .or_else(|_| std::env::var("ProgramFiles"))
        .expect("ProgramFiles");
    let installed = format!("{program_files}\\agentsh\\agentsh.exe");
    assert_eq!(
        config.binary,
        format!("\"{installed}\" service run"),
        "{config:?}"
    );
    assert!(
        std::path::Path::new(&installed).is_file(),
        "{installed} copied"
    );
    assert_eq!(config.start_type, 2, "SERVICE_AUTO_START: {config:?}");
    // The dependency on the driver's service, as the SCM reports it — Wine's QueryServiceConfigW
    // leaves the list empty, so there it is read from the service's key.
    if agentsh_windows::host_is_wine() {
        let reg = Command::new("reg.exe")
            .args([
                "query",
                r"HKLM\SYSTEM\CurrentControlSet\Services\AgentSHService",
                "/v",
                "DependOnService",
            ])
            .output()
            .expect("reg.exe");
        let listed = text(&reg.stdout);
        assert!(
            listed.contains("REG_MULTI_SZ") && listed.trim_end().ends_with("agentsh"),
            "{listed}"
        );
    } else {
        assert_eq!(config.dependencies, ["agentsh"], "{config:?}");
    }
    match &config.recovery {
        Some((reset, delays)) => {
            assert_eq!(*reset, 86_400, "{config:?}");
            assert_eq!(delays, &[5_000, 10_000, 60_000], "{config:?}");
        }
        // Wine takes the failure actions but cannot report them.
        None => assert!(agentsh_windows::host_is_wine(), "{config:?}"),
    }
    assert_eq!(config.description, agentsh_windows::service::DESCRIPTION);
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

/// Without agentsh.sys (Wine has no filter manager) the self-test names the missing
/// prerequisite, runs no scenario, writes a report saying so, and exits 3.
#[test]
fn selftest_without_the_driver_names_it_and_exits_3() {
    let ws = workspace("selftest");
    let report = std::path::Path::new(&ws).join("report.json");
    let out = agentsh(&[
        "selftest",
        "--workspace",
        &ws,
        "--report",
        &report.to_string_lossy(),
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("selftest: missing prerequisite: agentsh.sys is not loaded: ")
            && stdout.contains("agentsh driver load")
            && stdout.contains("no scenario was run"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("json report");
    assert!(
        json["missing"]
            .as_str()
            .is_some_and(|m| m.starts_with("agentsh.sys is not loaded")),
        "{json}"
    );
    assert_eq!(json["results"], serde_json::json!([]));
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
        "--skip-wall-check",
        "--allow-fallback",
        "--network",
        "full",
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
        stderr.contains("minifilter off: no driver session"),
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

/// Under Wine the walls cannot hold (no AppContainer, no integrity checks on the registry): the
/// wall check must refuse the run, name the wall and the layer table, and start nothing.
#[test]
fn sandbox_run_refuses_when_a_wall_does_not_hold() {
    let ws = workspace("wall");
    let out = agentsh(&[
        "sandbox",
        "run",
        "--name",
        "cli-wall",
        "--workspace",
        &ws,
        "--no-minifilter",
        "--allow-fallback",
        "--network",
        "full",
        "--",
        "cmd.exe",
        "/c",
        "echo the-command-ran",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(97), "{stdout}{stderr}");
    assert!(!stdout.contains("the-command-ran"), "{stdout}");
    assert!(
        stderr.contains("agentsh: sandbox `cli-wall`: wall check failed: ")
            && stderr.contains(" did not hold (")
            && stderr.contains("the command was not started")
            && stderr.contains("--skip-wall-check"),
        "{stderr}"
    );
    // The table names each probe and the layer that denied it.
    for probe in [
        "driver-registry",
        "driver-file",
        "container-token",
        "container-run-key",
    ] {
        assert!(stderr.contains(probe), "{probe}: {stderr}");
    }
    assert!(stderr.contains("minifilter off"), "{stderr}");
    // Nothing of the probe is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&ws)
        .expect("workspace")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("agentsh-wallcheck-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sandbox_run_never_falls_back_unless_allowed_and_never_with_a_limit_it_cannot_keep() {
    let ws = workspace("strict");
    for (flags, why) in [
        (
            vec!["--no-minifilter"],
            "the fallback is opt-in (--allow-fallback)",
        ),
        (
            vec!["--no-minifilter", "--allow-fallback"],
            "network `none` was asked for and the fallback cannot limit the network",
        ),
        (
            vec![
                "--no-minifilter",
                "--no-appcontainer",
                "--network",
                "outbound",
            ],
            "network `outbound` was asked for",
        ),
    ] {
        let mut args = vec!["sandbox", "run", "--name", "cli-strict", "--workspace", &ws];
        args.extend(flags.iter().copied());
        args.extend(["--", "cmd.exe", "/c", "exit /b 0"]);
        let out = agentsh(&args);
        let stderr = text(&out.stderr);
        if out.status.code() == Some(0) {
            // A host with AppContainer never needs the fallback.
            assert!(stderr.contains("isolation: appcontainer"), "{stderr}");
            assert!(!flags.contains(&"--no-appcontainer"), "{stderr}");
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("and the restricted-token fallback is refused: "),
            "{stderr}"
        );
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
        assert!(stderr.contains("nothing was run"), "{stderr}");
        assert!(
            !stderr.contains("exit code 0; isolation"),
            "the command must not have run: {stderr}"
        );
    }
}

#[test]
fn the_command_gets_the_allow_listed_environment_and_writable_temp_folders() {
    let ws = workspace("env");
    let out = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args([
            "sandbox",
            "run",
            "--name",
            "cli-env",
            "--workspace",
            &ws,
            "--no-minifilter",
            "--skip-wall-check",
            "--allow-fallback",
            "--network",
            "full",
            "--pass-env",
            "AGENTSH_TEST_PASSED",
            "--",
            "cmd.exe",
            "/c",
            "set",
        ])
        .env("AGENTSH_LOG", "warn")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
        .env("GITHUB_TOKEN", "ghp_secret")
        .env("AGENTSH_TEST_PASSED", "passed-on-request")
        .output()
        .expect("agentsh.exe runs");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    if !stderr.contains("isolation: restricted token")
        && !stderr.contains("isolation: appcontainer")
    {
        panic!("the command did not run: {stdout}{stderr}");
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let var = |name: &str| {
        stdout
            .lines()
            .find_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_owned())
    };
    assert_eq!(var("AWS_SECRET_ACCESS_KEY"), None, "{stdout}");
    assert_eq!(var("GITHUB_TOKEN"), None, "{stdout}");
    assert_eq!(var("AGENTSH_LOG"), None, "{stdout}");
    assert_eq!(
        var("AGENTSH_TEST_PASSED").as_deref(),
        Some("passed-on-request")
    );
    assert!(
        var("PATH").is_some() && var("SystemRoot").is_some(),
        "{stdout}"
    );
    let temp = var("TEMP").expect("TEMP");
    assert!(
        temp.to_ascii_lowercase().ends_with(&format!(
            "agentsh-cli-env-{}\\.agentsh\\temp",
            std::process::id()
        )),
        "{temp}"
    );
    assert_eq!(var("TMP"), Some(temp.clone()));
    assert!(std::path::Path::new(&temp).is_dir(), "{temp} was created");
    for (name, tail) in [
        ("APPDATA", "appdata\\roaming"),
        ("LOCALAPPDATA", "appdata\\local"),
    ] {
        let v = var(name).expect(name).to_ascii_lowercase();
        assert!(v.ends_with(tail) && v.contains(".agentsh"), "{name}={v}");
    }
}

#[test]
fn sandbox_run_without_a_service_refuses_and_runs_nothing() {
    let ws = workspace("nosvc");
    let pipe = format!(r"\\.\pipe\agentsh-test-absent-{}", std::process::id());
    let args = [
        "sandbox",
        "run",
        "--name",
        "cli-nosvc",
        "--workspace",
        &ws,
        "--api-socket",
        &pipe,
        "--",
        "cmd.exe",
        "/c",
        "exit /b 0",
    ];
    let out = agentsh(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("agentsh: sandbox `cli-nosvc`: the session must be registered through the agentsh service, which is not available: "),
        "{stderr}"
    );
    assert!(stderr.contains(&pipe), "the pipe is named: {stderr}");
    assert!(stderr.contains("`agentsh service start`"), "{stderr}");
    assert!(stderr.contains("pass --no-minifilter"), "{stderr}");
    assert!(
        !stderr.contains("exit code 0"),
        "the command must not have run: {stderr}"
    );
}

/// One request the stand-in service received.
#[derive(Debug)]
struct Seen {
    request_line: String,
    body: String,
}

async fn read_request(pipe: &mut tokio::net::windows::named_pipe::NamedPipeServer) -> Seen {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if pipe.read(&mut byte).await.expect("reads") == 0 {
            break;
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    pipe.read_exact(&mut body).await.expect("body");
    Seen {
        request_line: head.lines().next().unwrap_or_default().to_owned(),
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}

/// The service's local API as far as `sandbox run` uses it, on a named pipe of this (Wine)
/// process created as the service creates its own: answers the liveness check, the
/// registration (`s-9`) and the unregistration, and returns what it was sent once the session
/// is ended (or after a minute).
fn stand_in_service(name: &str) -> JoinHandle<Vec<Seen>> {
    let name: std::ffi::OsString = name.into();
    let first = std::sync::mpsc::channel::<()>();
    let (ready, created) = first;
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut listening =
                agentsh_windows::pipe::create_server(&name, true).expect("creates the pipe");
            ready.send(()).expect("ready");
            let mut seen = Vec::new();
            let serve = async {
                loop {
                    listening.connect().await.expect("a client connects");
                    let next = agentsh_windows::pipe::create_server(&name, false)
                        .expect("another instance");
                    let mut pipe = std::mem::replace(&mut listening, next);
                    let request = read_request(&mut pipe).await;
                    let (status, body) =
                        match request.request_line.split(' ').take(2).collect::<Vec<_>>()[..] {
                            ["GET", "/v1/metrics"] => (200, "agentsh_up 1\n".to_owned()),
                            ["POST", "/v1/sessions"] => {
                                (201, r#"{"session_id":"s-9"}"#.to_owned())
                            }
                            ["DELETE", "/v1/sessions/s-9"] => {
                                (200, "session `s-9` ended\n".to_owned())
                            }
                            _ => (404, "unknown\n".to_owned()),
                        };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    pipe.write_all(answer.as_bytes()).await.expect("answer");
                    let _ = pipe.flush().await;
                    let last = request.request_line.starts_with("DELETE ");
                    seen.push(request);
                    if last {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), serve).await;
            seen
        })
    });
    created
        .recv_timeout(Duration::from_secs(30))
        .expect("the stand-in created its pipe");
    handle
}

#[test]
fn sandbox_run_registers_its_session_through_the_service_and_ends_it() {
    let ws = workspace("svc");
    let pipe = format!(r"\\.\pipe\agentsh-test-svc-{}", std::process::id());
    let service = stand_in_service(&pipe);
    let out = agentsh(&[
        "sandbox",
        "run",
        "--name",
        "cli-svc",
        "--workspace",
        &ws,
        "--api-socket",
        &pipe,
        "--skip-wall-check",
        "--allow-fallback",
        "--network",
        "full",
        "--",
        "cmd.exe",
        "/c",
        "echo hello&& exit /b 4",
    ]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert_eq!(stdout.trim_end(), "hello");
    assert!(
        stderr.contains("sandbox `cli-svc`: exit code 4; isolation: ")
            && stderr.contains("; driver session `s-9`"),
        "{stderr}"
    );
    assert!(!stderr.contains("--no-minifilter"), "{stderr}");

    let seen = service.join().expect("stand-in service");
    let lines: Vec<&str> = seen.iter().map(|s| s.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /v1/metrics HTTP/1.1",
            "POST /v1/sessions HTTP/1.1",
            "DELETE /v1/sessions/s-9 HTTP/1.1"
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&seen[1].body).expect("json request");
    assert!(
        body["root_pid"].as_u64().is_some_and(|pid| pid > 0),
        "{body}"
    );
    assert_eq!(body["app"], "cli-svc", "{body}");
    assert_eq!(
        body["wall_check"], "skipped",
        "the skip is recorded with the session: {body}"
    );
    assert!(body.get("canary").is_none(), "{body}");
    let workspace = body["workspace"].as_str().expect("workspace");
    assert!(
        workspace.ends_with(&format!("agentsh-cli-svc-{}", std::process::id()))
            && workspace.as_bytes().get(1) == Some(&b':'),
        "{body}"
    );
    // Both spellings: the one given and the file system's, which the minifilter's paths use.
    let device = body["workspace_device"].as_str().expect("workspace device");
    assert!(
        device.starts_with("\\Device\\")
            && device.ends_with(&format!("agentsh-cli-svc-{}", std::process::id())),
        "{body}"
    );
    let sid = body["user_sid"].as_str().expect("user sid");
    assert!(sid.starts_with("S-1-5-"), "{body}");
    assert_eq!(body["audit"], false, "{body}");
}
