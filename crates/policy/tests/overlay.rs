//! The remembered-rules overlay: checked like the policy, merged after it, listed by `explain`
//! with its file, and refused when a rule would lower a critical catalog entry without naming it
//! in `overrides:`.

use agentsh_policy::overlay::overlay_path;
use agentsh_policy::{
    Decision, Operation, Policy, RegistryQuery, SessionContext, StepKind, load::parse_overlay,
};

const POLICY: &str = r#"
registry_policy:
  default_action: approve
  rules:
    - name: vendor-approve
      paths: ['HKCU\Software\Vendor\**']
      operations: [write]
      decision: approve
"#;

const OVERLAY: &str = r#"
registry_rules:
  - name: remembered-1
    paths: ['HKCU\Software\Vendor\Tool\Settings']
    operations: [write]
    decision: allow
    priority: 10
"#;

fn decide(policy: &Policy, key: &str, app: Option<&str>) -> (Decision, String) {
    let session = SessionContext::new(app, None, None).expect("session");
    let mut q = RegistryQuery::new(key, Operation::Write, &session);
    q.value = Some("Theme");
    let v = policy.engine().decide_registry(&q);
    (v.decision, v.rule.to_string())
}

#[test]
fn an_overlay_rule_decides_and_explain_names_its_file() {
    let p = Policy::from_str_with(
        POLICY,
        "agentsh.yaml",
        Some((OVERLAY, "agentsh.remembered.yaml")),
    )
    .expect("policy with overlay loads");
    let (d, rule) = decide(&p, r"HKCU\Software\Vendor\Tool\Settings", None);
    assert_eq!((d, rule.as_str()), (Decision::Allow, "remembered-1"));
    // A sibling key is still the policy's.
    let (d, rule) = decide(&p, r"HKCU\Software\Vendor\Tool\Other", None);
    assert_eq!((d, rule.as_str()), (Decision::Approve, "vendor-approve"));

    let session = SessionContext::new(None, None, None).expect("session");
    let q = RegistryQuery::new(
        r"HKCU\Software\Vendor\Tool\Settings",
        Operation::Write,
        &session,
    );
    let ex = p.engine().explain_registry(&q);
    let remembered = ex
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Rule && s.name == "remembered-1")
        .expect("the remembered rule is listed");
    assert_eq!(
        remembered.source.as_deref(),
        Some("agentsh.remembered.yaml")
    );
    let own = ex
        .steps
        .iter()
        .find(|s| s.name == "vendor-approve")
        .expect("the policy's rule is listed");
    assert_eq!(own.source, None);
}

#[test]
fn an_overlay_rule_scoped_to_an_app_applies_to_that_app_only() {
    let overlay = r#"
registry_rules:
  - name: remembered-app
    paths: ['HKCU\Software\Vendor\${APP_NAME}\Settings']
    operations: [write]
    decision: allow
    priority: 10
"#;
    let p = Policy::from_str_with(POLICY, "p.yaml", Some((overlay, "o.yaml"))).expect("loads");
    let key = r"HKCU\Software\Vendor\build\Settings";
    assert_eq!(decide(&p, key, Some("build")).0, Decision::Allow);
    assert_eq!(decide(&p, key, Some("other")).0, Decision::Approve);
}

#[test]
fn an_overlay_rule_that_lowers_a_critical_entry_is_refused_unless_it_overrides_it() {
    let lowering = r#"
registry_rules:
  - name: remembered-run
    paths: ['HKCU\Software\Microsoft\Windows\CurrentVersion\Run']
    operations: [write]
    decision: allow
"#;
    let err = Policy::from_str_with(POLICY, "p.yaml", Some((lowering, "o.yaml")))
        .expect_err("lowering a critical entry is refused");
    let text = err.to_string();
    assert!(text.starts_with("o.yaml:"), "{text}");
    assert!(text.contains("rule `remembered-run`"), "{text}");
    assert!(text.contains("run-keys-hkcu"), "{text}");
    assert!(text.contains("overrides"), "{text}");

    // Approve is as weak as allow against a deny floor; a glob reaching the key is caught too.
    let glob = lowering
        .replace(r"CurrentVersion\Run']", r"CurrentVersion\Run*']")
        .replace("decision: allow", "decision: approve");
    assert!(Policy::from_str_with(POLICY, "p.yaml", Some((&glob, "o.yaml"))).is_err());

    // Deny lowers nothing.
    let deny = lowering.replace("decision: allow", "decision: deny");
    Policy::from_str_with(POLICY, "p.yaml", Some((&deny, "o.yaml"))).expect("a deny is accepted");

    // Naming the entry is the explicit decision to lower it.
    let explicit = format!("{lowering}    overrides: [run-keys-hkcu]\n");
    let p = Policy::from_str_with(POLICY, "p.yaml", Some((&explicit, "o.yaml")))
        .expect("an explicit override is accepted");
    let (d, rule) = decide(
        &p,
        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
        None,
    );
    assert_eq!((d, rule.as_str()), (Decision::Allow, "remembered-run"));
}

