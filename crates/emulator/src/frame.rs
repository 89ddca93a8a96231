//! Reading and writing loopback frames on a stream; the layout and its limits are
//! `agentsh_wire::framing`'s, this module only adds the I/O.

use agentsh_wire::framing::{FRAME_HEADER_LEN, FrameHeader};
pub use agentsh_wire::framing::{FrameKind, MAX_FRAME_LEN};
pub use agentsh_wire::header::HEADER_LEN;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame header: {0}")]
    Header(agentsh_wire::Error),
    #[error("frame of kind {kind:?}: body of {len} bytes is shorter than its {need}-byte header")]
    ShortBody {
        kind: FrameKind,
        len: usize,
        need: usize,
    },
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames. The declared length is
/// checked before anything is allocated, so a hostile peer cannot make the reader allocate more
/// than one maximal frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(FrameKind, Vec<u8>)>, FrameError> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let header = FrameHeader::decode(&head).map_err(FrameError::Header)?;
    let mut body = vec![0u8; header.body_len];
    r.read_exact(&mut body).await?;
    let need = match header.kind {
        FrameKind::KernelMessage | FrameKind::UserReply => HEADER_LEN,
        FrameKind::SendResult => 4,
        FrameKind::UserSend => 0,
    };
    if body.len() < need {
        return Err(FrameError::ShortBody {
            kind: header.kind,
            len: body.len(),
            need,
        });
    }
    Ok(Some((header.kind, body)))
}

/// Encodes one frame from the concatenation of `parts`; `None` if it exceeds [`MAX_FRAME_LEN`].
pub fn encode_frame(kind: FrameKind, parts: &[&[u8]]) -> Option<Vec<u8>> {
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![0u8; FRAME_HEADER_LEN];
    FrameHeader { kind, body_len }.emit(&mut out).ok()?;
    out.reserve(body_len);
    for p in parts {
        out.extend_from_slice(p);
    }
    Some(out)
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame).await
}
