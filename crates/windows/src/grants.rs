//! The grant journal: every change a sandbox makes outside itself (an ACL entry on a file or registry
//! key, an AppContainer profile) is written here *before* it is made, so that `close` — or the next
//! start after a crash — can undo exactly what was added.
//!
//! Format: one record per line, fields separated by a tab:
//! `file <sid> <path>`, `registry <sid> <key>`, `profile <name>`, `label <path>`,
//! `keylabel <key>` or `kept <workspace>` (`--keep-grants`: the grants above stay after the run
//! for this workspace, and the next run with the same name and workspace reuses them). Paths cannot contain tabs or line breaks on Windows, so no escaping is needed;
//! such input is refused.
//!
//! The journal is read back by a more trusted process than the one that could have written its
//! folder (`--journal-dir` may be anywhere), so every record is checked before it is undone: a
//! SID must be an AppContainer SID (`S-1-15-2-…`), a profile must be one of agentsh's
//! (`agentsh.…`), a key must be under `CURRENT_USER\SOFTWARE\`. Rewrites go to a temporary file
//! that then replaces the journal, so a crash leaves the old journal or the new one, never none.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One change to undo.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grant {
    /// An access-allowed ACE for `sid` on a file or directory (inherited by its contents).
    File { sid: String, path: String },
    /// An access-allowed ACE for `sid` on a registry key, in `SE_REGISTRY_KEY` form
    /// (`CURRENT_USER\SOFTWARE\app`).
    Registry { sid: String, key: String },
    /// An AppContainer profile created for the sandbox.
    Profile { name: String },
    /// A low mandatory label set on a directory that had no explicit label (fallback isolation).
    Label { path: String },
    /// A low mandatory label on the application key (`CURRENT_USER\SOFTWARE\app`), so the
    /// low-integrity container can write it.
    KeyLabel { key: String },
    /// Not a change: the journal's grants are kept after the run for this workspace
    /// (`--keep-grants`), so the next run with the same name and workspace reuses them.
    Kept { workspace: String },
}

