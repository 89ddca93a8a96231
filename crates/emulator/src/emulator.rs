//! The emulated driver: the kernel core behind the loopback port. Each simulated operation runs the
//! kernel core's flow exactly as agentsh.sys does (begin; if asked, encode, send without the lock,
//! complete; while held, wait for a wake or the deadline and ask again), and the time the calling
//! thread was held is measured.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agentsh_kcore::breaker::Transition;
use agentsh_kcore::notify::Outgoing;
use agentsh_kcore::{Caller, KernelCore, QueryOutcome, Step, Verdict as CoreVerdict};
use agentsh_wire::control::Metrics;
use agentsh_wire::header::HEADER_LEN;
use agentsh_wire::{file, registry, response};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::port::{Port, PortHandler, QueryError};
use crate::request::{OperationRequest, Reason, Verdict};
use crate::volumes::VolumeTable;

/// The reply buffer offered with every policy query: FILTER_REPLY_HEADER + the response.
const REPLY_LENGTH: u32 = (HEADER_LEN + response::LEN) as u32;
/// STATUS_INTERNAL_ERROR, for a send whose answer the kernel core could not write.
const STATUS_INTERNAL_ERROR: i32 = 0xC000_00E5_u32 as i32;
/// Output buffer for a FilterSendMessage answer (the metrics reply is the largest).
const SEND_OUTPUT: usize = 1024;
const REQUEST_BUFFER: usize = if registry::LEN > file::LEN {
    registry::LEN
} else {
    file::LEN
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one call into the kernel core or one map update; the state stays
    // consistent even if a holder panicked, so the emulator keeps serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the caller of an operation saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationOutcome {
    pub verdict: Verdict,
    pub reason: Reason,
    pub latency: Duration,
}

impl OperationOutcome {
    /// The NTSTATUS returned to the caller.
    pub fn status(&self) -> u32 {
        self.verdict.status()
    }
}

/// A fail-mode transition the kernel core reported, with when (emulator milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeChange {
    pub at_ms: u64,
    pub transition: Transition,
}

struct Shared {
    core: Mutex<KernelCore>,
    /// Held operations by approval ticket, woken by a final decision or a disconnect.
    holds: Mutex<HashMap<u32, Arc<Notify>>>,
    transitions: Mutex<Vec<ModeChange>>,
    /// The emulated system's processes: pid → image (every process, in a session or not).
    images: Arc<Mutex<HashMap<u32, String>>>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn wake(&self, ticket: u32) {
        if let Some(n) = lock(&self.holds).get(&ticket) {
            n.notify_one();
        }
    }

    /// Collects the core's pending transition after a call that may have changed the mode.
    fn note_transition(&self, core: &mut KernelCore) {
        if let Some(transition) = core.take_transition() {
            tracing::info!("fail mode: {transition:?}");
            lock(&self.transitions).push(ModeChange {
                at_ms: self.now_ms(),
                transition,
            });
        }
    }
}

struct Bridge(Arc<Shared>);

impl PortHandler for Bridge {
    fn connected(&self, client_pid: u32) {
        let mut core = lock(&self.0.core);
        if let Err(status) = core.on_client_connected(client_pid) {
            // The port admits one client at a time, so the core cannot already have one.
            tracing::error!("port: kernel core refused client {client_pid}: {status:?}");
        }
    }

    fn disconnected(&self) {
        let abandoned = {
            let mut core = lock(&self.0.core);
            let abandoned = core.on_client_disconnected();
            self.0.note_transition(&mut core);
            abandoned
        };
        for ticket in abandoned {
            self.0.wake(ticket);
        }
    }

    fn user_send(&self, message: &[u8]) -> (i32, Vec<u8>) {
        let mut output = vec![0u8; SEND_OUTPUT];
        let result = {
            let mut core = lock(&self.0.core);
            let result = core.on_user_message(message, &mut output);
            self.0.note_transition(&mut core);
            result
        };
        output.truncate(result.written);
        if let Some(ticket) = result.wake {
            self.0.wake(ticket);
        }
        if result.written == 0 {
            // The core could not write its answer: FilterSendMessage fails rather than return
            // an empty buffer the caller would misread.
            return (STATUS_INTERNAL_ERROR, output);
        }
        (0, output)
    }
}

/// The emulated agentsh.sys.
pub struct Emulator {
    shared: Arc<Shared>,
    port: Port,
    accept_task: JoinHandle<()>,
    volumes: VolumeTable,
    /// `<socket>.volumes`, where the service reads the emulated machine's volumes.
    volume_file: PathBuf,
    /// `<socket>.processes`, where the service reads the emulated processes' command lines.
    process_file: PathBuf,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("port", &self.port)
            .finish()
    }
}

