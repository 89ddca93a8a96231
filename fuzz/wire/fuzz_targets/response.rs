//! The policy response decoder (what the kernel reads from the service).
#![no_main]
use agentsh_wire::response::PolicyResponseRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = PolicyResponseRepr::decode(data) {
        let mut out = [0u8; 24];
        repr.emit(&mut out).expect("a decoded response re-encodes");
        assert_eq!(PolicyResponseRepr::decode(&out), Ok(repr));
    }
});
