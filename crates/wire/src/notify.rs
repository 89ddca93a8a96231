//! One-way kernel → user messages (FILTER_MESSAGE_HEADER.ReplyLength = 0): notifications about
//! operations the kernel only monitored or decided on its own, and process creation and exit.

use crate::bytes::{
    check_len, check_prologue, emit_prologue, set_u16, set_u32, set_u64, u16_at, u32_at, u64_at,
};
use crate::file::{self, FileRequest, FileRequestRepr};
use crate::op::{Decision, MessageType};
use crate::registry::{self, RegistryRequest, RegistryRequestRepr};
use crate::utf16::{check_field, read_field, write_plain_field};
use crate::{Error, Result, Utf16Buf};

/// Why the kernel tells the service about an operation it did not ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum NotifyReason {
    /// A process outside every session touched a high-risk key (allowed, monitored).
    HighRiskUnsandboxed = 1,
    /// Answered from the cache, and the cached flags ask for notify or log.
    CachedDecision = 2,
    /// The service could not answer; the kernel allowed (fail open).
    FailOpen = 3,
    /// The service could not answer; the kernel denied (fail closed, or a critical key).
    FailClosed = 4,
    /// A pending approval's hold expired in the kernel before a final decision arrived.
    PendingExpired = 5,
    /// A session read allowed without a query, reported because the policy logs all reads.
    Monitored = 6,
    /// The service answered `pending` but the kernel refused to hold the operation (the
    /// session's hold quota or the hold table was full) and denied it; the notification's flags
    /// field carries the refused approval's ticket (extension).
    HoldRefused = 7,
}

impl NotifyReason {
    const ALL: [NotifyReason; 7] = [
        NotifyReason::HighRiskUnsandboxed,
        NotifyReason::CachedDecision,
        NotifyReason::FailOpen,
        NotifyReason::FailClosed,
        NotifyReason::PendingExpired,
        NotifyReason::Monitored,
        NotifyReason::HoldRefused,
    ];

    fn from_u16(v: u16) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| *r as u16 == v)
            .ok_or(Error::BadValue {
                field: "Reason",
                value: u32::from(v),
            })
    }
}

/// Byte offsets of a notification: a 16-byte notify header, then the request it is about.
pub mod field {
    pub const MESSAGE_TYPE: usize = 0;
    pub const MESSAGE_SIZE: usize = 2;
    pub const REASON: usize = 4;
    pub const RESERVED: usize = 6;
    /// What the kernel did: 0 denied, 1 allowed.
    pub const DECISION: usize = 8;
    pub const FLAGS: usize = 12;
    /// The embedded registry (1584 bytes) or file (2112 bytes) request, starting with its own
    /// MessageType (2 or 1).
    pub const REQUEST: usize = 16;
}

/// Size of the notify header before the embedded request.
pub const HEADER_LEN: usize = 16;

/// The operation a notification is about.
#[expect(
    clippy::large_enum_variant,
    reason = "no allocation: the kernel builds one value per notification, in pool memory"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Registry(RegistryRequestRepr),
    File(FileRequestRepr),
}

/// A parsed notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRepr {
    pub reason: NotifyReason,
    pub decision: Decision,
    /// The response flags that applied (notify, log), for cached decisions; for
    /// [`NotifyReason::HoldRefused`], the refused approval's ticket.
    pub flags: u32,
    pub subject: Subject,
}

impl NotifyRepr {
    /// Validates and parses a notification.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        check_len(buf, HEADER_LEN + 2)?;
        let inner_type = MessageType::from_u16(u16_at(buf, field::REQUEST))?;
        let len = match inner_type {
            MessageType::PolicyCheckRegistry => HEADER_LEN + registry::LEN,
            MessageType::PolicyCheckFile => HEADER_LEN + file::LEN,
            other => {
                return Err(Error::WrongType {
                    expected: MessageType::PolicyCheckRegistry as u16,
                    got: other as u16,
                });
            }
        };
        check_prologue(buf, MessageType::Notify as u16, len)?;
        let decision = Decision::from_u32(u32_at(buf, field::DECISION))?;
        if decision == Decision::Pending {
            return Err(Error::BadValue {
                field: "Decision",
                value: 2,
            });
        }
        let inner = &buf[field::REQUEST..len];
        let subject = match inner_type {
            MessageType::PolicyCheckRegistry => Subject::Registry(RegistryRequestRepr::parse(
                &RegistryRequest::new_checked(inner)?,
            )),
            _ => Subject::File(FileRequestRepr::parse(&FileRequest::new_checked(inner)?)),
        };
        Ok(NotifyRepr {
            reason: NotifyReason::from_u16(u16_at(buf, field::REASON))?,
            decision,
            flags: u32_at(buf, field::FLAGS),
            subject,
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self.subject {
                Subject::Registry(_) => registry::LEN,
                Subject::File(_) => file::LEN,
            }
    }

    /// Writes the notification into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        check_len(buf, len)?;
        emit_prologue(buf, MessageType::Notify as u16, len);
        set_u16(buf, field::REASON, self.reason as u16);
        set_u16(buf, field::RESERVED, 0);
        set_u32(buf, field::DECISION, self.decision as u32);
        set_u32(buf, field::FLAGS, self.flags);
        match &self.subject {
            Subject::Registry(r) => r.emit(&mut buf[field::REQUEST..len]),
            Subject::File(f) => f.emit(&mut buf[field::REQUEST..len]),
        }
    }
}

