//! The kernel side of the loopback port: listens on a Unix domain socket, admits one client at a
//! time (identified by SO_PEERCRED, never by anything it sends), sends kernel messages with fresh
//! MessageIds, matches each reply to its request exactly once, and answers the client's sends in order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader};

use crate::frame::{FrameKind, HEADER_LEN, encode_frame, read_frame, write_frame};

/// STATUS_CONNECTION_COUNT_LIMIT: what a second connection to a one-client port gets.
pub const STATUS_CONNECTION_COUNT_LIMIT: i32 = 0xC000_0246_u32 as i32;
/// STATUS_BUFFER_OVERFLOW: a send's output did not fit in one frame.
pub const STATUS_BUFFER_OVERFLOW: i32 = 0x8000_0005_u32 as i32;
/// Read buffer and largest write batch of a client connection.
const IO_BUFFER: usize = 64 * 1024;
/// Frames the writer may have queued before a one-way notification is dropped (and counted).
const WRITE_QUEUE: usize = 4096;

/// What the kernel does with events from its one client.
pub trait PortHandler: Send + Sync + 'static {
    /// A client connected; `client_pid` comes from the socket's peer credentials.
    fn connected(&self, client_pid: u32);
    /// The client went away; every query in flight has already failed.
    fn disconnected(&self);
    /// A FilterSendMessage from the client: the status and output bytes to return.
    fn user_send(&self, message: &[u8]) -> (i32, Vec<u8>);
}

/// Why a query got no usable reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("no service is connected")]
    NotConnected,
    #[error("the service did not reply in time")]
    Timeout,
    #[error("the service disconnected before replying")]
    Disconnected,
    #[error("the service replied with status {0:#010x}")]
    Status(i32),
    #[error("the message is larger than a frame")]
    TooLarge,
}

/// Counters the port keeps about its client's behaviour.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub queries_sent: AtomicU64,
    pub replies_matched: AtomicU64,
    /// Replies whose MessageId matched nothing in flight (late after a timeout, duplicated or forged).
    pub replies_unmatched: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_dropped: AtomicU64,
    pub clients_rejected: AtomicU64,
    pub protocol_errors: AtomicU64,
}

/// Where a reply's status and bytes go once its MessageId arrives.
type ReplySlot = oneshot::Sender<(i32, Vec<u8>)>;

struct Client {
    generation: u64,
    writer: mpsc::Sender<Vec<u8>>,
}

struct Shared {
    client: Mutex<Option<Client>>,
    waiting: Mutex<HashMap<u64, ReplySlot>>,
    next_message_id: AtomicU64,
    next_generation: AtomicU64,
    counters: PortCounters,
    /// Set when the port closes (the driver unloading): the client's connection ends.
    closing: tokio::sync::watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the port: the data under these locks stays consistent
    // because every critical section is a single insert/remove.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The listening port; cheap to clone.
#[derive(Clone)]
pub struct Port {
    shared: Arc<Shared>,
    path: PathBuf,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("path", &self.path)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Port {
    /// Binds `path` (removing a stale socket file first) and starts accepting clients.
    pub fn bind(
        path: &Path,
        handler: Arc<dyn PortHandler>,
    ) -> std::io::Result<(Port, JoinHandle<()>)> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let port = Port {
            shared: Arc::new(Shared {
                client: Mutex::new(None),
                waiting: Mutex::new(HashMap::new()),
                next_message_id: AtomicU64::new(1),
                next_generation: AtomicU64::new(1),
                counters: PortCounters::default(),
                closing: tokio::sync::watch::Sender::new(false),
            }),
            path: path.to_owned(),
        };
        let task = tokio::spawn(accept_loop(listener, port.shared.clone(), handler));
        Ok((port, task))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn counters(&self) -> &PortCounters {
        &self.shared.counters
    }

    /// Closes the connected client's connection, as the port's owner going away does; the
    /// kernel side sees the disconnect.
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.shared.client).is_some()
    }

    /// Sends `message` to the client and waits at most `timeout` for its reply (FltSendMessage
    /// with a reply buffer of `reply_len` bytes).
    pub async fn query(
        &self,
        message: &[u8],
        reply_len: u32,
        timeout: Duration,
    ) -> Result<Vec<u8>, QueryError> {
        let id = self.shared.next_message_id.fetch_add(1, Ordering::Relaxed);
        let frame = kernel_message(reply_len, id, message).ok_or(QueryError::TooLarge)?;
        let (tx, rx) = oneshot::channel();
        let writer = {
            let client = lock(&self.shared.client);
            let Some(client) = client.as_ref() else {
                return Err(QueryError::NotConnected);
            };
            lock(&self.shared.waiting).insert(id, tx);
            client.writer.clone()
        };
        self.shared
            .counters
            .queries_sent
            .fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(timeout, async {
            writer
                .send(frame)
                .await
                .map_err(|_| QueryError::Disconnected)?;
            rx.await.map_err(|_| QueryError::Disconnected)
        })
        .await;
        match outcome {
            Ok(Ok((0, reply))) => Ok(reply),
            Ok(Ok((status, _))) => Err(QueryError::Status(status)),
            Ok(Err(e)) => {
                lock(&self.shared.waiting).remove(&id);
                Err(e)
            }
            Err(_) => {
                lock(&self.shared.waiting).remove(&id);
                Err(QueryError::Timeout)
            }
        }
    }

