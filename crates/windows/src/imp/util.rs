//! Small helpers shared by the Windows modules: UTF-16 strings, the last error, owned handles.

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::{GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

/// `s` as a NUL-terminated UTF-16 string.
pub fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(std::iter::once(0)).collect()
}

/// The calling thread's last Win32 error and its text.
pub fn last_error() -> (u32, String) {
    // SAFETY: GetLastError only reads thread-local state.
    let code = unsafe { GetLastError() };
    (code, error_text(code))
}

/// The system's text for a Win32 error code (without a trailing line break or period).
pub fn error_text(code: u32) -> String {
    let text = std::io::Error::from_raw_os_error(code as i32).to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.trim_end_matches(['.', '\r', '\n', ' ']).to_lowercase()
}

/// Takes ownership of a handle returned by a Win32 call; `None` for NULL or INVALID_HANDLE_VALUE.
pub fn owned(handle: HANDLE) -> Option<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return None;
    }
    // SAFETY: the caller passes a handle it just received and owns; nothing else will close it.
    Some(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// Whether this process runs under Wine (its ntdll exports `wine_get_version`; Windows' does
/// not). Tests use it to tell what Wine does not implement from a failure.
pub fn host_is_wine() -> bool {
    let name = wide("ntdll.dll");
    // SAFETY: `name` is NUL-terminated; ntdll is loaded in every process.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    // SAFETY: `ntdll` is a loaded module; the export name is NUL-terminated.
    unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}
