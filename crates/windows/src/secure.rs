//! Security descriptors agentsh writes, as SDDL, and the checks that they say what they must.
//!
//! - The API token file and its folder: a protected DACL (SYSTEM, Administrators and the account
//!   the service runs as may write; interactive users, who start sandboxes and answer approvals,
//!   may read) and a mandatory label at Medium with no-read-up, no-write-up and no-execute-up:
//!   a Low-integrity process (the restricted-token fallback) or an AppContainer (Low too) cannot
//!   open it even though the DACL names its user.
//! - The AppContainer's application key `HKCU\SOFTWARE\<app>`: a Low label with no-write-up,
//!   inherited by subkeys, so the Low-integrity container can write the key its ACE grants it
//!   (an unlabelled key counts as Medium and no-write-up removes every write right).
//!
//! Windows enforces these; Wine stores and returns them but enforces neither DACLs nor labels, so
//! the tests under Wine check what was written (read back with `GetNamedSecurityInfoW`).

/// The token file's descriptor for a service running as `owner_sid`.
pub fn token_file_sddl(owner_sid: &str) -> String {
    format!("D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;{owner_sid})(A;;FR;;;IU)S:(ML;;NRNWNX;;;ME)")
}

/// The token folder's descriptor: the same, inherited by what is created in it.
pub fn token_dir_sddl(owner_sid: &str) -> String {
    format!(
        "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;{owner_sid})(A;OICI;FR;;;IU)S:(ML;OICI;NRNWNX;;;ME)"
    )
}

/// The service's own state files that hold secrets (the session table with its tokens): a
/// protected DACL for SYSTEM, Administrators and the service's account only — no one else may
/// read them, at any integrity level, so no label is needed.
pub fn service_file_sddl(owner_sid: &str) -> String {
    format!("D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;{owner_sid})")
}

/// The application key's label: Low, no-write-up, inherited by subkeys (registry keys have no
/// objects, so container inheritance only).
pub const APP_KEY_LABEL_SDDL: &str = "S:(ML;CI;NW;;;LW)";

/// The ACEs of one part (`'D'` for the DACL, `'S'` for the SACL) of an SDDL string, each split
/// into its six fields.
pub fn aces(sddl: &str, part: char) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<char> = None;
    let mut depth = 0usize;
    let mut ace = String::new();
    let chars: Vec<char> = sddl.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '(' => {
                depth += 1;
                ace.clear();
            }
            ')' => {
                depth = depth.saturating_sub(1);
                if current == Some(part) {
                    out.push(ace.split(';').map(str::to_owned).collect());
                }
            }
            'O' | 'G' | 'D' | 'S' if depth == 0 && chars.get(i + 1) == Some(&':') => {
                current = Some(c);
            }
            _ if depth > 0 => ace.push(c),
            _ => {}
        }
    }
    out
}

/// What a token-file descriptor read back must show: a protected DACL with no ACE for
/// AppContainers (`AC`, S-1-15-2-1) or for Low integrity's everyone, and a Medium label that
/// forbids reading up. Returns the first problem.
pub fn check_secret_sddl(sddl: &str) -> Result<(), String> {
    if !sddl.contains("D:P") {
        return Err(format!(
            "`{sddl}`: the DACL is not protected from inheritance"
        ));
    }
    for ace in aces(sddl, 'D') {
        let trustee = ace.get(5).map(String::as_str).unwrap_or_default();
        if matches!(trustee, "AC" | "S-1-15-2-1" | "WD" | "AN" | "BG") {
            return Err(format!("`{sddl}`: the DACL grants `{trustee}`"));
        }
    }
    let label = aces(sddl, 'S')
        .into_iter()
        .find(|a| a.first().map(String::as_str) == Some("ML"))
        .ok_or_else(|| format!("`{sddl}`: no mandatory label"))?;
    let rights = label.get(2).map(String::as_str).unwrap_or_default();
    let level = label.get(5).map(String::as_str).unwrap_or_default();
    if !rights.contains("NR") || !matches!(level, "ME" | "HI" | "SI") {
        return Err(format!(
            "`{sddl}`: the label must be Medium or above with no-read-up (NR)"
        ));
    }
    Ok(())
}

/// The mandatory label an object's SDDL carries, as it matters to a Low-integrity writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelState {
    /// No label: the object counts as Medium with no-write-up, so Low processes cannot write it.
    None,
    /// Low (or Untrusted) — Low processes may write.
    Low,
    /// A label above Low with no-write-up (the ACE, as SDDL): Low processes cannot write.
    Above(String),
}

