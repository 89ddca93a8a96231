//! The embedded default policy: loads, and its own tests pass.

use agentsh_policy::Policy;

#[test]
fn embedded_default_policy_loads_and_its_tests_pass() {
    let p = Policy::embedded_default().unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.document().tests.is_empty());
    assert!(p.run_tests().is_empty());
}

#[test]
fn engine_and_policy_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<agentsh_policy::Engine>();
    shareable::<Policy>();
    let p = Policy::embedded_default().expect("default policy");
    let engine = p.engine().clone();
    let handle = std::thread::spawn(move || {
        let s = agentsh_policy::SessionContext::new(Some("TestApp"), None, None).expect("session");
        let q = agentsh_policy::RegistryQuery::new(
            r"HKCU\SOFTWARE\TestApp\x",
            agentsh_wire::Operation::SetValue,
            &s,
        );
        engine.decide_registry(&q).decision
    });
    assert_eq!(handle.join().ok(), Some(agentsh_policy::Decision::Allow));
}
