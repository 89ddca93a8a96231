//! The real service as the emulator's session registrar, for load runs through the whole path
//! (emulator → port → service → policy → events → reply).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use agentsh_emulator::emulator::Emulator;
use agentsh_emulator::regpath::DEFAULT_USER_SID;
use agentsh_emulator::replay::{RegistrarFuture, SessionRegistrar};
use agentsh_policy::{Policy, SessionContext};
use agentsh_service::events::{EventPipeline, Format};
use agentsh_service::{Service, SocketTransport};

/// The service, with the sessions it registered by root process.
pub struct ServiceRegistrar {
    pub service: Arc<Service<SocketTransport>>,
    sessions: Mutex<HashMap<u32, String>>,
}

impl SessionRegistrar for ServiceRegistrar {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_> {
        let ctx = SessionContext::new(Some(app_name), Some(workspace), Some(DEFAULT_USER_SID));
        Box::pin(async move {
            let ctx = ctx.map_err(|e| e.to_string())?;
            let info = self
                .service
                .register_session(root_pid, ctx, false)
                .await
                .map_err(|e| e.to_string())?;
            self.sessions
                .lock()
                .map_err(|e| e.to_string())?
                .insert(root_pid, info.id.clone());
            Ok(())
        })
    }

    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_> {
        Box::pin(async move {
            let id = self
                .sessions
                .lock()
                .map_err(|e| e.to_string())?
                .remove(&root_pid)
                .ok_or_else(|| format!("no session for root process {root_pid}"))?;
            self.service
                .unregister_session(&id)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// An emulator on `dir/agentsh.sock` and the real service connected to it, deciding with the
/// embedded default policy and writing JSON-lines events to nowhere (their encoding is paid).
pub async fn emulator_and_service(dir: &Path) -> io::Result<(Arc<Emulator>, ServiceRegistrar)> {
    let policy = Policy::embedded_default().map_err(|e| io::Error::other(e.to_string()))?;
    emulator_and_service_with(dir, &policy).await
}

/// [`emulator_and_service`] deciding with `policy`.
pub async fn emulator_and_service_with(
    dir: &Path,
    policy: &Policy,
) -> io::Result<(Arc<Emulator>, ServiceRegistrar)> {
    let socket = dir.join("agentsh.sock");
    let emulator = Arc::new(Emulator::start(&socket, 7)?);
    let events = EventPipeline::spawn(4096, Format::Jsonl, Box::new(io::sink()));
    let transport = SocketTransport::connect(&socket).await?;
    let service = Service::start(transport, policy, events)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok((
        emulator,
        ServiceRegistrar {
            service: Arc::new(service),
            sessions: Mutex::default(),
        },
    ))
}
