//! A running process's image path, named as the minifilter names it.

use std::os::windows::io::AsRawHandle;

use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_NAME_NATIVE, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};

use super::util::owned;

/// The longest path `QueryFullProcessImageNameW` is given room for (UNICODE_STRING's limit).
const PATH_MAX_UNITS: usize = 32_768;

/// The image of process `pid` in NT form (`\Device\HarddiskVolume3\...`,
/// `QueryFullProcessImageNameW` with `PROCESS_NAME_NATIVE`, the spelling the kernel's process
/// notifications use); `None` when the process is gone or may not be queried.
pub fn image_path(pid: u32) -> Option<String> {
    // SAFETY: no pointers; the returned handle (or NULL) is taken over by `owned` at once.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let handle = owned(handle)?;
    let mut buf = vec![0u16; PATH_MAX_UNITS];
    let mut len = PATH_MAX_UNITS as u32;
    // SAFETY: `handle` is a live process handle with query-limited access; `buf` holds `len`
    // units and `len` is written back with the units used (without the terminating NUL).
    let ok = unsafe {
        QueryFullProcessImageNameW(
            handle.as_raw_handle(),
            PROCESS_NAME_NATIVE,
            buf.as_mut_ptr(),
            &mut len,
        )
    };
    if ok == 0 {
        return None;
    }
    buf.truncate((len as usize).min(PATH_MAX_UNITS));
    Some(String::from_utf16_lossy(&buf))
}
