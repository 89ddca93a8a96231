//! The compiled index and the linear scan give identical verdicts on every benchmark query, for
//! the default policy and every generated size.

use agentsh_policy::load::parse_access;
use agentsh_policy::workload::{self, APP, SID};
use agentsh_policy::{Policy, RegistryQuery, SessionContext, Strategy};

fn check(policy: &Policy, n: usize) {
    let session =
        SessionContext::new(Some(APP), Some(r"C:\work"), Some(SID)).expect("valid session");
    check_as(policy, n, &session);
}

fn check_as(policy: &Policy, n: usize, session: &SessionContext) {
    let mut decisions = std::collections::HashSet::new();
    for sq in workload::queries(n) {
        let access = parse_access(sq.op).expect("known operation");
        // Hive exports reach beneath the key too; compare them on every query as well.
        let export = parse_access("SaveKey").expect("known operation");
        for (sandboxed, access) in [(true, access), (false, access), (true, export)] {
            let mut q = RegistryQuery::new(&sq.key, access, session);
            q.value = sq.value.as_deref();
            q.rename_to = (sq.op == "RenameKey").then_some("Run");
            q.sandboxed = sandboxed;
            let fast = policy.engine().decide_registry_with(&q, Strategy::Indexed);
            let slow = policy.engine().decide_registry_with(&q, Strategy::Linear);
            assert_eq!(fast, slow, "n={n} query {sq:?} sandboxed={sandboxed}");
            decisions.insert((fast.decision, fast.rule.to_string()));
        }
    }
    // The workload must exercise several outcomes, or the comparison proves little.
    assert!(decisions.len() >= 4, "n={n}: only {decisions:?}");
}

#[test]
fn index_and_linear_scan_agree_on_every_benchmark_query() {
    let default = Policy::embedded_default().expect("default policy loads");
    check(&default, 64);
    for n in [10, 100, 1_000, 10_000] {
        let p = Policy::from_str(&workload::policy_yaml(n), "<generated>")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.document().registry.rules.len(), n + 2);
        check(&p, n);
    }
}

/// Rules with `apps:` (a third of the generated rules, for the benchmark's app or another) are
/// skipped the same way by the index and the linear scan, for a session of either app and one
/// without an app name.
#[test]
fn index_and_linear_scan_agree_on_rules_with_apps() {
    for n in [10, 100, 1_000] {
        let mut yaml = String::new();
        for line in workload::policy_yaml(n).lines() {
            yaml.push_str(line);
            yaml.push('\n');
            if let Some(i) = line
                .strip_prefix("  - name: gen-")
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| i % 3 == 0)
            {
                let app = if i % 2 == 0 { APP } else { "Other" };
                yaml.push_str(&format!("    apps: ['{app}', 'Third']\n"));
            }
        }
        let p = Policy::from_str(&yaml, "<generated>").unwrap_or_else(|e| panic!("{e}"));
        let with_apps = p
            .document()
            .registry
            .rules
            .iter()
            .filter(|r| r.apps.is_some())
            .count();
        assert_eq!(with_apps, n.div_ceil(3), "n={n}");
        for app in [Some(APP), Some("other"), None] {
            let session = SessionContext::new(app, Some(r"C:\work"), Some(SID)).expect("session");
            check_as(&p, n, &session);
        }
    }
}

/// Every catalog location in another user's hive (`HKU\<SID>\...`, the form a process outside
/// the session user sees), and every ancestor of it, under writes, deletes and hive exports, with
/// and without a session SID: the index (which walks the user component as any one name) and
/// the linear scan agree.
#[test]
fn index_and_linear_scan_agree_on_other_users_hives() {
    use agentsh_policy::catalog::ENTRIES;
    const OTHER: &str = "S-1-5-21-9-9-9-1002";
    let policy = Policy::embedded_default().expect("default policy loads");
    let with_sid =
        SessionContext::new(Some(APP), Some(r"C:\work"), Some(SID)).expect("valid session");
    let without_sid = SessionContext::default();
    let mut compared = 0usize;
    for e in ENTRIES {
        for loc in e.locations.iter().filter(|l| l.starts_with("HKCU\\")) {
            let (key, value) = match loc.split_once('>') {
                Some((k, v)) => (k, Some(v.replace('*', "Probe"))),
                None => (*loc, None),
            };
            let key = format!(r"\REGISTRY\USER\{OTHER}{}", &key.replace('*', "Probe")[4..]);
            let comps: Vec<&str> = key.split('\\').collect();
            for depth in 4..=comps.len() {
                let k = comps[..depth].join("\\");
                for op in ["SetValue", "DeleteKey", "SaveKey", "CreateKey"] {
                    let access = parse_access(op).expect("known operation");
                    for (session, sandboxed) in
                        [(&with_sid, true), (&with_sid, false), (&without_sid, true)]
                    {
                        let mut q = RegistryQuery::new(&k, access, session);
                        q.value = (op == "SetValue").then(|| value.as_deref().unwrap_or("V"));
                        q.sandboxed = sandboxed;
                        let fast = policy.engine().decide_registry_with(&q, Strategy::Indexed);
                        let slow = policy.engine().decide_registry_with(&q, Strategy::Linear);
                        assert_eq!(fast, slow, "{op} `{k}` sandboxed={sandboxed}");
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 1_000, "only {compared} queries compared");
    // Deleting an ancestor of another user's Run key destroys it: high-risk either way.
    let del = parse_access("DeleteKey").expect("known operation");
    let key = format!(r"\REGISTRY\USER\{OTHER}\Software\Microsoft\Windows\CurrentVersion");
    let q = RegistryQuery::new(&key, del, &without_sid);
    let v = policy.engine().decide_registry(&q);
    assert!(v.high_risk.is_some(), "{v:?}");
}
