//! The emulator's own mechanics with a scripted kernel core and a scripted client: a query's reply
//! reaches the core, a `pending` answer holds the caller until the final decision (or the hold's
//! expiry), failures reach the core as failures, and a replay reports every operation line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::core::{
    Begin, Finish, KernelCore, OperationRequest, Reason, SendOutcome, Target, Verdict,
};
use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::frame::{FrameKind, encode_frame, read_frame};

fn frame(kind: FrameKind, parts: &[&[u8]]) -> Vec<u8> {
    encode_frame(kind, parts).expect("fits a frame")
}
use agentsh_emulator::port::QueryError;
use agentsh_emulator::replay::{RegistrarFuture, SessionRegistrar, replay};
use agentsh_emulator::trace::Trace;
use agentsh_wire::Operation;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// Asks about every operation (message = the key's bytes); reply byte 1 allows, 0 denies, 2 holds
/// for 200 ms; a send of `[ticket u64le, verdict]` is a final decision.
#[derive(Default)]
struct ScriptedCore {
    next_ticket: u64,
    finals: HashMap<u64, Verdict>,
    failures: Vec<QueryError>,
    processes: Vec<(u32, u32)>,
}

impl KernelCore for ScriptedCore {
    fn begin(&mut self, request: &OperationRequest, _now_ms: u64) -> Begin {
        self.next_ticket += 1;
        let Target::Registry { key, .. } = &request.target else {
            return Begin::Done(Verdict::Deny, Reason::Unrepresentable);
        };
        Begin::Ask {
            ticket: self.next_ticket,
            message: key.as_bytes().to_vec(),
            reply_len: 1,
            timeout: Duration::from_millis(100),
        }
    }
    fn finish(&mut self, ticket: u64, reply: Result<&[u8], QueryError>, _now_ms: u64) -> Finish {
        match reply {
            Ok([1]) => Finish::Done(Verdict::Allow, Reason::Service),
            Ok([2]) => Finish::Hold {
                ticket,
                wait: Duration::from_millis(200),
            },
            Ok(_) => Finish::Done(Verdict::Deny, Reason::Service),
            Err(e) => {
                self.failures.push(e);
                Finish::Done(Verdict::Deny, Reason::FailClosed)
            }
        }
    }
    fn take_final(&mut self, ticket: u64) -> Option<(Verdict, Reason)> {
        self.finals.remove(&ticket).map(|v| (v, Reason::Approval))
    }
    fn hold_expired(&mut self, _ticket: u64, _now_ms: u64) -> (Verdict, Reason) {
        (Verdict::Deny, Reason::HoldExpired)
    }
    fn user_send(&mut self, message: &[u8], _now_ms: u64) -> SendOutcome {
        let Ok(ticket) = message
            .get(..8)
            .unwrap_or_default()
            .try_into()
            .map(u64::from_le_bytes)
        else {
            return SendOutcome {
                status: -1,
                ..SendOutcome::default()
            };
        };
        let verdict = if message.get(8) == Some(&1) {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        self.finals.insert(ticket, verdict);
        SendOutcome {
            status: 0,
            output: Vec::new(),
            resolved: vec![ticket],
        }
    }
    fn client_connected(&mut self, _client_pid: u32, _now_ms: u64) {}
    fn client_disconnected(&mut self, _now_ms: u64) {}
    fn process_created(
        &mut self,
        pid: u32,
        creator: u32,
        _image: &str,
        _now_ms: u64,
    ) -> Option<Vec<u8>> {
        self.processes.push((pid, creator));
        None
    }
    fn process_exited(&mut self, _pid: u32, _now_ms: u64) -> Option<Vec<u8>> {
        None
    }
    fn drain_notifications(&mut self, _out: &mut Vec<Vec<u8>>) {}
    fn metrics(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// A client that answers by the key's last character: `a` allow, `d` deny, `p` pending then a final
/// allow after 20 ms, `q` pending with no final decision, `s` silence.
async fn scripted_client(stream: UnixStream) {
    let (mut read, write) = stream.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    while let Ok(Some((kind, body))) = read_frame(&mut read).await {
        if kind == FrameKind::SendResult {
            assert_eq!(body, 0i32.to_le_bytes(), "final decision accepted");
            continue;
        }
        assert_eq!(kind, FrameKind::KernelMessage);
        let id = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
        let key = String::from_utf8_lossy(&body[16..]).into_owned();
        let answer = match key.chars().last() {
            Some('a') => 1u8,
            Some('d') => 0,
            Some('p') | Some('q') => 2,
            _ => continue,
        };
        let mut header = [0u8; 16];
        header[8..16].copy_from_slice(&id.to_le_bytes());
        let reply = frame(FrameKind::UserReply, &[&header, &[answer]]);
        write.lock().await.write_all(&reply).await.expect("write");
        if key.ends_with('p') {
            // The scripted core numbers tickets from 1 in request order; the key carries it.
            let ticket: u64 = key
                .trim_end_matches("-p")
                .rsplit('-')
                .next()
                .and_then(|t| t.parse().ok())
                .expect("ticket in key");
            let write = write.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let send = frame(FrameKind::UserSend, &[&ticket.to_le_bytes(), &[1]]);
                write.lock().await.write_all(&send).await.expect("write");
            });
        }
    }
}

fn request(key: &str) -> OperationRequest {
    OperationRequest {
        pid: 100,
        thread_id: 101,
        target: Target::Registry {
            op: Operation::SetValue,
            key: key.into(),
            value: String::new(),
            new_name: None,
            value_type: 1,
            data_size: 0,
        },
    }
}

async fn started() -> (tempfile::TempDir, Emulator<ScriptedCore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator =
        Emulator::start(&dir.path().join("agentsh.sock"), ScriptedCore::default()).expect("start");
    let client = UnixStream::connect(emulator.port().path())
        .await
        .expect("connect");
    tokio::spawn(scripted_client(client));
    for _ in 0..500 {
        if emulator.port().is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (dir, emulator)
}

#[tokio::test]
async fn replies_decide_and_pending_waits_for_the_final_decision() {
    let (_dir, emulator) = started().await;
    let allow = emulator.perform(&request("k-1-a")).await;
    assert_eq!(
        (allow.verdict, allow.reason, allow.status()),
        (Verdict::Allow, Reason::Service, 0)
    );
    let deny = emulator.perform(&request("k-2-d")).await;
    assert_eq!(
        (deny.verdict, deny.reason, deny.status()),
        (Verdict::Deny, Reason::Service, 0xC000_0022)
    );
    let approved = emulator.perform(&request("k-3-p")).await;
    assert_eq!(
        (approved.verdict, approved.reason),
        (Verdict::Allow, Reason::Approval)
    );
    assert!(
        approved.latency >= Duration::from_millis(20),
        "held until the final decision"
    );
    assert!(
        approved.latency < Duration::from_millis(200),
        "woken by it, not by the hold's end"
    );
    let expired = emulator.perform(&request("k-4-q")).await;
    assert_eq!(
        (expired.verdict, expired.reason),
        (Verdict::Deny, Reason::HoldExpired)
    );
    assert!(expired.latency >= Duration::from_millis(200));
}

#[tokio::test]
async fn silence_and_absence_reach_the_core_as_failures() {
    let (_dir, emulator) = started().await;
    let silent = emulator.perform(&request("k-1-s")).await;
    assert_eq!(
        (silent.verdict, silent.reason),
        (Verdict::Deny, Reason::FailClosed)
    );
    assert_eq!(
        emulator.with_core(|c| c.failures.clone()),
        [QueryError::Timeout]
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let lonely =
        Emulator::start(&dir.path().join("none.sock"), ScriptedCore::default()).expect("start");
    lonely.perform(&request("k-1-a")).await;
    assert_eq!(
        lonely.with_core(|c| c.failures.clone()),
        [QueryError::NotConnected]
    );
}

#[derive(Default)]
struct RecordingRegistrar(Mutex<Vec<String>>);

impl SessionRegistrar for RecordingRegistrar {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("register {root_pid} {workspace} {app_name}"));
        Box::pin(async { Ok(()) })
    }
    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("unregister {root_pid}"));
        Box::pin(async { Err("service unavailable".to_owned()) })
    }
}

