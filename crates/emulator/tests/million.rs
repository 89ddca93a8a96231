//! One million operations from 8 simulated processes through the emulator and the port: every
//! request is answered exactly once and memory does not grow after warm-up. Run in release by
//! scripts/ci.d/30-reliability.sh (`--features reliability`).

pub mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::load::{LoadSpec, resident_bytes, run_load};
use agentsh_emulator::request::Reason;
use agentsh_wire::response::CacheTtl;
use support::{Answer, ScriptedService};

const ROUNDS: u64 = 10;
const PROCESSES: u32 = 8;
const PER_ROUND: u64 = 100_000;
/// RSS may move by allocator noise; a leak of even 8 bytes per operation would exceed this.
const MAX_GROWTH: u64 = 4 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_operations_answered_once_without_memory_growth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = Arc::new(Emulator::start(&dir.path().join("agentsh.sock"), 7).expect("start"));
    let service = ScriptedService::connect(
        emulator.port().path(),
        Arc::new(|_: &_| Answer::Allow {
            ttl: CacheTtl::Seconds(60),
        }),
    )
    .await;
    let spec = LoadSpec {
        processes: PROCESSES,
        ops_per_process: PER_ROUND / u64::from(PROCESSES),
        ..LoadSpec::default()
    };
    let mut warm = None;
    let mut total = 0;
    let mut peak_growth = 0;
    for round in 0..ROUNDS {
        let report = run_load(&emulator, &service, &spec).await.expect("load");
        assert_eq!(report.operations, PER_ROUND);
        assert_eq!(
            report.count(Reason::Service),
            PER_ROUND,
            "round {round}: every operation was asked and answered"
        );
        total += report.operations;
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
    let port = emulator.port().counters();
    assert_eq!(total, ROUNDS * PER_ROUND);
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
    assert_eq!(
        service.queries.load(Ordering::Relaxed),
        total,
        "each query delivered once"
    );
    assert!(
        peak_growth <= MAX_GROWTH,
        "rss grew by {peak_growth} bytes after warm-up"
    );
}
