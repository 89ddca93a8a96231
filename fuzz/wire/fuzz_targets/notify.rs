//! The notification decoder (what the service reads for one-way messages).
#![no_main]
use agentsh_wire::notify::NotifyRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = NotifyRepr::decode(data) {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).expect("a decoded notification re-encodes");
        assert_eq!(NotifyRepr::decode(&out), Ok(repr));
    }
});
