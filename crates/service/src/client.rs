//! The driver client: the handshake, the service's own exclusion, configuration, and the pump that
//! answers every kernel request exactly once, each on its own task so that an approval waiting
//! for a person never holds up other checks.

use std::io;
use std::sync::Arc;

use agentsh_wire::control::{ControlRepr, DriverConfig, Metrics, SendResult, SendStatus};
use agentsh_wire::file::FileRequestRepr;
use agentsh_wire::notify::{NotifyRepr, ProcessEventKind, ProcessEventRepr};
use agentsh_wire::op::{Decision, MessageType};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::{self, PolicyResponseRepr};
use agentsh_wire::{PROTOCOL_VERSION, Utf16Buf};

use crate::adapter::{Answer, PolicyAdapter};
use crate::transport::{KernelMessage, PortTransport};

/// Why talking to the driver failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("driver port: {0}")]
    Io(#[from] io::Error),
    #[error(
        "protocol version mismatch: this agentsh speaks version {ours}, the driver speaks {theirs}; install matching agentsh.sys and agentsh"
    )]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("the driver answered {message:?} with {status:?}")]
    Refused {
        message: MessageType,
        status: SendStatus,
    },
    #[error("the driver's answer to {message:?} did not decode: {error}")]
    Malformed {
        message: MessageType,
        error: agentsh_wire::Error,
    },
}

/// The most kernel messages the service answers at once (see [`DriverClient::serve`]).
pub const MAX_UNANSWERED: usize = 4096;

/// A connected, handshaken driver client.
#[derive(Debug)]
pub struct DriverClient<T: PortTransport> {
    transport: Arc<T>,
}

impl<T: PortTransport> Clone for DriverClient<T> {
    fn clone(&self) -> Self {
        DriverClient {
            transport: self.transport.clone(),
        }
    }
}

