//! Canonical registry key paths: one spelling for every way Windows and people name the same key,
//! so that a rule written as `HKCU\Software\...` matches what the kernel reports as
//! `\REGISTRY\USER\<SID>_Classes\...`, and so that matching and cache keys agree.
//!
//! The canonical form (documented in docs/policy.md) is:
//! - upper case, by the Windows per-code-unit upcase rule of `agentsh-winstr` (not ASCII only);
//! - components separated by exactly one `\`, no leading or trailing `\`;
//! - the root is one of `HKLM`, `HKCU` (the hive of the session's user), `HKU\<SID>` (any other
//!   user, `HKU\.DEFAULT` for the default hive and LocalSystem's `S-1-5-18`), or the kernel's own
//!   name without the leading `\` for anything else (`REGISTRY\A\...` application hives);
//! - `<SID>_Classes` is `<SID>\SOFTWARE\CLASSES`, `HKCR` is `HKLM\SOFTWARE\CLASSES` (rules
//!   written with `HKCR` cover both `HKLM` and `HKCU` classes; see the pattern compiler);
//! - `HKLM\SYSTEM\ControlSetNNN` is `HKLM\SYSTEM\CURRENTCONTROLSET` (every numbered set: a
//!   last-known-good set becomes current at the next boot);
//! - `WOW6432Node` directly under `SOFTWARE` or `SOFTWARE\Classes` is removed (32-bit views are
//!   the same policy object as the native view).
//!
//! Value names are not part of the key path: they may contain `\` and are kept apart.

use std::fmt;

/// The system's own account hive is the `.DEFAULT` hive.
const LOCAL_SYSTEM_SID: &str = "S-1-5-18";
const CLASSES_SUFFIX: &str = "_CLASSES";

/// Which hive family a canonical key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    /// `HKLM`
    Machine,
    /// `HKCU`: the user hive of the session's user.
    CurrentUser,
    /// `HKU\<SID>`: any other user hive, or `HKU` itself.
    Users,
    /// A root agentsh has no short name for (application hives, silos), kept as the kernel names it.
    Other,
}

/// A registry key path in canonical form (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalKey {
    text: String,
    root: Root,
}

impl CanonicalKey {
    /// The canonical text, e.g. `HKLM\SOFTWARE\MICROSOFT`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical text, owned.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The hive family.
    pub fn root(&self) -> Root {
        self.root
    }

    /// The canonical path of a sibling named `name` (what a rename produces). The name is
    /// canonicalized like any component; a name containing `\` is read as a full path.
    pub fn sibling(&self, name: &str, session_sid: Option<&str>) -> CanonicalKey {
        if name.contains('\\') {
            return canonicalize(name, session_sid);
        }
        let parent = self.text.rsplit_once('\\').map_or("", |(p, _)| p);
        let mut joined = String::with_capacity(parent.len() + 1 + name.len());
        joined.push_str(parent);
        joined.push('\\');
        joined.push_str(name);
        canonicalize(&joined, session_sid)
    }
}

impl fmt::Display for CanonicalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Upper-cases `s` with the Windows rule, appending to `out`.
pub(crate) fn push_upcased(out: &mut String, s: &str) {
    if s.is_ascii() {
        out.push_str(s);
        let start = out.len() - s.len();
        // Safe slice of ASCII bytes just pushed; upcasing ASCII keeps the string valid UTF-8.
        out[start..].make_ascii_uppercase();
        return;
    }
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(agentsh_winstr::upcase_char(c));
        }
    }
}

/// Upper-cases `s` with the Windows rule.
pub fn upcase(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    let mut out = String::with_capacity(s.len());
    push_upcased(&mut out, s);
    out
}

