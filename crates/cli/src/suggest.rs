//! `agentsh policy suggest`: reads the service's approval history (its events, JSON lines) and
//! proposes remembered rules for what people answered the same way every time — the way
//! `agentsh audit report` proposes rules from an audit run, and written in the same form as the
//! rules `approvals approve --remember` keeps (docs/policy.md, "Remembered rules").
//!
//! Registry and file approvals both count, each per app: what one app's sessions were answered
//! is proposed for that app (`apps: [<app>]`), never for another. Only answers a person gave
//! count (`reason: person` or `session_grant`); timeouts and lost connections are counted and
//! shown, never proposed. An operation answered both ways (for the same app) is shown, not
//! proposed. Allowing a location the high-risk catalog decided is never proposed: that needs an
//! `overrides:` an administrator writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use agentsh_winstr::name::{Display, has_dangerous};

use crate::audit::{for_each_event, quoted_pattern};

/// One distinct held operation: the session's app, its key and value or file, and its policy
/// operation. Ordered by app first, so a history is shown and proposed app by app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    /// The session's app (`None`: a session without one, or a history recorded before events
    /// carried it).
    pub app: Option<String>,
    /// A file approval (its driver operation is a file operation); otherwise a registry one.
    pub file: bool,
    /// The target as the rules name it: the event's `canonical_path`, or when the event has none
    /// its `key_path`.
    pub path: String,
    pub value: Option<String>,
    pub operation: String,
}

/// How the approvals of one operation ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub allowed: usize,
    pub denied: usize,
    /// Ended without a person's answer (timeout, connection lost, hold refused).
    pub unanswered: usize,
    /// The rule that held it (`builtin:<id>` for the catalog).
    pub rule: String,
}

/// The approval history of one events file.
#[derive(Debug, Default)]
pub struct History {
    pub events: usize,
    pub held: BTreeMap<Held, Answers>,
}

impl History {
    /// Reads events, one JSON object a line; blank lines are skipped, anything else that is not
    /// an event is an error naming the line.
    pub fn from_lines(text: &str, origin: &str) -> Result<History, String> {
        let mut history = History::default();
        for_each_event(text, origin, |v| {
            history.events += 1;
            if v["type"] != "registry_approval_response" {
                return;
            }
            let s = |f: &str| v[f].as_str().map(str::to_owned);
            let Some(path) = s("canonical_path").or_else(|| s("key_path")) else {
                return;
            };
            let file = v["driver_operation"].as_str().is_some_and(|d| {
                agentsh_wire::FileOperation::ALL
                    .into_iter()
                    .any(|o| o.name() == d)
            });
            let held = Held {
                app: s("app"),
                file,
                path,
                value: s("value_name"),
                operation: s("operation").unwrap_or_default(),
            };
            let a = history.held.entry(held).or_default();
            if a.rule.is_empty() {
                a.rule = s("rule_name").unwrap_or_else(|| "default".to_owned());
            }
            let by_person = matches!(v["reason"].as_str(), Some("person" | "session_grant"));
            match (by_person, v["decision"].as_str()) {
                (true, Some("allow")) => a.allowed += 1,
                (true, Some("deny")) => a.denied += 1,
                _ => a.unanswered += 1,
            }
        })?;
        Ok(history)
    }