/// Process creation or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ProcessEventKind {
    Created = 1,
    Exited = 2,
}

/// Byte offsets of a process event.
pub mod process_field {
    use core::ops::Range;
    pub const MESSAGE_TYPE: usize = 0;
    pub const MESSAGE_SIZE: usize = 2;
    /// Public session id of the session the process belongs to (never the token); 0 = none.
    pub const SESSION_ID: usize = 4;
    pub const PROCESS_ID: usize = 12;
    /// The process that created it (CreatingThreadId's process) — not the forgeable parent.
    pub const CREATING_PROCESS_ID: usize = 16;
    /// The parent attribute as reported (informational only).
    pub const PARENT_PROCESS_ID: usize = 20;
    pub const KIND: usize = 24;
    /// Exit status for `Exited`, 0 for `Created`.
    pub const EXIT_STATUS: usize = 28;
    pub const IMAGE_NAME: Range<usize> = 32..552;
}

/// Size of a process event.
pub const PROCESS_EVENT_LEN: usize = 552;
/// Capacity of ImageName in units, terminator included.
pub const IMAGE_NAME_UNITS: usize = 260;

/// A parsed process event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessEventRepr {
    pub session_id: u64,
    pub process_id: u32,
    pub creating_process_id: u32,
    pub parent_process_id: u32,
    pub kind: ProcessEventKind,
    pub exit_status: u32,
    pub image_name: Utf16Buf<{ IMAGE_NAME_UNITS - 1 }>,
}

impl ProcessEventRepr {
    /// Validates and parses a process event.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        check_prologue(buf, MessageType::ProcessEvent as u16, PROCESS_EVENT_LEN)?;
        let kind = match u32_at(buf, process_field::KIND) {
            1 => ProcessEventKind::Created,
            2 => ProcessEventKind::Exited,
            v => {
                return Err(Error::BadValue {
                    field: "Kind",
                    value: v,
                });
            }
        };
        let start = process_field::IMAGE_NAME.start;
        check_field(buf, start, IMAGE_NAME_UNITS, "ImageName", false)?;
        Ok(ProcessEventRepr {
            session_id: u64_at(buf, process_field::SESSION_ID),
            process_id: u32_at(buf, process_field::PROCESS_ID),
            creating_process_id: u32_at(buf, process_field::CREATING_PROCESS_ID),
            parent_process_id: u32_at(buf, process_field::PARENT_PROCESS_ID),
            kind,
            exit_status: u32_at(buf, process_field::EXIT_STATUS),
            image_name: read_field(buf, start, IMAGE_NAME_UNITS, "ImageName")?,
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        PROCESS_EVENT_LEN
    }

    /// Writes the event into `buf[..PROCESS_EVENT_LEN]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_len(buf, PROCESS_EVENT_LEN)?;
        emit_prologue(buf, MessageType::ProcessEvent as u16, PROCESS_EVENT_LEN);
        set_u64(buf, process_field::SESSION_ID, self.session_id);
        set_u32(buf, process_field::PROCESS_ID, self.process_id);
        set_u32(
            buf,
            process_field::CREATING_PROCESS_ID,
            self.creating_process_id,
        );
        set_u32(
            buf,
            process_field::PARENT_PROCESS_ID,
            self.parent_process_id,
        );
        set_u32(buf, process_field::KIND, self.kind as u32);
        set_u32(buf, process_field::EXIT_STATUS, self.exit_status);
        let start = process_field::IMAGE_NAME.start;
        write_plain_field(
            buf,
            start,
            IMAGE_NAME_UNITS,
            self.image_name.as_units(),
            "ImageName",
        )
    }
}
