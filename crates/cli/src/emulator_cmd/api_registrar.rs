//! `emulator run --register-through-api`: a trace's `register_session` and `unregister_session`
//! lines go to the running service's local API (`POST /v1/sessions`, `DELETE /v1/sessions/{id}`),
//! and the service registers the session with the driver over the emulator's port — the path a
//! sandbox takes in a deployment.
//!
//! The API client is blocking, so each call runs on the runtime's blocking pool. The token file is
//! read afresh for every call (the service rotates its token). While the service is still starting
//! (no token file yet, nothing listening on the address), a call is retried until the run's
//! `--wait` has passed; any other failure ends the call with the client's message, which names the
//! address, the status and the body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::replay::{RegistrarFuture, SessionRegistrar};
use agentsh_emulator::volumes::VolumeTable;
use agentsh_service::api::SessionRequest;

use crate::api_client::{ApiArgs, ApiClient, ApiError};

/// Pause between attempts while the service is starting.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Registers the trace's sessions through the service's API and remembers, per root process, the
/// session id the service gave it.
#[derive(Debug)]
pub struct ApiRegistrar {
    args: ApiArgs,
    wait: Duration,
    sessions: Mutex<HashMap<u32, String>>,
    /// The emulated machine's volumes: the workspace's device spelling is registered too, as a
    /// sandbox on Windows registers what `GetFinalPathNameByHandleW` names it.
    volumes: Option<VolumeTable>,
}

/// Whether a failure can be the service still starting: nothing accepting connections on the
/// socket yet.
fn starting(e: &ApiError) -> bool {
    matches!(e, ApiError::Unreachable { .. })
}

impl ApiRegistrar {
    /// Calls the service at `args` (address and token file), retrying for up to `wait` while it
    /// is starting.
    pub fn new(args: ApiArgs, wait: Duration) -> Self {
        ApiRegistrar {
            args,
            wait,
            sessions: Mutex::new(HashMap::new()),
            volumes: None,
        }
    }

