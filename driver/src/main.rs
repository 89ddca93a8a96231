//! agentsh.sys: registers the registry callback, the file-system minifilter, the process notify
//! routine and the `\AgentshPort` communication port, and runs every intercepted operation through
//! agentsh-kcore. Decisions live in kcore; this crate is the kernel glue.
#![no_std]
#![no_main]

extern crate alloc;

mod altitude;
mod broker;
mod entry;
mod ffi;
mod file;
mod flow;
mod handles;
mod kernel;
mod port;
mod registry;
mod sessions;
mod state;

pub use entry::DriverEntry;