impl Grant {
    /// Whether the record is one agentsh could have made (see the module documentation).
    pub fn check(&self) -> Result<(), String> {
        let app_sid = |sid: &str| {
            sid.starts_with("S-1-15-2-")
                && sid[9..]
                    .split('-')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let app_key = |key: &str| {
            key.get(..22)
                .is_some_and(|p| p.eq_ignore_ascii_case("CURRENT_USER\\SOFTWARE\\"))
                && key.len() > 22
                && !key[22..]
                    .split('\\')
                    .any(|c| c.is_empty() || c == "." || c == "..")
        };
        match self {
            Grant::File { sid, .. } | Grant::Registry { sid, .. } if !app_sid(sid) => {
                Err(format!("`{sid}` is not an AppContainer SID (S-1-15-2-...)"))
            }
            Grant::Registry { key, .. } | Grant::KeyLabel { key } if !app_key(key) => Err(format!(
                "`{key}` is not a key under CURRENT_USER\\SOFTWARE\\"
            )),
            Grant::Profile { name }
                if !name.starts_with(crate::sandbox::PROFILE_PREFIX)
                    || name.len() == crate::sandbox::PROFILE_PREFIX.len() =>
            {
                Err(format!(
                    "`{name}` is not an agentsh profile (agentsh.<name>)"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Journal errors, with the journal's path and the line where parsing failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("grant journal `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("grant journal `{path}`:{line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "grant journal `{path}`: cannot record `{value}`: tabs and line breaks are not allowed"
    )]
    Unrecordable { path: PathBuf, value: String },
    #[error(
        "sandbox lock `{path}`: {source} (is another `agentsh sandbox run` with this --name running?)"
    )]
    Busy { path: PathBuf, source: io::Error },
}

/// An append-only record of grants, one file per sandbox name.
#[derive(Debug)]
pub struct GrantJournal {
    path: PathBuf,
}

impl GrantJournal {
    /// The journal of sandbox `name` inside `dir` (created if missing).
    pub fn in_dir(dir: &Path, name: &str) -> Result<Self, JournalError> {
        fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(GrantJournal {
            path: dir.join(format!("{name}.grants")),
        })
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `grant` and flushes it to disk before the caller applies it.
    pub fn record(&self, grant: &Grant) -> Result<(), JournalError> {
        let line = match grant {
            Grant::File { sid, path } => ["file", sid, path].join("\t"),
            Grant::Registry { sid, key } => ["registry", sid, key].join("\t"),
            Grant::Profile { name } => ["profile", name].join("\t"),
            Grant::Label { path } => ["label", path].join("\t"),
            Grant::KeyLabel { key } => ["keylabel", key].join("\t"),
            Grant::Kept { workspace } => ["kept", workspace].join("\t"),
        };
        let fields = line.split('\t').count();
        let expected = if matches!(
            grant,
            Grant::Profile { .. }
                | Grant::Label { .. }
                | Grant::KeyLabel { .. }
                | Grant::Kept { .. }
        ) {
            2
        } else {
            3
        };
        if fields != expected || line.contains(['\n', '\r']) {
            return Err(JournalError::Unrecordable {
                path: self.path.clone(),
                value: line,
            });
        }
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(file, "{line}").map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Every recorded grant, oldest first; an absent journal has none.
    pub fn entries(&self) -> Result<Vec<Grant>, JournalError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut grants = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let corrupt = |reason: String| JournalError::Corrupt {
                path: self.path.clone(),
                line: index + 1,
                reason,
            };
            let fields: Vec<&str> = line.split('\t').collect();
            let grant = match fields.as_slice() {
                ["file", sid, path] => Grant::File {
                    sid: (*sid).to_owned(),
                    path: (*path).to_owned(),
                },
                ["registry", sid, key] => Grant::Registry {
                    sid: (*sid).to_owned(),
                    key: (*key).to_owned(),
                },
                ["profile", name] => Grant::Profile {
                    name: (*name).to_owned(),
                },
                ["label", path] => Grant::Label {
                    path: (*path).to_owned(),
                },
                ["keylabel", key] => Grant::KeyLabel {
                    key: (*key).to_owned(),
                },
                ["kept", workspace] => Grant::Kept {
                    workspace: (*workspace).to_owned(),
                },
                [kind, ..] => {
                    return Err(corrupt(format!(
                        "unknown record `{kind}` with {} fields (expected file, registry, profile, label, keylabel or kept)",
                        fields.len()
                    )));
                }
                [] => return Err(corrupt("empty record".to_owned())),
            };
            grant.check().map_err(corrupt)?;
            grants.push(grant);
        }
        Ok(grants)
    }

    /// Deletes the journal once every grant in it has been undone.
    pub fn discard(&self) -> Result<(), JournalError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Rewrites the journal with only `remaining` (the grants that could not be undone yet): the
    /// records go to `<journal>.tmp`, flushed, which then replaces the journal in one rename
    /// (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING` on Windows). A crash in between leaves the
    /// old journal, whose grants are undone again (undoing twice is harmless).
    pub fn keep_only(&self, remaining: &[Grant]) -> Result<(), JournalError> {
        if remaining.is_empty() {
            return self.discard();
        }
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = GrantJournal {
            path: PathBuf::from(tmp_name),
        };
        tmp.discard()?;
        File::create(&tmp.path).map_err(|source| JournalError::Io {
            path: tmp.path.clone(),
            source,
        })?;
        remaining.iter().try_for_each(|g| tmp.record(g))?;
        fs::rename(&tmp.path, &self.path).map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Takes the sandbox name's lock for as long as the returned file is open: `<name>.lock`
    /// opened with no sharing (Windows), so a second `sandbox run --name X` cannot replay the
    /// journal and undo the first one's grants while it runs.
    #[cfg(windows)]
    pub fn lock(&self) -> Result<File, JournalError> {
        use std::os::windows::fs::OpenOptionsExt;
        let path = self.path.with_extension("lock");
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .share_mode(0)
            .open(&path)
            .map_err(|source| JournalError::Busy { path, source })
    }
}

/// Whether a start may reuse the journal's grants: they were kept (`--keep-grants`) for this
/// workspace. Grants kept for another workspace are undone first, like a crashed run's.
pub fn kept_for(entries: &[Grant], workspace: &str) -> bool {
    entries.iter().any(|g| match g {
        Grant::Kept { workspace: w } => w.eq_ignore_ascii_case(workspace),
        _ => false,
    })
}

/// Makes `grant` unless a kept journal already has it and it is still in force: journaled
/// first (when not journaled yet), then made by `make`. `in_force` only reads the object. Returns
/// whether `make` ran (a security descriptor was written).
pub fn ensure<E>(
    journal: &GrantJournal,
    kept: &[Grant],
    grant: &Grant,
    in_force: impl FnOnce() -> Result<bool, E>,
    make: impl FnOnce() -> Result<(), E>,
    journal_error: impl FnOnce(JournalError) -> E,
) -> Result<bool, E> {
    if kept.contains(grant) {
        if in_force()? {
            return Ok(false);
        }
    } else {
        journal.record(grant).map_err(journal_error)?;
    }
    make()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agentsh-grants-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn recorded_grants_read_back_in_order_and_survive_a_new_handle() {
        let dir = temp_dir("order");
        let grants = vec![
            Grant::Profile {
                name: "agentsh.demo".into(),
            },
            Grant::File {
                sid: "S-1-15-2-1-2-3".into(),
                path: r"C:\work\space dir".into(),
            },
            Grant::Registry {
                sid: "S-1-15-2-1-2-3".into(),
                key: r"CURRENT_USER\SOFTWARE\demo".into(),
            },
            Grant::Label {
                path: r"C:\work\space dir".into(),
            },
            Grant::KeyLabel {
                key: r"CURRENT_USER\SOFTWARE\demo".into(),
            },
        ];
        let journal = GrantJournal::in_dir(&dir, "demo").expect("journal");
        for g in &grants {
            journal.record(g).expect("record");
        }
        // A crashed process leaves the file; a new process reads it back.
        let reopened = GrantJournal::in_dir(&dir, "demo").expect("journal");
        assert_eq!(reopened.entries().expect("entries"), grants);
        reopened.keep_only(&grants[2..]).expect("keep");
        assert_eq!(reopened.entries().expect("entries"), grants[2..]);
        let mut tmp = reopened.path().as_os_str().to_owned();
        tmp.push(".tmp");
        assert!(
            !Path::new(&tmp).exists(),
            "the rewrite replaced the journal"
        );
        reopened.discard().expect("discard");
        assert_eq!(reopened.entries().expect("entries"), Vec::new());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_line_is_reported_with_its_number() {
        let dir = temp_dir("corrupt");
        let journal = GrantJournal::in_dir(&dir, "x").expect("journal");
        fs::write(journal.path(), "profile\tagentsh.x\nacl\tS-1\n").expect("write");
        let err = journal.entries().expect_err("corrupt");
        let text = err.to_string();
        assert!(
            text.ends_with(
                ":2: unknown record `acl` with 2 fields (expected file, registry, profile, label, keylabel or kept)"
            ),
            "{text}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_agentsh_could_not_have_made_are_refused_before_anything_is_undone() {
        let dir = temp_dir("forged");
        let journal = GrantJournal::in_dir(&dir, "x").expect("journal");
        for (line, why) in [
            (
                "profile\tMicrosoft.WindowsCalculator_8wekyb3d8bbwe",
                "not an agentsh profile",
            ),
            ("profile\tagentsh.", "not an agentsh profile"),
            ("file\tS-1-5-32-545\tC:\\Windows", "not an AppContainer SID"),
            (
                "registry\tS-1-15-2-1\tMACHINE\\SOFTWARE\\x",
                "not a key under",
            ),
            ("keylabel\tCURRENT_USER\\SOFTWARE\\..\\x", "not a key under"),
            ("keylabel\tCURRENT_USER\\SOFTWARE\\", "not a key under"),
        ] {
            fs::write(journal.path(), format!("profile\tagentsh.x\n{line}\n")).expect("write");
            let err = journal.entries().expect_err(line).to_string();
            assert!(err.contains(":2: ") && err.contains(why), "{line}: {err}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn path_with_tab_is_refused_not_recorded() {
        let dir = temp_dir("tab");
        let journal = GrantJournal::in_dir(&dir, "x").expect("journal");
        let err = journal
            .record(&Grant::File {
                sid: "S-1".into(),
                path: "a\tb".into(),
            })
            .expect_err("tab");
        assert!(matches!(err, JournalError::Unrecordable { .. }));
        assert_eq!(journal.entries().expect("entries"), Vec::new());
        let _ = fs::remove_dir_all(&dir);
    }

    /// A workspace of `files` files: a grant on its root is inherited by every file, so writing
    /// it writes one security descriptor per object, as `SetNamedSecurityInfoW` propagating an
    /// inheritable ACE does.
    struct FakeTree {
        files: u64,
        in_force: std::collections::HashSet<Grant>,
        writes: u64,
    }

    impl FakeTree {
        /// One sandbox start as the Windows code does it: a kept journal for this workspace is
        /// reused, anything else is undone first; then each grant is ensured.
        fn start(&mut self, journal: &GrantJournal, workspace: &str, keep: bool) {
            let entries = journal.entries().expect("entries");
            let kept = if keep && kept_for(&entries, workspace) {
                entries
            } else {
                for g in entries {
                    self.undo(&g);
                }
                journal.discard().expect("discard");
                Vec::new()
            };
            let sid = "S-1-15-2-1-2-3".to_owned();
            for grant in [
                Grant::Profile {
                    name: "agentsh.demo".into(),
                },
                Grant::File {
                    sid: sid.clone(),
                    path: workspace.into(),
                },
                Grant::Label {
                    path: workspace.into(),
                },
            ] {
                let present = self.in_force.contains(&grant);
                let objects = match grant {
                    Grant::Profile { .. } => 0,
                    _ => self.files + 1,
                };
                let mut writes = 0;
                let mut made = false;
                ensure(
                    journal,
                    &kept,
                    &grant,
                    || Ok::<_, String>(present),
                    || {
                        writes = objects;
                        made = true;
                        Ok(())
                    },
                    |e| e.to_string(),
                )
                .expect("ensure");
                self.writes += writes;
                if made {
                    self.in_force.insert(grant);
                }
            }
            if keep && !kept_for(&kept, workspace) {
                journal
                    .record(&Grant::Kept {
                        workspace: workspace.into(),
                    })
                    .expect("kept");
            }
        }

        /// Close: kept grants stay, others are undone.
        fn close(&mut self, journal: &GrantJournal, keep: bool) {
            if keep {
                return;
            }
            for g in journal.entries().expect("entries") {
                self.undo(&g);
            }
            journal.discard().expect("discard");
        }

        fn undo(&mut self, g: &Grant) {
            if self.in_force.remove(g) && !matches!(g, Grant::Profile { .. }) {
                self.writes += self.files + 1;
            }
        }
    }

    #[test]
    fn kept_grants_make_a_repeated_run_write_no_security_descriptor() {
        let dir = temp_dir("keep");
        let journal = GrantJournal::in_dir(&dir, "demo").expect("journal");
        let mut tree = FakeTree {
            files: 10_000,
            in_force: Default::default(),
            writes: 0,
        };
        let ws = r"C:\work\big";
        tree.start(&journal, ws, true);
        tree.close(&journal, true);
        let first = tree.writes;
        // The ACE and the label, each propagated to the root and its 10,000 files.
        assert_eq!(first, 2 * 10_001);
        tree.start(&journal, ws, true);
        tree.close(&journal, true);
        assert_eq!(tree.writes - first, 0, "the second run writes nothing");
        // The same name on another workspace: the kept grants are undone and made anew.
        let before = tree.writes;
        tree.start(&journal, r"C:\work\other", true);
        assert_eq!(tree.writes - before, 4 * 10_001);
        tree.close(&journal, true);
        // A kept grant removed behind the journal's back is made again.
        tree.in_force.retain(|g| !matches!(g, Grant::Label { .. }));
        let before = tree.writes;
        tree.start(&journal, r"C:\work\other", true);
        assert_eq!(tree.writes - before, 10_001);
        let entries = journal.entries().expect("entries");
        assert_eq!(
            entries
                .iter()
                .filter(|g| matches!(g, Grant::Label { .. }))
                .count(),
            1,
            "nothing is journaled twice: {entries:?}"
        );
        // Without --keep-grants the grants are undone at the end, as before.
        tree.close(&journal, false);
        assert!(tree.in_force.is_empty());
        assert_eq!(journal.entries().expect("entries"), Vec::new());
        let before = tree.writes;
        tree.start(&journal, ws, false);
        tree.close(&journal, false);
        assert_eq!(
            tree.writes - before,
            4 * 10_001,
            "made and undone every run"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_kept_record_reads_back() {
        let dir = temp_dir("keptrec");
        let journal = GrantJournal::in_dir(&dir, "demo").expect("journal");
        let kept = Grant::Kept {
            workspace: r"C:\work".into(),
        };
        journal.record(&kept).expect("record");
        let entries = journal.entries().expect("entries");
        assert_eq!(entries, vec![kept]);
        assert!(kept_for(&entries, r"c:\WORK"));
        assert!(!kept_for(&entries, r"C:\work2"));
        let _ = fs::remove_dir_all(&dir);
    }
}
