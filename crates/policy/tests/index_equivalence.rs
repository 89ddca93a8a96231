//! The compiled index and the linear scan give identical verdicts on every benchmark query, for
//! the default policy and every generated size.

use agentsh_policy::load::parse_access;
use agentsh_policy::workload::{self, APP, SID};
use agentsh_policy::{Policy, RegistryQuery, SessionContext, Strategy};

fn check(policy: &Policy, n: usize) {
    let session =
        SessionContext::new(Some(APP), Some(r"C:\work"), Some(SID)).expect("valid session");
    let mut decisions = std::collections::HashSet::new();
    for sq in workload::queries(n) {
        let access = parse_access(sq.op).expect("known operation");
        // Hive exports reach beneath the key too; compare them on every query as well.
        let export = parse_access("SaveKey").expect("known operation");
        for (sandboxed, access) in [(true, access), (false, access), (true, export)] {
            let mut q = RegistryQuery::new(&sq.key, access, &session);
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
