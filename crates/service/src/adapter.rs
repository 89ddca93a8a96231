//! The policy adapter: turns one driver request into a verdict — session membership, the policy
//! engine's decision, audit mode, session grants, and `approve` handed to the approval manager —
//! and records it as an event.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use agentsh_policy::filepath::VolumeMap;
use agentsh_policy::{
    Decision, Engine, FileQuery, Operation, Policy, RegistryQuery, RuleRef, SessionContext, Verdict,
};
use agentsh_wire::control::FailMode;
use agentsh_wire::file::FileRequestRepr;
use agentsh_wire::notify::{NotifyReason, NotifyRepr, Subject};
use agentsh_wire::op::{self, FileOperation, MessageType};
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};

use crate::approvals::{ApprovalManager, ApprovalOutcome, ChainProcess, GrantKey, PendingApproval};

/// The longest creating chain an approval shows.
pub const MAX_CHAIN: usize = 32;

/// The command-line source in force, if any.
#[derive(Default)]
struct ProcessSlot(RwLock<Option<crate::processes::ProcessSource>>);

impl std::fmt::Debug for ProcessSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.read().map(|s| s.is_some()).unwrap_or(false);
        f.debug_tuple("ProcessSlot").field(&set).finish()
    }
}

use crate::events::{ATTACK_VERSION, Event, EventKind, EventPipeline, Reason};
use crate::metrics::{ApprovalEnd, ServiceMetrics};
use crate::sessions::{SessionInfo, SessionRegistry};

/// A request the policy decided, before it is answered.
#[derive(Debug)]
pub struct Decided {
    pub verdict: Verdict,
    pub session: Option<Arc<SessionInfo>>,
    /// Its event, with the operation, path and process filled in.
    pub event: Event,
}

/// An approval's eventual outcome.
/// The system's answer to "which image is process `pid` running?" (`None`: no such process, or
/// not allowed to ask). On Windows `QueryFullProcessImageNameW` with `PROCESS_NAME_NATIVE`
/// (`agentsh_windows::process::image_path`); the emulator answers from its process table.
pub type ImageLookup = Arc<dyn Fn(u32) -> Option<String> + Send + Sync>;

/// An installed [`ImageLookup`] (shown by name only).
#[derive(Clone)]
struct Lookup(ImageLookup);

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageLookup")
    }
}

pub type OutcomeFuture = Pin<Box<dyn Future<Output = ApprovalOutcome> + Send>>;

/// What to answer the kernel.
pub enum Answer {
    /// Reply now with this.
    Reply(PolicyResponseRepr),
    /// Reply `pending` now; send a FinalDecision with `ticket` when `outcome` resolves.
    Pending {
        reply: PolicyResponseRepr,
        ticket: u32,
        outcome: OutcomeFuture,
        event: Box<Event>,
    },
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Answer::Pending { reply, ticket, .. } => f
                .debug_struct("Pending")
                .field("reply", reply)
                .field("ticket", ticket)
                .finish(),
        }
    }
}

/// The adapter.
#[derive(Debug)]
pub struct PolicyAdapter {
    engine: RwLock<Arc<Engine>>,
    pub sessions: Arc<SessionRegistry>,
    pub approvals: Arc<ApprovalManager>,
    pub events: EventPipeline,
    pub metrics: Arc<ServiceMetrics>,
    /// Audit every session (per-policy audit mode).
    audit_all: AtomicBool,
    default_approval_timeout_secs: AtomicU32,
    /// The driver's fail mode is closed: malformed requests are denied.
    fail_closed: AtomicBool,
    /// NT device names to mount points, swapped whole when volumes arrive or leave
    /// ([`PolicyAdapter::set_volumes`]); a request decides with the map current when it arrives.
    volumes: RwLock<Arc<VolumeMap>>,
    /// Fail-mode transitions, reported as their own events.
    pub fail_watch: crate::failmode::FailModeWatch,
    /// Image paths of session processes, learned from the kernel's process events, or from
    /// [`PolicyAdapter::set_image_lookup`]'s lookup when a process's request arrives before its
    /// announcement (and for a session's root, which the kernel never announces).
    process_images: RwLock<std::collections::HashMap<u32, Arc<str>>>,
    /// Asks the system for a process's image path (on Windows its NT path, as the kernel
    /// reports it); none: only the kernel's announcements name images.
    image_lookup: RwLock<Option<Lookup>>,
    /// The process that created each session process (the kernel's creating process, not the
    /// parent attribute), for an approval's creating chain.
    creators: RwLock<std::collections::HashMap<u32, u32>>,
    /// Where an approval reads what the wire does not carry ([`PolicyAdapter::set_process_source`]).
    process_source: ProcessSlot,
    /// Session members the kernel announced (pid → the session's public numeric id), so the
    /// API can refuse them.
    session_members: RwLock<std::collections::HashMap<u32, u64>>,
    /// The (empty) context of processes outside every session, shared rather than built per
    /// request.
    no_session: Arc<SessionContext>,
}

