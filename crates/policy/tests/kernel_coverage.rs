//! The kernel's compact high-risk set (crates/kcore) must cover every catalog location, in every
//! view the kernel reports, so that the kernel notifies about every high-risk operation of a
//! process outside the sandbox; and the catalog's critical entries must be critical there too,
//! because that is what keeps them closed while the service is unavailable in fail-open mode.

use agentsh_kcore::highrisk::{HighRiskSet, Risk as KernelRisk};
use agentsh_policy::Risk;
use agentsh_policy::catalog::ENTRIES;

const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

/// Every kernel spelling of a table location, with globs filled in with a sample name.
fn kernel_forms(location: &str) -> Vec<String> {
    let key = location
        .split('>')
        .next()
        .unwrap_or(location)
        .replace('*', "Sample");
    let key = key.trim_end_matches("\\Sample").to_string();
    let mut out = Vec::new();
    if let Some(rest) = key.strip_prefix("HKLM\\") {
        for cs in ["ControlSet001", "ControlSet002"] {
            let rest = rest.replace("CurrentControlSet", cs);
            out.push(format!("\\REGISTRY\\MACHINE\\{rest}"));
            if let Some(sw) = rest.strip_prefix("SOFTWARE\\") {
                out.push(format!("\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432Node\\{sw}"));
            }
        }
    } else if let Some(rest) = key.strip_prefix("HKCU\\") {
        out.push(format!("\\REGISTRY\\USER\\{SID}\\{rest}"));
        if let Some(classes) = rest.strip_prefix("SOFTWARE\\Classes\\") {
            out.push(format!("\\REGISTRY\\USER\\{SID}_Classes\\{classes}"));
        }
    } else {
        panic!("unexpected hive in `{location}`");
    }
    out
}

/// The kernel row of one catalog location: (roots, suffix, value), in the kernel's spelling.
fn kernel_row(location: &str) -> (&'static str, String, Option<String>) {
    let (key, value) = match location.split_once('>') {
        Some((k, v)) => (k, Some(v.to_uppercase())),
        None => (location, None),
    };
    let upper = key.to_uppercase();
    let split = |prefix: &str| upper.strip_prefix(prefix).map(str::to_owned);
    let (roots, suffix) = if let Some(r) = split(r"HKLM\SOFTWARE\CLASSES\") {
        ("MACHINE_CLASSES", r)
    } else if let Some(r) = split(r"HKLM\SOFTWARE\") {
        ("MACHINE_SOFTWARE", r)
    } else if let Some(r) = split(r"HKCU\SOFTWARE\CLASSES\") {
        ("USER_CLASSES", r)
    } else if let Some(r) = split(r"HKCU\SOFTWARE\") {
        ("USER_SOFTWARE", r)
    } else if let Some(r) = split(r"HKLM\SYSTEM\CURRENTCONTROLSET\") {
        ("CONTROL_SETS", r)
    } else if let Some(r) = split(r"HKLM\SYSTEM\") {
        ("SYSTEM", r)
    } else if let Some(r) = split(r"HKLM\") {
        ("MACHINE", r)
    } else if let Some(r) = split(r"HKCU\") {
        ("USER", r)
    } else {
        panic!("no kernel root for `{location}`")
    };
    (roots, suffix, value)
}

fn kernel_risk(r: Risk) -> &'static str {
    match r {
        Risk::Critical => "Risk::Critical",
        Risk::High => "Risk::High",
        Risk::Medium => "Risk::Medium",
        Risk::Low => panic!("the kernel has no low risk"),
    }
}

