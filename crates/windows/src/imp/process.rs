//! A running process's image path (named as the minifilter names it) and command line, read with
//! `PROCESS_QUERY_LIMITED_INFORMATION` only (see `crate::process`).

use std::os::windows::io::AsRawHandle;

use windows_sys::Wdk::System::Threading::{
    NtQueryInformationProcess, ProcessCommandLineInformation,
};
use windows_sys::Win32::Foundation::UNICODE_STRING;
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_NAME_NATIVE, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};

use super::util::owned;
use crate::process::ProcessText;

/// The longest path `QueryFullProcessImageNameW` is given room for (UNICODE_STRING's limit).
const PATH_MAX_UNITS: usize = 32_768;

/// The longest command line read (Windows allows 32,767 characters).
const MAX_COMMAND_LINE_BYTES: u32 = 64 * 1024 + 64;

/// The image of process `pid` in NT form (`\Device\HarddiskVolume3\...`,
/// `QueryFullProcessImageNameW` with `PROCESS_NAME_NATIVE`, the spelling the kernel's process
/// notifications use); `None` when the process is gone or may not be queried.
pub fn image_path(pid: u32) -> Option<String> {
    // SAFETY: no pointers; the returned handle (or NULL) is taken over by `owned` at once.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let handle = owned(handle)?;
    image(handle.as_raw_handle())
}

/// What can be read of process `pid` (its image in NT form, as [`image_path`], and its command
/// line); `None` when it cannot be opened (gone, or refused).
pub fn read(pid: u32) -> Option<ProcessText> {
    // SAFETY: plain call; the returned handle is owned below.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let process = owned(raw)?;
    let handle = process.as_raw_handle();
    Some(ProcessText {
        image: image(handle),
        command_line: command_line(handle),
    })
}

fn image(handle: *mut core::ffi::c_void) -> Option<String> {
    let mut buf = vec![0u16; PATH_MAX_UNITS];
    let mut len = PATH_MAX_UNITS as u32;
    // SAFETY: `handle` is a live process handle with query-limited access; `buf` holds `len`
    // units and `len` is written back with the units used (without the terminating NUL).
    let ok = unsafe {
        QueryFullProcessImageNameW(handle, PROCESS_NAME_NATIVE, buf.as_mut_ptr(), &mut len)
    };
    if ok == 0 {
        return None;
    }
    buf.truncate((len as usize).min(PATH_MAX_UNITS));
    Some(String::from_utf16_lossy(&buf))
}

fn command_line(handle: *mut core::ffi::c_void) -> Option<String> {
    // The answer is a UNICODE_STRING followed by its text, in one buffer (u64 elements keep the
    // header aligned).
    let mut buf = vec![0u64; usize::try_from(MAX_COMMAND_LINE_BYTES).ok()? / 8];
    let mut returned = 0u32;
    // SAFETY: `buf` is MAX_COMMAND_LINE_BYTES long and 8-byte aligned; the call writes at most
    // that many bytes and the length it needed into `returned`.
    let status = unsafe {
        NtQueryInformationProcess(
            handle,
            ProcessCommandLineInformation,
            buf.as_mut_ptr().cast(),
            MAX_COMMAND_LINE_BYTES,
            &mut returned,
        )
    };
    if status < 0 {
        return None;
    }
    // SAFETY: on success the buffer starts with an initialized UNICODE_STRING (aligned: u64s).
    let header: UNICODE_STRING = unsafe { core::ptr::read(buf.as_ptr().cast::<UNICODE_STRING>()) };
    let units = usize::from(header.Length / 2);
    if header.Buffer.is_null() || units == 0 {
        return Some(String::new());
    }
    let start = header.Buffer as usize;
    let base = buf.as_ptr() as usize;
    let end = base + buf.len() * 8;
    // The text must lie inside the buffer the call filled: never read elsewhere.
    if start < base || start.checked_add(units * 2)? > end || !start.is_multiple_of(2) {
        return None;
    }
    // SAFETY: `start .. start + units * 2` was just checked to lie inside `buf`, 2-byte aligned.
    let text = unsafe { core::slice::from_raw_parts(header.Buffer, units) };
    Some(String::from_utf16_lossy(text))
}