/// Canonicalizes a registry key path in any spelling: kernel form (`\REGISTRY\MACHINE\...`,
/// `\REGISTRY\USER\<SID>[_Classes]\...`) or user form (`HKLM`, `HKEY_LOCAL_MACHINE`, `HKCU`,
/// `HKU`, `HKCR`, `HKCC`, an optional `Computer\` prefix as regedit copies it).
///
/// `session_sid` is the SID of the session's user: its hive is `HKCU`. Canonicalization is total:
/// an unknown root is kept (upper-cased) under [`Root::Other`], so no rule written for a known
/// hive can match it by accident.
pub fn canonicalize(path: &str, session_sid: Option<&str>) -> CanonicalKey {
    fast_kernel_form(path, session_sid).unwrap_or_else(|| canonicalize_general(path, session_sid))
}

const KERNEL_MACHINE: &str = "\\REGISTRY\\MACHINE\\";
const KERNEL_USER: &str = "\\REGISTRY\\USER\\";

/// The common case, in one pass: a clean ASCII kernel path under `\REGISTRY\MACHINE` or the
/// session user's `\REGISTRY\USER\<SID>`. Anything else (non-ASCII, repeated or trailing `\`,
/// classes hives, other users, WOW6432Node) takes the general path; both give the same result
/// (property-tested).
fn fast_kernel_form(path: &str, session_sid: Option<&str>) -> Option<CanonicalKey> {
    let b = path.as_bytes();
    let prefix_ci = |p: &str| b.len() > p.len() && b[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let mut classes = false;
    let (root, rest) = if prefix_ci(KERNEL_MACHINE) {
        (Root::Machine, &path[KERNEL_MACHINE.len()..])
    } else if prefix_ci(KERNEL_USER) {
        let sid = session_sid?;
        let after = &path[KERNEL_USER.len()..];
        let ab = after.as_bytes();
        if ab.len() <= sid.len() + 1 || !ab[..sid.len()].eq_ignore_ascii_case(sid.as_bytes()) {
            return None;
        }
        let tail = &after[sid.len()..];
        const CLASSES_HIVE: &str = "_CLASSES\\";
        if tail.len() > CLASSES_HIVE.len()
            && tail.as_bytes()[..CLASSES_HIVE.len()].eq_ignore_ascii_case(CLASSES_HIVE.as_bytes())
        {
            classes = true;
            (Root::CurrentUser, &tail[CLASSES_HIVE.len()..])
        } else if tail.as_bytes()[0] == b'\\' {
            (Root::CurrentUser, &tail[1..])
        } else {
            return None;
        }
    } else {
        return None;
    };
    if !rest.is_ascii() || rest.starts_with('\\') || rest.ends_with('\\') || rest.contains("\\\\") {
        return None;
    }
    let mut comps = rest.split('\\');
    let first = comps.next().unwrap_or("");
    let second = comps.next().unwrap_or("");
    let third = comps.next().unwrap_or("");
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let folds = if classes {
        eq(first, "WOW6432NODE")
    } else {
        eq(first, "SOFTWARE")
            && (eq(second, "WOW6432NODE") || (eq(second, "CLASSES") && eq(third, "WOW6432NODE")))
    };
    if folds {
        return None;
    }
    let mut text = String::with_capacity(rest.len() + 24);
    text.push_str(match (root, classes) {
        (Root::Machine, _) => "HKLM\\",
        (_, true) => "HKCU\\SOFTWARE\\CLASSES\\",
        _ => "HKCU\\",
    });
    let control_set = root == Root::Machine
        && eq(first, "SYSTEM")
        && second.len() == 13
        && second[..10].eq_ignore_ascii_case("CONTROLSET")
        && second.as_bytes()[10..].iter().all(u8::is_ascii_digit);
    if control_set {
        text.push_str("SYSTEM\\CURRENTCONTROLSET");
        let skip = first.len() + 1 + second.len();
        text.push_str(&rest[skip..]);
    } else {
        text.push_str(rest);
    }
    text.make_ascii_uppercase();
    Some(CanonicalKey { text, root })
}

/// The general canonicalization every spelling goes through.
fn canonicalize_general(path: &str, session_sid: Option<&str>) -> CanonicalKey {
    let upper = upcase(path);
    // Only the leading components need interpretation (root, SID, SOFTWARE\CLASSES\WOW6432NODE,
    // SYSTEM\CONTROLSETNNN, an optional `COMPUTER\` prefix); the rest is copied.
    let mut head = Comps::new();
    let mut tail = "";
    let mut rest = upper.as_str();
    while let Some(comp) = next_component(&mut rest) {
        head.push(comp);
        if head.len() == HEAD_COMPONENTS {
            tail = rest;
            break;
        }
    }
    let resolved = resolve(&head, session_sid);
    let mut text = String::with_capacity(upper.len() + 24);
    for (i, c) in resolved.comps.iter().enumerate() {
        if i > 0 {
            text.push('\\');
        }
        text.push_str(c);
    }
    while let Some(comp) = next_component(&mut tail) {
        if !text.is_empty() {
            text.push('\\');
        }
        text.push_str(comp);
    }
    CanonicalKey {
        text,
        root: resolved.root,
    }
}

/// Enough leading components for every alias `resolve` folds (see [`canonicalize`]).
const HEAD_COMPONENTS: usize = 8;

/// The next non-empty `\`-separated component of `rest`, advancing it.
fn next_component<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches('\\');
    if s.is_empty() {
        *rest = s;
        return None;
    }
    let end = s.find('\\').unwrap_or(s.len());
    let (comp, after) = s.split_at(end);
    *rest = after;
    Some(comp)
}

