//! Approvals: an operation a rule sends to a person waits here, with the rule's timeout, until
//! someone allows it once, allows it for the rest of the session, denies it — or the timer runs
//! out, which denies it and is recorded as a timeout, never as a person's denial. The service owns
//! the timer and always produces a final decision. Watchers (the terminal prompt) subscribe to the
//! approvals opening and closing; nobody has to watch, and no watcher can hold up a decision.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The kernel refused to hold the operation (the session's hold quota was taken) and denied
    /// it at once; nobody can answer it any more.
    Refused,
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

/// An approval waiting for a person, as listed by `agentsh approvals list` and streamed to
/// `agentsh approvals watch`: the operation and what a person needs to judge it. Every text field
/// but the catalog's comes from the sandbox or its session and is shown through the display
/// escaping (`agentsh_winstr::name::Display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub id: u32,
    pub session_id: String,
    pub process_id: u32,
    pub process_name: String,
    /// The process's full image path, when the kernel reported it.
    #[serde(default)]
    pub process_image: String,
    /// The process's command line as the operating system holds it (Windows: the process's own
    /// `ProcessCommandLineInformation`; the emulator: the trace's `start` line), when it could be
    /// read.
    #[serde(default)]
    pub command_line: Option<String>,
    /// The processes that created this one, nearest first, up to the session's root (from the
    /// kernel's process events: the creating process, never the forgeable parent attribute).
    #[serde(default)]
    pub chain: Vec<ChainProcess>,
    /// The session's application name and workspace, as registered.
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub workspace: Option<String>,
    pub operation: String,
    pub path: String,
    /// The key or file as the policy's rules name it and as the policy decided it: the
    /// canonical key (the session user's hive as `HKCU`) or the file's drive-letter path (the
    /// kernel's `\Device\HarddiskVolumeN` mapped through the service's volume map).
    #[serde(default)]
    pub canonical: String,
    pub value_name: Option<String>,
    pub rule: String,
    /// The catalog entry the target falls under: risk, ATT&CK technique and its name, and the
    /// catalog's description.
    #[serde(default)]
    pub risk: Option<String>,
    #[serde(default)]
    pub technique: Option<String>,
    #[serde(default)]
    pub technique_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub message: String,
    pub timeout_secs: u32,
    /// Milliseconds since the epoch when it times out.
    pub expires_at_ms: u64,
    /// What happens when nobody answers in time: the operation is denied ([`ON_TIMEOUT`]).
    #[serde(default = "on_timeout")]
    pub on_timeout: String,
}

/// What the service does with an approval nobody answers: it denies the operation, and records
/// the denial as a timeout, never as a person's.
pub const ON_TIMEOUT: &str = "deny";

fn on_timeout() -> String {
    ON_TIMEOUT.to_owned()
}

/// One process of an approval's creating chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProcess {
    pub pid: u32,
    /// Its image path, when the kernel reported it (or the operating system told the service).
    pub image: Option<String>,
}

impl Default for PendingApproval {
    fn default() -> Self {
        PendingApproval {
            id: 0,
            session_id: String::new(),
            process_id: 0,
            process_name: String::new(),
            process_image: String::new(),
            command_line: None,
            chain: Vec::new(),
            app: None,
            workspace: None,
            operation: String::new(),
            path: String::new(),
            canonical: String::new(),
            value_name: None,
            rule: String::new(),
            risk: None,
            technique: None,
            technique_name: None,
            description: None,
            message: String::new(),
            timeout_secs: 0,
            expires_at_ms: 0,
            on_timeout: on_timeout(),
        }
    }
}

impl PendingApproval {
    /// Whether `other` asks for the same thing: the same session, operation, target and value,
    /// under the same rule (what "answer every identical one" answers together).
    pub fn same_request(&self, other: &PendingApproval) -> bool {
        self.session_id == other.session_id
            && self.operation == other.operation
            && self.path == other.path
            && self.value_name == other.value_name
            && self.rule == other.rule
    }
}

/// An approval opening or closing, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalChange {
    /// An approval now waits for a person.
    Opened(Box<PendingApproval>),
    /// An approval ended: a person answered it (here or elsewhere) or it timed out.
    Closed { id: u32, outcome: ApprovalOutcome },
}

