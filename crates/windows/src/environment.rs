//! The sandboxed command's environment, built rather than inherited: agentsh's own environment
//! holds whatever its user had (cloud credentials, tokens, `AGENTSH_*` settings), and none of it is
//! the command's business. Only the variables of [`ALLOWED`] (and those the caller names with
//! `--pass-env`) are copied; `TEMP`, `TMP`, `APPDATA` and `LOCALAPPDATA` are set to folders inside
//! the workspace, the one place both isolations can write (the AppContainer has an ACE there and
//! the low-integrity fallback a low label), so temporary files of compilers, package managers and
//! git work.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Variables copied from agentsh's environment: where Windows and programs are, the machine's
/// description and the user's names and locale; no credentials, no proxies, no tool settings.
pub const ALLOWED: &[&str] = &[
    "ALLUSERSPROFILE",
    "COMMONPROGRAMFILES",
    "COMMONPROGRAMFILES(X86)",
    "COMMONPROGRAMW6432",
    "COMPUTERNAME",
    "COMSPEC",
    "HOMEDRIVE",
    "HOMEPATH",
    "LANG",
    "LC_ALL",
    "NUMBER_OF_PROCESSORS",
    "OS",
    "PATH",
    "PATHEXT",
    "PROCESSOR_ARCHITECTURE",
    "PROCESSOR_IDENTIFIER",
    "PROCESSOR_LEVEL",
    "PROCESSOR_REVISION",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "PROGRAMFILES(X86)",
    "PROGRAMW6432",
    "PUBLIC",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TZ",
    "USERDOMAIN",
    "USERNAME",
    "USERPROFILE",
    "WINDIR",
];

/// The folder below the workspace that holds the command's temporary and application data.
pub const SANDBOX_DIR: &str = ".agentsh";

/// The writable folders the command's `TEMP`/`TMP`, `APPDATA` and `LOCALAPPDATA` point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    pub temp: PathBuf,
    pub app_data: PathBuf,
    pub local_app_data: PathBuf,
}

impl Folders {
    /// `<workspace>\.agentsh\Temp`, `…\AppData\Roaming`, `…\AppData\Local`.
    pub fn in_workspace(workspace: &Path) -> Folders {
        let base = workspace.join(SANDBOX_DIR);
        Folders {
            temp: base.join("Temp"),
            app_data: base.join("AppData").join("Roaming"),
            local_app_data: base.join("AppData").join("Local"),
        }
    }

    /// Every folder, for creating them before the command starts.
    pub fn all(&self) -> [&Path; 3] {
        [&self.temp, &self.app_data, &self.local_app_data]
    }
}

/// A variable name that `--pass-env` cannot carry: empty, containing `=` or NUL, or one of the
/// variables the sandbox sets itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable name `{0}` cannot be passed (empty, contains `=` or NUL, or is set by the sandbox: TEMP, TMP, APPDATA, LOCALAPPDATA)"
)]
pub struct BadName(pub String);

const SET_BY_SANDBOX: [&str; 4] = ["TEMP", "TMP", "APPDATA", "LOCALAPPDATA"];

/// Checks `--pass-env` names.
pub fn check_pass(names: &[String]) -> Result<(), BadName> {
    for n in names {
        let up = n.to_ascii_uppercase();
        if n.is_empty() || n.contains(['=', '\0']) || SET_BY_SANDBOX.contains(&up.as_str()) {
            return Err(BadName(n.clone()));
        }
    }
    Ok(())
}

/// The command's variables: those of `parent` named by [`ALLOWED`] or `pass` (names compared
/// without regard to case, as Windows does), then the sandbox's folders; sorted by upper-cased
/// name as `CreateProcess` expects of an environment block. Per-drive current directories
/// (`=C:`) are not copied.
pub fn build(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    pass: &[String],
    folders: &Folders,
) -> Vec<(OsString, OsString)> {
    let wanted = |name: &str| {
        let up = name.to_ascii_uppercase();
        !name.starts_with('=')
            && !SET_BY_SANDBOX.contains(&up.as_str())
            && (ALLOWED.contains(&up.as_str()) || pass.iter().any(|p| p.eq_ignore_ascii_case(name)))
    };
    let mut vars: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(k, _)| k.to_str().is_some_and(wanted))
        .collect();
    for (name, dir) in [
        ("TEMP", &folders.temp),
        ("TMP", &folders.temp),
        ("APPDATA", &folders.app_data),
        ("LOCALAPPDATA", &folders.local_app_data),
    ] {
        vars.push((name.into(), dir.as_os_str().to_owned()));
    }
    vars.sort_by_key(|(k, _)| k.to_string_lossy().to_uppercase());
    vars.dedup_by(|a, b| {
        a.0.to_string_lossy()
            .eq_ignore_ascii_case(&b.0.to_string_lossy())
    });
    vars
}