#[test]
fn overlay_problems_are_reported_with_file_and_line() {
    // Only rules belong in an overlay.
    let err = parse_overlay("approvals:\n  default_timeout: 5s\n", "o.yaml").expect_err("refused");
    assert!(err.to_string().contains("o.yaml:1:1"), "{err}");
    assert!(
        err.to_string().contains("unknown field `approvals`"),
        "{err}"
    );
    // Rules are checked like the policy's.
    let bad = "registry_rules:\n  - name: r\n    paths: ['HKCU\\x']\n    operations: [wirte]\n    decision: allow\n";
    let err = parse_overlay(bad, "o.yaml").expect_err("refused");
    assert!(
        err.to_string().contains("unknown operation `wirte`"),
        "{err}"
    );
    // A name the policy already uses.
    let clash = OVERLAY.replace("remembered-1", "vendor-approve");
    let err = Policy::from_str_with(POLICY, "p.yaml", Some((&clash, "o.yaml"))).expect_err("clash");
    assert!(
        err.to_string().contains("already in the policy file"),
        "{err}"
    );
    // An empty overlay is no rules.
    let p = Policy::from_str_with(POLICY, "p.yaml", Some(("", "o.yaml"))).expect("empty overlay");
    assert_eq!(p.document().registry.rules.len(), 1);
}

