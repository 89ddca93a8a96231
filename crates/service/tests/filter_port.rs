//! The filter-port transport on a host without agentsh.sys (Wine in CI, which has no filter manager,
//! or Windows without the driver loaded): connecting fails with the driver-missing error that names
//! the next step, so the service can exit with code 3 instead of running unconnected.
#![cfg(windows)]

use agentsh_service::FilterPortTransport;
use agentsh_service::filter_port::{EXIT_DRIVER_UNAVAILABLE, PortError};

fn check_missing(result: Result<FilterPortTransport, PortError>, port: &str) {
    let err = match result {
        Ok(transport) => panic!(
            "connected to `{}` on a host without agentsh.sys",
            transport.port_name()
        ),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(err.is_driver_missing(), "{err:?}: {text}");
    assert!(text.starts_with(&format!("driver port `{port}`")), "{text}");
    assert!(text.contains("agentsh driver install"), "{text}");
    assert!(
        matches!(
            err,
            PortError::FilterManagerUnavailable { .. } | PortError::DriverNotLoaded { .. }
        ),
        "{err:?}"
    );
    assert_eq!(EXIT_DRIVER_UNAVAILABLE, 3);
}

#[test]
fn connect_without_the_driver_says_install_and_load_it() {
    check_missing(FilterPortTransport::connect(), "\\AgentshPort");
}

#[test]
fn connect_to_a_missing_port_names_that_port() {
    check_missing(
        FilterPortTransport::connect_to("\\AgentshNoSuchPort"),
        "\\AgentshNoSuchPort",
    );
}
