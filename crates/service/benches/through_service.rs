//! Decisions through the whole path over the loopback socket: simulated processes → emulator
//! kernel core → port → the real service (session lookup, embedded default policy, JSON-lines
//! events) → reply. Uncached decisions at 1, 8 and 64 concurrent processes (throughput, p50,
//! p99; target at 8: ≥ 50,000/s and p99 ≤ 500 µs), and a warm-cache run reporting the
//! kernel-core hit path's share and the hit rate.

#[cfg(unix)]
#[path = "../tests/support/mod.rs"]
mod support;

#[cfg(unix)]
criterion::criterion_main!(unix::benches);

/// The emulator's loopback port is Unix-only: elsewhere there is nothing to measure.
#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod unix {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::support::{self, ServiceRegistrar};
    use agentsh_emulator::emulator::Emulator;
    use agentsh_emulator::load::{LoadReport, LoadSpec, run_load};
    use agentsh_emulator::request::Reason;
    use agentsh_wire::control::Counter;
    use criterion::{Criterion, Throughput, criterion_group};

    struct Rig {
        rt: tokio::runtime::Runtime,
        emulator: Arc<Emulator>,
        service: ServiceRegistrar,
        _dir: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (emulator, service) = rt
            .block_on(support::emulator_and_service(dir.path()))
            .expect("emulator and service start");
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
        let rig = rig();
        let mut group = c.benchmark_group("through-service/uncached");
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
                "every operation was decided by the service"
            );
            assert_eq!(
                total.allowed, total.operations,
                "the default policy allows the application's own key"
            );
            summary(
                &format!("through the service, uncached, {processes} processes"),
                &total,
            );
        }
        group.finish();
    }

    fn warm(c: &mut Criterion) {
        let rig = rig();
        let mut group = c.benchmark_group("through-service/warm-cache");
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
        summary("through the service, warm cache, 8 processes", &total);
        let hits = after.get(Counter::CacheHitCount) - before.get(Counter::CacheHitCount);
        let misses = after.get(Counter::CacheMissCount) - before.get(Counter::CacheMissCount);
        println!(
            "warm cache: kernel-core hit path answered {:.1}% of operations; hit rate {:.1}% ({hits} hits, {misses} misses, CacheHitCount / (CacheHitCount + CacheMissCount))",
            100.0 * total.count(Reason::Cached) as f64 / total.operations.max(1) as f64,
            100.0 * hits as f64 / (hits + misses).max(1) as f64,
        );
    }

    const READ_POLICY: &str = r#"
registry_policy:
  default_action: deny
  default_cache_ttl: 30
  rules:
    - name: allow-app-settings
      paths: ["HKCU\\SOFTWARE\\${APP_NAME}\\*"]
      operations: [read, write, create, delete]
      action: allow
"#;

    fn policy_rig(yaml: &str) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = agentsh_policy::Policy::from_str(yaml, "bench.yaml").expect("policy loads");
        let (emulator, service) = rt
            .block_on(support::emulator_and_service_with(dir.path(), &policy))
            .expect("emulator and service start");
        Rig {
            rt,
            emulator,
            service,
            _dir: dir,
        }
    }

    /// A read-heavy trace (QueryValue, every key distinct) under a policy without a read rule and
    /// under the same policy plus a read-deny rule on one subtree, in one run: the compiled read
    /// scope keeps the reads outside that subtree in the kernel, so the two cost the same.
    /// Besides criterion's figures for each, the two rigs are measured in alternating rounds
    /// (the order swapped every round) and compared by their median throughput, so a load spike
    /// on a shared machine does not land on one configuration only.
    fn read_scope(c: &mut Criterion) {
        let with_rule = format!(
            "{READ_POLICY}    - name: deny-vault-reads\n      paths: [\"HKLM\\\\SOFTWARE\\\\Vault\\\\*\"]\n      operations: [read]\n      action: deny\n"
        );
        let spec = LoadSpec {
            processes: 8,
            op: agentsh_wire::Operation::QueryValue,
            ..LoadSpec::default()
        };
        let rigs = [
            ("no-read-rule", policy_rig(READ_POLICY)),
            ("read-rule-on-one-subtree", policy_rig(&with_rule)),
        ];
        let queries = |rig: &Rig| rig.emulator.metrics().get(Counter::RegistryPolicyQueries);
        let mut group = c.benchmark_group("through-service/read-trace");
        group.throughput(Throughput::Elements(1));
        for (name, rig) in &rigs {
            let total = Mutex::new(LoadReport::default());
            let before = queries(rig);
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| timed(rig, &spec, iters, &total))
            });
            assert_eq!(
                queries(rig) - before,
                0,
                "{name}: reads outside the scope are not queried"
            );
            summary(
                &format!("read trace, {name}, 8 processes"),
                &total.lock().expect("lock"),
            );
        }
        group.finish();

        const ROUNDS: usize = 15;
        const OPS: u64 = 40_000;
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let report = Mutex::new(LoadReport::default());
                let elapsed = timed(&rigs[i].1, &spec, OPS, &report);
                rates[i].push(OPS as f64 / elapsed.as_secs_f64().max(f64::EPSILON));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let without = median(&mut rates[0]);
        let with = median(&mut rates[1]);
        println!(
            "read trace, alternating rounds ({ROUNDS} × {OPS} reads each): median {without:.0} reads/s without a read rule, {with:.0} reads/s with a read rule on one subtree: {:.1}% of the throughput without one (target ≥ 95%)",
            100.0 * with / without.max(1.0)
        );
    }

    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        targets = uncached, warm, read_scope
    }
}
