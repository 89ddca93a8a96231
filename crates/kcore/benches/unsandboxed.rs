//! The cost kcore adds to an operation of a process outside every session (target: ≤ 30 ns), with
//! 200 sessions holding 10 000 processes: the session lookup the driver does first, and the whole
//! `begin` for a file operation, a registry read, and a registry write to an ordinary key (which
//! the high-risk set must clear before the write is let through unreported).

use std::hint::black_box;

use agentsh_kcore::{Caller, FileOp, KernelCore, RegistryOp, Request};
use agentsh_wire::Utf16Buf;
use agentsh_wire::control::ControlRepr;
use agentsh_wire::op::{FileOperation, OpFlags, Operation};
use criterion::{Criterion, criterion_group, criterion_main};

fn send(core: &mut KernelCore, msg: ControlRepr) {
    let mut input = vec![0u8; msg.buffer_len()];
    msg.emit(&mut input).expect("emit");
    let mut out = [0u8; 512];
    core.on_user_message(&input, &mut out);
}

fn populated() -> KernelCore {
    let mut core = KernelCore::new(0x5eed);
    core.on_client_connected(4).expect("client");
    send(
        &mut core,
        ControlRepr::Hello {
            protocol_version: 1,
        },
    );
    for s in 0..200u32 {
        let root = 100_000 + s * 1000;
        send(
            &mut core,
            ControlRepr::RegisterSession {
                root_process_id: root,
                session_token: u64::from(s) + 1,
                session_id: u64::from(s) + 1,
                flags: 0,
                workspace: Utf16Buf::EMPTY,
            },
        );
        for c in 1..50u32 {
            core.on_process_created(root + c * 4, root, root, &[]);
        }
    }
    assert_eq!(core.session_pids().count(), 200 * 50);
    core
}

fn bench(c: &mut Criterion) {
    let mut core = populated();
    let outsider = Caller {
        pid: 7_777_776,
        tid: 1,
    };
    let path: Vec<u16> = "\\Device\\HarddiskVolume3\\Users\\dev\\project\\src\\main.rs"
        .encode_utf16()
        .collect();
    let key: Vec<u16> =
        "\\REGISTRY\\USER\\S-1-5-21-1004336348-1177238915-682003330-1001\\SOFTWARE\\Vendor\\App"
            .encode_utf16()
            .collect();
    let value: Vec<u16> = "Setting".encode_utf16().collect();
    let file = Request::File(FileOp {
        op: FileOperation::Write,
        flags: OpFlags(0),
        path: &path,
        target: &[],
        desired_access: 2,
        create_disposition: 1,
    });
    let read = Request::Registry(RegistryOp {
        op: Operation::QueryValue,
        flags: OpFlags(0),
        key: &key,
        name: &value,
        value_type: 0,
        data_size: 0,
    });
    let write = Request::Registry(RegistryOp {
        op: Operation::SetValue,
        ..match read {
            Request::Registry(r) => r,
            Request::File(_) => unreachable!("a registry request"),
        }
    });
    c.bench_function("unsandboxed session lookup (10k session processes)", |b| {
        b.iter(|| black_box(core.session_of(black_box(outsider.pid))))
    });
    c.bench_function("unsandboxed begin: file operation", |b| {
        b.iter(|| black_box(core.begin(0, black_box(outsider), black_box(&file))))
    });
    c.bench_function("unsandboxed begin: registry read", |b| {
        b.iter(|| black_box(core.begin(0, black_box(outsider), black_box(&read))))
    });
    c.bench_function("unsandboxed begin: registry write, ordinary key", |b| {
        b.iter(|| black_box(core.begin(0, black_box(outsider), black_box(&write))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
