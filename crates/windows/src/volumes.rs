//! The volume manager's view, for the service's volume map and the sandbox's workspace spelling.
//!
//! - [`mount_points`] lists every volume as (NT device, mount points): `FindFirstVolumeW` /
//!   `FindNextVolumeW` give `\\?\Volume{GUID}\`, `QueryDosDeviceW(Volume{GUID})` its device
//!   (`\Device\HarddiskVolume3`), `GetVolumePathNamesForVolumeNameW` its drive letters and folder
//!   mount points (`C:\`, `C:\mnt\data\`). The service runs as LocalSystem, so these are the
//!   global names; a user's `subst` and mapped drives are not among them — the sandbox resolves
//!   those itself with [`nt_path`].
//! - [`nt_path`] names a file or directory as the minifilter will: `GetFinalPathNameByHandleW` with
//!   `VOLUME_NAME_NT` on a handle opened in the caller's own context (links resolved, the caller's
//!   drive letters seen).
//!
//! The parsing of what those calls return is portable and tested natively; the calls themselves
//! are exercised under Wine (`crates/windows/tests/volumes.rs`), which has volumes of its own.

/// The strings of a `REG_MULTI_SZ`-style buffer (`a\0b\0\0`): what `QueryDosDeviceW` and
/// `GetVolumePathNamesForVolumeNameW` return.
pub fn multi_sz(units: &[u16]) -> Vec<String> {
    units
        .split(|&u| u == 0)
        .take_while(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// `\\?\Volume{GUID}\` → `Volume{GUID}`, the name `QueryDosDeviceW` takes; `None` for anything
/// else.
pub fn dos_device_name(volume_guid_path: &str) -> Option<&str> {
    volume_guid_path
        .strip_prefix(r"\\?\")
        .map(|s| s.strip_suffix('\\').unwrap_or(s))
        .filter(|s| s.starts_with("Volume{") && s.ends_with('}'))
}

/// A path as `GetFinalPathNameByHandleW(VOLUME_NAME_NT)` returns it, checked: it must be an NT
/// device path (`\Device\...`).
pub fn check_nt_path(text: &str) -> Result<&str, String> {
    match text.strip_prefix(r"\Device\") {
        Some(rest) if !rest.is_empty() => Ok(text),
        _ => Err(format!(
            "the file system named it `{text}`, not a `\\Device\\...` path"
        )),
    }
}

#[cfg(windows)]
pub use crate::imp::volumes::{mount_points, nt_path};

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn multi_strings_stop_at_the_empty_string() {
        assert_eq!(
            multi_sz(&units("C:\\\0C:\\mnt\\data\\\0\0garbage\0")),
            ["C:\\", "C:\\mnt\\data\\"]
        );
        assert!(multi_sz(&units("\0\0")).is_empty());
        assert_eq!(
            multi_sz(&units("\\Device\\HarddiskVolume3")),
            ["\\Device\\HarddiskVolume3"]
        );
    }

    #[test]
    fn volume_guid_paths_become_dos_device_names() {
        assert_eq!(
            dos_device_name(r"\\?\Volume{0b5e1a7c-0000-0000-0000-100000000000}\"),
            Some("Volume{0b5e1a7c-0000-0000-0000-100000000000}")
        );
        assert_eq!(dos_device_name(r"C:\"), None);
        assert_eq!(dos_device_name(r"\\?\C:\"), None);
    }

    #[test]
    fn only_device_paths_are_nt_paths() {
        assert!(check_nt_path(r"\Device\HarddiskVolume3\work").is_ok());
        assert!(check_nt_path(r"C:\work").is_err());
        assert!(check_nt_path(r"\Device\").is_err());
    }
}
