//! The process event decoder.
#![no_main]
use agentsh_wire::notify::ProcessEventRepr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = ProcessEventRepr::decode(data) {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).expect("a decoded event re-encodes");
        assert_eq!(ProcessEventRepr::decode(&out), Ok(repr));
    }
});
