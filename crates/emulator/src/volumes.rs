//! The emulated machine's volumes: which NT device each drive letter or folder mount point is.
//! The filter manager reports a file by its normalized name, `\Device\HarddiskVolumeN\…`, never by
//! the drive letter a program opened it with; the emulator does the same, turning a trace's
//! `C:\work\a.txt` into `\Device\HarddiskVolume3\work\a.txt` with this table before the request
//! is sent. The table is also written beside the emulator's socket (`<socket>.volumes`, format in
//! docs/emulator.md) so that the service on the other end learns the same volumes, as on Windows
//! it learns them from the volume manager.

use std::fmt;

/// One mount point: a drive letter (`C:`) or a folder (`C:\mnt\data`), and its volume's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `\Device\HarddiskVolume3`.
    pub device: String,
    /// `C:\` or `C:\mnt\data\` (with the trailing `\`, as Windows lists mount points).
    pub mount: String,
}

/// The volumes of the emulated machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTable {
    mounts: Vec<Mount>,
}

/// A volume table line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {problem}")]
pub struct VolumeTableError {
    pub origin: String,
    pub line: usize,
    pub problem: String,
}

impl Default for VolumeTable {
    /// A machine with the system volume at `C:` and a data volume at `D:`.
    fn default() -> Self {
        VolumeTable {
            mounts: vec![
                Mount {
                    device: r"\Device\HarddiskVolume3".into(),
                    mount: r"C:\".into(),
                },
                Mount {
                    device: r"\Device\HarddiskVolume4".into(),
                    mount: r"D:\".into(),
                },
            ],
        }
    }
}

impl VolumeTable {
    /// Reads a table (`<device> = <mount point>` per line, `#` comments; docs/emulator.md).
    pub fn parse(text: &str, origin: &str) -> Result<VolumeTable, VolumeTableError> {
        let mut mounts = Vec::new();
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
            let (device, mount) = line
                .split_once('=')
                .ok_or_else(|| err(format!("`{line}` is not `<device> = <mount point>`")))?;
            let (device, mount) = (device.trim(), mount.trim());
            let name = device
                .get(..8)
                .filter(|p| p.eq_ignore_ascii_case(r"\Device\"))
                .map(|_| &device[8..]);
            if name.is_none_or(|n| n.is_empty() || n.contains('\\')) {
                return Err(err(format!(
                    "volume device `{device}` is not of the form `\\Device\\<name>`"
                )));
            }
            let b = mount.as_bytes();
            if b.len() < 2
                || !b[0].is_ascii_alphabetic()
                || b[1] != b':'
                || b.get(2).is_some_and(|&c| c != b'\\')
            {
                return Err(err(format!(
                    "mount point `{mount}` is not a drive letter such as `C:\\` or a folder such as `C:\\mnt\\data\\`"
                )));
            }
            let mut mount = mount.to_owned();
            if !mount.ends_with('\\') {
                mount.push('\\');
            }
            mounts.push(Mount {
                device: device.to_owned(),
                mount,
            });
        }
        Ok(VolumeTable { mounts })
    }

    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The path as the filter manager names it: a drive-letter path becomes
    /// `\Device\<volume>\rest` through the longest matching mount point, a UNC path
    /// `\Device\Mup\server\share\rest`; a path already in device form is kept. A drive no volume
    /// is mounted at is an error.
    pub fn device_path(&self, path: &str) -> Result<String, String> {
        if path.starts_with('\\') && !path.starts_with(r"\\") {
            return Ok(path.to_owned());
        }
        if let Some(unc) = path.strip_prefix(r"\\") {
            return Ok(format!(r"\Device\Mup\{unc}"));
        }
        let mut probe = path.to_owned();
        if probe.len() == 2 {
            probe.push('\\');
        }
        let best = self
            .mounts
            .iter()
            .filter(|m| {
                probe.len() >= m.mount.len()
                    && probe.is_char_boundary(m.mount.len())
                    && probe[..m.mount.len()].eq_ignore_ascii_case(&m.mount)
            })
            .max_by_key(|m| m.mount.len())
            .ok_or_else(|| format!("`{path}` is on no volume of the emulator's volume table"))?;
        let rest = &probe[best.mount.len()..];
        Ok(format!("{}\\{rest}", best.device))
    }
}

impl fmt::Display for VolumeTable {
    /// The table in its file format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# agentsh emulator volume table: <NT device> = <mount point>"
        )?;
        for m in &self.mounts {
            writeln!(f, "{} = {}", m.device, m.mount)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_letter_paths_become_device_paths_through_the_longest_mount_point() {
        let table = VolumeTable::parse(
            "\\Device\\HarddiskVolume3 = C:\\\n\\Device\\HarddiskVolume5 = C:\\mnt\\data\n",
            "t",
        )
        .expect("valid");
        for (path, want) in [
            (r"C:\work\a.txt", r"\Device\HarddiskVolume3\work\a.txt"),
            (r"c:\MNT\data\logs\x", r"\Device\HarddiskVolume5\logs\x"),
            (r"C:\mnt\database", r"\Device\HarddiskVolume3\mnt\database"),
            (r"C:", r"\Device\HarddiskVolume3\"),
            (r"\\srv\share\f", r"\Device\Mup\srv\share\f"),
            (r"\Device\HarddiskVolume9\x", r"\Device\HarddiskVolume9\x"),
        ] {
            assert_eq!(table.device_path(path).as_deref(), Ok(want), "{path}");
        }
        let err = table.device_path(r"Q:\x").expect_err("no volume at Q:");
        assert!(err.contains("`Q:\\x` is on no volume"), "{err}");
    }

    #[test]
    fn the_rendered_table_reads_back_and_bad_lines_name_their_place() {
        let table = VolumeTable::default();
        assert_eq!(
            VolumeTable::parse(&table.to_string(), "t").as_ref(),
            Ok(&table)
        );
        for (bad, want) in [
            ("C: = \\Device\\HarddiskVolume3", "t:2: volume device `C:`"),
            ("\\Device\\X = work", "t:2: mount point `work`"),
            ("\\Device\\X C:\\", "t:2: `\\Device\\X C:\\` is not"),
        ] {
            let err = VolumeTable::parse(&format!("# c\n{bad}\n"), "t").expect_err("bad");
            assert!(err.to_string().starts_with(want), "{bad}: {err}");
        }
    }
}
