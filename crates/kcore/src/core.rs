//! The per-operation flow the driver and the emulator both run: one state machine over the
//! cache, breaker, sessions, exclusion, pending holds, notifications and counters.

use agentsh_wire::control::{
    CONFIG_NOTIFY_READS, CONFIG_QUERY_READS, ControlRepr, Counter, DriverConfig, FailMode, Metrics,
    SendResult, SendStatus,
};
use agentsh_wire::file::{self, FileRequestRepr};
use agentsh_wire::notify::{NotifyReason, ProcessEventKind};
use agentsh_wire::op::{Decision, FileOperation, MessageType, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequestRepr};
use agentsh_wire::response::PolicyResponseRepr;
use agentsh_wire::scope::ReadScopeView;
use agentsh_wire::{PROTOCOL_VERSION, Utf16Buf};

use crate::Millis;
use crate::breaker::{FailModeBreaker, Gate, Transition};
use crate::cache::{CacheKey, Cached, DecisionCache, FILE_KIND_BASE};
use crate::highrisk::{HighRiskSet, Risk};
use crate::notify::{
    Notification, NotificationQueue, Outgoing, OwnedSubject, ProcessEvent, try_copy,
};
use crate::pending::{HoldStatus, PendingTable};
use crate::readscope::ReadScope;
use crate::sessions::{SessionError, SessionRef, SessionTable};

/// The process and thread performing an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub pid: u32,
    pub tid: u32,
}

/// A registry operation as the driver sees it. Names are full length: the core cuts them to the
/// wire's fields and flags the cut.
#[derive(Debug, Clone, Copy)]
pub struct RegistryOp<'a> {
    pub op: Operation,
    /// `NEW_KEY` / `WRITE_ACCESS` as observed by the driver (truncation flags are set here).
    pub flags: OpFlags,
    pub key: &'a [u16],
    /// Value name, or the new name for `RenameKey`.
    pub name: &'a [u16],
    pub value_type: u32,
    pub data_size: u32,
}

/// A file operation as the minifilter sees it.
#[derive(Debug, Clone, Copy)]
pub struct FileOp<'a> {
    pub op: FileOperation,
    pub flags: OpFlags,
    pub path: &'a [u16],
    /// Rename or hard-link target; empty otherwise.
    pub target: &'a [u16],
    pub desired_access: u32,
    pub create_disposition: u32,
}

/// An intercepted operation.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    Registry(RegistryOp<'a>),
    File(FileOp<'a>),
}

impl Request<'_> {
    fn is_read(&self) -> bool {
        match self {
            Request::Registry(r) => r.op.is_read(),
            Request::File(f) => f.op == FileOperation::Read,
        }
    }

    fn truncated(&self) -> bool {
        match self {
            Request::Registry(r) => {
                r.key.len() > registry::KEY_PATH_MAX || r.name.len() > registry::VALUE_NAME_MAX
            }
            Request::File(f) => f.path.len() > file::PATH_MAX || f.target.len() > file::PATH_MAX,
        }
    }

    fn cache_key(&self, token: u64) -> CacheKey<'_> {
        match self {
            Request::Registry(r) => CacheKey {
                token,
                kind: r.op as u16,
                path: r.key,
                name: r.name,
            },
            Request::File(f) => CacheKey {
                token,
                kind: FILE_KIND_BASE + f.op as u16,
                path: f.path,
                name: f.target,
            },
        }
    }

    /// The owned copy a notification carries; `None` when the copies cannot be allocated.
    fn owned(&self) -> Option<OwnedSubject> {
        Some(match self {
            Request::Registry(r) => OwnedSubject::Registry {
                op: r.op,
                flags: r.flags,
                value_type: r.value_type,
                data_size: r.data_size,
                key: try_copy(r.key)?,
                name: try_copy(r.name)?,
            },
            Request::File(f) => OwnedSubject::File {
                op: f.op,
                flags: f.flags,
                desired_access: f.desired_access,
                create_disposition: f.create_disposition,
                path: try_copy(f.path)?,
                target: try_copy(f.target)?,
            },
        })
    }
}

