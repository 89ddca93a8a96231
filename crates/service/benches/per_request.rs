//! The service's work per driver request, without I/O: take a kernel frame (frame header,
//! FILTER_MESSAGE_HEADER, registry request), decide it with the embedded default policy through
//! the policy adapter (session lookup, engine, event), and write the reply frame (frame header,
//! FILTER_REPLY_HEADER, response). Target: median <= 2 µs.

use std::hint::black_box;

use agentsh_policy::{Policy, SessionContext};
use agentsh_service::adapter::{Answer, PolicyAdapter};
use agentsh_service::events::EventPipeline;
use agentsh_wire::framing::{FRAME_HEADER_LEN, FrameHeader, FrameKind};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader, HEADER_LEN};
use agentsh_wire::op::OpFlags;
use agentsh_wire::registry::{self, RegistryRequestRepr};
use agentsh_wire::{Operation, Utf16Buf, response};
use criterion::{Criterion, criterion_group, criterion_main};

const USER_SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

/// One kernel frame as the loopback transport reads it off the socket.
fn kernel_frame(token: u64, op: Operation, key: &str, value: &str) -> Vec<u8> {
    let body_len = HEADER_LEN + registry::LEN;
    let mut frame = vec![0u8; FRAME_HEADER_LEN + body_len];
    let header = FrameHeader {
        kind: FrameKind::KernelMessage,
        body_len,
    };
    header.emit(&mut frame).expect("frame header fits");
    FilterMessageHeader {
        reply_length: (HEADER_LEN + response::LEN) as u32,
        message_id: 42,
    }
    .emit(&mut frame[FRAME_HEADER_LEN..])
    .expect("message header fits");
    RegistryRequestRepr {
        session_token: token,
        process_id: 4242,
        thread_id: 7,
        operation: op,
        flags: OpFlags::default(),
        value_type: 1,
        data_size: 8,
        key_path: Utf16Buf::encode(key).expect("key fits"),
        value_name: Utf16Buf::encode(value).expect("value fits"),
    }
    .emit(&mut frame[FRAME_HEADER_LEN + HEADER_LEN..])
    .expect("request fits");
    frame
}

/// Decode, decide, encode: what the service does between reading a frame and writing its reply.
fn handle(adapter: &PolicyAdapter, frame: &[u8], reply: &mut [u8]) -> usize {
    let header = FrameHeader::decode(frame).expect("kernel frame");
    let body = &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + header.body_len];
    let (msg, request) = FilterMessageHeader::split(body).expect("message header");
    let req = RegistryRequestRepr::decode(request).expect("registry request");
    let Answer::Reply(r) = adapter.check_registry(&req) else {
        panic!("the benchmarked requests are decided at once")
    };
    let body_len = HEADER_LEN + response::LEN;
    FrameHeader {
        kind: FrameKind::UserReply,
        body_len,
    }
    .emit(reply)
    .expect("reply frame header fits");
    FilterReplyHeader {
        status: 0,
        message_id: msg.message_id,
    }
    .emit(&mut reply[FRAME_HEADER_LEN..])
    .expect("reply header fits");
    r.emit(&mut reply[FRAME_HEADER_LEN + HEADER_LEN..])
        .expect("response fits");
    FRAME_HEADER_LEN + body_len
}

fn per_request(c: &mut Criterion) {
    let policy = Policy::embedded_default().expect("embedded default policy loads");
    // Events go to a queue nobody drains: once full, emitting is the drop-and-count path, which
    // is what a decision pays when the sink falls behind.
    let (events, _rx) = EventPipeline::channel(1024);
    let adapter = PolicyAdapter::new(policy.engine().clone(), events);
    let ctx = SessionContext::new(Some("TestApp"), Some(r"C:\work\agent"), Some(USER_SID))
        .expect("session context");
    let (token, _) = adapter
        .sessions
        .register(1000, ctx, false, Default::default())
        .expect("session registers");
    let hkcu = |rest: &str| format!(r"\REGISTRY\USER\{USER_SID}\{rest}");
    let cases = [
        (
            "allowed app write",
            kernel_frame(
                token,
                Operation::SetValue,
                &hkcu(r"SOFTWARE\TestApp\config"),
                "Level",
            ),
        ),
        (
            "denied run key write",
            kernel_frame(
                token,
                Operation::SetValue,
                &hkcu(r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"),
                "updater",
            ),
        ),
        (
            "read outside the app key",
            kernel_frame(
                token,
                Operation::QueryValue,
                r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
                "ProductName",
            ),
        ),
        (
            "unsandboxed write",
            kernel_frame(
                0,
                Operation::SetValue,
                &hkcu(r"SOFTWARE\Vendor\Tool"),
                "Level",
            ),
        ),
    ];
    let mut reply = [0u8; FRAME_HEADER_LEN + HEADER_LEN + response::LEN];
    let mut group = c.benchmark_group("service per request (decode, decide, encode)");
    for (name, frame) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| black_box(handle(&adapter, black_box(frame), &mut reply)))
        });
    }
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
