//! `agentsh service install | uninstall | start | stop | run`: the agentsh Windows service and its
//! Event Log source.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug)]
#[cfg_attr(
    not(windows),
    expect(
        dead_code,
        reason = "the Windows service reads these; elsewhere the command is refused"
    )
)]
pub enum ServiceCommand {
    /// Register the service (automatic start) and the "AgentSH" event source.
    Install {
        /// agentsh.exe to register (default: this executable).
        exe: Option<PathBuf>,
    },
    /// Stop and delete the service and its event source.
    Uninstall,
    /// Start the service and wait until it runs.
    Start,
    /// Stop the service and wait until it has stopped.
    Stop,
    /// Run the service (under the SCM, or in this console when started by hand).
    Run(Box<agentsh_service::runner::RunOptions>),
}

pub fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
    imp::run(command)
}

#[cfg(windows)]
mod imp {
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Duration;

    use agentsh_service::FilterPortTransport;
    use agentsh_service::runner::{self, RunOptions, Status};
    use agentsh_windows::eventlog::{self, Event, EventLog};
    use agentsh_windows::port::EXIT_DRIVER_UNAVAILABLE;
    use agentsh_windows::scm::{self, ScmError, StopSignal};

    use super::ServiceCommand;

    pub fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
        match command {
            ServiceCommand::Install { exe } => {
                let exe = match exe {
                    Some(exe) => exe,
                    None => std::env::current_exe()?,
                };
                let (installed, unsupported) = scm::install_agentsh_service(&exe)?;
                for warning in unsupported {
                    eprintln!("agentsh: service install: warning: {warning}");
                }
                eventlog::register_source(&installed).map_err(anyhow::Error::msg)?;
                println!(
                    "service `{}` installed: `{}` copied to `{}` (writable by SYSTEM and Administrators only), started at boot after the driver's service `agentsh`, restarted by the SCM if it fails; next: `agentsh service start`",
                    scm::SERVICE_NAME,
                    exe.display(),
                    installed.display()
                );
            }
            ServiceCommand::Uninstall => {
                scm::delete(scm::SERVICE_NAME, "service")?;
                eventlog::unregister_source().map_err(anyhow::Error::msg)?;
                println!("service `{}` removed", scm::SERVICE_NAME);
            }
            ServiceCommand::Start => {
                scm::start(scm::SERVICE_NAME, "service")?;
                println!("service `{}` running", scm::SERVICE_NAME);
            }
            ServiceCommand::Stop => {
                scm::stop(scm::SERVICE_NAME, "service")?;
                println!("service `{}` stopped", scm::SERVICE_NAME);
            }
            ServiceCommand::Run(options) => return run_service(*options),
        }
        Ok(ExitCode::SUCCESS)
    }

    fn run_service(options: RunOptions) -> anyhow::Result<ExitCode> {
        let body = options.clone();
        match scm::run_as_service(move |stop| {
            serve(body.clone(), Stop::Scm(stop), true).map_err(|e| e.to_string())
        }) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(ScmError::NotAService) => match serve(options, Stop::CtrlC, false) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(ServeError::DriverMissing(text)) => {
                    eprintln!("agentsh: service: {text}");
                    eprintln!("agentsh: service: exit code {EXIT_DRIVER_UNAVAILABLE}");
                    Ok(ExitCode::from(EXIT_DRIVER_UNAVAILABLE))
                }
                Err(ServeError::Other(text)) => Err(anyhow::anyhow!("service: {text}")),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// What ends the service: the SCM's stop request, or Ctrl-C in a console.
    enum Stop {
        Scm(StopSignal),
        CtrlC,
    }

    impl Stop {
        async fn requested(self) {
            match self {
                Stop::Scm(signal) => {
                    let waited = tokio::task::spawn_blocking(move || {
                        while !signal.wait(Duration::from_secs(3600)) {}
                    })
                    .await;
                    if let Err(e) = waited {
                        tracing::error!(error = %e, "stop-request watcher failed; stopping");
                    }
                }
                Stop::CtrlC => {
                    if let Err(e) = tokio::signal::ctrl_c().await {
                        tracing::error!(error = %e, "cannot watch for Ctrl-C; stop with Ctrl-Break");
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    #[derive(Debug)]
    enum ServeError {
        DriverMissing(String),
        Other(String),
    }

    impl std::fmt::Display for ServeError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                ServeError::DriverMissing(t) | ServeError::Other(t) => f.write_str(t),
            }
        }
    }

    /// The Event Log record for a status report, if an administrator must see it.
    fn status_record(status: &Status) -> Option<Event> {
        let detail = status.to_string();
        match status {
            Status::Connected { .. } | Status::Reconnected { .. } => {
                Some(Event::ServiceStarted { detail })
            }
            Status::Disconnected { .. } => Some(Event::DriverUnavailable { reason: detail }),
            Status::Stopped => Some(Event::ServiceStopped { detail }),
            Status::ApiUnavailable { .. } | Status::ApiProblem { .. } => {
                Some(Event::ApiUnavailable { reason: detail })
            }
            _ => None,
        }
    }

    /// The volume map's source: the volume manager's devices, drive letters and folder mount
    /// points, through the same `VolumeMap::from_mount_points` as the emulator's table.
    fn system_volumes() -> Result<agentsh_policy::filepath::VolumeMap, String> {
        let (volumes, skipped) = agentsh_windows::volumes::mount_points()?;
        for warning in skipped {
            tracing::warn!(%warning, "volume left out of the volume map");
        }
        let (map, errors) = agentsh_policy::filepath::VolumeMap::from_mount_points(volumes);
        for error in errors {
            tracing::warn!(%error, "mount point left out of the volume map");
        }
        Ok(map)
    }

    /// The first connection to the driver's port. Under the SCM (`wait`) the filter is loaded
    /// first if nothing has loaded it (`FilterLoad`; the SCM normally started it as this service's
    /// dependency) and the port is tried again with backoff while the SCM sees START_PENDING;
    /// in a console the first failure is the answer.
    async fn first_connection(wait: bool) -> Result<FilterPortTransport, ServeError> {
        if wait && let Err(e) = agentsh_windows::driver::load() {
            tracing::warn!(error = %e, "FilterLoad(agentsh) failed; waiting for the port anyway");
        }
        let retry = agentsh_windows::service::StartRetry::default();
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let e = match FilterPortTransport::connect() {
                Ok(t) => return Ok(t),
                Err(e) => e,
            };
            let delay = if wait {
                retry.delay(attempt, started.elapsed())
            } else {
                None
            };
            let Some(delay) = delay else {
                let text = if wait {
                    format!(
                        "{e} (still failing after {} s)",
                        started.elapsed().as_secs()
                    )
                } else {
                    e.to_string()
                };
                return Err(if e.is_driver_missing() {
                    ServeError::DriverMissing(text)
                } else {
                    ServeError::Other(text)
                });
            };
            if attempt == 0 {
                tracing::warn!(error = %e, "the driver's port is not there yet; waiting for it");
            }
            scm::report_start_progress();
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The service body: connect to the driver (handshake and exclusion of this process come
    /// first, before anything it does could be intercepted), then run the policy service —
    /// decisions, approvals API, policy reload, reconnects — until stopped. Decisions an
    /// administrator must see and fail-mode transitions go to the Event Log as well. Under the
    /// SCM the service reports RUNNING only once it serves the port.
    fn serve(mut options: RunOptions, stop: Stop, wait: bool) -> Result<(), ServeError> {
        let log = match EventLog::open() {
            Ok(log) => Some(Arc::new(log)),
            Err(e) => {
                tracing::warn!(error = %e, "event log unavailable; events go to the configured sinks only");
                None
            }
        };
        let record = {
            let log = log.clone();
            move |event: &Event| {
                if let Some(log) = &log
                    && let Err(e) = log.report(event)
                {
                    tracing::warn!(error = %e, "event log write failed");
                }
            }
        };
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| ServeError::Other(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(async move {
            // The API pipe's name is the service's before it waits for the driver (at boot the
            // driver may load later): nobody can create it in the meantime. If it cannot be
            // created now, the runner tries again, reports it and keeps retrying.
            if let Ok(listener) = agentsh_service::api::bind_local(
                &options.api_socket,
                options.approvers_group.as_deref(),
            ) && let Ok(mut slot) = options.api_listener.lock()
            {
                *slot = Some(listener);
            }
            let first = match first_connection(wait).await {
                Ok(t) => t,
                Err(e) => {
                    record(&Event::DriverUnavailable {
                        reason: e.to_string(),
                    });
                    return Err(e);
                }
            };
            options.volumes = Some(Arc::new(system_volumes));
            options.image_lookup = Some(Arc::new(agentsh_windows::process_image_path));
            // An approval's command line and the images the kernel did not report, read from
            // the processes themselves.
            options.processes = Some(Arc::new(|pid| {
                agentsh_windows::process::read(pid).map(|t| {
                    agentsh_service::processes::ProcessFacts {
                        image: t.image,
                        command_line: t.command_line,
                    }
                })
            }));
            if let Some(log) = log.clone() {
                options.deliver_to.push(Arc::new(move |ev| {
                    crate::eventlog_map::record(ev).is_none_or(|r| log.report(&r).is_ok())
                }));
            }
            let console = options.status.clone();
            options.status = Arc::new(move |s: &Status| {
                if matches!(s, Status::Connected { .. }) {
                    scm::report_running();
                }
                console(s);
                if let Some(r) = status_record(s) {
                    record(&r);
                }
            });
            let reconnect = || async { FilterPortTransport::connect().map_err(|e| e.to_string()) };
            runner::run(options, first, reconnect, stop.requested())
                .await
                .map_err(|e| ServeError::Other(e.to_string()))
        })
    }
}

#[cfg(not(windows))]
mod imp {
    use std::process::ExitCode;

    use super::ServiceCommand;

    pub fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "service {}: the Windows service needs Windows; this is {}",
            match command {
                ServiceCommand::Install { .. } => "install",
                ServiceCommand::Uninstall => "uninstall",
                ServiceCommand::Start => "start",
                ServiceCommand::Stop => "stop",
                ServiceCommand::Run(_) => "run",
            },
            std::env::consts::OS
        )
    }
}
