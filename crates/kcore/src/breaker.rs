//! The fail-mode breaker: tracks whether the service is answering, and reports when the kernel
//! starts and stops deciding on its own.
//!
//! The configured mode (open or closed) is never changed by failures: every query the service
//! does not answer is decided by that mode at once, from the first failure on. What failures
//! change is the breaker state: after `MaxConsecutiveFailures` in a row, or when no service is
//! connected, the breaker is *tripped* — the kernel stops sending queries (each would wait the full
//! policy query timeout) except one probe per [`PROBE_INTERVAL_MS`], and a transition is
//! reported. The first successful answer closes it again.

use crate::Millis;

/// How often a tripped breaker lets one query through to see whether the service is back.
pub const PROBE_INTERVAL_MS: Millis = 1000;

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Consecutive failures reached the threshold.
    TrippedByFailures { consecutive: u32 },
    /// The service disconnected.
    TrippedByDisconnect,
    /// A query succeeded again (or a service completed the handshake).
    Recovered,
}

/// The breaker.
#[derive(Debug, Clone)]
pub struct FailModeBreaker {
    max_failures: u32,
    consecutive: u32,
    tripped: bool,
    probe_in_flight: bool,
    last_probe: Option<Millis>,
}

/// Whether a query may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send it.
    Query,
    /// Send it as the tripped breaker's probe.
    Probe,
    /// Do not send: decide by the fail mode.
    Closed,
}

impl FailModeBreaker {
    /// A breaker that trips after `max_failures` consecutive failures. It starts tripped: until a
    /// service connects, the kernel decides on its own.
    pub fn new(max_failures: u32) -> Self {
        FailModeBreaker {
            max_failures: max_failures.max(1),
            consecutive: 0,
            tripped: true,
            probe_in_flight: false,
            last_probe: None,
        }
    }

    /// Applies a new threshold (SetConfig).
    pub fn set_max_failures(&mut self, max_failures: u32) {
        self.max_failures = max_failures.max(1);
    }

    /// Whether the kernel is currently deciding without the service.
    pub fn is_tripped(&self) -> bool {
        self.tripped
    }

    /// Consecutive failed queries so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// May a query go out at `now`, given whether a service is connected?
    pub fn gate(&mut self, now: Millis, connected: bool) -> Gate {
        if !connected {
            return Gate::Closed;
        }
        if !self.tripped {
            return Gate::Query;
        }
        let due = self
            .last_probe
            .is_none_or(|t| now.saturating_sub(t) >= PROBE_INTERVAL_MS);
        if self.probe_in_flight || !due {
            return Gate::Closed;
        }
        self.probe_in_flight = true;
        self.last_probe = Some(now);
        Gate::Probe
    }

    /// A service answered.
    pub fn record_success(&mut self) -> Option<Transition> {
        self.consecutive = 0;
        self.probe_in_flight = false;
        if self.tripped {
            self.tripped = false;
            return Some(Transition::Recovered);
        }
        None
    }

    /// A query timed out or failed.
    pub fn record_failure(&mut self) -> Option<Transition> {
        self.consecutive = self.consecutive.saturating_add(1);
        self.probe_in_flight = false;
        if !self.tripped && self.consecutive >= self.max_failures {
            self.tripped = true;
            return Some(Transition::TrippedByFailures {
                consecutive: self.consecutive,
            });
        }
        None
    }

    /// The service disconnected.
    pub fn record_disconnect(&mut self) -> Option<Transition> {
        self.probe_in_flight = false;
        if !self.tripped {
            self.tripped = true;
            return Some(Transition::TrippedByDisconnect);
        }
        None
    }

    /// A service completed the handshake: queries may flow again.
    pub fn record_connect(&mut self) -> Option<Transition> {
        self.last_probe = None;
        self.record_success()
    }
}