/// Why the kernel allowed or denied without (or after) asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The service's own process (excluded on connect).
    Excluded,
    /// The process belongs to no session: never blocked, high-risk keys notified.
    Unsandboxed,
    /// A session read the policy does not need to see (no rule can decide reads, or the read lies
    /// outside the compiled read scope).
    ReadNotQueried,
    /// Answered from the cache.
    Cached,
    /// The service answered.
    Service,
    /// The service could not answer; fail-open allowed it.
    FailOpen,
    /// The service could not answer; fail-closed denied it.
    FailClosed,
    /// The service could not answer in fail-open mode, but the key is critical: denied.
    CriticalWhileUnavailable,
    /// A held operation's final decision.
    Approval,
    /// A held operation ran out of time, or the service went away while it was held.
    ApprovalExpired,
    /// The hold could not start (duplicate ticket, too many holds, or no memory for it).
    HoldRefused,
    /// The requesting thread is being terminated (its query or hold was interrupted): denied,
    /// and never counted against the service (one process must not trip the machine-wide
    /// breaker by killing its own threads).
    RequesterTerminating,
}

/// What the driver does next with an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Allow(Why),
    Deny(Why),
    /// Send the request (see [`KernelCore::encode_request`]) with this timeout, then call
    /// [`KernelCore::complete`].
    Query {
        token: u64,
        timeout_ms: u32,
    },
}

/// What became of a query.
#[derive(Debug, Clone, Copy)]
pub enum QueryOutcome<'a> {
    /// The reply bytes after the FILTER_REPLY_HEADER.
    Reply(&'a [u8]),
    /// FltSendMessage returned STATUS_TIMEOUT (a success code that means no answer).
    Timeout,
    /// FltSendMessage failed, or the reply was malformed.
    Error,
    /// No service connected when sending.
    NotConnected,
    /// The send was interrupted because the requesting thread is terminating
    /// (STATUS_THREAD_IS_TERMINATING, or any failed send from a terminating thread).
    RequesterTerminating,
}

/// The verdict after a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow(Why),
    Deny(Why),
    /// Hold the thread: wait (alertably, at most until `deadline`) for a wake for `ticket`, then
    /// call [`KernelCore::hold_status`].
    Hold {
        ticket: u32,
        deadline: Millis,
    },
}

/// The result of a user → kernel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserMessageResult {
    /// Bytes of the SendResult written to the output buffer (0 if it was too small).
    pub written: usize,
    /// A held operation whose final decision arrived: wake its thread.
    pub wake: Option<u32>,
}

/// The kernel core. The driver keeps one behind a lock; every method is short and never waits.
#[derive(Debug)]
pub struct KernelCore {
    config: DriverConfig,
    cache: DecisionCache,
    breaker: FailModeBreaker,
    sessions: SessionTable,
    pending: PendingTable,
    notifications: NotificationQueue,
    high_risk: HighRiskSet,
    client: Option<Client>,
    excluded: Option<u32>,
    transitions: Option<Transition>,
    counters: [u64; Counter::COUNT],
    /// The compiled read scope of this connection; `None` until the service sends one (then
    /// every session read is queried while QUERY_READS is set).
    read_scope: Option<ReadScope>,
}

#[derive(Debug, Clone, Copy)]
struct Client {
    pid: u32,
    handshaken: bool,
}

impl KernelCore {
    /// A core with the guide's defaults. `seed` keys the internal hashes (draw it at load).
    pub fn new(seed: u64) -> Self {
        Self::with_high_risk(seed, HighRiskSet::builtin())
    }

    /// [`KernelCore::new`] with fallible allocation (the driver's `DriverEntry`); `None` when
    /// memory runs out.
    pub fn try_new(seed: u64) -> Option<Self> {
        Some(Self::with_high_risk(seed, HighRiskSet::try_builtin()?))
    }

