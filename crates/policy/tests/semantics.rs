//! Every evaluation rule of docs/policy.md ("Evaluation"), one test each.

mod support;

use agentsh_policy::filepath::VolumeMap;
use agentsh_policy::load::parse_access;
use agentsh_policy::{
    Decision, FileQuery, Operation, RegistryQuery, Risk, RuleRef, SessionContext,
};
use agentsh_wire::response::CacheTtl;
use support::{SID, policy, reg, session};

const RUN_HKCU: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";

#[test]
fn higher_priority_wins_and_equal_priorities_keep_file_order() {
    let p = policy(
        r#"
registry_rules:
  - { name: low, paths: ['HKCU\SOFTWARE\X\*'], operations: [write], decision: deny }
  - { name: high, paths: ['HKCU\SOFTWARE\X\*'], operations: [write], decision: allow, priority: 5 }
  - { name: tie-first, paths: ['HKCU\SOFTWARE\Y\*'], operations: [write], decision: allow }
  - { name: tie-second, paths: ['HKCU\SOFTWARE\Y\*'], operations: [write], decision: deny }
"#,
    );
    let v = reg(&p, r"HKCU\SOFTWARE\X\a", None, "write", true);
    assert_eq!(
        (v.decision, v.rule.to_string()),
        (Decision::Allow, "high".into())
    );
    for _ in 0..20 {
        let v = reg(&p, r"HKCU\SOFTWARE\Y\a", None, "write", true);
        assert_eq!(v.rule.to_string(), "tie-first");
    }
}

#[test]
fn first_matching_rule_wins_and_operations_filter() {
    let p = policy(
        r#"
registry_rules:
  - { name: reads-only, paths: ['HKCU\SOFTWARE\X\*'], operations: [read], decision: allow }
  - { name: writes, paths: ['HKCU\SOFTWARE\X\*'], operations: [write, create], decision: approve, timeout: 2m }
"#,
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\X\a", None, "QueryValue", true)
            .rule
            .to_string(),
        "reads-only"
    );
    let v = reg(&p, r"HKCU\SOFTWARE\X\a", None, "SetValue", true);
    assert_eq!(
        (v.decision, v.rule.to_string()),
        (Decision::Approve, "writes".into())
    );
    let v = reg(&p, r"HKCU\SOFTWARE\X\a", None, "DeleteKey", true);
    assert_eq!((v.decision, v.rule), (Decision::Deny, RuleRef::Default));
}

#[test]
fn no_match_gives_default_action() {
    let p = policy("registry_policy: { default_action: allow }\n");
    let v = reg(&p, r"HKCU\SOFTWARE\Whatever", None, "write", true);
    assert_eq!((v.decision, v.rule), (Decision::Allow, RuleRef::Default));
}

#[test]
fn catch_all_allow_and_default_allow_never_unlock_a_high_risk_key() {
    let catch_all = policy(
        "registry_rules:\n  - { name: everything, paths: ['*'], operations: ['*'], decision: allow, priority: 1000000 }\n",
    );
    let default_allow = policy("registry_policy: { default_action: allow }\n");
    for p in [&catch_all, &default_allow] {
        for op in [
            "SetValue",
            "CreateKey",
            "DeleteKey",
            "DeleteValue",
            "RenameKey",
        ] {
            let v = reg(p, RUN_HKCU, Some("x"), op, true);
            assert_eq!(v.decision, Decision::Deny, "{op}");
            assert_eq!(v.rule, RuleRef::Builtin("run-keys-hkcu"), "{op}");
            assert_eq!(v.mitre_id(), Some("T1547.001"));
        }
    }
}

#[test]
fn an_override_names_the_entry_it_unlocks_and_only_that_entry() {
    let p = policy(
        r#"
registry_rules:
  - name: installer-may-register-services
    paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*']
    operations: [create, write]
    decision: allow
    overrides: [services]
"#,
    );
    let v = reg(
        &p,
        r"HKLM\SYSTEM\CurrentControlSet\Services\mysvc",
        None,
        "CreateKey",
        true,
    );
    assert_eq!(
        (v.decision, v.rule.to_string()),
        (Decision::Allow, "installer-may-register-services".into())
    );
    // The rule names `services`, not the stricter `security-services` entry.
    let v = reg(
        &p,
        r"HKLM\SYSTEM\CurrentControlSet\Services\WinDefend\x",
        None,
        "CreateKey",
        true,
    );
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Deny, RuleRef::Builtin("security-services"))
    );
}

