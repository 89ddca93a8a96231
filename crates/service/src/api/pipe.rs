//! The API's named pipe on Windows (see `agentsh_windows::pipe` for its security descriptor):
//! the first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so a name another process
//! created first is reported, never shared; each client is counted per account as soon as it
//! connects, then identified by impersonation once it has sent its request.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use agentsh_windows::pipe as win;

use super::{Api, Caller, Via};

/// The pipe's first instance, created and not yet served.
pub struct Bound {
    first: tokio::net::windows::named_pipe::NamedPipeServer,
    name: OsString,
    approvers: Option<String>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Creates the pipe `endpoint`'s first instance. `approvers_group` is a group name or SID; its
/// SID is resolved now.
pub fn bind(endpoint: &Path, approvers_group: Option<&str>) -> std::io::Result<Bound> {
    let approvers = approvers_group.map(win::resolve_group).transpose()?;
    let name: OsString = endpoint.as_os_str().to_owned();
    let first = win::create_server(&name, true).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            std::io::Error::new(
                e.kind(),
                format!(
                    "another process already created the pipe `{}` (a squatter, or another agentsh service): {e}",
                    endpoint.display()
                ),
            )
        } else {
            e
        }
    })?;
    Ok(Bound {
        first,
        name,
        approvers,
    })
}

impl Bound {
    /// Serves `api` on the pipe in a task: each client on its own instance, the next instance
    /// created before a client is served so that the name stays the service's.
    pub fn serve(self, api: Api) -> tokio::task::JoinHandle<()> {
        let Bound {
            first,
            name,
            approvers,
        } = self;
        serve_from(first, name, approvers, api)
    }
}

fn serve_from(
    first: tokio::net::windows::named_pipe::NamedPipeServer,
    name: OsString,
    approvers: Option<String>,
    api: Api,
) -> tokio::task::JoinHandle<()> {
    let router = api.local_router();
    let display = std::path::PathBuf::from(&name).display().to_string();
    tokio::spawn(async move {
        let mut listening = first;
        let mut failing = false;
        loop {
            if let Err(e) = listening.connect().await {
                if !failing {
                    failing = true;
                    api.report(format!(
                        "API pipe `{display}`: a client failed to connect: {e}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                match win::create_server(&name, false) {
                    Ok(next) => listening = next,
                    Err(e) => {
                        api.report(format!("API pipe `{display}`: cannot add an instance: {e}"))
                    }
                }
                continue;
            }
            // The next instance before this client is served, so the name stays ours.
            let next = loop {
                match win::create_server(&name, false) {
                    Ok(next) => break next,
                    Err(e) => {
                        if !failing {
                            failing = true;
                            api.report(format!(
                                "API pipe `{display}`: cannot add an instance: {e}"
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            failing = false;
            let connected = std::mem::replace(&mut listening, next);
            let account = match win::client_account(&connected) {
                Ok((pid, Some(sid))) => (pid, sid),
                // A process whose token the service cannot read is not served.
                _ => continue,
            };
            let Some(admission) = api.admit(&account.1) else {
                continue;
            };
            let api = api.clone();
            let router = router.clone();
            let approvers = approvers.clone();
            tokio::spawn(async move {
                let header_time = api.limits().header_read_timeout;
                if tokio::time::timeout(header_time, connected.readable())
                    .await
                    .is_err()
                {
                    return;
                }
                let Ok(id) = win::client_identity(&connected, approvers.as_deref()) else {
                    return;
                };
                let caller = Caller {
                    pid: Some(id.pid),
                    account: id.user_sid,
                    approver: id.approver,
                    restricted_token: id.sandboxed_token,
                    via: Via::Local,
                };
                api.serve_connection(connected, caller, router).await;
                drop(admission);
            });
        }
    })
}