#[test]
fn every_catalog_location_is_in_the_kernels_high_risk_set() {
    let set = HighRiskSet::builtin();
    let mut missing = Vec::new();
    for entry in ENTRIES {
        for location in entry.locations {
            if let Some(value) = location.strip_prefix("*>") {
                // A value name dangerous under any key: the kernel checks the name itself.
                let units: Vec<u16> = value.encode_utf16().collect();
                if set.classify_value(&units).is_none() {
                    missing.push(format!("{}: value `{value}` under any key", entry.id));
                }
                continue;
            }
            // A value-level location is covered for its values (filled in like the key).
            let value: Option<Vec<u16>> = location
                .split_once('>')
                .map(|(_, v)| v.replace('*', "Sample").encode_utf16().collect());
            for key in kernel_forms(location) {
                let units: Vec<u16> = key.encode_utf16().collect();
                let risk = match &value {
                    Some(v) => set.classify_op(&units, v),
                    None => set.classify(&units),
                };
                match risk {
                    None => missing.push(format!("{}: {key}", entry.id)),
                    Some(r) if entry.risk == Risk::Critical && r != KernelRisk::Critical => missing
                        .push(format!(
                            "{}: {key} is critical in the catalog, {r:?} in the kernel",
                            entry.id
                        )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not covered by crates/kcore/src/highrisk.rs:\n{}",
        missing.join("\n")
    );
}

/// The kernel's table, generated from the catalog (value names under any key, `*>NAME`, are the
/// kernel's separate `VALUES` list).
fn generated_table() -> String {
    let mut out = String::from("#[rustfmt::skip]\nconst TABLE: &[Row] = &[\n");
    for e in ENTRIES {
        for location in e.locations.iter().filter(|l| !l.starts_with("*>")) {
            let (roots, suffix, value) = kernel_row(location);
            let value = value.map_or("None".to_owned(), |v| format!("Some({v:?})"));
            out.push_str(&format!(
                "    ({roots}, {suffix:?}, {value}, {}), // {}\n",
                kernel_risk(e.risk),
                e.id
            ));
        }
    }
    out.push_str("];\n");
    out
}

const BEGIN: &str =
    "// BEGIN GENERATED TABLE (crates/policy/tests/kernel_coverage.rs; do not edit by hand)\n";
const END: &str = "// END GENERATED TABLE";

#[test]
fn the_kernels_table_is_generated_from_the_catalog() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kcore/src/highrisk.rs");
    let source = std::fs::read_to_string(&path).expect("highrisk.rs");
    let start = source.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = source.find(END).expect("end marker");
    let generated = generated_table();
    if std::env::var_os("AGENTSH_BLESS").is_some() {
        let updated = format!("{}{generated}{}", &source[..start], &source[end..]);
        std::fs::write(&path, updated).expect("highrisk.rs written");
        return;
    }
    assert!(
        source[start..end] == generated,
        "crates/kcore/src/highrisk.rs is not generated from the catalog; regenerate it with \
         `AGENTSH_BLESS=1 cargo test -p agentsh-policy --test kernel_coverage`"
    );
}

/// A probe key in a location (globs filled in with a sample name).
fn probe_key(location: &str) -> String {
    let key = location.split('>').next().unwrap_or(location);
    let key = key.strip_suffix(r"\*").unwrap_or(key);
    key.replace('*', "Sample")
}

/// The highest risk of the catalog entries a sandboxed write meets (under a policy that allows
/// everything), as `explain` lists them.
fn policy_risk(p: &agentsh_policy::Policy, key: &str, value: Option<&str>) -> Option<Risk> {
    let ctx = agentsh_policy::SessionContext::new(Some("TestApp"), None, Some(SID)).expect("ctx");
    let access = agentsh_policy::load::parse_access(if value.is_some() {
        "SetValue"
    } else {
        "CreateKey"
    })
    .expect("op");
    let mut q = agentsh_policy::RegistryQuery::new(key, access, &ctx);
    q.value = value;
    let ex = p.engine().explain_registry(&q);
    let reported = ex.verdict.risk();
    let max = ex
        .steps
        .iter()
        .filter(|s| s.kind == agentsh_policy::StepKind::Catalog)
        .filter_map(|s| s.name.strip_prefix("builtin:"))
        .filter_map(agentsh_policy::catalog::entry)
        .map(|e| e.risk)
        .max();
    assert_eq!(
        reported.is_some(),
        max.is_some(),
        "{key} > {value:?}: reported and listed entries differ"
    );
    max
}

/// A corpus key in the kernel's form.
fn kernel_spelling(key: &str) -> String {
    let upper = key.to_uppercase();
    if upper.starts_with(r"HKLM\") {
        format!(r"\REGISTRY\MACHINE\{}", &key[5..])
    } else if upper.starts_with(r"HKCU\") {
        format!(r"\REGISTRY\USER\{SID}\{}", &key[5..])
    } else {
        key.to_owned()
    }
}

fn kernel_risk_of(set: &HighRiskSet, key: &str, value: Option<&str>) -> Option<KernelRisk> {
    let k: Vec<u16> = key.encode_utf16().collect();
    match value {
        Some(v) => set.classify_op(&k, &v.encode_utf16().collect::<Vec<u16>>()),
        None => set.classify(&k),
    }
}

fn same_risk(policy: Option<Risk>, kernel: Option<KernelRisk>) -> bool {
    match (policy, kernel) {
        (None, None) => true,
        (Some(p), Some(k)) => match p {
            Risk::Critical => k == KernelRisk::Critical,
            Risk::High => k == KernelRisk::High,
            Risk::Medium | Risk::Low => k == KernelRisk::Medium,
        },
        _ => false,
    }
}

/// The kernel and the policy engine classify the same operations as high-risk, value names
/// included: every location in every kernel view, a harmless value beside every value-level
/// location, a subkey below it, and every case of the corpus.
#[test]
fn the_kernel_agrees_with_the_catalog_at_value_level() {
    let set = HighRiskSet::builtin();
    let p = agentsh_policy::Policy::from_str(
        "registry_policy:\n  default_action: allow\n",
        "allow.yaml",
    )
    .expect("policy");
    let mut probes: Vec<(String, Option<String>)> = Vec::new();
    for e in ENTRIES {
        for location in e.locations.iter().filter(|l| !l.starts_with("*>")) {
            let key = probe_key(location);
            let value = location
                .split_once('>')
                .map(|(_, v)| v.replace('*', "Sample"));
            for k in kernel_forms(&key) {
                probes.push((k.clone(), value.clone()));
                probes.push((k.clone(), Some("AgentshProbe".to_owned())));
                probes.push((
                    format!(r"{k}\AgentshSubkey"),
                    Some("AgentshProbe".to_owned()),
                ));
                if let Some(v) = &value {
                    probes.push((format!(r"{k}\AgentshSubkey"), Some(v.clone())));
                }
            }
        }
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for file in std::fs::read_dir(&corpus).expect("corpus directory") {
        let path = file.expect("entry").path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("corpus file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("corpus line");
            let key = kernel_spelling(case["key"].as_str().expect("key"));
            probes.push((key, Some(case["value"].as_str().unwrap_or("").to_owned())));
        }
    }
    let mut disagree = Vec::new();
    for (key, value) in &probes {
        // An empty value name is a key operation to the kernel, which flags every value-level
        // location of the key for it (it cannot tell the default value from none).
        if value.as_deref() == Some("") {
            continue;
        }
        let policy = policy_risk(&p, key, value.as_deref());
        let kernel = kernel_risk_of(&set, key, value.as_deref());
        if !same_risk(policy, kernel) {
            disagree.push(format!(
                "{key} > {value:?}: policy {policy:?}, kernel {kernel:?}"
            ));
        }
    }
    assert!(probes.len() > 2_000, "only {} probes", probes.len());
    assert!(
        disagree.is_empty(),
        "{} of {} probes disagree:\n{}",
        disagree.len(),
        probes.len(),
        disagree.join("\n")
    );
}

#[test]
fn the_kernel_flags_a_key_operation_on_a_key_with_value_level_locations() {
    let set = HighRiskSet::builtin();
    let env: Vec<u16> = format!(r"\REGISTRY\USER\{SID}\Environment")
        .encode_utf16()
        .collect();
    let name = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    assert!(
        set.classify_op(&env, &name("UserInitMprLogonScript"))
            .is_some()
    );
    assert!(set.classify_op(&env, &name("MY_TOOL_HOME")).is_none());
    assert!(set.classify_op(&env, &[]).is_some(), "deleting the key");
    assert!(
        set.classify(&env).is_none(),
        "the key itself is not high-risk"
    );
}

/// Regression: an exact-key rule naming the real `HKCR\*` key with the `[*]` escape was filed in
/// the compiled index under its escaped text, so the engine never consulted it (while `explain`,
/// which scans linearly, showed it matching): a deny rule was silently bypassed.
#[test]
fn an_escaped_star_rule_is_enforced_by_the_compiled_engine() {
    let yaml = "registry_policy:\n  default_action: allow\n  rules:\n    - name: block-star-shell\n      paths: ['HKCR\\[*]\\shell']\n      operations: [write]\n      action: deny\n";
    let policy = agentsh_policy::Policy::from_str(yaml, "star.yaml").expect("loads");
    let ctx = agentsh_policy::SessionContext::new(Some("TestApp"), None, Some(SID)).expect("valid");
    for key in [
        r"HKLM\SOFTWARE\Classes\*\shell",
        &format!(r"\REGISTRY\USER\{SID}_Classes\*\shell"),
    ] {
        let q = agentsh_policy::RegistryQuery::new(key, agentsh_policy::Operation::Write, &ctx);
        let v = policy.engine().decide_registry(&q);
        assert_eq!(
            v.decision,
            agentsh_policy::Decision::Deny,
            "{key}: {:?}",
            v.rule
        );
        assert_eq!(v.rule.to_string(), "block-star-shell");
    }
}
