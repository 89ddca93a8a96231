//! `agentsh demo`: the design's five manual scenarios and two file scenarios (paths in the
//! minifilter's `\Device\HarddiskVolumeN\…` form), end to end, on Linux: the service deciding
//! with the embedded default policy, connected to the driver emulator over a local socket. Prints
//! the outcomes with rule, risk and technique, then the events and the metrics; exits 1 if any
//! outcome differs from the design's expectation.
//!
//! The user side is agentsh-service itself ([`Service`] on a [`SocketTransport`]), started
//! in-process with the embedded default policy; the demo talks to it through [`DemoUserSide`].

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::replay::{LineReport, RegistrarFuture, SessionRegistrar, replay};
use agentsh_emulator::scenarios::{APPROVED_KEY_MARKER, FILE_SCENARIOS, FIVE_SCENARIOS};
use agentsh_emulator::table::TextTable;
use agentsh_emulator::trace::Trace;
use agentsh_policy::{DEFAULT_POLICY_YAML, Policy, SessionContext};
use agentsh_service::events::{Event, EventKind, EventPipeline};
use agentsh_service::{ApprovalOutcome, Service, SocketTransport};
use agentsh_wire::control::{Counter, Metrics};
use clap::Args;
use tokio::sync::mpsc;

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
    fn events(&self) -> Vec<serde_json::Value>;
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
    let files = Trace::parse("file-scenarios.jsonl", FILE_SCENARIOS).map_err(|e| e.to_string())?;
    // The embedded default policy, with only the approval timeout shortened so the demo's
    // unanswered approval (scenario 4) ends in seconds rather than the policy's 30 s.
    let yaml = format!(
        "{DEFAULT_POLICY_YAML}\napprovals:\n  default_timeout: {}s\n",
        args.approval_timeout
    );
    let policy = Policy::from_str(&yaml, "<embedded default policy>")
        .map_err(|e| format!("embedded default policy: {e}"))?;
    let emulator = Arc::new(
        Emulator::start(socket, u64::from(std::process::id()))
            .map_err(|e| format!("listening on `{}`: {e}", socket.display()))?,
    );
    let user = Arc::new(ServiceSide::start(socket, &policy).await?);

    println!(
        "agentsh demo: the design's five manual scenarios and two file scenarios through the driver emulator"
    );
    println!(
        "file paths reach the service as the minifilter sends them ({}), mapped back to drive letters through the volume table",
        emulator
            .volumes()
            .mounts()
            .iter()
            .map(|m| format!("{} = {}", m.device, m.mount))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "the service runs the embedded default policy; approvals time out after {} s here (the policy says 30 s)\n",
        args.approval_timeout
    );

    let approver = {
        let user = user.clone();
        tokio::spawn(async move { approve_marked(&user).await })
    };
    let mut reports = replay(
        &emulator,
        user.as_ref(),
        "five-scenarios.jsonl",
        &trace,
        |_| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    approver.abort();
    reports.extend(
        replay(
            &emulator,
            user.as_ref(),
            "file-scenarios.jsonl",
            &files,
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    // GetMetrics travels behind every notification already sent; `driver_metrics` then collects
    // the events the service emits for them.
    let metrics = user.driver_metrics().await?;

    print!("{}", outcome_table(&reports, user.as_ref()));
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
async fn approve_marked(user: &ServiceSide) {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service, started in-process on the emulator's socket, with its events collected.
struct ServiceSide {
    service: Service<SocketTransport>,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    seen: Mutex<Vec<Event>>,
    sessions: Mutex<HashMap<u32, String>>,
    pipeline: EventPipeline,
}

/// Events the demo's pipeline holds before counting drops (the demo needs a dozen).
const EVENT_CAPACITY: usize = 1024;

impl ServiceSide {
    async fn start(socket: &Path, policy: &Policy) -> Result<Self, String> {
        let (pipeline, events) = EventPipeline::channel(EVENT_CAPACITY);
        let transport = SocketTransport::connect(socket)
            .await
            .map_err(|e| format!("connecting to `{}`: {e}", socket.display()))?;
        let service = Service::start(transport, policy, pipeline.clone())
            .await
            .map_err(|e| format!("starting the service: {e}"))?;
        // The same volume-map code as `agentsh service run`: the emulator's table beside its socket.
        let volumes =
            agentsh_service::volumes::table_file(agentsh_service::volumes::table_beside(socket));
        agentsh_service::volumes::refresh(&service.adapter, &volumes)
            .map_err(|e| format!("reading the emulator's volumes: {e}"))?;
        Ok(ServiceSide {
            service,
            events: tokio::sync::Mutex::new(events),
            seen: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            pipeline,
        })
    }

    /// Moves the events into `seen` until the service has been quiet for a moment: it handles
    /// each driver message on its own task, so an event can trail the message that caused it.
    async fn collect(&self) {
        let mut rx = self.events.lock().await;
        let mut quiet_rounds = 0;
        while quiet_rounds < 5 {
            let mut got = false;
            while let Ok(e) = rx.try_recv() {
                lock(&self.seen).push(e);
                got = true;
            }
            quiet_rounds = if got { 0 } else { quiet_rounds + 1 };
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl SessionRegistrar for ServiceSide {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        // The sandbox knows the user it runs the agent as; HKCU rules resolve against that SID.
        let context = SessionContext::new(Some(app_name), Some(workspace), Some(DEFAULT_USER_SID));
        Box::pin(async move {
            let context = context.map_err(|e| format!("session: {e}"))?;
            let info = self
                .service
                .register_session(root_pid, context, false)
                .await
                .map_err(|e| format!("registering the session: {e}"))?;
            lock(&self.sessions).insert(root_pid, info.id.clone());
            Ok(())
        })
    }

    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        Box::pin(async move {
            let id = lock(&self.sessions)
                .remove(&root_pid)
                .ok_or("no session for that process")?;
            match self.service.unregister_session(&id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("session `{id}` is unknown to the service")),
                Err(e) => Err(format!("ending session `{id}`: {e}")),
            }
        })
    }
}

impl DemoUserSide for ServiceSide {
    fn pending_approvals(&self) -> Vec<(u32, String, String)> {
        self.service
            .adapter
            .approvals
            .list()
            .into_iter()
            .map(|a| (a.id, a.message, a.path))
            .collect()
    }

    async fn approve(&self, ticket: u32) -> Result<(), String> {
        self.service
            .adapter
            .approvals
            .answer(ticket, ApprovalOutcome::AllowOnce)
            .map_err(|e| format!("approval `{ticket}`: {e}"))
    }

    fn decision_for(&self, pid: u32, target: &str) -> Option<Decided> {
        // The last event about this process whose key (last segment) the line's target names;
        // for approvals that is the response.
        let target = target.to_uppercase();
        let seen = lock(&self.seen);
        let event = seen.iter().rev().find(|e| {
            e.process_id == pid
                && e.kind != EventKind::RegistryApprovalRequest
                && e.key_path
                    .rsplit('\\')
                    .next()
                    .is_some_and(|last| target.contains(&last.to_uppercase()))
        })?;
        Some(Decided {
            rule: event.rule_name.clone(),
            risk: event.risk_level.unwrap_or_default().to_owned(),
            technique: event.mitre_id.unwrap_or_default().to_owned(),
            why: format!("{:?}", event.reason).to_lowercase(),
        })
    }

    fn events(&self) -> Vec<serde_json::Value> {
        lock(&self.seen).iter().map(Event::to_json).collect()
    }

    fn events_dropped(&self) -> u64 {
        self.pipeline.dropped()
    }

    async fn driver_metrics(&self) -> Result<Metrics, String> {
        let metrics = self
            .service
            .client
            .metrics()
            .await
            .map_err(|e| format!("GetMetrics: {e}"))?;
        self.collect().await;
        Ok(metrics)
    }
}