/// One line of the approvals stream (`GET /v1/approvals/watch`, JSON lines): first the
/// approvals waiting now, then each opening and closing as it happens. A watcher that fell behind
/// gets a fresh snapshot. `now_ms` is the service's clock, for countdowns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchLine {
    /// Every approval waiting now; replaces whatever the watcher held.
    Snapshot {
        now_ms: u64,
        approvals: Vec<PendingApproval>,
    },
    /// An approval now waits for a person.
    Opened {
        now_ms: u64,
        approval: Box<PendingApproval>,
    },
    /// An approval ended.
    Closed {
        now_ms: u64,
        id: u32,
        outcome: ApprovalOutcome,
    },
}

impl WatchLine {
    /// The line a change becomes.
    pub fn of(change: ApprovalChange) -> Self {
        let now_ms = crate::events::now_ms();
        match change {
            ApprovalChange::Opened(approval) => WatchLine::Opened { now_ms, approval },
            ApprovalChange::Closed { id, outcome } => WatchLine::Closed {
                now_ms,
                id,
                outcome,
            },
        }
    }

    /// The approvals waiting now.
    pub fn snapshot(approvals: &ApprovalManager) -> Self {
        WatchLine::Snapshot {
            now_ms: crate::events::now_ms(),
            approvals: approvals.list(),
        }
    }
}

/// What a session-wide grant covers: the same operation on the same canonical path and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantKey {
    pub session_id: String,
    pub operation: &'static str,
    pub canonical: String,
    pub value_name: Option<String>,
}

struct Waiting {
    info: PendingApproval,
    grant: GrantKey,
    tx: oneshot::Sender<ApprovalOutcome>,
}

/// The approval manager.
pub struct ApprovalManager {
    next_id: AtomicU32,
    waiting: Mutex<HashMap<u32, Waiting>>,
    grants: Mutex<HashSet<GrantKey>>,
    changes: broadcast::Sender<ApprovalChange>,
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
    /// How many changes a watcher may fall behind before it misses some (and is told so).
    pub const CHANGES_CAPACITY: usize = 256;

    /// A manager with no approvals.
    pub fn new() -> Arc<Self> {
        Arc::new(ApprovalManager {
            next_id: AtomicU32::new(1),
            waiting: Mutex::default(),
            grants: Mutex::default(),
            changes: broadcast::channel(Self::CHANGES_CAPACITY).0,
        })
    }

    /// Approvals opening and closing from now on. Sending never waits for a watcher: one that
    /// falls more than [`Self::CHANGES_CAPACITY`] changes behind gets
    /// [`broadcast::error::RecvError::Lagged`] and should catch up from [`Self::list`].
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalChange> {
        self.changes.subscribe()
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
            // Announced under the lock, so that no watcher hears it close before it opened. No
            // watcher is no error.
            let _ = self
                .changes
                .send(ApprovalChange::Opened(Box::new(info.clone())));
            w.insert(id, Waiting { info, grant, tx });
        }
        let this = self.clone();
        let fut = async move {
            match tokio::time::timeout(timeout, rx).await {
                // Whoever sent it (`answer`, `withdraw_all`) removed and announced it.
                Ok(Ok(outcome)) => outcome,
                _ => {
                    // Announced only if still waiting: an answer that arrived as the timer fired
                    // removed it and announced the timeout itself.
                    let removed = this
                        .waiting
                        .lock()
                        .is_ok_and(|mut w| w.remove(&id).is_some());
                    if removed {
                        let _ = this.changes.send(ApprovalChange::Closed {
                            id,
                            outcome: ApprovalOutcome::TimedOut,
                        });
                    }
                    ApprovalOutcome::TimedOut
                }
            }
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
        self.finish(id, waiting, outcome, ApprovalOutcome::TimedOut)
            .map_err(|_| AnswerError::NotFound(id))
    }

    /// Sends the outcome of an approval just removed from the waiting set and announces how it
    /// ended. If the waiter is gone (it timed out between the removal and now, or its connection
    /// dropped it), `outcome` was not taken and `if_gone` is announced instead.
    fn finish(
        &self,
        id: u32,
        waiting: Waiting,
        outcome: ApprovalOutcome,
        if_gone: ApprovalOutcome,
    ) -> Result<(), ()> {
        let sent = waiting.tx.send(outcome).map_err(|_| ());
        let outcome = if sent.is_ok() { outcome } else { if_gone };
        let _ = self.changes.send(ApprovalChange::Closed { id, outcome });
        sent
    }

