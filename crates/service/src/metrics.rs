//! The service's own metrics (decision latency, approvals, events) and the Prometheus text
//! rendering of them together with the driver's counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use agentsh_wire::control::{Counter, FailMode, Metrics};

/// Upper bounds (µs) of the decision latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    1, 2, 5, 10, 25, 50, 100, 250, 1000, 10_000, 100_000, 1_000_000,
];

/// Upper bounds (ms) of the approval time-to-decision histogram buckets: from a quick answer to
/// the longest approval timeout (3600 s).
pub const APPROVAL_BUCKETS_MS: [u64; 14] = [
    500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    1_800_000, 3_600_000,
];

/// How an approval ended, the label of its time to decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalEnd {
    /// A person allowed it (once or for the session).
    Allowed,
    /// A person denied it.
    Denied,
    /// Nobody answered before its timeout (it was denied).
    TimedOut,
    /// The driver connection it was held on closed first.
    Withdrawn,
    /// The kernel would not hold the operation (the session's hold quota was taken) and denied
    /// it at once.
    Refused,
}

impl ApprovalEnd {
    const ALL: [ApprovalEnd; 5] = [
        ApprovalEnd::Allowed,
        ApprovalEnd::Denied,
        ApprovalEnd::TimedOut,
        ApprovalEnd::Withdrawn,
        ApprovalEnd::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            ApprovalEnd::Allowed => "allowed",
            ApprovalEnd::Denied => "denied",
            ApprovalEnd::TimedOut => "timed_out",
            ApprovalEnd::Withdrawn => "withdrawn",
            ApprovalEnd::Refused => "refused",
        }
    }
}

