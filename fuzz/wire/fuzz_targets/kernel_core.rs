//! The kernel core fed hostile port traffic: arbitrary user → kernel messages and arbitrary
//! replies to its queries never panic, and the bookkeeping stays consistent.
#![no_main]
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
        core.on_process_created(1000 + i as u32, chunk.first().copied().unwrap_or(0) as u32, 0);
        let req = Request::Registry(RegistryOp { op: Operation::SetValue, flags: OpFlags(0), key: &key, name: &[], value_type: 1, data_size: 0 });
        let caller = Caller { pid: 1000 + i as u32, tid: 1 };
        if let Step::Query { token, .. } = core.begin(i as u64, caller, &req) {
            core.complete(i as u64, caller, &req, token, QueryOutcome::Reply(chunk));
        }
    }
    let m = core.metrics();
    assert!(m.get(Counter::CacheEntries) <= 100_000);
});
