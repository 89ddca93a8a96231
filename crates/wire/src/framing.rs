//! The loopback stream framing that carries the port's exact bytes between the driver emulator
//! (kernel side, listening) and the service (user side, connecting) on a local socket.
//!
//! ```text
//! frame := len:u32le kind:u8 body[len-1]     (len counts kind + body, 1 ..= MAX_FRAME_LEN)
//! ```
//!
//! | kind | name | direction | body |
//! |---|---|---|---|
//! | 1 | `KernelMessage` | kernel → user | FILTER_MESSAGE_HEADER + message (ReplyLength 0 = one-way) |
//! | 2 | `UserReply` | user → kernel | FILTER_REPLY_HEADER + reply |
//! | 3 | `UserSend` | user → kernel | message, no header (`FilterSendMessage` input) |
//! | 4 | `SendResult` | kernel → user | status:i32le + output bytes, answering `UserSend` in order |

use crate::bytes::{check_len, i32_at, set_i32, set_u32, u32_at};
use crate::{Error, Result};

/// Largest `len` a frame may declare.
pub const MAX_FRAME_LEN: usize = 65536;
/// Bytes before the body: len (4) and kind (1).
pub const FRAME_HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    KernelMessage = 1,
    UserReply = 2,
    UserSend = 3,
    SendResult = 4,
}

impl FrameKind {
    fn from_u8(v: u8) -> Result<Self> {
        match v {
            1 => Ok(FrameKind::KernelMessage),
            2 => Ok(FrameKind::UserReply),
            3 => Ok(FrameKind::UserSend),
            4 => Ok(FrameKind::SendResult),
            _ => Err(Error::BadValue {
                field: "FrameKind",
                value: u32::from(v),
            }),
        }
    }
}

/// A frame's header, read from the first [`FRAME_HEADER_LEN`] bytes of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    /// Bytes of body that follow the header.
    pub body_len: usize,
}

impl FrameHeader {
    /// Parses a frame header; a length of 0 or over [`MAX_FRAME_LEN`] is an error, so a reader
    /// never allocates what a hostile peer declares.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        check_len(buf, FRAME_HEADER_LEN)?;
        let len = u32_at(buf, 0) as usize;
        if len == 0 {
            return Err(Error::BadValue {
                field: "FrameLen",
                value: 0,
            });
        }
        if len > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge { len });
        }
        Ok(FrameHeader {
            kind: FrameKind::from_u8(buf[4])?,
            body_len: len - 1,
        })
    }

    /// Writes the header for a body of `body_len` bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_len(buf, FRAME_HEADER_LEN)?;
        let len = self.body_len + 1;
        if len > MAX_FRAME_LEN {
            return Err(Error::FrameTooLarge { len });
        }
        set_u32(buf, 0, len as u32);
        buf[4] = self.kind as u8;
        Ok(())
    }
}

/// Splits a `SendResult` body into its status and output bytes.
pub fn split_send_result(body: &[u8]) -> Result<(i32, &[u8])> {
    check_len(body, 4)?;
    Ok((i32_at(body, 0), &body[4..]))
}

/// Writes a `SendResult` body's status; the output bytes follow at offset 4.
pub fn emit_send_result_status(body: &mut [u8], status: i32) -> Result<()> {
    check_len(body, 4)?;
    set_i32(body, 0, status);
    Ok(())
}
