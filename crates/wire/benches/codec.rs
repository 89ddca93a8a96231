//! Registry request decode + response encode: the per-message cost on both sides of the port.

use std::hint::black_box;

use agentsh_wire::Utf16Buf;
use agentsh_wire::op::{Decision, MessageType, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequest, RegistryRequestRepr};
use agentsh_wire::response::{self, CacheTtl, PolicyResponseRepr};
use criterion::{Criterion, criterion_group, criterion_main};

fn request_bytes() -> Vec<u8> {
    let repr = RegistryRequestRepr {
        session_token: 0x1122_3344_5566_7788,
        process_id: 4242,
        thread_id: 4243,
        operation: Operation::SetValue,
        flags: OpFlags::default(),
        value_type: 1,
        data_size: 64,
        key_path: Utf16Buf::encode(
            "\\REGISTRY\\USER\\S-1-5-21-1004336348-1177238915-682003330-1001\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
        )
        .unwrap_or(Utf16Buf::EMPTY),
        value_name: Utf16Buf::encode("Updater").unwrap_or(Utf16Buf::EMPTY),
    };
    let mut buf = vec![0u8; registry::LEN];
    repr.emit(&mut buf).unwrap_or_default();
    buf
}

fn bench(c: &mut Criterion) {
    let request = request_bytes();
    let mut out = [0u8; response::LEN];
    c.bench_function("registry request decode + response encode", |b| {
        b.iter(|| {
            let view = RegistryRequest::new_checked(black_box(&request[..]));
            let decision = match view {
                Ok(v) => {
                    let repr = RegistryRequestRepr::parse(&v);
                    if repr.key_path.len() > 10 {
                        Decision::Deny
                    } else {
                        Decision::Allow
                    }
                }
                Err(_) => Decision::Deny,
            };
            let resp = PolicyResponseRepr {
                message_type: MessageType::PolicyCheckRegistry,
                decision,
                cache_ttl: CacheTtl::Seconds(30),
                notify: true,
                log: true,
                approval_timeout_secs: 0,
                approval_ticket: 0,
            };
            let _ = resp.emit(black_box(&mut out));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