#[test]
fn disabling_an_entry_by_id_removes_it() {
    let p = policy(
        "registry_policy: { default_action: allow }\nhigh_risk: { disable: [run-keys-hkcu] }\n",
    );
    let v = reg(&p, RUN_HKCU, Some("x"), "SetValue", true);
    assert_eq!(
        (v.decision, v.rule, v.high_risk),
        (Decision::Allow, RuleRef::Default, None)
    );
}

#[test]
fn catalog_is_a_floor_a_stricter_rule_keeps_its_decision() {
    let p = policy(
        r#"
registry_rules:
  - { name: no-services, paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*'], operations: ['*'], decision: deny }
  - { name: ask-run, paths: ['HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run*'], operations: ['*'], decision: approve }
"#,
    );
    let v = reg(
        &p,
        r"HKLM\SYSTEM\CurrentControlSet\Services\x",
        None,
        "CreateKey",
        true,
    );
    assert_eq!(
        (v.decision, v.rule.to_string()),
        (Decision::Deny, "no-services".into())
    );
    // approve is weaker than the Run key's deny: the catalog decides.
    let v = reg(&p, RUN_HKCU, Some("x"), "SetValue", true);
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Deny, RuleRef::Builtin("run-keys-hkcu"))
    );
}

#[test]
fn where_several_entries_match_the_strictest_wins() {
    let p = policy("registry_policy: { default_action: allow }\n");
    // `policies` (approve) and `windows-defender` (deny) both match.
    let v = reg(
        &p,
        r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Exclusions",
        None,
        "CreateKey",
        true,
    );
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Deny, RuleRef::Builtin("windows-defender"))
    );
    let v = reg(
        &p,
        r"HKLM\SOFTWARE\Policies\Contoso",
        None,
        "CreateKey",
        true,
    );
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Approve, RuleRef::Builtin("policies"))
    );
}

#[test]
fn reads_of_high_risk_keys_are_allowed_and_logged() {
    let p = policy(
        "registry_rules:\n  - { name: reads, paths: ['*'], operations: [read], decision: allow }\n",
    );
    for op in ["QueryValue", "EnumKeys", "EnumValues", "OpenKey"] {
        let v = reg(&p, RUN_HKCU, Some("x"), op, true);
        assert_eq!(v.decision, Decision::Allow, "{op}");
        assert!(v.log, "{op}");
        assert_eq!(v.risk(), Some(Risk::Critical));
    }
}

#[test]
fn unsandboxed_processes_are_never_blocked_but_high_risk_writes_are_logged_and_not_cached() {
    let p = policy("registry_policy: { default_action: deny, default_cache_ttl: 30 }\n");
    let v = reg(
        &p,
        r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
        Some("x"),
        "SetValue",
        false,
    );
    assert_eq!(v.decision, Decision::Allow);
    assert!(v.log);
    assert_eq!(
        (v.mitre_id(), v.mitre_tactic()),
        (Some("T1547.001"), Some("persistence"))
    );
    assert_eq!(v.rule, RuleRef::Builtin("run-keys-hklm"));
    assert_eq!(v.cache_ttl, CacheTtl::None);
    let v = reg(&p, r"HKCU\SOFTWARE\Anything", None, "SetValue", false);
    assert_eq!(
        (v.decision, v.rule, v.log),
        (Decision::Allow, RuleRef::Unsandboxed, false)
    );
}