impl<T: PortTransport> DriverClient<T> {
    /// Handshakes on `transport` and excludes this process, before anything the service does
    /// could be intercepted.
    pub async fn connect(transport: T) -> Result<Self, ClientError> {
        let client = DriverClient {
            transport: Arc::new(transport),
        };
        match client
            .request(ControlRepr::Hello {
                protocol_version: PROTOCOL_VERSION,
            })
            .await?
        {
            SendResult::Hello {
                status: SendStatus::Ok,
                ..
            } => {}
            SendResult::Hello { kernel_version, .. } => {
                return Err(ClientError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: kernel_version,
                });
            }
            other => {
                return Err(ClientError::Refused {
                    message: MessageType::Hello,
                    status: other.status(),
                });
            }
        }
        client.expect_ok(ControlRepr::ExcludeSelf).await?;
        Ok(client)
    }

    /// Sends one control message and decodes the kernel's answer.
    pub async fn request(&self, msg: ControlRepr) -> Result<SendResult, ClientError> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf).map_err(|error| ClientError::Malformed {
            message: msg.message_type(),
            error,
        })?;
        let out = self.transport.send(&buf).await?;
        SendResult::decode(msg.message_type(), &out).map_err(|error| ClientError::Malformed {
            message: msg.message_type(),
            error,
        })
    }

    async fn expect_ok(&self, msg: ControlRepr) -> Result<(), ClientError> {
        let message = msg.message_type();
        match self.request(msg).await?.status() {
            SendStatus::Ok => Ok(()),
            status => Err(ClientError::Refused { message, status }),
        }
    }

    /// Applies the driver configuration.
    pub async fn set_config(&self, config: DriverConfig) -> Result<(), ClientError> {
        self.expect_ok(ControlRepr::SetConfig(config)).await
    }

    /// Reads the driver's counters.
    pub async fn metrics(&self) -> Result<Metrics, ClientError> {
        match self.request(ControlRepr::GetMetrics).await? {
            SendResult::Metrics(m) => Ok(m),
            other => Err(ClientError::Refused {
                message: MessageType::GetMetrics,
                status: other.status(),
            }),
        }
    }

    /// Which session the kernel places `pid` in (its public numeric id), `None` when the process
    /// is in none. The kernel's table is current even when the process's one-way announcement
    /// has not been read yet.
    pub async fn query_session(&self, pid: u32) -> Result<Option<u64>, ClientError> {
        match self
            .request(ControlRepr::QuerySession { process_id: pid })
            .await?
        {
            SendResult::Session { session_id } => Ok(Some(session_id)),
            other if other.status() == SendStatus::NotFound => Ok(None),
            other => Err(ClientError::Refused {
                message: MessageType::QuerySession,
                status: other.status(),
            }),
        }
    }

    /// Registers a session's root process with the driver.
    pub async fn register_session(
        &self,
        root_pid: u32,
        token: u64,
        session_id: u64,
        audit: bool,
        workspace: &str,
    ) -> Result<(), ClientError> {
        let (workspace, _) =
            Utf16Buf::from_units_truncating(&workspace.encode_utf16().collect::<Vec<_>>());
        self.expect_ok(ControlRepr::RegisterSession {
            root_process_id: root_pid,
            session_token: token,
            session_id,
            flags: if audit {
                agentsh_wire::control::SESSION_FLAG_AUDIT
            } else {
                0
            },
            workspace,
        })
        .await
    }

    /// Ends a session in the driver.
    pub async fn unregister_session(&self, token: u64) -> Result<(), ClientError> {
        self.expect_ok(ControlRepr::UnregisterSession {
            session_token: token,
        })
        .await
    }

    /// Replaces a session's token in the driver without dropping its processes.
    pub async fn rotate_session_token(&self, old: u64, new: u64) -> Result<(), ClientError> {
        self.expect_ok(ControlRepr::RotateSessionToken {
            old_token: old,
            new_token: new,
        })
        .await
    }

    /// Sends the compiled read scope (SetReadScope): the kernel queries only session reads
    /// under these prefixes. A scope over the message's limits, or one the kernel cannot store,
    /// is replaced by the widest scope (every read queried), never by a narrower one.
    pub async fn set_read_scope(
        &self,
        scope: &agentsh_policy::engine::ReadScope,
    ) -> Result<(), ClientError> {
        use agentsh_wire::scope::ScopeKind;
        let registry: Vec<Vec<u16>> = scope
            .registry
            .iter()
            .map(|p| p.encode_utf16().collect())
            .collect();
        let all_files: Vec<u16> = "\\".encode_utf16().collect();
        let mut entries: Vec<(ScopeKind, &[u16])> = registry
            .iter()
            .map(|p| (ScopeKind::Registry, &p[..]))
            .collect();
        if scope.files {
            entries.push((ScopeKind::File, &all_files[..]));
        }
        let everything = [
            (ScopeKind::Registry, &all_files[..]),
            (ScopeKind::File, &all_files[..]),
        ];
        let status = match self.send_scope(&entries).await? {
            SendStatus::Ok => return Ok(()),
            status => status,
        };
        tracing::warn!(
            "the driver refused the read scope ({} prefixes: {status:?}); every session read is queried",
            entries.len()
        );
        match self.send_scope(&everything).await? {
            SendStatus::Ok => Ok(()),
            status => Err(ClientError::Refused {
                message: MessageType::SetReadScope,
                status,
            }),
        }
    }

    async fn send_scope(
        &self,
        entries: &[(agentsh_wire::scope::ScopeKind, &[u16])],
    ) -> Result<SendStatus, ClientError> {
        let mut buf = vec![0u8; agentsh_wire::scope::MAX_LEN];
        let n = match agentsh_wire::scope::emit(entries.iter().copied(), &mut buf) {
            Ok(n) => n,
            // Over the limits: refused here as the kernel would refuse it.
            Err(_) => return Ok(SendStatus::OutOfRange),
        };
        let out = self.transport.send(&buf[..n]).await?;
        SendResult::decode(MessageType::SetReadScope, &out)
            .map(|r| r.status())
            .map_err(|error| ClientError::Malformed {
                message: MessageType::SetReadScope,
                error,
            })
    }

    /// Drops the driver's cached decisions (after a policy reload).
    pub async fn flush_cache(&self) -> Result<(), ClientError> {
        self.expect_ok(ControlRepr::FlushCache { session_token: 0 })
            .await
    }

    /// Sends the final decision for a `pending` answer.
    pub async fn final_decision(&self, ticket: u32, allow: bool) -> Result<(), ClientError> {
        let decision = if allow {
            Decision::Allow
        } else {
            Decision::Deny
        };
        self.expect_ok(ControlRepr::FinalDecision {
            ticket,
            decision,
            flags: 0,
        })
        .await
    }

    /// Answers kernel messages until the port closes. Every request gets exactly one reply.
    /// At most [`MAX_UNANSWERED`] messages are being answered at once: beyond that the service
    /// stops reading from the port until replies have gone out, so a peer that stops reading
    /// replies holds a bounded amount of the service's memory (the kernel's own in-flight
    /// limit is lower still).
    pub async fn serve(&self, adapter: Arc<PolicyAdapter>) -> Result<(), ClientError> {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_UNANSWERED));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let Some(msg) = self.transport.recv().await? else {
                return Ok(());
            };
            // A process announcement is recorded before the next message is read, so a request
            // the kernel sends after it is decided knowing the process's image.
            if matches!(MessageType::of(&msg.body), Ok(MessageType::ProcessEvent))
                && !msg.header.expects_reply()
            {
                if let Ok(p) = ProcessEventRepr::decode(&msg.body) {
                    track_process(&p, &adapter);
                }
                continue;
            }
            let this = self.clone();
            let adapter = adapter.clone();
            tokio::spawn(async move { this.handle(msg, &adapter, slot).await });
        }
    }

    /// `slot` is given back once the reply has been written (a held approval then waits for
    /// its person without occupying one).
    async fn handle(
        &self,
        msg: KernelMessage,
        adapter: &PolicyAdapter,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let ty = MessageType::of(&msg.body);
        if matches!(
            ty,
            Ok(MessageType::PolicyCheckRegistry | MessageType::PolicyCheckFile)
        ) && let Some(ev) = adapter.fail_watch.on_request()
        {
            adapter.events.emit(ev);
        }
        let answer = match ty {
            Ok(MessageType::PolicyCheckRegistry) => match RegistryRequestRepr::decode(&msg.body) {
                Ok(req) => adapter.check_registry(&req),
                Err(e) => Answer::Reply(adapter.malformed(
                    MessageType::PolicyCheckRegistry,
                    &msg.body,
                    &e.to_string(),
                )),
            },
            Ok(MessageType::PolicyCheckFile) => match FileRequestRepr::decode(&msg.body) {
                Ok(req) => adapter.check_file(&req),
                Err(e) => Answer::Reply(adapter.malformed(
                    MessageType::PolicyCheckFile,
                    &msg.body,
                    &e.to_string(),
                )),
            },
            Ok(MessageType::Notify) => {
                match NotifyRepr::decode(&msg.body) {
                    Ok(n) => {
                        if let Some(ev) = adapter.fail_watch.on_notification(n.reason) {
                            adapter.events.emit(ev);
                        }
                        if let Some(ev) = adapter.notification_event(&n) {
                            adapter.events.emit(ev);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "malformed notification from the driver"),
                }
                return self.reply_if_expected(&msg, None).await;
            }
            // Tracked in `serve`, in arrival order.
            Ok(MessageType::ProcessEvent) => return self.reply_if_expected(&msg, None).await,
            Ok(other) => Answer::Reply(adapter.malformed(
                MessageType::PolicyCheckRegistry,
                &msg.body,
                &format!("unexpected {other:?}"),
            )),
            Err(e) => Answer::Reply(adapter.malformed(
                MessageType::PolicyCheckRegistry,
                &msg.body,
                &e.to_string(),
            )),
        };
        match answer {
            Answer::Reply(r) => self.reply_if_expected(&msg, Some(r)).await,
            Answer::Pending {
                reply,
                ticket,
                outcome,
                event,
            } => {
                self.reply_if_expected(&msg, Some(reply)).await;
                drop(slot);
                let result = outcome.await;
                adapter.approval_finished(*event, result);
                if matches!(
                    result,
                    crate::approvals::ApprovalOutcome::Withdrawn
                        | crate::approvals::ApprovalOutcome::Refused
                ) {
                    // The connection is gone, or the kernel never held the operation: either
                    // way it already denied it, and holds no ticket to decide.
                    return;
                }
                if let Err(e) = self.final_decision(ticket, result.allows()).await {
                    tracing::error!(ticket, error = %e, "could not deliver an approval's final decision; the driver denies on its own deadline");
                }
            }
        }
    }

    async fn reply_if_expected(&self, msg: &KernelMessage, reply: Option<PolicyResponseRepr>) {
        if !msg.header.expects_reply() {
            return;
        }
        // A one-way message never needs an answer; a request always gets one, malformed or not.
        let reply = reply.unwrap_or(PolicyResponseRepr {
            message_type: MessageType::PolicyCheckRegistry,
            decision: Decision::Allow,
            cache_ttl: response::CacheTtl::None,
            notify: false,
            log: false,
            approval_timeout_secs: 0,
            approval_ticket: 0,
        });
        let mut buf = [0u8; response::LEN];
        if reply.emit(&mut buf).is_ok()
            && let Err(e) = self.transport.reply(msg.header.message_id, &buf).await
        {
            tracing::warn!(error = %e, "could not reply to the driver");
        }
    }
}

