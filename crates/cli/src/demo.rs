//! `agentsh demo`: the design's five manual scenarios, end to end, on Linux: a user side deciding
//! with the embedded default policy, connected to the driver emulator over a local socket. Prints
//! the outcomes with rule, risk and technique, then the events and the metrics; exits 1 if any
//! outcome differs from the design's expectation.
//!
//! The user side is [`PolicyResponder`], a minimal stand-in for agentsh-service (wire handshake,
//! policy decisions, approvals with a timer, events), used until the service's library API can be
//! started in-process; the demo only talks to it through [`DemoUserSide`].

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::frame::{FrameKind, HEADER_LEN, encode_frame, read_frame};
use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::replay::{LineReport, RegistrarFuture, SessionRegistrar, replay};
use agentsh_emulator::scenarios::{APPROVED_KEY_MARKER, FIVE_SCENARIOS};
use agentsh_emulator::table::TextTable;
use agentsh_emulator::trace::Trace;
use agentsh_policy::{Access, Decision, Engine, Policy, RegistryQuery, SessionContext};
use agentsh_wire::control::{ControlRepr, Counter, Metrics, SendResult, SendStatus};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader};
use agentsh_wire::notify::{NotifyReason, NotifyRepr, Subject};
use agentsh_wire::op::{Decision as WireDecision, MessageType};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};
use agentsh_wire::{Operation, PROTOCOL_VERSION, Utf16Buf};
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds an approval waits for a person in this demo (the default policy says 30)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=30))]
    approval_timeout: u32,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// What the demo needs from the user side (the service): sessions, approvals, events, metrics.
trait DemoUserSide: SessionRegistrar {
    /// Pending approvals: (ticket, rendered message, key).
    fn pending_approvals(&self) -> Vec<(u32, String, String)>;
    async fn approve(&self, ticket: u32) -> Result<(), String>;
    /// What the user side decided or logged for an operation line, by pid and target.
    fn decision_for(&self, pid: u32, target: &str) -> Option<Decided>;
    fn events(&self) -> Vec<Value>;
    /// Events not kept because the bounded record was full.
    fn events_dropped(&self) -> u64;
    /// The driver's counters, fetched through the port (GetMetrics).
    async fn driver_metrics(&self) -> Result<Metrics, String>;
}

/// The policy's view of one operation, for the outcome table.
#[derive(Debug, Clone, Default)]
struct Decided {
    rule: String,
    risk: String,
    technique: String,
    decision: String,
    /// Why the user side decided so: a rule, a person's approval, the approval's timeout, or
    /// monitoring of a process outside the sandbox.
    why: String,
}

async fn demo(args: DemoArgs) -> Result<bool, String> {
    let dir = std::env::temp_dir().join(format!("agentsh-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating `{}`: {e}", dir.display()))?;
    let socket = dir.join("agentsh.sock");
    let result = run_scenarios(&socket, args).await;
    // The socket and its directory are the demo's own; leaving them would only litter /tmp.
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(&dir);
    result
}