#[tokio::test]
async fn replay_reports_every_operation_and_stops_at_an_impossible_line() {
    let (_dir, emulator) = started().await;
    let text = r#"
{"process":"agent","operation":"start","pid":4100,"image":"a.exe"}
{"process":"agent","operation":"register_session","workspace":"C:\\w","app_name":"App"}
{"process":"child","operation":"start","parent":"agent","image":"c.exe","user_sid":"S-1-5-21-5"}
{"process":"child","operation":"set_value","key":"HKCU\\x-1-a","value":"v","expect":"allow","label":"ok"}
{"process":"child","operation":"set_value","key":"HKCU\\x-2-a","expect":"deny"}
{"process":"agent","operation":"unregister_session"}
"#;
    let trace = Trace::parse("t.jsonl", text).expect("parses");
    let registrar = RecordingRegistrar::default();
    let mut streamed = 0;
    let result = replay(&emulator, &registrar, "t.jsonl", &trace, |_| streamed += 1).await;
    let err = result.expect_err("unregister fails");
    assert_eq!(
        err.to_string(),
        "t.jsonl:7: unregistering the session of `agent`: service unavailable"
    );
    assert_eq!(streamed, 2);
    assert_eq!(
        *registrar.0.lock().expect("lock"),
        ["register 4100 C:\\w App", "unregister 4100"]
    );
    assert_eq!(
        emulator.with_core(|c| c.processes.clone()),
        [(4100, 0), (1000, 4100)]
    );

    let trace = Trace::parse(
        "t.jsonl",
        &text.lines().take(6).collect::<Vec<_>>().join("\n"),
    )
    .expect("parses");
    let (_dir2, emulator) = started().await;
    let reports = replay(&emulator, &registrar, "t.jsonl", &trace, |_| {})
        .await
        .expect("replays");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].target, "\\REGISTRY\\USER\\S-1-5-21-5\\x-1-a\\v");
    assert_eq!(reports[0].status, "0x00000000");
    assert!(reports[0].as_expected());
    assert_eq!(reports[1].verdict, Verdict::Allow);
    assert!(!reports[1].as_expected(), "expected deny, got allow");
    let json = serde_json::to_value(&reports[0]).expect("json");
    assert_eq!(json["reason"], "service");
    assert_eq!(json["label"], "ok");
}