impl PolicyAdapter {
    /// An adapter deciding with `engine`.
    pub fn new(engine: Arc<Engine>, events: EventPipeline) -> Self {
        PolicyAdapter {
            engine: RwLock::new(engine),
            sessions: Arc::default(),
            approvals: ApprovalManager::new(),
            events,
            metrics: Arc::default(),
            audit_all: AtomicBool::new(false),
            default_approval_timeout_secs: AtomicU32::new(30),
            fail_closed: AtomicBool::new(false),
            volumes: RwLock::new(Arc::new(VolumeMap::new())),
            process_images: RwLock::default(),
            image_lookup: RwLock::default(),
            creators: RwLock::default(),
            process_source: ProcessSlot::default(),
            session_members: RwLock::default(),
            fail_watch: Default::default(),
            no_session: Arc::default(),
        }
    }

    /// An adapter deciding with `policy`, its audit and approval settings applied.
    pub fn for_policy(policy: &Policy, events: EventPipeline) -> Self {
        let adapter = PolicyAdapter::new(policy.engine().clone(), events);
        adapter.apply_policy(policy);
        adapter
    }

    /// Swaps in `policy` (hot reload) atomically: its rules, its per-policy audit mode and the
    /// approval timeout for rules that give none.
    pub fn apply_policy(&self, policy: &Policy) {
        let settings = policy.settings();
        self.replace_engine(policy.engine().clone());
        self.audit_all
            .store(settings.audit.enabled, Ordering::Relaxed);
        self.default_approval_timeout_secs
            .store(settings.approvals.default_timeout_secs, Ordering::Relaxed);
    }

    /// Replaces the volume map in one step: requests already being decided keep the map they
    /// started with, later ones get `volumes`. Returns whether the map changed.
    pub fn set_volumes(&self, volumes: VolumeMap) -> bool {
        let mut current = self
            .volumes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current == volumes {
            return false;
        }
        *current = Arc::new(volumes);
        true
    }

