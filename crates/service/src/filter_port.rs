//! The driver's filter communication port as a [`PortTransport`] (Windows): a pump thread keeps
//! several `FilterGetMessage` calls outstanding and feeds the messages to [`PortTransport::recv`];
//! replies and sends run on tokio's blocking pool. Only the safe API of `agentsh-windows` is used.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub use agentsh_windows::port::{EXIT_DRIVER_UNAVAILABLE, PORT_NAME, PortError};
use agentsh_windows::port::{FilterPort, HResult, MessagePump};
use agentsh_wire::control::len as control_len;
use agentsh_wire::header::{FilterMessageHeader, HEADER_LEN};
use agentsh_wire::{file, notify, registry};
use tokio::sync::{Mutex, mpsc};

use crate::transport::{KernelMessage, PortTransport};

/// `FilterGetMessage` calls kept outstanding: a request held for an approval keeps its kernel
/// thread waiting, not the port, so the other gets go on serving.
pub const OUTSTANDING_GETS: usize = 8;

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The largest kernel → user message (after FILTER_MESSAGE_HEADER): a notification carrying the
/// larger of the two requests.
pub const MAX_KERNEL_MESSAGE: usize = max(
    max(registry::LEN, file::LEN),
    max(
        notify::HEADER_LEN + max(registry::LEN, file::LEN),
        notify::PROCESS_EVENT_LEN,
    ),
);

/// The buffer of each outstanding get: FILTER_MESSAGE_HEADER and the largest message.
pub const GET_BUFFER_LEN: usize = HEADER_LEN + MAX_KERNEL_MESSAGE;

/// The output buffer of `FilterSendMessage`: the largest answer the driver writes.
pub const SEND_OUTPUT_LEN: usize = max(
    control_len::SEND_RESULT_HEADER,
    max(control_len::HELLO_RESULT, control_len::METRICS_RESULT),
);

/// How long the pump waits for a completion before it looks at its stop flag again.
const POLL_MS: u32 = 100;
/// Failed gets in a row (each re-issued by the pump) after which the port counts as broken.
const MAX_CONSECUTIVE_GET_ERRORS: u32 = 16;
/// `E_FAIL`: a failure without a system error code.
const E_FAIL: i32 = 0x8000_4005_u32 as i32;
/// Messages received but not yet taken by `recv`.
const CHANNEL_CAPACITY: usize = 1024;

type Incoming = io::Result<KernelMessage>;

/// A connection to the driver's port with its message pump. Dropping it stops the pump (cancelling
/// the outstanding gets) and closes the port, so the driver sees the service go.
#[derive(Debug)]
pub struct FilterPortTransport {
    port: Arc<FilterPort>,
    incoming: Mutex<mpsc::Receiver<Incoming>>,
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
}

impl FilterPortTransport {
    /// Connects to the driver's port [`PORT_NAME`]. A missing driver (or no filter manager, as under
    /// Wine) is a [`PortError`] whose [`PortError::is_driver_missing`] is true: exit with
    /// [`EXIT_DRIVER_UNAVAILABLE`] then.
    pub fn connect() -> Result<Self, PortError> {
        Self::connect_to(PORT_NAME)
    }

