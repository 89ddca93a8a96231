//! ns per registry decision (kernel-form path canonicalization included) for the default policy
//! and 10 / 100 / 1,000 / 10,000 generated rules, compiled index next to the linear scan, plus a
//! summary table with the medians and the speed-up measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agentsh_policy::load::parse_access;
use agentsh_policy::workload::{self, APP, SID};
use agentsh_policy::{Access, Policy, RegistryQuery, SessionContext, Strategy};
use criterion::{Criterion, criterion_group};

struct Case {
    label: String,
    policy: Policy,
    queries: Vec<(String, Option<String>, Access)>,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let default = Policy::embedded_default().unwrap_or_else(|e| panic!("{e}"));
    let sizes = [10usize, 100, 1_000, 10_000];
    let make_queries = |n: usize| {
        workload::queries(n)
            .into_iter()
            .map(|q| {
                let access = parse_access(q.op).unwrap_or_else(|| panic!("operation {}", q.op));
                (q.key, q.value, access)
            })
            .collect::<Vec<_>>()
    };
    out.push(Case {
        label: "default".into(),
        policy: default,
        queries: make_queries(64),
    });
    for n in sizes {
        let policy = Policy::from_str(&workload::policy_yaml(n), "<generated>")
            .unwrap_or_else(|e| panic!("{e}"));
        out.push(Case {
            label: format!("{n}-rules"),
            policy,
            queries: make_queries(n),
        });
    }
    out
}

fn session() -> SessionContext {
    SessionContext::new(Some(APP), Some(r"C:\work"), Some(SID)).unwrap_or_else(|e| panic!("{e}"))
}

fn decide_one(case: &Case, session: &SessionContext, i: usize, strategy: Strategy) -> u32 {
    let (key, value, access) = &case.queries[i % case.queries.len()];
    let mut q = RegistryQuery::new(key, *access, session);
    q.value = value.as_deref();
    case.policy
        .engine()
        .decide_registry_with(&q, strategy)
        .decision
        .wire_code()
}

fn bench(c: &mut Criterion) {
    let session = session();
    for case in cases() {
        let mut group = c.benchmark_group(format!("decide/{}", case.label));
        for (name, strategy) in [("indexed", Strategy::Indexed), ("linear", Strategy::Linear)] {
            let mut i = 0usize;
            group.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    black_box(decide_one(&case, &session, i, strategy))
                })
            });
        }
        group.finish();
    }
}

/// Median ns per decision over `rounds` passes through the query list.
fn median_ns(case: &Case, session: &SessionContext, strategy: Strategy, budget: Duration) -> f64 {
    let n = case.queries.len();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 15 || (start.elapsed() < budget && samples.len() < 200) {
        let t = Instant::now();
        for i in 0..n {
            black_box(decide_one(case, session, i, strategy));
        }
        samples.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn summary() {
    let session = session();
    println!("\nsummary: median ns per decision (canonicalization included), same run");
    println!(
        "{:<14} {:>12} {:>14} {:>10}",
        "policy", "indexed ns", "linear ns", "speed-up"
    );
    for case in cases() {
        let fast = median_ns(
            &case,
            &session,
            Strategy::Indexed,
            Duration::from_millis(500),
        );
        let slow = median_ns(
            &case,
            &session,
            Strategy::Linear,
            Duration::from_millis(500),
        );
        println!(
            "{:<14} {:>12.0} {:>14.0} {:>9.1}x",
            case.label,
            fast,
            slow,
            slow / fast
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
