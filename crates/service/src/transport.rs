//! How the service reaches the driver: the [`PortTransport`] trait, with the filter port on
//! Windows (crates/windows) and a loopback socket carrying exactly the same bytes
//! ([`SocketTransport`], the Linux emulator's port) as implementations.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use agentsh_wire::framing::{self, FRAME_HEADER_LEN, FrameHeader, FrameKind};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, mpsc, oneshot};

/// A kernel → user message as `FilterGetMessage` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelMessage {
    pub header: FilterMessageHeader,
    /// The message after the FILTER_MESSAGE_HEADER.
    pub body: Vec<u8>,
}

/// The driver's communication port, as the service uses it.
pub trait PortTransport: Send + Sync + 'static {
    /// The next kernel → user message (`FilterGetMessage`). `Ok(None)` when the port closed.
    fn recv(&self) -> impl Future<Output = io::Result<Option<KernelMessage>>> + Send;
    /// Answers a message (`FilterReplyMessage`): the FILTER_REPLY_HEADER is prepended here.
    fn reply(&self, message_id: u64, reply: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// A user → kernel message (`FilterSendMessage`, no header); returns the output buffer.
    fn send(&self, message: &[u8]) -> impl Future<Output = io::Result<Vec<u8>>> + Send;
}

type SendWaiters = Arc<std::sync::Mutex<VecDeque<oneshot::Sender<io::Result<Vec<u8>>>>>>;

/// The loopback transport: a Unix domain socket to the driver emulator, framed as
/// `agentsh_wire::framing` defines.
#[derive(Debug)]
pub struct SocketTransport {
    writer: Mutex<OwnedWriteHalf>,
    incoming: Mutex<mpsc::Receiver<KernelMessage>>,
    waiters: SendWaiters,
    /// Serializes `send` calls so results come back in order.
    send_lock: Mutex<()>,
}

impl SocketTransport {
    /// Connects to the emulator's socket at `path`.
    pub async fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot connect to the driver port `{}`: {e}",
                    path.display()
                ),
            )
        })?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(1024);
        let waiters: SendWaiters = Arc::default();
        tokio::spawn(read_loop(read, tx, waiters.clone()));
        Ok(SocketTransport {
            writer: Mutex::new(write),
            incoming: Mutex::new(rx),
            waiters,
            send_lock: Mutex::new(()),
        })
    }

    async fn write_frame(&self, kind: FrameKind, parts: &[&[u8]]) -> io::Result<()> {
        let body_len: usize = parts.iter().map(|p| p.len()).sum();
        let mut frame = vec![0u8; FRAME_HEADER_LEN + body_len];
        FrameHeader { kind, body_len }
            .emit(&mut frame)
            .map_err(invalid)?;
        let mut at = FRAME_HEADER_LEN;
        for p in parts {
            frame[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.writer.lock().await.write_all(&frame).await
    }
}

fn invalid(e: agentsh_wire::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

async fn read_loop(read: OwnedReadHalf, tx: mpsc::Sender<KernelMessage>, waiters: SendWaiters) {
    let mut read = BufReader::new(read);
    let result: io::Result<()> = async {
        loop {
            let mut head = [0u8; FRAME_HEADER_LEN];
            match read.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let h = FrameHeader::decode(&head).map_err(invalid)?;
            let mut body = vec![0u8; h.body_len];
            read.read_exact(&mut body).await?;
            match h.kind {
                FrameKind::KernelMessage => {
                    let (header, rest) = FilterMessageHeader::split(&body).map_err(invalid)?;
                    let msg = KernelMessage {
                        header,
                        body: rest.to_vec(),
                    };
                    if tx.send(msg).await.is_err() {
                        return Ok(());
                    }
                }
                FrameKind::SendResult => {
                    let (status, out) = framing::split_send_result(&body).map_err(invalid)?;
                    let waiter = waiters.lock().map_err(|_| poisoned())?.pop_front();
                    if let Some(w) = waiter {
                        let r = if status == 0 {
                            Ok(out.to_vec())
                        } else {
                            Err(io::Error::other(format!(
                                "the driver refused the message: status {status:#x}"
                            )))
                        };
                        let _ = w.send(r);
                    }
                }
                FrameKind::UserReply | FrameKind::UserSend => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the driver sent a user-side frame",
                    ));
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "driver port closed with an error");
    }
    // Whoever still waits for a send result learns that the port is gone.
    if let Ok(mut w) = waiters.lock() {
        for waiter in w.drain(..) {
            let _ = waiter.send(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the driver port closed",
            )));
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("send-result queue poisoned")
}

impl PortTransport for SocketTransport {
    async fn recv(&self) -> io::Result<Option<KernelMessage>> {
        Ok(self.incoming.lock().await.recv().await)
    }

    async fn reply(&self, message_id: u64, reply: &[u8]) -> io::Result<()> {
        let mut header = [0u8; HEADER_LEN];
        FilterReplyHeader {
            status: 0,
            message_id,
        }
        .emit(&mut header)
        .map_err(invalid)?;
        self.write_frame(FrameKind::UserReply, &[&header, reply])
            .await
    }

    async fn send(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        let _order = self.send_lock.lock().await;
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().map_err(|_| poisoned())?.push_back(tx);
        self.write_frame(FrameKind::UserSend, &[message]).await?;
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the driver port closed"))?
    }
}
