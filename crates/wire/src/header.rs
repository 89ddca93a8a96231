//! Filter Manager's own headers: the 16-byte FILTER_MESSAGE_HEADER in front of every kernel → user
//! message and the 16-byte FILTER_REPLY_HEADER in front of every reply.

use crate::Result;
use crate::bytes::{check_len, i32_at, set_i32, set_u32, set_u64, u32_at, u64_at};

/// Offsets of both headers.
pub mod field {
    /// FILTER_MESSAGE_HEADER.ReplyLength: the size of the reply buffer the kernel offers
    /// (FILTER_REPLY_HEADER included); 0 for a one-way message.
    pub const REPLY_LENGTH: usize = 0;
    /// FILTER_REPLY_HEADER.Status (NTSTATUS).
    pub const STATUS: usize = 0;
    /// Both headers: 4 bytes of padding at offset 4.
    pub const PADDING: usize = 4;
    /// Both headers: MessageId u64, matching a reply to its request.
    pub const MESSAGE_ID: usize = 8;
}

/// Length of either header.
pub const HEADER_LEN: usize = 16;

/// FILTER_MESSAGE_HEADER, as the service receives it from `FilterGetMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterMessageHeader {
    /// Bytes the kernel accepts as reply, FILTER_REPLY_HEADER included; 0 = one-way.
    pub reply_length: u32,
    pub message_id: u64,
}

impl FilterMessageHeader {
    /// Parses the header and returns it with the message that follows.
    pub fn split(buf: &[u8]) -> Result<(Self, &[u8])> {
        check_len(buf, HEADER_LEN)?;
        let header = FilterMessageHeader {
            reply_length: u32_at(buf, field::REPLY_LENGTH),
            message_id: u64_at(buf, field::MESSAGE_ID),
        };
        Ok((header, &buf[HEADER_LEN..]))
    }

    /// Writes the header into the first 16 bytes of `buf` (padding zeroed).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_len(buf, HEADER_LEN)?;
        set_u32(buf, field::REPLY_LENGTH, self.reply_length);
        set_u32(buf, field::PADDING, 0);
        set_u64(buf, field::MESSAGE_ID, self.message_id);
        Ok(())
    }

    /// Whether the kernel waits for a reply.
    pub fn expects_reply(&self) -> bool {
        self.reply_length != 0
    }
}

/// FILTER_REPLY_HEADER, as the service passes it to `FilterReplyMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterReplyHeader {
    /// NTSTATUS of the reply; 0 (STATUS_SUCCESS) for every reply the service sends.
    pub status: i32,
    pub message_id: u64,
}

impl FilterReplyHeader {
    /// Parses the header and returns it with the reply that follows.
    pub fn split(buf: &[u8]) -> Result<(Self, &[u8])> {
        check_len(buf, HEADER_LEN)?;
        let header = FilterReplyHeader {
            status: i32_at(buf, field::STATUS),
            message_id: u64_at(buf, field::MESSAGE_ID),
        };
        Ok((header, &buf[HEADER_LEN..]))
    }

    /// Writes the header into the first 16 bytes of `buf` (padding zeroed).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_len(buf, HEADER_LEN)?;
        set_i32(buf, field::STATUS, self.status);
        set_u32(buf, field::PADDING, 0);
        set_u64(buf, field::MESSAGE_ID, self.message_id);
        Ok(())
    }
}
