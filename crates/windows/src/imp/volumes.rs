//! The volume manager calls behind [`crate::volumes`].

use std::path::Path;
use std::ptr::null;

use windows_sys::Win32::Foundation::{
    ERROR_MORE_DATA, ERROR_NO_MORE_FILES, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_BACKUP_SEMANTICS, FILE_NAME_NORMALIZED, FILE_READ_ATTRIBUTES,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FindFirstVolumeW, FindNextVolumeW,
    FindVolumeClose, GetFinalPathNameByHandleW, GetVolumePathNamesForVolumeNameW, OPEN_EXISTING,
    QueryDosDeviceW, VOLUME_NAME_NT,
};

use super::util::{last_error, owned, wide};
use crate::volumes::{check_nt_path, dos_device_name, multi_sz};

/// Closes a volume search handle.
struct VolumeSearch(HANDLE);

impl Drop for VolumeSearch {
    fn drop(&mut self) {
        // SAFETY: the handle came from FindFirstVolumeW and is closed once, here.
        unsafe { FindVolumeClose(self.0) };
    }
}

/// Every volume as (NT device, its drive letters and folder mount points). A volume whose device
/// or mount points cannot be read is left out and named in the returned warnings.
pub fn mount_points() -> Result<(Vec<(String, Vec<String>)>, Vec<String>), String> {
    let mut name = vec![0u16; 64];
    // SAFETY: `name` is a writable buffer of the length passed.
    let first = unsafe { FindFirstVolumeW(name.as_mut_ptr(), name.len() as u32) };
    if first == INVALID_HANDLE_VALUE {
        let (code, text) = last_error();
        return Err(format!("FindFirstVolumeW: {text} ({code})"));
    }
    let search = VolumeSearch(first);
    let mut volumes = Vec::new();
    let mut warnings = Vec::new();
    loop {
        let guid_path = multi_sz(&name).into_iter().next().unwrap_or_default();
        match volume(&guid_path) {
            Ok(v) => volumes.push(v),
            Err(e) => warnings.push(e),
        }
        // SAFETY: `search` is an open volume search; `name` is writable for its length.
        let more = unsafe { FindNextVolumeW(search.0, name.as_mut_ptr(), name.len() as u32) };
        if more == 0 {
            let (code, text) = last_error();
            if code == ERROR_NO_MORE_FILES {
                break;
            }
            return Err(format!("FindNextVolumeW: {text} ({code})"));
        }
    }
    Ok((volumes, warnings))
}

/// One volume's device and mount points.
fn volume(guid_path: &str) -> Result<(String, Vec<String>), String> {
    let dos = dos_device_name(guid_path)
        .ok_or_else(|| format!("volume `{guid_path}` is not a `\\\\?\\Volume{{GUID}}\\` name"))?;
    let wdos = wide(dos);
    let mut target = vec![0u16; 1024];
    // SAFETY: `wdos` is NUL-terminated; `target` is writable for the length passed.
    let n = unsafe { QueryDosDeviceW(wdos.as_ptr(), target.as_mut_ptr(), target.len() as u32) };
    if n == 0 {
        let (code, text) = last_error();
        return Err(format!("QueryDosDeviceW(`{dos}`): {text} ({code})"));
    }
    let device = multi_sz(&target[..n as usize])
        .into_iter()
        .next()
        .ok_or_else(|| format!("QueryDosDeviceW(`{dos}`) named no device"))?;
    let wguid = wide(guid_path);
    let mut paths = vec![0u16; 256];
    loop {
        let mut needed = 0u32;
        // SAFETY: `wguid` is NUL-terminated; `paths` is writable for the length passed and
        // `needed` is a valid out pointer.
        let ok = unsafe {
            GetVolumePathNamesForVolumeNameW(
                wguid.as_ptr(),
                paths.as_mut_ptr(),
                paths.len() as u32,
                &mut needed,
            )
        };
        if ok != 0 {
            return Ok((device, multi_sz(&paths)));
        }
        let (code, text) = last_error();
        if code == ERROR_MORE_DATA && needed as usize > paths.len() {
            paths = vec![0u16; needed as usize];
            continue;
        }
        return Err(format!(
            "GetVolumePathNamesForVolumeNameW(`{guid_path}`): {text} ({code})"
        ));
    }
}

/// `path` as the file system names it: `\Device\HarddiskVolume3\work` for `C:\work`, through
/// this process's drive letters (its user's `subst` and mapped drives) and links.
pub fn nt_path(path: &Path) -> Result<String, String> {
    let wpath = wide(path.as_os_str());
    // SAFETY: `wpath` is NUL-terminated; attribute-only access and full sharing disturb no other
    // user of the file; the handle is owned below.
    let handle = unsafe {
        CreateFileW(
            wpath.as_ptr(),
            FILE_READ_ATTRIBUTES,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            null(),
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS,
            std::ptr::null_mut(),
        )
    };
    let Some(handle) = owned(handle) else {
        let (code, text) = last_error();
        return Err(format!("opening `{}`: {text} ({code})", path.display()));
    };
    let raw = std::os::windows::io::AsRawHandle::as_raw_handle(&handle);
    let mut buf = vec![0u16; 512];
    loop {
        // SAFETY: `raw` is the open handle above; `buf` is writable for the length passed.
        let n = unsafe {
            GetFinalPathNameByHandleW(
                raw,
                buf.as_mut_ptr(),
                buf.len() as u32,
                FILE_NAME_NORMALIZED | VOLUME_NAME_NT,
            )
        };
        if n == 0 {
            let (code, text) = last_error();
            return Err(format!(
                "GetFinalPathNameByHandleW(`{}`, VOLUME_NAME_NT): {text} ({code})",
                path.display()
            ));
        }
        if n as usize >= buf.len() {
            // Too small: `n` is the size needed, including the terminating NUL.
            buf = vec![0u16; n as usize + 1];
            continue;
        }
        let text = String::from_utf16_lossy(&buf[..n as usize]);
        return check_nt_path(&text)
            .map(str::to_owned)
            .map_err(|e| format!("`{}`: {e}", path.display()));
    }
}