    /// Ends the approval `id` with [`ApprovalOutcome::Refused`]: the kernel would not hold its
    /// operation and denied it. `false` if no such approval waits.
    pub fn refuse(&self, id: u32) -> bool {
        let Some(waiting) = self.waiting.lock().ok().and_then(|mut w| w.remove(&id)) else {
            return false;
        };
        let _ = self.finish(
            id,
            waiting,
            ApprovalOutcome::Refused,
            ApprovalOutcome::Refused,
        );
        true
    }

    /// Ends every waiting approval with [`ApprovalOutcome::Withdrawn`] (the driver connection they
    /// were held on closed, so no final decision can reach the kernel). Returns how many.
    pub fn withdraw_all(&self) -> usize {
        let mut waiting: Vec<(u32, Waiting)> = self
            .waiting
            .lock()
            .map(|mut w| w.drain().collect())
            .unwrap_or_default();
        waiting.sort_by_key(|(id, _)| *id);
        let n = waiting.len();
        for (id, w) in waiting {
            let _ = self.finish(
                id,
                w,
                ApprovalOutcome::Withdrawn,
                ApprovalOutcome::Withdrawn,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(timeout_secs: u32) -> (PendingApproval, GrantKey) {
        let info = PendingApproval {
            id: 0,
            session_id: "s-1".into(),
            process_id: 4100,
            process_name: "installer.exe".into(),
            operation: "CreateKey".into(),
            path: "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x".into(),
            value_name: None,
            rule: "approve-service-install".into(),
            message: "install a service".into(),
            timeout_secs,
            expires_at_ms: 0,
            ..PendingApproval::default()
        };
        let grant = GrantKey {
            session_id: "s-1".into(),
            operation: "CreateKey",
            canonical: info.path.to_ascii_uppercase(),
            value_name: None,
        };
        (info, grant)
    }

    fn closed(id: u32, outcome: ApprovalOutcome) -> ApprovalChange {
        ApprovalChange::Closed { id, outcome }
    }

    #[tokio::test]
    async fn each_approval_is_announced_opened_then_closed_once_with_its_outcome() {
        let approvals = ApprovalManager::new();
        let mut changes = approvals.subscribe();
        let mut next = || match changes.try_recv() {
            Ok(ApprovalChange::Opened(a)) => {
                Some(ApprovalChange::Opened(Box::new(PendingApproval {
                    expires_at_ms: 0,
                    ..*a
                })))
            }
            other => other.ok(),
        };

        let (info, grant) = pending(30);
        let (answered, outcome) = approvals.open(info.clone(), grant.clone());
        let opened = ApprovalChange::Opened(Box::new(PendingApproval {
            id: answered,
            ..info.clone()
        }));
        assert_eq!(next(), Some(opened));
        approvals
            .answer(answered, ApprovalOutcome::AllowOnce)
            .expect("answered");
        assert_eq!(outcome.await, ApprovalOutcome::AllowOnce);
        assert_eq!(next(), Some(closed(answered, ApprovalOutcome::AllowOnce)));

        let (timing_out, outcome) = approvals.open(pending(1).0, grant.clone());
        assert!(matches!(next(), Some(ApprovalChange::Opened(a)) if a.id == timing_out));
        assert_eq!(outcome.await, ApprovalOutcome::TimedOut);
        assert_eq!(next(), Some(closed(timing_out, ApprovalOutcome::TimedOut)));
        assert!(
            approvals
                .answer(timing_out, ApprovalOutcome::Denied)
                .is_err(),
            "too late"
        );

        let (first, a) = approvals.open(info.clone(), grant.clone());
        let (second, b) = approvals.open(info.clone(), grant.clone());
        // A connection that went away dropped its waiter: still announced as withdrawn.
        drop(b);
        assert_eq!(approvals.withdraw_all(), 2);
        assert_eq!(a.await, ApprovalOutcome::Withdrawn);
        assert!(matches!(next(), Some(ApprovalChange::Opened(a)) if a.id == first));
        assert!(matches!(next(), Some(ApprovalChange::Opened(a)) if a.id == second));
        assert_eq!(next(), Some(closed(first, ApprovalOutcome::Withdrawn)));
        assert_eq!(next(), Some(closed(second, ApprovalOutcome::Withdrawn)));
        assert_eq!(next(), None, "nothing announced twice");
    }
}