#[test]
fn cache_ttl_comes_from_the_rule_then_the_policy_and_approvals_are_never_cached() {
    let p = policy(
        r#"
registry_policy:
  default_action: deny
  default_cache_ttl: 30
  rules:
    - { name: own-ttl, paths: ['HKCU\SOFTWARE\A\*'], operations: ['*'], action: allow, cache_ttl: 60 }
    - { name: no-cache, paths: ['HKCU\SOFTWARE\B\*'], operations: ['*'], action: allow, cache_ttl: 0 }
    - { name: inherit, paths: ['HKCU\SOFTWARE\C\*'], operations: ['*'], action: allow }
    - { name: ask, paths: ['HKCU\SOFTWARE\D\*'], operations: ['*'], action: approve, cache_ttl: 60 }
"#,
    );
    let ttl = |k: &str| reg(&p, k, None, "write", true).cache_ttl;
    assert_eq!(ttl(r"HKCU\SOFTWARE\A\x"), CacheTtl::Seconds(60));
    assert_eq!(ttl(r"HKCU\SOFTWARE\B\x"), CacheTtl::None, "cache_ttl: 0");
    assert_eq!(ttl(r"HKCU\SOFTWARE\C\x"), CacheTtl::Seconds(30));
    assert_eq!(ttl(r"HKCU\SOFTWARE\D\x"), CacheTtl::None, "approvals");
    // No TTL anywhere: the driver's configured CacheDefaultTTLMs (the wire's sentinel).
    let none = policy("registry_policy: { default_action: allow }\n");
    assert_eq!(
        reg(&none, r"HKCU\SOFTWARE\A", None, "write", true).cache_ttl,
        CacheTtl::DriverDefault
    );
    // `default_cache_ttl: 0` turns caching off for the rules that name no TTL of their own.
    let off = policy(
        r#"
registry_policy:
  default_action: allow
  default_cache_ttl: 0
  rules:
    - { name: own, paths: ['HKCU\SOFTWARE\A\*'], operations: ['*'], action: allow, cache_ttl: 5 }
"#,
    );
    assert_eq!(
        reg(&off, r"HKCU\SOFTWARE\B", None, "write", true).cache_ttl,
        CacheTtl::None
    );
    assert_eq!(
        reg(&off, r"HKCU\SOFTWARE\A\x", None, "write", true).cache_ttl,
        CacheTtl::Seconds(5)
    );
    // An approval is never cached, whatever the TTLs say.
    let ask = policy("registry_policy: { default_action: approve, default_cache_ttl: 60 }\n");
    assert_eq!(
        reg(&ask, r"HKCU\SOFTWARE\A", None, "write", true).cache_ttl,
        CacheTtl::None
    );
}

#[test]
fn notify_and_log_flags() {
    let p = policy(
        r#"
registry_policy:
  default_action: deny
  notify_on_deny: true
  log_all: false
  rules:
    - { name: quiet-allow, paths: ['HKCU\SOFTWARE\A\*'], operations: ['*'], action: allow }
    - { name: loud-allow, paths: ['HKCU\SOFTWARE\B\*'], operations: ['*'], action: allow, notify: true }
"#,
    );
    let v = reg(&p, r"HKCU\SOFTWARE\A\x", None, "write", true);
    assert_eq!((v.notify, v.log), (false, false));
    let v = reg(&p, r"HKCU\SOFTWARE\B\x", None, "write", true);
    assert_eq!((v.notify, v.log), (true, false));
    // A denial notifies per `notify_on_deny`; the notification is its record, so `log` stays
    // for `log_all`, catalog locations and approvals.
    let v = reg(&p, r"HKCU\SOFTWARE\Z", None, "write", true);
    assert_eq!((v.decision, v.notify, v.log), (Decision::Deny, true, false));
    let quiet =
        policy("registry_policy: { default_action: deny, notify_on_deny: false, log_all: true }\n");
    let v = reg(&quiet, r"HKCU\SOFTWARE\Z", None, "write", true);
    assert_eq!((v.notify, v.log), (false, true));
    let silent = policy("registry_policy: { default_action: deny, notify_on_deny: false }\n");
    let v = reg(&silent, r"HKCU\SOFTWARE\Z", None, "write", true);
    assert_eq!(
        (v.decision, v.notify, v.log),
        (Decision::Deny, false, false)
    );
    // A rule's own `notify: false` makes a silent deny even with `notify_on_deny: true`; a catalog
    // location is still logged.
    let rule = policy(
        r#"
registry_policy:
  default_action: deny
  notify_on_deny: true
  rules:
    - { name: hush, paths: ['HKCU\SOFTWARE\H\*'], operations: ['*'], action: deny, notify: false }
    - { name: hush-run, paths: ['HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run'], operations: ['*'], action: deny, notify: false }
"#,
    );
    let v = reg(&rule, r"HKCU\SOFTWARE\H\x", None, "write", true);
    assert_eq!(
        (v.decision, v.notify, v.log),
        (Decision::Deny, false, false)
    );
    let v = reg(
        &rule,
        r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
        Some("x"),
        "write",
        true,
    );
    assert_eq!((v.decision, v.notify, v.log), (Decision::Deny, false, true));
    assert_eq!(v.rule.to_string(), "hush-run");
}

