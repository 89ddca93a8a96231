//! Canonical file paths for the minifilter's file checks: drive-letter form for every spelling of
//! the same file (`C:\x`, `\??\C:\x`, `\\?\C:\x`, `\DosDevices\C:\x`, `\Device\HarddiskVolumeN\x`
//! through a caller-supplied volume map), UNC shares as `UNC\SERVER\SHARE\...`, upper case by the
//! Windows rule, `.` and `..` resolved lexically (never above the volume root), `/` read as `\`,
//! and the default data stream suffix `::$DATA` removed.

use std::fmt;

use crate::canonical::upcase;

/// Maps NT device names (`\Device\HarddiskVolume3`) to where the volume is mounted: a drive
/// letter (`C:`) or, for a volume without one, a folder mount point (`C:\MNT\DATA`), as the
/// service learns them from the volume manager (Windows) or from the emulator's volume table
/// ([`VolumeMap::parse_table`]). Lookups are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMap {
    /// (upper-case device name without `\DEVICE\`, upper-case mount without trailing `\`).
    entries: Vec<(String, String)>,
}

/// A volume map entry that is not a device name and a drive letter or folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeMapError {
    #[error("volume device `{0}` is not of the form `\\Device\\<name>`")]
    Device(String),
    #[error(
        "mount point `{0}` is not a drive letter such as `C:` or a folder such as `C:\\mnt\\data`"
    )]
    Drive(String),
}

/// A line of a volume table that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {problem}")]
pub struct VolumeTableError {
    pub origin: String,
    pub line: usize,
    pub problem: String,
}

impl VolumeMap {
    /// An empty map: `\Device\...` paths stay in device form.
    pub const fn new() -> Self {
        VolumeMap {
            entries: Vec::new(),
        }
    }

    /// Adds `device` (e.g. `\Device\HarddiskVolume3`) as the volume mounted at `mount`: a drive
    /// letter (`C:`, `C:\`) or a folder on a drive (`C:\mnt\data\`). Replaces an earlier entry
    /// for the same device.
    pub fn insert(&mut self, device: &str, mount: &str) -> Result<(), VolumeMapError> {
        let name = device_name(device).ok_or_else(|| VolumeMapError::Device(device.to_owned()))?;
        let mount_up = mount_text(mount).ok_or_else(|| VolumeMapError::Drive(mount.to_owned()))?;
        self.entries.retain(|(d, _)| *d != name);
        self.entries.push((name, mount_up));
        Ok(())
    }

    /// Builds the map from each volume's device and mount points, as Windows lists them
    /// (`QueryDosDeviceW` on the volume's GUID name, `GetVolumePathNamesForVolumeNameW`): a
    /// volume's first drive letter is its canonical root; a volume without one is known by its
    /// first folder mount point; a volume without either is left out (its paths stay in device
    /// form). Entries that are not a device and a mount point are returned as errors, the rest kept.
    pub fn from_mount_points<D, M>(
        volumes: impl IntoIterator<Item = (D, Vec<M>)>,
    ) -> (VolumeMap, Vec<VolumeMapError>)
    where
        D: AsRef<str>,
        M: AsRef<str>,
    {
        let mut map = VolumeMap::new();
        let mut errors = Vec::new();
        for (device, mounts) in volumes {
            let device = device.as_ref();
            let Some(name) = device_name(device) else {
                errors.push(VolumeMapError::Device(device.to_owned()));
                continue;
            };
            let mut best: Option<String> = None;
            for m in &mounts {
                let Some(text) = mount_text(m.as_ref()) else {
                    errors.push(VolumeMapError::Drive(m.as_ref().to_owned()));
                    continue;
                };
                let is_drive_root = text.len() == 2;
                match &best {
                    Some(b) if b.len() == 2 || !is_drive_root => {}
                    _ => best = Some(text),
                }
            }
            if let Some(mount) = best {
                map.entries.retain(|(d, _)| *d != name);
                map.entries.push((name, mount));
            }
        }
        (map, errors)
    }

    /// Reads a volume table: one `<device> = <mount point>` per line (`\Device\HarddiskVolume3 =
    /// C:\`), blank lines and `#` comments skipped; several lines may name the same device (one
    /// per mount point, chosen as by [`VolumeMap::from_mount_points`]). The format is documented
    /// in docs/emulator.md; `origin` names the table in errors (`volumes.txt:3: ...`).
    pub fn parse_table(text: &str, origin: &str) -> Result<VolumeMap, VolumeTableError> {
        let mut volumes: Vec<(String, Vec<String>)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |problem: String| VolumeTableError {
                origin: origin.to_owned(),
                line: i + 1,
                problem,
            };
            let (device, mount) = line.split_once('=').ok_or_else(|| {
                err(format!("`{line}` is not `<device> = <mount point>` (e.g. `\\Device\\HarddiskVolume3 = C:\\`)"))
            })?;
            let (device, mount) = (device.trim(), mount.trim());
            let name = device_name(device)
                .ok_or_else(|| err(VolumeMapError::Device(device.to_owned()).to_string()))?;
            if mount_text(mount).is_none() {
                return Err(err(VolumeMapError::Drive(mount.to_owned()).to_string()));
            }
            match volumes.iter_mut().find(|(d, _)| *d == name) {
                Some((_, mounts)) => mounts.push(mount.to_owned()),
                None => volumes.push((name, vec![mount.to_owned()])),
            }
        }
        let devices = volumes
            .into_iter()
            .map(|(name, mounts)| (format!("\\DEVICE\\{name}"), mounts));
        let (map, errors) = VolumeMap::from_mount_points(devices);
        debug_assert!(errors.is_empty(), "every line was checked above");
        Ok(map)
    }

    /// How many volumes the map knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map knows no volume.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as (`\DEVICE\<NAME>`, mount) pairs in canonical (upper-case) form.
    pub fn entries(&self) -> impl Iterator<Item = (String, &str)> + '_ {
        self.entries
            .iter()
            .map(|(d, m)| (format!("\\DEVICE\\{d}"), m.as_str()))
    }

    fn mount_of(&self, device_name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(d, _)| d == device_name)
            .map(|(_, mount)| mount.as_str())
    }
}

