//! The minifilter communication port: typed errors that say what went wrong and what to do next, and
//! (on Windows) [`FilterPort`], the RAII owner of a connection with several outstanding
//! `FilterGetMessage` calls so a request held for approval cannot starve the others.

use std::fmt;

#[cfg(windows)]
pub use crate::imp::port::{FilterPort, MessagePump};

/// Name of the driver's communication port.
pub const PORT_NAME: &str = "\\AgentshPort";
/// Size of `FILTER_MESSAGE_HEADER` (ReplyLength u32, pad u32, MessageId u64).
pub const MESSAGE_HEADER_LEN: usize = 16;
/// Size of `FILTER_REPLY_HEADER` (Status i32, pad u32, MessageId u64).
pub const REPLY_HEADER_LEN: usize = 16;
/// Process exit code when the driver cannot be reached (distinct from policy errors, 1, and usage, 2).
pub const EXIT_DRIVER_UNAVAILABLE: u8 = 3;

/// An HRESULT with its hexadecimal rendering.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HResult(pub i32);

impl fmt::Debug for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0 as u32)
    }
}

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0 as u32)
    }
}

/// `E_NOTIMPL`: the filter manager is a stub (Wine) or absent.
pub const E_NOTIMPL: HResult = HResult(0x8000_4001_u32 as i32);
/// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`: no such port, the driver is not loaded.
pub const E_FILE_NOT_FOUND: HResult = HResult(0x8007_0002_u32 as i32);
/// `HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)`: the port's security descriptor refused us.
pub const E_ACCESS_DENIED: HResult = HResult(0x8007_0005_u32 as i32);
/// `HRESULT_FROM_WIN32(ERROR_CONNECTION_COUNT_LIMIT)`: the port's single client slot is taken.
pub const E_CONNECTION_COUNT_LIMIT: HResult = HResult(0x8007_04D6_u32 as i32);
/// `HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED)`: a pending get was cancelled (port closing).
pub const E_OPERATION_ABORTED: HResult = HResult(0x8007_03E3_u32 as i32);

/// Port failures. Each message names the port and, for connect failures, the next step.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error(
        "driver port `{port}` unavailable: the filter manager does not implement communication ports here ({code}, E_NOTIMPL); this host cannot run agentsh.sys (Wine has no filter manager) — run on Windows 10/11 with the driver installed and loaded (`agentsh driver install`, then `agentsh driver load`)"
    )]
    FilterManagerUnavailable { port: String, code: HResult },
    #[error(
        "driver port `{port}` not found ({code}): agentsh.sys is not loaded — run `agentsh driver status`, then `agentsh driver install` and `agentsh driver load` as Administrator"
    )]
    DriverNotLoaded { port: String, code: HResult },
    #[error(
        "driver port `{port}` refused the connection ({code}, access denied): connect as Administrator or LocalSystem (the agentsh service)"
    )]
    AccessDenied { port: String, code: HResult },
    #[error(
        "driver port `{port}` already has its one client ({code}): stop the other agentsh service (`agentsh service stop`) or talk to it instead"
    )]
    Busy { port: String, code: HResult },
    #[error("driver port `{port}`: {operation} failed ({code})")]
    Call {
        port: String,
        operation: &'static str,
        code: HResult,
    },
    #[error(
        "driver port `{port}`: message of {len} bytes is shorter than its {MESSAGE_HEADER_LEN}-byte header"
    )]
    Truncated { port: String, len: usize },
    #[error("driver port `{port}` closed")]
    Closed { port: String },
}

impl PortError {
    /// Classifies a failed `FilterConnectCommunicationPort`.
    pub fn from_connect(port: &str, code: HResult) -> Self {
        let port = port.to_owned();
        match code {
            E_NOTIMPL => PortError::FilterManagerUnavailable { port, code },
            E_FILE_NOT_FOUND => PortError::DriverNotLoaded { port, code },
            E_ACCESS_DENIED => PortError::AccessDenied { port, code },
            E_CONNECTION_COUNT_LIMIT => PortError::Busy { port, code },
            code => PortError::Call {
                port,
                operation: "FilterConnectCommunicationPort",
                code,
            },
        }
    }

    /// True when the cause is a driver that is not there (absent, not loaded, or no filter manager).
    pub fn is_driver_missing(&self) -> bool {
        matches!(
            self,
            PortError::FilterManagerUnavailable { .. } | PortError::DriverNotLoaded { .. }
        )
    }
}

/// One message from the driver, header decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelMessage {
    /// `MessageId` to pass back to [`FilterPort::reply`].
    pub message_id: u64,
    /// Bytes the driver accepts as a reply; 0 means a one-way notification.
    pub reply_length: u32,
    /// The message after the 16-byte header.
    pub body: Vec<u8>,
}

