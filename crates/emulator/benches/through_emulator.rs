//! Decisions through the emulator over the loopback socket: simulated processes → kernel core →
//! port → user side → back. Uncached decisions at 1, 8 and 64 concurrent processes (throughput,
//! p50, p99), and a warm-cache run reporting the kernel-core hit path's share and the hit rate.
//!
//! The user side is the scripted wire client: `baseline` answers at once (the emulator's own
//! cost); `with-policy` decodes each request and decides it with the embedded default policy's
//! engine before answering (the service's per-request work, without its event pipeline).

#[path = "../tests/support/mod.rs"]
pub mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::load::{LoadReport, LoadSpec, run_load};
use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::request::Reason;
use agentsh_policy::{Access, Decision, Policy, RegistryQuery, SessionContext};
use agentsh_wire::control::Counter;
use agentsh_wire::registry::RegistryRequestRepr;
use agentsh_wire::response::CacheTtl;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{Answer, ScriptedService};

struct Rig {
    rt: tokio::runtime::Runtime,
    emulator: Arc<Emulator>,
    service: ScriptedService,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    rig_with(Arc::new(|_: &_| Answer::Allow {
        ttl: CacheTtl::Seconds(60),
    }))
}

/// A user side that decides every request with the embedded default policy, as the service does.
fn policy_script() -> support::Script {
    let policy = Policy::embedded_default().expect("embedded default policy");
    let engine = policy.engine().clone();
    let session = SessionContext::new(Some("TestApp"), Some("C:\\work"), Some(DEFAULT_USER_SID))
        .expect("session");
    Arc::new(move |request: &RegistryRequestRepr| {
        let key = request.key_path.to_string();
        let value = request.value_name.to_string();
        let query = RegistryQuery {
            value: Some(value.as_str()),
            ..RegistryQuery::new(&key, Access::from(request.operation), &session)
        };
        let verdict = engine.decide_registry(&query);
        let ttl = verdict.cache_ttl;
        match verdict.decision {
            Decision::Allow => Answer::Allow { ttl },
            Decision::Deny | Decision::Approve => Answer::Deny { ttl },
        }
    })
}

fn rig_with(script: support::Script) -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (emulator, service) = rt.block_on(async {
        let emulator =
            Arc::new(Emulator::start(&dir.path().join("agentsh.sock"), 11).expect("start"));
        let service = ScriptedService::connect(emulator.port().path(), script).await;
        (emulator, service)
    });
    Rig {
        rt,
        emulator,
        service,
        _dir: dir,
    }
}

/// Runs about `ops` operations spread over `spec.processes`; returns the time scaled to exactly
/// `ops` and adds the run's figures to `total`.
fn timed(rig: &Rig, spec: &LoadSpec, ops: u64, total: &Mutex<LoadReport>) -> Duration {
    let per = (ops / u64::from(spec.processes)).max(1);
    let spec = LoadSpec {
        ops_per_process: per,
        ..spec.clone()
    };
    let report = rig
        .rt
        .block_on(run_load(&rig.emulator, &rig.service, &spec))
        .expect("load");
    let elapsed = report
        .elapsed
        .mul_f64(ops as f64 / report.operations as f64);
    total.lock().expect("lock").merge(&report);
    elapsed
}

fn summary(label: &str, r: &LoadReport) {
    println!(
        "{label}: {} ops, {:.0} decisions/s, p50 {:.1} µs, p99 {:.1} µs",
        r.operations,
        r.per_second(),
        r.latency.percentile(50.0).as_secs_f64() * 1e6,
        r.latency.percentile(99.0).as_secs_f64() * 1e6,
    );
}

fn uncached(c: &mut Criterion) {
    uncached_with(c, "uncached/baseline", rig());
    uncached_with(c, "uncached/with-policy", rig_with(policy_script()));
}

fn uncached_with(c: &mut Criterion, name: &str, rig: Rig) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for processes in [1u32, 8, 64] {
        let spec = LoadSpec {
            processes,
            ..LoadSpec::default()
        };
        let total = Mutex::new(LoadReport::default());
        group.bench_function(format!("{processes}-processes"), |b| {
            b.iter_custom(|iters| timed(&rig, &spec, iters, &total))
        });
        let total = total.lock().expect("lock");
        assert_eq!(
            total.count(Reason::Service),
            total.operations,
            "every operation was asked"
        );
        assert_eq!(
            total.allowed, total.operations,
            "allow-app-settings allows every key"
        );
        summary(&format!("{name}, {processes} processes"), &total);
    }
    group.finish();
}

fn warm(c: &mut Criterion) {
    let rig = rig();
    let mut group = c.benchmark_group("warm-cache");
    group.throughput(Throughput::Elements(1));
    // Each process cycles 256 keys of its own: after the first pass every lookup can hit.
    let spec = LoadSpec {
        processes: 8,
        distinct_keys: 256,
        ..LoadSpec::default()
    };
    let total = Mutex::new(LoadReport::default());
    let before = rig.emulator.metrics();
    group.bench_function("8-processes", |b| {
        b.iter_custom(|iters| timed(&rig, &spec, iters, &total))
    });
    group.finish();
    let after = rig.emulator.metrics();
    let total = total.lock().expect("lock");
    summary("warm cache, 8 processes", &total);
    let hits = after.get(Counter::CacheHitCount) - before.get(Counter::CacheHitCount);
    let misses = after.get(Counter::CacheMissCount) - before.get(Counter::CacheMissCount);
    println!(
        "warm cache: kernel-core hit path answered {:.1}% of operations; hit rate {:.1}% ({hits} hits, {misses} misses, CacheHitCount / (CacheHitCount + CacheMissCount))",
        100.0 * total.count(Reason::Cached) as f64 / total.operations.max(1) as f64,
        100.0 * hits as f64 / (hits + misses).max(1) as f64,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = uncached, warm
}
criterion_main!(benches);
