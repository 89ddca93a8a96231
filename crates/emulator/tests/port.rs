//! The loopback port's contract: one client (the rest refused with a status), replies matched by
//! MessageId exactly once, timeouts and late replies, sends answered in order, garbage closes the
//! connection without harming the kernel side.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::frame::{FrameKind, encode_frame, read_frame};

fn frame(kind: FrameKind, parts: &[&[u8]]) -> Vec<u8> {
    encode_frame(kind, parts).expect("fits a frame")
}
use agentsh_emulator::port::{Port, PortHandler, QueryError, STATUS_CONNECTION_COUNT_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl PortHandler for Recorder {
    fn connected(&self, client_pid: u32) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("connected {client_pid}"));
    }
    fn disconnected(&self) {
        self.events
            .lock()
            .expect("lock")
            .push("disconnected".into());
    }
    fn user_send(&self, message: &[u8]) -> (i32, Vec<u8>) {
        let mut out = message.to_vec();
        out.reverse();
        (7, out)
    }
}

fn setup() -> (tempfile::TempDir, Arc<Recorder>, Port) {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Arc::new(Recorder::default());
    let (port, _task) = Port::bind(&dir.path().join("port.sock"), recorder.clone()).expect("bind");
    (dir, recorder, port)
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not reached in time");
}

fn reply_frame(id: u64, status: i32, body: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&status.to_le_bytes());
    header[8..16].copy_from_slice(&id.to_le_bytes());
    frame(FrameKind::UserReply, &[&header, body])
}