#[test]
fn approval_timeout_and_message_come_from_the_rule() {
    let p = policy(
        r#"
approvals: { default_timeout: 45s }
registry_rules:
  - name: approve-service-changes
    paths: ['HKLM\SYSTEM\CurrentControlSet\Services\*']
    operations: [write, create, delete]
    decision: approve
    message: "Agent wants to modify service: {{.Path}} ({{.Operation}} {{.ValueName}} by {{.ProcessName}} {{.ProcessID}})"
    timeout: 2m
  - { name: seconds, paths: ['HKCU\SOFTWARE\S\*'], operations: ['*'], action: approve, timeout_seconds: 7 }
  - { name: default-timeout, paths: ['HKCU\SOFTWARE\T\*'], operations: ['*'], action: approve }
"#,
    );
    let s = session();
    let key = r"HKLM\SYSTEM\CurrentControlSet\Services\svc";
    let mut q = RegistryQuery::new(key, parse_access("SetValue").expect("op"), &s);
    q.value = Some("ImagePath");
    q.process_name = "python.exe";
    q.process_id = 4242;
    let v = p.engine().decide_registry(&q);
    assert_eq!(v.decision, Decision::Approve);
    assert_eq!((v.decision.wire_code(), v.wire_flags()), (2, 0b10));
    assert_eq!(v.approval_timeout_secs, Some(120));
    assert_eq!(
        v.message.as_deref(),
        Some(
            r"Agent wants to modify service: HKLM\SYSTEM\CurrentControlSet\Services\svc (write ImagePath by python.exe 4242)"
        )
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\S\x", None, "write", true).approval_timeout_secs,
        Some(7)
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\T\x", None, "write", true).approval_timeout_secs,
        Some(45)
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\Z", None, "write", true).approval_timeout_secs,
        None
    );
}

#[test]
fn value_names_are_kept_apart_and_the_empty_name_is_the_default_value() {
    let p = policy(
        r#"
registry_policy: { default_action: allow }
registry_rules:
  - name: shell-value
    paths: [{ key: 'HKCU\SOFTWARE\App\Winlogon', value: 'Shell' }]
    operations: [write]
    decision: deny
  - name: default-value
    paths: [{ key: 'HKCU\SOFTWARE\App\Cls', value: '' }]
    operations: [write]
    decision: deny
  - name: backslash-value
    paths: [{ key: 'HKCU\SOFTWARE\App\Paths', value: 'C:\tools\*' }]
    operations: [write]
    decision: deny
"#,
    );
    let d = |k: &str, v: Option<&str>| reg(&p, k, v, "SetValue", true).rule.to_string();
    assert_eq!(
        d(r"HKCU\SOFTWARE\App\Winlogon", Some("shell")),
        "shell-value"
    );
    assert_eq!(
        d(r"HKCU\SOFTWARE\App\Winlogon", Some("Userinit")),
        "default"
    );
    assert_eq!(d(r"HKCU\SOFTWARE\App\Winlogon", None), "default");
    assert_eq!(d(r"HKCU\SOFTWARE\App\Cls", Some("")), "default-value");
    assert_eq!(d(r"HKCU\SOFTWARE\App\Cls", Some("x")), "default");
    assert_eq!(
        d(r"HKCU\SOFTWARE\App\Paths", Some(r"c:\Tools\bin\x.exe")),
        "backslash-value"
    );
    // A value name containing `\` is never read as part of the key.
    assert_eq!(
        d(r"HKCU\SOFTWARE\App", Some(r"Paths\C:\tools\x")),
        "default"
    );
}

#[test]
fn rename_is_checked_at_its_destination_too() {
    let p = policy(
        "registry_rules:\n  - { name: cv, paths: ['HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\*'], operations: ['*'], decision: allow }\n",
    );
    let s = session();
    let mut q = RegistryQuery::new(
        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Staging",
        Operation::Rename,
        &s,
    );
    q.rename_to = Some("Run");
    let v = p.engine().decide_registry(&q);
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Deny, RuleRef::Builtin("run-keys-hkcu"))
    );
    q.rename_to = Some("Harmless");
    assert_eq!(p.engine().decide_registry(&q).decision, Decision::Allow);
}

