//! The kernel side's decisions, written once: the real driver (agentsh.sys) and the Linux driver
//! emulator are thin shells around [`KernelCore`].
//!
//! Nothing here performs I/O, calls an OS API or reads a clock: time is passed in as
//! [`Millis`] (a monotonic millisecond count), and randomness as a seed.
//!
//! # The flow the driver runs for every intercepted operation
//!
//! ```text
//! step = core.begin(now, caller, &request)          // under the driver's lock
//! match step {
//!     Allow(_) / Deny(_) => enforce,
//!     Query { token, timeout_ms } => {
//!         core.encode_request(caller, &request, token, &mut buf)   // then, WITHOUT the lock:
//!         outcome = FltSendMessage(buf, reply, timeout_ms)         // STATUS_TIMEOUT => Timeout
//!         verdict = core.complete(now, caller, &request, token, outcome)
//!         while let Hold { ticket, deadline } = verdict {           // wait without the lock
//!             wait for a wake of `ticket` or `deadline`
//!             verdict = core.hold_status(now, caller, &request, ticket)
//!         }
//!         enforce(verdict)
//!     }
//! }
//! ```
//!
//! Besides: [`KernelCore::on_process_created`] / [`KernelCore::on_process_exited`] from the
//! process notify routine, [`KernelCore::on_client_connected`] /
//! [`KernelCore::on_client_disconnected`] from the port's connect and disconnect callbacks (the
//! connecting process id comes from the connection, never from a message),
//! [`KernelCore::on_user_message`] from the port's message callback, and
//! [`KernelCore::next_notification`] drained by a worker that sends one-way messages (decisions the
//! kernel made alone, and session processes starting or exiting, with their image).
#![no_std]

extern crate alloc;

pub mod breaker;
pub mod cache;
mod core;
pub mod highrisk;
pub mod notify;
pub mod pending;
pub mod readscope;
pub mod sessions;
pub mod unc;

pub use crate::core::{
    Caller, FileOp, KernelCore, QueryOutcome, RegistryOp, Request, Step, UserMessageResult,
    Verdict, Why,
};

/// Monotonic time in milliseconds, supplied by the caller.
pub type Millis = u64;
