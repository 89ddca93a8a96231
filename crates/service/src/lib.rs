//! The user-mode half of agentsh: it receives the driver's policy checks, decides them with the
//! policy engine, holds `approve` decisions for a person, and reports everything as events and
//! metrics.
//!
//! ```text
//! Transport (filter port | loopback socket) → DriverClient → PolicyAdapter → Engine
//!                                                        ↘ ApprovalManager (timer, final decision)
//!                                                        ↘ EventPipeline (bounded, counted drops)
//! ```
//!
//! The service never blocks a decision on anything but the policy and a pending approval: events
//! go through a bounded queue, and each kernel request is handled on its own task, so a slow
//! approval cannot hold up other checks.

pub mod adapter;
pub mod api;
pub mod approvals;
pub mod client;
pub mod events;
pub mod failmode;
#[cfg(windows)]
pub mod filter_port;
pub mod metrics;
pub mod processes;
pub mod runner;
pub mod sessions;
pub mod terminal;
pub mod transport;
pub mod volumes;

pub use adapter::PolicyAdapter;
pub use approvals::{ApprovalChange, ApprovalManager, ApprovalOutcome, PendingApproval};
pub use client::{ClientError, DriverClient};
pub use events::{Event, EventKind, EventPipeline, Format, Reason};
#[cfg(windows)]
pub use filter_port::FilterPortTransport;
pub use sessions::{SessionExtras, SessionInfo, SessionRegistry};
#[cfg(unix)]
pub use transport::SocketTransport;
pub use transport::{KernelMessage, PortTransport};

use std::sync::Arc;

use agentsh_policy::settings::{self, DriverSettings};
use agentsh_policy::{Policy, SessionContext};
use agentsh_wire::control::{DriverConfig, FailMode};
use tokio::task::JoinHandle;

/// The driver configuration a policy asks for: its `driver:` section, and how session reads are
/// handled (asked about when a rule can decide a read other than a plain allow, reported when
/// the policy logs every operation).
pub fn driver_config_for(policy: &Policy) -> DriverConfig {
    let reads = policy.engine().read_handling();
    driver_config(&policy.settings().driver, reads.query, reads.report)
}

/// The driver configuration a policy's `driver:` section asks for.
pub fn driver_config(s: &DriverSettings, reads_need_query: bool, log_reads: bool) -> DriverConfig {
    let mut flags = 0;
    if reads_need_query {
        flags |= agentsh_wire::control::CONFIG_QUERY_READS;
    }
    if log_reads {
        flags |= agentsh_wire::control::CONFIG_NOTIFY_READS;
    }
    DriverConfig {
        fail_mode: match s.fail_mode {
            settings::FailMode::Open => FailMode::Open,
            settings::FailMode::Closed => FailMode::Closed,
        },
        policy_query_timeout_ms: s.policy_query_timeout_ms,
        max_consecutive_failures: s.max_consecutive_failures,
        cache_max_entries: s.cache_max_entries,
        cache_default_ttl_ms: s.cache_default_ttl_ms,
        pending_grace_ms: DriverConfig::PENDING_GRACE_MS.default,
        flags,
    }
}

/// A running service: connected to the driver, configured, answering requests.
#[derive(Debug)]
pub struct Service<T: PortTransport> {
    pub client: DriverClient<T>,
    pub adapter: Arc<PolicyAdapter>,
    serve: Option<JoinHandle<Result<(), ClientError>>>,
}

impl<T: PortTransport> Drop for Service<T> {
    /// Stops answering and lets the port close, so the driver sees the service go.
    fn drop(&mut self) {
        if let Some(serve) = &self.serve {
            serve.abort();
        }
    }
}

impl<T: PortTransport> Service<T> {
    /// Connects over `transport` (handshake, exclusion of this process), applies the policy's
    /// driver settings, and starts answering requests.
    pub async fn start(
        transport: T,
        policy: &Policy,
        events: EventPipeline,
    ) -> Result<Self, ClientError> {
        let config = driver_config_for(policy);
        let adapter = PolicyAdapter::for_policy(policy, events);
        Self::resume(transport, Arc::new(adapter), config).await
    }

    /// Connects over `transport` with an existing adapter (its sessions, grants and pending
    /// approvals carry over: a reconnect after the driver side went away), sends `config`, and
    /// starts answering requests.
    pub async fn resume(
        transport: T,
        adapter: Arc<PolicyAdapter>,
        config: DriverConfig,
    ) -> Result<Self, ClientError> {
        let client = DriverClient::connect(transport).await?;
        Self::serve_with(client, adapter, config).await
    }