impl Drop for Emulator {
    /// The port goes, and the connected client's connection with it (a driver unloading).
    fn drop(&mut self) {
        self.unload();
    }
}

impl Emulator {
    /// Starts listening on `socket` with a fresh kernel core (default configuration until the
    /// service sends its own) and the default volume table ([`VolumeTable::default`]). Needs a
    /// tokio runtime.
    pub fn start(socket: &Path, seed: u64) -> std::io::Result<Self> {
        Self::start_with_volumes(socket, seed, VolumeTable::default())
    }

    /// Like [`Emulator::start`], with the machine's volumes given. The table is written to
    /// `<socket>.volumes` before the port listens, so a service that connects finds it.
    pub fn start_with_volumes(
        socket: &Path,
        seed: u64,
        volumes: VolumeTable,
    ) -> std::io::Result<Self> {
        let mut name = socket.as_os_str().to_owned();
        name.push(".volumes");
        let volume_file = PathBuf::from(name);
        std::fs::write(&volume_file, volumes.to_string())?;
        let mut name = socket.as_os_str().to_owned();
        name.push(".processes");
        let process_file = PathBuf::from(name);
        // A fresh machine: no process of an earlier run is described.
        std::fs::write(&process_file, "")?;
        let shared = Arc::new(Shared {
            core: Mutex::new(KernelCore::new(seed)),
            holds: Mutex::new(HashMap::new()),
            transitions: Mutex::new(Vec::new()),
            images: Arc::default(),
            epoch: Instant::now(),
        });
        let (port, accept_task) = Port::bind(socket, Arc::new(Bridge(shared.clone())))?;
        Ok(Emulator {
            shared,
            port,
            accept_task,
            volumes,
            volume_file,
            process_file,
        })
    }

    /// Closes the port and the client's connection, as a driver unloading does; the kernel core
    /// sees the client go (held operations are denied). A new emulator may bind the same path.
    pub fn unload(&self) {
        self.accept_task.abort();
        self.port.close();
        let _ = std::fs::remove_file(&self.volume_file);
        let _ = std::fs::remove_file(&self.process_file);
    }

    /// The emulated machine's volumes (drive-letter paths in traces are sent in device form).
    pub fn volumes(&self) -> &VolumeTable {
        &self.volumes
    }

    pub fn port(&self) -> &Port {
        &self.port
    }

    /// Runs `f` on the kernel core (inspection in tests and reports).
    pub fn with_core<R>(&self, f: impl FnOnce(&mut KernelCore) -> R) -> R {
        f(&mut lock(&self.shared.core))
    }

    /// The kernel core's counters.
    pub fn metrics(&self) -> Metrics {
        lock(&self.shared.core).metrics()
    }

    /// Fail-mode transitions so far, oldest first.
    pub fn transitions(&self) -> Vec<ModeChange> {
        lock(&self.shared.transitions).clone()
    }

    /// A process starts; `creator` is the creating process (what session tracking trusts). A
    /// session process is announced to the service with its image, as the driver does; every
    /// process is in the emulated system's process table ([`Emulator::image_of`]).
    pub fn process_created(&self, pid: u32, creator: u32, image: &str) {
        lock(&self.shared.images).insert(pid, image.to_owned());
        let units: Vec<u16> = image.encode_utf16().collect();
        lock(&self.shared.core).on_process_created(pid, creator, creator, &units);
        self.flush_notifications();
    }

    /// Like [`Emulator::process_created`], but the announcement waits in the kernel core's queue
    /// and goes out after the next operation's decision: agentsh.sys sends announcements from a
    /// work item, so a new process's first request can reach the service before it.
    pub fn process_created_announced_late(&self, pid: u32, creator: u32, image: &str) {
        lock(&self.shared.images).insert(pid, image.to_owned());
        let units: Vec<u16> = image.encode_utf16().collect();
        lock(&self.shared.core).on_process_created(pid, creator, creator, &units);
    }