/// The `CREATE_UNICODE_ENVIRONMENT` block: `NAME=VALUE\0` per variable, then a final `\0`.
pub fn block(vars: &[(OsString, OsString)]) -> Vec<u16> {
    let mut out = Vec::new();
    for (k, v) in vars {
        out.extend(k.to_string_lossy().encode_utf16());
        out.push(u16::from(b'='));
        out.extend(v.to_string_lossy().encode_utf16());
        out.push(0);
    }
    if vars.is_empty() {
        out.push(0);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Vec<(OsString, OsString)> {
        [
            ("Path", r"C:\Windows\system32;C:\Tools"),
            ("SystemRoot", r"C:\Windows"),
            ("ComSpec", r"C:\Windows\system32\cmd.exe"),
            ("PATHEXT", ".COM;.EXE;.BAT;.CMD"),
            ("TEMP", r"C:\Users\dev\AppData\Local\Temp"),
            ("TMP", r"C:\Users\dev\AppData\Local\Temp"),
            ("APPDATA", r"C:\Users\dev\AppData\Roaming"),
            ("LOCALAPPDATA", r"C:\Users\dev\AppData\Local"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("GITHUB_TOKEN", "ghp_secret"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("AGENTSH_API_TOKEN", "cafe"),
            ("HTTPS_PROXY", "http://user:pw@proxy:8080"),
            ("CARGO_HOME", r"C:\Users\dev\.cargo"),
            ("=C:", r"C:\Users\dev"),
            ("USERPROFILE", r"C:\Users\dev"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn names(vars: &[(OsString, OsString)]) -> Vec<String> {
        vars.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn only_the_allow_list_passes_and_the_folders_point_into_the_workspace() {
        let folders = Folders::in_workspace(Path::new(r"C:\work"));
        let vars = build(parent(), &[], &folders);
        assert_eq!(
            names(&vars),
            [
                "APPDATA",
                "ComSpec",
                "LOCALAPPDATA",
                "Path",
                "PATHEXT",
                "SystemRoot",
                "TEMP",
                "TMP",
                "USERPROFILE"
            ]
        );
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| PathBuf::from(v))
                .expect(n)
        };
        let base = Path::new(r"C:\work").join(".agentsh");
        assert_eq!(get("TEMP"), base.join("Temp"));
        assert_eq!(get("TMP"), base.join("Temp"));
        assert_eq!(get("APPDATA"), base.join("AppData").join("Roaming"));
        assert_eq!(get("LOCALAPPDATA"), base.join("AppData").join("Local"));
        let all = format!("{vars:?}");
        for secret in [
            "wJalrXUtnFEMI",
            "ghp_secret",
            "sk-secret",
            "cafe",
            "proxy:8080",
        ] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
    }

    #[test]
    fn pass_env_adds_named_variables_but_not_the_sandbox_folders() {
        let folders = Folders::in_workspace(Path::new(r"C:\work"));
        let vars = build(parent(), &["cargo_home".into()], &folders);
        assert!(names(&vars).contains(&"CARGO_HOME".to_owned()));
        assert!(check_pass(&["CARGO_HOME".into()]).is_ok());
        for bad in ["TEMP", "tmp", "", "A=B", "LocalAppData"] {
            assert_eq!(check_pass(&[bad.into()]), Err(BadName(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_block_is_nul_separated_and_double_nul_terminated() {
        let vars: Vec<(OsString, OsString)> =
            vec![("A".into(), "1".into()), ("B".into(), "".into())];
        let want: Vec<u16> = "A=1\0B=\0\0".encode_utf16().collect();
        assert_eq!(block(&vars), want);
        assert_eq!(block(&[]), [0, 0]);
    }
}