async fn run_scenarios(socket: &Path, args: DemoArgs) -> Result<bool, String> {
    let trace = Trace::parse("five-scenarios.jsonl", FIVE_SCENARIOS).map_err(|e| e.to_string())?;
    let policy = Policy::embedded_default().map_err(|e| format!("embedded default policy: {e}"))?;
    let emulator = Arc::new(
        Emulator::start(socket, u64::from(std::process::id()))
            .map_err(|e| format!("listening on `{}`: {e}", socket.display()))?,
    );
    let user =
        PolicyResponder::connect(socket, policy.engine().clone(), args.approval_timeout).await?;

    println!("agentsh demo: the design's five manual scenarios through the driver emulator");
    println!(
        "user side: policy stand-in with the embedded default policy; approvals time out after {} s here (the policy says 30 s)\n",
        args.approval_timeout
    );

    let approver = {
        let user = user.clone();
        tokio::spawn(async move { approve_marked(&user).await })
    };
    let reports = replay(&emulator, &user, "five-scenarios.jsonl", &trace, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    approver.abort();
    // GetMetrics travels behind every notification already sent, so once it is answered the user
    // side has seen them all.
    let metrics = user.driver_metrics().await?;

    print!("{}", outcome_table(&reports, &user));
    println!("\nevents ({} dropped):", user.events_dropped());
    for event in user.events() {
        println!("{event}");
    }
    println!("\ndriver metrics (GetMetrics through the port):");
    print!("{}", metrics_table(&metrics));
    let failed: Vec<&LineReport> = reports.iter().filter(|r| !r.as_expected()).collect();
    if failed.is_empty() {
        println!("\nall {} scenarios behaved as designed", reports.len());
        Ok(true)
    } else {
        for r in &failed {
            eprintln!(
                "scenario `{}` gave {:?}, expected {:?}",
                r.label.as_deref().unwrap_or("?"),
                r.verdict,
                r.expected
            );
        }
        Ok(false)
    }
}

/// The demo's approver: approves the service key of scenario 3, leaves every other request alone.
async fn approve_marked(user: &PolicyResponder) {
    let mut seen = Vec::new();
    loop {
        for (ticket, message, key) in user.pending_approvals() {
            if seen.contains(&ticket) {
                continue;
            }
            seen.push(ticket);
            if key.to_ascii_lowercase().contains(APPROVED_KEY_MARKER) {
                println!("approval requested: {message} -> approved by the demo's approver");
                if let Err(e) = user.approve(ticket).await {
                    eprintln!("error: approving ticket {ticket}: {e}");
                }
            } else {
                println!("approval requested: {message} -> left unanswered");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn outcome_table(reports: &[LineReport], user: &impl DemoUserSide) -> TextTable {
    let mut table = TextTable::new([
        "scenario",
        "outcome",
        "expected",
        "rule",
        "risk",
        "technique",
        "decided by",
        "kernel",
    ]);
    for r in reports {
        let decided = user.decision_for(r.pid, &r.target).unwrap_or_default();
        let outcome = match r.verdict.status() {
            0 => "success",
            _ => "ACCESS_DENIED",
        };
        let expected = match r.expected {
            Some(e) if r.as_expected() => format!("{e:?} ok").to_lowercase(),
            Some(e) => format!("{e:?} MISMATCH").to_lowercase(),
            None => String::new(),
        };
        table.row([
            r.label
                .clone()
                .unwrap_or_else(|| format!("line {}", r.line)),
            format!("{outcome} ({})", r.status),
            expected,
            decided.rule,
            decided.risk,
            decided.technique,
            decided.why,
            r.reason.name().to_owned(),
        ]);
    }
    table
}

fn metrics_table(metrics: &Metrics) -> TextTable {
    let mut table = TextTable::new(["counter", "value"]);
    for c in Counter::ALL {
        table.row([c.name().to_owned(), metrics.get(c).to_string()]);
    }
    let rate = metrics
        .cache_hit_rate_percent()
        .map_or("n/a".to_owned(), |r| format!("{r:.1}%"));
    table.row(["cache hit rate (hits / (hits + misses))".to_owned(), rate]);
    table
}

/// Events (and per-operation decisions) the stand-in keeps; the demo needs a handful, a load run
/// must not grow memory.
const KEPT_RECORDS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Session {
    id: u64,
    context: SessionContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApprovalState {
    Pending,
    Approved,
    TimedOut,
}

struct Approval {
    ticket: u32,
    message: String,
    state: ApprovalState,
    request: RegistryRequestRepr,
    verdict: agentsh_policy::Verdict,
    session_id: u64,
}

struct State {
    engine: Arc<Engine>,
    sessions: HashMap<u64, Session>,
    tokens_by_root: HashMap<u32, u64>,
    approvals: Vec<Approval>,
    decided: HashMap<(u32, String), Decided>,
    events: Vec<Value>,
    /// Records not kept because [`KEPT_RECORDS`] were already kept.
    dropped: u64,
    next_ticket: u32,
    approval_timeout: u32,
}

/// The stand-in user side: connects to the port like the service, answers registry checks with
/// the policy engine, holds approvals with a timer and records events.
#[derive(Clone)]
struct PolicyResponder {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    results: Arc<Mutex<VecDeque<oneshot::Sender<Vec<u8>>>>>,
    state: Arc<Mutex<State>>,
}

fn target_of(request: &RegistryRequestRepr) -> String {
    // The same spelling the emulator's reports use: key, then `\value` or `-> new name`.
    let key = request.key_path.to_string();
    let value = request.value_name.to_string();
    match (request.operation, value.is_empty()) {
        (Operation::RenameKey, _) => format!("{key} -> {value}"),
        (_, true) => key,
        (_, false) => format!("{key}\\{value}"),
    }
}

fn event_type(op: Operation) -> &'static str {
    match op {
        Operation::QueryValue
        | Operation::EnumKeys
        | Operation::EnumValues
        | Operation::OpenKey
        | Operation::SaveKey => "registry_read",
        Operation::CreateKey => "registry_create",
        Operation::DeleteKey | Operation::DeleteValue => "registry_delete",
        Operation::RenameKey => "registry_rename",
        _ => "registry_write",
    }
}

impl PolicyResponder {
    async fn connect(
        socket: &Path,
        engine: Arc<Engine>,
        approval_timeout: u32,
    ) -> Result<Self, String> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to `{}`: {e}", socket.display()))?;
        let (read, write) = stream.into_split();
        let user = PolicyResponder {
            writer: Arc::new(tokio::sync::Mutex::new(write)),
            results: Arc::new(Mutex::new(VecDeque::new())),
            state: Arc::new(Mutex::new(State {
                engine,
                sessions: HashMap::new(),
                tokens_by_root: HashMap::new(),
                approvals: Vec::new(),
                decided: HashMap::new(),
                events: Vec::new(),
                dropped: 0,
                next_ticket: 1,
                approval_timeout,
            })),
        };
        let reader = user.clone();
        tokio::spawn(async move {
            let mut read = BufReader::new(read);
            loop {
                match read_frame(&mut read).await {
                    Ok(Some((FrameKind::SendResult, body))) => {
                        if let Some(slot) = lock(&reader.results).pop_front() {
                            let _ = slot.send(body);
                        }
                    }
                    Ok(Some((FrameKind::KernelMessage, body))) => {
                        reader.on_kernel_message(&body).await
                    }
                    Ok(Some((kind, _))) => {
                        eprintln!("error: the driver sent a {kind:?} frame");
                        return;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        eprintln!("error: reading from the driver: {e}");
                        return;
                    }
                }
            }
        });
        let hello = user
            .send(&ControlRepr::Hello {
                protocol_version: PROTOCOL_VERSION,
            })
            .await?;
        if hello.status() != SendStatus::Ok {
            return Err(format!(
                "driver refused the handshake: {:?}",
                hello.status()
            ));
        }
        let excluded = user.send(&ControlRepr::ExcludeSelf).await?;
        if excluded.status() != SendStatus::Ok {
            return Err(format!(
                "driver refused to exclude the user side: {:?}",
                excluded.status()
            ));
        }
        Ok(user)
    }

    async fn send(&self, message: &ControlRepr) -> Result<SendResult, String> {
        let mut buf = vec![0u8; message.buffer_len()];
        message
            .emit(&mut buf)
            .map_err(|e| format!("encoding {:?}: {e:?}", message.message_type()))?;
        let frame =
            encode_frame(FrameKind::UserSend, &[&buf]).ok_or("message larger than a frame")?;
        let (tx, rx) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            lock(&self.results).push_back(tx);
            writer
                .write_all(&frame)
                .await
                .map_err(|e| format!("writing to the driver: {e}"))?;
        }
        let body = rx
            .await
            .map_err(|_| "the driver closed the connection".to_owned())?;
        let (status, output) = agentsh_wire::framing::split_send_result(&body)
            .map_err(|e| format!("send result: {e:?}"))?;
        if status != 0 {
            return Err(format!("the driver answered status {status:#010x}"));
        }
        SendResult::decode(message.message_type(), output)
            .map_err(|e| format!("send result: {e:?}"))
    }

    async fn reply(&self, message_id: u64, response: &PolicyResponseRepr) {
        let mut header = [0u8; HEADER_LEN];
        let mut body = vec![0u8; response.buffer_len()];
        let reply_header = FilterReplyHeader {
            status: 0,
            message_id,
        };
        if reply_header.emit(&mut header).is_err() || response.emit(&mut body).is_err() {
            eprintln!("error: reply to message {message_id} not encodable");
            return;
        }
        if let Some(frame) = encode_frame(FrameKind::UserReply, &[&header, &body]) {
            // A failed write means the driver is gone; its kernel core decides by the fail mode.
            let _ = self.writer.lock().await.write_all(&frame).await;
        }
    }

    async fn on_kernel_message(&self, body: &[u8]) {
        let Ok((header, message)) = FilterMessageHeader::split(body) else {
            return;
        };
        match MessageType::of(message) {
            Ok(MessageType::PolicyCheckRegistry) => match RegistryRequestRepr::decode(message) {
                Ok(request) => self.check(header.message_id, &request).await,
                Err(e) => eprintln!("error: malformed registry check: {e:?}"),
            },
            Ok(MessageType::Notify) => {
                if let Ok(NotifyRepr {
                    reason,
                    subject: Subject::Registry(request),
                    ..
                }) = NotifyRepr::decode(message)
                {
                    self.monitored(reason, &request);
                }
            }
            // Process events and file checks play no part in the five registry scenarios; a
            // file check left unanswered falls to the driver's fail mode.
            _ => {}
        }
    }

    fn decide(
        &self,
        request: &RegistryRequestRepr,
        sandboxed: bool,
    ) -> Option<(agentsh_policy::Verdict, u64)> {
        let state = lock(&self.state);
        let key = request.key_path.to_string();
        let value = request.value_name.to_string();
        let access = Access::from(request.operation);
        let unsandboxed_context;
        let (context, session_id) = match state.sessions.get(&request.session_token) {
            Some(s) if sandboxed => (&s.context, s.id),
            _ => {
                unsandboxed_context = SessionContext::new(None, None, None).ok()?;
                (&unsandboxed_context, 0)
            }
        };
        let query = RegistryQuery {
            value: (!matches!(
                request.operation,
                Operation::RenameKey | Operation::CreateKey | Operation::DeleteKey
            ))
            .then_some(value.as_str()),
            rename_to: (request.operation == Operation::RenameKey).then_some(value.as_str()),
            sandboxed,
            process_id: request.process_id,
            ..RegistryQuery::new(&key, access, context)
        };
        Some((state.engine.decide_registry(&query), session_id))
    }

    fn record(
        &self,
        event: &'static str,
        request: &RegistryRequestRepr,
        verdict: &agentsh_policy::Verdict,
        session_id: u64,
        decision: &str,
        reason: &str,
    ) {
        let decided = Decided {
            rule: verdict.rule.to_string(),
            risk: verdict
                .risk()
                .map_or(String::new(), |r| r.name().to_owned()),
            technique: verdict.mitre_id().unwrap_or_default().to_owned(),
            decision: decision.to_owned(),
            why: reason.to_owned(),
        };
        let mut state = lock(&self.state);
        if state.events.len() >= KEPT_RECORDS {
            // Bounded like the service's event pipeline: never grow without limit, count drops.
            state.dropped += 1;
            return;
        }
        state.events.push(json!({
            "type": event,
            "session_id": format!("{session_id:016x}"),
            "key_path": verdict.canonical,
            "value_name": request.value_name.to_string(),
            "operation": verdict.operation.name(),
            "process_id": request.process_id,
            "decision": decided.decision,
            "rule_name": decided.rule,
            "risk_level": decided.risk,
            "mitre_id": decided.technique,
            "mitre_tactic": verdict.mitre_tactic().unwrap_or_default(),
            "reason": reason,
        }));
        state
            .decided
            .insert((request.process_id, target_of(request)), decided);
    }

    async fn check(&self, message_id: u64, request: &RegistryRequestRepr) {
        let Some((verdict, session_id)) = self.decide(request, true) else {
            // Unanswered, the request falls to the driver's fail mode.
            eprintln!(
                "error: process {}: no session context to decide {:?}",
                request.process_id, request.operation
            );
            return;
        };
        let ttl =
            |v: &agentsh_policy::Verdict| v.cache_ttl.map_or(CacheTtl::None, CacheTtl::Seconds);
        let response =
            |decision, cache_ttl, approval_timeout_secs, approval_ticket| PolicyResponseRepr {
                message_type: MessageType::PolicyCheckRegistry,
                decision,
                cache_ttl,
                notify: verdict.notify,
                log: verdict.log,
                approval_timeout_secs,
                approval_ticket,
            };
        match verdict.decision {
            Decision::Allow => {
                self.record(
                    event_type(request.operation),
                    request,
                    &verdict,
                    session_id,
                    "allow",
                    "rule",
                );
                self.reply(
                    message_id,
                    &response(WireDecision::Allow, ttl(&verdict), 0, 0),
                )
                .await;
            }
            Decision::Deny => {
                self.record(
                    "registry_blocked",
                    request,
                    &verdict,
                    session_id,
                    "deny",
                    "rule",
                );
                self.reply(
                    message_id,
                    &response(WireDecision::Deny, ttl(&verdict), 0, 0),
                )
                .await;
            }
            Decision::Approve => {
                let (ticket, timeout) = {
                    let mut state = lock(&self.state);
                    let ticket = state.next_ticket;
                    state.next_ticket += 1;
                    let timeout = verdict
                        .approval_timeout_secs
                        .unwrap_or(state.approval_timeout)
                        .min(state.approval_timeout);
                    state.approvals.push(Approval {
                        ticket,
                        message: verdict.message.clone().unwrap_or_else(|| {
                            format!("{} `{}`", verdict.operation.name(), verdict.canonical)
                        }),
                        state: ApprovalState::Pending,
                        request: request.clone(),
                        verdict: verdict.clone(),
                        session_id,
                    });
                    (ticket, timeout)
                };
                self.record(
                    "registry_approval_request",
                    request,
                    &verdict,
                    session_id,
                    "approve",
                    "rule",
                );
                let pending = response(WireDecision::Pending, CacheTtl::None, timeout, ticket);
                self.reply(message_id, &pending).await;
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(timeout))).await;
                    me.finish(ticket, ApprovalState::TimedOut).await;
                });
            }
        }
    }

    /// Ends an approval once: by a person (allow) or by its timer (deny, recorded as "timeout",
    /// never as a person's denial); the driver always gets the final decision.
    async fn finish(&self, ticket: u32, outcome: ApprovalState) {
        let (request, verdict, session_id) = {
            let mut state = lock(&self.state);
            let Some(a) = state
                .approvals
                .iter_mut()
                .find(|a| a.ticket == ticket && a.state == ApprovalState::Pending)
            else {
                return;
            };
            a.state = outcome;
            (a.request.clone(), a.verdict.clone(), a.session_id)
        };
        let (decision, reason, wire) = match outcome {
            ApprovalState::Approved => ("allow", "approved", WireDecision::Allow),
            ApprovalState::Pending | ApprovalState::TimedOut => {
                ("deny", "timeout", WireDecision::Deny)
            }
        };
        self.record(
            "registry_approval_response",
            &request,
            &verdict,
            session_id,
            decision,
            reason,
        );
        match self
            .send(&ControlRepr::FinalDecision {
                ticket,
                decision: wire,
                flags: 0,
            })
            .await
        {
            Ok(r) if r.status() == SendStatus::Ok => {}
            Ok(r) => eprintln!(
                "error: final decision for ticket {ticket}: {:?}",
                r.status()
            ),
            Err(e) => eprintln!("error: final decision for ticket {ticket}: {e}"),
        }
    }

    fn monitored(&self, reason: NotifyReason, request: &RegistryRequestRepr) {
        if reason != NotifyReason::HighRiskUnsandboxed {
            return;
        }
        if let Some((verdict, _)) = self.decide(request, false) {
            let event = event_type(request.operation);
            self.record(
                event,
                request,
                &verdict,
                0,
                "allow",
                "unsandboxed: monitored and logged",
            );
        }
    }
}

