//! The embedded default policy: loads, and its own tests pass.

use agentsh_policy::Policy;

#[test]
fn embedded_default_policy_loads_and_its_tests_pass() {
    let p = Policy::embedded_default().unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.document().tests.is_empty());
    assert!(p.run_tests().is_empty());
}