/// `\Device\<name>` (any case, optional trailing `\`) → `<NAME>`.
fn device_name(device: &str) -> Option<String> {
    let dev = upcase(device.trim().trim_end_matches('\\'));
    dev.strip_prefix("\\DEVICE\\")
        .filter(|n| !n.is_empty() && !n.contains('\\'))
        .map(str::to_owned)
}

/// A drive letter or a folder below one (`C:`, `c:\`, `C:\mnt\data\`) → its canonical text
/// without a trailing `\` (`C:`, `C:\MNT\DATA`).
fn mount_text(mount: &str) -> Option<String> {
    let trimmed = mount.trim();
    if trimmed.is_empty() || trimmed.contains(['*', '?', '"', '<', '>', '|']) {
        return None;
    }
    let canon = canonicalize_file(trimmed, &VolumeMap::new()).into_string();
    let first = canon.split('\\').next().unwrap_or_default();
    is_drive(first).then_some(canon)
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
/// (which `..` can never climb above). A volume's device root becomes its mount point's
/// components, borrowed from `volumes`.
pub(crate) fn resolve_root<'a>(comps: &[&'a str], volumes: &'a VolumeMap) -> (Vec<&'a str>, usize) {
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
        ["DEVICE", name, ..] => match volumes.mount_of(name) {
            Some(mount) => {
                out.extend(mount.split('\\'));
                let root = out.len();
                out.extend_from_slice(&rest[2..]);
                root
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

    #[test]
    fn a_folder_mounted_volume_resolves_below_its_mount_point_and_dot_dot_stops_there() {
        let mut v = volumes();
        v.insert(r"\Device\HarddiskVolume5", r"C:\mnt\data\")
            .expect("valid entry");
        for (path, want) in [
            (
                r"\Device\HarddiskVolume5\logs\a.txt",
                r"C:\MNT\DATA\LOGS\A.TXT",
            ),
            (r"\Device\HarddiskVolume5\..\..\x", r"C:\MNT\DATA\X"),
            (r"\Device\HarddiskVolume5", r"C:\MNT\DATA"),
        ] {
            assert_eq!(canonicalize_file(path, &v).as_str(), want, "{path}");
        }
    }

    #[test]
    fn mount_points_prefer_the_first_drive_letter_then_the_first_folder() {
        let (map, errors) = VolumeMap::from_mount_points([
            (
                r"\Device\HarddiskVolume3",
                vec![r"C:\mnt\c\", r"C:\", r"E:\"],
            ),
            (
                r"\Device\HarddiskVolume5",
                vec![r"C:\mnt\data\", r"C:\other\"],
            ),
            (r"\Device\CdRom0", vec![]),
            (r"Volume{x}", vec![r"F:\"]),
            (r"\Device\HarddiskVolume6", vec![r"relative\dir"]),
        ]);
        let entries: Vec<(String, &str)> = map.entries().collect();
        assert_eq!(
            entries,
            [
                (r"\DEVICE\HARDDISKVOLUME3".to_owned(), "C:"),
                (r"\DEVICE\HARDDISKVOLUME5".to_owned(), r"C:\MNT\DATA"),
            ]
        );
        assert_eq!(
            errors,
            [
                VolumeMapError::Device("Volume{x}".into()),
                VolumeMapError::Drive(r"relative\dir".into())
            ]
        );
    }

    #[test]
    fn a_volume_table_reads_like_the_volume_manager_and_says_where_it_is_wrong() {
        let table = "# emulated machine\n\\Device\\HarddiskVolume3 = C:\\\n\n\\Device\\HarddiskVolume5 = C:\\mnt\\data\\\n\\device\\harddiskvolume5 = G:\\\n";
        let map = VolumeMap::parse_table(table, "volumes.txt").expect("valid table");
        assert_eq!(map.len(), 2);
        assert_eq!(
            canonicalize_file(r"\Device\HarddiskVolume5\x", &map).as_str(),
            r"G:\X"
        );
        assert_eq!(
            canonicalize_file(r"\Device\HarddiskVolume3\work\a", &map).as_str(),
            r"C:\WORK\A"
        );
        for (bad, want) in [
            (
                "\\Device\\HarddiskVolume3 C:\\",
                "volumes.txt:2: `\\Device\\HarddiskVolume3 C:\\` is not",
            ),
            (
                "HarddiskVolume3 = C:\\",
                "volumes.txt:2: volume device `HarddiskVolume3`",
            ),
            (
                "\\Device\\HarddiskVolume3 = mnt\\x",
                "volumes.txt:2: mount point `mnt\\x`",
            ),
        ] {
            let err = VolumeMap::parse_table(&format!("# x\n{bad}\n"), "volumes.txt")
                .expect_err("bad line");
            assert!(err.to_string().starts_with(want), "{bad}: {err}");
        }
    }
}
