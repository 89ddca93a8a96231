//! `agentsh selftest`: the acceptance test of a running installation on a real Windows machine.
//!
//! Prerequisites first (agentsh.sys loaded, the service answering its API); a missing one is named
//! and the run ends with exit code 3 before anything is touched. Then each scenario runs with real
//! operations: the design's five manual scenarios and the file scenarios in a medium-integrity
//! *session-only* sandbox (the guide's standalone mode: only the driver stands between the process
//! and the machine, so an AppContainer's ACLs cannot decide in its place), then the wall check's
//! probes in an AppContainer sandbox. The result is a table and a JSON report saying, for each
//! scenario, whether it behaved as the design says and which layer decided. Every key and file a
//! scenario may have created is removed afterwards, even when a step failed.
//!
//! This module is the procedure (prerequisites, order, cleanup, report), tested natively with
//! fakes; the Windows operations are in `imp`.

use std::process::ExitCode;

use serde::Serialize;

/// Exit code when a prerequisite is missing (as `driver status` and `service run` use).
pub const EXIT_PREREQUISITE: u8 = 3;

/// One scenario of the self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Scenario {
    pub id: &'static str,
    /// Where it comes from: `design` (the five manual tests), `file` or `wall-check`.
    pub group: &'static str,
    pub what: &'static str,
    pub expected: &'static str,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "run-key-write",
        group: "design",
        what: "a session process writes a value under HKCU\\...\\CurrentVersion\\Run",
        expected: "denied by the driver (registry_blocked, T1547.001)",
    },
    Scenario {
        id: "app-key-write",
        group: "design",
        what: "a session process writes its application key HKCU\\SOFTWARE\\<app>",
        expected: "allowed",
    },
    Scenario {
        id: "service-key-approved",
        group: "design",
        what: "a session process creates a service key; the self-test approves it through the API",
        expected: "held for approval, then allowed",
    },
    Scenario {
        id: "service-key-timeout",
        group: "design",
        what: "a session process creates a second service key; nobody answers",
        expected: "held for approval, denied when the approval times out",
    },
    Scenario {
        id: "outsider-run-key",
        group: "design",
        what: "a process outside every session writes a Run value",
        expected: "allowed and logged (unsandboxed)",
    },
    Scenario {
        id: "workspace-file-write",
        group: "file",
        what: "a session process creates a file in its workspace",
        expected: "allowed",
    },
    Scenario {
        id: "outside-file-write",
        group: "file",
        what: "a session process creates a file outside its workspace (C:\\Users\\Public)",
        expected: "denied by the driver (file_blocked)",
    },
    Scenario {
        id: "wall-check",
        group: "wall-check",
        what: "sandbox run's wall check in an AppContainer session: driver-registry, driver-file, container-token, container-run-key",
        expected: "every probe held, each by its layer",
    },
];

/// What one scenario did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub passed: bool,
    /// `driver`, `container`, `none` (nothing denied), or `-` when the step did not get that far.
    pub layer: String,
    pub detail: String,
}

/// The machine the self-test runs on: prerequisites, the scenarios' operations, and cleanup.
pub trait Machine {
    /// `Err(what is missing and the next step)` when agentsh.sys is not loaded.
    fn driver(&mut self) -> Result<(), String>;
    /// `Err(...)` when the service does not answer its API.
    fn service(&mut self) -> Result<(), String>;
    /// Runs one scenario; `Err` is a step that could not be carried out (a failure, not a pass).
    fn run(&mut self, scenario: &Scenario) -> Result<Outcome, String>;
    /// Everything the scenarios may have created, to remove: keys (as `HKCU\…`/`HKLM\…`) and
    /// files. Known before any scenario runs (names are chosen up front), so a failed step
    /// cannot hide what it left.
    fn leftovers(&self) -> (Vec<String>, Vec<std::path::PathBuf>);
    /// Removes one key (absent is success).
    fn delete_key(&mut self, key: &str) -> Result<(), String>;
    /// Removes one file (absent is success).
    fn delete_file(&mut self, path: &std::path::Path) -> Result<(), String>;
}

