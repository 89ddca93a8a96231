//! Fuzzes the policy loader: any text is either a policy or a list of located errors, never a
//! panic; a policy that loads decides a few queries without panicking.
#![no_main]

use agentsh_policy::{Operation, Policy, RegistryQuery, SessionContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::from_str(text, "fuzz.yaml") {
        Ok(p) => {
            let s = SessionContext::new(Some("App"), Some(r"C:\w"), Some("S-1-5-21-1"))
                .expect("valid session");
            for key in [
                r"HKCU\SOFTWARE\App\x",
                r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\s",
            ] {
                for op in Operation::ALL {
                    let _ = p.engine().decide_registry(&RegistryQuery::new(key, op, &s));
                }
            }
        }
        Err(e) => assert!(!e.0.is_empty(), "an error result must carry errors"),
    }
});