    /// Sends a one-way notification (ReplyLength 0); never waits. Returns whether it was queued.
    pub fn notify(&self, message: &[u8]) -> bool {
        let counters = &self.shared.counters;
        let id = self.shared.next_message_id.fetch_add(1, Ordering::Relaxed);
        let queued = match kernel_message(0, id, message) {
            Some(frame) => lock(&self.shared.client)
                .as_ref()
                .is_some_and(|c| c.writer.try_send(frame).is_ok()),
            None => false,
        };
        let counter = if queued {
            &counters.notifications_sent
        } else {
            &counters.notifications_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        queued
    }
}

/// A KERNEL_MESSAGE frame: FILTER_MESSAGE_HEADER (ReplyLength, MessageId) + message; `None` if
/// it does not fit a frame.
fn kernel_message(reply_length: u32, message_id: u64, message: &[u8]) -> Option<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    FilterMessageHeader {
        reply_length,
        message_id,
    }
    .emit(&mut header)
    .ok()?;
    encode_frame(FrameKind::KernelMessage, &[&header, message])
}

/// A SEND_RESULT frame answering a USER_SEND; output that cannot fit is replaced by an error status.
fn send_result(status: i32, output: &[u8]) -> Vec<u8> {
    encode_frame(FrameKind::SendResult, &[&status.to_le_bytes(), output])
        .or_else(|| {
            encode_frame(
                FrameKind::SendResult,
                &[&STATUS_BUFFER_OVERFLOW.to_le_bytes()],
            )
        })
        .unwrap_or_default()
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, handler: Arc<dyn PortHandler>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("port: accept failed: {e}");
                continue;
            }
        };
        let pid = match stream.peer_cred().map(|c| c.pid()) {
            Ok(Some(pid)) => u32::try_from(pid).unwrap_or(0),
            Ok(None) | Err(_) => 0,
        };
        if pid == 0 {
            tracing::warn!("port: refused a client whose process id cannot be read");
            reject(stream, &shared).await;
            continue;
        }
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let admitted = {
            let mut client = lock(&shared.client);
            let free = client.is_none();
            if free {
                *client = Some(Client {
                    generation,
                    writer: tx.clone(),
                });
            }
            free
        };
        if !admitted {
            tracing::warn!("port: refused a second client (process {pid})");
            reject(stream, &shared).await;
            continue;
        }
        handler.connected(pid);
        tokio::spawn(serve_client(
            stream,
            shared.clone(),
            handler.clone(),
            generation,
            tx,
            rx,
        ));
    }
}

async fn reject(mut stream: UnixStream, shared: &Shared) {
    shared
        .counters
        .clients_rejected
        .fetch_add(1, Ordering::Relaxed);
    let frame = send_result(STATUS_CONNECTION_COUNT_LIMIT, &[]);
    // The refused client may already be gone; nothing more is owed to it.
    let _ = write_frame(&mut stream, &frame).await;
}

async fn serve_client(
    stream: UnixStream,
    shared: Arc<Shared>,
    handler: Arc<dyn PortHandler>,
    generation: u64,
    tx: mpsc::Sender<Vec<u8>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let mut closing = shared.closing.subscribe();
    let (read, mut write) = stream.into_split();
    // Buffered both ways: a frame costs one read of many frames' bytes, and the writer sends
    // every frame queued at that moment in one write.
    let mut read = BufReader::with_capacity(IO_BUFFER, read);
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(IO_BUFFER);
        while let Some(frame) = rx.recv().await {
            batch.clear();
            batch.extend_from_slice(&frame);
            while batch.len() < IO_BUFFER {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if write.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    // Closed before this client was admitted: `changed()` fires at once. Later closes wake it too.
    if *closing.borrow() {
        closing.mark_changed();
    }
    loop {
        let frame = tokio::select! {
            biased;
            frame = read_frame(&mut read) => frame,
            _ = closing.changed() => break,
        };
        let (kind, body) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                shared
                    .counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!("port: closing the client connection: {e}");
                break;
            }
        };
        match kind {
            FrameKind::UserReply => {
                // read_frame guarantees the 16-byte header, so split cannot fail here; a failure
                // would still only close this connection.
                let Ok((header, reply)) = FilterReplyHeader::split(&body) else {
                    shared
                        .counters
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    break;
                };
                let id = header.message_id;
                let waiter = lock(&shared.waiting).remove(&id);
                match waiter.map(|w| w.send((header.status, reply.to_vec()))) {
                    Some(Ok(())) => {
                        shared
                            .counters
                            .replies_matched
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(_)) | None => {
                        shared
                            .counters
                            .replies_unmatched
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            "port: reply for message {id} matches no request in flight"
                        );
                    }
                }
            }
            FrameKind::UserSend => {
                let (status, output) = handler.user_send(&body);
                if tx.send(send_result(status, &output)).await.is_err() {
                    break;
                }
            }
            FrameKind::KernelMessage | FrameKind::SendResult => {
                shared
                    .counters
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "port: closing the client connection: it sent a kernel-side frame ({kind:?})"
                );
                break;
            }
        }
    }
    // The kernel side learns of the disconnect first, so no operation starts a query (that could
    // only fail) between the connection's end and the kernel core's switch to its fail mode.
    handler.disconnected();
    {
        let mut client = lock(&shared.client);
        if client.as_ref().is_some_and(|c| c.generation == generation) {
            *client = None;
        }
    }
    // Dropping the senders fails every query still waiting on this client.
    lock(&shared.waiting).clear();
    drop(tx);
    writer.abort();
}