/// The self-test's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The missing prerequisite, when the scenarios did not run.
    pub missing: Option<String>,
    pub results: Vec<ScenarioResult>,
    /// What could not be removed afterwards (each names its object).
    pub cleanup_failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioResult {
    #[serde(flatten)]
    pub scenario: Scenario,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Runs the self-test on `machine`.
pub fn run(machine: &mut dyn Machine) -> Report {
    let missing = machine
        .driver()
        .map_err(|e| format!("agentsh.sys is not loaded: {e}"))
        .and_then(|()| {
            machine
                .service()
                .map_err(|e| format!("the agentsh service does not answer: {e}"))
        })
        .err();
    if missing.is_some() {
        return Report {
            missing,
            results: Vec::new(),
            cleanup_failures: Vec::new(),
        };
    }
    let mut results = Vec::new();
    for scenario in SCENARIOS {
        let outcome = machine.run(scenario).unwrap_or_else(|e| Outcome {
            passed: false,
            layer: "-".into(),
            detail: format!("the step failed: {e}"),
        });
        results.push(ScenarioResult {
            scenario: *scenario,
            outcome,
        });
    }
    let (keys, files) = machine.leftovers();
    let mut cleanup_failures = Vec::new();
    for key in &keys {
        if let Err(e) = machine.delete_key(key) {
            cleanup_failures.push(format!("key `{key}`: {e}"));
        }
    }
    for file in &files {
        if let Err(e) = machine.delete_file(file) {
            cleanup_failures.push(format!("file `{}`: {e}", file.display()));
        }
    }
    Report {
        missing: None,
        results,
        cleanup_failures,
    }
}

impl Report {
    /// 0 when every scenario behaved as designed and everything was removed, 3 when a
    /// prerequisite is missing, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.missing.is_some() {
            ExitCode::from(EXIT_PREREQUISITE)
        } else if self.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    pub fn passed(&self) -> bool {
        self.missing.is_none()
            && self.cleanup_failures.is_empty()
            && self.results.iter().all(|r| r.outcome.passed)
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        if let Some(missing) = &self.missing {
            return format!("selftest: missing prerequisite: {missing}; no scenario was run\n");
        }
        let mut out = format!(
            "{:<22} {:<10} {:<6} {:<10} detail\n",
            "scenario", "group", "result", "layer"
        );
        for r in &self.results {
            out.push_str(&format!(
                "{:<22} {:<10} {:<6} {:<10} {}\n",
                r.scenario.id,
                r.scenario.group,
                if r.outcome.passed { "pass" } else { "FAIL" },
                r.outcome.layer,
                r.outcome.detail
            ));
        }
        for f in &self.cleanup_failures {
            out.push_str(&format!("cleanup: could not remove {f}\n"));
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    #[derive(Default)]
    struct Fake {
        no_driver: bool,
        no_service: bool,
        /// Scenario ids whose step errors out, and one whose outcome fails.
        erroring: Vec<&'static str>,
        failing: Vec<&'static str>,
        /// A key whose removal fails.
        stuck_key: Option<String>,
        ran: Vec<&'static str>,
        deleted: Vec<String>,
    }

    impl Machine for Fake {
        fn driver(&mut self) -> Result<(), String> {
            if self.no_driver {
                Err("filter `agentsh` not found (`agentsh driver load`)".into())
            } else {
                Ok(())
            }
        }
        fn service(&mut self) -> Result<(), String> {
            if self.no_service {
                Err("pipe not found (`agentsh service start`)".into())
            } else {
                Ok(())
            }
        }
        fn run(&mut self, s: &Scenario) -> Result<Outcome, String> {
            self.ran.push(s.id);
            if self.erroring.contains(&s.id) {
                return Err("reg.exe could not start".into());
            }
            Ok(Outcome {
                passed: !self.failing.contains(&s.id),
                layer: "driver".into(),
                detail: "seen".into(),
            })
        }
        fn leftovers(&self) -> (Vec<String>, Vec<PathBuf>) {
            (
                vec![
                    r"HKCU\SOFTWARE\agentsh-selftest".into(),
                    r"HKLM\SYSTEM\CurrentControlSet\Services\agentsh-selftest-1".into(),
                ],
                vec![PathBuf::from(r"C:\Users\Public\agentsh-selftest-1.txt")],
            )
        }
        fn delete_key(&mut self, key: &str) -> Result<(), String> {
            self.deleted.push(key.to_owned());
            if self.stuck_key.as_deref() == Some(key) {
                Err("access denied".into())
            } else {
                Ok(())
            }
        }
        fn delete_file(&mut self, path: &Path) -> Result<(), String> {
            self.deleted.push(path.display().to_string());
            Ok(())
        }
    }

    #[test]
    fn the_scenarios_cover_the_five_manual_tests_the_file_scenarios_and_the_wall_check() {
        let group = |g: &str| SCENARIOS.iter().filter(|s| s.group == g).count();
        assert_eq!(group("design"), 5);
        assert_eq!(group("file"), 2);
        assert_eq!(group("wall-check"), 1);
        let wall = SCENARIOS
            .iter()
            .find(|s| s.group == "wall-check")
            .expect("wall");
        for probe in [
            "driver-registry",
            "driver-file",
            "container-token",
            "container-run-key",
        ] {
            assert!(wall.what.contains(probe), "{probe}");
        }
        let mut ids: Vec<&str> = SCENARIOS.iter().map(|s| s.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), SCENARIOS.len());
    }

    #[test]
    fn a_missing_driver_is_named_and_exits_3_before_anything_runs() {
        let mut m = Fake {
            no_driver: true,
            ..Fake::default()
        };
        let report = run(&mut m);
        assert_eq!(report.exit_code(), ExitCode::from(3));
        let missing = report.missing.as_deref().expect("missing");
        assert!(
            missing.starts_with("agentsh.sys is not loaded: "),
            "{missing}"
        );
        assert!(m.ran.is_empty() && m.deleted.is_empty());
        assert!(report.table().contains("no scenario was run"));
        let mut m = Fake {
            no_service: true,
            ..Fake::default()
        };
        let report = run(&mut m);
        assert_eq!(report.exit_code(), ExitCode::from(3));
        assert!(
            report
                .missing
                .as_deref()
                .is_some_and(|m| m.contains("the agentsh service does not answer")),
            "{report:?}"
        );
        assert!(m.ran.is_empty());
    }

    #[test]
    fn every_key_and_file_is_removed_even_when_steps_fail() {
        let mut m = Fake {
            erroring: vec!["service-key-approved"],
            failing: vec!["outside-file-write"],
            stuck_key: Some(r"HKCU\SOFTWARE\agentsh-selftest".into()),
            ..Fake::default()
        };
        let report = run(&mut m);
        // Every scenario ran despite the error, then every object was attempted.
        assert_eq!(m.ran.len(), SCENARIOS.len());
        assert_eq!(m.deleted.len(), 3, "{:?}", m.deleted);
        assert_eq!(
            report.cleanup_failures,
            [r"key `HKCU\SOFTWARE\agentsh-selftest`: access denied"]
        );
        assert!(!report.passed());
        assert_eq!(report.exit_code(), ExitCode::FAILURE);
        let errored = &report.results[2];
        assert_eq!(errored.scenario.id, "service-key-approved");
        assert!(!errored.outcome.passed);
        assert_eq!(errored.outcome.layer, "-");
        assert!(errored.outcome.detail.contains("reg.exe could not start"));
        let table = report.table();
        assert!(
            table.contains("outside-file-write     file       FAIL   driver"),
            "{table}"
        );
        assert!(table.contains("cleanup: could not remove key"), "{table}");
    }

    #[test]
    fn a_clean_pass_reports_each_scenario_and_its_layer_as_json() {
        let mut m = Fake::default();
        let report = run(&mut m);
        assert!(report.passed());
        assert_eq!(report.exit_code(), ExitCode::SUCCESS);
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("json");
        assert_eq!(json["missing"], serde_json::Value::Null);
        assert_eq!(
            json["results"].as_array().map(Vec::len),
            Some(SCENARIOS.len())
        );
        assert_eq!(json["results"][0]["id"], "run-key-write");
        assert_eq!(json["results"][0]["layer"], "driver");
        assert_eq!(json["results"][0]["passed"], true);
        assert_eq!(json["cleanup_failures"], serde_json::json!([]));
    }
}

/// `agentsh selftest`'s options.
#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    /// The running service (its API address).
    #[command(flatten)]
    pub api: crate::api_client::ApiArgs,
    /// Folder the scenarios use as their workspace (created; default: %TEMP%\agentsh-selftest).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<std::path::PathBuf>,
    /// Where the JSON report is written (default: selftest-report.json in the workspace's parent).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
}

