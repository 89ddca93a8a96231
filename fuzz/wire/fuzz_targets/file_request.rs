//! The file request decoder: any bytes give a request or a typed error; decoded requests
//! round-trip.
#![no_main]
use agentsh_wire::file::{self, FileRequestRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = FileRequestRepr::decode(data) {
        let mut out = vec![0u8; file::LEN];
        repr.emit(&mut out).expect("a decoded request re-encodes");
        assert_eq!(FileRequestRepr::decode(&out), Ok(repr));
    }
});