/// Canonicalizes a UTF-16 path as the kernel sends it, as name text
/// (`agentsh_winstr::name::decode`): an unpaired surrogate (legal in registry names) is a
/// reserved character that case folding leaves alone and that no rule's literal text contains, so
/// it matches only itself, and two paths canonicalize alike exactly when Windows would call them
/// the same name.
pub fn canonicalize_utf16(path: &[u16], session_sid: Option<&str>) -> CanonicalKey {
    let text: String = agentsh_winstr::name::decode(path).collect();
    canonicalize(&text, session_sid)
}

/// Path components without a heap allocation for ordinary depths.
pub(crate) type Comps<'a> = smallvec::SmallVec<[&'a str; 24]>;

pub(crate) struct Resolved<'a> {
    pub root: Root,
    pub comps: Comps<'a>,
}

/// Maps the root spelling of upper-cased components onto the canonical root and folds the
/// view aliases. Shared by key canonicalization and the pattern compiler (pattern components
/// may contain wildcards; only literal components are folded).
pub(crate) fn resolve<'a>(comps: &[&'a str], session_sid: Option<&str>) -> Resolved<'a> {
    let mut comps = comps;
    if comps.len() > 1 && comps[0] == "COMPUTER" && comps[1].starts_with("HKEY_") {
        comps = &comps[1..];
    }
    let Some(&first) = comps.first() else {
        return Resolved {
            root: Root::Other,
            comps: Comps::new(),
        };
    };
    let mut out = Comps::new();
    let root = match first {
        "HKLM" | "HKEY_LOCAL_MACHINE" => {
            out.push("HKLM");
            out.extend_from_slice(&comps[1..]);
            Root::Machine
        }
        "HKCU" | "HKEY_CURRENT_USER" => {
            out.push("HKCU");
            out.extend_from_slice(&comps[1..]);
            Root::CurrentUser
        }
        "HKCR" | "HKEY_CLASSES_ROOT" => {
            out.extend_from_slice(&["HKLM", "SOFTWARE", "CLASSES"]);
            out.extend_from_slice(&comps[1..]);
            Root::Machine
        }
        "HKCC" | "HKEY_CURRENT_CONFIG" => {
            out.extend_from_slice(&[
                "HKLM",
                "SYSTEM",
                "CURRENTCONTROLSET",
                "HARDWARE PROFILES",
                "CURRENT",
            ]);
            out.extend_from_slice(&comps[1..]);
            Root::Machine
        }
        "HKU" | "HKEY_USERS" => user_hive(&comps[1..], session_sid, &mut out),
        "REGISTRY" if comps.get(1) == Some(&"MACHINE") => {
            out.push("HKLM");
            out.extend_from_slice(&comps[2..]);
            Root::Machine
        }
        "REGISTRY" if comps.get(1) == Some(&"USER") => {
            user_hive(&comps[2..], session_sid, &mut out)
        }
        _ => {
            out.extend_from_slice(comps);
            Root::Other
        }
    };
    let hive_start = match root {
        Root::Machine | Root::CurrentUser => 1,
        Root::Users => 2,
        Root::Other => return Resolved { root, comps: out },
    };
    fold_views(&mut out, hive_start, root);
    Resolved { root, comps: out }
}

