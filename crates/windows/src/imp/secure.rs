//! Applying and reading back the descriptors of [`crate::secure`].

use std::path::Path;

use windows_sys::Win32::Security::Authorization::{SE_FILE_OBJECT, SE_REGISTRY_KEY};

use super::security::{
    Parts, apply_sddl, canonical_sddl as canonical, current_user_sid, parsed_label, read_sddl,
};
use crate::secure::{APP_KEY_LABEL_SDDL, service_file_sddl, token_dir_sddl, token_file_sddl};

const BOTH: Parts = Parts {
    dacl: true,
    label: true,
};

fn text(f: super::security::OsFailure) -> String {
    format!("{}: {} (win32 error {})", f.step, f.message, f.code)
}

/// Gives the API token file and its folder their protected DACL and no-read-up Medium label
/// (the folder first, so nothing created there meanwhile escapes it), for a service running as
/// this process's user.
pub fn protect_token_file(path: &Path) -> Result<(), String> {
    let owner = current_user_sid().map_err(text)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        apply_sddl(
            &dir.display().to_string(),
            SE_FILE_OBJECT,
            &token_dir_sddl(&owner),
            BOTH,
        )
        .map_err(text)?;
    }
    apply_sddl(
        &path.display().to_string(),
        SE_FILE_OBJECT,
        &token_file_sddl(&owner),
        BOTH,
    )
    .map_err(text)
}

/// Gives one of the service's secret state files (see [`crate::secure::service_file_sddl`]) its
/// protected DACL for a service running as this process's user; the folder is left as it is.
pub fn protect_service_file(path: &Path) -> Result<(), String> {
    let owner = current_user_sid().map_err(text)?;
    apply_sddl(
        &path.display().to_string(),
        SE_FILE_OBJECT,
        &service_file_sddl(&owner),
        Parts {
            dacl: true,
            label: false,
        },
    )
    .map_err(text)
}

/// The DACL and label of a file or folder, as SDDL.
pub fn read_file_sddl(path: &Path) -> Result<String, String> {
    read_sddl(&path.display().to_string(), SE_FILE_OBJECT, BOTH).map_err(text)
}

/// The DACL and label of a registry key (`CURRENT_USER\SOFTWARE\x`), as SDDL.
pub fn read_key_sddl(key: &str) -> Result<String, String> {
    read_sddl(key, SE_REGISTRY_KEY, BOTH).map_err(text)
}

/// Labels `CURRENT_USER\SOFTWARE\<app>` Low with no-write-up for subkeys
/// ([`APP_KEY_LABEL_SDDL`]), or removes the label (`low = false`).
pub fn label_app_key(key: &str, low: bool) -> Result<(), String> {
    apply_sddl(
        key,
        SE_REGISTRY_KEY,
        if low { APP_KEY_LABEL_SDDL } else { "S:" },
        Parts {
            dacl: false,
            label: true,
        },
    )
    .map_err(text)
}

/// `sddl` as Windows' SDDL reader understands it (parsed and written back, DACL and label): what
/// [`protect_token_file`] and [`label_app_key`] ask Windows to apply.
pub fn canonical_sddl(sddl: &str) -> Result<String, String> {
    canonical(sddl).map_err(text)
}

/// The SID of the account this process runs as (`S-1-5-…`).
pub fn current_user() -> Result<String, String> {
    current_user_sid().map_err(text)
}

/// What Windows' SDDL reader makes of `sddl` in binary form: whether the DACL is protected, and
/// each mandatory label ACE as (ACE type, flags, mask, SID) — independent of any SDDL writer.
pub fn parse_label(sddl: &str) -> Result<(bool, Vec<(u8, u8, u32, String)>), String> {
    parsed_label(sddl).map_err(text)
}
