//! Where the service learns which volume an NT device name is: a [`VolumeSource`] read at start
//! and then every few seconds, its map swapped into the policy adapter whole whenever it changed
//! ([`PolicyAdapter::set_volumes`]). On Windows the source is the volume manager (the Windows
//! service passes `agentsh_windows::volumes::mount_points`); on Linux it is the emulator's volume
//! table file ([`table_file`], format in docs/emulator.md). Both end in
//! [`VolumeMap::from_mount_points`], so the same code turns `\Device\HarddiskVolumeN\…` into the
//! drive-letter paths the policy's rules are written in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentsh_policy::filepath::VolumeMap;

use crate::PolicyAdapter;

/// Reads the current volumes. Called on a blocking thread; an error keeps the last good map.
pub type VolumeSource = Arc<dyn Fn() -> Result<VolumeMap, String> + Send + Sync>;

/// The volume table the emulator writes next to its socket: `<socket>.volumes`.
pub fn table_beside(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".volumes");
    PathBuf::from(name)
}

/// A source reading a volume table file (docs/emulator.md). A missing file is an empty map (no
/// emulator has described its volumes: device paths stay in device form); an unreadable or
/// invalid one is an error naming the file and line.
pub fn table_file(path: PathBuf) -> VolumeSource {
    Arc::new(move || match std::fs::read_to_string(&path) {
        Ok(text) => {
            VolumeMap::parse_table(&text, &path.display().to_string()).map_err(|e| e.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VolumeMap::new()),
        Err(e) => Err(format!("volume table `{}`: {e}", path.display())),
    })
}

/// Reads `source` once and swaps the result into `adapter`. Returns the number of volumes now
/// known when the map changed, `Ok(None)` when it did not.
pub fn refresh(adapter: &PolicyAdapter, source: &VolumeSource) -> Result<Option<usize>, String> {
    let map = source()?;
    let count = map.len();
    Ok(adapter.set_volumes(map).then_some(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventPipeline;
    use agentsh_policy::Policy;

    #[test]
    fn a_changed_table_is_swapped_in_whole_and_a_bad_one_keeps_the_last_good_map() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agentsh.sock.volumes");
        let source = table_file(path.clone());
        let policy =
            Policy::from_str(agentsh_policy::DEFAULT_POLICY_YAML, "default").expect("policy");
        let (events, _rx) = EventPipeline::channel(16);
        let adapter = PolicyAdapter::for_policy(&policy, events);

        assert_eq!(
            refresh(&adapter, &source),
            Ok(None),
            "missing file: empty map"
        );
        std::fs::write(&path, "\\Device\\HarddiskVolume3 = C:\\\n").expect("write");
        assert_eq!(refresh(&adapter, &source), Ok(Some(1)));
        assert_eq!(refresh(&adapter, &source), Ok(None), "unchanged");
        let before = adapter.volumes();

        std::fs::write(&path, "\\Device\\HarddiskVolume3 C:\\\n").expect("write");
        let err = refresh(&adapter, &source).expect_err("invalid table");
        assert!(err.contains("agentsh.sock.volumes:1:"), "{err}");
        assert_eq!(adapter.volumes(), before, "last good map kept");

        std::fs::write(
            &path,
            "\\Device\\HarddiskVolume3 = C:\\\n\\Device\\HarddiskVolume4 = D:\\\n",
        )
        .expect("write");
        assert_eq!(refresh(&adapter, &source), Ok(Some(2)));
        assert!(!Arc::ptr_eq(&before, &adapter.volumes()));
    }

    #[test]
    fn the_table_lives_beside_the_socket() {
        assert_eq!(
            table_beside(Path::new("/tmp/a/agentsh.sock")),
            PathBuf::from("/tmp/a/agentsh.sock.volumes")
        );
    }
}
