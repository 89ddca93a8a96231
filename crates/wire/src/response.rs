//! The policy response (user → kernel, after a FILTER_REPLY_HEADER): exactly the design's 24-byte
//! table, with the pending timeout carried in the first reserved word.

use crate::bytes::{check_len, set_u16, set_u32, u16_at, u32_at};
use crate::op::{Decision, MessageType};
use crate::{Error, Result};

/// Byte offsets, from the design's table.
pub mod field {
    pub const MESSAGE_TYPE: usize = 0;
    pub const RESERVED0: usize = 2;
    pub const DECISION: usize = 4;
    /// Seconds; 0 = do not cache; [`super::TTL_DRIVER_DEFAULT`] = the driver's configured default.
    pub const CACHE_TTL: usize = 8;
    pub const FLAGS: usize = 12;
    /// Extension in the first reserved word: for `pending`, seconds the approval may take.
    pub const APPROVAL_TIMEOUT: usize = 16;
    /// Extension in the second reserved word: for `pending`, the service's approval ticket
    /// (non-zero), which the later `FinalDecision` names. Filter Manager assigns MessageIds
    /// itself and never shows them to the driver, so the ticket is what links the two.
    pub const APPROVAL_TICKET: usize = 20;
}

/// Size of the message.
pub const LEN: usize = 24;

/// CacheTTL sentinel: cache for the driver's configured default TTL (the policy set none).
pub const TTL_DRIVER_DEFAULT: u32 = u32::MAX;

/// Flags bit 0: emit a notification event for this operation.
pub const FLAG_NOTIFY: u32 = 1 << 0;
/// Flags bit 1: log this operation.
pub const FLAG_LOG: u32 = 1 << 1;

/// How long the kernel may cache a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTtl {
    /// Do not cache.
    None,
    /// The driver's configured default (`CacheDefaultTTLMs`).
    DriverDefault,
    /// This many seconds.
    Seconds(u32),
}

impl CacheTtl {
    fn to_wire(self) -> u32 {
        match self {
            CacheTtl::None => 0,
            CacheTtl::DriverDefault => TTL_DRIVER_DEFAULT,
            CacheTtl::Seconds(s) => s.min(TTL_DRIVER_DEFAULT - 1),
        }
    }

    fn from_wire(v: u32) -> Self {
        match v {
            0 => CacheTtl::None,
            TTL_DRIVER_DEFAULT => CacheTtl::DriverDefault,
            s => CacheTtl::Seconds(s),
        }
    }
}

/// A parsed policy response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyResponseRepr {
    /// Echoes the request's type (2 registry, 1 file).
    pub message_type: MessageType,
    pub decision: Decision,
    pub cache_ttl: CacheTtl,
    pub notify: bool,
    pub log: bool,
    /// For `Pending`: seconds the service's approval may take; the kernel holds the operation at
    /// most this long plus its grace period. 0 otherwise.
    pub approval_timeout_secs: u32,
    /// For `Pending`: the non-zero ticket the `FinalDecision` will carry. 0 otherwise.
    pub approval_ticket: u32,
}

impl PolicyResponseRepr {
    /// Validates and parses the 24 response bytes.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        check_len(buf, LEN)?;
        let ty = u16_at(buf, field::MESSAGE_TYPE);
        let message_type = match MessageType::from_u16(ty)? {
            t @ (MessageType::PolicyCheckRegistry | MessageType::PolicyCheckFile) => t,
            _ => {
                return Err(Error::WrongType {
                    expected: 2,
                    got: ty,
                });
            }
        };
        let flags = u32_at(buf, field::FLAGS);
        if flags & !(FLAG_NOTIFY | FLAG_LOG) != 0 {
            return Err(Error::BadValue {
                field: "Flags",
                value: flags,
            });
        }
        let decision = Decision::from_u32(u32_at(buf, field::DECISION))?;
        // Fields that do not apply to the decision are ignored, as the kernel ignores them:
        // a pending answer is never cached, and only a pending answer has a timeout and ticket.
        let pending = decision == Decision::Pending;
        let (approval_timeout_secs, approval_ticket) = if pending {
            (
                u32_at(buf, field::APPROVAL_TIMEOUT),
                u32_at(buf, field::APPROVAL_TICKET),
            )
        } else {
            (0, 0)
        };
        if pending && approval_ticket == 0 {
            return Err(Error::BadValue {
                field: "ApprovalTicket",
                value: 0,
            });
        }
        let cache_ttl = if pending {
            CacheTtl::None
        } else {
            CacheTtl::from_wire(u32_at(buf, field::CACHE_TTL))
        };
        Ok(PolicyResponseRepr {
            message_type,
            decision,
            cache_ttl,
            notify: flags & FLAG_NOTIFY != 0,
            log: flags & FLAG_LOG != 0,
            approval_timeout_secs,
            approval_ticket,
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the response into `buf[..LEN]`, reserved bytes zeroed.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_len(buf, LEN)?;
        set_u16(buf, field::MESSAGE_TYPE, self.message_type as u16);
        set_u16(buf, field::RESERVED0, 0);
        set_u32(buf, field::DECISION, self.decision as u32);
        let ttl = if self.decision == Decision::Pending {
            CacheTtl::None
        } else {
            self.cache_ttl
        };
        set_u32(buf, field::CACHE_TTL, ttl.to_wire());
        let flags = (u32::from(self.notify) * FLAG_NOTIFY) | (u32::from(self.log) * FLAG_LOG);
        set_u32(buf, field::FLAGS, flags);
        let pending = self.decision == Decision::Pending;
        let (timeout, ticket) = if pending {
            (self.approval_timeout_secs, self.approval_ticket)
        } else {
            (0, 0)
        };
        set_u32(buf, field::APPROVAL_TIMEOUT, timeout);
        set_u32(buf, field::APPROVAL_TICKET, ticket);
        Ok(())
    }
}
