//! The operations of `sandbox run`'s wall probe, run inside the sandbox: the process token's
//! facts, and registry opens, creations and deletions under `HKCU` that report the Win32 error.

use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::{
    GetTokenInformation, TOKEN_GROUPS, TOKEN_INFORMATION_CLASS, TOKEN_MANDATORY_LABEL, TOKEN_QUERY,
    TokenCapabilities, TokenIntegrityLevel, TokenIsAppContainer,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_CREATE_SUB_KEY, KEY_SET_VALUE, REG_OPTION_NON_VOLATILE,
    RegCloseKey, RegCreateKeyExW, RegDeleteKeyW, RegOpenKeyExW,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::security::sid_string;
use super::util::{last_error, owned, wide};

/// What the probe's own token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub appcontainer: bool,
    /// Capability SIDs in text form.
    pub capabilities: Vec<String>,
    /// The integrity level SID (`S-1-16-4096` for Low).
    pub integrity: String,
}

fn token_info(token: &OwnedHandle, class: TOKEN_INFORMATION_CLASS) -> Result<Vec<u64>, String> {
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the size the class takes.
    unsafe { GetTokenInformation(token.as_raw_handle(), class, null_mut(), 0, &mut needed) };
    if needed == 0 {
        let (code, text) = last_error();
        return Err(format!(
            "GetTokenInformation({class}) size: {text} ({code})"
        ));
    }
    // u64 elements keep the buffer pointer-aligned for the structures it holds.
    let mut buffer = vec![0u64; (needed as usize).div_ceil(size_of::<u64>())];
    let len = u32::try_from(buffer.len() * size_of::<u64>()).unwrap_or(u32::MAX);
    // SAFETY: `buffer` is writable for `len` bytes and aligned.
    let ok = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            class,
            buffer.as_mut_ptr().cast(),
            len,
            &mut needed,
        )
    };
    if ok == 0 {
        let (code, text) = last_error();
        return Err(format!("GetTokenInformation({class}): {text} ({code})"));
    }
    Ok(buffer)
}

/// Reads this process's token: AppContainer or not, capability SIDs, integrity level.
pub fn token_facts() -> Result<TokenFacts, String> {
    let mut token: HANDLE = null_mut();
    // SAFETY: opens the current process token for query into `token`, owned just below.
    let ok = unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) };
    if ok == 0 {
        let (code, text) = last_error();
        return Err(format!("OpenProcessToken: {text} ({code})"));
    }
    let token = owned(token).ok_or_else(|| "OpenProcessToken returned no handle".to_owned())?;
    let is_app = token_info(&token, TokenIsAppContainer)?;
    let appcontainer = is_app.first().is_some_and(|v| (*v as u32) != 0);
    let groups = token_info(&token, TokenCapabilities)?;
    let groups_ptr: *const TOKEN_GROUPS = groups.as_ptr().cast();
    // SAFETY: the call filled `groups` with a TOKEN_GROUPS; its count is read in place.
    let count = unsafe { (*groups_ptr).GroupCount } as usize;
    // SAFETY: `Groups` is the array of `count` entries that follows in the same buffer.
    let first = unsafe { std::ptr::addr_of!((*groups_ptr).Groups) }
        .cast::<windows_sys::Win32::Security::SID_AND_ATTRIBUTES>();
    let mut capabilities = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: `i < count`, inside the array the call wrote into `groups`.
        let sid = unsafe { (*first.add(i)).Sid };
        capabilities.push(sid_string(sid).map_err(|f| format!("{}: {}", f.step, f.message))?);
    }
    let label = token_info(&token, TokenIntegrityLevel)?;
    let label_ptr: *const TOKEN_MANDATORY_LABEL = label.as_ptr().cast();
    // SAFETY: the call filled `label` with a TOKEN_MANDATORY_LABEL whose SID points into it.
    let sid = unsafe { (*label_ptr).Label.Sid };
    let integrity = sid_string(sid).map_err(|f| format!("{}: {}", f.step, f.message))?;
    Ok(TokenFacts {
        appcontainer,
        capabilities,
        integrity,
    })
}

/// Opens `HKCU\<subkey>` for setting values; the Win32 error when refused.
pub fn open_user_key_for_write(subkey: &str) -> Result<(), u32> {
    let wkey = wide(subkey);
    let mut key: HKEY = null_mut();
    // SAFETY: `wkey` is NUL-terminated; `key` receives a handle closed below.
    let rc = unsafe { RegOpenKeyExW(HKEY_CURRENT_USER, wkey.as_ptr(), 0, KEY_SET_VALUE, &mut key) };
    if rc != ERROR_SUCCESS {
        return Err(rc);
    }
    // SAFETY: `key` was opened above and is closed once.
    unsafe { RegCloseKey(key) };
    Ok(())
}

/// Creates (or opens) `HKCU\<subkey>`; the Win32 error when refused.
pub fn create_user_key(subkey: &str) -> Result<(), u32> {
    let wkey = wide(subkey);
    let mut key: HKEY = null_mut();
    // SAFETY: `wkey` is NUL-terminated; `key` receives a handle closed below.
    let rc = unsafe {
        RegCreateKeyExW(
            HKEY_CURRENT_USER,
            wkey.as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE | KEY_CREATE_SUB_KEY,
            null(),
            &mut key,
            null_mut(),
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(rc);
    }
    // SAFETY: `key` was opened above and is closed once.
    unsafe { RegCloseKey(key) };
    Ok(())
}

/// Deletes the (leaf) key `HKCU\<subkey>`; an absent key is not an error.
pub fn delete_user_key(subkey: &str) -> Result<(), u32> {
    let wkey = wide(subkey);
    // SAFETY: `wkey` is NUL-terminated.
    let rc = unsafe { RegDeleteKeyW(HKEY_CURRENT_USER, wkey.as_ptr()) };
    match rc {
        ERROR_SUCCESS | ERROR_FILE_NOT_FOUND => Ok(()),
        other => Err(other),
    }
}
