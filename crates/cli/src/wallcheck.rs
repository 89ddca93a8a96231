//! The wall check of `sandbox run`: before the command starts, a probe process runs in the same
//! sandbox (same AppContainer profile, same grants, its own driver session with the same
//! context) and tries what each wall must stop; the command runs only when every wall held.
//!
//! | probe | what the probe process does | the wall held when |
//! |---|---|---|
//! | `driver-registry` | writes `HKCU\SOFTWARE\<app>\<canary>-control`, then `…\<canary>` | the control write succeeds and the canary write fails with ACCESS_DENIED |
//! | `driver-file` | creates `<workspace>\<canary>-control`, then `<workspace>\<canary>` | as above |
//! | `container-token` | reads its own token | it is an AppContainer token whose capability SIDs are exactly the network level's (fallback: a low-integrity token) |
//! | `container-run-key` | opens `HKCU\…\CurrentVersion\Run` for write | the open fails with ACCESS_DENIED |
//!
//! The canary is a name registered with the session (`canary` of `POST /v1/sessions`): the
//! service denies every write-class operation of that session on a key or file whose last
//! component is the canary. The app key and the workspace are granted to the container, so the
//! control write proves the ACLs allow the canary write too; a canary write refused while its
//! control succeeded was refused by the driver (with its `registry_blocked` / `file_blocked`
//! event in the service's log). Which layer denied is reported for every probe.
//!
//! This module is the decision: pure, tested natively with fake observations. The probes
//! themselves are the hidden `agentsh sandbox wall-probe` command (Windows).

use std::fmt;

use serde::Serialize;

/// `sandbox run`'s exit code when a wall did not hold and the command was not started.
pub const EXIT_WALL_FAILED: u8 = 97;

/// Win32 `ERROR_ACCESS_DENIED`.
pub const ACCESS_DENIED: u32 = 5;

/// The run key the container must not open for write (under `HKCU`).
pub const RUN_KEY: &str = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run";

/// Prefix of every canary name; a random 64-bit suffix in hex follows.
pub const CANARY_PREFIX: &str = "agentsh-wallcheck-";

/// One probe of the wall check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    DriverRegistry,
    DriverFile,
    ContainerToken,
    ContainerRunKey,
}

impl Probe {
    pub fn name(self) -> &'static str {
        match self {
            Probe::DriverRegistry => "driver-registry",
            Probe::DriverFile => "driver-file",
            Probe::ContainerToken => "container-token",
            Probe::ContainerRunKey => "container-run-key",
        }
    }

    /// The wall the probe tests, as refusals name it.
    pub fn wall(self) -> &'static str {
        match self {
            Probe::DriverRegistry => "the driver's registry wall",
            Probe::DriverFile => "the driver's file wall",
            Probe::ContainerToken => "the container's token",
            Probe::ContainerRunKey => "the container's registry wall (Run key)",
        }
    }
}

/// The layer that denied a probe's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// agentsh.sys, on the service's decision.
    Driver,
    /// The AppContainer (or fallback) token against the object's ACL and label.
    Container,
    /// Nothing denied it.
    None,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Driver => "driver",
            Layer::Container => "container",
            Layer::None => "none",
        })
    }
}

/// The outcome of one operation in the probe process: success, or a Win32 error code.
pub type OpResult = Result<(), u32>;

/// What the probe process saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observations {
    pub registry_control: Option<OpResult>,
    pub registry_canary: Option<OpResult>,
    pub file_control: Option<OpResult>,
    pub file_canary: Option<OpResult>,
    /// The token: whether it is an AppContainer token, its capability SIDs, its integrity SID.
    pub token: Option<TokenFacts>,
    pub run_key: Option<OpResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenFacts {
    pub appcontainer: bool,
    pub capabilities: Vec<String>,
    pub integrity: String,
}

/// What the walls must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The driver probes apply (a minifilter session); otherwise they are reported as skipped.
    pub driver: bool,
    /// AppContainer isolation (else the restricted-token fallback).
    pub appcontainer: bool,
    /// The capability SIDs of the requested network level.
    pub capabilities: Vec<String>,
}

/// Low mandatory level.
pub const LOW_INTEGRITY: &str = "S-1-16-4096";

