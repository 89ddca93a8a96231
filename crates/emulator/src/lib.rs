//! agentsh driver emulator: plays agentsh.sys over a loopback socket. Simulated processes replay a
//! trace, each operation goes through the kernel core exactly as in the driver, and every outcome is
//! reported as the kernel would (success or STATUS_ACCESS_DENIED) with its latency.
// The emulator serves a Unix domain socket and reads SO_PEERCRED: it exists on Unix only.
#![cfg(unix)]

pub mod emulator;
pub mod frame;
pub mod hostile;
pub mod latency;
pub mod load;
pub mod port;
pub mod process;
pub mod registrar;
pub mod regpath;
pub mod replay;
pub mod request;
pub mod scenarios;
pub mod table;
pub mod trace;
pub mod volumes;
