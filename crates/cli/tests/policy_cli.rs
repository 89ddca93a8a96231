//! `agentsh policy` end to end: the design's five manual scenarios as `policy check` queries,
//! exit codes and locations for invalid files, `test`, `explain` and `schema`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/data")
        .join(name)
}

fn agentsh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(args)
        .output()
        .expect("agentsh runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_five_manual_scenarios_give_the_designed_decisions() {
    let file = data("scenarios.jsonl");
    let out = agentsh(&[
        "policy",
        "check",
        "--batch",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 5);
    // 1. sandboxed write to a Run key: blocked
    assert_eq!(lines[0]["decision"], "deny");
    assert_eq!(lines[0]["rule"], "builtin:run-keys-hkcu");
    assert_eq!(lines[0]["mitre_id"], "T1547.001");
    assert_eq!(
        lines[0]["canonical"],
        r"HKCU\SOFTWARE\MICROSOFT\WINDOWS\CURRENTVERSION\RUN"
    );
    // 2. the application's own key: allowed
    assert_eq!(lines[1]["decision"], "allow");
    assert_eq!(lines[1]["rule"], "allow-app-settings");
    // 3. creating a service key: held for approval, never cached
    assert_eq!(lines[2]["decision"], "approve");
    assert_eq!(lines[2]["rule"], "builtin:services");
    assert_eq!(lines[2]["cache_ttl_seconds"], 0);
    assert!(
        lines[2]["message"]
            .as_str()
            .is_some_and(|m| m.contains("agentsh-demo"))
    );
    // 4. the same approval has a timeout after which the service denies it
    assert_eq!(lines[3]["decision"], "approve");
    assert_eq!(lines[3]["approval_timeout_seconds"], 30);
    assert_eq!(
        lines[3]["canonical"],
        r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES\AGENTSH-TIMEOUT"
    );
    // 5. a process outside the sandbox: allowed and logged with its technique
    assert_eq!(lines[4]["decision"], "allow");
    assert_eq!(lines[4]["log"], true);
    assert_eq!(lines[4]["risk_level"], "critical");
    assert_eq!(lines[4]["mitre_tactic"], "persistence");
    for l in &lines {
        for field in [
            "decision",
            "rule",
            "canonical",
            "cache_ttl_seconds",
            "notify",
            "log",
            "risk_level",
            "mitre_id",
            "mitre_tactic",
            "approval_timeout_seconds",
            "message",
        ] {
            assert!(l.get(field).is_some(), "missing `{field}` in {l}");
        }
    }
}

#[test]
fn single_check_with_flags_and_json() {
    let out = agentsh(&[
        "policy",
        "check",
        "--key",
        r"HKCU\SOFTWARE\TestApp\config",
        "--op",
        "write",
        "--app",
        "TestApp",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(v["decision"], "allow");
    let out = agentsh(&[
        "policy",
        "check",
        "--key",
        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
        "--op",
        "write",
        "--unsandboxed",
    ]);
    assert!(
        stdout(&out).contains("decision:  allow") && stdout(&out).contains("T1547.001"),
        "{}",
        stdout(&out)
    );
    let out = agentsh(&["policy", "check", "--key", r"HKCU\x", "--op", "wirte"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown operation `wirte`"));
}

#[test]
fn validate_reports_every_problem_with_its_location_and_exits_2() {
    let file = data("invalid.yaml");
    let out = agentsh(&["policy", "validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // The double-quoted-backslash trap: "HKCU\Network\tcpip" holds U+0085 and a tab.
    assert!(err.contains("invalid.yaml:3:13: rule `block-run-keys`: path `HKCU\\u{85}etwork\\tcpip`: control character U+0085"), "{err}");
    assert!(
        err.contains("invalid.yaml:4:25: rule `block-run-keys`: unknown operation `craete`"),
        "{err}"
    );
    assert!(err.contains("invalid.yaml:6:5: rule `block-run-keys`: unknown field `priorty` in a rule (did you mean `priority`?)"), "{err}");
    let ok = agentsh(&["policy", "validate"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn test_command_reports_each_test() {
    let good = data("team-policy.yaml");
    let out = agentsh(&["policy", "test", good.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("3 passed, 0 failed"));
    let bad = data("failing-tests.yaml");
    let out = agentsh(&["policy", "test", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL") && stdout(&out).contains("expected allow, got deny"),
        "{}",
        stdout(&out)
    );
    // Loading the failing file for anything else is an error too.
    let out = agentsh(&["policy", "validate", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_names_the_winner_and_the_catalog_entries() {
    let out = agentsh(&[
        "policy",
        "explain",
        "--key",
        r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender",
        "--op",
        "SetValue",
        "--value",
        "DisableAntiSpyware",
        "--app",
        "TestApp",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("builtin:windows-defender") && s.contains("builtin:policies"),
        "{s}"
    );
    assert!(s.contains("decides"), "{s}");
}

#[test]
fn explain_lists_remembered_rules_with_their_file_and_validate_refuses_a_lowering_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("agentsh.yaml");
    std::fs::write(&policy, agentsh_policy::DEFAULT_POLICY_YAML).expect("policy");
    let overlay = dir.path().join("agentsh.remembered.yaml");
    std::fs::write(
        &overlay,
        "registry_rules:\n  - name: remembered-vendor\n    paths: ['HKCU\\SOFTWARE\\OtherVendor\\settings']\n    operations: [write]\n    decision: allow\n    priority: 100\n",
    )
    .expect("overlay");
    let p = policy.to_str().expect("utf-8 path");
    let args = [
        "policy",
        "explain",
        "--policy",
        p,
        "--key",
        r"HKCU\SOFTWARE\OtherVendor\settings",
        "--op",
        "SetValue",
        "--app",
        "TestApp",
    ];
    let out = agentsh(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    let line = s
        .lines()
        .find(|l| l.contains("remembered-vendor"))
        .unwrap_or_else(|| panic!("the remembered rule is listed:\n{s}"));
    assert!(
        line.contains(&format!("[remembered, {}]", overlay.display()))
            && line.contains("first match"),
        "{line}"
    );
    assert!(s.contains("decision:  allow"), "{s}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = agentsh(&json_args);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let step = v["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "remembered-vendor"))
        .expect("step");
    assert_eq!(step["source"], overlay.display().to_string());

    std::fs::write(
        &overlay,
        "registry_rules:\n  - name: remembered-run\n    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run']\n    operations: [write]\n    decision: allow\n",
    )
    .expect("overlay");
    let out = agentsh(&["policy", "validate", p]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("agentsh.remembered.yaml")
            && e.contains("run-keys-hklm")
            && e.contains("overrides"),
        "{e}"
    );
}

#[test]
fn explain_shows_a_rules_apps_and_with_app_why_it_was_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("agentsh.yaml");
    std::fs::write(
        &policy,
        "file_policy: { default_action: allow }\nfile_rules:\n  - { name: notes-data, paths: ['C:\\data\\*'], operations: [write], decision: deny, apps: [Notes, Editor] }\n",
    )
    .expect("policy");
    let p = policy.to_str().expect("utf-8 path");
    let explain = |app: &str| {
        let out = agentsh(&[
            "policy",
            "explain",
            "--policy",
            p,
            "--path",
            r"C:\data\a.txt",
            "--op",
            "write",
            "--app",
            app,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let s = explain("Browser");
    let line = s
        .lines()
        .find(|l| l.contains("notes-data"))
        .unwrap_or_else(|| panic!("the rule is listed:\n{s}"));
    assert!(line.contains("[apps: Notes, Editor]"), "{line}");
    assert!(
        line.contains("skipped: the session's app `Browser` is not in the rule's apps"),
        "{line}"
    );
    assert!(s.contains("decision:  allow"), "{s}");
    let s = explain("notes");
    let line = s.lines().find(|l| l.contains("notes-data")).expect("rule");
    assert!(line.contains("first match"), "{line}");
    assert!(s.contains("decision:  deny"), "{s}");
    let out = agentsh(&[
        "policy",
        "explain",
        "--policy",
        p,
        "--path",
        r"C:\data\a.txt",
        "--op",
        "write",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let step = v["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "notes-data"))
        .expect("step");
    assert_eq!(step["apps"], serde_json::json!(["Notes", "Editor"]));
    assert_eq!(
        step["outcome"],
        "skipped: the session has no app name and the rule names apps"
    );
}

#[test]
fn explain_works_for_file_queries() {
    let out = agentsh(&[
        "policy",
        "explain",
        "--path",
        r"C:\work\..\Windows\x.dll",
        "--op",
        "write",
        "--workspace",
        r"C:\work",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(v["canonical"], r"C:\WINDOWS\X.DLL");
    assert_eq!(v["verdict"]["decision"], "deny");
    assert_eq!(v["steps"][0]["name"], "allow-workspace");
}

#[test]
fn rendered_explain_and_scenarios_are_stable() {
    let out = agentsh(&[
        "policy",
        "explain",
        "--key",
        r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\agentsh-demo",
        "--op",
        "CreateKey",
        "--app",
        "TestApp",
    ]);
    insta::assert_snapshot!("explain_service_create", stdout(&out));
    let file = data("scenarios.jsonl");
    let out = agentsh(&[
        "policy",
        "check",
        "--batch",
        file.to_str().expect("utf-8 path"),
    ]);
    let pretty: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(l).expect("json"))
                .expect("json")
        })
        .collect();
    insta::assert_snapshot!("scenarios", pretty.join("\n"));
}

#[test]
fn schema_is_json_and_closed() {
    let out = agentsh(&["policy", "schema"]);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("json schema");
    assert_eq!(v["additionalProperties"], false);
    assert!(v["properties"]["registry_rules"].is_object());
}

/// `policy suggest` on a history the service recorded: crates/service/tests/runner.rs's two
/// `--remember` runs (`keep_history`), `registry` then `files` — a TestApp session's registry
/// writes (one allowed by a person, two denied), and a file the kernel named by its volume device,
/// allowed for an Editor session, denied twice for a Browser session and once for a session
/// without an app name.
#[test]
fn suggest_proposes_rules_from_a_recorded_approval_history_that_decide_as_people_did() {
    let history =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/approval-history.jsonl");
    let out = agentsh(&["policy", "suggest", history.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.starts_with(
            "15 events; 7 approvals answered by a person and 0 unanswered (6 distinct operations)"
        ),
        "{s}"
    );
    for group in [
        "no app name:",
        "app `Browser`:",
        "app `Editor`:",
        "app `TestApp`:",
    ] {
        assert!(s.contains(group), "{group} in\n{s}");
    }
    let proposal = &s[s
        .find("registry_rules:")
        .unwrap_or_else(|| panic!("no proposal:\n{s}"))..];
    assert_eq!(
        proposal.matches("- name: suggested-").count(),
        6,
        "{proposal}"
    );
    // The proposal is a remembered-rules file the policy that asked accepts.
    let asking = agentsh_policy::DEFAULT_POLICY_YAML
        .replacen(
            "  rules:\n",
            "  rules:\n    - name: ask-other-vendor\n      paths: ['HKCU\\SOFTWARE\\OtherVendor\\*']\n      operations: ['*']\n      action: approve\n",
            1,
        )
        .replacen(
            "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n",
            "file_policy:\n  default_action: deny\n  default_cache_ttl: 30\n  rules:\n    - name: ask-shared\n      paths: ['C:\\Shared\\*']\n      operations: ['*']\n      action: approve\n",
            1,
        );
    let policy = agentsh_policy::Policy::from_str_with(
        &asking,
        "agentsh.yaml",
        Some((proposal, "agentsh.remembered.yaml")),
    )
    .unwrap_or_else(|e| panic!("{e}\n{proposal}"));
    let sid = "S-1-5-21-1-2-3-1001";
    let session =
        |app: &str| agentsh_policy::SessionContext::new(Some(app), None, Some(sid)).expect("ctx");
    for (app, name, value, want) in [
        ("TestApp", "settings", "v", agentsh_policy::Decision::Allow),
        ("TestApp", "settings", "w", agentsh_policy::Decision::Deny),
        ("TestApp", "secrets", "v", agentsh_policy::Decision::Deny),
        // Never answered: still asks.
        ("TestApp", "other", "v", agentsh_policy::Decision::Approve),
        // Answered for TestApp only: another app is still asked.
        ("Editor", "settings", "v", agentsh_policy::Decision::Approve),
    ] {
        let s = session(app);
        let key = format!("\\REGISTRY\\USER\\{sid}\\Software\\OtherVendor\\{name}");
        let mut q = agentsh_policy::RegistryQuery::new(&key, agentsh_policy::Operation::Write, &s);
        q.value = Some(value);
        assert_eq!(
            policy.engine().decide_registry(&q).decision,
            want,
            "{app} {name} {value}"
        );
    }
    // The file, as the kernel names it on the service's volume map: each app as its people
    // answered; an app nobody answered for meets the rule kept from the session without an app
    // name, which applies to every session.
    let mut volumes = agentsh_policy::filepath::VolumeMap::new();
    volumes
        .insert(r"\Device\HarddiskVolume3", "C:")
        .expect("volume");
    for (app, want) in [
        ("Editor", agentsh_policy::Decision::Allow),
        ("Browser", agentsh_policy::Decision::Deny),
        ("Other", agentsh_policy::Decision::Deny),
    ] {
        let s = session(app);
        let q = agentsh_policy::FileQuery::new(
            r"\Device\HarddiskVolume3\Shared\notes.txt",
            agentsh_policy::Operation::Write,
            &s,
            &volumes,
        );
        assert_eq!(policy.engine().decide_file(&q).decision, want, "{app}");
    }
    let out = agentsh(&["policy", "suggest", "/nonexistent/events.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
