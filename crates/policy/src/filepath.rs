//! Canonical file paths for the minifilter's file checks: drive-letter form for every spelling of
//! the same file (`C:\x`, `\??\C:\x`, `\\?\C:\x`, `\DosDevices\C:\x`, `\Device\HarddiskVolumeN\x`
//! through a caller-supplied volume map), UNC shares as `UNC\SERVER\SHARE\...`, upper case by the
//! Windows rule, `.` and `..` resolved lexically (never above the volume root), `/` read as `\`,
//! and the default data stream suffix `::$DATA` removed.

use std::fmt;

use crate::canonical::upcase;

/// Maps NT device names (`\Device\HarddiskVolume3`) to drive letters (`C:`), as the service learns
/// them from the volume manager. Lookups are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMap {
    entries: Vec<(String, String)>,
}

/// A volume map entry that is not a device name and a drive letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeMapError {
    #[error("volume device `{0}` is not of the form `\\Device\\<name>`")]
    Device(String),
    #[error("drive `{0}` is not a drive letter such as `C:`")]
    Drive(String),
}

impl VolumeMap {
    /// An empty map: `\Device\...` paths stay in device form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `device` (e.g. `\Device\HarddiskVolume3`) as the volume mounted at `drive` (`C:`).
    pub fn insert(&mut self, device: &str, drive: &str) -> Result<(), VolumeMapError> {
        let dev = upcase(device.trim_end_matches('\\'));
        let name = dev
            .strip_prefix("\\DEVICE\\")
            .filter(|n| !n.is_empty() && !n.contains('\\'));
        let Some(name) = name else {
            return Err(VolumeMapError::Device(device.to_owned()));
        };
        let drive_up = upcase(drive.trim_end_matches('\\'));
        let bytes = drive_up.as_bytes();
        if bytes.len() != 2 || !bytes[0].is_ascii_uppercase() || bytes[1] != b':' {
            return Err(VolumeMapError::Drive(drive.to_owned()));
        }
        let name = name.to_owned();
        self.entries.retain(|(d, _)| *d != name);
        self.entries.push((name, drive_up));
        Ok(())
    }

    fn drive_of(&self, device_name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(d, _)| d == device_name)
            .map(|(_, drive)| drive.as_str())
    }
}

/// A file path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalFile {
    text: String,
}

impl CanonicalFile {
    /// The canonical text, e.g. `C:\USERS\DEV\PROJECT\SRC\MAIN.RS`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical text, owned.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Display for CanonicalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Canonicalizes a Win32 or NT file path (see the module documentation). Total: anything
/// unrecognized is kept upper-cased and normalized, so a drive-letter rule cannot match it.
pub fn canonicalize_file(path: &str, volumes: &VolumeMap) -> CanonicalFile {
    let upper = upcase(path).replace('/', "\\");
    let comps = split_path(&upper);
    let (mut out, root_len) = resolve_root(&comps, volumes);
    let mut rest: Vec<&str> = Vec::with_capacity(comps.len());
    for c in out.drain(root_len..) {
        match c {
            "." => {}
            ".." => {
                rest.pop();
            }
            _ => rest.push(c),
        }
    }
    let mut text = String::with_capacity(upper.len());
    for (i, c) in out.iter().chain(rest.iter()).enumerate() {
        if i > 0 {
            text.push('\\');
        }
        text.push_str(c);
    }
    while let Some(stripped) = text.strip_suffix("::$DATA") {
        let len = stripped.len();
        text.truncate(len);
    }
    CanonicalFile { text }
}

/// The DOS device namespace prefixes (`\??\`, `\\?\`, `\\.\`, `\DosDevices\`, `\GLOBAL??\`), upper case.
const DOS_PREFIXES: [&str; 5] = [
    "\\??\\",
    "\\\\?\\",
    "\\\\.\\",
    "\\DOSDEVICES\\",
    "\\GLOBAL??\\",
];

/// Splits an upper-cased path (with `\` separators) into components: a DOS device prefix at the
/// very start is dropped, a leading `\\server` becomes `UNC\SERVER`.
pub(crate) fn split_path(upper: &str) -> Vec<&str> {
    let mut comps = Vec::with_capacity(16);
    let rest = match DOS_PREFIXES.iter().find(|p| upper.starts_with(*p)) {
        Some(p) => &upper[p.len()..],
        None => {
            if upper.starts_with("\\\\") {
                comps.push("UNC");
            }
            upper
        }
    };
    comps.extend(rest.split('\\').filter(|c| !c.is_empty()));
    comps
}

/// Returns the components with the root rewritten, and how many leading components form the root
/// (which `..` can never climb above).
pub(crate) fn resolve_root<'a>(comps: &[&'a str], volumes: &VolumeMap) -> (Vec<&'a str>, usize) {
    let mut out: Vec<&'a str> = Vec::with_capacity(comps.len() + 1);
    let rest = comps;
    let root_len = match rest {
        [drive, ..] if is_drive(drive) => {
            out.extend_from_slice(rest);
            1
        }
        ["UNC", server, share, ..] | ["DEVICE", "MUP", server, share, ..] => {
            let skip = if rest[0] == "UNC" { 3 } else { 4 };
            out.extend_from_slice(&["UNC", server, share]);
            out.extend_from_slice(&rest[skip..]);
            3
        }
        ["DEVICE", name, ..] => match volumes.drive_of(name) {
            Some(drive) => {
                let drive: &'static str = static_drive(drive);
                out.push(drive);
                out.extend_from_slice(&rest[2..]);
                1
            }
            None => {
                out.extend_from_slice(rest);
                2.min(rest.len())
            }
        },
        _ => {
            out.extend_from_slice(rest);
            0
        }
    };
    (out, root_len)
}

