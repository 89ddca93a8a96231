//! `agentsh driver install | uninstall | load | unload | status`: the guide's install, verify and
//! uninstall steps for agentsh.sys.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::api_client::ApiArgs;

#[derive(Debug, Subcommand)]
pub enum DriverCommand {
    /// Copy agentsh.sys to System32\drivers and register the filter with its instance values.
    Install {
        /// The signed agentsh.sys to install.
        #[arg(long = "sys", value_name = "PATH", default_value = "agentsh.sys")]
        sys: PathBuf,
        /// The minifilter instance's altitude (FSFilter Activity Monitor, 360000-389999); the
        /// driver's registry callback registers at the same value. Use the one Microsoft assigned
        /// to your deployment; the default is unallocated (docs/driver.md, "Altitude").
        #[arg(long, value_name = "ALTITUDE", default_value = agentsh_windows::driver::DEFAULT_ALTITUDE, value_parser = agentsh_windows::driver::parse_altitude)]
        altitude: String,
    },
    /// Unload the filter, delete its service registration and the image.
    Uninstall,
    /// FilterLoad (like `fltmc load agentsh`).
    Load,
    /// FilterUnload (like `fltmc unload agentsh`).
    Unload,
    /// Filters and instances like `fltmc`, test signing, connection, fail mode and metrics
    /// (from the agentsh service's API when the service holds the port).
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(command: DriverCommand) -> anyhow::Result<ExitCode> {
    imp::run(command)
}

/// The status lines for a port the service holds: its fail mode and the driver's counters, read
/// from the service's Prometheus text (`GET /v1/metrics`).
#[cfg_attr(
    all(not(windows), not(test)),
    expect(dead_code, reason = "`driver status` runs on Windows")
)]
fn service_view(metrics: &str) -> String {
    let mut out = String::new();
    let mut counters = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        if name == "agentsh_fail_mode_closed" {
            let mode = if value.trim() == "1" {
                "closed"
            } else {
                "open"
            };
            out.push_str(&format!(
                "fail mode:     {mode} (as configured by the service)\n"
            ));
        } else if let Some(counter) = name.strip_prefix("agentsh_driver_") {
            counters.push((counter.to_owned(), value.trim().to_owned()));
        }
    }
    if counters.is_empty() {
        out.push_str("metrics:       the service could not read the driver's counters\n");
    } else {
        out.push_str("metrics (driver, through the service):\n");
        for (name, value) in counters {
            out.push_str(&format!("  {name:<32} {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::service_view;

    #[test]
    fn the_services_metrics_become_fail_mode_and_driver_counters() {
        let text = "# HELP agentsh_fail_mode_closed x\n# TYPE agentsh_fail_mode_closed gauge\nagentsh_fail_mode_closed 1\nagentsh_approvals_pending 0\nagentsh_driver_cache_hits_total 90\nagentsh_driver_cache_misses_total 10\nagentsh_driver_cache_hit_rate_percent 90.00\n";
        let view = service_view(text);
        assert!(view.contains("fail mode:     closed"), "{view}");
        assert!(view.contains("cache_hits_total"), "{view}");
        assert!(
            view.contains("cache_hit_rate_percent           90.00"),
            "{view}"
        );
        assert!(!view.contains("approvals_pending"), "{view}");
    }

    #[test]
    fn a_service_without_driver_counters_says_so() {
        let view = service_view("agentsh_fail_mode_closed 0\n");
        assert!(view.contains("fail mode:     open"), "{view}");
        assert!(
            view.contains("could not read the driver's counters"),
            "{view}"
        );
    }
}

#[cfg(windows)]
mod imp {
    use std::process::ExitCode;

    use agentsh_windows::driver::{self, Connection};
    use agentsh_windows::port::EXIT_DRIVER_UNAVAILABLE;

    use crate::api_client::ApiClient;

    use super::DriverCommand;

    pub fn run(command: DriverCommand) -> anyhow::Result<ExitCode> {
        match command {
            DriverCommand::Install { sys, altitude } => {
                let target = driver::install(&sys, &altitude)?;
                println!(
                    "installed `{}` at altitude {altitude}; next: `agentsh driver load`, then `agentsh driver status`",
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
            DriverCommand::Status { api } => {
                let status = driver::query_status();
                print!("{}", status.render());
                if matches!(status.connection, Connection::HeldByService) {
                    // The port has one client, the service: its API has the rest.
                    match ApiClient::new(&api).and_then(|c| c.get("/v1/metrics")) {
                        Ok(text) => print!("{}", super::service_view(&text)),
                        Err(e) => println!(
                            "fail mode:     unknown (the service's metrics are unavailable: {e})"
                        ),
                    }
                }
                let reachable = matches!(
                    status.connection,
                    Connection::Connected(_) | Connection::HeldByService
                );
                if status.loaded_without_instances() {
                    eprintln!(
                        "agentsh: driver `{}` is loaded but attached to no volume, so it filters no file operation (exit code {EXIT_DRIVER_UNAVAILABLE}); next step: `fltmc instances` names the filter at its altitude, then `agentsh driver uninstall` and `agentsh driver install --altitude ALTITUDE` at a free one",
                        driver::FILTER_NAME
                    );
                    return Ok(ExitCode::from(EXIT_DRIVER_UNAVAILABLE));
                }
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
                DriverCommand::Status { .. } => "status",
            },
            std::env::consts::OS
        );
        Ok(ExitCode::from(EXIT_DRIVER_UNAVAILABLE))
    }
}
