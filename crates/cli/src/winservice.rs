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
    use std::time::Duration;

    use agentsh_windows::driver;
    use agentsh_windows::eventlog::{self, Event, EventLog};
    use agentsh_windows::port::{EXIT_DRIVER_UNAVAILABLE, FilterPort, PORT_NAME};
    use agentsh_windows::scm::{self, ScmError, StopSignal};

    use super::ServiceCommand;

    pub fn run(command: ServiceCommand) -> anyhow::Result<ExitCode> {
        match command {
            ServiceCommand::Install { exe } => {
                let exe = match exe {
                    Some(exe) => exe,
                    None => std::env::current_exe()?,
                };
                scm::install_agentsh_service(&exe)?;
                eventlog::register_source(&exe).map_err(anyhow::Error::msg)?;
                println!(
                    "service `{}` installed (`{}` service run); next: `agentsh service start`",
                    scm::SERVICE_NAME,
                    exe.display()
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
            ServiceCommand::Run(_options) => return run_service(),
        }
        Ok(ExitCode::SUCCESS)
    }

    fn run_service() -> anyhow::Result<ExitCode> {
        match scm::run_as_service(|stop| serve(stop).map_err(|e| e.to_string())) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(ScmError::NotAService) => match serve(StopSignal::default()) {
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

    /// The service body: connect to the driver, handshake and exclude this process before anything
    /// it does could be intercepted, then serve until stopped.
    fn serve(stop: StopSignal) -> Result<(), ServeError> {
        let log = EventLog::open().map_err(|e| {
            tracing::warn!(error = %e, "event log unavailable; events go to the console log only");
        });
        let record = |event: Event| {
            if let Ok(log) = &log
                && let Err(e) = log.report(&event)
            {
                tracing::warn!(error = %e, "event log write failed");
            }
        };
        let port = match FilterPort::connect(PORT_NAME, &[]) {
            Ok(port) => port,
            Err(e) => {
                let text = e.to_string();
                record(Event::DriverUnavailable {
                    reason: text.clone(),
                });
                return Err(if e.is_driver_missing() {
                    ServeError::DriverMissing(text)
                } else {
                    ServeError::Other(text)
                });
            }
        };
        let mut send =
            |input: &[u8], output: &mut [u8]| port.send(input, output).map_err(|e| e.to_string());
        driver::hello(&mut send).map_err(ServeError::Other)?;
        driver::exclude_self(&mut send).map_err(ServeError::Other)?;
        record(Event::ServiceStarted {
            detail: format!(
                "connected to `{PORT_NAME}`; this process is excluded from interception"
            ),
        });
        // Holding the port without answering would stall every intercepted operation until the
        // driver's timeout; so without the policy loop the service says so and disconnects, which
        // puts the driver in its configured fail mode at once.
        let outcome = if stop.wait(Duration::ZERO) {
            Ok(())
        } else {
            Err(ServeError::Other(
                "the policy loop (agentsh-service) is not linked into this build: disconnecting so the driver applies its fail mode".into(),
            ))
        };
        record(Event::ServiceStopped {
            detail: match &outcome {
                Ok(()) => "stop requested".into(),
                Err(e) => e.to_string(),
            },
        });
        outcome
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
