//! Fail-mode transitions as their own events, so a SIEM can alert on them: the kernel deciding
//! without the service (fail open or closed) is `fail_mode_engaged`, the kernel asking the service
//! again is `fail_mode_recovered`.
//!
//! The service learns of a transition in two ways: a fail-open/fail-closed notification while
//! connected (the service answered too slowly), and the driver's counters when it connects or
//! polls (the service was away: nothing could tell it at the time). A policy check arriving after
//! an engagement is the kernel asking again, hence the recovery.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use agentsh_wire::control::{Counter, Metrics};
use agentsh_wire::notify::NotifyReason;

use crate::events::{Event, EventKind, Reason};

/// Watches for fail-mode transitions.
#[derive(Debug, Default)]
pub struct FailModeWatch {
    /// Set while the kernel is known to decide on its own; read on every request, so atomic.
    engaged: AtomicBool,
    /// Fail-open and fail-closed decision counts last read from the driver.
    seen: Mutex<Option<(u64, u64)>>,
}

impl FailModeWatch {
    /// A notification the kernel sent: a fail-open or fail-closed decision engages.
    pub fn on_notification(&self, reason: NotifyReason) -> Option<Event> {
        let r = match reason {
            NotifyReason::FailOpen => Reason::FailOpen,
            NotifyReason::FailClosed => Reason::FailClosed,
            _ => return None,
        };
        if self.engaged.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(transition(
            EventKind::FailModeEngaged,
            r,
            "the driver decided without the service",
        ))
    }

    /// A policy check arrived: the kernel is asking the service again.
    pub fn on_request(&self) -> Option<Event> {
        // The common case is one relaxed load.
        if !self.engaged.load(Ordering::Relaxed) || !self.engaged.swap(false, Ordering::Relaxed) {
            return None;
        }
        Some(transition(
            EventKind::FailModeRecovered,
            Reason::Default,
            "the driver is asking the service again",
        ))
    }

    /// The driver's counters: decisions the kernel made on its own since the last reading (the
    /// service was away, or too slow) engage; the kernel no longer in its fail mode recovers.
    /// The first reading of a connection only sets the baseline unless the kernel already counted
    /// fail decisions, which means the service was away before.
    pub fn on_metrics(&self, m: &Metrics) -> Vec<Event> {
        let now = (
            m.get(Counter::FailOpenDecisions),
            m.get(Counter::FailClosedDecisions),
        );
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        let (open, closed) = seen.unwrap_or((0, 0));
        // A driver restart resets its counters: count from zero again.
        let (open, closed) = if now.0 < open || now.1 < closed {
            (0, 0)
        } else {
            (open, closed)
        };
        *seen = Some(now);
        let mut out = Vec::new();
        let (new_open, new_closed) = (now.0 - open, now.1 - closed);
        if new_open + new_closed > 0 && !self.engaged.swap(true, Ordering::Relaxed) {
            let reason = if new_closed > 0 {
                Reason::FailClosed
            } else {
                Reason::FailOpen
            };
            out.push(transition(
                EventKind::FailModeEngaged,
                reason,
                &format!(
                    "the driver decided without the service: {new_open} allowed (fail open), \
                     {new_closed} denied (fail closed) since the service last read its counters"
                ),
            ));
        }
        if m.get(Counter::FailOpenMode) == 0
            && m.get(Counter::ServiceConnected) != 0
            && self.engaged.swap(false, Ordering::Relaxed)
        {
            out.push(transition(
                EventKind::FailModeRecovered,
                Reason::Default,
                "the driver is asking the service again",
            ));
        }
        out
    }
}

fn transition(kind: EventKind, reason: Reason, message: &str) -> Event {
    let mut ev = Event::now(kind);
    ev.reason = reason;
    ev.decision = match reason {
        Reason::FailOpen => "allow",
        Reason::FailClosed => "deny",
        _ => "",
    };
    ev.message = Some(message.to_owned());
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(open: u64, closed: u64, in_fail_mode: bool) -> Metrics {
        let mut m = Metrics::default();
        m.set(Counter::FailOpenDecisions, open);
        m.set(Counter::FailClosedDecisions, closed);
        m.set(Counter::FailOpenMode, u64::from(in_fail_mode));
        m.set(Counter::ServiceConnected, 1);
        m
    }

    #[test]
    fn a_fail_open_notification_engages_once_and_the_next_request_recovers() {
        let w = FailModeWatch::default();
        assert_eq!(
            w.on_request(),
            None,
            "no transition while the service answers"
        );
        let e = w.on_notification(NotifyReason::FailOpen).expect("engaged");
        assert_eq!(e.kind, EventKind::FailModeEngaged);
        assert_eq!(e.reason, Reason::FailOpen);
        assert_eq!(e.decision, "allow");
        assert_eq!(
            w.on_notification(NotifyReason::FailOpen),
            None,
            "one event per transition"
        );
        assert_eq!(w.on_notification(NotifyReason::CachedDecision), None);
        let r = w.on_request().expect("recovered");
        assert_eq!(r.kind, EventKind::FailModeRecovered);
        assert_eq!(w.on_request(), None);
    }

    #[test]
    fn fail_closed_decisions_counted_while_away_engage_then_recover() {
        let w = FailModeWatch::default();
        let first = w.on_metrics(&metrics(0, 3, false));
        assert_eq!(
            first.len(),
            2,
            "engaged while away, recovered now: {first:?}"
        );
        assert_eq!(first[0].kind, EventKind::FailModeEngaged);
        assert_eq!(first[0].reason, Reason::FailClosed);
        assert!(
            first[0]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("3 denied")),
            "{first:?}"
        );
        assert_eq!(first[1].kind, EventKind::FailModeRecovered);
        assert!(
            w.on_metrics(&metrics(0, 3, false)).is_empty(),
            "nothing new"
        );
    }

    #[test]
    fn a_kernel_still_in_fail_mode_does_not_recover() {
        let w = FailModeWatch::default();
        let e = w.on_metrics(&metrics(5, 0, true));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reason, Reason::FailOpen);
        assert!(
            w.on_metrics(&metrics(6, 0, true)).is_empty(),
            "still engaged"
        );
        let r = w.on_metrics(&metrics(6, 0, false));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, EventKind::FailModeRecovered);
    }

    #[test]
    fn a_driver_restart_resets_the_baseline() {
        let w = FailModeWatch::default();
        assert_eq!(w.on_metrics(&metrics(4, 0, false)).len(), 2);
        assert!(w.on_metrics(&metrics(0, 0, false)).is_empty());
        let e = w.on_metrics(&metrics(1, 0, false));
        assert_eq!(e.first().map(|e| e.kind), Some(EventKind::FailModeEngaged));
    }
}