impl SessionRegistrar for PolicyResponder {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        // The sandbox knows the user it runs the agent as; HKCU rules resolve against that SID.
        let context = SessionContext::new(Some(app_name), Some(workspace), Some(DEFAULT_USER_SID));
        let workspace = Utf16Buf::encode(workspace);
        Box::pin(async move {
            let context = context.map_err(|e| format!("session: {e}"))?;
            // The demo's token only has to be distinct; the service makes real ones unguessable.
            let token = 0xA5A5_0000_0000_0000 | u64::from(root_pid);
            let id = u64::from(root_pid);
            let workspace = workspace.ok_or("workspace path too long")?;
            let r = self
                .send(&ControlRepr::RegisterSession {
                    root_process_id: root_pid,
                    session_token: token,
                    session_id: id,
                    flags: 0,
                    workspace,
                })
                .await?;
            if r.status() != SendStatus::Ok {
                return Err(format!("driver refused the session: {:?}", r.status()));
            }
            let mut state = lock(&self.state);
            state.sessions.insert(token, Session { id, context });
            state.tokens_by_root.insert(root_pid, token);
            Ok(())
        })
    }

    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        Box::pin(async move {
            let token = lock(&self.state)
                .tokens_by_root
                .remove(&root_pid)
                .ok_or("no session for that process")?;
            let r = self
                .send(&ControlRepr::UnregisterSession {
                    session_token: token,
                })
                .await?;
            lock(&self.state).sessions.remove(&token);
            match r.status() {
                SendStatus::Ok => Ok(()),
                other => Err(format!("driver refused to end the session: {other:?}")),
            }
        })
    }
}

