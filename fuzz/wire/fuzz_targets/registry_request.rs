//! The registry request decoder: any bytes give a request or a typed error, and a decoded
//! request re-encodes to bytes that decode to the same request.
#![no_main]
use agentsh_wire::registry::{self, RegistryRequestRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = RegistryRequestRepr::decode(data) {
        let mut out = vec![0u8; registry::LEN];
        repr.emit(&mut out).expect("a decoded request re-encodes");
        assert_eq!(RegistryRequestRepr::decode(&out), Ok(repr));
    }
});