    /// The volume map in force.
    pub fn volumes(&self) -> Arc<VolumeMap> {
        self.volumes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The driver's fail mode, which also decides what a malformed request is answered.
    pub fn set_fail_mode(&self, mode: FailMode) {
        self.fail_closed
            .store(mode == FailMode::Closed, Ordering::Relaxed);
    }

    /// The fail mode malformed requests are answered by.
    pub fn fail_mode(&self) -> FailMode {
        if self.fail_closed.load(Ordering::Relaxed) {
            FailMode::Closed
        } else {
            FailMode::Open
        }
    }

    /// Whether every session is audited (the policy's `audit.enabled`).
    pub fn audits_all(&self) -> bool {
        self.audit_all.load(Ordering::Relaxed)
    }

    /// The compiled read scope of the policy in force.
    pub fn read_scope(&self) -> agentsh_policy::engine::ReadScope {
        self.engine().read_scope()
    }

    /// Swaps in a new engine (policy reload) atomically.
    pub fn replace_engine(&self, engine: Arc<Engine>) {
        if let Ok(mut e) = self.engine.write() {
            *e = engine;
        }
    }

    fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The image path of `pid`: the one the kernel announced, else the system's answer (kept for
    /// a session process until its exit is announced; looked up again each time for others,
    /// whose exits the kernel does not report and whose pids may be reused).
    fn process_image(&self, pid: u32, session: bool) -> Option<Arc<str>> {
        if let Some(image) = self
            .process_images
            .read()
            .ok()
            .and_then(|m| m.get(&pid).cloned())
        {
            return Some(image);
        }
        let lookup = self.image_lookup.read().ok()?.clone()?;
        let image: Arc<str> = (lookup.0)(pid).filter(|i| !i.is_empty())?.into();
        if session && let Ok(mut m) = self.process_images.write() {
            m.entry(pid).or_insert_with(|| image.clone());
        }
        Some(image)
    }

    /// Installs the system's image lookup (see [`ImageLookup`]).
    pub fn set_image_lookup(&self, lookup: ImageLookup) {
        if let Ok(mut l) = self.image_lookup.write() {
            *l = Some(Lookup(lookup));
        }
    }

    /// Learns a session root's image from the system (the kernel announces only the processes
    /// a session creates, never its root). True when the image is known afterwards.
    pub fn learn_root_image(&self, pid: u32) -> bool {
        self.process_image(pid, true).is_some()
    }

    /// Remembers a session process's image path and the process that created it (from the
    /// kernel's process events).
    pub fn process_started(&self, pid: u32, creator: u32, image: &str) {
        if let Ok(mut m) = self.process_images.write() {
            m.insert(pid, image.into());
        }
        if let Ok(mut m) = self.creators.write() {
            m.insert(pid, creator);
        }
    }

    /// Forgets an exited process.
    pub fn process_exited(&self, pid: u32) {
        if let Ok(mut m) = self.process_images.write() {
            m.remove(&pid);
        }
        if let Ok(mut m) = self.creators.write() {
            m.remove(&pid);
        }
        if let Ok(mut m) = self.session_members.write() {
            m.remove(&pid);
        }
    }

    /// Where approvals read the requesting process's command line (and the image of a process
    /// the kernel reported no event for): on Windows the process itself, with the emulator the
    /// table it writes beside its socket.
    pub fn set_process_source(&self, source: crate::processes::ProcessSource) {
        if let Ok(mut c) = self.process_source.0.write() {
            *c = Some(source);
        }
    }

    fn process_facts(&self, pid: u32) -> Option<crate::processes::ProcessFacts> {
        let source = self.process_source.0.read().ok()?.clone()?;
        source(pid)
    }

    /// The processes that created `pid`, nearest first, up to `root` (included) or the first
    /// process the kernel did not report. Bounded: a chain longer than
    /// [`MAX_CHAIN`] or one that loops (pids reused) stops there.
    pub fn creating_chain(&self, pid: u32, root: Option<u32>) -> Vec<ChainProcess> {
        let Ok(table) = self.creators.read() else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = Vec::new();
        let mut at = pid;
        while Some(at) != root && pids.len() < MAX_CHAIN {
            let Some(&creator) = table.get(&at) else {
                break;
            };
            if creator == 0 || creator == pid || pids.contains(&creator) {
                break;
            }
            pids.push(creator);
            at = creator;
        }
        drop(table);
        // The kernel announces a session's processes, not its root (started before it was
        // registered): its image comes from the operating system.
        pids.into_iter()
            .map(|pid| ChainProcess {
                pid,
                image: self
                    .process_image(pid, true)
                    .map(|i| i.to_string())
                    .or_else(|| self.process_facts(pid).and_then(|f| f.image)),
            })
            .collect()
    }

    /// Records that the kernel put `pid` in the session with public numeric id `session`.
    pub fn session_member(&self, pid: u32, session: u64) {
        if session != 0
            && let Ok(mut m) = self.session_members.write()
        {
            m.insert(pid, session);
        }
    }

    /// The public id of the session `pid` belongs to, as far as the service knows: a session's
    /// root, or a member the kernel announced. (A child whose announcement has not arrived yet
    /// is not known here; the API also checks the pid's ancestors.)
    pub fn session_of_process(&self, pid: u32) -> Option<String> {
        if let Some(s) = self.sessions.list().iter().find(|s| s.root_pid == pid) {
            return Some(s.id.clone());
        }
        let numeric = self.session_members.read().ok()?.get(&pid).copied()?;
        Some(
            self.sessions
                .list()
                .iter()
                .find(|s| s.numeric_id == numeric)
                .map(|s| s.id.clone())
                .unwrap_or_else(|| format!("s-{numeric}")),
        )
    }

    /// The session a request's token names, whether the process is sandboxed, and the context
    /// its rules are evaluated in.
    fn context_of(&self, token: u64) -> (Option<Arc<SessionInfo>>, bool, Arc<SessionContext>) {
        let (session, sandboxed) = self.session_of(token);
        let ctx = session
            .as_ref()
            .map(|s| s.context.clone())
            .unwrap_or_else(|| self.no_session.clone());
        (session, sandboxed, ctx)
    }

    /// An event for `pid`'s operation, with the process's name and image filled in. The event
    /// pipeline stamps it when it is emitted: most allowed operations emit nothing and so never
    /// read the clock.
    fn event_for(&self, kind: EventKind, pid: u32, session: bool) -> Event {
        let mut ev = Event::unstamped(kind);
        ev.process_id = pid;
        if let Some(image) = self.process_image(pid, session) {
            ev.process_name = image.rsplit('\\').next().unwrap_or(&image).to_owned();
            ev.process_image = image.to_string();
        }
        ev
    }

    /// Decides a registry request with the policy: the verdict, the session, and its event
    /// (without the decision-specific fields [`PolicyAdapter::finish`] adds).
    pub fn decide_registry(&self, req: &RegistryRequestRepr) -> Decided {
        let (session, sandboxed, ctx) = self.context_of(req.session_token);
        let key = text(req.key_path.as_units());
        let name = text(req.value_name.as_units());
        let has_value = matches!(
            req.operation,
            op::Operation::QueryValue | op::Operation::SetValue | op::Operation::DeleteValue
        );
        let mut ev = self.event_for(EventKind::RegistryRead, req.process_id, sandboxed);
        let mut q = RegistryQuery::new(&key, req.operation, &ctx);
        q.value = has_value.then_some(name.as_str());
        q.rename_to = (req.operation == op::Operation::RenameKey).then_some(name.as_str());
        q.sandboxed = sandboxed;
        q.truncated = req.flags.truncated();
        q.process_id = req.process_id;
        q.process_name = &ev.process_name;
        let mut verdict = self.engine().decide_registry(&q);
        canary_deny(&mut verdict, session.as_deref(), &key);
        ev.kind = registry_kind(req.operation, shown_decision(&verdict));
        if req.operation == op::Operation::SetValue {
            ev.value_type = crate::events::value_type_name(req.value_type);
            ev.data_size = Some(req.data_size);
        }
        if req.operation == op::Operation::RenameKey {
            // The new name is a leaf under the same parent.
            let parent = key.rsplit_once('\\').map_or("", |(p, _)| p);
            ev.target_path = Some(format!("{parent}\\{name}"));
        }
        ev.value_name = has_value.then_some(name);
        ev.key_path = key;
        ev.driver_operation = req.operation.name();
        Decided {
            verdict,
            session,
            event: ev,
        }
    }

    /// Decides a file request with the policy (see [`PolicyAdapter::decide_registry`]).
    pub fn decide_file(&self, req: &FileRequestRepr) -> Decided {
        let (session, sandboxed, ctx) = self.context_of(req.session_token);
        let path = text(req.path.as_units());
        let target = text(req.target_path.as_units());
        let policy_op = match req.operation {
            FileOperation::Read => Operation::Read,
            FileOperation::Write | FileOperation::HardLink => Operation::Write,
            FileOperation::Create => Operation::Create,
            FileOperation::Delete => Operation::Delete,
            FileOperation::Rename => Operation::Rename,
        };
        let mut ev = self.event_for(EventKind::FileRead, req.process_id, sandboxed);
        let volumes = self.volumes();
        let mut q = FileQuery::new(&path, policy_op, &ctx, &volumes);
        q.target = (!target.is_empty()).then_some(target.as_str());
        q.sandboxed = sandboxed;
        q.truncated = req.flags.truncated();
        q.process_id = req.process_id;
        q.process_name = &ev.process_name;
        let mut verdict = self.engine().decide_file(&q);
        canary_deny(&mut verdict, session.as_deref(), &path);
        if let Some(t) = q.target {
            canary_deny(&mut verdict, session.as_deref(), t);
        }
        ev.kind = file_kind(req.operation, shown_decision(&verdict));
        ev.key_path = path;
        ev.target_path = (!target.is_empty()).then_some(target);
        ev.driver_operation = req.operation.name();
        Decided {
            verdict,
            session,
            event: ev,
        }
    }

    /// What a request the decoder refuses gets (only a kernel bug can send one: any code units
    /// are a name). Never a crash, never silent: the answer is a deny for a session process
    /// whatever the fail mode; otherwise the fail mode's answer, except that a write to a key of
    /// the kernel's critical set is denied in fail-open mode too (the kernel's own floor). Every
    /// malformed request is recorded as an event with what could be read of it.
    pub fn malformed(
        &self,
        message_type: MessageType,
        body: &[u8],
        problem: &str,
    ) -> PolicyResponseRepr {
        self.metrics
            .malformed_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let salvage = Salvage::of(message_type, body);
        let critical = salvage.critical_write();
        let session = salvage.token.is_some_and(|t| t != 0);
        let deny = session || critical || self.fail_mode() == FailMode::Closed;
        tracing::warn!(
            problem,
            deny,
            "malformed request from the driver port; a session's is denied, others per the fail mode"
        );
        let decision = if deny {
            Decision::Deny
        } else {
            Decision::Allow
        };
        let file = message_type == MessageType::PolicyCheckFile;
        let mut ev = self.event_for(
            if file {
                file_kind(FileOperation::Write, decision)
            } else {
                registry_kind(op::Operation::SetValue, decision)
            },
            salvage.process_id,
            false,
        );
        if let Some(token) = salvage.token.filter(|&t| t != 0)
            && let Some(session) = self.sessions.by_token(token)
        {
            ev.session_id = session.id.clone();
        }
        ev.key_path = salvage.path;
        ev.value_name = (!file).then_some(salvage.name);
        ev.driver_operation = salvage.operation;
        ev.decision = decision.name();
        ev.reason = Reason::Malformed;
        ev.rule_name = "malformed".to_owned();
        ev.message = Some(format!("malformed request from the driver: {problem}"));
        if critical {
            ev.risk_level = Some("critical");
        }
        self.events.emit(ev);
        let d = if deny {
            op::Decision::Deny
        } else {
            op::Decision::Allow
        };
        response(message_type, d, CacheTtl::None, false, true)
    }

    /// Decides a registry request.
    pub fn check_registry(&self, req: &RegistryRequestRepr) -> Answer {
        let started = Instant::now();
        let d = self.decide_registry(req);
        self.metrics
            .observe_decision(started.elapsed().as_micros() as u64);
        self.finish(MessageType::PolicyCheckRegistry, d)
    }

    /// Decides a file request.
    pub fn check_file(&self, req: &FileRequestRepr) -> Answer {
        let started = Instant::now();
        let d = self.decide_file(req);
        self.metrics
            .observe_decision(started.elapsed().as_micros() as u64);
        self.finish(MessageType::PolicyCheckFile, d)
    }

    /// The event for a decision the kernel made on its own (a notification): what the policy
    /// says of the operation — rule, catalog entry, risk, technique — with the kernel's decision
    /// and reason. A read the kernel reported (it reports every session read under `log_all`,
    /// and reads of its high-risk locations always) is an event only when the policy logs it.
    pub fn notification_event(&self, n: &NotifyRepr) -> Option<Event> {
        if n.reason == NotifyReason::HoldRefused {
            // The kernel denied an operation the service had opened an approval for: the
            // approval ends (refused) and its response event says so; no second event.
            self.approvals.refuse(n.flags);
            return None;
        }
        let allowed = n.decision == op::Decision::Allow;
        let decision = if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        };
        // A cached silent deny (logged, not notified) is shown under its operation's type, as
        // when the service decided it.
        let notified = n.flags & agentsh_wire::response::FLAG_NOTIFY != 0;
        let silent = n.reason == NotifyReason::CachedDecision && !notified;
        let shown = if silent { Decision::Allow } else { decision };
        let Decided {
            mut verdict,
            session,
            mut event,
        } = match &n.subject {
            Subject::Registry(r) => {
                let d = self.decide_registry(r);
                Decided {
                    event: Event {
                        kind: registry_kind(r.operation, shown),
                        ..d.event
                    },
                    ..d
                }
            }
            Subject::File(f) => {
                let d = self.decide_file(f);
                Decided {
                    event: Event {
                        kind: file_kind(f.operation, shown),
                        ..d.event
                    },
                    ..d
                }
            }
        };
        if n.reason == NotifyReason::Monitored && !verdict.log && !verdict.notify {
            return None;
        }
        annotate(&mut event, &mut verdict, session.as_deref());
        if n.reason == NotifyReason::CachedDecision {
            event.notify = notified;
        }
        event.decision = decision.name();
        event.reason = match n.reason {
            NotifyReason::HighRiskUnsandboxed => Reason::Unsandboxed,
            NotifyReason::CachedDecision | NotifyReason::Monitored => Reason::Cached,
            NotifyReason::FailOpen => Reason::FailOpen,
            NotifyReason::FailClosed => Reason::FailClosed,
            NotifyReason::PendingExpired => Reason::Timeout,
            NotifyReason::HoldRefused => Reason::HoldRefused,
        };
        Some(event)
    }