#[test]
fn deleting_an_ancestor_of_a_high_risk_key_meets_its_floor() {
    let p = policy("registry_policy: { default_action: allow }\n");
    let v = reg(
        &p,
        r"HKCU\Software\Microsoft\Windows\CurrentVersion",
        None,
        "DeleteKey",
        true,
    );
    assert_eq!(v.decision, Decision::Deny);
    // Creating a sibling does not.
    assert_eq!(
        reg(
            &p,
            r"HKCU\Software\Microsoft\Windows\CurrentVersion\Other",
            None,
            "CreateKey",
            true
        )
        .decision,
        Decision::Allow
    );
}

#[test]
fn hive_export_of_sam_is_denied_but_reading_it_is_logged() {
    let p = policy("registry_policy: { default_action: allow }\n");
    let v = reg(&p, r"\REGISTRY\MACHINE\SAM\SAM", None, "SaveKey", true);
    assert_eq!(
        (v.decision, v.rule),
        (Decision::Deny, RuleRef::Builtin("sam-hive"))
    );
    // The SYSTEM hive holds the boot key that decrypts SAM hashes: exporting it copies the
    // LSA and other catalog keys beneath it.
    let v = reg(&p, r"\REGISTRY\MACHINE\SYSTEM", None, "SaveKey", true);
    assert_eq!(v.decision, Decision::Deny);
    let v = reg(&p, r"\REGISTRY\MACHINE\SAM\SAM", None, "QueryValue", true);
    assert_eq!(
        (v.decision, v.log, v.mitre_id()),
        (Decision::Allow, true, Some("T1003.002"))
    );
}

