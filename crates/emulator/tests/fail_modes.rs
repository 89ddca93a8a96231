//! The service dies in the middle of a trace: the kernel core falls to the configured fail mode
//! (allow in open mode, except critical high-risk writes; deny in closed mode), reports it in its
//! metrics and transitions; a service that connects again gets the queries back and the mode
//! recovers. Tested for both fail modes.

pub mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::request::{OperationRequest, Reason, Target, Verdict};
use agentsh_kcore::breaker::Transition;
use agentsh_wire::Operation;
use agentsh_wire::control::{ControlRepr, Counter, FailMode, SendStatus};
use agentsh_wire::response::CacheTtl;
use support::{Answer, ScriptedService, token_for, wait_until};

const ROOT: u32 = 4100;
const CHILD: u32 = 4104;
const APP_KEY: &str = "\\REGISTRY\\USER\\S-1-5-21-1\\SOFTWARE\\TestApp";
const RUN_KEY: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";

fn allow_uncached() -> support::Script {
    Arc::new(|_: &_| Answer::Allow {
        ttl: CacheTtl::None,
    })
}

async fn connect_service(emulator: &Emulator, mode: FailMode) -> ScriptedService {
    let service = ScriptedService::connect(emulator.port().path(), allow_uncached()).await;
    let mut config = emulator.with_core(|c| *c.config());
    config.fail_mode = mode;
    config.policy_query_timeout_ms = 200;
    assert_eq!(
        service.send(&ControlRepr::SetConfig(config)).await.status(),
        SendStatus::Ok
    );
    service
}

fn write(key: String) -> OperationRequest {
    OperationRequest {
        pid: CHILD,
        thread_id: CHILD + 1,
        target: Target::registry(Operation::SetValue, &key, "v", None, 1, 4),
    }
}