impl KernelMessage {
    /// Decodes a `FILTER_MESSAGE_HEADER` followed by the message.
    pub fn parse(port: &str, bytes: &[u8]) -> Result<Self, PortError> {
        let (Some(reply), Some(id)) = (bytes.get(0..4), bytes.get(8..16)) else {
            return Err(PortError::Truncated {
                port: port.to_owned(),
                len: bytes.len(),
            });
        };
        let mut reply_length = [0u8; 4];
        reply_length.copy_from_slice(reply);
        let mut message_id = [0u8; 8];
        message_id.copy_from_slice(id);
        Ok(KernelMessage {
            reply_length: u32::from_le_bytes(reply_length),
            message_id: u64::from_le_bytes(message_id),
            body: bytes[MESSAGE_HEADER_LEN..].to_vec(),
        })
    }
}

/// How many bytes of a completed get's buffer hold the message. Whether the byte count of the
/// completion includes the 16-byte `FILTER_MESSAGE_HEADER` is not settled by the documentation, so
/// both are accepted: every agentsh message declares its own size (the wire prologue, `u16` at
/// offset 2 of the body); a count equal to that size is the body alone, and the header is added.
/// Anything else is taken as it is (capped to the buffer), and a short message is reported as
/// such by the parser.
pub fn received_len(bytes: usize, buffer: &[u8]) -> usize {
    let declared = buffer
        .get(MESSAGE_HEADER_LEN + 2..MESSAGE_HEADER_LEN + 4)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    match declared {
        Some(size) if size > 0 && bytes == size && MESSAGE_HEADER_LEN + size <= buffer.len() => {
            MESSAGE_HEADER_LEN + size
        }
        _ => bytes.min(buffer.len()),
    }
}

/// Encodes a `FILTER_REPLY_HEADER` (status, pad, message id) followed by `reply`.
pub fn encode_reply(message_id: u64, status: i32, reply: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(REPLY_HEADER_LEN + reply.len());
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&message_id.to_le_bytes());
    out.extend_from_slice(reply);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_name_the_next_step() {
        let cases = [
            (0x8000_4001_u32, "agentsh driver install", true),
            (0x8007_0002, "agentsh driver load", true),
            (0x8007_0005, "as Administrator or LocalSystem", false),
            (0x8007_04D6, "agentsh service stop", false),
            (
                0x8007_0057,
                "FilterConnectCommunicationPort failed (0x80070057)",
                false,
            ),
        ];
        for (code, needle, missing) in cases {
            let err = PortError::from_connect(PORT_NAME, HResult(code as i32));
            let text = err.to_string();
            assert!(text.contains(needle), "{code:#x}: {text}");
            assert!(text.starts_with("driver port `\\AgentshPort`"), "{text}");
            assert_eq!(err.is_driver_missing(), missing, "{code:#x}");
        }
    }

    #[test]
    fn the_byte_count_may_or_may_not_include_the_message_header() {
        // FILTER_MESSAGE_HEADER (16 bytes), then a 24-byte body declaring its size at offset 2.
        let mut buf = vec![0u8; 64];
        buf[16..18].copy_from_slice(&7u16.to_le_bytes());
        buf[18..20].copy_from_slice(&24u16.to_le_bytes());
        assert_eq!(received_len(40, &buf), 40, "header counted");
        assert_eq!(received_len(24, &buf), 40, "header not counted");
        assert_eq!(received_len(10, &buf), 10, "short: the parser reports it");
        assert_eq!(received_len(500, &buf), 64, "capped to the buffer");
        buf[18..20].copy_from_slice(&60u16.to_le_bytes());
        assert_eq!(
            received_len(60, &buf),
            60,
            "a size that would overrun the buffer is not trusted"
        );
    }

    #[test]
    fn message_header_layout_matches_filter_message_header() {
        // ReplyLength = 0x20, padding, MessageId = 0x0102030405060708, then two body bytes.
        let bytes = [
            0x20, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA, 8, 7, 6, 5, 4, 3, 2, 1, 0xDE, 0xAD,
        ];
        let msg = KernelMessage::parse(PORT_NAME, &bytes).expect("parse");
        assert_eq!(msg.reply_length, 0x20);
        assert_eq!(msg.message_id, 0x0102_0304_0506_0708);
        assert_eq!(msg.body, vec![0xDE, 0xAD]);
        let err = KernelMessage::parse(PORT_NAME, &bytes[..15]).expect_err("short");
        assert!(matches!(err, PortError::Truncated { len: 15, .. }));
    }

    #[test]
    fn reply_header_layout_matches_filter_reply_header() {
        let out = encode_reply(0x0102_0304_0506_0708, -1_073_741_790, &[1]);
        assert_eq!(
            out,
            [0x22, 0, 0, 0xC0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 1],
            "STATUS_ACCESS_DENIED, pad, id, body"
        );
    }
}