    /// A non-zero token the service does not know (it restarted while the kernel kept its
    /// sessions) is still a sandboxed process: decided with an empty registration, never as an
    /// outsider.
    fn session_of(&self, token: u64) -> (Option<Arc<SessionInfo>>, bool) {
        if token == 0 {
            return (None, false);
        }
        (self.sessions.by_token(token), true)
    }

    fn finish(&self, ty: MessageType, d: Decided) -> Answer {
        let Decided {
            mut verdict,
            session,
            event: mut ev,
        } = d;
        let session = session.as_deref();
        annotate(&mut ev, &mut verdict, session);
        let ttl = verdict.cache_ttl;
        let audit = self.audits_all() || session.is_some_and(|s| s.audit);
        if audit && verdict.decision != Decision::Allow {
            ev.decision = match verdict.decision {
                Decision::Deny => "would deny",
                _ => "would ask",
            };
            ev.reason = Reason::Audit;
            self.events.emit(ev);
            return Answer::Reply(response(
                ty,
                op::Decision::Allow,
                CacheTtl::None,
                verdict.notify,
                true,
            ));
        }
        match verdict.decision {
            Decision::Allow | Decision::Deny => {
                ev.decision = verdict.decision.name();
                let allow = verdict.decision == Decision::Allow;
                if !allow {
                    self.metrics.count_denial(verdict.notify);
                }
                if verdict.log || verdict.notify {
                    self.events.emit(ev);
                }
                let d = if allow {
                    op::Decision::Allow
                } else {
                    op::Decision::Deny
                };
                Answer::Reply(response(ty, d, ttl, verdict.notify, verdict.log))
            }
            Decision::Approve => {
                let grant = GrantKey {
                    session_id: ev.session_id.clone(),
                    operation: ev.driver_operation,
                    canonical: verdict.canonical.clone(),
                    value_name: ev.value_name.clone(),
                };
                if self.approvals.granted(&grant) {
                    ev.decision = "allow";
                    ev.reason = Reason::SessionGrant;
                    self.events.emit(ev);
                    return Answer::Reply(response(
                        ty,
                        op::Decision::Allow,
                        CacheTtl::None,
                        verdict.notify,
                        true,
                    ));
                }
                ev.app = session.and_then(|s| s.context.app_name().map(str::to_owned));
                ev.canonical_path = Some(verdict.canonical.clone());
                let timeout_secs = verdict
                    .approval_timeout_secs
                    .unwrap_or(self.default_approval_timeout_secs.load(Ordering::Relaxed))
                    .max(1);
                let info = PendingApproval {
                    id: 0,
                    session_id: ev.session_id.clone(),
                    process_id: ev.process_id,
                    process_name: ev.process_name.clone(),
                    process_image: ev.process_image.clone(),
                    command_line: self
                        .process_facts(ev.process_id)
                        .and_then(|f| f.command_line),
                    chain: self.creating_chain(ev.process_id, session.map(|s| s.root_pid)),
                    app: ev.app.clone(),
                    workspace: session.and_then(|s| s.context.workspace().map(str::to_owned)),
                    operation: ev.driver_operation.to_owned(),
                    path: ev.key_path.clone(),
                    canonical: verdict.canonical.clone(),
                    value_name: ev.value_name.clone(),
                    rule: ev.rule_name.clone(),
                    risk: ev.risk_level.map(str::to_owned),
                    technique: ev.mitre_id.map(str::to_owned),
                    technique_name: ev.technique_name.map(str::to_owned),
                    description: ev.description.map(str::to_owned),
                    message: ev
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("{} {}", ev.driver_operation, ev.key_path)),
                    timeout_secs,
                    expires_at_ms: 0,
                    on_timeout: crate::approvals::ON_TIMEOUT.to_owned(),
                };
                let (ticket, outcome) = self.approvals.open(info, grant);
                self.metrics
                    .approvals_opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut request = ev.clone();
                request.kind = EventKind::RegistryApprovalRequest;
                request.decision = "approve";
                request.approval_id = Some(ticket);
                self.events.emit(request);
                ev.kind = EventKind::RegistryApprovalResponse;
                ev.approval_id = Some(ticket);
                let mut reply = response(ty, op::Decision::Pending, CacheTtl::None, true, true);
                reply.approval_timeout_secs = timeout_secs;
                reply.approval_ticket = ticket;
                let opened = Instant::now();
                let metrics = self.metrics.clone();
                let outcome = async move {
                    let result = outcome.await;
                    let end = match result {
                        ApprovalOutcome::AllowOnce | ApprovalOutcome::AllowSession => {
                            ApprovalEnd::Allowed
                        }
                        ApprovalOutcome::Denied => ApprovalEnd::Denied,
                        ApprovalOutcome::TimedOut => ApprovalEnd::TimedOut,
                        ApprovalOutcome::Withdrawn => ApprovalEnd::Withdrawn,
                        ApprovalOutcome::Refused => ApprovalEnd::Refused,
                    };
                    metrics.observe_approval(end, opened.elapsed());
                    result
                };
                Answer::Pending {
                    reply,
                    ticket,
                    outcome: Box::pin(outcome),
                    event: Box::new(ev),
                }
            }
        }
    }

    /// Records how an approval ended (the response event).
    pub fn approval_finished(&self, mut ev: Event, outcome: ApprovalOutcome) {
        ev.decision = if outcome.allows() { "allow" } else { "deny" };
        ev.reason = match outcome {
            ApprovalOutcome::TimedOut => Reason::Timeout,
            ApprovalOutcome::Withdrawn => Reason::ConnectionLost,
            ApprovalOutcome::Refused => Reason::HoldRefused,
            ApprovalOutcome::AllowSession => Reason::SessionGrant,
            _ => Reason::Person,
        };
        self.events.emit(ev);
    }
}