#[tokio::test]
async fn replies_match_by_message_id_once() {
    let (_dir, recorder, port) = setup();
    let mut client = UnixStream::connect(port.path()).await.expect("connect");
    wait_until(|| port.is_connected()).await;
    assert_eq!(
        recorder.events.lock().expect("lock")[0],
        format!("connected {}", std::process::id())
    );

    let p = port.clone();
    let q1 = tokio::spawn(async move { p.query(b"first", 24, Duration::from_secs(5)).await });
    let p = port.clone();
    let q2 = tokio::spawn(async move { p.query(b"second", 24, Duration::from_secs(5)).await });
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (kind, body) = read_frame(&mut client).await.expect("read").expect("frame");
        assert_eq!(kind, FrameKind::KernelMessage);
        assert_eq!(
            u32::from_le_bytes(body[0..4].try_into().expect("4")),
            24,
            "ReplyLength"
        );
        let id = u64::from_le_bytes(body[8..16].try_into().expect("8"));
        seen.push((id, body[16..].to_vec()));
    }
    // Answer in reverse order, each with its own bytes, then a duplicate of the first.
    for (id, msg) in seen.iter().rev() {
        client
            .write_all(&reply_frame(*id, 0, &[msg.as_slice(), b"!"].concat()))
            .await
            .expect("write");
    }
    client
        .write_all(&reply_frame(seen[0].0, 0, b"dup"))
        .await
        .expect("write");
    assert_eq!(q1.await.expect("join"), Ok(b"first!".to_vec()));
    assert_eq!(q2.await.expect("join"), Ok(b"second!".to_vec()));
    wait_until(|| port.counters().replies_unmatched.load(Ordering::Relaxed) == 1).await;
    assert_eq!(port.counters().replies_matched.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn timeout_then_late_reply_is_counted_not_delivered() {
    let (_dir, _recorder, port) = setup();
    let mut client = UnixStream::connect(port.path()).await.expect("connect");
    wait_until(|| port.is_connected()).await;
    let result = port.query(b"slow", 24, Duration::from_millis(20)).await;
    assert_eq!(result, Err(QueryError::Timeout));
    let (_, body) = read_frame(&mut client).await.expect("read").expect("frame");
    let id = u64::from_le_bytes(body[8..16].try_into().expect("8"));
    client
        .write_all(&reply_frame(id, 0, b"late"))
        .await
        .expect("write");
    wait_until(|| port.counters().replies_unmatched.load(Ordering::Relaxed) == 1).await;
}

#[tokio::test]
async fn error_status_reply_is_a_failure() {
    let (_dir, _recorder, port) = setup();
    let mut client = UnixStream::connect(port.path()).await.expect("connect");
    wait_until(|| port.is_connected()).await;
    let p = port.clone();
    let q = tokio::spawn(async move { p.query(b"x", 24, Duration::from_secs(5)).await });
    let (_, body) = read_frame(&mut client).await.expect("read").expect("frame");
    let id = u64::from_le_bytes(body[8..16].try_into().expect("8"));
    client
        .write_all(&reply_frame(id, -5, b""))
        .await
        .expect("write");
    assert_eq!(q.await.expect("join"), Err(QueryError::Status(-5)));
}

#[tokio::test]
async fn second_client_is_refused_and_first_keeps_working() {
    let (_dir, recorder, port) = setup();
    let mut first = UnixStream::connect(port.path()).await.expect("connect");
    wait_until(|| port.is_connected()).await;
    let mut second = UnixStream::connect(port.path()).await.expect("connect");
    let (kind, body) = read_frame(&mut second).await.expect("read").expect("frame");
    assert_eq!(kind, FrameKind::SendResult);
    assert_eq!(body, STATUS_CONNECTION_COUNT_LIMIT.to_le_bytes());
    assert_eq!(
        read_frame(&mut second).await.expect("read"),
        None,
        "refused client is closed"
    );

    first
        .write_all(&frame(FrameKind::UserSend, &[b"abc"]))
        .await
        .expect("write");
    let (kind, body) = read_frame(&mut first).await.expect("read").expect("frame");
    assert_eq!(kind, FrameKind::SendResult);
    assert_eq!(body, [&7i32.to_le_bytes()[..], b"cba"].concat());
    assert_eq!(
        recorder.events.lock().expect("lock").len(),
        1,
        "only one connect"
    );
}

#[tokio::test]
async fn garbage_closes_the_connection_and_fails_queries_in_flight() {
    for garbage in [
        vec![0, 0, 0, 0, 1],                            // length 0
        vec![0xff, 0xff, 0xff, 0x7f, 1],                // length beyond 65536
        vec![2, 0, 0, 0, 9, 0],                         // unknown kind
        vec![3, 0, 0, 0, 2, 0, 0],                      // reply shorter than its header
        frame(FrameKind::KernelMessage, &[&[0u8; 16]]), // a kernel-side frame from the client
    ] {
        let (_dir, recorder, port) = setup();
        let mut client = UnixStream::connect(port.path()).await.expect("connect");
        wait_until(|| port.is_connected()).await;
        let p = port.clone();
        let q = tokio::spawn(async move { p.query(b"x", 24, Duration::from_secs(5)).await });
        read_frame(&mut client).await.expect("read").expect("frame");
        client.write_all(&garbage).await.expect("write");
        assert_eq!(
            q.await.expect("join"),
            Err(QueryError::Disconnected),
            "{garbage:?}"
        );
        wait_until(|| !port.is_connected()).await;
        assert_eq!(port.counters().protocol_errors.load(Ordering::Relaxed), 1);
        wait_until(|| {
            recorder
                .events
                .lock()
                .expect("lock")
                .last()
                .map(String::as_str)
                == Some("disconnected")
        })
        .await;
        // The port admits a new client afterwards.
        let _again = UnixStream::connect(port.path()).await.expect("reconnect");
        wait_until(|| port.is_connected()).await;
    }
}

#[tokio::test]
async fn no_client_means_not_connected_and_dropped_notifications() {
    let (_dir, _recorder, port) = setup();
    assert_eq!(
        port.query(b"x", 24, Duration::from_secs(1)).await,
        Err(QueryError::NotConnected)
    );
    assert!(!port.notify(b"n"));
    assert_eq!(
        port.counters()
            .notifications_dropped
            .load(Ordering::Relaxed),
        1
    );
}