    /// The printed summary, then the proposed rules as a remembered-rules file.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let answered: usize = self.held.values().map(|a| a.allowed + a.denied).sum();
        let unanswered: usize = self.held.values().map(|a| a.unanswered).sum();
        let _ = writeln!(
            out,
            "{} events; {answered} approvals answered by a person and {unanswered} unanswered ({} distinct operations)",
            self.events,
            self.held.len()
        );
        if self.held.is_empty() {
            let _ = writeln!(out, "no approvals in this history: nothing to propose");
            return out;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:>7}  {:>6}  {:>10}  {:<9}  {:<28}  path",
            "allowed", "denied", "unanswered", "operation", "rule"
        );
        let mut group: Option<&Option<String>> = None;
        for (h, a) in &self.held {
            if group != Some(&h.app) {
                group = Some(&h.app);
                let _ = match &h.app {
                    Some(app) => writeln!(out, "app `{}`:", Display(app)),
                    None => writeln!(out, "no app name:"),
                };
            }
            let value = h
                .value
                .as_deref()
                .map(|v| format!(" (value `{}`)", Display(v)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:>7}  {:>6}  {:>10}  {:<9}  {:<28}  {}{value}",
                a.allowed,
                a.denied,
                a.unanswered,
                Display(&h.operation).to_string(),
                Display(&a.rule).to_string(),
                Display(&h.path)
            );
        }
        let mut proposals = Vec::new();
        let (mut mixed, mut catalog, mut unsafe_names) = (0, 0, 0);
        for (h, a) in &self.held {
            let decision = match (a.allowed, a.denied) {
                (0, 0) => continue,
                (_, 0) => "allow",
                (0, _) => "deny",
                _ => {
                    mixed += 1;
                    continue;
                }
            };
            if has_dangerous(&h.path)
                || h.app.as_deref().is_some_and(|a| {
                    has_dangerous(a) || agentsh_policy::engine::check_app_name(a).is_err()
                })
                || h.value.as_deref().is_some_and(has_dangerous)
                || has_dangerous(&h.operation)
                || h.path.contains("${")
                || h.value.as_deref().is_some_and(|v| v.contains("${"))
                || agentsh_policy::Operation::from_name(&h.operation).is_none()
            {
                unsafe_names += 1;
                continue;
            }
            if decision == "allow" && !h.file && a.rule.starts_with("builtin:") {
                catalog += 1;
                continue;
            }
            proposals.push((h, a, decision));
        }
        if mixed > 0 {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "not proposed: {mixed} operation(s) people answered both ways; decide those by hand"
            );
        }
        if catalog > 0 {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "not proposed: {catalog} operation(s) allowed at a high-risk catalog location; allowing one \
                 needs a rule listing the entry in `overrides:` (see docs/policy.md, deliberate overrides)"
            );
        }
        if unsafe_names > 0 {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "warning: not proposed: {unsafe_names} operation(s) whose names or apps hold control, bidirectional or \
                 invisible characters, unpaired surrogates or `${{`, or whose app no session could register (shown \
                 escaped above); write those by hand"
            );
        }
        if proposals.is_empty() {
            return out;
        }
        // At equal priority the first rule wins: an app's own rules come before those for
        // sessions without an app name, which apply to every session.
        proposals.sort_by_key(|(h, _, _)| h.app.is_none());
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# proposed rules for agentsh.remembered.yaml (review each; one per app, for that app's sessions; \
             the session user's hive is written as HKCU, a file by its drive-letter path)"
        );
        let mut n = 0;
        for (section, file) in [("registry_rules:", false), ("file_rules:", true)] {
            let mut rules = proposals
                .iter()
                .filter(|(h, _, _)| h.file == file)
                .peekable();
            if rules.peek().is_none() {
                continue;
            }
            let _ = writeln!(out, "{section}");
            for (h, a, decision) in rules {
                n += 1;
                let _ = writeln!(out, "  - name: suggested-{n}");
                let _ = writeln!(
                    out,
                    "    description: '{} by a person {} time(s) in sessions {}; held by rule {}'",
                    if *decision == "allow" {
                        "allowed"
                    } else {
                        "denied"
                    },
                    a.allowed + a.denied,
                    h.app.as_deref().map_or(
                        "without an app name (the rule applies to every session)".to_owned(),
                        |app| { format!("of app {}", app.replace('\'', "''")) }
                    ),
                    a.rule.replace('\'', "''")
                );
                let target = if h.file {
                    quoted_pattern(&agentsh_policy::overlay::file_spelling(&h.path))
                } else {
                    quoted_pattern(&user_hive_as_hkcu(&h.path))
                };
                match (&h.value, h.file) {
                    (Some(v), false) => {
                        let _ = writeln!(
                            out,
                            "    paths: [{{ key: {target}, value: {} }}]",
                            quoted_pattern(v)
                        );
                    }
                    _ => {
                        let _ = writeln!(out, "    paths: [{target}]");
                    }
                }
                let _ = writeln!(out, "    operations: [{}]", h.operation);
                let _ = writeln!(out, "    decision: {decision}");
                let _ = writeln!(
                    out,
                    "    priority: {}",
                    agentsh_policy::overlay::REMEMBERED_PRIORITY
                );
                if let Some(app) = &h.app {
                    // A name, not a pattern: only YAML's quoting.
                    let _ = writeln!(out, "    apps: ['{}']", app.replace('\'', "''"));
                }
            }
        }
        out
    }
}