fn track_process(p: &ProcessEventRepr, adapter: &PolicyAdapter) {
    match p.kind {
        ProcessEventKind::Created => {
            adapter.session_member(p.process_id, p.session_id);
            let image: String = agentsh_winstr::name::decode(p.image_name.as_units()).collect();
            adapter.process_started(p.process_id, p.creating_process_id, &image)
        }
        ProcessEventKind::Exited => adapter.process_exited(p.process_id),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use agentsh_wire::header::{FilterMessageHeader, HEADER_LEN};

    use super::*;

    /// A driver side that sends requests without end and never takes a reply.
    struct NeverReads {
        received: AtomicUsize,
    }

    impl PortTransport for NeverReads {
        async fn recv(&self) -> io::Result<Option<KernelMessage>> {
            let n = self.received.fetch_add(1, Ordering::SeqCst);
            Ok(Some(KernelMessage {
                header: FilterMessageHeader {
                    reply_length: (HEADER_LEN + response::LEN) as u32,
                    message_id: n as u64,
                },
                // Not a valid request: answered per the fail mode, which needs a reply.
                body: vec![0xEE; 8],
            }))
        }
        async fn reply(&self, _: u64, _: &[u8]) -> io::Result<()> {
            std::future::pending().await
        }
        async fn send(&self, _: &[u8]) -> io::Result<Vec<u8>> {
            Err(io::Error::other("no control messages in this test"))
        }
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_replies_holds_a_bounded_backlog() {
        let transport = Arc::new(NeverReads {
            received: AtomicUsize::new(0),
        });
        let client = DriverClient {
            transport: transport.clone(),
        };
        let policy = agentsh_policy::Policy::embedded_default().expect("policy");
        let (events, _rx) = crate::events::EventPipeline::channel(16);
        let adapter = Arc::new(PolicyAdapter::for_policy(&policy, events));
        let serving = tokio::spawn(async move { client.serve(adapter).await });
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let read = transport.received.load(Ordering::SeqCst);
        assert_eq!(
            read, MAX_UNANSWERED,
            "the service stops reading once {MAX_UNANSWERED} replies are outstanding"
        );
        assert!(!serving.is_finished());
        serving.abort();
    }
}
