//! The seam between the emulator and the kernel core: everything agentsh.sys decides on its own
//! (exclusion, session membership, cache, fail mode, pending holds, metrics, message bytes) is
//! behind [`KernelCore`], so the emulator only moves bytes and time.

use std::time::Duration;

use crate::port::QueryError;
use agentsh_wire::{FileOperation, Operation};

/// STATUS_SUCCESS.
pub const STATUS_SUCCESS: u32 = 0;
/// STATUS_ACCESS_DENIED, what a blocked registry or file operation returns to its caller.
pub use agentsh_wire::STATUS_ACCESS_DENIED;

/// One intercepted operation, as the callback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRequest {
    pub pid: u32,
    pub thread_id: u32,
    pub target: Target,
}

/// What the operation touches; registry keys are in kernel form (`\REGISTRY\...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Registry {
        op: Operation,
        key: String,
        value: String,
        new_name: Option<String>,
        value_type: u32,
        data_size: u32,
    },
    File {
        op: FileOperation,
        path: String,
        new_path: Option<String>,
    },
}

/// The kernel's verdict on an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    /// The NTSTATUS the caller of the operation sees.
    pub fn status(self) -> u32 {
        match self {
            Verdict::Allow => STATUS_SUCCESS,
            Verdict::Deny => STATUS_ACCESS_DENIED,
        }
    }
}

/// Why the kernel reached its verdict, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The connected service's own process.
    Excluded,
    /// Not a session process and not a high-risk location: no query.
    NotInSession,
    Cache,
    Service,
    /// The service answered `pending`, then sent its final decision.
    Approval,
    /// The service held the operation longer than the timeout it announced (plus grace).
    HoldExpired,
    FailOpen,
    FailClosed,
    /// The request could not be expressed in the message (a path longer than the buffer).
    Unrepresentable,
}

/// The kernel core's first look at an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    Done(Verdict, Reason),
    /// Send `message` to the service and wait at most `timeout` for a reply of `reply_len` bytes.
    Ask {
        ticket: u64,
        message: Vec<u8>,
        reply_len: u32,
        timeout: Duration,
    },
}

/// The kernel core's reaction to a reply (or to its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Done(Verdict, Reason),
    /// `pending`: hold the operation until the final decision for `ticket` arrives, at most `wait`.
    Hold {
        ticket: u64,
        wait: Duration,
    },
}

/// Kernel-core state shared by all simulated processes and the port; `now_ms` is the emulator's
/// monotonic clock (the core never reads a clock itself).
pub trait KernelCore: Send + 'static {
    fn begin(&mut self, request: &OperationRequest, now_ms: u64) -> Begin;
    fn finish(&mut self, ticket: u64, reply: Result<&[u8], QueryError>, now_ms: u64) -> Finish;
    /// The final decision for a held ticket, once the service has sent it.
    fn take_final(&mut self, ticket: u64) -> Option<(Verdict, Reason)>;
    /// The hold for `ticket` ran out without a final decision.
    fn hold_expired(&mut self, ticket: u64, now_ms: u64) -> (Verdict, Reason);
    /// A FilterSendMessage from the client: status, output, and tickets whose final decision it
    /// carried (so their holds can be woken).
    fn user_send(&mut self, message: &[u8], now_ms: u64) -> SendOutcome;
    fn client_connected(&mut self, client_pid: u32, now_ms: u64);
    fn client_disconnected(&mut self, now_ms: u64);
    /// Process creation (with the creating process) and exit; each may yield a notification
    /// message for the service.
    fn process_created(
        &mut self,
        pid: u32,
        creator: u32,
        image: &str,
        now_ms: u64,
    ) -> Option<Vec<u8>>;
    fn process_exited(&mut self, pid: u32, now_ms: u64) -> Option<Vec<u8>>;
    /// One-way notifications queued by the core (monitored operations, mode transitions).
    fn drain_notifications(&mut self, out: &mut Vec<Vec<u8>>);
    /// Every counter by its documented name.
    fn metrics(&self) -> Vec<(&'static str, u64)>;
}

/// The answer to one FilterSendMessage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendOutcome {
    pub status: i32,
    pub output: Vec<u8>,
    pub resolved: Vec<u64>,
}