/// `\REGISTRY\USER\<user SID>\rest` as `HKCU\rest`: a session's operations in its user's own
/// hive are decided against `HKCU` patterns (docs/policy.md §2), so a rule naming the SID would
/// never match them. Other paths are kept as recorded.
fn user_hive_as_hkcu(path: &str) -> String {
    const USER: &str = "\\REGISTRY\\USER\\";
    let Some(head) = path.get(..USER.len()) else {
        return path.to_owned();
    };
    if !head.eq_ignore_ascii_case(USER) {
        return path.to_owned();
    }
    let rest = &path[USER.len()..];
    let (sid, tail) = rest.split_once('\\').unwrap_or((rest, ""));
    let is_user_sid = sid.len() > 2
        && sid[..2].eq_ignore_ascii_case("S-")
        && sid[2..].chars().all(|c| c.is_ascii_digit() || c == '-');
    match (is_user_sid, tail) {
        (true, "") => "HKCU".to_owned(),
        (true, t) => format!("HKCU\\{t}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{History, user_hive_as_hkcu};

    /// A response line in the form the service records (see tests/data/approval-history.jsonl).
    fn response(id: u32, key: &str, decision: &str, reason: &str, rule: &str) -> String {
        serde_json::json!({
            "approval_id": id, "decision": decision, "driver_operation": "SetValue",
            "key_path": key, "operation": "write", "process_id": 4100, "reason": reason,
            "rule_name": rule, "session_id": "s-1", "timestamp": "2026-12-07T04:54:16.211Z",
            "type": "registry_approval_response", "value_name": "v",
        })
        .to_string()
    }

    #[test]
    fn only_consistent_answers_by_a_person_are_proposed() {
        let m = "\\REGISTRY\\MACHINE\\SOFTWARE\\";
        let lines = [
            response(1, &format!("{m}Twice"), "allow", "person", "ask"),
            response(2, &format!("{m}Twice"), "allow", "session_grant", "ask"),
            response(3, &format!("{m}Mixed"), "allow", "person", "ask"),
            response(4, &format!("{m}Mixed"), "deny", "person", "ask"),
            response(5, &format!("{m}Late"), "deny", "timeout", "ask"),
            response(
                6,
                &format!("{m}Services"),
                "allow",
                "person",
                "builtin:services",
            ),
            response(7, &format!("{m}Odd*Name"), "deny", "person", "ask"),
        ]
        .join("\n");
        let h = History::from_lines(&lines, "h.jsonl").expect("reads");
        let out = h.render();
        assert!(
            out.contains("6 approvals answered by a person and 1 unanswered"),
            "{out}"
        );
        assert!(
            out.contains("1 operation(s) people answered both ways"),
            "{out}"
        );
        assert!(
            out.contains("1 operation(s) allowed at a high-risk catalog location"),
            "{out}"
        );
        let proposal = &out[out.find("registry_rules:").expect("proposal")..];
        assert_eq!(
            proposal.matches("- name: suggested-").count(),
            2,
            "{proposal}"
        );
        assert!(proposal.contains("SOFTWARE\\Odd[*]Name'"), "{proposal}");
        assert!(proposal.contains("SOFTWARE\\Twice'"), "{proposal}");
        assert!(
            !proposal.contains("Late") && !proposal.contains("Mixed"),
            "{proposal}"
        );
        assert!(!proposal.contains("Services"), "{proposal}");
        let overlay = agentsh_policy::load::parse_overlay(proposal, "o.yaml").expect("loads");
        let decisions: Vec<_> = overlay.registry.iter().map(|r| r.decision).collect();
        assert_eq!(
            decisions,
            [
                agentsh_policy::Decision::Deny,
                agentsh_policy::Decision::Allow
            ]
        );
        let err = History::from_lines("{}\nnot json", "h.jsonl").expect_err("refused");
        assert!(err.starts_with("h.jsonl:2:"), "{err}");
    }

    /// A file approval's response as the service records it: the kernel's device path, its
    /// drive-letter form, and the session's app.
    fn file_response(id: u32, app: Option<&str>, file: &str, decision: &str) -> String {
        let mut v = serde_json::json!({
            "approval_id": id, "decision": decision, "driver_operation": "write",
            "key_path": format!("\\Device\\HarddiskVolume3\\{file}"),
            "canonical_path": format!("C:\\{}", file.to_uppercase()),
            "operation": "write", "process_id": 4100, "reason": "person",
            "rule_name": "ask-shared", "session_id": "s-1",
            "timestamp": "2026-12-07T04:54:16.211Z", "type": "registry_approval_response",
        });
        if let Some(a) = app {
            v["app"] = serde_json::json!(a);
        }
        v.to_string()
    }

    #[test]
    fn file_approvals_are_proposed_per_app_in_the_file_rules_form() {
        let lines = [
            file_response(1, Some("Editor"), "Shared\\notes.txt", "allow"),
            file_response(2, Some("Editor"), "Shared\\notes.txt", "allow"),
            // Another app answered the same file the other way: not a mix, its own proposal.
            file_response(3, Some("Browser"), "Shared\\notes.txt", "deny"),
            file_response(4, Some("Browser"), "Shared\\odd[1].txt", "deny"),
            file_response(5, None, "Shared\\x.txt", "deny"),
            file_response(6, Some("Micro\u{202e}soft"), "Shared\\y.txt", "deny"),
        ]
        .join("\n");
        let h = History::from_lines(&lines, "h.jsonl").expect("reads");
        let out = h.render();
        assert!(
            out.contains(
                "6 approvals answered by a person and 0 unanswered (5 distinct operations)"
            ),
            "{out}"
        );
        // Grouped app by app (sessions without an app first).
        let (none, browser, editor) = (
            out.find("no app name:").expect("no-app group"),
            out.find("app `Browser`:").expect("Browser group"),
            out.find("app `Editor`:").expect("Editor group"),
        );
        assert!(none < browser && browser < editor, "{out}");
        assert!(out.contains("app `Micro\\u{202e}soft`:"), "{out}");
        assert!(!out.contains("both ways"), "{out}");
        assert!(
            out.contains("1 operation(s) whose names or apps hold"),
            "{out}"
        );
        let proposal = &out[out.find("file_rules:").expect("proposal")..];
        assert!(!out.contains("registry_rules:"), "{out}");
        let overlay = agentsh_policy::load::parse_overlay(proposal, "o.yaml")
            .unwrap_or_else(|e| panic!("{e}\n{proposal}"));
        let rules: Vec<_> = overlay
            .files
            .iter()
            .map(|r| {
                (
                    r.paths[0].text.clone(),
                    r.decision.to_string(),
                    r.apps.clone(),
                )
            })
            .collect();
        let app = |a: &str| Some(vec![a.to_owned()]);
        assert_eq!(
            rules,
            [
                (
                    r"C:\SHARED\NOTES.TXT".to_owned(),
                    "deny".to_owned(),
                    app("Browser")
                ),
                (
                    r"C:\SHARED\ODD[[]1].TXT".to_owned(),
                    "deny".to_owned(),
                    app("Browser")
                ),
                (
                    r"C:\SHARED\NOTES.TXT".to_owned(),
                    "allow".to_owned(),
                    app("Editor")
                ),
                (r"C:\SHARED\X.TXT".to_owned(), "deny".to_owned(), None),
            ],
            "{proposal}"
        );
    }

    #[test]
    fn only_a_user_sid_hive_becomes_hkcu() {
        assert_eq!(
            user_hive_as_hkcu("\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001\\Software\\X"),
            "HKCU\\Software\\X"
        );
        assert_eq!(
            user_hive_as_hkcu("\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001_Classes\\X"),
            "\\REGISTRY\\USER\\S-1-5-21-1-2-3-1001_Classes\\X"
        );
        assert_eq!(
            user_hive_as_hkcu("\\REGISTRY\\MACHINE\\SOFTWARE\\X"),
            "\\REGISTRY\\MACHINE\\SOFTWARE\\X"
        );
        assert_eq!(user_hive_as_hkcu("\\REG"), "\\REG");
    }
}