/// A probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub probe: Probe,
    /// `held`, `failed` or `skipped`.
    pub outcome: Outcome,
    /// The layer that denied the probe's operation.
    pub layer: Layer,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Held,
    Failed,
    Skipped,
}

/// The wall check's result, carried by the command's session registration and printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WallReport {
    /// `passed`, `failed` or `skipped` (`--skip-wall-check`).
    pub status: &'static str,
    pub probes: Vec<ProbeResult>,
}

fn op_text(r: &Option<OpResult>) -> String {
    match r {
        None => "not attempted".into(),
        Some(Ok(())) => "succeeded".into(),
        Some(Err(ACCESS_DENIED)) => "access denied".into(),
        Some(Err(code)) => format!("failed with win32 error {code}"),
    }
}

fn driver_probe(
    probe: Probe,
    what: &str,
    control: &Option<OpResult>,
    canary: &Option<OpResult>,
) -> ProbeResult {
    let (outcome, layer, detail) = match (control, canary) {
        (Some(Ok(())), Some(Err(ACCESS_DENIED))) => (
            Outcome::Held,
            Layer::Driver,
            format!("{what}: control write succeeded, canary write denied by the driver"),
        ),
        (Some(Ok(())), Some(Ok(()))) => (
            Outcome::Failed,
            Layer::None,
            format!(
                "{what}: the canary write the policy denies succeeded (is the driver loaded and attached, and the session registered?)"
            ),
        ),
        (Some(Err(ACCESS_DENIED)), _) => (
            Outcome::Failed,
            Layer::Container,
            format!(
                "{what}: the control write was denied by the container's ACLs, so the driver was not reached"
            ),
        ),
        (control, canary) => (
            Outcome::Failed,
            Layer::None,
            format!(
                "{what}: control write {}, canary write {}",
                op_text(control),
                op_text(canary)
            ),
        ),
    };
    ProbeResult {
        probe,
        outcome,
        layer,
        detail,
    }
}

/// Judges the observations against the expectations.
pub fn decide(obs: &Observations, exp: &Expectations) -> WallReport {
    let mut probes = Vec::new();
    if exp.driver {
        probes.push(driver_probe(
            Probe::DriverRegistry,
            "app key subkey",
            &obs.registry_control,
            &obs.registry_canary,
        ));
        probes.push(driver_probe(
            Probe::DriverFile,
            "workspace file",
            &obs.file_control,
            &obs.file_canary,
        ));
    } else {
        for probe in [Probe::DriverRegistry, Probe::DriverFile] {
            probes.push(ProbeResult {
                probe,
                outcome: Outcome::Skipped,
                layer: Layer::None,
                detail: "minifilter off: no driver session to test".into(),
            });
        }
    }
    probes.push(match &obs.token {
        None => ProbeResult {
            probe: Probe::ContainerToken,
            outcome: Outcome::Failed,
            layer: Layer::None,
            detail: "the probe could not read its token".into(),
        },
        Some(t) if exp.appcontainer => {
            let mut have = t.capabilities.clone();
            have.sort();
            let mut want = exp.capabilities.clone();
            want.sort();
            let ok = t.appcontainer && have == want;
            ProbeResult {
                probe: Probe::ContainerToken,
                outcome: if ok { Outcome::Held } else { Outcome::Failed },
                layer: Layer::Container,
                detail: if !t.appcontainer {
                    "the token is not an AppContainer token".into()
                } else if ok {
                    format!("appcontainer token with capabilities [{}]", want.join(", "))
                } else {
                    format!(
                        "appcontainer token with capabilities [{}], expected [{}]",
                        have.join(", "),
                        want.join(", ")
                    )
                },
            }
        }
        Some(t) => {
            let ok = !t.appcontainer && t.integrity == LOW_INTEGRITY;
            ProbeResult {
                probe: Probe::ContainerToken,
                outcome: if ok { Outcome::Held } else { Outcome::Failed },
                layer: Layer::Container,
                detail: format!(
                    "fallback token at integrity {}{}",
                    t.integrity,
                    if ok {
                        ""
                    } else {
                        ", expected low (S-1-16-4096)"
                    }
                ),
            }
        }
    });
    probes.push(match &obs.run_key {
        Some(Err(ACCESS_DENIED)) => ProbeResult {
            probe: Probe::ContainerRunKey,
            outcome: Outcome::Held,
            layer: Layer::Container,
            detail: "open of HKCU\\…\\Run for write denied".into(),
        },
        other => ProbeResult {
            probe: Probe::ContainerRunKey,
            outcome: Outcome::Failed,
            layer: Layer::None,
            detail: format!("open of HKCU\\…\\Run for write {}", op_text(other)),
        },
    });
    let status = if probes.iter().any(|p| p.outcome == Outcome::Failed) {
        "failed"
    } else {
        "passed"
    };
    WallReport { status, probes }
}

