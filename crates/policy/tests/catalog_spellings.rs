//! Every catalog entry, in every spelling of its key (kernel form, long and short roots, any case,
//! doubled and trailing backslashes, WOW6432Node, numbered control sets, per-user classes hive,
//! HKCR, another user's hive): a sandboxed write meets the entry, an unsandboxed one is logged.

mod support;

use agentsh_policy::catalog::{ENTRIES, Entry};
use agentsh_policy::load::parse_access;
use agentsh_policy::{Decision, Policy, RegistryQuery, SessionContext, StepKind};
use support::SID;

const OTHER_SID: &str = "S-1-5-21-9-9-9-1002";

/// A concrete key/value a location names (`*` becomes `Probe`).
fn concrete(location: &str) -> (String, Option<String>) {
    let (key, value) = match location.split_once('>') {
        Some((k, v)) => (k, Some(v)),
        None => (location, None),
    };
    let fill = |s: &str| s.replace('*', "Probe");
    (fill(key), value.map(fill))
}

fn swap_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Every spelling of a user-form key, with whether it names the session user's hive.
fn spellings(key: &str) -> Vec<String> {
    let (root, rest) = key.split_once('\\').expect("rooted location");
    let mut out = Vec::new();
    let mut add = |s: String| {
        out.push(s.clone());
        out.push(swap_case(&s));
        out.push(format!("{}\\\\", s.replace('\\', "\\\\")));
    };
    match root {
        "HKLM" => {
            add(format!(r"HKLM\{rest}"));
            add(format!(r"HKEY_LOCAL_MACHINE\{rest}"));
            add(format!(r"\REGISTRY\MACHINE\{rest}"));
            if let Some(r) = rest.strip_prefix(r"SYSTEM\CurrentControlSet\") {
                add(format!(r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\{r}"));
                add(format!(r"\REGISTRY\MACHINE\SYSTEM\ControlSet002\{r}"));
            }
            if let Some(r) = rest.strip_prefix(r"SOFTWARE\Classes\") {
                add(format!(r"HKCR\{r}"));
                add(format!(r"HKEY_CLASSES_ROOT\{r}"));
                add(format!(
                    r"\REGISTRY\MACHINE\SOFTWARE\Classes\Wow6432Node\{r}"
                ));
            } else if let Some(r) = rest.strip_prefix(r"SOFTWARE\") {
                add(format!(r"\REGISTRY\MACHINE\SOFTWARE\WOW6432Node\{r}"));
            }
        }
        "HKCU" => {
            add(format!(r"HKCU\{rest}"));
            add(format!(r"HKEY_CURRENT_USER\{rest}"));
            add(format!(r"\REGISTRY\USER\{SID}\{rest}"));
            add(format!(r"HKU\{SID}\{rest}"));
            add(format!(r"\REGISTRY\USER\{OTHER_SID}\{rest}"));
            if let Some(r) = rest.strip_prefix(r"SOFTWARE\Classes\") {
                add(format!(r"\REGISTRY\USER\{SID}_Classes\{r}"));
                add(format!(r"\REGISTRY\USER\{OTHER_SID}_Classes\{r}"));
            } else if let Some(r) = rest.strip_prefix(r"SOFTWARE\") {
                add(format!(r"\REGISTRY\USER\{SID}\Software\Wow6432Node\{r}"));
            }
        }
        other => panic!("unexpected root {other}"),
    }
    out
}

fn check(p: &Policy, e: &Entry, key: &str, value: Option<&str>, s: &SessionContext) {
    let access = parse_access(if value.is_some() {
        "SetValue"
    } else {
        "CreateKey"
    })
    .expect("op");
    let mut q = RegistryQuery::new(key, access, s);
    q.value = value;
    let ex = p.engine().explain_registry(&q);
    let id = format!("builtin:{}", e.id);
    assert!(
        ex.steps
            .iter()
            .any(|st| st.kind == StepKind::Catalog && st.name == id),
        "{id} not matched by {key} {value:?} (canonical {})",
        ex.canonical
    );
    let v = &ex.verdict;
    match e.action.floor() {
        Some(floor) => {
            assert!(
                v.decision.strictness() >= floor.strictness(),
                "{id}: {key} gave {}",
                v.decision
            );
            assert_ne!(v.decision, Decision::Allow, "{id}: {key}");
        }
        // Log-only: the allow-everything rule decides; the operation is still reported.
        None => assert_eq!(v.decision, Decision::Allow, "{id}: {key}"),
    }
    assert!(v.high_risk.is_some() && v.log, "{id}: {key}");
    q.sandboxed = false;
    let u = p.engine().decide_registry(&q);
    assert_eq!(u.decision, Decision::Allow, "{id}: unsandboxed {key}");
    assert!(
        u.log && u.high_risk.is_some(),
        "{id}: unsandboxed {key} not logged"
    );
}

#[test]
fn every_catalog_entry_matches_every_spelling_of_every_location() {
    // The broadest possible allow: only the catalog can stand in the way.
    let p = support::policy(
        "registry_rules:\n  - { name: all, paths: ['*'], operations: ['*'], decision: allow, priority: 1000000 }\n",
    );
    let s = support::session();
    let mut checked = 0;
    for e in ENTRIES {
        for loc in e.locations {
            let (key, value) = concrete(loc);
            // A location rooted in a wildcard (`*>SymbolicLinkValue`) applies under every hive,
            // the application's own key included.
            let keys = if key.starts_with("Probe") {
                vec![
                    r"HKCU\SOFTWARE\TestApp\Link".to_owned(),
                    r"HKLM\SOFTWARE\Probe".to_owned(),
                ]
            } else {
                vec![key]
            };
            for spelling in keys.iter().flat_map(|k| spellings(k)) {
                check(&p, e, &spelling, value.as_deref(), &s);
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000, "only {checked} spellings checked");
}

#[test]
fn every_row_of_both_specification_tables_is_in_the_catalog() {
    // (full path written out, risk, technique, default action) per table row.
    let rows = [
        (
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunOnce",
            "critical",
            "T1547.001",
            "deny",
        ),
        (
            r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
            "critical",
            "T1547.001",
            "deny",
        ),
        (
            r"HKLM\SYSTEM\CurrentControlSet\Services\NewService",
            "critical",
            "T1543.003",
            "approve",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon",
            "critical",
            "T1547.004",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\x.exe",
            "critical",
            "T1546.012",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Classes\CLSID\{1}\InprocServer32",
            "high",
            "T1546.015",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Classes\txtfile\shell\open\command",
            "high",
            "T1546.001",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\Windows Defender\Exclusions",
            "critical",
            "T1562.001",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender",
            "critical",
            "T1562.001",
            "deny",
        ),
        (
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa",
            "critical",
            "T1003",
            "deny",
        ),
        (
            r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\X",
            "critical",
            "T1547.005",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Policies\Contoso",
            "high",
            "T1112",
            "approve",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\Cryptography\OID\EncodingType 0",
            "medium",
            "T1553.003",
            "deny",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\Root",
            "medium",
            "T1553.004",
            "deny",
        ),
    ];
    let p = Policy::embedded_default().expect("default policy");
    for (key, risk, technique, action) in rows {
        let v = support::reg(&p, key, None, "CreateKey", true);
        assert_eq!(v.risk().map(|r| r.name()), Some(risk), "{key}");
        assert_eq!(v.mitre_id(), Some(technique), "{key}");
        assert_eq!(v.decision.name(), action, "{key}");
    }
}
