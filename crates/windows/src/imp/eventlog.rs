//! The Event Log sink: `RegisterEventSourceW("AgentSH")` + `ReportEventW`, and the source's
//! registration (the message file is agentsh.exe, which embeds the message table).

use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW,
};

use super::registry::{self, Value};
use super::util::{last_error, wide};
use crate::eventlog::{Event, LOG, SOURCE};

fn source_key() -> String {
    format!("SYSTEM\\CurrentControlSet\\Services\\EventLog\\{LOG}\\{SOURCE}")
}

/// Registers the source in the System log with `message_file` (agentsh.exe) as its message table.
pub fn register_source(message_file: &Path) -> Result<(), String> {
    let files = crate::eventlog::message_files(&message_file.to_string_lossy());
    registry::set_values(
        &source_key(),
        &[
            ("EventMessageFile", Value::ExpandStr(&files)),
            // Error, warning and information.
            ("TypesSupported", Value::Dword(7)),
        ],
    )
    .map_err(|f| {
        format!(
            "event source `{SOURCE}`: {}: {} (win32 error {})",
            f.step, f.message, f.code
        )
    })
}

/// Removes the source registration.
pub fn unregister_source() -> Result<(), String> {
    registry::delete_tree(&source_key()).map_err(|f| {
        format!(
            "event source `{SOURCE}`: {}: {} (win32 error {})",
            f.step, f.message, f.code
        )
    })
}

/// An open event source.
#[derive(Debug)]
pub struct EventLog {
    handle: HANDLE,
}

// SAFETY: the handle from RegisterEventSourceW is owned by this value alone and is not tied to
// the thread that opened it; ReportEventW may be called with it from any thread.
unsafe impl Send for EventLog {}
// SAFETY: ReportEventW is safe to call concurrently on one event source handle; `report` takes
// `&self` and changes no state of the value.
unsafe impl Sync for EventLog {}

impl EventLog {
    /// Opens the "AgentSH" source on this machine.
    pub fn open() -> Result<Self, String> {
        let source = wide(SOURCE);
        // SAFETY: `source` is NUL-terminated; a null server name means the local machine.
        let handle = unsafe { RegisterEventSourceW(null(), source.as_ptr()) };
        if handle.is_null() {
            let (code, text) = last_error();
            return Err(format!(
                "event source `{SOURCE}` cannot be opened: {text} (win32 error {code})"
            ));
        }
        Ok(EventLog { handle })
    }

    /// Writes one record.
    pub fn report(&self, event: &Event) -> Result<(), String> {
        let strings: Vec<Vec<u16>> = event.strings().iter().map(wide).collect();
        let pointers: Vec<*const u16> = strings.iter().map(|s| s.as_ptr()).collect();
        // SAFETY: the insertion strings outlive the call; no binary data is attached.
        let ok = unsafe {
            ReportEventW(
                self.handle,
                event.severity() as u16,
                0,
                event.id(),
                null_mut(),
                pointers.len() as u16,
                0,
                pointers.as_ptr(),
                null(),
            )
        };
        if ok == 0 {
            let (code, text) = last_error();
            return Err(format!(
                "event {:#x} not written to `{SOURCE}`: {text} (win32 error {code})",
                event.id()
            ));
        }
        Ok(())
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // SAFETY: the handle came from RegisterEventSourceW and is released once.
        unsafe { DeregisterEventSource(self.handle) };
    }
}
