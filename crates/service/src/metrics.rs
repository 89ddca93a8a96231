//! The service's own metrics (decision latency, approvals, events) and the Prometheus text
//! rendering of them together with the driver's counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use agentsh_wire::control::{Counter, FailMode, Metrics};

/// Upper bounds (µs) of the decision latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    1, 2, 5, 10, 25, 50, 100, 250, 1000, 10_000, 100_000, 1_000_000,
];

/// Counters the service keeps.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
    pub requests: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub approvals_opened: AtomicU64,
    pub approvals_timed_out: AtomicU64,
}

impl ServiceMetrics {
    /// Records how long one decision took (policy only, approvals excluded).
    pub fn observe_decision(&self, micros: u64) {
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the service's metrics, the driver's counters (when known),
    /// the guide's cache hit rate, and the given gauges.
    pub fn render(
        &self,
        driver: Option<&Metrics>,
        fail_mode: FailMode,
        approvals_pending: usize,
        events_dropped: u64,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP agentsh_fail_mode_closed The driver's configured fail mode: 1 closed (it denies without the service), 0 open (it allows).\n# TYPE agentsh_fail_mode_closed gauge\nagentsh_fail_mode_closed {}",
            u8::from(fail_mode == FailMode::Closed)
        );
        let _ = writeln!(
            out,
            "# HELP agentsh_decision_latency_microseconds Service-side time to decide one request."
        );
        let _ = writeln!(
            out,
            "# TYPE agentsh_decision_latency_microseconds histogram"
        );
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "agentsh_decision_latency_microseconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "agentsh_decision_latency_microseconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "agentsh_decision_latency_microseconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "agentsh_decision_latency_microseconds_count {cumulative}"
        );
        for (name, help, v) in [
            (
                "agentsh_malformed_requests_total",
                "Requests from the port that did not decode.",
                self.malformed_requests.load(Ordering::Relaxed),
            ),
            (
                "agentsh_approvals_opened_total",
                "Approvals asked of a person.",
                self.approvals_opened.load(Ordering::Relaxed),
            ),
            (
                "agentsh_approvals_timed_out_total",
                "Approvals denied because nobody answered in time.",
                self.approvals_timed_out.load(Ordering::Relaxed),
            ),
            (
                "agentsh_events_dropped_total",
                "Events dropped because the event queue was full.",
                events_dropped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP agentsh_approvals_pending Approvals waiting for a person.\n# TYPE agentsh_approvals_pending gauge\nagentsh_approvals_pending {approvals_pending}"
        );
        if let Some(m) = driver {
            for c in Counter::ALL {
                let _ = writeln!(out, "agentsh_driver_{} {}", snake(c.name()), m.get(c));
            }
            if let Some(rate) = m.cache_hit_rate_percent() {
                let _ = writeln!(
                    out,
                    "# HELP agentsh_driver_cache_hit_rate_percent CacheHitCount / (CacheHitCount + CacheMissCount) * 100\n# TYPE agentsh_driver_cache_hit_rate_percent gauge\nagentsh_driver_cache_hit_rate_percent {rate:.2}"
                );
            }
        }
        out
    }
}

/// `CacheHitCount` → `cache_hit_count`.
fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}