    /// Connects to the port `name` and starts the message pump.
    pub fn connect_to(name: &str) -> Result<Self, PortError> {
        let port = FilterPort::connect(name, &[])?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        // The pump owns buffers the filter manager writes into; it lives on its thread from the
        // start, and the thread reports whether the gets could be issued.
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("agentsh-port-pump".into())
            .spawn({
                let port = port.clone();
                let stop = stop.clone();
                move || match port.pump(OUTSTANDING_GETS, GET_BUFFER_LEN) {
                    Ok(pump) => {
                        let _ = started_tx.send(Ok(()));
                        run_pump(pump, &tx, &stop);
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| PortError::Call {
                port: name.to_owned(),
                operation: "starting the message pump thread",
                code: HResult(hresult_from_io(&e)),
            })?;
        let started = started_rx.recv().unwrap_or_else(|_| {
            Err(PortError::Call {
                port: name.to_owned(),
                operation: "starting the message pump (thread ended early)",
                code: HResult(E_FAIL),
            })
        });
        if let Err(e) = started {
            let _ = thread.join();
            return Err(e);
        }
        Ok(FilterPortTransport {
            port,
            incoming: Mutex::new(rx),
            stop,
            pump: Some(thread),
        })
    }

    /// The port's name, for messages.
    pub fn port_name(&self) -> &str {
        self.port.name()
    }
}

impl Drop for FilterPortTransport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // A pump blocked on a full channel wakes up with an error and sees the stop flag.
        self.incoming.get_mut().close();
        if let Some(pump) = self.pump.take()
            && pump.join().is_err()
        {
            tracing::error!(port = %self.port.name(), "the port's message pump thread panicked");
        }
    }
}

/// The pump thread: hands every message to the channel until the port closes, the receiver goes
/// or the transport is dropped. Dropping the `MessagePump` at the end cancels the outstanding gets
/// and waits for their completions.
fn run_pump(mut pump: MessagePump, tx: &mpsc::Sender<Incoming>, stop: &AtomicBool) {
    let mut health = PumpHealth::default();
    while !stop.load(Ordering::Acquire) {
        match health.step(pump.next(Some(POLL_MS))) {
            PumpStep::Idle => {}
            PumpStep::Deliver(message) => {
                if tx.blocking_send(Ok(message)).is_err() {
                    break;
                }
            }
            PumpStep::Skip(e) => {
                tracing::warn!(error = %e, "driver port: one message lost; the get was issued again");
            }
            PumpStep::Closed => break,
            PumpStep::Fail(e) => {
                tracing::error!(error = %e, "driver port: message pump stopped");
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    }
}

/// What the pump does with one outcome of [`MessagePump::next`].
#[derive(Debug)]
enum PumpStep {
    /// Nothing completed within the poll interval.
    Idle,
    Deliver(KernelMessage),
    /// One get failed and was issued again; the port still works.
    Skip(PortError),
    /// The port closed: `recv` then returns `Ok(None)`.
    Closed,
    /// The port is unusable: `recv` returns this error once, then `Ok(None)`.
    Fail(io::Error),
}

/// Tells a single lost message from a broken port: failed gets are tolerated until too many come in
/// a row without a message between them.
#[derive(Debug, Default)]
struct PumpHealth {
    consecutive_errors: u32,
}

impl PumpHealth {
    fn step(
        &mut self,
        outcome: Result<Option<agentsh_windows::port::KernelMessage>, PortError>,
    ) -> PumpStep {
        match outcome {
            Ok(None) => PumpStep::Idle,
            Ok(Some(message)) => {
                self.consecutive_errors = 0;
                PumpStep::Deliver(KernelMessage {
                    header: FilterMessageHeader {
                        reply_length: message.reply_length,
                        message_id: message.message_id,
                    },
                    body: message.body,
                })
            }
            Err(PortError::Closed { .. }) => PumpStep::Closed,
            Err(e) if is_per_message(&e) => {
                self.consecutive_errors += 1;
                if self.consecutive_errors >= MAX_CONSECUTIVE_GET_ERRORS {
                    PumpStep::Fail(io::Error::other(format!(
                        "{e} ({} failed gets in a row)",
                        self.consecutive_errors
                    )))
                } else {
                    PumpStep::Skip(e)
                }
            }
            Err(e) => PumpStep::Fail(io_error(e)),
        }
    }
}

/// Errors that concern one get only: a message shorter than its header, or a get that completed
/// with an error (the pump issued it again).
fn is_per_message(e: &PortError) -> bool {
    match e {
        PortError::Truncated { .. } => true,
        PortError::Call { operation, .. } => *operation == "FilterGetMessage",
        _ => false,
    }
}

/// The port error as an `io::Error` of a fitting kind; the `PortError` stays inside (its message
/// is the error's message, and `get_ref` gives it back).
fn io_error(e: PortError) -> io::Error {
    let kind = match &e {
        PortError::Closed { .. } => io::ErrorKind::BrokenPipe,
        PortError::Truncated { .. } => io::ErrorKind::InvalidData,
        PortError::AccessDenied { .. } => io::ErrorKind::PermissionDenied,
        PortError::DriverNotLoaded { .. } | PortError::FilterManagerUnavailable { .. } => {
            io::ErrorKind::NotFound
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn hresult_from_io(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(code) => (0x8007_0000_u32 | (code as u32 & 0xFFFF)) as i32,
        None => E_FAIL,
    }
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("driver port call did not finish: {e}"))
}

impl PortTransport for FilterPortTransport {
    async fn recv(&self) -> io::Result<Option<KernelMessage>> {
        self.incoming.lock().await.recv().await.transpose()
    }

    async fn reply(&self, message_id: u64, reply: &[u8]) -> io::Result<()> {
        let port = self.port.clone();
        let reply = reply.to_vec();
        tokio::task::spawn_blocking(move || port.reply(message_id, 0, &reply))
            .await
            .map_err(join_error)?
            .map_err(io_error)
    }

    async fn send(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        let port = self.port.clone();
        let input = message.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut output = vec![0u8; SEND_OUTPUT_LEN];
            let written = port.send(&input, &mut output)?;
            output.truncate(written);
            Ok(output)
        })
        .await
        .map_err(join_error)?
        .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use agentsh_windows::port::KernelMessage as PortMessage;
    use agentsh_wire::control::{Counter, Metrics, SendResult, SendStatus};

    use super::*;

    const PORT: &str = "\\AgentshPort";

    fn truncated() -> PortError {
        PortError::Truncated {
            port: PORT.into(),
            len: 3,
        }
    }

    fn message(id: u64) -> PortMessage {
        PortMessage {
            message_id: id,
            reply_length: 40,
            body: vec![2, 0, 0x30, 0x06],
        }
    }

    #[test]
    fn get_buffers_hold_the_largest_kernel_message_with_its_header() {
        for len in [
            registry::LEN,
            file::LEN,
            notify::HEADER_LEN + registry::LEN,
            notify::HEADER_LEN + file::LEN,
            notify::PROCESS_EVENT_LEN,
        ] {
            assert!(HEADER_LEN + len <= GET_BUFFER_LEN, "{len}");
        }
        assert_eq!(
            GET_BUFFER_LEN,
            16 + 16 + 2112,
            "header + notify header + file request"
        );
    }

    #[test]
    fn send_output_holds_every_driver_answer() {
        let answers = [
            SendResult::Status {
                message_type: agentsh_wire::MessageType::SetConfig,
                status: SendStatus::Ok,
            },
            SendResult::Hello {
                status: SendStatus::Ok,
                kernel_version: agentsh_wire::PROTOCOL_VERSION,
            },
            SendResult::Metrics(Metrics([u64::MAX; Counter::COUNT])),
            SendResult::Session {
                session_id: u64::MAX,
            },
        ];
        for answer in answers {
            assert!(answer.buffer_len() <= SEND_OUTPUT_LEN, "{answer:?}");
        }
    }

    #[test]
    fn messages_keep_their_id_reply_length_and_body() {
        let mut health = PumpHealth::default();
        match health.step(Ok(Some(message(7)))) {
            PumpStep::Deliver(m) => {
                assert_eq!(m.header.message_id, 7);
                assert_eq!(m.header.reply_length, 40);
                assert!(m.header.expects_reply());
                assert_eq!(m.body, vec![2, 0, 0x30, 0x06]);
            }
            other => panic!("expected a message, got {other:?}"),
        }
        assert!(matches!(health.step(Ok(None)), PumpStep::Idle));
    }

    #[test]
    fn a_closed_port_ends_recv_without_an_error() {
        let mut health = PumpHealth::default();
        let step = health.step(Err(PortError::Closed { port: PORT.into() }));
        assert!(matches!(step, PumpStep::Closed), "{step:?}");
    }

    #[test]
    fn single_failed_gets_are_skipped_until_too_many_come_in_a_row() {
        let mut health = PumpHealth::default();
        for _ in 0..MAX_CONSECUTIVE_GET_ERRORS - 1 {
            assert!(matches!(health.step(Err(truncated())), PumpStep::Skip(_)));
        }
        // A message in between shows the port works: the count starts again.
        assert!(matches!(
            health.step(Ok(Some(message(1)))),
            PumpStep::Deliver(_)
        ));
        let failed_get = || PortError::Call {
            port: PORT.into(),
            operation: "FilterGetMessage",
            code: HResult(0x8007_001F_u32 as i32),
        };
        for _ in 0..MAX_CONSECUTIVE_GET_ERRORS - 1 {
            assert!(matches!(health.step(Err(failed_get())), PumpStep::Skip(_)));
        }
        match health.step(Err(failed_get())) {
            PumpStep::Fail(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("FilterGetMessage failed (0x8007001f)"),
                    "{text}"
                );
                assert!(text.contains("16 failed gets in a row"), "{text}");
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn a_broken_completion_port_fails_at_once_with_the_port_error_inside() {
        let mut health = PumpHealth::default();
        let step = health.step(Err(PortError::Call {
            port: PORT.into(),
            operation: "GetQueuedCompletionStatus",
            code: HResult(0x8007_0057_u32 as i32),
        }));
        let PumpStep::Fail(e) = step else {
            panic!("expected failure, got {step:?}");
        };
        assert_eq!(
            e.to_string(),
            "driver port `\\AgentshPort`: GetQueuedCompletionStatus failed (0x80070057)"
        );
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<PortError>());
        assert!(matches!(inner, Some(PortError::Call { .. })), "{e:?}");
    }

    #[test]
    fn io_errors_keep_the_kind_and_the_next_step() {
        let missing = io_error(PortError::from_connect(
            PORT,
            agentsh_windows::port::E_FILE_NOT_FOUND,
        ));
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(
            missing.to_string().contains("agentsh driver load"),
            "{missing}"
        );
        let denied = io_error(PortError::from_connect(
            PORT,
            agentsh_windows::port::E_ACCESS_DENIED,
        ));
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            io_error(PortError::Closed { port: PORT.into() }).kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(
            hresult_from_io(&io::Error::from_raw_os_error(8)),
            0x8007_0008_u32 as i32
        );
    }
}