fn user_hive<'a>(rest: &[&'a str], session_sid: Option<&str>, out: &mut Comps<'a>) -> Root {
    let Some(&sid_comp) = rest.first() else {
        out.push("HKU");
        return Root::Users;
    };
    let (sid, classes) = match sid_comp.strip_suffix(CLASSES_SUFFIX) {
        Some(sid) if !sid.is_empty() => (sid, true),
        _ => (sid_comp, false),
    };
    let is_session_user = session_sid.is_some_and(|s| eq_upcased(s, sid));
    let root = if is_session_user {
        out.push("HKCU");
        Root::CurrentUser
    } else {
        out.push("HKU");
        out.push(if sid == LOCAL_SYSTEM_SID {
            ".DEFAULT"
        } else {
            sid
        });
        Root::Users
    };
    if classes {
        out.extend_from_slice(&["SOFTWARE", "CLASSES"]);
    }
    out.extend_from_slice(&rest[1..]);
    root
}

/// Compares a caller-supplied (any case) name with an already upper-cased one.
fn eq_upcased(any_case: &str, upper: &str) -> bool {
    if any_case.is_ascii() {
        return any_case.len() == upper.len()
            && any_case
                .bytes()
                .zip(upper.bytes())
                .all(|(a, b)| a.to_ascii_uppercase() == b);
    }
    let mut a = any_case.chars().map(agentsh_winstr::upcase_char);
    let mut b = upper.chars();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

fn is_numbered_control_set(c: &str) -> bool {
    c.strip_prefix("CONTROLSET")
        .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn fold_views(out: &mut Comps<'_>, hive_start: usize, root: Root) {
    if root == Root::Machine
        && out.get(hive_start) == Some(&"SYSTEM")
        && out
            .get(hive_start + 1)
            .is_some_and(|c| is_numbered_control_set(c))
    {
        out[hive_start + 1] = "CURRENTCONTROLSET";
    }
    if out.get(hive_start) == Some(&"SOFTWARE") {
        if out.get(hive_start + 1) == Some(&"WOW6432NODE") {
            out.remove(hive_start + 1);
        }
        if out.get(hive_start + 1) == Some(&"CLASSES")
            && out.get(hive_start + 2) == Some(&"WOW6432NODE")
        {
            out.remove(hive_start + 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    fn canon(p: &str) -> String {
        canonicalize(p, Some(SID)).as_str().to_owned()
    }

    #[test]
    fn every_spelling_of_the_same_key_is_one_canonical_key() {
        let groups: &[(&str, &[&str])] = &[
            (
                r"HKLM\SOFTWARE\MICROSOFT\WINDOWS\CURRENTVERSION\RUN",
                &[
                    r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
                    r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run",
                    r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\",
                    r"hklm\\software\\microsoft\\windows\\currentversion\\run",
                    r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Run",
                    r"Computer\HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
                ],
            ),
            (
                r"HKCU\SOFTWARE\CLASSES\CLSID\{X}\INPROCSERVER32",
                &[
                    r"\REGISTRY\USER\S-1-5-21-1004336348-1177238915-682003330-1001_Classes\CLSID\{x}\InprocServer32",
                    r"\REGISTRY\USER\S-1-5-21-1004336348-1177238915-682003330-1001\Software\Classes\CLSID\{x}\InprocServer32",
                    r"HKCU\Software\Classes\Wow6432Node\CLSID\{x}\InprocServer32",
                    r"HKEY_USERS\S-1-5-21-1004336348-1177238915-682003330-1001\Software\Classes\CLSID\{x}\InprocServer32",
                ],
            ),
            (
                r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES\EVIL",
                &[
                    r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\evil",
                    r"\REGISTRY\MACHINE\SYSTEM\ControlSet002\Services\evil",
                    r"HKLM\SYSTEM\CurrentControlSet\Services\evil",
                ],
            ),
            (
                r"HKLM\SOFTWARE\CLASSES\.TXT",
                &[
                    r"HKCR\.txt",
                    r"HKEY_CLASSES_ROOT\.txt",
                    r"HKLM\Software\Classes\Wow6432Node\.txt",
                ],
            ),
            (
                r"HKU\.DEFAULT\CONTROL PANEL",
                &[
                    r"HKU\.DEFAULT\Control Panel",
                    r"\REGISTRY\USER\.DEFAULT\Control Panel",
                    r"\REGISTRY\USER\S-1-5-18\Control Panel",
                ],
            ),
            (
                r"HKU\S-1-5-21-9\SOFTWARE\CLASSES",
                &[
                    r"\REGISTRY\USER\S-1-5-21-9_Classes",
                    r"HKU\s-1-5-21-9\Software\Classes",
                ],
            ),
            (r"REGISTRY\A\{1}\X", &[r"\REGISTRY\A\{1}\x"]),
        ];
        for (want, spellings) in groups {
            for s in *spellings {
                assert_eq!(canon(s), *want, "spelling {s}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_general_path(
            root in proptest::sample::select(vec![
                r"\REGISTRY\MACHINE\".to_owned(),
                r"\registry\Machine\".to_owned(),
                format!(r"\REGISTRY\USER\{SID}\"),
                format!(r"\Registry\User\{}\", SID.to_lowercase()),
                format!(r"\REGISTRY\USER\{SID}_Classes\"),
                format!(r"\REGISTRY\USER\{SID}_classes\"),
                format!(r"\REGISTRY\USER\{SID}_Classes"),
                r"\REGISTRY\USER\S-1-5-18\".to_owned(),
            ]),
            comps in proptest::collection::vec(
                proptest::sample::select(vec![
                    "SOFTWARE", "Software", "WOW6432Node", "Classes", "SYSTEM", "ControlSet001",
                    "ControlSet0012", "ControlSetABC", "Run", "x", "", "ß", "Ǆ", "a b",
                ]),
                0..6,
            ),
            sid in proptest::option::of(proptest::sample::select(vec![SID, "S-1-5-18", "S-1-5-21-9"])),
        ) {
            let path = format!("{root}{}", comps.join("\\"));
            proptest::prop_assert_eq!(canonicalize(&path, sid), canonicalize_general(&path, sid), "{}", path);
        }
    }

    #[test]
    fn upcasing_is_windows_upcasing_not_ascii() {
        assert_eq!(canon(r"HKCU\Software\straße\ÿ"), r"HKCU\SOFTWARE\STRAßE\Ÿ");
        assert_eq!(canon(r"HKCU\Software\ǆ"), r"HKCU\SOFTWARE\Ǆ");
    }

    #[test]
    fn without_a_session_sid_user_hives_stay_under_hku() {
        let k = canonicalize(&format!(r"\REGISTRY\USER\{SID}\Software"), None);
        assert_eq!(k.root(), Root::Users);
        assert_eq!(k.as_str(), format!(r"HKU\{SID}\SOFTWARE"));
    }

    #[test]
    fn sibling_is_the_rename_destination() {
        let k = canonicalize(
            r"HKCU\Software\Microsoft\Windows\CurrentVersion\Foo",
            Some(SID),
        );
        assert_eq!(
            k.sibling("Run", Some(SID)).as_str(),
            r"HKCU\SOFTWARE\MICROSOFT\WINDOWS\CURRENTVERSION\RUN"
        );
    }
}