/// Reads the label ACE (`ML`) of `sddl`: its level (`LW`/`S-1-16-4096` and below count as Low,
/// as does a label without the no-write-up `NW` right, which then restricts no write).
pub fn label_state(sddl: &str) -> LabelState {
    let Some(label) = aces(sddl, 'S')
        .into_iter()
        .find(|a| a.first().map(String::as_str) == Some("ML"))
    else {
        return LabelState::None;
    };
    let rights = label.get(2).map(String::as_str).unwrap_or_default();
    let level = label.get(5).map(String::as_str).unwrap_or_default();
    let low = matches!(level, "LW" | "S-1-16-4096" | "S-1-16-0")
        || level
            .strip_prefix("S-1-16-")
            .and_then(|r| r.parse::<u32>().ok())
            .is_some_and(|r| r <= 0x1000);
    if low || !rights.contains("NW") {
        LabelState::Low
    } else {
        LabelState::Above(format!("({})", label.join(";")))
    }
}

#[cfg(windows)]
pub use crate::imp::secure::{
    canonical_sddl, current_user, label_app_key, parse_label, protect_service_file,
    protect_token_file, read_file_sddl, read_key_sddl,
};

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "S-1-5-18";

    #[test]
    fn a_service_file_is_for_system_administrators_and_the_service_only() {
        let sddl = service_file_sddl("S-1-5-21-1-2-3-500");
        assert!(sddl.starts_with("D:P"), "protected: nothing inherited");
        let trustees: Vec<String> = aces(&sddl, 'D')
            .iter()
            .map(|a| {
                assert_eq!((a[0].as_str(), a[2].as_str()), ("A", "FA"), "{a:?}");
                a[5].clone()
            })
            .collect();
        assert_eq!(trustees, ["SY", "BA", "S-1-5-21-1-2-3-500"]);
    }

    #[test]
    fn the_token_file_and_folder_forbid_reading_up_and_name_no_container() {
        for sddl in [token_file_sddl(OWNER), token_dir_sddl(OWNER)] {
            check_secret_sddl(&sddl).expect("secret descriptor");
            let sacl = aces(&sddl, 'S');
            let label = &sacl[0];
            assert_eq!(label[0], "ML");
            assert_eq!(label[2], "NRNWNX");
            assert_eq!(label[5], "ME");
            let dacl = aces(&sddl, 'D');
            let trustees: Vec<&str> = dacl.iter().map(|a| a[5].as_str()).collect();
            assert_eq!(trustees, ["SY", "BA", OWNER, "IU"]);
            let writers: Vec<&str> = dacl
                .iter()
                .filter(|a| a[2] == "FA")
                .map(|a| a[5].as_str())
                .collect();
            assert_eq!(writers, ["SY", "BA", OWNER]);
        }
        assert!(token_dir_sddl(OWNER).contains("(ML;OICI;NRNWNX;;;ME)"));
    }

    #[test]
    fn the_check_refuses_what_a_container_or_low_process_could_read() {
        for (bad, why) in [
            ("D:(A;;FA;;;SY)S:(ML;;NRNWNX;;;ME)", "not protected"),
            (
                "D:P(A;;FA;;;SY)(A;;FR;;;AC)S:(ML;;NRNWNX;;;ME)",
                "grants `AC`",
            ),
            (
                "D:P(A;;FA;;;SY)(A;;FR;;;WD)S:(ML;;NRNWNX;;;ME)",
                "grants `WD`",
            ),
            ("D:P(A;;FA;;;SY)", "no mandatory label"),
            ("D:P(A;;FA;;;SY)S:(ML;;NW;;;ME)", "no-read-up"),
            ("D:P(A;;FA;;;SY)S:(ML;;NRNW;;;LW)", "no-read-up"),
        ] {
            let err = check_secret_sddl(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_label_is_read_for_its_level_and_no_write_up() {
        assert_eq!(label_state("D:(A;;FA;;;WD)"), LabelState::None);
        assert_eq!(label_state("S:(ML;OICI;NW;;;LW)"), LabelState::Low);
        assert_eq!(
            label_state("S:(ML;OICIID;NW;;;S-1-16-4096)"),
            LabelState::Low
        );
        assert_eq!(
            label_state("S:(ML;;NR;;;ME)"),
            LabelState::Low,
            "no NW: writes pass"
        );
        assert_eq!(
            label_state("S:(ML;OICI;NW;;;ME)"),
            LabelState::Above("(ML;OICI;NW;;;ME)".into())
        );
        assert_eq!(
            label_state("D:P(A;;FA;;;SY)S:(ML;;NWNR;;;HI)"),
            LabelState::Above("(ML;;NWNR;;;HI)".into())
        );
        assert_eq!(
            label_state("S:(ML;;NW;;;S-1-16-8192)"),
            LabelState::Above("(ML;;NW;;;S-1-16-8192)".into())
        );
    }

    #[test]
    fn the_app_key_label_is_low_no_write_up_for_subkeys() {
        let sacl = aces(APP_KEY_LABEL_SDDL, 'S');
        assert_eq!(
            &sacl[0],
            &["ML", "CI", "NW", "", "", "LW"].map(String::from).to_vec()
        );
    }
}