impl WallReport {
    /// The report of a run started with `--skip-wall-check`.
    pub fn skipped() -> Self {
        WallReport {
            status: "skipped",
            probes: Vec::new(),
        }
    }

    pub fn passed(&self) -> bool {
        self.status != "failed"
    }

    /// The refusal: every wall that did not hold, by name, with what was seen.
    pub fn refusal(&self, sandbox: &str) -> String {
        let failed: Vec<String> = self
            .probes
            .iter()
            .filter(|p| p.outcome == Outcome::Failed)
            .map(|p| {
                format!(
                    "{} did not hold ({}: {})",
                    p.probe.wall(),
                    p.probe.name(),
                    p.detail
                )
            })
            .collect();
        format!(
            "sandbox `{sandbox}`: wall check failed: {}; the command was not started (pass --skip-wall-check to run without the check; the skip is recorded)",
            failed.join("; ")
        )
    }

    /// One line for the session registration and the service's log: status and each probe's
    /// outcome and deciding layer.
    pub fn summary(&self) -> String {
        if self.probes.is_empty() {
            return self.status.to_owned();
        }
        let parts: Vec<String> = self
            .probes
            .iter()
            .map(|p| {
                let outcome = match p.outcome {
                    Outcome::Held => "held",
                    Outcome::Failed => "failed",
                    Outcome::Skipped => "skipped",
                };
                format!("{}={outcome}/{}", p.probe.name(), p.layer)
            })
            .collect();
        format!("{}: {}", self.status, parts.join(" "))
    }

    /// The table `sandbox run` prints on stderr and `selftest` reuses.
    pub fn table(&self) -> String {
        let mut out = format!("{:<20} {:<8} {:<10} detail\n", "probe", "outcome", "layer");
        for p in &self.probes {
            let outcome = serde_json::to_value(p.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<20} {:<8} {:<10} {}\n",
                p.probe.name(),
                outcome,
                p.layer.to_string(),
                p.detail
            ));
        }
        out
    }
}

/// A fresh canary name from the OS's random source.
pub fn new_canary() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("random source: {e}"))?;
    Ok(format!("{CANARY_PREFIX}{:016x}", u64::from_le_bytes(bytes)))
}

/// The probe process's report, one line per operation: `name<TAB>ok`, `name<TAB>error <code>`,
/// and `token<TAB>appcontainer|other<TAB>integrity<TAB>cap,cap,...`.
pub fn render_observations(obs: &Observations) -> String {
    let mut out = String::new();
    let op = |name: &str, r: &Option<OpResult>, out: &mut String| {
        if let Some(r) = r {
            match r {
                Ok(()) => out.push_str(&format!("{name}\tok\n")),
                Err(code) => out.push_str(&format!("{name}\terror {code}\n")),
            }
        }
    };
    op("registry-control", &obs.registry_control, &mut out);
    op("registry-canary", &obs.registry_canary, &mut out);
    op("file-control", &obs.file_control, &mut out);
    op("file-canary", &obs.file_canary, &mut out);
    if let Some(t) = &obs.token {
        out.push_str(&format!(
            "token\t{}\t{}\t{}\n",
            if t.appcontainer {
                "appcontainer"
            } else {
                "other"
            },
            t.integrity,
            t.capabilities.join(",")
        ));
    }
    op("run-key", &obs.run_key, &mut out);
    out
}

