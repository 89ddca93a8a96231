//! The byte layouts of every message on the agentsh filter port, shared by the driver and the
//! service so that both sides read and write exactly the same bytes.
//!
//! Each message has a checked view over a byte slice (`new_checked` validates the length, the
//! message type and the size field once; accessors cannot panic afterwards) and, where the driver
//! or the service builds one, a parsed `Repr` with `parse` / `emit`. All integers are
//! little-endian and every layout is packed; `docs/protocol.md` lists every offset.
//!
//! Filter Manager frames the two directions differently, and so does this crate:
//! - kernel → user (`FltSendMessage` / `FilterGetMessage`): a [`header::FilterMessageHeader`]
//!   precedes the message, and the service answers with a [`header::FilterReplyHeader`] followed
//!   by the reply;
//! - user → kernel (`FilterSendMessage`): the message has no header, and the kernel's answer is
//!   written to the caller's output buffer, starting with a [`control::SendResult`].
//!
//! This crate performs no I/O, allocates nothing and depends on nothing but `core`.
#![no_std]

pub mod control;
pub mod error;
pub mod file;
pub mod framing;
pub mod header;
pub mod notify;
pub mod op;
pub mod registry;
pub mod response;
pub mod scope;
pub mod utf16;

mod bytes;

pub use error::{Error, Result};
pub use op::{Decision, FileOperation, MessageType, Operation};
pub use utf16::Utf16Buf;

/// The protocol version both sides announce in the handshake. Any layout change bumps it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The name of the Filter Manager communication port.
pub const PORT_NAME: &str = "\\AgentshPort";

/// The NTSTATUS the driver completes a denied operation with.
pub const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
