//! Remembered rules: an overlay file next to the policy (`agentsh.yaml` →
//! `agentsh.remembered.yaml`) holding rules approvers decided to keep. Its rules are checked like
//! the policy's, come after the policy's own rules of the same priority, and never lower a
//! critical high-risk entry unless the rule lists that entry in `overrides:`.

use std::path::{Path, PathBuf};

use crate::engine::{Engine, RegistryQuery, SessionContext};
use crate::load::{LoadError, LoadErrors, Overlay, PolicyDoc, Rule, RuleSet};
use crate::ops::{Access, Risk};
use crate::settings::Settings;

/// The overlay file that belongs to a policy file: the same directory and stem, with
/// `.remembered.yaml` (`C:\ProgramData\agentsh\agentsh.yaml` →
/// `C:\ProgramData\agentsh\agentsh.remembered.yaml`).
pub fn overlay_path(policy: &Path) -> PathBuf {
    let stem = policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "agentsh".to_owned());
    policy.with_file_name(format!("{stem}.remembered.yaml"))
}

/// Adds an overlay's rules to a policy document. Refused, with every problem listed: a rule whose
/// name is already used by the policy, and a registry rule whose decision is weaker than the floor
/// of a critical catalog entry its paths reach, unless it names that entry in `overrides:`.
pub fn merge(doc: &mut PolicyDoc, overlay: Overlay) -> Result<(), LoadErrors> {
    let mut errors = Vec::new();
    clashes(&doc.registry, &overlay.registry, "registry", &mut errors);
    clashes(&doc.files, &overlay.files, "file", &mut errors);
    lowers_critical(&doc.disabled_catalog, &overlay.registry, &mut errors);
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    doc.registry.rules.extend(overlay.registry);
    doc.files.rules.extend(overlay.files);
    Ok(())
}

fn error(rule: &Rule, message: String) -> LoadError {
    LoadError {
        origin: rule.source.clone().unwrap_or_default(),
        pos: rule.pos,
        rule: Some(rule.name.clone()),
        message,
    }
}

fn clashes(policy: &RuleSet, added: &[Rule], what: &str, errors: &mut Vec<LoadError>) {
    for r in added {
        if let Some(first) = policy.rules.iter().find(|p| p.name == r.name) {
            errors.push(error(
                r,
                format!(
                    "a {what} rule of this name is already in the policy file (line {}); remembered rules need their own names",
                    first.pos.line
                ),
            ));
        }
    }
}

