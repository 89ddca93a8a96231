//! A session registrar for standalone replays: the session is registered with the driver by the
//! service (told by the sandbox or an operator), and the replay waits until the kernel core shows
//! the process as a session root before going on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::replay::{RegistrarFuture, SessionRegistrar};

/// Waits for sessions that someone else registers through the service.
#[derive(Debug, Clone)]
pub struct AwaitRegistration {
    emulator: Arc<Emulator>,
    timeout: Duration,
}

impl AwaitRegistration {
    pub fn new(emulator: Arc<Emulator>, timeout: Duration) -> Self {
        AwaitRegistration { emulator, timeout }
    }

    async fn until(&self, root_pid: u32, registered: bool) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if self
                .emulator
                .with_core(|c| c.session_of(root_pid).is_some())
                == registered
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = if registered {
                    "registered"
                } else {
                    "unregistered"
                };
                return Err(format!(
                    "no session was {what} for process {root_pid} within {:?} (register it through the service)",
                    self.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl SessionRegistrar for AwaitRegistration {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        tracing::info!(
            "waiting for the service to register process {root_pid} (workspace `{workspace}`, app `{app_name}`)"
        );
        Box::pin(self.until(root_pid, true))
    }

    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        Box::pin(self.until(root_pid, false))
    }
}