    fn with_high_risk(seed: u64, high_risk: HighRiskSet) -> Self {
        let config = DriverConfig::DEFAULT;
        KernelCore {
            config,
            cache: DecisionCache::new(config.cache_max_entries as usize, seed),
            breaker: FailModeBreaker::new(config.max_consecutive_failures),
            sessions: SessionTable::new(seed.rotate_left(17)),
            pending: PendingTable::default(),
            notifications: NotificationQueue::default(),
            high_risk,
            client: None,
            excluded: None,
            transitions: None,
            counters: [0; Counter::COUNT],
            read_scope: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// First step for an intercepted operation.
    pub fn begin(&mut self, now: Millis, caller: Caller, req: &Request<'_>) -> Step {
        if self.excluded == Some(caller.pid) {
            self.count(Counter::ExcludedOperations);
            return Step::Allow(Why::Excluded);
        }
        let Some(session) = self.sessions.lookup(caller.pid) else {
            self.count(Counter::UnsandboxedOperations);
            if let Request::Registry(r) = req
                && self.report_unsandboxed(r)
            {
                self.notify(NotifyReason::HighRiskUnsandboxed, true, 0, 0, caller, req);
            }
            return Step::Allow(Why::Unsandboxed);
        };
        if req.is_read()
            && (self.config.flags & CONFIG_QUERY_READS == 0 || !self.read_in_scope(req))
        {
            // Reported one-way: every read under NOTIFY_READS (the policy's `log_all`), and
            // always a read of a built-in high-risk location, which the policy logs.
            let high_risk = matches!(req, Request::Registry(r)
                if self.high_risk.classify_op(r.key, r.name).is_some());
            if self.config.flags & CONFIG_NOTIFY_READS != 0 || high_risk {
                self.notify(NotifyReason::Monitored, true, 0, session.token, caller, req);
            }
            self.count(Counter::AllowDecisions);
            return Step::Allow(Why::ReadNotQueried);
        }
        if req.truncated() {
            self.count(Counter::TruncatedPaths);
        } else if let Some(hit) = self.cache.lookup(now, &req.cache_key(session.token)) {
            self.count(Counter::CacheHitCount);
            if hit.flags != 0 {
                self.notify(
                    NotifyReason::CachedDecision,
                    hit.allow,
                    hit.flags,
                    session.token,
                    caller,
                    req,
                );
            }
            return if hit.allow {
                self.count(Counter::AllowDecisions);
                Step::Allow(Why::Cached)
            } else {
                self.count(Counter::DenyDecisions);
                Step::Deny(Why::Cached)
            };
        } else {
            self.count(Counter::CacheMissCount);
        }
        let connected = self.client.is_some_and(|c| c.handshaken);
        match self.breaker.gate(now, connected) {
            Gate::Query | Gate::Probe => {
                self.count(match req {
                    Request::Registry(_) => Counter::RegistryPolicyQueries,
                    Request::File(_) => Counter::FilePolicyQueries,
                });
                Step::Query {
                    token: session.token,
                    timeout_ms: self.config.policy_query_timeout_ms,
                }
            }
            Gate::Closed => self.unavailable(caller, req, session.token).into_step(),
        }
    }

    /// Whether an operation of a process outside every session is reported: writes to high-risk
    /// keys, and reads only of the credential stores (reads of the other high-risk keys, such as
    /// `Policies` or `CLSID\*\InprocServer32`, happen at every process start and COM activation).
    pub fn report_unsandboxed(&self, r: &RegistryOp<'_>) -> bool {
        if r.op.is_read() {
            self.high_risk.is_credential_store(r.key)
        } else {
            self.high_risk.classify_op(r.key, r.name).is_some()
        }
    }

    /// Every process id in a session (the driver mirrors them in a lock-free filter).
    pub fn session_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.sessions.pids()
    }

    /// Writes the request for a [`Step::Query`] (after the FILTER_MESSAGE_HEADER) into `buf`;
    /// returns its length.
    pub fn encode_request(
        &self,
        caller: Caller,
        req: &Request<'_>,
        token: u64,
        buf: &mut [u8],
    ) -> Result<usize, agentsh_wire::Error> {
        match req {
            Request::Registry(r) => {
                let (key_path, key_cut) = Utf16Buf::from_units_truncating(r.key);
                let (value_name, name_cut) = Utf16Buf::from_units_truncating(r.name);
                let repr = RegistryRequestRepr {
                    session_token: token,
                    process_id: caller.pid,
                    thread_id: caller.tid,
                    operation: r.op,
                    flags: r.flags.with_cuts(key_cut, name_cut),
                    value_type: r.value_type,
                    data_size: r.data_size,
                    key_path,
                    value_name,
                };
                repr.emit(buf)?;
                Ok(registry::LEN)
            }
            Request::File(f) => {
                let (path, path_cut) = Utf16Buf::from_units_truncating(f.path);
                let (target_path, target_cut) = Utf16Buf::from_units_truncating(f.target);
                let repr = FileRequestRepr {
                    session_token: token,
                    process_id: caller.pid,
                    thread_id: caller.tid,
                    operation: f.op,
                    flags: f.flags.with_cuts(path_cut, target_cut),
                    desired_access: f.desired_access,
                    create_disposition: f.create_disposition,
                    path,
                    target_path,
                };
                repr.emit(buf)?;
                Ok(file::LEN)
            }
        }
    }

    /// Second step: what the query produced.
    pub fn complete(
        &mut self,
        now: Millis,
        caller: Caller,
        req: &Request<'_>,
        token: u64,
        outcome: QueryOutcome<'_>,
    ) -> Verdict {
        if let QueryOutcome::RequesterTerminating = outcome {
            // Not the service's failure: no breaker count, no fail-open answer.
            self.count(Counter::DenyDecisions);
            return Verdict::Deny(Why::RequesterTerminating);
        }
        let reply = match outcome {
            QueryOutcome::Reply(bytes) => PolicyResponseRepr::decode(bytes).ok(),
            _ => None,
        };
        let Some(reply) = reply else {
            match outcome {
                QueryOutcome::Timeout => self.count(Counter::PolicyQueryTimeouts),
                QueryOutcome::NotConnected => {}
                _ => self.count(Counter::PolicyQueryErrors),
            }
            let t = self.breaker.record_failure();
            self.transition(t);
            return self.unavailable(caller, req, token);
        };
        let t = self.breaker.record_success();
        self.transition(t);
        match reply.decision {
            Decision::Pending => {
                self.count(Counter::PendingDecisions);
                let grace = self.config.pending_grace_ms;
                match self.pending.begin_in_session(
                    token,
                    reply.approval_ticket,
                    now,
                    reply.approval_timeout_secs,
                    grace,
                ) {
                    Ok(deadline) => Verdict::Hold {
                        ticket: reply.approval_ticket,
                        deadline,
                    },
                    Err(_) => {
                        self.count(Counter::DenyDecisions);
                        // The service opened an approval for this ticket: tell it the kernel
                        // denied instead, so that it withdraws the approval.
                        self.notify(
                            NotifyReason::HoldRefused,
                            false,
                            reply.approval_ticket,
                            token,
                            caller,
                            req,
                        );
                        Verdict::Deny(Why::HoldRefused)
                    }
                }
            }
            decision => {
                let allow = decision == Decision::Allow;
                let flags = u32::from(reply.notify) | (u32::from(reply.log) << 1);
                if !req.truncated() {
                    self.cache.insert(
                        now,
                        &req.cache_key(token),
                        Cached { allow, flags },
                        reply.cache_ttl,
                        self.config.cache_default_ttl_ms,
                    );
                }
                if allow {
                    self.count(Counter::AllowDecisions);
                    Verdict::Allow(Why::Service)
                } else {
                    self.count(Counter::DenyDecisions);
                    Verdict::Deny(Why::Service)
                }
            }
        }
    }

    /// Where a held operation stands. `Waiting` means: wait again until the deadline.
    pub fn hold_status(
        &mut self,
        now: Millis,
        caller: Caller,
        req: &Request<'_>,
        ticket: u32,
    ) -> Verdict {
        match self.pending.poll(ticket, now) {
            HoldStatus::Waiting { deadline } => Verdict::Hold { ticket, deadline },
            HoldStatus::Decided { allow: true } => {
                self.count(Counter::AllowDecisions);
                Verdict::Allow(Why::Approval)
            }
            HoldStatus::Decided { allow: false } => {
                self.count(Counter::DenyDecisions);
                Verdict::Deny(Why::Approval)
            }
            HoldStatus::Expired | HoldStatus::Unknown => {
                self.count(Counter::PendingExpired);
                self.count(Counter::DenyDecisions);
                let token = self.sessions.lookup(caller.pid).map_or(0, |s| s.token);
                self.notify(NotifyReason::PendingExpired, false, 0, token, caller, req);
                Verdict::Deny(Why::ApprovalExpired)
            }
        }
    }

    /// The thread holding `ticket` stopped waiting because it is being terminated: its hold is
    /// forgotten and the operation denied.
    pub fn abandon_hold(&mut self, ticket: u32) -> Verdict {
        self.pending.forget(ticket);
        self.count(Counter::DenyDecisions);
        Verdict::Deny(Why::RequesterTerminating)
    }

    /// A process was created by the creating thread's process `creating_pid` (not the parent
    /// attribute `_parent_pid`, which can be forged).
    pub fn on_process_created(
        &mut self,
        pid: u32,
        creating_pid: u32,
        parent_pid: u32,
        image: &[u16],
    ) -> Option<SessionRef> {
        self.on_process_created_checked(pid, creating_pid, parent_pid, image)
            .ok()
            .flatten()
    }

    /// [`KernelCore::on_process_created`], but a session's child that cannot be tracked (the
    /// process table is full or memory ran out) is an error: the driver then fails the process
    /// creation instead of letting the child run outside the session.
    pub fn on_process_created_checked(
        &mut self,
        pid: u32,
        creating_pid: u32,
        parent_pid: u32,
        image: &[u16],
    ) -> Result<Option<SessionRef>, SessionError> {
        let Some(session) = self.sessions.process_created(pid, creating_pid)? else {
            return Ok(None);
        };
        self.process_event(
            session,
            pid,
            creating_pid,
            parent_pid,
            ProcessEventKind::Created,
            image,
        );
        Ok(Some(session))
    }

    /// A process exited; returns the session it was in (whose service is told).
    pub fn on_process_exited(&mut self, pid: u32) -> Option<SessionRef> {
        if self.excluded == Some(pid) {
            self.excluded = None;
        }
        let session = self.sessions.process_exited(pid)?;
        self.process_event(session, pid, 0, 0, ProcessEventKind::Exited, &[]);
        Some(session)
    }

    /// Tells the service a session process started or exited (one-way, through the same bounded
    /// queue as decisions; nobody to tell while no service is connected).
    fn process_event(
        &mut self,
        session: SessionRef,
        pid: u32,
        creating_pid: u32,
        parent_pid: u32,
        kind: ProcessEventKind,
        image: &[u16],
    ) {
        if self.client.is_none() {
            return;
        }
        let Some(image) = try_copy(image) else {
            self.notifications.count_dropped();
            return;
        };
        self.notifications.push(Outgoing::Process(ProcessEvent {
            session_id: session.id,
            process_id: pid,
            creating_process_id: creating_pid,
            parent_process_id: parent_pid,
            kind,
            // The exit notification carries no status; the service does not need one.
            exit_status: 0,
            image,
        }));
    }

    /// A client connected to the port from process `pid`. Refused while another is connected.
    pub fn on_client_connected(&mut self, pid: u32) -> Result<(), SendStatus> {
        if self.client.is_some() {
            return Err(SendStatus::Busy);
        }
        self.client = Some(Client {
            pid,
            handshaken: false,
        });
        Ok(())
    }

    /// The client disconnected: no exclusion, no cached decisions, held operations denied.
    /// Returns the tickets of held operations to wake.
    pub fn on_client_disconnected(&mut self) -> alloc::vec::Vec<u32> {
        self.client = None;
        self.excluded = None;
        self.cache.flush_all();
        let t = self.breaker.record_disconnect();
        self.transition(t);
        self.pending.abandon_all()
    }

    /// Whether a session read lies in the compiled read scope (every read does until the service
    /// sends one).
    fn read_in_scope(&self, req: &Request<'_>) -> bool {
        match (&self.read_scope, req) {
            (None, _) => true,
            (Some(s), Request::Registry(r)) => s.covers_key(r.key),
            (Some(s), Request::File(f)) => s.covers_path(f.path),
        }
    }

    /// The number of prefixes in the read scope in force, `None` when none was sent.
    pub fn read_scope_len(&self) -> Option<usize> {
        self.read_scope.as_ref().map(ReadScope::len)
    }

    fn set_read_scope(&mut self, input: &[u8]) -> SendResult {
        let status = |status| SendResult::Status {
            message_type: MessageType::SetReadScope,
            status,
        };
        match self.client {
            Some(Client {
                handshaken: true, ..
            }) => {}
            _ => return status(SendStatus::HandshakeRequired),
        }
        let Ok(view) = ReadScopeView::new_checked(input) else {
            return status(SendStatus::Malformed);
        };
        let Some(scope) = ReadScope::try_from_view(&view) else {
            return status(SendStatus::NoResources);
        };
        // Replaced whole: a read is decided under the old scope or the new one, never a mix.
        self.read_scope = Some(scope);
        status(SendStatus::Ok)
    }

    /// Handles a user → kernel message from the connected client and writes the SendResult.
    pub fn on_user_message(&mut self, input: &[u8], output: &mut [u8]) -> UserMessageResult {
        let mut wake = None;
        let decoded = if MessageType::of(input) == Ok(MessageType::SetReadScope) {
            Ok(None)
        } else {
            ControlRepr::decode(input).map(Some)
        };
        let result = match decoded {
            Err(e) => {
                let status = match e {
                    agentsh_wire::Error::BadValue { field, .. } if is_config_field(field) => {
                        SendStatus::OutOfRange
                    }
                    _ => SendStatus::Malformed,
                };
                let message_type = MessageType::of(input).unwrap_or(MessageType::Hello);
                SendResult::Status {
                    message_type,
                    status,
                }
            }
            Ok(None) => self.set_read_scope(input),
            Ok(Some(msg)) => self.apply(msg, &mut wake),
        };
        let written = if result.emit(output).is_ok() {
            result.buffer_len()
        } else {
            0
        };
        UserMessageResult { written, wake }
    }

    fn apply(&mut self, msg: ControlRepr, wake: &mut Option<u32>) -> SendResult {
        let message_type = msg.message_type();
        let status = |status| SendResult::Status {
            message_type,
            status,
        };
        let Some(client) = self.client else {
            return status(SendStatus::HandshakeRequired);
        };
        if let ControlRepr::Hello { protocol_version } = msg {
            if protocol_version != PROTOCOL_VERSION {
                return SendResult::Hello {
                    status: SendStatus::VersionMismatch,
                    kernel_version: PROTOCOL_VERSION,
                };
            }
            self.client = Some(Client {
                pid: client.pid,
                handshaken: true,
            });
            // A (re)connected service may run another policy: start from an empty cache and
            // query every read until it sends its read scope.
            self.cache.flush_all();
            self.read_scope = None;
            let t = self.breaker.record_connect();
            self.transition(t);
            return SendResult::Hello {
                status: SendStatus::Ok,
                kernel_version: PROTOCOL_VERSION,
            };
        }
        if !client.handshaken {
            return status(SendStatus::HandshakeRequired);
        }
        match msg {
            ControlRepr::Hello { .. } => status(SendStatus::Ok),
            ControlRepr::SetConfig(config) => {
                self.config = config;
                self.cache.set_capacity(config.cache_max_entries as usize);
                self.breaker
                    .set_max_failures(config.max_consecutive_failures);
                status(SendStatus::Ok)
            }
            ControlRepr::GetMetrics => SendResult::Metrics(self.metrics()),
            ControlRepr::RegisterSession {
                root_process_id,
                session_token,
                session_id,
                flags,
                ..
            } => {
                let r = SessionRef {
                    token: session_token,
                    id: session_id,
                    flags,
                };
                status(session_status(self.sessions.register(root_process_id, r)))
            }
            ControlRepr::UnregisterSession { session_token } => {
                self.cache.flush_session(session_token);
                status(session_status(
                    self.sessions.unregister(session_token).map(|_| ()),
                ))
            }
            ControlRepr::RotateSessionToken {
                old_token,
                new_token,
            } => {
                let r = self.sessions.rotate(old_token, new_token);
                if r.is_ok() {
                    self.cache.flush_session(old_token);
                }
                status(session_status(r))
            }
            ControlRepr::ExcludeSelf => {
                self.excluded = Some(client.pid);
                status(SendStatus::Ok)
            }
            ControlRepr::FlushCache { session_token: 0 } => {
                self.cache.flush_all();
                status(SendStatus::Ok)
            }
            ControlRepr::FlushCache { session_token } => {
                self.cache.flush_session(session_token);
                status(SendStatus::Ok)
            }
            ControlRepr::QuerySession { process_id } => match self.sessions.lookup(process_id) {
                Some(r) => SendResult::Session { session_id: r.id },
                None => status(SendStatus::NotFound),
            },
            ControlRepr::FinalDecision {
                ticket, decision, ..
            } => {
                if self.pending.resolve(ticket, decision == Decision::Allow) {
                    *wake = Some(ticket);
                    status(SendStatus::Ok)
                } else {
                    status(SendStatus::NotFound)
                }
            }
        }
    }

    /// The next notification to send (one-way, ReplyLength 0).
    pub fn next_notification(&mut self) -> Option<Outgoing> {
        self.notifications.pop()
    }

    /// Whether a notification waits to be sent (the driver schedules a work item only then).
    pub fn has_notifications(&self) -> bool {
        !self.notifications.is_empty()
    }

    /// Drops every waiting notification, counting each as dropped (the service is not taking
    /// them); returns how many.
    pub fn drop_notifications(&mut self) -> u64 {
        let mut n = 0;
        while self.notifications.pop().is_some() {
            self.notifications.count_dropped();
            n += 1;
        }
        n
    }

    /// A breaker transition since the last call, for the driver's event log.
    pub fn take_transition(&mut self) -> Option<Transition> {
        self.transitions.take()
    }

    /// The excluded process, if any.
    pub fn excluded_process(&self) -> Option<u32> {
        self.excluded
    }

    /// The session of `pid`.
    pub fn session_of(&self, pid: u32) -> Option<SessionRef> {
        self.sessions.lookup(pid)
    }

    /// The risk of a registry key in the kernel's high-risk set.
    pub fn key_risk(&self, key: &[u16]) -> Option<Risk> {
        self.high_risk.classify(key)
    }

    /// One snapshot of every counter.
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics(self.counters);
        let unavailable = self.breaker.is_tripped() || !self.client.is_some_and(|c| c.handshaken);
        m.set(
            Counter::ConsecutiveFailures,
            u64::from(self.breaker.consecutive_failures()),
        );
        m.set(
            Counter::FailOpenMode,
            u64::from(unavailable && self.config.fail_mode == FailMode::Open),
        );
        m.set(Counter::FailMode, self.config.fail_mode as u64);
        m.set(Counter::CacheEntries, self.cache.len() as u64);
        m.set(Counter::CacheEvictions, self.cache.evictions());
        m.set(Counter::NotificationsQueued, self.notifications.queued());
        m.set(Counter::NotificationsDropped, self.notifications.dropped());
        m.set(
            Counter::ActiveSessions,
            self.sessions.session_count() as u64,
        );
        m.set(
            Counter::TrackedProcesses,
            self.sessions.process_count() as u64,
        );
        m.set(
            Counter::ServiceConnected,
            u64::from(self.client.is_some_and(|c| c.handshaken)),
        );
        m
    }