/// Reads [`render_observations`]' output back; other lines (the probe's stderr is separate) are
/// an error that names the line.
pub fn parse_observations(text: &str) -> Result<Observations, String> {
    let mut obs = Observations::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "wall probe output line {}: `{line}` is not a probe result",
                index + 1
            )
        };
        let fields: Vec<&str> = line.split('\t').collect();
        let op = |f: &str| -> Result<OpResult, String> {
            match f {
                "ok" => Ok(Ok(())),
                _ => f
                    .strip_prefix("error ")
                    .and_then(|c| c.parse::<u32>().ok())
                    .map(Err)
                    .ok_or_else(bad),
            }
        };
        match fields.as_slice() {
            ["registry-control", r] => obs.registry_control = Some(op(r)?),
            ["registry-canary", r] => obs.registry_canary = Some(op(r)?),
            ["file-control", r] => obs.file_control = Some(op(r)?),
            ["file-canary", r] => obs.file_canary = Some(op(r)?),
            ["run-key", r] => obs.run_key = Some(op(r)?),
            ["token", kind, integrity, caps] if matches!(*kind, "appcontainer" | "other") => {
                obs.token = Some(TokenFacts {
                    appcontainer: *kind == "appcontainer",
                    integrity: (*integrity).to_owned(),
                    capabilities: caps
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            }
            _ => return Err(bad()),
        }
    }
    Ok(obs)
}

/// Removes what probes created: tries every item even when one fails, and returns what could
/// not be removed (each named), so a failing step never leaves the rest behind.
pub trait Janitor {
    /// Deletes `HKCU\<subkey>` (absent is success).
    fn delete_key(&self, subkey: &str) -> Result<(), String>;
    /// Deletes a file (absent is success).
    fn delete_file(&self, path: &std::path::Path) -> Result<(), String>;
}

/// Keys (under `HKCU`) and files a wall check with `canary` may have created.
pub fn leftovers(
    canary: &str,
    app_key: &str,
    workspace: &std::path::Path,
) -> (Vec<String>, Vec<std::path::PathBuf>) {
    let names = [format!("{canary}-control"), canary.to_owned()];
    (
        names
            .iter()
            .map(|n| format!("SOFTWARE\\{app_key}\\{n}"))
            .collect(),
        names.iter().map(|n| workspace.join(n)).collect(),
    )
}

