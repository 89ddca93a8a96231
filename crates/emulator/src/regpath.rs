//! Registry key names as the configuration manager reports them to a callback: the trace may say
//! `HKLM\...` or `HKCU\...`, the kernel sees `\REGISTRY\MACHINE\...` and `\REGISTRY\USER\<SID>\...`
//! with `ControlSet001` for `CurrentControlSet` and the per-user classes hive split off.

/// The SID a simulated process runs as when its trace line gives none.
pub const DEFAULT_USER_SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

/// Translates a trace key into kernel form for a process running as `user_sid`. Keys already in
/// kernel form (`\REGISTRY\...`) are passed through unchanged.
pub fn kernel_key_path(key: &str, user_sid: &str) -> Result<String, String> {
    let key = key.trim_end_matches('\\');
    if starts_with_ascii_ci(key, "\\REGISTRY\\") {
        return Ok(key.to_owned());
    }
    let (root, rest) = match key.split_once('\\') {
        Some((root, rest)) => (root, rest),
        None => (key, ""),
    };
    let machine = |rest: &str| join("\\REGISTRY\\MACHINE", &current_control_set(rest));
    let upper = root.to_ascii_uppercase();
    match upper.as_str() {
        "HKLM" | "HKEY_LOCAL_MACHINE" => Ok(machine(rest)),
        "HKCU" | "HKEY_CURRENT_USER" => {
            if let Some(classes) = strip_prefix_ci(rest, "SOFTWARE\\CLASSES") {
                Ok(join(
                    &format!("\\REGISTRY\\USER\\{user_sid}_Classes"),
                    classes.trim_start_matches('\\'),
                ))
            } else {
                Ok(join(&format!("\\REGISTRY\\USER\\{user_sid}"), rest))
            }
        }
        "HKU" | "HKEY_USERS" => Ok(join("\\REGISTRY\\USER", rest)),
        "HKCR" | "HKEY_CLASSES_ROOT" => Ok(join("\\REGISTRY\\MACHINE\\SOFTWARE\\Classes", rest)),
        _ => Err(format!(
            "unknown root `{root}` (expected HKLM, HKCU, HKU, HKCR, their long names, or a \\REGISTRY\\ path)"
        )),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if !starts_with_ascii_ci(s, prefix) {
        return None;
    }
    let rest = s.get(prefix.len()..)?;
    (rest.is_empty() || rest.starts_with('\\')).then_some(rest)
}

// Roots and the prefixes rewritten here are ASCII, so ASCII folding is exact for them.
fn starts_with_ascii_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// `CurrentControlSet` is a link; the kernel reports the set it points at.
fn current_control_set(rest: &str) -> String {
    match strip_prefix_ci(rest, "SYSTEM\\CURRENTCONTROLSET") {
        Some(tail) => format!("SYSTEM\\ControlSet001{tail}"),
        None => rest.to_owned(),
    }
}

fn join(base: &str, rest: &str) -> String {
    if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}\\{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(
            kernel_key_path(input, "S-1-5-21-9").as_deref(),
            Ok(expected),
            "{input}"
        );
    }

    #[test]
    fn translates_roots_as_the_kernel_reports_them() {
        check(
            "HKLM\\SOFTWARE\\Microsoft",
            "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft",
        );
        check(
            "HKEY_LOCAL_MACHINE\\SOFTWARE",
            "\\REGISTRY\\MACHINE\\SOFTWARE",
        );
        check(
            "HKCU\\SOFTWARE\\TestApp\\config",
            "\\REGISTRY\\USER\\S-1-5-21-9\\SOFTWARE\\TestApp\\config",
        );
        check(
            "hkcu\\Software\\Classes\\CLSID\\x",
            "\\REGISTRY\\USER\\S-1-5-21-9_Classes\\CLSID\\x",
        );
        check(
            "HKCU\\Software\\ClassesX",
            "\\REGISTRY\\USER\\S-1-5-21-9\\Software\\ClassesX",
        );
        check(
            "HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil",
            "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil",
        );
        check(
            "HKU\\.DEFAULT\\Software",
            "\\REGISTRY\\USER\\.DEFAULT\\Software",
        );
        check("HKCR\\.txt", "\\REGISTRY\\MACHINE\\SOFTWARE\\Classes\\.txt");
        check(
            "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet",
            "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet",
        );
        check("HKLM\\SOFTWARE\\", "\\REGISTRY\\MACHINE\\SOFTWARE");
        check("HKLM", "\\REGISTRY\\MACHINE");
    }

    #[test]
    fn unknown_root_is_an_error() {
        assert!(
            kernel_key_path("HKXX\\a", "S").is_err_and(|e| e.starts_with("unknown root `HKXX`"))
        );
    }
}
