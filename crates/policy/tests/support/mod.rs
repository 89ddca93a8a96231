//! Shared helpers for the policy integration tests.

use agentsh_policy::load::parse_access;
use agentsh_policy::{Policy, RegistryQuery, SessionContext, Verdict};

pub const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

pub fn policy(yaml: &str) -> Policy {
    Policy::from_str(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

pub fn session() -> SessionContext {
    SessionContext::new(Some("TestApp"), Some(r"C:\work"), Some(SID)).expect("valid session")
}

/// Decides a registry query: `op` is a policy or driver operation name.
pub fn reg(p: &Policy, key: &str, value: Option<&str>, op: &str, sandboxed: bool) -> Verdict {
    let s = session();
    let access = parse_access(op).unwrap_or_else(|| panic!("operation {op}"));
    let mut q = RegistryQuery::new(key, access, &s);
    q.value = value;
    q.sandboxed = sandboxed;
    p.engine().decide_registry(&q)
}