    /// The fail-mode decision when the service cannot answer.
    fn unavailable(&mut self, caller: Caller, req: &Request<'_>, token: u64) -> Verdict {
        let critical_write = match req {
            Request::Registry(r) => {
                !r.op.is_read() && self.high_risk.classify_op(r.key, r.name) == Some(Risk::Critical)
            }
            Request::File(_) => false,
        };
        let (allow, why, reason) = match self.config.fail_mode {
            FailMode::Open if critical_write => (
                false,
                Why::CriticalWhileUnavailable,
                NotifyReason::FailClosed,
            ),
            FailMode::Open => (true, Why::FailOpen, NotifyReason::FailOpen),
            FailMode::Closed => (false, Why::FailClosed, NotifyReason::FailClosed),
        };
        self.notify(reason, allow, 0, token, caller, req);
        if allow {
            self.count(Counter::FailOpenDecisions);
            self.count(Counter::AllowDecisions);
            Verdict::Allow(why)
        } else {
            self.count(Counter::FailClosedDecisions);
            self.count(Counter::DenyDecisions);
            Verdict::Deny(why)
        }
    }

    fn notify(
        &mut self,
        reason: NotifyReason,
        allowed: bool,
        flags: u32,
        token: u64,
        caller: Caller,
        req: &Request<'_>,
    ) {
        let Some(subject) = req.owned() else {
            self.notifications.count_dropped();
            return;
        };
        self.notifications.push(Outgoing::Decision(Notification {
            reason,
            allowed,
            flags,
            session_token: token,
            process_id: caller.pid,
            thread_id: caller.tid,
            subject,
        }));
    }

