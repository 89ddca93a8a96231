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
