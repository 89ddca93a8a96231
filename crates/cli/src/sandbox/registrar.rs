//! The sandbox's session registrar on Windows: the running service's local API.

use agentsh_service::api::SessionRequest;
use agentsh_windows::sandbox::{SessionRegistrar, SessionStart};

use crate::api_client::{ApiArgs, ApiClient, ApiError};

/// Registers sandbox sessions with the running service (`POST /v1/sessions`, `DELETE
/// /v1/sessions/{id}`): the driver's port has one client, the service.
#[derive(Debug)]
pub struct ServiceRegistrar {
    client: ApiClient,
}

impl ServiceRegistrar {
    /// Checks that the service answers (its metrics, which any local caller may read), before
    /// anything is started.
    pub fn connect(api: &ApiArgs) -> Result<Self, ApiError> {
        let client = ApiClient::new(api)?;
        client.get("/v1/metrics")?;
        Ok(ServiceRegistrar { client })
    }
}

impl SessionRegistrar for ServiceRegistrar {
    fn register(&self, start: &SessionStart) -> Result<String, String> {
        let request = SessionRequest {
            root_pid: start.root_pid,
            app: Some(start.app.clone()),
            workspace: Some(start.workspace.clone()),
            workspace_device: start.workspace_device.clone(),
            user_sid: Some(start.user_sid.clone()),
            audit: false,
            canary: start.canary.clone(),
            wall_check: start.wall_check.clone(),
        };
        self.client
            .register_session(&request)
            .map_err(|e| e.to_string())
    }

    fn unregister(&self, session: &str) -> Result<(), String> {
        self.client
            .unregister_session(session)
            .map_err(|e| e.to_string())
    }
}

/// Why minifilter mode cannot start, with the next steps.
pub fn no_service(name: &str, error: &ApiError) -> String {
    format!(
        "sandbox `{name}`: the session must be registered through the agentsh service, which is not available: {error}; start it (`agentsh service start`, or point --api-socket at a running one), or pass --no-minifilter to run with appcontainer only (no registry or file policy)"
    )
}

#[cfg(all(test, unix))]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::api_client::test_service::serve;

    fn api(socket: PathBuf) -> ApiArgs {
        ApiArgs {
            api_socket: Some(socket),
        }
    }

    #[test]
    fn sessions_are_registered_with_process_app_workspace_and_user_then_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![
                (200, "agentsh_requests_total 0\n"),
                (201, r#"{"session_id":"s-3"}"#),
                (200, "session `s-3` ended\n"),
            ],
        );
        let registrar = ServiceRegistrar::connect(&api(socket)).expect("connect");
        let start = SessionStart {
            root_pid: 77,
            app: "demo".into(),
            workspace: r"C:\work\demo".into(),
            workspace_device: Some(r"\Device\HarddiskVolume3\work\demo".into()),
            user_sid: "S-1-5-21-10-20-30-1001".into(),
            canary: None,
            wall_check: Some("skipped".into()),
        };
        assert_eq!(registrar.register(&start).as_deref(), Ok("s-3"));
        registrar.unregister("s-3").expect("unregister");
        let seen = server.join().expect("server");
        let lines: Vec<&str> = seen.iter().map(|s| s.request_line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "GET /v1/metrics HTTP/1.1",
                "POST /v1/sessions HTTP/1.1",
                "DELETE /v1/sessions/s-3 HTTP/1.1"
            ]
        );
        let body: SessionRequest = serde_json::from_str(&seen[1].body).expect("request");
        assert_eq!(body.root_pid, 77);
        assert_eq!(body.app.as_deref(), Some("demo"));
        assert_eq!(body.workspace.as_deref(), Some(r"C:\work\demo"));
        assert_eq!(
            body.workspace_device.as_deref(),
            Some(r"\Device\HarddiskVolume3\work\demo"),
            "both spellings of the workspace are registered"
        );
        assert_eq!(body.user_sid.as_deref(), Some("S-1-5-21-10-20-30-1001"));
        assert!(!body.audit);
        assert_eq!(body.wall_check.as_deref(), Some("skipped"));
        assert_eq!(body.canary, None);
    }

    #[test]
    fn an_absent_service_is_reported_before_anything_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ServiceRegistrar::connect(&api(dir.path().join("api.sock"))).expect_err("absent");
        let text = no_service("demo", &err);
        assert!(
            text.starts_with("sandbox `demo`: the session must be registered through the agentsh service, which is not available: "),
            "{text}"
        );
        assert!(text.contains("cannot reach the agentsh service"), "{text}");
        assert!(text.contains("`agentsh service start`"), "{text}");
        assert!(text.contains("--no-minifilter"), "{text}");
    }

    #[test]
    fn a_refused_registration_reports_the_services_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (socket, server) = serve(
            dir.path(),
            vec![(200, "\n"), (400, "workspace `C:\\` is a volume root\n")],
        );
        let registrar = ServiceRegistrar::connect(&api(socket.clone())).expect("connect");
        let start = SessionStart {
            root_pid: 1,
            app: "demo".into(),
            workspace: r"C:\".into(),
            workspace_device: None,
            user_sid: "S-1-5-18".into(),
            canary: None,
            wall_check: None,
        };
        let err = registrar.register(&start).expect_err("400");
        server.join().expect("server");
        assert_eq!(
            err,
            format!(
                "the agentsh service at `{}` answered 400: workspace `C:\\` is a volume root",
                socket.display()
            )
        );
    }
}
