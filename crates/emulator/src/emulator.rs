//! The emulated driver: owns the kernel core and the port, turns each simulated operation into the
//! kernel core's steps (answer locally, or ask the service, then perhaps hold for an approval), and
//! measures how long the caller was kept waiting.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::core::{Begin, Finish, KernelCore, OperationRequest, Reason, Verdict};
use crate::port::{Port, PortHandler};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single call into the core or a map update, so the state stays
    // consistent even if a holder panicked; the emulator keeps serving.
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

type HoldSlots = Mutex<HashMap<u64, oneshot::Sender<()>>>;

struct Shared<C> {
    core: Mutex<C>,
    holds: HoldSlots,
    epoch: Instant,
}

impl<C> Shared<C> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

struct Bridge<C>(Arc<Shared<C>>);

impl<C: KernelCore> PortHandler for Bridge<C> {
    fn connected(&self, client_pid: u32) {
        let now = self.0.now_ms();
        lock(&self.0.core).client_connected(client_pid, now);
    }

    fn disconnected(&self) {
        let now = self.0.now_ms();
        lock(&self.0.core).client_disconnected(now);
    }

    fn user_send(&self, message: &[u8]) -> (i32, Vec<u8>) {
        let now = self.0.now_ms();
        let outcome = lock(&self.0.core).user_send(message, now);
        let mut holds = lock(&self.0.holds);
        for ticket in &outcome.resolved {
            if let Some(slot) = holds.remove(ticket) {
                // The held operation may have given up already; the core keeps the decision.
                let _ = slot.send(());
            }
        }
        (outcome.status, outcome.output)
    }
}

/// The emulated agentsh.sys: a kernel core behind a listening port.
pub struct Emulator<C> {
    shared: Arc<Shared<C>>,
    port: Port,
    accept_task: JoinHandle<()>,
}

impl<C> std::fmt::Debug for Emulator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("port", &self.port)
            .finish()
    }
}

impl<C> Drop for Emulator<C> {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl<C: KernelCore> Emulator<C> {
    /// Starts listening on `socket` with `core` as the kernel state. Needs a tokio runtime.
    pub fn start(socket: &Path, core: C) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            holds: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        });
        let (port, accept_task) = Port::bind(socket, Arc::new(Bridge(shared.clone())))?;
        Ok(Emulator {
            shared,
            port,
            accept_task,
        })
    }

    pub fn port(&self) -> &Port {
        &self.port
    }

    /// Runs `f` on the kernel core (for metrics and test inspection).
    pub fn with_core<R>(&self, f: impl FnOnce(&mut C) -> R) -> R {
        f(&mut lock(&self.shared.core))
    }

    fn flush_notifications(&self) {
        let mut out = Vec::new();
        lock(&self.shared.core).drain_notifications(&mut out);
        for message in out {
            self.port.notify(&message);
        }
    }

    pub fn process_created(&self, pid: u32, creator: u32, image: &str) {
        let now = self.shared.now_ms();
        let note = lock(&self.shared.core).process_created(pid, creator, image, now);
        if let Some(message) = note {
            self.port.notify(&message);
        }
    }

    pub fn process_exited(&self, pid: u32) {
        let now = self.shared.now_ms();
        let note = lock(&self.shared.core).process_exited(pid, now);
        if let Some(message) = note {
            self.port.notify(&message);
        }
    }

    /// Performs one intercepted operation the way the driver's callback does, returning the verdict
    /// and how long the calling thread was held.
    pub async fn perform(&self, request: &OperationRequest) -> OperationOutcome {
        let started = Instant::now();
        let (verdict, reason) = self.decide(request).await;
        self.flush_notifications();
        OperationOutcome {
            verdict,
            reason,
            latency: started.elapsed(),
        }
    }

    async fn decide(&self, request: &OperationRequest) -> (Verdict, Reason) {
        let shared = &self.shared;
        let begin = lock(&shared.core).begin(request, shared.now_ms());
        let (ticket, message, reply_len, timeout) = match begin {
            Begin::Done(verdict, reason) => return (verdict, reason),
            Begin::Ask {
                ticket,
                message,
                reply_len,
                timeout,
            } => (ticket, message, reply_len, timeout),
        };
        let reply = self.port.query(&message, reply_len, timeout).await;
        let finish =
            lock(&shared.core).finish(ticket, reply.as_deref().map_err(|e| *e), shared.now_ms());
        let (ticket, wait) = match finish {
            Finish::Done(verdict, reason) => return (verdict, reason),
            Finish::Hold { ticket, wait } => (ticket, wait),
        };
        let (tx, rx) = oneshot::channel();
        lock(&shared.holds).insert(ticket, tx);
        // The final decision may have arrived between the reply and the registration above.
        if let Some(done) = lock(&shared.core).take_final(ticket) {
            lock(&shared.holds).remove(&ticket);
            return done;
        }
        let woken = tokio::time::timeout(wait, rx).await;
        lock(&shared.holds).remove(&ticket);
        let mut core = lock(&shared.core);
        match woken {
            Ok(Ok(())) => core
                .take_final(ticket)
                .unwrap_or_else(|| core.hold_expired(ticket, shared.now_ms())),
            Ok(Err(_)) | Err(_) => match core.take_final(ticket) {
                Some(done) => done,
                None => core.hold_expired(ticket, shared.now_ms()),
            },
        }
    }
}
