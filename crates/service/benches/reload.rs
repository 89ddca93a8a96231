//! A policy reload's compile, which the service runs on a blocking thread (never on the runtime
//! that answers the driver): a valid 20,000-rule policy read from text, checked, compiled, its
//! `tests:` run and its complexity checked, as `runner`'s reload does. And the same number of
//! leading-wildcard rules, which the complexity budget refuses (after parsing them).
//!
//! The structural guarantee that decisions keep flowing during a compile is a test
//! (`tests/runner.rs::decisions_keep_flowing_while_a_reload_compiles`); this measures how long
//! the compile itself takes.

use std::fmt::Write;
use std::hint::black_box;

use agentsh_policy::Policy;
use agentsh_service::runner::check_complexity;
use criterion::{Criterion, criterion_group, criterion_main};

/// A policy of `n` rules, each for its own vendor key; `pattern` builds a rule's path.
fn policy(n: usize, pattern: impl Fn(usize) -> String) -> String {
    let mut text = String::from("version: 1\nregistry_policy:\n  default_action: deny\n  rules:\n");
    for i in 0..n {
        let _ = write!(
            text,
            "    - name: vendor-{i}\n      paths: ['{}']\n      operations: ['*']\n      action: allow\n",
            pattern(i)
        );
    }
    text
}

fn reload(c: &mut Criterion) {
    let indexed = policy(20_000, |i| format!("HKCU\\SOFTWARE\\Vendor{i}\\*"));
    let unindexed = policy(20_000, |i| format!("*Vendor{i}*x*"));
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.bench_function("compile_20000_rules", |b| {
        b.iter(|| {
            let p = Policy::from_str(black_box(&indexed), "bench.yaml").expect("valid policy");
            check_complexity(&p).expect("within the budget");
            p
        })
    });
    group.bench_function("refuse_20000_leading_wildcard_rules", |b| {
        b.iter(|| {
            let p = Policy::from_str(black_box(&unindexed), "bench.yaml").expect("valid policy");
            check_complexity(&p).expect_err("over the budget")
        })
    });
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
