//! The user-mode half of agentsh: it receives the driver's policy checks, decides them with the
//! policy engine, holds `approve` decisions for a person, and reports everything as events and
//! metrics.
//!
//! ```text
//! Transport (filter port | loopback socket) → DriverClient → PolicyAdapter → Engine
//!                                                        ↘ ApprovalManager (timer, final decision)
//!                                                        ↘ EventPipeline (bounded, counted drops)
//! ```
//!
//! The service never blocks a decision on anything but the policy and a pending approval: events
//! go through a bounded queue, and each kernel request is handled on its own task, so a slow
//! approval cannot hold up other checks.

pub mod adapter;
pub mod approvals;
pub mod client;
pub mod events;
pub mod metrics;
pub mod sessions;
pub mod transport;

pub use adapter::PolicyAdapter;
pub use approvals::{ApprovalManager, ApprovalOutcome, PendingApproval};
pub use client::{ClientError, DriverClient};
pub use events::{Event, EventKind, EventPipeline, Format, Reason};
pub use sessions::{SessionInfo, SessionRegistry};
pub use transport::{KernelMessage, PortTransport, SocketTransport};