/// Runs the self-test on this machine, prints the table, writes the JSON report.
pub fn main(args: SelftestArgs) -> ExitCode {
    let workspace = args
        .workspace
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("agentsh-selftest"));
    let report_path = args.report.clone().unwrap_or_else(|| {
        workspace
            .parent()
            .map(|p| p.join("selftest-report.json"))
            .unwrap_or_else(|| "selftest-report.json".into())
    });
    let report = imp::selftest(&args, &workspace);
    print!("{}", report.table());
    match std::fs::write(&report_path, report.json()) {
        Ok(()) => println!("report: {}", report_path.display()),
        Err(e) => eprintln!(
            "agentsh: selftest: cannot write the report `{}`: {e}",
            report_path.display()
        ),
    }
    report.exit_code()
}

#[cfg(not(windows))]
mod imp {
    use super::{Machine, Outcome, Report, Scenario, SelftestArgs};

    /// Elsewhere there is no agentsh.sys: the first prerequisite is missing.
    struct NotWindows;

    impl Machine for NotWindows {
        fn driver(&mut self) -> Result<(), String> {
            Err(format!(
                "agentsh.sys is a Windows minifilter; this is {}",
                std::env::consts::OS
            ))
        }
        fn service(&mut self) -> Result<(), String> {
            Err("not reached".into())
        }
        fn run(&mut self, _: &Scenario) -> Result<Outcome, String> {
            Err("not reached".into())
        }
        fn leftovers(&self) -> (Vec<String>, Vec<std::path::PathBuf>) {
            (Vec::new(), Vec::new())
        }
        fn delete_key(&mut self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn delete_file(&mut self, _: &std::path::Path) -> Result<(), String> {
            Ok(())
        }
    }