/// One histogram's buckets (the last one is +Inf) and sum.
#[derive(Debug)]
struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    sum: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Counts `value` in the first bucket whose bound (of `bounds`, N - 1 of them) holds it.
    fn observe(&self, bounds: &[u64], value: u64) {
        let i = bounds.iter().position(|&b| value <= b).unwrap_or(N - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` samples of `name` with the extra `labels` (`k="v",`
    /// or empty); bounds and sum are in units of which `unit` make a second.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[u64], unit: u64) {
        let secs = |v: u64| seconds(v.saturating_mul(1_000_000 / unit));
        let mut cumulative = 0;
        for (i, b) in bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{}\"}} {cumulative}",
                secs(*b)
            );
        }
        cumulative += self.buckets[N - 1].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let plain = labels.trim_end_matches(',');
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            braces(plain),
            secs(self.sum.load(Ordering::Relaxed))
        );
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(plain));
    }
}

/// Counters the service keeps.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
    /// Time from an approval's opening to its end, per [`ApprovalEnd`] (in `ApprovalEnd::ALL`
    /// order), in milliseconds.
    approval_times: [Histogram<{ APPROVAL_BUCKETS_MS.len() + 1 }>; ApprovalEnd::ALL.len()],
    pub requests: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub approvals_opened: AtomicU64,
    pub approvals_timed_out: AtomicU64,
    /// Denials the service decided, notified and silent.
    pub denials_notified: AtomicU64,
    pub denials_silent: AtomicU64,
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

    /// Records how long an approval waited before it ended, and how it ended; a timed-out one is
    /// also counted in `approvals_timed_out`.
    pub fn observe_approval(&self, end: ApprovalEnd, waited: std::time::Duration) {
        let i = ApprovalEnd::ALL
            .iter()
            .position(|&e| e == end)
            .unwrap_or_default();
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.approval_times[i].observe(&APPROVAL_BUCKETS_MS, ms);
        if end == ApprovalEnd::TimedOut {
            self.approvals_timed_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one denial the service decided, by whether it was notified.
    pub fn count_denial(&self, notified: bool) {
        let c = if notified {
            &self.denials_notified
        } else {
            &self.denials_silent
        };
        c.fetch_add(1, Ordering::Relaxed);
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
            "# HELP agentsh_decision_latency_seconds Service-side time to decide one request."
        );
        let _ = writeln!(out, "# TYPE agentsh_decision_latency_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "agentsh_decision_latency_seconds_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*b)
            );
        }
        cumulative += self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "agentsh_decision_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "agentsh_decision_latency_seconds_sum {}",
            seconds(self.latency_sum_us.load(Ordering::Relaxed))
        );
        let _ = writeln!(out, "agentsh_decision_latency_seconds_count {cumulative}");
        let name = "agentsh_approval_decision_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an approval's opening to its end, by how it ended (allowed, denied, timed_out: nobody answered, withdrawn: the driver connection closed, refused: the kernel would not hold it).\n# TYPE {name} histogram"
        );
        for (end, h) in ApprovalEnd::ALL.iter().zip(&self.approval_times) {
            h.render(
                &mut out,
                name,
                &format!("outcome=\"{}\",", end.label()),
                &APPROVAL_BUCKETS_MS,
                1_000,
            );
        }
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
            "# HELP agentsh_denials_total Denials the service decided, by whether the rule asked for notification (notify=\"false\": silent denies).\n# TYPE agentsh_denials_total counter\nagentsh_denials_total{{notify=\"true\"}} {}\nagentsh_denials_total{{notify=\"false\"}} {}",
            self.denials_notified.load(Ordering::Relaxed),
            self.denials_silent.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP agentsh_approvals_pending Approvals waiting for a person.\n# TYPE agentsh_approvals_pending gauge\nagentsh_approvals_pending {approvals_pending}"
        );
        if let Some(m) = driver {
            for c in Counter::ALL {
                let (name, kind, help) = driver_family(c);
                let _ = writeln!(
                    out,
                    "# HELP {name} {help} (the driver's {}).\n# TYPE {name} {}\n{name} {}",
                    c.name(),
                    kind.name(),
                    m.get(c)
                );
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

/// Microseconds as seconds in Prometheus text (its base unit): `25` → `0.000025`.
fn seconds(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
}

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (until the driver restarts); named `…_total`.
    Counter,
    /// A current value.
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The Prometheus family of one of the driver's counters: its name, type and help text. Counts
/// that only go up are counters named `…_total`; current values are gauges.
pub fn driver_family(c: Counter) -> (&'static str, Kind, &'static str) {
    use Kind::{Counter as C, Gauge as G};
    match c {
        Counter::CacheHitCount => (
            "agentsh_driver_cache_hits_total",
            C,
            "Operations answered from the decision cache",
        ),
        Counter::CacheMissCount => (
            "agentsh_driver_cache_misses_total",
            C,
            "Operations the decision cache could not answer",
        ),
        Counter::RegistryPolicyQueries => (
            "agentsh_driver_registry_policy_queries_total",
            C,
            "Registry policy checks sent to the service",
        ),
        Counter::FilePolicyQueries => (
            "agentsh_driver_file_policy_queries_total",
            C,
            "File policy checks sent to the service",
        ),
        Counter::PolicyQueryTimeouts => (
            "agentsh_driver_policy_query_timeouts_total",
            C,
            "Policy checks the service did not answer in time",
        ),
        Counter::PolicyQueryErrors => (
            "agentsh_driver_policy_query_errors_total",
            C,
            "Policy checks that failed to send or got a malformed answer",
        ),
        Counter::AllowDecisions => (
            "agentsh_driver_allow_decisions_total",
            C,
            "Operations allowed",
        ),
        Counter::DenyDecisions => (
            "agentsh_driver_deny_decisions_total",
            C,
            "Operations denied",
        ),
        Counter::PendingDecisions => (
            "agentsh_driver_pending_decisions_total",
            C,
            "Operations held for a person's approval",
        ),
        Counter::PendingExpired => (
            "agentsh_driver_pending_expired_total",
            C,
            "Held operations denied because no final decision came in time",
        ),
        Counter::FailOpenDecisions => (
            "agentsh_driver_fail_open_decisions_total",
            C,
            "Operations allowed because the service could not answer",
        ),
        Counter::FailClosedDecisions => (
            "agentsh_driver_fail_closed_decisions_total",
            C,
            "Operations denied because the service could not answer",
        ),
        Counter::ConsecutiveFailures => (
            "agentsh_driver_consecutive_failures",
            G,
            "Failed policy checks since the last answered one",
        ),
        Counter::FailOpenMode => (
            "agentsh_driver_fail_open_mode",
            G,
            "1 while operations are being allowed without the service",
        ),
        Counter::FailMode => (
            "agentsh_driver_fail_mode",
            G,
            "The configured fail mode: 0 open, 1 closed",
        ),
        Counter::CacheEntries => (
            "agentsh_driver_cache_entries",
            G,
            "Entries in the decision cache",
        ),
        Counter::CacheEvictions => (
            "agentsh_driver_cache_evictions_total",
            C,
            "Cache entries evicted to stay within CacheMaxEntries",
        ),
        Counter::NotificationsQueued => (
            "agentsh_driver_notifications_queued_total",
            C,
            "One-way notifications queued",
        ),
        Counter::NotificationsDropped => (
            "agentsh_driver_notifications_dropped_total",
            C,
            "Notifications dropped because the queue was full",
        ),
        Counter::ExcludedOperations => (
            "agentsh_driver_excluded_operations_total",
            C,
            "Operations of the excluded service process",
        ),
        Counter::UnsandboxedOperations => (
            "agentsh_driver_unsandboxed_operations_total",
            C,
            "Operations of processes outside every session",
        ),
        Counter::ActiveSessions => ("agentsh_driver_active_sessions", G, "Registered sessions"),
        Counter::TrackedProcesses => (
            "agentsh_driver_tracked_processes",
            G,
            "Session processes tracked",
        ),
        Counter::TruncatedPaths => (
            "agentsh_driver_truncated_paths_total",
            C,
            "Session operations whose path or name did not fit the request",
        ),
        Counter::ServiceConnected => (
            "agentsh_driver_service_connected",
            G,
            "1 while a service is connected",
        ),
    }
}