fn is_drive(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 2 && b[0].is_ascii_uppercase() && b[1] == b':'
}

/// Drive roots are one of 26 static strings, so resolved components can borrow them.
fn static_drive(drive: &str) -> &'static str {
    const DRIVES: [&str; 26] = [
        "A:", "B:", "C:", "D:", "E:", "F:", "G:", "H:", "I:", "J:", "K:", "L:", "M:", "N:", "O:",
        "P:", "Q:", "R:", "S:", "T:", "U:", "V:", "W:", "X:", "Y:", "Z:",
    ];
    let idx = drive.as_bytes()[0].wrapping_sub(b'A') as usize;
    DRIVES.get(idx).copied().unwrap_or("?:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volumes() -> VolumeMap {
        let mut v = VolumeMap::new();
        v.insert(r"\Device\HarddiskVolume3", "C:")
            .expect("valid entry");
        v.insert(r"\Device\HarddiskVolume7", "d:")
            .expect("valid entry");
        v
    }

    #[test]
    fn every_spelling_of_a_file_is_one_canonical_path() {
        let v = volumes();
        let groups: &[(&str, &[&str])] = &[
            (
                r"C:\USERS\DEV\WORK\MAIN.RS",
                &[
                    r"C:\Users\dev\work\main.rs",
                    r"c:/users/dev/work/main.rs",
                    r"\??\C:\Users\dev\work\main.rs",
                    r"\\?\C:\Users\dev\work\main.rs",
                    r"\\.\C:\Users\dev\work\main.rs",
                    r"\DosDevices\C:\Users\dev\work\main.rs",
                    r"\GLOBAL??\C:\Users\dev\work\main.rs",
                    r"\Device\HarddiskVolume3\Users\dev\work\main.rs",
                    r"\device\harddiskvolume3\Users\dev\work\.\src\..\main.rs",
                    r"C:\Users\dev\\work\main.rs::$DATA",
                ],
            ),
            (r"D:\X", &[r"\Device\HarddiskVolume7\x"]),
            (
                r"UNC\SERVER\SHARE\F",
                &[
                    r"\\server\share\f",
                    r"\??\UNC\server\share\f",
                    r"\\?\UNC\server\share\f",
                    r"\Device\Mup\server\share\f",
                ],
            ),
            (r"DEVICE\HARDDISKVOLUME9\X", &[r"\Device\HarddiskVolume9\x"]),
        ];
        for (want, spellings) in groups {
            for s in *spellings {
                assert_eq!(canonicalize_file(s, &v).as_str(), *want, "spelling {s}");
            }
        }
    }

    #[test]
    fn dot_dot_never_climbs_above_the_volume_root() {
        let v = VolumeMap::new();
        assert_eq!(
            canonicalize_file(r"C:\work\..\..\..\Windows", &v).as_str(),
            r"C:\WINDOWS"
        );
        assert_eq!(
            canonicalize_file(r"\\srv\share\..\..\x", &v).as_str(),
            r"UNC\SRV\SHARE\X"
        );
    }

    #[test]
    fn regression_dos_prefix_is_stripped_once_and_only_at_the_start() {
        let v = VolumeMap::new();
        for p in [r"\?\?X", r"\??\??\C:\x", r"X::$DATA::$DATA", r"\?\?"] {
            let once = canonicalize_file(p, &v);
            assert_eq!(canonicalize_file(once.as_str(), &v), once, "{p}");
        }
    }

    #[test]
    fn volume_map_rejects_what_is_not_a_device_or_drive() {
        let mut v = VolumeMap::new();
        assert!(matches!(
            v.insert("C:", "C:"),
            Err(VolumeMapError::Device(_))
        ));
        assert!(matches!(
            v.insert(r"\Device\HarddiskVolume1", "CC"),
            Err(VolumeMapError::Drive(_))
        ));
    }
}
