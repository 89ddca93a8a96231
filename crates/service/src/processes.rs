//! Where the service reads what the wire does not carry about a process, for an approval: the
//! requesting process's command line, and the image of a process the kernel reported no event for
//! (a session's root starts before it is registered). The design's layouts stay as they are. On
//! Windows the source is the process itself (`agentsh_windows::process::facts`: its
//! `ProcessCommandLineInformation` and image name); on Linux it is the process table the emulator
//! writes beside its socket ([`table_file`], format in docs/emulator.md). Read once per approval,
//! never per request.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the operating system says of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ProcessFacts {
    /// Its image path.
    #[serde(default)]
    pub image: Option<String>,
    /// The command line it was started with.
    #[serde(default)]
    pub command_line: Option<String>,
}

/// Reads what is known of a process by id; `None` when nothing can be read (the process is gone,
/// access is refused, nothing describes it).
pub type ProcessSource = Arc<dyn Fn(u32) -> Option<ProcessFacts> + Send + Sync>;

/// The process table the emulator writes next to its socket: `<socket>.processes`.
pub fn table_beside(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".processes");
    PathBuf::from(name)
}

/// The most of a process table read: an emulated machine's table is far smaller.
const MAX_TABLE_BYTES: u64 = 16 << 20;

/// One line of the emulator's process table.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct TableLine {
    pub pid: u32,
    #[serde(flatten)]
    pub facts: ProcessFacts,
}

/// A source reading the emulator's process table: JSON lines
/// `{"pid":4100,"image":"C:\…","command_line":"…"}`, the last line for a pid wins (pids are
/// reused). A missing file or a line that does not parse describes nothing.
pub fn table_file(path: PathBuf) -> ProcessSource {
    Arc::new(move |pid| {
        let file = std::fs::File::open(&path).ok()?;
        let mut found = None;
        for line in BufReader::new(file.take(MAX_TABLE_BYTES)).lines() {
            let Ok(line) = line else { break };
            if let Ok(entry) = serde_json::from_str::<TableLine>(&line)
                && entry.pid == pid
            {
                found = Some(entry.facts);
            }
        }
        found
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_for_a_pid_wins_and_unknown_pids_are_not_described() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = table_beside(&dir.path().join("agentsh.sock"));
        assert!(path.ends_with("agentsh.sock.processes"));
        let source = table_file(path.clone());
        assert_eq!(source(4100), None, "no table yet");
        std::fs::write(
            &path,
            "{\"pid\":4100,\"image\":\"C:\\\\a.exe\",\"command_line\":\"agent.exe --first\"}\nnot json\n\
             {\"pid\":4101,\"image\":\"C:\\\\py.exe\",\"command_line\":\"py.exe -c \\\"x\\\"\"}\n\
             {\"pid\":4100,\"image\":\"C:\\\\b.exe\"}\n",
        )
        .expect("write");
        let facts = |image: &str, command_line: Option<&str>| ProcessFacts {
            image: Some(image.to_owned()),
            command_line: command_line.map(str::to_owned),
        };
        assert_eq!(
            source(4100),
            Some(facts("C:\\b.exe", None)),
            "the pid was reused"
        );
        assert_eq!(
            source(4101),
            Some(facts("C:\\py.exe", Some("py.exe -c \"x\"")))
        );
        assert_eq!(source(4102), None);
    }
}
