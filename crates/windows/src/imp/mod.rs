//! Windows implementations behind the portable types: every FFI call of the crate lives below here.

pub mod driver;
pub mod eventlog;
pub mod pipe;
pub mod port;
pub mod probe;
pub mod process;
mod registry;
pub mod sandbox;
pub mod scm;
pub mod secure;
pub(crate) mod security;
pub mod toast;
pub mod util;
pub mod volumes;