    fn transition(&mut self, t: Option<Transition>) {
        if t.is_some() {
            self.transitions = t;
        }
    }

    fn count(&mut self, c: Counter) {
        self.counters[c as usize] += 1;
    }
}

impl Verdict {
    fn into_step(self) -> Step {
        match self {
            Verdict::Allow(w) => Step::Allow(w),
            Verdict::Deny(w) => Step::Deny(w),
            Verdict::Hold { .. } => Step::Deny(Why::HoldRefused),
        }
    }
}

fn session_status(r: Result<(), SessionError>) -> SendStatus {
    match r {
        Ok(()) => SendStatus::Ok,
        Err(SessionError::AlreadyExists) => SendStatus::AlreadyExists,
        Err(SessionError::NotFound) => SendStatus::NotFound,
        Err(SessionError::Full) => SendStatus::NoResources,
    }
}

fn is_config_field(field: &str) -> bool {
    [
        DriverConfig::POLICY_QUERY_TIMEOUT_MS,
        DriverConfig::MAX_CONSECUTIVE_FAILURES,
        DriverConfig::CACHE_MAX_ENTRIES,
        DriverConfig::CACHE_DEFAULT_TTL_MS,
        DriverConfig::PENDING_GRACE_MS,
    ]
    .iter()
    .any(|p| p.name == field)
}
