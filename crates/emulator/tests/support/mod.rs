//! A scripted user side for emulator tests: speaks the wire protocol over the loopback socket
//! (handshake, control sends, replies chosen by a closure), so tests drive the real kernel core
//! without the service. Shared by the tests and benches through `#[path]`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::frame::{FrameKind, HEADER_LEN, encode_frame, read_frame};
use agentsh_wire::PROTOCOL_VERSION;
use agentsh_wire::control::{ControlRepr, SendResult, SendStatus};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader};
use agentsh_wire::op::{Decision, MessageType};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;

/// How the scripted service answers one registry query.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Allow {
        ttl: CacheTtl,
    },
    Deny {
        ttl: CacheTtl,
    },
    /// Say nothing (the kernel's query times out).
    Silence,
    /// Answer `pending` with `ticket`, then send the final decision after `after` (or never).
    Pending {
        ticket: u32,
        timeout_secs: u32,
        then: Option<(Duration, bool)>,
    },
}

pub type Script = Arc<dyn Fn(&RegistryRequestRepr) -> Answer + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ScriptedService {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    results: Arc<Mutex<VecDeque<oneshot::Sender<Vec<u8>>>>>,
    pub queries: Arc<AtomicU64>,
    pub notifications: Arc<AtomicU64>,
}

fn response(decision: Decision, ttl: CacheTtl, timeout: u32, ticket: u32) -> Vec<u8> {
    let repr = PolicyResponseRepr {
        message_type: MessageType::PolicyCheckRegistry,
        decision,
        cache_ttl: ttl,
        notify: false,
        log: false,
        approval_timeout_secs: timeout,
        approval_ticket: ticket,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).expect("response fits");
    buf
}

impl ScriptedService {
    /// Connects and completes the handshake.
    pub async fn connect(path: &Path, script: Script) -> ScriptedService {
        let stream = UnixStream::connect(path).await.expect("connect");
        let (read, write) = stream.into_split();
        let mut read = tokio::io::BufReader::with_capacity(64 * 1024, read);
        let service = ScriptedService {
            writer: Arc::new(tokio::sync::Mutex::new(write)),
            results: Arc::new(Mutex::new(VecDeque::new())),
            queries: Arc::new(AtomicU64::new(0)),
            notifications: Arc::new(AtomicU64::new(0)),
        };
        let me = service.clone();
        tokio::spawn(async move {
            while let Ok(Some((kind, body))) = read_frame(&mut read).await {
                match kind {
                    FrameKind::SendResult => {
                        let slot = me.results.lock().expect("lock").pop_front();
                        if let Some(slot) = slot {
                            let _ = slot.send(body);
                        }
                    }
                    FrameKind::KernelMessage => me.on_kernel_message(&script, &body).await,
                    _ => panic!("kernel sent {kind:?}"),
                }
            }
        });
        let hello = service
            .send(&ControlRepr::Hello {
                protocol_version: PROTOCOL_VERSION,
            })
            .await;
        assert_eq!(hello.status(), SendStatus::Ok, "handshake");
        service
    }

    async fn on_kernel_message(&self, script: &Script, body: &[u8]) {
        let (header, message) = FilterMessageHeader::split(body).expect("header");
        if !header.expects_reply() {
            self.notifications.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.queries.fetch_add(1, Ordering::Relaxed);
        let request = RegistryRequestRepr::decode(message).expect("registry request");
        let reply = match script(&request) {
            Answer::Allow { ttl } => response(Decision::Allow, ttl, 0, 0),
            Answer::Deny { ttl } => response(Decision::Deny, ttl, 0, 0),
            Answer::Silence => return,
            Answer::Pending {
                ticket,
                timeout_secs,
                then,
            } => {
                if let Some((after, allow)) = then {
                    let me = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let decision = if allow {
                            Decision::Allow
                        } else {
                            Decision::Deny
                        };
                        me.send(&ControlRepr::FinalDecision {
                            ticket,
                            decision,
                            flags: 0,
                        })
                        .await;
                    });
                }
                response(Decision::Pending, CacheTtl::None, timeout_secs, ticket)
            }
        };
        self.reply(header.message_id, &reply).await;
    }

    /// Sends raw USER_REPLY bytes for `message_id`.
    pub async fn reply(&self, message_id: u64, reply: &[u8]) {
        let mut header = [0u8; HEADER_LEN];
        FilterReplyHeader {
            status: 0,
            message_id,
        }
        .emit(&mut header)
        .expect("header");
        let frame = encode_frame(FrameKind::UserReply, &[&header, reply]).expect("fits");
        // The kernel side may have closed; tests observe that through their own assertions.
        let _ = self.writer.lock().await.write_all(&frame).await;
    }

    /// Sends a control message and returns the kernel's answer.
    pub async fn send(&self, message: &ControlRepr) -> SendResult {
        let mut buf = vec![0u8; message.buffer_len()];
        message.emit(&mut buf).expect("emit");
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.writer.lock().await;
            self.results.lock().expect("lock").push_back(tx);
            let frame = encode_frame(FrameKind::UserSend, &[&buf]).expect("fits");
            w.write_all(&frame).await.expect("write");
        }
        let body = rx.await.expect("send result");
        assert_eq!(&body[..4], &0i32.to_le_bytes(), "delivered");
        SendResult::decode(message.message_type(), &body[4..]).expect("decodes")
    }

    pub async fn register(&self, root: u32, token: u64, id: u64) {
        let result = self
            .send(&ControlRepr::RegisterSession {
                root_process_id: root,
                session_token: token,
                session_id: id,
                flags: 0,
                workspace: agentsh_wire::Utf16Buf::encode("C:\\work").expect("fits"),
            })
            .await;
        assert_eq!(result.status(), SendStatus::Ok, "register session");
    }

    /// Drops the connection (the kernel side sees a disconnect).
    pub async fn close(&self) {
        let _ = self.writer.lock().await.shutdown().await;
    }
}

/// Waits until `f` holds (polling), failing the test after two seconds.
pub async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not reached in time");
}

/// Session tokens the scripted service uses: derived from the root process id.
pub fn token_for(root: u32) -> u64 {
    0x5EED_0000_0000_0000 | u64::from(root)
}

impl agentsh_emulator::replay::SessionRegistrar for ScriptedService {
    fn register(
        &self,
        root_pid: u32,
        _workspace: &str,
        _app_name: &str,
    ) -> agentsh_emulator::replay::RegistrarFuture<'_> {
        Box::pin(async move {
            self.register(root_pid, token_for(root_pid), u64::from(root_pid))
                .await;
            Ok(())
        })
    }

    fn unregister(&self, root_pid: u32) -> agentsh_emulator::replay::RegistrarFuture<'_> {
        Box::pin(async move {
            let r = self
                .send(&ControlRepr::UnregisterSession {
                    session_token: token_for(root_pid),
                })
                .await;
            match r.status() {
                SendStatus::Ok => Ok(()),
                other => Err(format!("unregister: {other:?}")),
            }
        })
    }
}
