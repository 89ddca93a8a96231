//! Windows glue for agentsh: filter port transport, sandbox, Event Log, service control manager and
//! minifilter management. On other systems only the portable parts compile (configuration, journals,
//! command-line quoting, error explanations, status rendering), so they are tested everywhere.

pub mod capture;
pub mod cmdline;
pub mod driver;
pub mod environment;
pub mod eventlog;
pub mod grants;
pub mod network;
pub mod pipe;
pub mod port;
pub mod process;
pub mod sandbox;
pub mod secure;
pub mod service;
pub mod sid;
pub mod toast;
pub mod volumes;

#[cfg(windows)]
mod imp;

#[cfg(windows)]
pub use imp::probe;
#[cfg(windows)]
pub use imp::scm;

#[cfg(windows)]
pub use imp::driver::DriverError;

#[cfg(windows)]
pub use imp::util::host_is_wine;

/// The image of a running process in NT form, for the service's image lookup.
#[cfg(windows)]
pub use imp::process::image_path as process_image_path;
