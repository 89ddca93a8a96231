//! One million operations from 8 simulated processes through the emulator and the real service
//! (policy engine, session lookup, events encoded as JSON lines): every request answered exactly
//! once with the policy's decision, and memory flat after warm-up. Run in release by
//! scripts/ci.d/30-reliability.sh (`--features reliability`).
#![cfg(unix)]

mod support;

use std::sync::atomic::Ordering;

use agentsh_emulator::load::{LoadSpec, resident_bytes, run_load};
use agentsh_emulator::request::Reason;

const ROUNDS: u64 = 10;
const PROCESSES: u32 = 8;
const PER_ROUND: u64 = 100_000;
/// RSS may move by allocator noise; a leak of even 8 bytes per operation would exceed this.
const MAX_GROWTH: u64 = 4 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_operations_through_the_service_answered_once_without_memory_growth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (emulator, registrar) = support::emulator_and_service(dir.path())
        .await
        .expect("emulator and service start");
    // The default policy allows the application's own key and denies the Run key: half of
    // the rounds write one, half the other, so both answers cross the port.
    let allowed = LoadSpec {
        processes: PROCESSES,
        ops_per_process: PER_ROUND / u64::from(PROCESSES),
        ..LoadSpec::default()
    };
    let denied = LoadSpec {
        key_prefix: r"HKCU\SOFTWARE\Microsoft\Windows\CurrentVersion\Run".to_owned(),
        first_pid: 40_000,
        ..allowed.clone()
    };
    let mut warm = None;
    let mut peak_growth = 0;
    let (mut total, mut total_denied) = (0, 0);
    for round in 0..ROUNDS {
        let spec = if round % 2 == 0 { &allowed } else { &denied };
        let report = run_load(&emulator, &registrar, spec).await.expect("load");
        assert_eq!(report.operations, PER_ROUND);
        assert_eq!(
            report.count(Reason::Service),
            PER_ROUND,
            "round {round}: every operation was asked and answered by the service"
        );
        if round % 2 == 0 {
            assert_eq!(report.allowed, PER_ROUND, "round {round}: the app key");
        } else {
            assert_eq!(report.denied, PER_ROUND, "round {round}: the Run key");
        }
        total += report.operations;
        total_denied += report.denied;
        let rss = resident_bytes().expect("/proc/self/status");
        match warm {
            None => warm = Some(rss),
            Some(w) => peak_growth = peak_growth.max(rss.saturating_sub(w)),
        }
        println!(
            "round {round}: {} ops, {:.0}/s, p50 {:?}, p99 {:?}, rss {} KiB",
            report.operations,
            report.per_second(),
            report.latency.percentile(50.0),
            report.latency.percentile(99.0),
            rss / 1024
        );
    }
    assert_eq!(total, ROUNDS * PER_ROUND);
    assert_eq!(total_denied, ROUNDS / 2 * PER_ROUND);
    let port = emulator.port().counters();
    assert_eq!(port.queries_sent.load(Ordering::Relaxed), total);
    assert_eq!(
        port.replies_matched.load(Ordering::Relaxed),
        total,
        "each query answered"
    );
    assert_eq!(
        port.replies_unmatched.load(Ordering::Relaxed),
        0,
        "no reply twice or unasked"
    );
    let metrics = &registrar.service.adapter.metrics;
    assert_eq!(
        metrics.requests.load(Ordering::Relaxed),
        total,
        "each query decided once"
    );
    assert_eq!(metrics.malformed_requests.load(Ordering::Relaxed), 0);
    assert!(
        peak_growth <= MAX_GROWTH,
        "rss grew by {peak_growth} bytes after warm-up"
    );
}