impl DemoUserSide for PolicyResponder {
    fn pending_approvals(&self) -> Vec<(u32, String, String)> {
        lock(&self.state)
            .approvals
            .iter()
            .filter(|a| a.state == ApprovalState::Pending)
            .map(|a| (a.ticket, a.message.clone(), a.verdict.canonical.clone()))
            .collect()
    }

    async fn approve(&self, ticket: u32) -> Result<(), String> {
        let pending = lock(&self.state)
            .approvals
            .iter()
            .any(|a| a.ticket == ticket && a.state == ApprovalState::Pending);
        if !pending {
            return Err(format!("no pending approval `{ticket}`"));
        }
        self.finish(ticket, ApprovalState::Approved).await;
        Ok(())
    }

    fn decision_for(&self, pid: u32, target: &str) -> Option<Decided> {
        lock(&self.state)
            .decided
            .get(&(pid, target.to_owned()))
            .cloned()
    }

    fn events(&self) -> Vec<Value> {
        lock(&self.state).events.clone()
    }

    fn events_dropped(&self) -> u64 {
        lock(&self.state).dropped
    }

    async fn driver_metrics(&self) -> Result<Metrics, String> {
        match self.send(&ControlRepr::GetMetrics).await? {
            SendResult::Metrics(m) => Ok(m),
            other => Err(format!("GetMetrics answered {:?}", other.status())),
        }
    }
}