/// Deletes every key and file; the failures, each naming its object.
pub fn clean(janitor: &dyn Janitor, keys: &[String], files: &[std::path::PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for key in keys {
        if let Err(e) = janitor.delete_key(key) {
            failures.push(format!("key `HKCU\\{key}`: {e}"));
        }
    }
    for file in files {
        if let Err(e) = janitor.delete_file(file) {
            failures.push(format!("file `{}`: {e}", file.display()));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERNET: &str = "S-1-15-3-1";
    const PRIVATE: &str = "S-1-15-3-3";

    fn appcontainer(caps: &[&str]) -> Expectations {
        Expectations {
            driver: true,
            appcontainer: true,
            capabilities: caps.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A probe process inside walls that all hold.
    fn holding(caps: &[&str]) -> Observations {
        Observations {
            registry_control: Some(Ok(())),
            registry_canary: Some(Err(ACCESS_DENIED)),
            file_control: Some(Ok(())),
            file_canary: Some(Err(ACCESS_DENIED)),
            token: Some(TokenFacts {
                appcontainer: true,
                capabilities: caps.iter().map(|s| (*s).to_owned()).collect(),
                integrity: LOW_INTEGRITY.into(),
            }),
            run_key: Some(Err(ACCESS_DENIED)),
        }
    }

    fn result(report: &WallReport, probe: Probe) -> &ProbeResult {
        report
            .probes
            .iter()
            .find(|p| p.probe == probe)
            .expect("probe reported")
    }

    #[test]
    fn walls_that_hold_pass_and_each_probe_names_the_layer_that_denied() {
        let report = decide(
            &holding(&[PRIVATE, INTERNET]),
            &appcontainer(&[INTERNET, PRIVATE]),
        );
        assert_eq!(report.status, "passed", "{report:?}");
        assert!(report.passed());
        assert_eq!(report.probes.len(), 4);
        assert_eq!(result(&report, Probe::DriverRegistry).layer, Layer::Driver);
        assert_eq!(result(&report, Probe::DriverFile).layer, Layer::Driver);
        assert_eq!(
            result(&report, Probe::ContainerToken).layer,
            Layer::Container
        );
        assert_eq!(
            result(&report, Probe::ContainerRunKey).layer,
            Layer::Container
        );
        assert_eq!(
            report.summary(),
            "passed: driver-registry=held/driver driver-file=held/driver container-token=held/container container-run-key=held/container"
        );
    }

    #[test]
    fn each_wall_made_to_fail_refuses_the_run_and_is_named() {
        let exp = appcontainer(&[]);
        type Breaker = fn(&mut Observations);
        let cases: [(Breaker, Probe, Layer, &str); 7] = [
            (
                |o| o.registry_canary = Some(Ok(())),
                Probe::DriverRegistry,
                Layer::None,
                "canary write the policy denies succeeded",
            ),
            (
                |o| o.file_canary = Some(Ok(())),
                Probe::DriverFile,
                Layer::None,
                "canary write the policy denies succeeded",
            ),
            (
                |o| o.file_control = Some(Err(ACCESS_DENIED)),
                Probe::DriverFile,
                Layer::Container,
                "driver was not reached",
            ),
            (
                |o| o.registry_canary = Some(Err(2)),
                Probe::DriverRegistry,
                Layer::None,
                "canary write failed with win32 error 2",
            ),
            (
                |o| o.token.as_mut().expect("token").appcontainer = false,
                Probe::ContainerToken,
                Layer::Container,
                "not an AppContainer token",
            ),
            (
                |o| o.token.as_mut().expect("token").capabilities = vec![INTERNET.into()],
                Probe::ContainerToken,
                Layer::Container,
                "capabilities [S-1-15-3-1], expected []",
            ),
            (
                |o| o.run_key = Some(Ok(())),
                Probe::ContainerRunKey,
                Layer::None,
                "for write succeeded",
            ),
        ];
        for (breaker, probe, layer, why) in cases {
            let mut obs = holding(&[]);
            breaker(&mut obs);
            let report = decide(&obs, &exp);
            assert!(!report.passed(), "{probe:?}: {report:?}");
            let r = result(&report, probe);
            assert_eq!((r.outcome, r.layer), (Outcome::Failed, layer), "{r:?}");
            assert!(r.detail.contains(why), "{probe:?}: {}", r.detail);
            let refusal = report.refusal("demo");
            assert!(
                refusal.starts_with("sandbox `demo`: wall check failed: ")
                    && refusal.contains(probe.wall())
                    && refusal.contains("the command was not started")
                    && refusal.contains("--skip-wall-check"),
                "{refusal}"
            );
            // Only the broken wall is named.
            for other in [
                Probe::DriverRegistry,
                Probe::DriverFile,
                Probe::ContainerToken,
                Probe::ContainerRunKey,
            ]
            .into_iter()
            .filter(|p| *p != probe)
            {
                assert!(!refusal.contains(other.wall()), "{refusal}");
            }
        }
    }

    #[test]
    fn a_probe_that_reported_nothing_fails() {
        let report = decide(&Observations::default(), &appcontainer(&[]));
        assert!(!report.passed());
        assert!(report.probes.iter().all(|p| p.outcome == Outcome::Failed));
    }

    #[test]
    fn without_a_driver_session_the_driver_probes_are_skipped_not_passed_silently() {
        let mut exp = appcontainer(&[]);
        exp.driver = false;
        let report = decide(&holding(&[]), &exp);
        assert!(report.passed());
        for probe in [Probe::DriverRegistry, Probe::DriverFile] {
            let r = result(&report, probe);
            assert_eq!(r.outcome, Outcome::Skipped);
            assert!(r.detail.contains("minifilter off"));
        }
        assert!(report.summary().contains("driver-file=skipped/none"));
    }

    #[test]
    fn the_fallback_token_must_be_low_integrity() {
        let exp = Expectations {
            driver: false,
            appcontainer: false,
            capabilities: Vec::new(),
        };
        let mut obs = holding(&[]);
        obs.token = Some(TokenFacts {
            appcontainer: false,
            capabilities: Vec::new(),
            integrity: LOW_INTEGRITY.into(),
        });
        assert!(decide(&obs, &exp).passed());
        obs.token.as_mut().expect("token").integrity = "S-1-16-8192".into();
        let report = decide(&obs, &exp);
        assert!(!report.passed());
        assert!(
            report
                .refusal("x")
                .contains("the container's token did not hold")
        );
    }

    #[test]
    fn observations_cross_the_process_boundary_unchanged() {
        let obs = holding(&[INTERNET, PRIVATE]);
        let text = render_observations(&obs);
        assert_eq!(parse_observations(&text), Ok(obs));
        let mut partial = Observations {
            run_key: Some(Err(1234)),
            ..Observations::default()
        };
        partial.token = Some(TokenFacts {
            appcontainer: false,
            capabilities: Vec::new(),
            integrity: "S-1-16-8192".into(),
        });
        assert_eq!(
            parse_observations(&render_observations(&partial)),
            Ok(partial)
        );
        let err = parse_observations("run-key\tok\r\nrun-key\tmaybe\n").expect_err("bad line");
        assert_eq!(
            err,
            "wall probe output line 2: `run-key\tmaybe` is not a probe result"
        );
    }

    #[test]
    fn skipped_is_recorded_and_passes() {
        let s = WallReport::skipped();
        assert!(s.passed());
        assert_eq!(s.summary(), "skipped");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["status"], "skipped");
    }

    #[test]
    fn the_refusal_has_its_own_exit_code_and_probes_the_documented_run_key() {
        // 0 success, 1 error, 2 usage (clap), 3 missing driver: the refusal is none of them.
        assert!(![0, 1, 2, 3].contains(&EXIT_WALL_FAILED));
        assert_eq!(RUN_KEY, "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run");
    }

    #[test]
    fn canaries_are_unique_and_prefixed() {
        let a = new_canary().expect("canary");
        let b = new_canary().expect("canary");
        assert_ne!(a, b);
        assert!(a.starts_with(CANARY_PREFIX) && a.len() == CANARY_PREFIX.len() + 16);
    }

    #[test]
    fn the_report_is_json_with_layers() {
        let report = decide(&holding(&[]), &appcontainer(&[]));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["probes"][0]["probe"], "driver-registry");
        assert_eq!(json["probes"][0]["layer"], "driver");
        assert_eq!(json["probes"][3]["outcome"], "held");
        assert!(
            report
                .table()
                .contains("container-run-key    held     container")
        );
    }

    struct Fake {
        fail: &'static str,
        seen: std::cell::RefCell<Vec<String>>,
    }

    impl Janitor for Fake {
        fn delete_key(&self, subkey: &str) -> Result<(), String> {
            self.seen.borrow_mut().push(subkey.to_owned());
            if subkey.ends_with(self.fail) {
                Err("access denied".into())
            } else {
                Ok(())
            }
        }
        fn delete_file(&self, path: &std::path::Path) -> Result<(), String> {
            let p = path.display().to_string();
            self.seen.borrow_mut().push(p.clone());
            if p.ends_with(self.fail) {
                Err("sharing violation".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn cleanup_removes_every_key_and_file_even_when_one_fails() {
        let canary = "agentsh-wallcheck-0123456789abcdef";
        let (keys, files) = leftovers(canary, "demo", std::path::Path::new("/w"));
        assert_eq!(
            keys,
            [
                format!("SOFTWARE\\demo\\{canary}-control"),
                format!("SOFTWARE\\demo\\{canary}")
            ]
        );
        // The first key fails: the other key and both files are still attempted.
        let fake = Fake {
            fail: "-control",
            seen: Default::default(),
        };
        let failures = clean(&fake, &keys, &files);
        assert_eq!(fake.seen.borrow().len(), 4, "{:?}", fake.seen.borrow());
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("key `HKCU\\SOFTWARE\\demo\\agentsh-wallcheck-"));
        assert!(failures[0].ends_with("-control`: access denied"));
        assert!(failures[1].contains("-control`: sharing violation"));
        let ok = Fake {
            fail: "never",
            seen: Default::default(),
        };
        assert!(clean(&ok, &keys, &files).is_empty());
    }
}
