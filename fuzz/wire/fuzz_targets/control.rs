//! The user → kernel message decoder (what the kernel reads from the port).
#![no_main]
use agentsh_wire::control::ControlRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = ControlRepr::decode(data) {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).expect("a decoded message re-encodes");
        assert_eq!(ControlRepr::decode(&out), Ok(repr));
    }
});