    /// Starts answering on a connected, handshaken client (its process already excluded):
    /// sends `config`, then serves requests with `adapter`.
    pub async fn serve_with(
        client: DriverClient<T>,
        adapter: Arc<PolicyAdapter>,
        config: DriverConfig,
    ) -> Result<Self, ClientError> {
        client.set_config(config).await?;
        client.set_read_scope(&adapter.read_scope()).await?;
        adapter.set_fail_mode(config.fail_mode);
        // Decisions the kernel made alone while no service was connected are known only from its
        // counters: read them at once, before serving, so a short outage followed by a quick
        // reconnect is reported even if this connection ends before the next poll. The kernel
        // keeps the counts (until the driver restarts); the watch's baseline is what has been
        // reported.
        match client.metrics().await {
            Ok(m) => {
                for ev in adapter.fail_watch.on_metrics(&m) {
                    adapter.events.emit(ev);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the driver's counters after connecting")
            }
        }
        let serve = tokio::spawn({
            let client = client.clone();
            let adapter = adapter.clone();
            async move { client.serve(adapter).await }
        });
        Ok(Service {
            client,
            adapter,
            serve: Some(serve),
        })
    }

    /// Registers again, with the driver, every session the service knows (after a reconnect: a
    /// driver that was restarted lost them; one that was not answers `AlreadyExists`). Returns
    /// the sessions the driver had lost; their root process is tracked again, processes it
    /// started meanwhile are not.
    pub async fn reregister_sessions(&self) -> Vec<String> {
        let mut restored = Vec::new();
        for info in self.adapter.sessions.list() {
            if self.adapter.sessions.is_unconfirmed(info.numeric_id) {
                tracing::warn!(session = %info.id, root_pid = info.root_pid, "not registered with the driver again: read from the session file and never confirmed by the driver, so its root pid may now be another process's");
                continue;
            }
            let Some(token) = self.adapter.sessions.token_of(&info.id) else {
                continue;
            };
            let workspace = info.context.workspace().unwrap_or_default().to_owned();
            match self
                .client
                .register_session(
                    info.root_pid,
                    token,
                    info.numeric_id,
                    info.audit,
                    &workspace,
                )
                .await
            {
                Ok(()) => restored.push(info.id.clone()),
                Err(ClientError::Refused {
                    status: agentsh_wire::control::SendStatus::AlreadyExists,
                    ..
                }) => {}
                Err(e) => {
                    tracing::error!(session = %info.id, error = %e, "the driver refused a session the service knows; its processes are not monitored")
                }
            }
        }
        restored
    }

    /// Asks the driver about every session read from the session file: one whose root it still
    /// places in that session is confirmed (registered with the driver again after a later
    /// driver restart, like a session of this run); the others are kept for the requests that
    /// may still carry their tokens but never registered again, since after a reboot or a driver
    /// reload their root pids may have been reused. Returns the ids left unconfirmed.
    pub async fn confirm_restored_sessions(&self) -> Vec<String> {
        let mut unconfirmed = Vec::new();
        for info in self.adapter.sessions.unconfirmed() {
            match self.client.query_session(info.root_pid).await {
                Ok(Some(id)) if id == info.numeric_id => {
                    self.adapter.sessions.confirm(info.numeric_id)
                }
                _ => unconfirmed.push(info.id.clone()),
            }
        }
        unconfirmed
    }

    /// Starts a session for a sandbox's root process: a fresh token, registered with the driver.
    pub async fn register_session(
        &self,
        root_pid: u32,
        context: SessionContext,
        audit: bool,
    ) -> Result<Arc<SessionInfo>, ClientError> {
        self.register_session_with(root_pid, context, audit, SessionExtras::default())
            .await
    }

    /// [`Service::register_session`] with the wall check's canary and result.
    pub async fn register_session_with(
        &self,
        root_pid: u32,
        context: SessionContext,
        audit: bool,
        extras: SessionExtras,
    ) -> Result<Arc<SessionInfo>, ClientError> {
        let workspace = context.workspace().unwrap_or_default().to_owned();
        let (token, info) = self
            .adapter
            .sessions
            .register(root_pid, context, audit, extras)?;
        if let Err(e) = self
            .client
            .register_session(root_pid, token, info.numeric_id, audit, &workspace)
            .await
        {
            self.adapter.sessions.remove(&info.id);
            return Err(e);
        }
        if !self.adapter.learn_root_image(root_pid) {
            tracing::debug!(session = %info.id, root_pid, "the session root's image is unknown");
        }
        if let Some(wall_check) = &info.wall_check {
            self.adapter
                .events
                .first_event_carries(&info.id, wall_check);
        }
        tracing::info!(
            session = %info.id,
            root_pid,
            token = %sessions::redact(token),
            wall_check = info.wall_check.as_deref().unwrap_or("not reported"),
            canary = info.canary.is_some(),
            "session registered"
        );
        Ok(info)
    }

    /// Ends a session (driver first, so no request can name a token the service forgot).
    pub async fn unregister_session(&self, id: &str) -> Result<bool, ClientError> {
        let Some(token) = self.adapter.sessions.token_of(id) else {
            return Ok(false);
        };
        self.client.unregister_session(token).await?;
        self.adapter.sessions.remove(id);
        self.adapter.approvals.forget_session(id);
        self.adapter.events.forget_first_event(id);
        Ok(true)
    }

    /// Rotates a session's token without dropping its processes.
    pub async fn rotate_token(&self, id: &str) -> Result<bool, ClientError> {
        let Some((old, new)) = self.adapter.sessions.rotate(id)? else {
            return Ok(false);
        };
        if let Err(e) = self.client.rotate_session_token(old, new).await {
            // Keep the service and the driver in agreement: put the old token back.
            let _ = self.adapter.sessions.rotate_to(id, old);
            return Err(e);
        }
        Ok(true)
    }

    /// Swaps in a new policy atomically and drops the driver's cached decisions. The policy's
    /// audit and approval settings apply at once; `config` (the reloaded `driver:` section with
    /// any command-line overrides) is sent to the driver before its cache is flushed.
    pub async fn reload(&self, policy: &Policy, config: DriverConfig) -> Result<(), ClientError> {
        self.adapter.apply_policy(policy);
        // The scope first: the new flags never meet the old policy's scope.
        self.client
            .set_read_scope(&self.adapter.read_scope())
            .await?;
        self.client.set_config(config).await?;
        self.adapter.set_fail_mode(config.fail_mode);
        self.client.flush_cache().await
    }

    /// Reads the driver's counters and reports the fail-mode transitions they show (decisions the
    /// kernel made on its own while the service was away or too slow). `agentsh service run`
    /// calls it periodically and on every metrics request.
    pub async fn poll_driver(&self) -> Result<agentsh_wire::control::Metrics, ClientError> {
        let m = self.client.metrics().await?;
        for ev in self.adapter.fail_watch.on_metrics(&m) {
            self.adapter.events.emit(ev);
        }
        Ok(m)
    }

    /// The session the kernel places `pid` in, by its public id (`None` when in none). A
    /// session the service no longer lists is named by its numeric id.
    pub async fn kernel_session_of(&self, pid: u32) -> Result<Option<String>, ClientError> {
        let Some(numeric) = self.client.query_session(pid).await? else {
            return Ok(None);
        };
        // The kernel tracked this process by creation: remember it as the announcement would.
        self.adapter.session_member(pid, numeric);
        Ok(Some(
            self.adapter
                .sessions
                .list()
                .iter()
                .find(|s| s.numeric_id == numeric)
                .map(|s| s.id.clone())
                .unwrap_or_else(|| format!("s-{numeric}")),
        ))
    }

    /// Whether the driver connection is still being served.
    pub fn is_running(&self) -> bool {
        self.serve.as_ref().is_some_and(|s| !s.is_finished())
    }

    /// Waits until the driver port closes.
    pub async fn wait(mut self) -> Result<(), ClientError> {
        match self.serve.take() {
            Some(serve) => match serve.await {
                Ok(r) => r,
                Err(e) => Err(ClientError::Io(std::io::Error::other(e.to_string()))),
            },
            None => Ok(()),
        }
    }
}

impl<T: PortTransport> api::DriverOps for Service<T> {
    fn register(
        &self,
        req: api::SessionRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>>
    {
        Box::pin(async move {
            let mut ctx = SessionContext::new(
                req.app.as_deref(),
                req.workspace.as_deref(),
                req.user_sid.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            if let Some(device) = req.workspace_device.as_deref() {
                ctx = ctx
                    .with_workspace_device(device, &self.adapter.volumes())
                    .map_err(|e| e.to_string())?;
            }
            let extras = SessionExtras {
                canary: req.canary.clone(),
                wall_check: req.wall_check.clone(),
            };
            self.register_session_with(req.root_pid, ctx, req.audit, extras)
                .await
                .map(|s| s.id.clone())
                .map_err(|e| e.to_string())
        })
    }

    fn unregister(
        &self,
        id: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + '_>>
    {
        Box::pin(async move {
            self.unregister_session(&id)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn driver_metrics(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<agentsh_wire::control::Metrics>> + Send + '_>,
    > {
        Box::pin(async move { self.poll_driver().await.ok() })
    }

    fn kernel_session_of(
        &self,
        pid: u32,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, String>> + Send + '_>,
    > {
        Box::pin(async move {
            Service::kernel_session_of(self, pid)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
