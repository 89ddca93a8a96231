//! A hostile or broken kernel side never crashes the service: every request is answered exactly
//! once, malformed ones per the fail mode, and a lying frame closes the connection cleanly.
#![cfg(unix)]

use std::collections::HashMap;

use agentsh_policy::Policy;
use agentsh_service::events::EventPipeline;
use agentsh_service::{Service, SocketTransport};
use agentsh_wire::control::{ControlRepr, SendResult, SendStatus};
use agentsh_wire::framing::{FRAME_HEADER_LEN, FrameHeader, FrameKind};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader};
use agentsh_wire::op::{Decision, MessageType};
use agentsh_wire::response::PolicyResponseRepr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

async fn write_frame(s: &mut UnixStream, kind: FrameKind, body: &[u8]) {
    let mut head = [0u8; FRAME_HEADER_LEN];
    FrameHeader {
        kind,
        body_len: body.len(),
    }
    .emit(&mut head)
    .expect("header");
    s.write_all(&head).await.expect("write");
    s.write_all(body).await.expect("write");
}

async fn read_frame(s: &mut UnixStream) -> Option<(FrameKind, Vec<u8>)> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    s.read_exact(&mut head).await.ok()?;
    let h = FrameHeader::decode(&head).ok()?;
    let mut body = vec![0u8; h.body_len];
    s.read_exact(&mut body).await.ok()?;
    Some((h.kind, body))
}

/// Plays the kernel's side of the handshake: every UserSend is answered Ok.
async fn answer_sends(s: &mut UnixStream, count: usize) {
    for _ in 0..count {
        let (kind, body) = read_frame(s).await.expect("a user send");
        assert_eq!(kind, FrameKind::UserSend);
        let ty = MessageType::of(&body).expect("typed");
        if ty == MessageType::SetReadScope {
            agentsh_wire::scope::ReadScopeView::new_checked(&body)
                .expect("the service sends a valid read scope");
            let result = SendResult::Status {
                message_type: ty,
                status: SendStatus::Ok,
            };
            let mut out = vec![0u8; 4 + result.buffer_len()];
            result.emit(&mut out[4..]).expect("emit");
            write_frame(s, FrameKind::SendResult, &out).await;
            continue;
        }
        let result = match ControlRepr::decode(&body).expect("the service sends valid messages") {
            ControlRepr::Hello { .. } => SendResult::Hello {
                status: SendStatus::Ok,
                kernel_version: 1,
            },
            _ => SendResult::Status {
                message_type: ty,
                status: SendStatus::Ok,
            },
        };
        let mut out = vec![0u8; 4 + result.buffer_len()];
        result.emit(&mut out[4..]).expect("emit");
        write_frame(s, FrameKind::SendResult, &out).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_are_answered_once_each_per_the_fail_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("port.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, _events) = EventPipeline::channel(64);
    let service = tokio::spawn({
        let path = path.clone();
        async move {
            Service::start(
                SocketTransport::connect(&path).await.expect("connects"),
                &policy,
                pipeline,
            )
            .await
        }
    });
    let (mut kernel, _) = listener.accept().await.expect("accept");
    // Hello, ExcludeSelf, SetConfig, SetReadScope and GetMetrics (the fail-mode counters read on connect;
    // answered with a bare status, which the service reports and goes on).
    answer_sends(&mut kernel, 5).await;
    let running = service.await.expect("joins").expect("service starts");

    let mut sent = 0u64;
    let corpus: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x02],
        vec![0x02, 0x00, 0x30, 0x06],
        vec![0x02, 0x00, 0xFF, 0xFF, 1, 2, 3],
        vec![0x01; 2112],
        vec![0x99, 0x00, 0x08, 0x00, 0, 0, 0, 0],
        vec![0x10, 0x00, 0x10, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        {
            let mut v = vec![0u8; 1584];
            v[0] = 2;
            v[2..4].copy_from_slice(&1584u16.to_le_bytes());
            v[20] = 2;
            v[32..1072].fill(0x41); // KeyPath without a terminator
            v
        },
    ];
    for body in &corpus {
        sent += 1;
        let mut msg = vec![0u8; 16 + body.len()];
        FilterMessageHeader {
            reply_length: 40,
            message_id: sent,
        }
        .emit(&mut msg)
        .expect("header");
        msg[16..].copy_from_slice(body);
        write_frame(&mut kernel, FrameKind::KernelMessage, &msg).await;
    }
    let mut answered: HashMap<u64, usize> = HashMap::new();
    for _ in 0..sent {
        let (kind, body) = read_frame(&mut kernel)
            .await
            .expect("a reply for every request");
        assert_eq!(kind, FrameKind::UserReply);
        let (h, reply) = FilterReplyHeader::split(&body).expect("reply header");
        let r = PolicyResponseRepr::decode(reply).expect("a valid response");
        // A malformed request that names a session (a readable, non-zero token) is denied
        // whatever the fail mode; the others get the default fail mode's answer (open).
        let sent_body = &corpus[(h.message_id - 1) as usize];
        let session = sent_body
            .get(4..12)
            .is_some_and(|t| t.iter().any(|&b| b != 0));
        let expected = if session {
            Decision::Deny
        } else {
            Decision::Allow
        };
        assert_eq!(r.decision, expected, "body {}", h.message_id);
        *answered.entry(h.message_id).or_default() += 1;
    }
    assert_eq!(answered.len() as u64, sent);
    assert!(
        answered.values().all(|&n| n == 1),
        "each request answered exactly once"
    );
    assert_eq!(
        running
            .adapter
            .metrics
            .malformed_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        sent
    );

    // A frame that declares more than the framing allows: the service stops serving that
    // connection (it does not allocate what the frame claims, and it does not crash).
    kernel
        .write_all(&[0xFF, 0xFF, 0xFF, 0x7F, 1])
        .await
        .expect("write");
    for _ in 0..200 {
        if !running.is_running() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the service kept serving a connection that sent a lying frame");
}
