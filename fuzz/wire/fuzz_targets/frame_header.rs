//! The loopback stream framing: a hostile peer can never make a reader expect more than the
//! framing limit.
#![no_main]
use agentsh_wire::framing::{FrameHeader, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = FrameHeader::decode(data) {
        assert!(h.body_len < MAX_FRAME_LEN);
        let mut out = [0u8; 5];
        h.emit(&mut out).expect("re-encodes");
        assert_eq!(&out[..], &data[..5]);
    }
});
