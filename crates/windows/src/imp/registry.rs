//! Registry writes: HKLM for installation (event source, driver instances), HKCU for the
//! approvals watcher's notification identity.

use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_ALL_ACCESS, REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
    REG_SZ, REG_VALUE_TYPE, RRF_RT_REG_SZ, RegCloseKey, RegCreateKeyExW, RegDeleteTreeW,
    RegGetValueW, RegSetValueExW,
};

use super::security::OsFailure;
use super::util::wide;

/// A value to write.
#[derive(Debug)]
pub enum Value<'a> {
    Str(&'a str),
    ExpandStr(&'a str),
    Dword(u32),
}

/// Creates `HKLM\<subkey>` and writes `values`.
pub fn set_values(subkey: &str, values: &[(&str, Value<'_>)]) -> Result<(), OsFailure> {
    set_values_in(HKEY_LOCAL_MACHINE, "HKLM", subkey, values)
}

/// Creates `HKCU\<subkey>` (the calling user's hive) and writes `values`.
pub fn set_user_values(subkey: &str, values: &[(&str, Value<'_>)]) -> Result<(), OsFailure> {
    set_values_in(
        windows_sys::Win32::System::Registry::HKEY_CURRENT_USER,
        "HKCU",
        subkey,
        values,
    )
}

fn set_values_in(
    root: HKEY,
    root_name: &str,
    subkey: &str,
    values: &[(&str, Value<'_>)],
) -> Result<(), OsFailure> {
    let wkey = wide(subkey);
    let mut key: HKEY = null_mut();
    // SAFETY: creates or opens the key; `key` is closed below.
    let rc = unsafe {
        RegCreateKeyExW(
            root,
            wkey.as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_ALL_ACCESS,
            null(),
            &mut key,
            null_mut(),
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(OsFailure::code(
            format!("creating `{root_name}\\{subkey}`"),
            rc,
        ));
    }
    let mut result = Ok(());
    for (name, value) in values {
        let wname = wide(name);
        let (kind, data): (REG_VALUE_TYPE, Vec<u8>) = match value {
            Value::Str(s) => (
                REG_SZ,
                wide(s).iter().flat_map(|u| u.to_le_bytes()).collect(),
            ),
            Value::ExpandStr(s) => (
                REG_EXPAND_SZ,
                wide(s).iter().flat_map(|u| u.to_le_bytes()).collect(),
            ),
            Value::Dword(d) => (REG_DWORD, d.to_le_bytes().to_vec()),
        };
        // SAFETY: `data` is valid for its length; `key` is open.
        let rc = unsafe {
            RegSetValueExW(
                key,
                wname.as_ptr(),
                0,
                kind,
                data.as_ptr(),
                data.len() as u32,
            )
        };
        if rc != ERROR_SUCCESS {
            result = Err(OsFailure::code(
                format!("writing `{root_name}\\{subkey}\\{name}`"),
                rc,
            ));
            break;
        }
    }
    // SAFETY: `key` was opened above and is closed once.
    unsafe { RegCloseKey(key) };
    result
}

/// Deletes `HKLM\<subkey>` with everything below it; an absent key is not an error.
pub fn delete_tree(subkey: &str) -> Result<(), OsFailure> {
    let wkey = wide(subkey);
    // SAFETY: `wkey` is NUL-terminated.
    let rc = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, wkey.as_ptr()) };
    if rc != ERROR_SUCCESS && rc != ERROR_FILE_NOT_FOUND {
        return Err(OsFailure::code(format!("deleting `HKLM\\{subkey}`"), rc));
    }
    if rc == ERROR_SUCCESS {
        // RegDeleteTreeW leaves the key itself; remove it too.
        // SAFETY: `wkey` is NUL-terminated.
        let rc = unsafe {
            windows_sys::Win32::System::Registry::RegDeleteKeyW(HKEY_LOCAL_MACHINE, wkey.as_ptr())
        };
        if rc != ERROR_SUCCESS && rc != ERROR_FILE_NOT_FOUND {
            return Err(OsFailure::code(format!("deleting `HKLM\\{subkey}`"), rc));
        }
    }
    Ok(())
}

/// Reads a REG_SZ value of `HKLM\<subkey>`; `Ok(None)` when absent.
pub fn get_string(subkey: &str, name: &str) -> Result<Option<String>, OsFailure> {
    let wkey = wide(subkey);
    let wname = wide(name);
    let mut buf = vec![0u16; 2048];
    let mut size = (buf.len() * 2) as u32;
    // SAFETY: `buf` is valid for `size` bytes; the type out-pointer is optional.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            wkey.as_ptr(),
            wname.as_ptr(),
            RRF_RT_REG_SZ,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if rc == ERROR_FILE_NOT_FOUND {
        return Ok(None);
    }
    if rc != ERROR_SUCCESS {
        return Err(OsFailure::code(
            format!("reading `HKLM\\{subkey}\\{name}`"),
            rc,
        ));
    }
    let units = (size as usize / 2).min(buf.len());
    let text = String::from_utf16_lossy(&buf[..units]);
    Ok(Some(text.trim_end_matches('\0').to_owned()))
}
