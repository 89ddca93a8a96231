//! The operations of `sandbox run`'s wall probe, run inside the sandbox: the process token's
//! facts, and registry opens, creations and deletions under `HKCU` that report the Win32 error.

use std::os::windows::io::OwnedHandle;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::{
    TOKEN_INFORMATION_CLASS, TOKEN_MANDATORY_LABEL, TOKEN_QUERY, TokenCapabilities,
    TokenIntegrityLevel, TokenIsAppContainer,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_CREATE_SUB_KEY, KEY_SET_VALUE, REG_OPTION_NON_VOLATILE,
    RegCloseKey, RegCreateKeyExW, RegDeleteKeyW, RegOpenKeyExW,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::security::{sid_string, token_groups, token_information};
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

fn token_info(
    token: &OwnedHandle,
    class: TOKEN_INFORMATION_CLASS,
    name: &str,
) -> Result<Vec<u64>, String> {
    token_information(token, class, name)
        .map_err(|f| format!("{}: {} ({})", f.step, f.message, f.code))
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
    let is_app = token_info(&token, TokenIsAppContainer, "TokenIsAppContainer")?;
    let appcontainer = is_app.first().is_some_and(|v| (*v as u32) != 0);
    let groups = token_info(&token, TokenCapabilities, "TokenCapabilities")?;
    let capabilities = token_groups(&groups)
        .iter()
        .map(|group| sid_string(group.Sid).map_err(|f| format!("{}: {}", f.step, f.message)))
        .collect::<Result<Vec<_>, _>>()?;
    let label = token_info(&token, TokenIntegrityLevel, "TokenIntegrityLevel")?;
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