    /// Registers each workspace's device spelling through `volumes` as well.
    pub fn with_volumes(mut self, volumes: VolumeTable) -> Self {
        self.volumes = Some(volumes);
        self
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` with a fresh client on the blocking pool; with `retry`, again every
    /// [`RETRY_EVERY`] while the service looks like it is starting, until `wait` has passed.
    async fn call<T: Send + 'static>(
        &self,
        retry: bool,
        call: impl Fn(&ApiClient) -> Result<T, ApiError> + Send + Sync + 'static,
    ) -> Result<T, String> {
        let call = Arc::new(call);
        let deadline = Instant::now() + self.wait;
        loop {
            let (args, call) = (self.args.clone(), call.clone());
            let outcome = tokio::task::spawn_blocking(move || call(&ApiClient::new(&args)?))
                .await
                .map_err(|e| {
                    format!(
                        "the call to the agentsh service at {} failed: {e}",
                        self.args.endpoint().display()
                    )
                })?;
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if retry && starting(&e) && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "the service's API is not ready yet; retrying");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                Err(e) if retry && starting(&e) => {
                    return Err(format!("{e} (still failing after {:?})", self.wait));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    async fn register_session(
        &self,
        root_pid: u32,
        workspace: String,
        app_name: String,
    ) -> Result<(), String> {
        if let Some(id) = self.sessions().get(&root_pid) {
            return Err(format!(
                "process {root_pid} is already the root of session `{id}` in this replay"
            ));
        }
        let workspace_device = match &self.volumes {
            Some(v) => Some(
                v.device_path(&workspace)
                    .map_err(|e| format!("workspace: {e}"))?,
            ),
            None => None,
        };
        let request = SessionRequest {
            root_pid,
            app: Some(app_name),
            workspace: Some(workspace),
            workspace_device,
            user_sid: Some(DEFAULT_USER_SID.to_owned()),
            audit: false,
            canary: None,
            wall_check: None,
        };
        let id = self
            .call(true, move |client| client.register_session(&request))
            .await?;
        tracing::info!(session = %id, root_pid, "session registered through the service's API");
        self.sessions().insert(root_pid, id);
        Ok(())
    }

    async fn unregister_session(&self, root_pid: u32, retry: bool) -> Result<String, String> {
        let Some(id) = self.sessions().get(&root_pid).cloned() else {
            return Err(format!(
                "no session was registered for process {root_pid} in this replay"
            ));
        };
        let for_call = id.clone();
        self.call(retry, move |client| client.unregister_session(&for_call))
            .await?;
        self.sessions().remove(&root_pid);
        Ok(id)
    }

    /// Ends, through the API, every session this replay registered and did not unregister (a
    /// trace that stops early or fails half-way must not leave sessions in the service for
    /// process ids the next run reuses). One attempt each; returns what was ended and what
    /// failed.
    pub async fn unregister_remaining(&self) -> (Vec<(u32, String)>, Vec<String>) {
        let mut pids: Vec<u32> = self.sessions().keys().copied().collect();
        pids.sort_unstable();
        let (mut ended, mut failed) = (Vec::new(), Vec::new());
        for pid in pids {
            match self.unregister_session(pid, false).await {
                Ok(id) => ended.push((pid, id)),
                Err(e) => failed.push(format!("ending the session of process {pid}: {e}")),
            }
        }
        (ended, failed)
    }
}

impl SessionRegistrar for ApiRegistrar {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        Box::pin(self.register_session(root_pid, workspace.to_owned(), app_name.to_owned()))
    }

    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        Box::pin(async move { self.unregister_session(root_pid, true).await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::api_client::test_service::serve;

    fn args(socket: PathBuf) -> ApiArgs {
        ApiArgs {
            api_socket: Some(socket),
        }
    }

    #[tokio::test]
    async fn registers_with_the_emulators_user_and_unregisters_by_the_id_it_was_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![
                (201, r#"{"session_id":"s-3"}"#),
                (200, "session `s-3` ended\n"),
            ],
        );
        let registrar = ApiRegistrar::new(args(socket), Duration::from_secs(5));
        registrar
            .register(4100, r"C:\work", "TestApp")
            .await
            .expect("registered");
        let again = registrar.register(4100, r"C:\work", "TestApp").await;
        assert_eq!(
            again,
            Err("process 4100 is already the root of session `s-3` in this replay".to_owned())
        );
        registrar.unregister(4100).await.expect("unregistered");
        assert_eq!(
            registrar.unregister(4100).await,
            Err("no session was registered for process 4100 in this replay".to_owned())
        );
        let seen = server.join().expect("server");
        assert_eq!(seen[0].request_line, "POST /v1/sessions HTTP/1.1");
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "root_pid": 4100,
                "app": "TestApp",
                "workspace": r"C:\work",
                "user_sid": DEFAULT_USER_SID,
                "audit": false
            })
        );
        assert_eq!(seen[1].request_line, "DELETE /v1/sessions/s-3 HTTP/1.1");
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_names_the_address_status_and_body_and_is_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![(400, "process 4100 is already a session root\n")],
        );
        let registrar = ApiRegistrar::new(args(socket.clone()), Duration::from_secs(5));
        let e = registrar
            .register(4100, r"C:\work", "TestApp")
            .await
            .expect_err("refused");
        assert_eq!(
            e,
            format!(
                "the agentsh service at `{}` answered 400: process 4100 is already a session root",
                socket.display()
            )
        );
        assert_eq!(server.join().expect("server").len(), 1);
        let (ended, failed) = registrar.unregister_remaining().await;
        assert!(ended.is_empty() && failed.is_empty());
    }

    #[tokio::test]
    async fn a_service_that_never_comes_up_fails_after_the_wait_naming_what_was_missing() {
        // A socket path nobody listens on.
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("api.sock");
        let registrar = ApiRegistrar::new(args(socket.clone()), Duration::from_millis(300));
        let started = Instant::now();
        let e = registrar
            .register(4100, r"C:\work", "TestApp")
            .await
            .expect_err("nothing there");
        assert!(started.elapsed() >= Duration::from_millis(300), "retried");
        assert!(e.ends_with("(still failing after 300ms)"), "{e}");
        assert!(
            e.starts_with(&format!(
                "cannot reach the agentsh service at `{}`",
                socket.display()
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn sessions_left_by_the_trace_are_ended_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![
                (201, r#"{"session_id":"s-1"}"#),
                (201, r#"{"session_id":"s-2"}"#),
                (200, "session `s-1` ended\n"),
                (404, "no session `s-2`\n"),
            ],
        );
        let registrar = ApiRegistrar::new(args(socket.clone()), Duration::from_secs(5));
        registrar.register(4100, "C:\\a", "A").await.expect("first");
        registrar
            .register(4200, "C:\\b", "B")
            .await
            .expect("second");
        let (ended, failed) = registrar.unregister_remaining().await;
        assert_eq!(ended, vec![(4100, "s-1".to_owned())]);
        assert_eq!(
            failed,
            vec![format!(
                "ending the session of process 4200: the agentsh service at `{}` answered 404: no session `s-2`",
                socket.display()
            )]
        );
        let seen = server.join().expect("server");
        assert_eq!(seen[2].request_line, "DELETE /v1/sessions/s-1 HTTP/1.1");
        assert_eq!(seen[3].request_line, "DELETE /v1/sessions/s-2 HTTP/1.1");
    }
}
