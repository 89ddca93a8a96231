//! The decoder of the kernel's answers to `FilterSendMessage`, for every message type.
#![no_main]
use agentsh_wire::control::SendResult;
use agentsh_wire::op::MessageType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for sent in MessageType::ALL {
        if let Ok(r) = SendResult::decode(sent, data) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out).expect("a decoded result re-encodes");
            assert_eq!(SendResult::decode(sent, &out), Ok(r));
        }
    }
});
