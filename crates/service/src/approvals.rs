//! Approvals: an operation a rule sends to a person waits here, with the rule's timeout, until
//! someone allows it once, allows it for the rest of the session, denies it — or the timer runs
//! out, which denies it and is recorded as a timeout, never as a person's denial. The service owns
//! the timer and always produces a final decision.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// A person allowed this one operation.
    AllowOnce,
    /// A person allowed it for the rest of the session.
    AllowSession,
    /// A person denied it.
    Denied,
    /// Nobody answered in time.
    TimedOut,
    /// The driver connection the operation was held on closed; the kernel denied it on its own.
    Withdrawn,
}

impl ApprovalOutcome {
    /// Whether the operation proceeds.
    pub fn allows(self) -> bool {
        matches!(
            self,
            ApprovalOutcome::AllowOnce | ApprovalOutcome::AllowSession
        )
    }
}

/// An approval waiting for a person, as listed by `agentsh approvals list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    pub id: u32,
    pub session_id: String,
    pub process_id: u32,
    pub process_name: String,
    pub operation: String,
    pub path: String,
    pub value_name: Option<String>,
    pub rule: String,
    pub message: String,
    pub timeout_secs: u32,
    /// Milliseconds since the epoch when it times out.
    pub expires_at_ms: u64,
}

/// What a session-wide grant covers: the same operation on the same canonical path and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantKey {
    pub session_id: String,
    pub operation: String,
    pub canonical: String,
    pub value_name: Option<String>,
}

struct Waiting {
    info: PendingApproval,
    grant: GrantKey,
    tx: oneshot::Sender<ApprovalOutcome>,
}

/// The approval manager.
#[derive(Default)]
pub struct ApprovalManager {
    next_id: AtomicU32,
    waiting: Mutex<HashMap<u32, Waiting>>,
    grants: Mutex<HashSet<GrantKey>>,
}

impl std::fmt::Debug for ApprovalManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalManager")
            .field("pending", &self.pending_count())
            .finish()
    }
}

/// Why a person's answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no pending approval with id `{0}` (it may have been answered or timed out)")]
    NotFound(u32),
}

impl ApprovalManager {
    /// A manager with no approvals.
    pub fn new() -> Arc<Self> {
        Arc::new(ApprovalManager {
            next_id: AtomicU32::new(1),
            ..Default::default()
        })
    }

    /// Whether a session-wide grant already allows this.
    pub fn granted(&self, key: &GrantKey) -> bool {
        self.grants.lock().map(|g| g.contains(key)).unwrap_or(false)
    }

    /// Drops the grants of a session that ended.
    pub fn forget_session(&self, session_id: &str) {
        if let Ok(mut g) = self.grants.lock() {
            g.retain(|k| k.session_id != session_id);
        }
    }

    /// Opens an approval; returns its id (also the kernel's ticket) and a future outcome that
    /// resolves when a person answers or the timeout passes.
    pub fn open(
        self: &Arc<Self>,
        mut info: PendingApproval,
        grant: GrantKey,
    ) -> (
        u32,
        impl std::future::Future<Output = ApprovalOutcome> + Send + 'static,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).max(1);
        info.id = id;
        info.expires_at_ms = crate::events::now_ms() + u64::from(info.timeout_secs) * 1000;
        let timeout = Duration::from_secs(u64::from(info.timeout_secs));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id, Waiting { info, grant, tx });
        }
        let this = self.clone();
        let fut = async move {
            let outcome = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(outcome)) => outcome,
                _ => ApprovalOutcome::TimedOut,
            };
            if let Ok(mut w) = this.waiting.lock() {
                w.remove(&id);
            }
            outcome
        };
        (id, fut)
    }

    /// A person's answer.
    pub fn answer(&self, id: u32, outcome: ApprovalOutcome) -> Result<(), AnswerError> {
        let waiting = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&id))
            .ok_or(AnswerError::NotFound(id))?;
        if outcome == ApprovalOutcome::AllowSession
            && let Ok(mut g) = self.grants.lock()
        {
            g.insert(waiting.grant.clone());
        }
        // The waiter may have timed out between the lookup and now; then the timeout stands.
        waiting
            .tx
            .send(outcome)
            .map_err(|_| AnswerError::NotFound(id))
    }

    /// Ends every waiting approval with [`ApprovalOutcome::Withdrawn`] (the driver connection they
    /// were held on closed, so no final decision can reach the kernel). Returns how many.
    pub fn withdraw_all(&self) -> usize {
        let waiting: Vec<Waiting> = self
            .waiting
            .lock()
            .map(|mut w| w.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        let n = waiting.len();
        for w in waiting {
            let _ = w.tx.send(ApprovalOutcome::Withdrawn);
        }
        n
    }

    /// Approvals waiting for a person, oldest first.
    pub fn list(&self) -> Vec<PendingApproval> {
        let mut v: Vec<PendingApproval> = self
            .waiting
            .lock()
            .map(|w| w.values().map(|x| x.info.clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(|a| a.id);
        v
    }

    /// How many approvals wait.
    pub fn pending_count(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}
