//! The kernel core fed hostile port traffic: arbitrary user → kernel messages and arbitrary
//! replies to its queries never panic, and the bookkeeping stays consistent.
#![no_main]
use agentsh_kcore::notify::Outgoing;
use agentsh_kcore::{Caller, KernelCore, QueryOutcome, RegistryOp, Request, Step};
use agentsh_wire::control::Counter;
use agentsh_wire::op::{OpFlags, Operation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut core = KernelCore::new(7);
    core.on_client_connected(1).expect("first client");
    let mut out = [0u8; 512];
    let hello = [0x10, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    core.on_user_message(&hello, &mut out);
    let key: Vec<u16> = "\\REGISTRY\\MACHINE\\SOFTWARE\\X".encode_utf16().collect();
    for (i, chunk) in data.chunks(40).enumerate() {
        core.on_user_message(chunk, &mut out);
        // Any image name, of any length: announcements are cut to fit and always encode.
        let image: Vec<u16> = data.chunks(2).take(i * 64).map(|b| u16::from(b[0]) << 8 | u16::from(*b.get(1).unwrap_or(&0))).collect();
        core.on_process_created(1000 + i as u32, chunk.first().copied().unwrap_or(0) as u32, 0, &image);
        if chunk.len() % 3 == 0 {
            core.on_process_exited(1000 + i as u32 - 1);
        }
        let req = Request::Registry(RegistryOp { op: Operation::SetValue, flags: OpFlags(0), key: &key, name: &[], value_type: 1, data_size: 0 });
        let caller = Caller { pid: 1000 + i as u32, tid: 1 };
        if let Step::Query { token, .. } = core.begin(i as u64, caller, &req) {
            core.complete(i as u64, caller, &req, token, QueryOutcome::Reply(chunk));
        }
    }
    let mut buf = vec![0u8; Outgoing::MAX_LEN];
    while let Some(n) = core.next_notification() {
        let len = n.emit(&mut buf).expect("every queued message encodes");
        assert!(len <= Outgoing::MAX_LEN);
    }
    let m = core.metrics();
    assert!(m.get(Counter::CacheEntries) <= 100_000);
});