/// Asks the catalog alone (no rules) about the literal part of each path of each rule, for each
/// of the rule's operations.
fn lowers_critical(disabled: &[String], rules: &[Rule], errors: &mut Vec<LoadError>) {
    if rules.is_empty() {
        return;
    }
    let catalog_only = Engine::new(&PolicyDoc {
        registry: RuleSet::default(),
        files: RuleSet::default(),
        disabled_catalog: disabled.to_vec(),
        settings: Settings::default(),
        tests: Vec::new(),
    });
    let Ok(session) = SessionContext::new(None, None, None) else {
        return;
    };
    for rule in rules {
        let mut reported: Vec<&str> = Vec::new();
        for spec in &rule.paths {
            let value = spec
                .value_glob
                .as_ref()
                .filter(|g| g.is_literal())
                .and(spec.value.as_deref());
            for key in &spec.keys {
                let prefix = key.literal_prefix();
                let key_text = prefix.trim_end_matches('\\');
                if key_text.is_empty() {
                    continue;
                }
                for op in rule.operations.iter() {
                    let access = Access::from(op);
                    if !access.meets_catalog_floor() {
                        continue;
                    }
                    let mut q = RegistryQuery::new(key_text, access, &session);
                    q.value = value;
                    let verdict = catalog_only.decide_registry(&q);
                    let Some(entry) = verdict.high_risk else {
                        continue;
                    };
                    let Some(floor) = entry.action.floor() else {
                        continue;
                    };
                    if entry.risk == Risk::Critical
                        && rule.decision.strictness() < floor.strictness()
                        && !rule.overrides.iter().any(|o| o == entry.id)
                        && !reported.contains(&entry.id)
                    {
                        reported.push(entry.id);
                        errors.push(error(
                            rule,
                            format!(
                                "`{}` would lower the critical high-risk entry `{}` ({} {}) from {} to {}; a remembered rule may only do that when it lists it in `overrides: [{}]`",
                                spec.text,
                                entry.id,
                                entry.technique,
                                entry.technique_name,
                                floor,
                                rule.decision,
                                entry.id
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// A decision an approver asked to keep: the exact key (and value) or file of one approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered<'a> {
    /// `true`: a registry key (canonical or any accepted spelling); `false`: a file path, written
    /// in its canonical form ([`crate::filepath::canonicalize_file`] without a volume map: pass
    /// a path the caller has already mapped to its drive letter, as the engine decided it).
    pub registry: bool,
    pub path: &'a str,
    /// The application the rule is for (`apps: [app]`); `None`: every session.
    pub app: Option<&'a str>,
    /// The value name of a value operation.
    pub value: Option<&'a str>,
    pub operation: crate::ops::Operation,
    pub decision: crate::ops::Decision,
    /// Where it came from, written as the rule's `description`.
    pub note: &'a str,
}

/// The priority remembered rules get: above every rule a policy normally writes, so the kept
/// answer decides the exact operation it was given for (the catalog's floors still apply).
pub const REMEMBERED_PRIORITY: i32 = 100_000;

/// Why a decision could not be remembered.
#[derive(Debug, thiserror::Error)]
pub enum RememberError {
    #[error("cannot remember `{0}`: {1}")]
    Unrepresentable(String, &'static str),
    #[error("{0}")]
    Invalid(LoadErrors),
    #[error("cannot write the remembered-rules file {0}: {1}")]
    Io(String, std::io::Error),
}

/// The exact text as a pattern: wildcards and `[` escaped.
fn literal_pattern(text: &str) -> Result<String, &'static str> {
    if text.contains("${") {
        return Err("a name containing `${` cannot be written as an exact pattern");
    }
    if text.chars().any(char::is_control) {
        return Err("a name with control characters cannot be written in the policy");
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A file path as a file rule writes it: the canonical form (drive letter, upper case, `.` and
/// `..` resolved), with a volume the caller could not map written as its NT device path
/// (`\Device\HarddiskVolume3\...`) and a share as `\\server\share\...`. Each reads back as
/// the same canonical path.
pub fn file_spelling(path: &str) -> String {
    let canonical = crate::filepath::canonicalize_file(path, &crate::filepath::VolumeMap::new());
    let c = canonical.as_str();
    if let Some(rest) = c.strip_prefix("UNC\\") {
        format!("\\\\{rest}")
    } else if c.starts_with("DEVICE\\") {
        format!("\\{c}")
    } else {
        c.to_owned()
    }
}

/// A YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Adds a rule for `r` to the overlay of the policy at `policy` and returns its name. The new
/// overlay is checked together with the policy (as a reload would) before it replaces the old
/// one by writing a temporary file and renaming it over the overlay, so a reader never sees a
/// half-written file and a rule that would be refused is never written.
///
/// Writers in one process take turns (two approvers answering at once both get their rule);
/// the service is the one process that writes the file.
pub fn remember(policy: &Path, r: &Remembered<'_>) -> Result<String, RememberError> {
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let unrepresentable = |why| RememberError::Unrepresentable(r.path.to_owned(), why);
    let spelled;
    let target = if r.registry {
        r.path
    } else {
        spelled = file_spelling(r.path);
        &spelled
    };
    let key = literal_pattern(target).map_err(unrepresentable)?;
    if let Some(app) = r.app
        && crate::engine::check_app_name(app).is_err()
    {
        return Err(unrepresentable(
            "the session's app name cannot be a rule's app (see `apps:` in docs/policy.md)",
        ));
    }
    let value = r
        .value
        .map(literal_pattern)
        .transpose()
        .map_err(unrepresentable)?;
    if r.note.chars().any(char::is_control) {
        return Err(unrepresentable("the note has control characters"));
    }
    let path = overlay_path(policy);
    let origin = path.display().to_string();
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(RememberError::Io(origin, e)),
    };
    let taken = crate::load::parse_overlay(&existing, &origin).map_err(RememberError::Invalid)?;
    let used = |n: &str| {
        taken
            .registry
            .iter()
            .chain(&taken.files)
            .any(|rule| rule.name == n)
    };
    let name = (1u32..)
        .map(|i| format!("remembered-{i}"))
        .find(|n| !used(n))
        .unwrap_or_default();
    let path_entry = match (&value, r.registry) {
        (Some(v), true) => format!("{{ key: {}, value: {} }}", quoted(&key), quoted(v)),
        _ => quoted(&key),
    };
    let apps = r
        .app
        .map(|a| format!("    apps: [{}]\n", quoted(a)))
        .unwrap_or_default();
    let rule = format!(
        "  - name: {name}\n    description: {}\n    paths: [{path_entry}]\n    operations: [{}]\n    decision: {}\n    priority: {REMEMBERED_PRIORITY}\n{apps}",
        quoted(r.note),
        r.operation.name(),
        r.decision
    );
    let (section, other) = if r.registry {
        ("registry_rules:", "file_rules:")
    } else {
        ("file_rules:", "registry_rules:")
    };
    let mut lines: Vec<String> = existing.lines().map(str::to_owned).collect();
    let starts = |l: &String, s: &str| l.starts_with(s);
    match lines.iter().position(|l| starts(l, section)) {
        Some(at) => {
            // The section runs to the next top-level key.
            let end = lines[at + 1..]
                .iter()
                .position(|l| !l.is_empty() && !l.starts_with([' ', '-', '#']))
                .map_or(lines.len(), |p| at + 1 + p);
            lines.insert(end, rule.trim_end().to_owned());
        }
        None => {
            let at = lines
                .iter()
                .position(|l| starts(l, other) && r.registry)
                .unwrap_or(lines.len());
            lines.insert(at, format!("{section}\n{}", rule.trim_end()));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    // Checked with the policy it belongs to, as the service would load the pair.
    let policy_text = crate::Policy::read(policy).map_err(RememberError::Invalid)?;
    crate::Policy::from_str_with(
        &policy_text,
        &policy.display().to_string(),
        Some((&text, &origin)),
    )
    .map_err(RememberError::Invalid)?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, &text).map_err(|e| RememberError::Io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RememberError::Io(origin.clone(), e)
    })?;
    Ok(name)
}