#[test]
fn from_path_reads_the_overlay_next_to_the_policy() {
    let dir = std::env::temp_dir().join(format!("agentsh-overlay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("agentsh.yaml");
    std::fs::write(&policy, POLICY).expect("policy written");
    let overlay = overlay_path(&policy);
    assert_eq!(overlay, dir.join("agentsh.remembered.yaml"));
    let _ = std::fs::remove_file(&overlay);
    let p = Policy::from_path(&policy).expect("loads without an overlay");
    assert_eq!(p.document().registry.rules.len(), 1);
    std::fs::write(&overlay, OVERLAY).expect("overlay written");
    let p = Policy::from_path(&policy).expect("loads with the overlay");
    let rules = &p.document().registry.rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[1].source.as_deref(),
        Some(overlay.display().to_string().as_str())
    );
    std::fs::write(&overlay, "registry_rules: 3\n").expect("overlay written");
    let err = Policy::from_path(&policy).expect_err("a broken overlay is refused");
    assert!(err.to_string().contains("agentsh.remembered.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn remember_writes_a_valid_exact_rule_that_decides_the_same_operation() {
    use agentsh_policy::overlay::{Remembered, remember};
    let dir = std::env::temp_dir().join(format!("agentsh-remember-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("agentsh.yaml");
    std::fs::write(&policy, POLICY).expect("policy written");
    let _ = std::fs::remove_file(overlay_path(&policy));
    // A key with wildcard characters in its name is remembered as exactly that key.
    let key = r"HKCU\Software\Vendor\Odd*Name?[x]";
    let r = Remembered {
        registry: true,
        path: key,
        app: None,
        value: Some("it's"),
        operation: Operation::Write,
        decision: Decision::Allow,
        note: "approval 3 of session s-1 (app TestApp)",
    };
    assert_eq!(remember(&policy, &r).expect("remembered"), "remembered-1");
    let deny = Remembered {
        path: r"HKCU\Software\Vendor\Other",
        value: None,
        decision: Decision::Deny,
        ..r.clone()
    };
    assert_eq!(
        remember(&policy, &deny).expect("remembered"),
        "remembered-2"
    );
    let file = Remembered {
        registry: false,
        path: r"C:\work\out.txt",
        app: None,
        value: None,
        operation: Operation::Create,
        decision: Decision::Allow,
        note: "approval 4",
    };
    assert_eq!(
        remember(&policy, &file).expect("remembered"),
        "remembered-3"
    );

    let p = Policy::from_path(&policy).expect("the written overlay loads");
    let session = SessionContext::new(None, None, None).expect("session");
    let mut q = RegistryQuery::new(key, Operation::Write, &session);
    q.value = Some("it's");
    let v = p.engine().decide_registry(&q);
    assert_eq!(
        (v.decision, v.rule.to_string().as_str()),
        (Decision::Allow, "remembered-1")
    );
    // Exact: another value, or a key the wildcard characters would have matched, is not covered.
    q.value = Some("other");
    assert_eq!(p.engine().decide_registry(&q).decision, Decision::Approve);
    let near = RegistryQuery::new(
        r"HKCU\Software\Vendor\OddXNameY[x]",
        Operation::Write,
        &session,
    );
    assert_eq!(
        p.engine().decide_registry(&near).decision,
        Decision::Approve
    );
    let q = RegistryQuery::new(r"HKCU\Software\Vendor\Other", Operation::Write, &session);
    assert_eq!(
        p.engine().decide_registry(&q).rule.to_string(),
        "remembered-2"
    );
    assert_eq!(p.document().files.rules[0].name, "remembered-3");
    assert_eq!(p.document().files.rules[0].apps, None);

    // A rule lowering a critical entry is refused and the file is left as it was.
    let before = std::fs::read_to_string(overlay_path(&policy)).expect("overlay");
    let run = Remembered {
        path: r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
        value: Some("updater"),
        ..r.clone()
    };
    let err = remember(&policy, &run).expect_err("refused").to_string();
    assert!(
        err.contains("run-keys-hkcu") && err.contains("overrides"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(overlay_path(&policy)).expect("overlay"),
        before
    );
    // A name that cannot be written exactly is refused with the reason.
    let var = Remembered {
        path: r"HKCU\Software\${APP_NAME}",
        ..r.clone()
    };
    assert!(
        remember(&policy, &var)
            .expect_err("refused")
            .to_string()
            .contains("${")
    );
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn remember_for_an_app_writes_apps_and_files_in_the_file_rules_form() {
    use agentsh_policy::FileQuery;
    use agentsh_policy::filepath::VolumeMap;
    use agentsh_policy::overlay::{Remembered, remember};
    let dir = tempfile_dir("app");
    let policy = dir.join("agentsh.yaml");
    std::fs::write(&policy, POLICY).expect("policy written");
    let key = r"HKCU\Software\Vendor\Shared";
    let r = Remembered {
        registry: true,
        path: key,
        app: Some("Build Tool"),
        value: None,
        operation: Operation::Write,
        decision: Decision::Allow,
        note: "approval 1",
    };
    assert_eq!(remember(&policy, &r).expect("remembered"), "remembered-1");
    // A file as the engine decided it (drive letter, `..` resolved), one on a volume without a
    // drive letter (device form) and one on a share.
    let files = [
        r"C:\Work\sub\..\Out.txt",
        r"\Device\HarddiskVolume9\data\x.bin",
        r"\\server\share\dir\y.txt",
    ];
    for (i, f) in files.iter().enumerate() {
        let file = Remembered {
            registry: false,
            path: f,
            app: Some("it's"),
            value: None,
            operation: Operation::Create,
            decision: Decision::Deny,
            note: "approval 2",
        };
        assert_eq!(
            remember(&policy, &file).expect("remembered"),
            format!("remembered-{}", i + 2)
        );
    }
    let text = std::fs::read_to_string(overlay_path(&policy)).expect("overlay");
    assert!(text.contains("    apps: ['Build Tool']\n"), "{text}");
    assert!(text.contains(r"paths: ['C:\WORK\OUT.TXT']"), "{text}");
    assert!(
        text.contains(r"paths: ['\DEVICE\HARDDISKVOLUME9\DATA\X.BIN']"),
        "{text}"
    );
    assert!(
        text.contains(r"paths: ['\\SERVER\SHARE\DIR\Y.TXT']"),
        "{text}"
    );
    assert!(text.contains("    apps: ['it''s']\n"), "{text}");

    let p = Policy::from_path(&policy).expect("the written overlay loads");
    assert_eq!(decide(&p, key, Some("build tool")).0, Decision::Allow);
    assert_eq!(decide(&p, key, Some("Other")).0, Decision::Approve);
    assert_eq!(decide(&p, key, None).0, Decision::Approve);
    let mut volumes = VolumeMap::new();
    volumes
        .insert(r"\Device\HarddiskVolume3", "C:")
        .expect("volume");
    // The kernel's device paths meet the rules: the remembered ones for their app only.
    let paths = [
        r"\Device\HarddiskVolume3\work\out.txt",
        r"\Device\HarddiskVolume9\Data\X.bin",
        r"\Device\Mup\server\share\dir\y.txt",
    ];
    for (app, remembered) in [
        (Some("IT'S"), true),
        (Some("Build Tool"), false),
        (None, false),
    ] {
        let s = SessionContext::new(app, None, None).expect("session");
        for (i, path) in paths.iter().enumerate() {
            let q = FileQuery::new(path, Operation::Create, &s, &volumes);
            let want = if remembered {
                format!("remembered-{}", i + 2)
            } else {
                "default".to_owned()
            };
            assert_eq!(
                p.engine().decide_file(&q).rule.to_string(),
                want,
                "{app:?} {path}"
            );
        }
    }
    // An app name no session could register is refused.
    let bad = Remembered {
        app: Some("Microsoft"),
        ..r.clone()
    };
    assert!(
        remember(&policy, &bad)
            .expect_err("refused")
            .to_string()
            .contains("app")
    );
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentsh-remember-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
