//! Reading and writing loopback frames on a stream (`len:u32le kind:u8 body`), with the limits of
//! the pinned framing contract; a frame that breaks them is an error naming the offending field.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frame kinds of the loopback framing contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    KernelMessage = 1,
    UserReply = 2,
    UserSend = 3,
    SendResult = 4,
}

impl FrameKind {
    pub fn from_u8(kind: u8) -> Option<Self> {
        match kind {
            1 => Some(Self::KernelMessage),
            2 => Some(Self::UserReply),
            3 => Some(Self::UserSend),
            4 => Some(Self::SendResult),
            _ => None,
        }
    }
}

/// The largest `len` (kind byte plus body) a frame may declare.
pub const MAX_FRAME_LEN: usize = 65_536;
/// FILTER_MESSAGE_HEADER and FILTER_REPLY_HEADER are both 16 bytes.
pub const HEADER_LEN: usize = 16;

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is outside 1..=65536")]
    BadLength(u32),
    #[error("frame kind {0} is not 1, 2, 3 or 4")]
    BadKind(u8),
    #[error("frame of kind {kind:?}: body of {len} bytes is shorter than its {need}-byte header")]
    ShortBody {
        kind: FrameKind,
        len: usize,
        need: usize,
    },
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(FrameKind, Vec<u8>)>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len);
    let Ok(body_len @ 1..=MAX_FRAME_LEN) = usize::try_from(len) else {
        return Err(FrameError::BadLength(len));
    };
    let mut buf = vec![0u8; body_len];
    r.read_exact(&mut buf).await?;
    let kind = FrameKind::from_u8(buf[0]).ok_or(FrameError::BadKind(buf[0]))?;
    buf.remove(0);
    let need = match kind {
        FrameKind::KernelMessage | FrameKind::UserReply => HEADER_LEN,
        FrameKind::SendResult => 4,
        FrameKind::UserSend => 0,
    };
    if buf.len() < need {
        return Err(FrameError::ShortBody {
            kind,
            len: buf.len(),
            need,
        });
    }
    Ok(Some((kind, buf)))
}

/// Encodes one frame; the caller guarantees `body.len() < MAX_FRAME_LEN`.
pub fn encode_frame(kind: FrameKind, parts: &[&[u8]]) -> Vec<u8> {
    let body: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(body + 1).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body + 5);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame).await
}