/// A wire name as name text (`agentsh_winstr::name`): every code unit sequence, unpaired
/// surrogates and NULs included, maps to its own text and back, so the policy decides and the
/// event names exactly what the kernel saw. Paths are nearly always ASCII: those take a direct
/// copy.
fn text(units: &[u16]) -> String {
    if units.iter().fold(0, |all, &u| all | u) < 0x80 {
        let ascii: Vec<u8> = units.iter().map(|&u| u as u8).collect();
        if let Ok(s) = String::from_utf8(ascii) {
            return s;
        }
    }
    agentsh_winstr::name::decode(units).collect()
}

/// What can still be read of a request the decoder refused: its session token, process, the
/// operation and the names up to their terminator (or the end of their field), each only if
/// the bytes are there.
struct Salvage {
    token: Option<u64>,
    process_id: u32,
    operation: &'static str,
    op_code: Option<u16>,
    path_units: Vec<u16>,
    name_units: Vec<u16>,
    path: String,
    name: String,
}

impl Salvage {
    fn of(message_type: MessageType, body: &[u8]) -> Salvage {
        let u32_at = |at: usize| {
            body.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let units_at = |start: usize, end: usize| -> Vec<u16> {
            let end = end.min(body.len());
            body.get(start..end)
                .unwrap_or_default()
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .take_while(|&u| u != 0)
                .collect()
        };
        let token = body
            .get(4..12)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
        let op_code = u32_at(20).map(|v| (v & 0xFFFF) as u16);
        let file = message_type == MessageType::PolicyCheckFile;
        let operation = match op_code {
            Some(c) if file => FileOperation::from_code(c).map(FileOperation::name),
            Some(c) => op::Operation::from_code(c).map(op::Operation::name),
            None => None,
        }
        .unwrap_or("unknown");
        let (path_units, name_units) = if file {
            (units_at(32, 1072), units_at(1072, 2112))
        } else {
            (units_at(32, 1072), units_at(1072, 1584))
        };
        Salvage {
            token,
            process_id: u32_at(12).unwrap_or(0),
            operation,
            op_code: (!file).then_some(op_code).flatten(),
            path: text(&path_units),
            name: text(&name_units),
            path_units,
            name_units,
        }
    }

    /// Whether it reads as a write to a key of the kernel's critical set.
    fn critical_write(&self) -> bool {
        static HIGH_RISK: std::sync::LazyLock<agentsh_kcore::highrisk::HighRiskSet> =
            std::sync::LazyLock::new(agentsh_kcore::highrisk::HighRiskSet::builtin);
        let write = self
            .op_code
            .is_some_and(|c| op::Operation::from_code(c).is_none_or(|o| !o.is_read()));
        write
            && HIGH_RISK.classify_op(&self.path_units, &self.name_units)
                == Some(agentsh_kcore::highrisk::Risk::Critical)
    }
}

fn response(
    ty: MessageType,
    decision: op::Decision,
    cache_ttl: CacheTtl,
    notify: bool,
    log: bool,
) -> PolicyResponseRepr {
    PolicyResponseRepr {
        message_type: ty,
        decision,
        cache_ttl,
        notify,
        log,
        approval_timeout_secs: 0,
        approval_ticket: 0,
    }
}

/// What the policy says of an operation, on its event: session, policy operation, rule, reason,
/// catalog entry (risk, technique, tactic) and the rule's message.
/// The rule name a canary denial carries in its event.
pub const CANARY_RULE: &str = "wall-check canary";

/// The wall check's canary: a write-class operation of the session on a key or file whose last
/// component is the session's canary name is denied and notified (never cached, so no other
/// name's decision depends on it).
fn canary_deny(verdict: &mut Verdict, session: Option<&SessionInfo>, path: &str) {
    let Some(canary) = session.and_then(|s| s.canary.as_deref()) else {
        return;
    };
    let leaf = path.rsplit(['\\', '/']).next().unwrap_or(path);
    if verdict.operation.is_write_class() && leaf.eq_ignore_ascii_case(canary) {
        verdict.decision = Decision::Deny;
        verdict.rule = RuleRef::Rule(Arc::from(CANARY_RULE));
        verdict.notify = true;
        verdict.log = true;
        verdict.cache_ttl = CacheTtl::None;
        verdict.approval_timeout_secs = None;
    }
}

fn annotate(ev: &mut Event, verdict: &mut Verdict, session: Option<&SessionInfo>) {
    ev.session_id = session.map(|s| s.id.clone()).unwrap_or_default();
    ev.operation = verdict.operation.name();
    ev.rule_name = verdict.rule.to_string();
    ev.reason = reason_of(&verdict.rule);
    ev.notify = verdict.notify;
    if let Some(e) = verdict.high_risk {
        ev.risk_level = Some(e.risk.name());
        ev.mitre_id = Some(e.technique);
        ev.mitre_tactic = Some(e.tactic);
        ev.technique_name = Some(e.technique_name);
        ev.description = Some(e.description);
        ev.attack_version = Some(ATTACK_VERSION);
    }
    ev.message = verdict.message.take();
}

fn reason_of(rule: &RuleRef) -> Reason {
    match rule {
        RuleRef::Builtin(_) => Reason::Catalog,
        RuleRef::Rule(_) => Reason::Rule,
        RuleRef::Default => Reason::Default,
        RuleRef::Unsandboxed => Reason::Unsandboxed,
        RuleRef::Truncated => Reason::Truncated,
    }
}

/// The decision an event's type shows: a silent deny (not notified) is shown under its
/// operation's own type, not as `*_blocked`.
fn shown_decision(verdict: &Verdict) -> Decision {
    if verdict.decision == Decision::Deny && !verdict.notify {
        Decision::Allow
    } else {
        verdict.decision
    }
}

/// The event type of a registry operation with this decision.
pub fn registry_kind(op: op::Operation, decision: Decision) -> EventKind {
    if decision == Decision::Deny {
        return EventKind::RegistryBlocked;
    }
    use op::Operation as O;
    match op {
        O::QueryValue | O::EnumKeys | O::EnumValues | O::OpenKey | O::SaveKey => {
            EventKind::RegistryRead
        }
        O::SetValue | O::RestoreKey | O::ReplaceKey | O::LoadKey | O::SetKeySecurity => {
            EventKind::RegistryWrite
        }
        O::CreateKey => EventKind::RegistryCreate,
        O::DeleteKey | O::DeleteValue => EventKind::RegistryDelete,
        O::RenameKey => EventKind::RegistryRename,
    }
}

/// The event type of a file operation with this decision.
pub fn file_kind(op: FileOperation, decision: Decision) -> EventKind {
    if decision == Decision::Deny {
        return EventKind::FileBlocked;
    }
    match op {
        FileOperation::Read => EventKind::FileRead,
        FileOperation::Write | FileOperation::HardLink => EventKind::FileWrite,
        FileOperation::Create => EventKind::FileCreate,
        FileOperation::Delete => EventKind::FileDelete,
        FileOperation::Rename => EventKind::FileRename,
    }
}