    pub fn selftest(_args: &SelftestArgs, _workspace: &std::path::Path) -> Report {
        super::run(&mut NotWindows)
    }
}

#[cfg(windows)]
mod imp {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use agentsh_windows::sandbox::{CancelToken, Sandbox, SandboxConfig, SessionRegistrar};

    use super::{Machine, Outcome, Report, Scenario, SelftestArgs};
    use crate::api_client::{ApiArgs, ApiClient};
    use crate::sandbox::registrar::ServiceRegistrar;

    const RUN: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
    const APP: &str = "agentsh-selftest";
    const SERVICES: &str = r"HKLM\SYSTEM\CurrentControlSet\Services";

    struct Windows {
        api: ApiArgs,
        workspace: PathBuf,
        /// Random suffix of every name this run creates.
        nonce: String,
        session: Option<Sandbox>,
    }

    fn nonce() -> String {
        let mut b = [0u8; 6];
        let _ = getrandom::fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn reg(args: &[&str]) -> Result<i32, String> {
        Command::new("reg.exe")
            .args(args)
            .output()
            .map(|o| o.status.code().unwrap_or(-1))
            .map_err(|e| format!("reg.exe: {e}"))
    }

    impl Windows {
        fn name(&self, tag: &str) -> String {
            format!("{APP}-{}-{tag}", self.nonce)
        }

        fn registrar(&self) -> Result<Arc<dyn SessionRegistrar>, String> {
            ServiceRegistrar::connect(&self.api)
                .map(|r| Arc::new(r) as Arc<dyn SessionRegistrar>)
                .map_err(|e| e.to_string())
        }

        /// The medium-integrity, session-only sandbox the design's and file scenarios run in.
        fn session(&mut self) -> Result<&Sandbox, String> {
            if self.session.is_none() {
                std::fs::create_dir_all(&self.workspace).map_err(|e| e.to_string())?;
                let mut c =
                    SandboxConfig::new(APP, &self.workspace, self.workspace.join(".journal"));
                c.session_only = true;
                let mut sandbox =
                    Sandbox::create(c, Some(self.registrar()?)).map_err(|e| e.to_string())?;
                sandbox.set_streaming(false);
                self.session = Some(sandbox);
            }
            self.session
                .as_ref()
                .ok_or_else(|| "no session sandbox".to_owned())
        }

        /// Runs `program args` in the session; its exit code.
        fn in_session(&mut self, program: &str, args: &[String]) -> Result<u32, String> {
            let sandbox = self.session()?;
            sandbox
                .execute(program, args, &CancelToken::new())
                .map(|r| r.exit_code)
                .map_err(|e| e.to_string())
        }

        fn expect_denied(&mut self, program: &str, args: &[String]) -> Result<Outcome, String> {
            let code = self.in_session(program, args)?;
            Ok(Outcome {
                passed: code != 0,
                // The caller's own token may do this by ACL: a refusal is the driver's.
                layer: if code != 0 { "driver" } else { "none" }.into(),
                detail: format!("exit code {code}"),
            })
        }

        fn expect_allowed(&mut self, program: &str, args: &[String]) -> Result<Outcome, String> {
            let code = self.in_session(program, args)?;
            Ok(Outcome {
                passed: code == 0,
                layer: if code == 0 { "none" } else { "driver" }.into(),
                detail: format!("exit code {code}"),
            })
        }

        /// Approves the first pending approval whose path names `marker`, within `limit`.
        fn approve(api: &ApiArgs, marker: &str, limit: Duration) -> Result<u64, String> {
            let client = ApiClient::new(api).map_err(|e| e.to_string())?;
            let start = Instant::now();
            while start.elapsed() < limit {
                let body = client.get("/v1/approvals").map_err(|e| e.to_string())?;
                let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                if let Some(id) = list
                    .iter()
                    .find(|a| {
                        a["path"]
                            .as_str()
                            .is_some_and(|p| p.to_ascii_lowercase().contains(marker))
                    })
                    .and_then(|a| a["id"].as_u64())
                {
                    client
                        .post(&format!("/v1/approvals/{id}/allow"))
                        .map_err(|e| e.to_string())?;
                    return Ok(id);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(format!(
                "no approval for `{marker}` appeared within {limit:?}"
            ))
        }

        fn wall_check(&mut self) -> Result<Outcome, String> {
            let options = crate::sandbox::Options {
                name: format!("{APP}-wall"),
                workspace: self.workspace.clone(),
                allow: Vec::new(),
                network: agentsh_windows::network::NetworkAccess::None,
                appcontainer: true,
                fail_on_appcontainer_error: true,
                minifilter: true,
            };
            let config = SandboxConfig::new(
                &options.name,
                &self.workspace,
                self.workspace.join(".journal"),
            );
            let mut sandbox =
                Sandbox::create(config, Some(self.registrar()?)).map_err(|e| e.to_string())?;
            let report = crate::sandbox::wall_check(&mut sandbox, &options);
            let closed = sandbox.close().map_err(|e| e.to_string());
            let report = report.map_err(|e| format!("{e:#}"))?;
            closed?;
            Ok(Outcome {
                passed: report.passed() && report.status == "passed",
                layer: report
                    .probes
                    .iter()
                    .map(|p| format!("{}:{}", p.probe.name(), p.layer))
                    .collect::<Vec<_>>()
                    .join(" "),
                detail: report.summary(),
            })
        }
    }

    impl Machine for Windows {
        fn driver(&mut self) -> Result<(), String> {
            let status = agentsh_windows::driver::query_status();
            if status.loaded() {
                Ok(())
            } else {
                Err(format!(
                    "{}; install and load it (`agentsh driver install --sys agentsh.sys`, `agentsh driver load`)",
                    status.render().trim().replace('\n', "; ")
                ))
            }
        }

        fn service(&mut self) -> Result<(), String> {
            ApiClient::new(&self.api)
                .and_then(|c| c.get("/v1/metrics"))
                .map(drop)
                .map_err(|e| format!("{e}; start it (`agentsh service start`)"))
        }

        fn run(&mut self, scenario: &Scenario) -> Result<Outcome, String> {
            let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
            match scenario.id {
                "run-key-write" => {
                    let name = self.name("run");
                    self.expect_denied("reg.exe", &s(&["add", RUN, "/v", &name, "/d", "x", "/f"]))
                }
                "app-key-write" => self.expect_allowed(
                    "reg.exe",
                    &s(&[
                        "add",
                        &format!(r"HKCU\SOFTWARE\{APP}\config"),
                        "/v",
                        "theme",
                        "/d",
                        "dark",
                        "/f",
                    ]),
                ),
                "service-key-approved" => {
                    let name = self.name("approved");
                    let key = format!(r"{SERVICES}\{name}");
                    let api = self.api.clone();
                    let marker = name.to_ascii_lowercase();
                    let approver = std::thread::spawn(move || {
                        Self::approve(&api, &marker, Duration::from_secs(60))
                    });
                    let code = self.in_session("reg.exe", &s(&["add", &key, "/f"]))?;
                    let approved = approver
                        .join()
                        .map_err(|_| "the approver thread failed".to_owned())?;
                    Ok(Outcome {
                        passed: code == 0 && approved.is_ok(),
                        layer: "driver".into(),
                        detail: match approved {
                            Ok(id) => {
                                format!("approval {id} allowed through the API; exit code {code}")
                            }
                            Err(e) => format!("{e}; exit code {code}"),
                        },
                    })
                }
                "service-key-timeout" => {
                    let key = format!(r"{SERVICES}\{}", self.name("timeout"));
                    let started = Instant::now();
                    let mut outcome = self.expect_denied("reg.exe", &s(&["add", &key, "/f"]))?;
                    outcome.detail = format!(
                        "{} after {:.0} s unanswered",
                        outcome.detail,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(outcome)
                }
                "outsider-run-key" => {
                    let name = self.name("outsider");
                    let code = reg(&["add", RUN, "/v", &name, "/d", "x", "/f"])?;
                    Ok(Outcome {
                        passed: code == 0,
                        layer: "none".into(),
                        detail: format!(
                            "exit code {code}; the service logs it as unsandboxed with T1547.001"
                        ),
                    })
                }
                "workspace-file-write" => {
                    let file = self.workspace.join(self.name("inside.txt"));
                    self.expect_allowed(
                        "cmd.exe",
                        &s(&["/c", &format!("echo x> \"{}\"", file.display())]),
                    )
                }
                "outside-file-write" => {
                    let file = PathBuf::from(r"C:\Users\Public").join(self.name("outside.txt"));
                    self.expect_denied(
                        "cmd.exe",
                        &s(&["/c", &format!("echo x> \"{}\"", file.display())]),
                    )
                }
                "wall-check" => self.wall_check(),
                other => Err(format!("unknown scenario `{other}`")),
            }
        }

        fn leftovers(&self) -> (Vec<String>, Vec<PathBuf>) {
            (
                vec![
                    format!("{RUN} /v {}", self.name("run")),
                    format!("{RUN} /v {}", self.name("outsider")),
                    format!(r"HKCU\SOFTWARE\{APP}"),
                    format!(r"{SERVICES}\{}", self.name("approved")),
                    format!(r"{SERVICES}\{}", self.name("timeout")),
                ],
                vec![
                    self.workspace.join(self.name("inside.txt")),
                    PathBuf::from(r"C:\Users\Public").join(self.name("outside.txt")),
                ],
            )
        }

        fn delete_key(&mut self, key: &str) -> Result<(), String> {
            let (key, value) = match key.split_once(" /v ") {
                Some((k, v)) => (k, Some(v)),
                None => (key, None),
            };
            let mut query = vec!["query", key];
            if let Some(v) = value {
                query.extend(["/v", v]);
            }
            if reg(&query)? != 0 {
                return Ok(());
            }
            let mut delete = vec!["delete", key, "/f"];
            if let Some(v) = value {
                delete.extend(["/v", v]);
            }
            match reg(&delete)? {
                0 => Ok(()),
                code => Err(format!("reg delete exited with {code}")),
            }
        }

        fn delete_file(&mut self, path: &Path) -> Result<(), String> {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        }
    }

    pub fn selftest(args: &SelftestArgs, workspace: &Path) -> Report {
        let mut machine = Windows {
            api: args.api.clone(),
            workspace: workspace.to_owned(),
            nonce: nonce(),
            session: None,
        };
        let report = super::run(&mut machine);
        if let Some(sandbox) = machine.session.take()
            && let Err(e) = sandbox.close()
        {
            eprintln!("agentsh: selftest: closing the session sandbox: {e}");
        }
        report
    }
}
