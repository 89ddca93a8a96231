//! Replays a trace through an [`Emulator`]: starts and exits simulated processes, registers sessions
//! through the service (never directly in the kernel core: the port admits one client, the service),
//! performs each operation and reports its outcome, status and latency per line.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::emulator::Emulator;
use crate::process::{ProcessError, ProcessTable};
use crate::regpath::kernel_key_path;
use crate::request::{OperationRequest, Reason, Target, Verdict};
use crate::trace::{Action, Expect, Trace, TraceLine, file_op_name, registry_op_name};
use crate::volumes::VolumeTable;

/// A future returned by a [`SessionRegistrar`].
pub type RegistrarFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Registers sandbox sessions the way a real deployment does: through the service, which sends the
/// registration to the driver. The demo passes the service's local API.
pub trait SessionRegistrar: Send + Sync {
    fn register(&self, root_pid: u32, workspace: &str, app_name: &str) -> RegistrarFuture<'_>;
    fn unregister(&self, root_pid: u32) -> RegistrarFuture<'_>;
}

/// The outcome of one operation line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineReport {
    pub line: usize,
    pub process: String,
    pub pid: u32,
    pub operation: &'static str,
    /// The key (kernel form) or file path, with `\value` or `-> new name` where the line has one.
    pub target: String,
    pub verdict: Verdict,
    /// The NTSTATUS the caller saw, as `0x00000000` or `0xC0000022`.
    pub status: String,
    pub reason: Reason,
    pub latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl LineReport {
    /// True unless the line named an outcome and got another.
    pub fn as_expected(&self) -> bool {
        self.expected.is_none_or(|e| e == self.verdict)
    }
}

/// A trace line that could not be carried out (as opposed to an operation that was denied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct ReplayError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

/// Replays `trace` (named `source_name` in errors), calling `on_line` with each operation's report
/// as soon as it completes.
pub async fn replay(
    emulator: &Emulator,
    registrar: &dyn SessionRegistrar,
    source_name: &str,
    trace: &Trace,
    mut on_line: impl FnMut(&LineReport),
) -> Result<Vec<LineReport>, ReplayError> {
    let mut processes = ProcessTable::new();
    let mut reports = Vec::new();
    for line in &trace.lines {
        let err = |message: String| ReplayError {
            source_name: source_name.to_owned(),
            line: line.line,
            message,
        };
        let process_err = |e: ProcessError| err(e.to_string());
        let name = line.process.as_deref().unwrap_or_default();
        match &line.action {
            Action::Sleep(d) => tokio::time::sleep(*d).await,
            Action::Start {
                pid,
                parent,
                image,
                user_sid,
                command_line,
            } => {
                let p = processes
                    .start(name, *pid, parent.as_deref(), image, user_sid.as_deref())
                    .map_err(process_err)?;
                emulator
                    .describe_process(p.pid, &p.image, command_line.as_deref())
                    .map_err(|e| err(format!("describing `{name}` to the service: {e}")))?;
                emulator.process_created(p.pid, p.creator, &p.image);
            }
            Action::Exit => {
                let p = processes.exit(name).map_err(process_err)?;
                emulator.process_exited(p.pid);
            }
            Action::RegisterSession {
                workspace,
                app_name,
            } => {
                let pid = processes.get(name).map_err(process_err)?.pid;
                registrar
                    .register(pid, workspace, app_name)
                    .await
                    .map_err(|e| err(format!("registering a session for `{name}`: {e}")))?;
            }
            Action::UnregisterSession => {
                let pid = processes.get(name).map_err(process_err)?.pid;
                registrar
                    .unregister(pid)
                    .await
                    .map_err(|e| err(format!("unregistering the session of `{name}`: {e}")))?;
            }
            Action::Registry(_) | Action::File(_) => {
                let p = processes.get(name).map_err(process_err)?.clone();
                let (request, operation, target) =
                    request_for(line, p.pid, &p.user_sid, emulator.volumes()).map_err(err)?;
                let outcome = emulator.perform(&request).await;
                let report = LineReport {
                    line: line.line,
                    process: name.to_owned(),
                    pid: p.pid,
                    operation,
                    target,
                    verdict: outcome.verdict,
                    status: format!("{:#010X}", outcome.status()).replace("0X", "0x"),
                    reason: outcome.reason,
                    latency_us: u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX),
                    expected: line.expect.map(|e| match e {
                        Expect::Allow => Verdict::Allow,
                        Expect::Deny => Verdict::Deny,
                    }),
                    label: line.label.clone(),
                };
                on_line(&report);
                reports.push(report);
            }
        }
    }
    Ok(reports)
}

/// Builds the kernel's view of an operation line for process `pid` running as `user_sid`; file
/// paths are named as the filter manager names them, through the machine's `volumes`.
pub fn request_for(
    line: &TraceLine,
    pid: u32,
    user_sid: &str,
    volumes: &VolumeTable,
) -> Result<(OperationRequest, &'static str, String), String> {
    let (target, operation, shown) = match &line.action {
        Action::Registry(r) => {
            let key = kernel_key_path(&r.key, user_sid).map_err(|e| format!("field `key`: {e}"))?;
            let shown = match (&r.new_name, r.value.is_empty()) {
                (Some(new), _) => format!("{key} -> {new}"),
                (None, true) => key.clone(),
                (None, false) => format!("{key}\\{}", r.value),
            };
            let target = Target::registry(
                r.op,
                &key,
                &r.value,
                r.new_name.as_deref(),
                r.value_type,
                r.data_size,
            );
            (target, registry_op_name(r.op), shown)
        }
        Action::File(f) => {
            let path = volumes
                .device_path(&f.path)
                .map_err(|e| format!("field `path`: {e}"))?;
            let new_path = f
                .new_path
                .as_deref()
                .map(|p| volumes.device_path(p))
                .transpose()
                .map_err(|e| format!("field `new_path`: {e}"))?;
            let shown = match &new_path {
                Some(new) => format!("{path} -> {new}"),
                None => path.clone(),
            };
            (
                Target::file(f.op, &path, new_path.as_deref()),
                file_op_name(f.op),
                shown,
            )
        }
        _ => return Err("not an operation line".to_owned()),
    };
    // Names come from the trace (an attacker's choice in a replayed capture): shown with every
    // dangerous character as a visible escape.
    let shown = agentsh_winstr::name::Display(&shown).to_string();
    // One simulated thread per process: its id is derived from the process id so it is stable.
    Ok((
        OperationRequest {
            pid,
            thread_id: pid + 1,
            target,
        },
        operation,
        shown,
    ))
}
