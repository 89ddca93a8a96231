//! The kernel's compact high-risk key set: enough to notify the service about operations of
//! processes outside every session on persistence and defence-evasion keys without a blocking
//! query, and to keep critical keys closed while the service is unavailable.
//!
//! Patterns are written in the kernel's form, upper case. A pattern is a sequence of segments
//! separated by `\`; within a segment `*` matches any run of characters except `\` and `?` one
//! character. A pattern matches a key when it matches the key's first segments exactly: the key
//! itself or any subkey. Templates expand the views a key has in the kernel: 64- and 32-bit
//! (`WOW6432Node`) software hives, machine and every user hive (`\REGISTRY\USER\<SID>`, which
//! also covers `.DEFAULT`), the per-user classes hive (`<SID>_Classes`), and every control set.
//! The policy engine's catalog is the authority for decisions; a test there checks that every
//! catalog entry is covered here.

use alloc::vec::Vec;

/// How severe a high-risk key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Medium,
    High,
    /// Kept closed to sandboxed writes even while the service is unavailable in fail-open mode.
    Critical,
}

const SOFTWARE: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SOFTWARE",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE",
    "\\REGISTRY\\USER\\*\\SOFTWARE",
    "\\REGISTRY\\USER\\*\\SOFTWARE\\WOW6432NODE",
];
const MACHINE_SOFTWARE: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SOFTWARE",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE",
];
const SYSTEM_ROOT: &[&str] = &["\\REGISTRY\\MACHINE\\SYSTEM"];
const SYSTEM: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SYSTEM\\CONTROLSET*",
    "\\REGISTRY\\MACHINE\\SYSTEM\\CURRENTCONTROLSET",
];
const CLASSES: &[&str] = &[
    "\\REGISTRY\\MACHINE\\SOFTWARE\\CLASSES",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\WOW6432NODE\\CLASSES",
    "\\REGISTRY\\USER\\*\\SOFTWARE\\CLASSES",
    "\\REGISTRY\\USER\\*_CLASSES",
];
const USER: &[&str] = &["\\REGISTRY\\USER\\*"];
const MACHINE: &[&str] = &["\\REGISTRY\\MACHINE"];