#[test]
fn driver_operations_map_onto_the_five_policy_operations() {
    let table = [
        ("QueryValue", Operation::Read),
        ("SetValue", Operation::Write),
        ("DeleteValue", Operation::Delete),
        ("CreateKey", Operation::Create),
        ("DeleteKey", Operation::Delete),
        ("EnumKeys", Operation::Read),
        ("EnumValues", Operation::Read),
        ("OpenKey", Operation::Read),
        ("RenameKey", Operation::Rename),
        ("SaveKey", Operation::Read),
        ("RestoreKey", Operation::Write),
        ("ReplaceKey", Operation::Write),
        ("LoadKey", Operation::Write),
        ("SetKeySecurity", Operation::Write),
    ];
    for (name, op) in table {
        let a = parse_access(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(a.op, op, "{name}");
        assert_eq!(a.exports_hive, name == "SaveKey", "{name}");
    }
    assert!(parse_access("Frobnicate").is_none());
}

#[test]
fn variables_expand_per_session() {
    let p = policy(
        "registry_rules:\n  - { name: app, paths: ['HKCU\\SOFTWARE\\${APP_NAME}\\*'], operations: ['*'], decision: allow }\n",
    );
    let a = SessionContext::new(Some("AppA"), None, Some(SID)).expect("session");
    let b = SessionContext::new(Some("AppB"), None, Some(SID)).expect("session");
    let key = format!(r"\REGISTRY\USER\{SID}\Software\AppA\settings");
    let qa = RegistryQuery::new(&key, Operation::Write, &a);
    let qb = RegistryQuery::new(&key, Operation::Write, &b);
    assert_eq!(p.engine().decide_registry(&qa).decision, Decision::Allow);
    assert_eq!(p.engine().decide_registry(&qb).decision, Decision::Deny);
    let unset = SessionContext::new(None, None, Some(SID)).expect("session");
    let qu = RegistryQuery::new(r"HKCU\SOFTWARE\x", Operation::Write, &unset);
    assert_eq!(p.engine().decide_registry(&qu).decision, Decision::Deny);
    assert!(SessionContext::new(Some(r"Microsoft\Windows"), None, None).is_err());
    assert!(SessionContext::new(Some("*"), None, None).is_err());
    for shared in ["Microsoft", "classes", "Policies", "WOW6432Node"] {
        assert!(
            SessionContext::new(Some(shared), None, None).is_err(),
            "{shared}"
        );
    }
    for root in [r"C:\", "C:", r"\\server\share", r"\\?\C:\", "relative\\dir"] {
        assert!(
            SessionContext::new(None, Some(root), None).is_err(),
            "{root}"
        );
    }
}

#[test]
fn hkcr_rules_cover_machine_and_per_user_classes() {
    let p = policy(
        "registry_rules:\n  - { name: txt, paths: ['HKCR\\Contoso.Document\\*'], operations: ['*'], decision: allow }\n",
    );
    for key in [
        r"\REGISTRY\MACHINE\SOFTWARE\Classes\Contoso.Document".to_owned(),
        format!(r"\REGISTRY\USER\{SID}_Classes\Contoso.Document\DefaultIcon"),
        r"HKEY_CLASSES_ROOT\CONTOSO.DOCUMENT".to_owned(),
    ] {
        assert_eq!(
            reg(&p, &key, None, "write", true).rule.to_string(),
            "txt",
            "{key}"
        );
    }
}

#[test]
fn file_rules_canonicalize_every_spelling_and_workspace_escapes_fail() {
    let p = agentsh_policy::Policy::embedded_default().expect("default policy");
    let s = session();
    let mut volumes = VolumeMap::new();
    volumes
        .insert(r"\Device\HarddiskVolume3", "C:")
        .expect("volume");
    let decide = |path: &str, op: Operation| {
        p.engine()
            .decide_file(&FileQuery::new(path, op, &s, &volumes))
            .decision
    };
    for path in [
        r"C:\work\src\main.rs",
        r"\??\C:\work\src\main.rs",
        r"\\?\c:\WORK\src\main.rs",
        r"\Device\HarddiskVolume3\work\src\main.rs",
        r"c:/work/src/../lib.rs",
    ] {
        assert_eq!(decide(path, Operation::Write), Decision::Allow, "{path}");
    }
    for path in [
        r"C:\work\..\Windows\evil.dll",
        r"C:\workspace2\x",
        r"\Device\HarddiskVolume4\work\x",
    ] {
        assert_eq!(decide(path, Operation::Write), Decision::Deny, "{path}");
    }
    assert_eq!(
        decide(r"C:\Windows\notepad.exe", Operation::Read),
        Decision::Allow
    );
}

#[test]
fn a_workspace_registered_with_its_device_spelling_matches_what_the_minifilter_sends() {
    // The user reached the workspace through `subst W: C:\work`; the service (another logon
    // session) has no W:, and the minifilter names files by volume.
    let p = agentsh_policy::Policy::embedded_default().expect("default policy");
    let mut volumes = VolumeMap::new();
    volumes
        .insert(r"\Device\HarddiskVolume3", "C:")
        .expect("volume");
    let only_user_spelling =
        SessionContext::new(Some("TestApp"), Some(r"W:\proj"), Some(SID)).expect("session");
    let both = only_user_spelling
        .clone()
        .with_workspace_device(r"\Device\HarddiskVolume3\work\proj", &volumes)
        .expect("device spelling");
    assert_eq!(
        both.workspace(),
        Some(r"W:\proj"),
        "the registered spelling is kept"
    );
    assert_eq!(both.workspace_canonical(), Some(r"C:\WORK\PROJ"));
    let sent = r"\Device\HarddiskVolume3\work\proj\src\main.rs";
    let decide = |s: &SessionContext, path: &str| {
        p.engine()
            .decide_file(&FileQuery::new(path, Operation::Write, s, &volumes))
            .decision
    };
    assert_eq!(decide(&only_user_spelling, sent), Decision::Deny);
    assert_eq!(decide(&both, sent), Decision::Allow);
    assert_eq!(
        decide(&both, r"\Device\HarddiskVolume3\work\other\x"),
        Decision::Deny
    );
    // A volume the service does not know yet: the workspace and its requests stay in device form.
    let unknown = only_user_spelling
        .clone()
        .with_workspace_device(r"\Device\HarddiskVolume9\proj", &volumes)
        .expect("device spelling");
    assert_eq!(
        decide(&unknown, r"\Device\HarddiskVolume9\proj\a.txt"),
        Decision::Allow
    );
    for bad in [r"\Device\HarddiskVolume3", r"C:\", r"relative\dir"] {
        assert!(
            only_user_spelling
                .clone()
                .with_workspace_device(bad, &VolumeMap::new())
                .is_err(),
            "{bad}"
        );
    }
}

#[test]
fn file_renames_and_hard_links_are_decided_at_their_target_too() {
    let p = agentsh_policy::Policy::embedded_default().expect("default policy");
    let s = session();
    let volumes = VolumeMap::new();
    let mut q = FileQuery::new(r"C:\work\payload.dll", Operation::Rename, &s, &volumes);
    q.target = Some(r"C:\work\renamed.dll");
    assert_eq!(p.engine().decide_file(&q).decision, Decision::Allow);
    q.target = Some(r"C:\Windows\System32\payload.dll");
    let v = p.engine().decide_file(&q);
    assert_eq!(
        (v.decision, v.canonical.as_str()),
        (Decision::Deny, r"C:\WORK\PAYLOAD.DLL")
    );
    // A hard link in the workspace to a system file is a write to that file.
    let link = agentsh_wire::FileOperation::HardLink;
    let mut h = FileQuery::new(
        r"C:\Windows\System32\drivers\etc\hosts",
        link.into(),
        &s,
        &volumes,
    );
    h.target = Some(r"C:\work\hosts");
    assert_eq!(p.engine().decide_file(&h).decision, Decision::Deny);
}

#[test]
fn truncated_paths_are_never_written_by_a_sandboxed_process() {
    let p = agentsh_policy::Policy::embedded_default().expect("default policy");
    let s = session();
    let mut q = RegistryQuery::new(r"HKCU\SOFTWARE\TestApp\very\long", Operation::Write, &s);
    assert_eq!(p.engine().decide_registry(&q).decision, Decision::Allow);
    q.truncated = true;
    let v = p.engine().decide_registry(&q);
    assert_eq!(
        (v.decision, v.rule, v.cache_ttl, v.log),
        (Decision::Deny, RuleRef::Truncated, CacheTtl::None, true)
    );
    q.access = Operation::Read.into();
    assert_eq!(p.engine().decide_registry(&q).decision, Decision::Allow);
    q.access = Operation::Write.into();
    q.sandboxed = false;
    let v = p.engine().decide_registry(&q);
    assert_eq!((v.decision, v.log), (Decision::Allow, true));
    let volumes = VolumeMap::new();
    let mut f = FileQuery::new(r"C:\work\deep\file", Operation::Write, &s, &volumes);
    f.truncated = true;
    assert_eq!(p.engine().decide_file(&f).rule, RuleRef::Truncated);
}

#[test]
fn both_syntaxes_in_one_file() {
    let p = policy(
        r#"
registry_policy:
  default_action: allow
  default_cache_ttl: 10
registry_rules:
  - { name: guide-style, paths: ['HKCU\SOFTWARE\G\*'], operations: ['*'], decision: deny, timeout: 30s }
file_rules:
  - { name: files, paths: ['C:\tmp\*'], operations: [write], action: allow, timeout_seconds: 5 }
"#,
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\G\x", None, "write", true)
            .rule
            .to_string(),
        "guide-style"
    );
    assert_eq!(
        reg(&p, r"HKCU\SOFTWARE\H", None, "write", true).cache_ttl,
        CacheTtl::Seconds(10)
    );
}

/// Decides a registry write for a session of `app` with both lookup strategies, which must agree.
fn write_as(p: &agentsh_policy::Policy, app: Option<&str>, key: &str) -> (Decision, String) {
    let s = SessionContext::new(app, Some(r"C:\work"), Some(SID)).expect("valid session");
    let q = RegistryQuery::new(key, Operation::Write, &s);
    let fast = p
        .engine()
        .decide_registry_with(&q, agentsh_policy::Strategy::Indexed);
    let slow = p
        .engine()
        .decide_registry_with(&q, agentsh_policy::Strategy::Linear);
    assert_eq!(fast, slow, "index and linear scan differ for {app:?} {key}");
    (fast.decision, fast.rule.to_string())
}

#[test]
fn a_rule_with_apps_decides_only_for_sessions_of_those_apps_compared_case_insensitively() {
    let p = policy(
        r#"
registry_policy: { default_action: deny }
registry_rules:
  - { name: editor-only, paths: ['HKCU\SOFTWARE\Shared\*'], operations: [write], decision: allow, priority: 10, apps: [Editor, Notes] }
  - { name: everyone, paths: ['HKCU\SOFTWARE\Shared\*'], operations: [write], decision: approve }
"#,
    );
    let key = r"HKCU\SOFTWARE\Shared\x";
    assert_eq!(
        write_as(&p, Some("Editor"), key),
        (Decision::Allow, "editor-only".into())
    );
    assert_eq!(
        write_as(&p, Some("eDiToR"), key),
        (Decision::Allow, "editor-only".into())
    );
    assert_eq!(
        write_as(&p, Some("NOTES"), key),
        (Decision::Allow, "editor-only".into())
    );
    // Another app, an app whose name merely starts the same, and a session without an app name
    // fall through to the next rule.
    for app in [Some("Browser"), Some("Editor2"), Some("Edit"), None] {
        assert_eq!(
            write_as(&p, app, key),
            (Decision::Approve, "everyone".into()),
            "{app:?}"
        );
    }
}

#[test]
fn a_file_rule_with_apps_decides_only_for_its_apps() {
    let p = policy(
        r#"
file_policy: { default_action: allow }
file_rules:
  - { name: no-notes, paths: ['C:\data\*'], operations: [write], decision: deny, apps: [notes] }
"#,
    );
    let volumes = VolumeMap::new();
    for (app, want) in [
        (Some("Notes"), Decision::Deny),
        (Some("Editor"), Decision::Allow),
        (None, Decision::Allow),
    ] {
        let s = SessionContext::new(app, None, None).expect("valid session");
        let q = FileQuery::new(r"C:\data\a.txt", Operation::Write, &s, &volumes);
        let fast = p
            .engine()
            .decide_file_with(&q, agentsh_policy::Strategy::Indexed);
        let slow = p
            .engine()
            .decide_file_with(&q, agentsh_policy::Strategy::Linear);
        assert_eq!(fast, slow);
        assert_eq!(fast.decision, want, "{app:?}");
    }
}

#[test]
fn a_rule_with_apps_is_still_under_the_catalog_floor() {
    let p = policy(&format!(
        r#"
registry_rules:
  - {{ name: run-for-editor, paths: ['{RUN_HKCU}\*'], operations: [write], decision: allow, apps: [Editor] }}
"#
    ));
    let (decision, rule) = write_as(&p, Some("Editor"), &format!(r"{RUN_HKCU}\x"));
    assert_ne!(decision, Decision::Allow, "decided by {rule}");
    assert!(rule.starts_with("builtin:"), "{rule}");
}

#[test]
fn explain_lists_a_rules_apps_and_says_why_it_was_skipped() {
    let p = policy(
        r#"
registry_rules:
  - { name: editor-only, paths: ['HKCU\SOFTWARE\Shared\*'], operations: [write], decision: allow, apps: [Editor] }
"#,
    );
    let explain = |app: Option<&str>| {
        let s = SessionContext::new(app, None, Some(SID)).expect("valid session");
        let q = RegistryQuery::new(r"HKCU\SOFTWARE\Shared\x", Operation::Write, &s);
        p.engine().explain_registry(&q)
    };
    let ex = explain(Some("Browser"));
    let step = ex
        .steps
        .iter()
        .find(|s| s.name == "editor-only")
        .expect("rule step");
    assert_eq!(step.apps.as_deref(), Some(&["Editor".to_owned()][..]));
    assert_eq!(
        step.outcome,
        "skipped: the session's app `Browser` is not in the rule's apps"
    );
    let ex = explain(None);
    let step = ex
        .steps
        .iter()
        .find(|s| s.name == "editor-only")
        .expect("rule step");
    assert_eq!(
        step.outcome,
        "skipped: the session has no app name and the rule names apps"
    );
    let ex = explain(Some("editor"));
    let step = ex
        .steps
        .iter()
        .find(|s| s.name == "editor-only")
        .expect("rule step");
    assert!(step.outcome.starts_with("first match"), "{}", step.outcome);
    assert_eq!(ex.verdict.decision, Decision::Allow);
}

#[test]
fn a_policy_test_with_an_app_exercises_app_conditions() {
    let yaml = r#"
registry_policy: { default_action: deny }
registry_rules:
  - { name: editor-only, paths: ['HKCU\SOFTWARE\Shared\*'], operations: [write], decision: allow, apps: [Editor] }
tests:
  - { name: editor, key: 'HKCU\SOFTWARE\Shared\x', op: write, app: Editor, user_sid: 'S-1-5-21-1-2-3-1001', expect: allow }
  - { name: other, key: 'HKCU\SOFTWARE\Shared\x', op: write, app: Browser, user_sid: 'S-1-5-21-1-2-3-1001', expect: deny }
"#;
    policy(yaml);
    let wrong = yaml.replace("app: Browser", "app: editor");
    let err = agentsh_policy::Policy::from_str(&wrong, "test.yaml").expect_err("test fails");
    assert!(
        err.to_string().contains("expected deny, got allow"),
        "{err}"
    );
}
