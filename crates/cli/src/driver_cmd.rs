//! `agentsh driver install | uninstall | load | unload | status`: the guide's install, verify and
//! uninstall steps for agentsh.sys.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DriverCommand {
    /// Copy agentsh.sys to System32\drivers and register the filter with its instance values.
    Install {
        /// The signed agentsh.sys to install.
        #[arg(long = "sys", value_name = "PATH", default_value = "agentsh.sys")]
        sys: PathBuf,
    },
    /// Unload the filter, delete its service registration and the image.
    Uninstall,
    /// FilterLoad (like `fltmc load agentsh`).
    Load,
    /// FilterUnload (like `fltmc unload agentsh`).
    Unload,
    /// Filters and instances like `fltmc`, test signing, connection, fail mode and metrics.
    Status,
}

pub fn run(command: DriverCommand) -> anyhow::Result<ExitCode> {
    imp::run(command)
}

#[cfg(windows)]
mod imp {
    use std::process::ExitCode;

    use agentsh_windows::driver::{self, Connection};
    use agentsh_windows::port::EXIT_DRIVER_UNAVAILABLE;

    use super::DriverCommand;

    pub fn run(command: DriverCommand) -> anyhow::Result<ExitCode> {
        match command {
            DriverCommand::Install { sys } => {
                let target = driver::install(&sys)?;
                println!(
                    "installed `{}`; next: `agentsh driver load`, then `agentsh driver status`",
                    target.display()
                );
            }
            DriverCommand::Uninstall => {
                driver::uninstall()?;
                println!("driver `{}` unloaded and removed", driver::FILTER_NAME);
            }
            DriverCommand::Load => {
                driver::load()?;
                println!("driver `{}` loaded", driver::FILTER_NAME);
            }
            DriverCommand::Unload => {
                driver::unload()?;
                println!("driver `{}` unloaded", driver::FILTER_NAME);
            }
            DriverCommand::Status => {
                let status = driver::query_status();
                print!("{}", status.render());
                let reachable = matches!(
                    status.connection,
                    Connection::Connected(_) | Connection::HeldByService
                );
                if !(status.loaded() && reachable) {
                    let next = if !status.service_registered {
                        "`agentsh driver install --sys agentsh.sys`, then `agentsh driver load`, as Administrator on Windows 10/11"
                    } else if !status.loaded() {
                        "`agentsh driver load` as Administrator (see docs/deployment.md, \"Driver won't load\")"
                    } else {
                        "`agentsh service start`, or check the port's security and the service's log"
                    };
                    eprintln!(
                        "agentsh: driver `{}` is not running here (exit code {EXIT_DRIVER_UNAVAILABLE}); next step: {next}",
                        driver::FILTER_NAME
                    );
                    return Ok(ExitCode::from(EXIT_DRIVER_UNAVAILABLE));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(not(windows))]
mod imp {
    use std::process::ExitCode;

    use agentsh_windows::port::EXIT_DRIVER_UNAVAILABLE;

    use super::DriverCommand;

    pub fn run(command: DriverCommand) -> anyhow::Result<ExitCode> {
        eprintln!(
            "agentsh: driver {}: agentsh.sys is a Windows minifilter; this is {} (exit code {EXIT_DRIVER_UNAVAILABLE})",
            match command {
                DriverCommand::Install { .. } => "install",
                DriverCommand::Uninstall => "uninstall",
                DriverCommand::Load => "load",
                DriverCommand::Unload => "unload",
                DriverCommand::Status => "status",
            },
            std::env::consts::OS
        );
        Ok(ExitCode::from(EXIT_DRIVER_UNAVAILABLE))
    }
}