/// (roots, suffix, risk): every root joined with the suffix is one pattern.
#[rustfmt::skip]
const TABLE: &[(&[&str], &str, Risk)] = &[
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN*", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\EXPLORER\\RUN", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES\\SYSTEM", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINLOGON*", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\WINDOWS", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\IMAGE FILE EXECUTION OPTIONS", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SILENTPROCESSEXIT", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\SCHEDULE\\TASKCACHE", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS DEFENDER", Risk::Critical),
    (SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS DEFENDER*", Risk::Critical),
    (SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWSFIREWALL", Risk::Critical),
    (SOFTWARE, "POLICIES\\MICROSOFT\\WINDOWS\\POWERSHELL", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\AMSI", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS SCRIPT\\SETTINGS", Risk::Critical),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\WINEVT", Risk::Critical),
    (SOFTWARE, "POLICIES", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\POLICIES", Risk::High),
    (SOFTWARE, "MICROSOFT\\CRYPTOGRAPHY\\OID", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\CRYPTOGRAPHY\\PROVIDERS\\TRUST", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\ENTERPRISECERTIFICATES", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\SYSTEMCERTIFICATES", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\ACTIVE SETUP\\INSTALLED COMPONENTS", Risk::High),
    (SOFTWARE, "MICROSOFT\\NETSH", Risk::High),
    (SOFTWARE, "MICROSOFT\\COMMAND PROCESSOR", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\APPCOMPATFLAGS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\ACCESSIBILITY\\ATS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\TERMINAL SERVER", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS NT\\CURRENTVERSION\\PORTS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\GROUP POLICY\\SCRIPTS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\SHELL FOLDERS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\USER SHELL FOLDERS", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\ADVANCED", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\EXPLORER\\FILEEXTS", Risk::High),
    (SOFTWARE, "MICROSOFT\\OFFICE TEST", Risk::High),
    (SOFTWARE, "MICROSOFT\\OFFICE", Risk::Medium),
    (SOFTWARE, "MICROSOFT\\.NETFRAMEWORK", Risk::High),
    (SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\AUTHENTICATION", Risk::High),
    (MACHINE_SOFTWARE, "MICROSOFT\\WINDOWS\\CURRENTVERSION\\SHELLSERVICEOBJECTDELAYLOAD", Risk::High),
    (SYSTEM_ROOT, "SELECT", Risk::Critical),
    (SYSTEM, "SERVICES", Risk::Critical),
    (SYSTEM, "CONTROL\\LSA*", Risk::Critical),
    (SYSTEM, "CONTROL\\SECURITYPROVIDERS", Risk::Critical),
    (SYSTEM, "CONTROL\\SESSION MANAGER", Risk::Critical),
    (SYSTEM, "CONTROL\\SAFEBOOT", Risk::Critical),
    (SYSTEM, "CONTROL\\NETWORKPROVIDER", Risk::Critical),
    (SYSTEM, "CONTROL\\PRINT", Risk::High),
    (SYSTEM, "CONTROL\\WMI\\AUTOLOGGER", Risk::High),
    (SYSTEM, "CONTROL\\TERMINAL SERVER", Risk::High),
    (CLASSES, "CLSID\\*\\INPROCSERVER32", Risk::High),
    (CLASSES, "CLSID\\*\\LOCALSERVER32", Risk::High),
    (CLASSES, "CLSID\\*\\TREATAS", Risk::High),
    (CLASSES, "CLSID\\*\\SCRIPTLETURL", Risk::High),
    (CLASSES, "*\\SHELL\\*\\COMMAND", Risk::High),
    (CLASSES, "*\\SHELL\\*\\DDEEXEC", Risk::High),
    (CLASSES, "MS-SETTINGS\\SHELL", Risk::Critical),
    (CLASSES, "MSCFILE\\SHELL", Risk::Critical),
    (CLASSES, "EXEFILE\\SHELL", Risk::Critical),
    (CLASSES, "FOLDER\\SHELL", Risk::Critical),
    (USER, "ENVIRONMENT", Risk::High),
    (USER, "CONTROL PANEL\\DESKTOP", Risk::Medium),
    (MACHINE, "SAM", Risk::Critical),
    (MACHINE, "SECURITY", Risk::Critical),
];

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Vec<u16>>,
    risk: Risk,
}

/// The compiled high-risk set.
#[derive(Debug, Clone)]
pub struct HighRiskSet {
    patterns: Vec<Pattern>,
}

impl Default for HighRiskSet {
    fn default() -> Self {
        Self::builtin()
    }
}

impl HighRiskSet {
    /// The built-in set.
    pub fn builtin() -> Self {
        let mut patterns = Vec::new();
        for (roots, suffix, risk) in TABLE {
            for root in *roots {
                let segments = root
                    .split('\\')
                    .chain(suffix.split('\\'))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.encode_utf16().collect())
                    .collect();
                patterns.push(Pattern {
                    segments,
                    risk: *risk,
                });
            }
        }
        HighRiskSet { patterns }
    }

    /// The built-in set, or `None` when memory runs out while building it (the driver's
    /// `DriverEntry` then fails to load instead of bug-checking).
    pub fn try_builtin() -> Option<Self> {
        let mut patterns = Vec::new();
        for (roots, suffix, risk) in TABLE {
            for root in *roots {
                let mut segments: Vec<Vec<u16>> = Vec::new();
                for s in root
                    .split('\\')
                    .chain(suffix.split('\\'))
                    .filter(|s| !s.is_empty())
                {
                    let mut segment = Vec::new();
                    segment.try_reserve_exact(s.len()).ok()?;
                    segment.extend(s.encode_utf16());
                    segments.try_reserve(1).ok()?;
                    segments.push(segment);
                }
                patterns.try_reserve(1).ok()?;
                patterns.push(Pattern {
                    segments,
                    risk: *risk,
                });
            }
        }
        Some(HighRiskSet { patterns })
    }

    /// Number of expanded patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The highest risk of the patterns matching `key` (kernel form, any case), if any.
    pub fn classify(&self, key: &[u16]) -> Option<Risk> {
        let mut segments: [&[u16]; 64] = [&[]; 64];
        let mut n = 0;
        for seg in key
            .split(|&u| u == u16::from(b'\\'))
            .filter(|s| !s.is_empty())
        {
            if n == segments.len() {
                break;
            }
            segments[n] = seg;
            n += 1;
        }
        let segments = &segments[..n];
        self.patterns
            .iter()
            .filter(|p| {
                // Last segment first: it is the selective one (`RUN*`, `SERVICES`), while every
                // pattern starts with `REGISTRY` and a hive; a key that fails it is rejected after
                // one comparison instead of three or four.
                p.segments.len() <= segments.len()
                    && p.segments
                        .iter()
                        .zip(segments)
                        .rev()
                        .all(|(pat, seg)| glob(pat, seg))
            })
            .map(|p| p.risk)
            .max()
    }
}

/// Value names that are dangerous under any key: `SymbolicLinkValue` turns a key into a registry
/// symbolic link, redirecting whoever opens it.
const VALUES: &[(&str, Risk)] = &[("SYMBOLICLINKVALUE", Risk::Critical)];

impl HighRiskSet {
    /// The risk of writing a value with this name under any key.
    pub fn classify_value(&self, name: &[u16]) -> Option<Risk> {
        VALUES
            .iter()
            .filter(|(v, _)| agentsh_winstr::eq_ignore_case_str(name, v))
            .map(|(_, r)| *r)
            .max()
    }

    /// Whether `key` is in a credential store: the SAM and SECURITY hives (the latter holds the
    /// LSA secrets). Reads there are reported even for processes outside every session.
    pub fn is_credential_store(&self, key: &[u16]) -> bool {
        Self::is_credential_store_name(key)
    }

    fn is_credential_store_name(key: &[u16]) -> bool {
        let mut segments = key
            .split(|&u| u == u16::from(b'\\'))
            .filter(|s| !s.is_empty());
        let (Some(a), Some(b), Some(c)) = (segments.next(), segments.next(), segments.next())
        else {
            return false;
        };
        agentsh_winstr::eq_ignore_case_str(a, "REGISTRY")
            && agentsh_winstr::eq_ignore_case_str(b, "MACHINE")
            && is_credential_hive(c)
    }

    /// The risk of an operation on `key` naming the value `name`.
    pub fn classify_op(&self, key: &[u16], name: &[u16]) -> Option<Risk> {
        self.classify(key).max(self.classify_value(name))
    }
}

/// Whether an open's name may reach `\REGISTRY\MACHINE\SAM` or `...\SECURITY` without knowing
/// its root key: an absolute name is checked exactly; a relative one only by its first segment
/// being one of the two hive names (as in `RegOpenKeyEx(HKLM, "SAM")`). The driver asks for the
/// root key's name only when this holds, so other opens of unsandboxed processes cost no name
/// query.
pub fn may_name_credential_store(complete: &[u16]) -> bool {
    if complete.first() == Some(&u16::from(b'\\')) {
        return HighRiskSet::is_credential_store_name(complete);
    }
    complete
        .split(|&u| u == u16::from(b'\\'))
        .find(|s| !s.is_empty())
        .is_some_and(is_credential_hive)
}

fn is_credential_hive(segment: &[u16]) -> bool {
    agentsh_winstr::eq_ignore_case_str(segment, "SAM")
        || agentsh_winstr::eq_ignore_case_str(segment, "SECURITY")
}

/// Matches one segment: `*` any run, `?` one unit, everything else case-insensitively.
fn glob(pat: &[u16], text: &[u16]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && pat[p] == u16::from(b'*') {
            star = Some((p, t));
            p += 1;
        } else if p < pat.len()
            && (pat[p] == u16::from(b'?') || pat[p] == agentsh_winstr::upcase_unit(text[t]))
        {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&u| u == u16::from(b'*'))
}