    /// Describes a process in the process table beside the socket (JSON lines
    /// `{"pid":…,"image":"…","command_line":"…"}`, docs/emulator.md), where the service reads
    /// what Windows would let it read of the process itself. Written before the process does
    /// anything.
    pub fn describe_process(
        &self,
        pid: u32,
        image: &str,
        command_line: Option<&str>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        let mut line = serde_json::to_vec(&serde_json::json!({
            "pid": pid,
            "image": image,
            "command_line": command_line,
        }))?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.process_file)?
            .write_all(&line)
    }

    pub fn process_exited(&self, pid: u32) {
        lock(&self.shared.images).remove(&pid);
        lock(&self.shared.core).on_process_exited(pid);
        self.flush_notifications();
    }

    /// The image of a running process, as the system reports it (what the service's image
    /// lookup asks on Windows with `QueryFullProcessImageNameW`); `None` for a pid no
    /// [`Emulator::process_created`] started, or one that exited.
    pub fn image_of(&self, pid: u32) -> Option<String> {
        lock(&self.shared.images).get(&pid).cloned()
    }

    /// [`Emulator::image_of`] as a function the service can keep (its image lookup).
    pub fn image_lookup(&self) -> impl Fn(u32) -> Option<String> + Send + Sync + 'static {
        let images = self.shared.images.clone();
        move |pid| lock(&images).get(&pid).cloned()
    }

    /// Sends every queued one-way message (decisions made alone, process events) in order.
    fn flush_notifications(&self) {
        let mut buf = vec![0u8; Outgoing::MAX_LEN];
        loop {
            let Some(note) = lock(&self.shared.core).next_notification() else {
                return;
            };
            match note.emit(&mut buf) {
                Ok(len) => {
                    self.port.notify(&buf[..len]);
                }
                Err(e) => tracing::warn!("notification not sent: {e:?}"),
            }
        }
    }

    /// Performs one intercepted operation the way the driver's callback does.
    pub async fn perform(&self, request: &OperationRequest) -> OperationOutcome {
        let started = Instant::now();
        let (verdict, why) = self.decide(request).await;
        self.flush_notifications();
        OperationOutcome {
            verdict,
            reason: why,
            latency: started.elapsed(),
        }
    }

    async fn decide(&self, request: &OperationRequest) -> (Verdict, Reason) {
        let shared = &self.shared;
        let caller = Caller {
            pid: request.pid,
            tid: request.thread_id,
        };
        let req = request.target.as_request();
        let mut buf = [0u8; REQUEST_BUFFER];
        let (token, timeout_ms, len) = {
            let mut core = lock(&shared.core);
            let step = core.begin(shared.now_ms(), caller, &req);
            shared.note_transition(&mut core);
            match step {
                Step::Allow(why) => return (Verdict::Allow, why.into()),
                Step::Deny(why) => return (Verdict::Deny, why.into()),
                Step::Query { token, timeout_ms } => {
                    match core.encode_request(caller, &req, token, &mut buf) {
                        Ok(len) => (token, timeout_ms, len),
                        Err(e) => {
                            // Cannot happen for requests built by as_request; treat as a failed query.
                            tracing::error!("request not encodable: {e:?}");
                            let v = core.complete(
                                shared.now_ms(),
                                caller,
                                &req,
                                token,
                                QueryOutcome::Error,
                            );
                            shared.note_transition(&mut core);
                            return settle(v);
                        }
                    }
                }
            }
        };
        let reply = self
            .port
            .query(
                &buf[..len],
                REPLY_LENGTH,
                Duration::from_millis(u64::from(timeout_ms)),
            )
            .await;
        let outcome = match &reply {
            Ok(bytes) => QueryOutcome::Reply(bytes),
            Err(QueryError::Timeout) => QueryOutcome::Timeout,
            Err(QueryError::NotConnected) => QueryOutcome::NotConnected,
            Err(QueryError::Disconnected | QueryError::Status(_) | QueryError::TooLarge) => {
                QueryOutcome::Error
            }
        };
        let mut verdict = {
            let mut core = lock(&shared.core);
            let v = core.complete(shared.now_ms(), caller, &req, token, outcome);
            shared.note_transition(&mut core);
            v
        };
        while let CoreVerdict::Hold { ticket, deadline } = verdict {
            let waker = lock(&shared.holds)
                .entry(ticket)
                .or_insert_with(|| Arc::new(Notify::new()))
                .clone();
            // The decision may have arrived before the waker was registered: ask first, then wait.
            verdict = lock(&shared.core).hold_status(shared.now_ms(), caller, &req, ticket);
            if let CoreVerdict::Hold { deadline: d, .. } = verdict {
                let wait = Duration::from_millis(d.max(deadline).saturating_sub(shared.now_ms()));
                // Woken or timed out, the core says which: poll it again at the loop's head.
                let _ = tokio::time::timeout(wait, waker.notified()).await;
                verdict = lock(&shared.core).hold_status(shared.now_ms(), caller, &req, ticket);
            }
            if !matches!(verdict, CoreVerdict::Hold { .. }) {
                lock(&shared.holds).remove(&ticket);
            }
        }
        settle(verdict)
    }
}

fn settle(verdict: CoreVerdict) -> (Verdict, Reason) {
    match verdict {
        CoreVerdict::Allow(why) => (Verdict::Allow, why.into()),
        CoreVerdict::Deny(why) => (Verdict::Deny, why.into()),
        // Only reached from the hold loop's exit, which never leaves a Hold.
        CoreVerdict::Hold { .. } => (Verdict::Deny, Reason::HoldRefused),
    }
}