async fn check(mode: FailMode) {
    let (fallback_verdict, fallback_reason) = match mode {
        FailMode::Open => (Verdict::Allow, Reason::FailOpen),
        FailMode::Closed => (Verdict::Deny, Reason::FailClosed),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Arc::new(Emulator::start(&dir.path().join("agentsh.sock"), 3).expect("start"));
    let service = connect_service(&emulator, mode).await;
    emulator.process_created(ROOT, 0, "agent.exe");
    service.register(ROOT, token_for(ROOT), 1).await;
    emulator.process_created(CHILD, ROOT, "python.exe");

    // The trace: one simulated process writing its app key without pause, outcomes recorded.
    let outcomes = Arc::new(Mutex::new(Vec::<(Verdict, Reason)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let trace = {
        let (emulator, outcomes, stop) = (emulator.clone(), outcomes.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let o = emulator.perform(&write(format!("{APP_KEY}\\k{i}"))).await;
                outcomes.lock().expect("lock").push((o.verdict, o.reason));
                i += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    let count =
        |outcomes: &Arc<Mutex<Vec<(Verdict, Reason)>>>| outcomes.lock().expect("lock").len();
    wait_until(|| count(&outcomes) >= 50).await;
    service.close().await;
    wait_until(|| !emulator.port().is_connected()).await;
    let killed_at = count(&outcomes);
    wait_until(|| count(&outcomes) >= killed_at + 50).await;

    let during = emulator.metrics();
    assert_eq!(
        during.get(Counter::FailOpenMode),
        u64::from(mode == FailMode::Open),
        "{mode:?}"
    );
    assert_eq!(during.get(Counter::ServiceConnected), 0);
    // A critical high-risk write is refused while no service can decide, in both modes.
    let critical = emulator.perform(&write(RUN_KEY.to_owned())).await;
    let expected = match mode {
        FailMode::Open => Reason::CriticalWhileUnavailable,
        FailMode::Closed => Reason::FailClosed,
    };
    assert_eq!(
        (critical.verdict, critical.reason),
        (Verdict::Deny, expected)
    );

    let _service = connect_service(&emulator, mode).await;
    let back_at = count(&outcomes);
    wait_until(|| count(&outcomes) >= back_at + 50).await;
    stop.store(true, Ordering::Relaxed);
    trace.await.expect("trace task");

    let outcomes = outcomes.lock().expect("lock").clone();
    for (i, o) in outcomes.iter().enumerate() {
        assert!(
            *o == (Verdict::Allow, Reason::Service) || *o == (fallback_verdict, fallback_reason),
            "outcome {i}: {o:?}"
        );
    }
    assert!(
        outcomes[..40].iter().all(|o| o.1 == Reason::Service),
        "answered before the kill"
    );
    let outage = &outcomes[killed_at..killed_at + 50];
    assert!(
        outage
            .iter()
            .all(|o| *o == (fallback_verdict, fallback_reason)),
        "{mode:?} while the service is gone: {outage:?}"
    );
    assert!(
        outcomes[outcomes.len() - 20..]
            .iter()
            .all(|o| o.1 == Reason::Service),
        "decisions resumed"
    );

    let after = emulator.metrics();
    assert_eq!(after.get(Counter::FailOpenMode), 0, "mode recovered");
    assert_eq!(after.get(Counter::ServiceConnected), 1);
    let kinds: Vec<Transition> = emulator
        .transitions()
        .into_iter()
        .map(|t| t.transition)
        .collect();
    let tripped = kinds
        .iter()
        .position(|t| *t == Transition::TrippedByDisconnect)
        .unwrap_or_else(|| panic!("tripped by the kill: {kinds:?}"));
    assert!(
        kinds[tripped..].contains(&Transition::Recovered),
        "recovered after reconnect: {kinds:?}"
    );
    // Sessions survive the service's restart: the child was still asked about after it.
    assert!(emulator.with_core(|c| c.session_of(CHILD).is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_service_fails_open_then_recovers() {
    check(FailMode::Open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_service_fails_closed_then_recovers() {
    check(FailMode::Closed).await;
}

#[tokio::test]
async fn a_service_that_stops_answering_trips_the_breaker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Emulator::start(&dir.path().join("agentsh.sock"), 3).expect("start");
    let service =
        ScriptedService::connect(emulator.port().path(), Arc::new(|_: &_| Answer::Silence)).await;
    let mut config = emulator.with_core(|c| *c.config());
    config.fail_mode = FailMode::Closed;
    config.policy_query_timeout_ms = 100;
    config.max_consecutive_failures = 3;
    assert_eq!(
        service.send(&ControlRepr::SetConfig(config)).await.status(),
        SendStatus::Ok
    );
    emulator.process_created(ROOT, 0, "agent.exe");
    service.register(ROOT, token_for(ROOT), 1).await;
    emulator.process_created(CHILD, ROOT, "python.exe");
    for i in 0..3 {
        let o = emulator.perform(&write(format!("{APP_KEY}\\t{i}"))).await;
        assert_eq!((o.verdict, o.reason), (Verdict::Deny, Reason::FailClosed));
        assert!(
            o.latency >= Duration::from_millis(100),
            "waited for the query timeout"
        );
    }
    let m = emulator.metrics();
    assert_eq!(m.get(Counter::PolicyQueryTimeouts), 3);
    let kinds: Vec<Transition> = emulator
        .transitions()
        .into_iter()
        .map(|t| t.transition)
        .collect();
    assert!(
        kinds.contains(&Transition::TrippedByFailures { consecutive: 3 }),
        "{kinds:?}"
    );
    // Tripped: one probe per interval goes out, the operations around it are decided at once.
    let probe = emulator.perform(&write(format!("{APP_KEY}\\t8"))).await;
    assert_eq!(
        (probe.verdict, probe.reason),
        (Verdict::Deny, Reason::FailClosed)
    );
    let o = emulator.perform(&write(format!("{APP_KEY}\\t9"))).await;
    assert_eq!((o.verdict, o.reason), (Verdict::Deny, Reason::FailClosed));
    assert!(
        o.latency < Duration::from_millis(100),
        "answered without a query: {:?}",
        o.latency
    );
}
