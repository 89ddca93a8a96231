//! `agentsh policy suggest`: reads the service's approval history (its events, JSON lines) and
//! proposes remembered rules for what people answered the same way every time — the way
//! `agentsh audit report` proposes rules from an audit run, and written in the same form as the
//! rules `approvals approve --remember` keeps (docs/policy.md, "Remembered rules").
//!
//! Only answers a person gave count (`reason: person` or `session_grant`); timeouts and lost
//! connections are counted and shown, never proposed. An operation answered both ways is shown,
//! not proposed. Allowing a location the high-risk catalog decided is never proposed: that needs
//! an `overrides:` an administrator writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use agentsh_winstr::name::{Display, has_dangerous};

use crate::audit::{for_each_event, quoted_pattern};

/// One distinct held operation: its key, value and policy operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
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
            let Some(path) = s("key_path") else {
                return;
            };
            let held = Held {
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
        for (h, a) in &self.held {
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
                || h.value.as_deref().is_some_and(has_dangerous)
                || has_dangerous(&h.operation)
                || h.path.contains("${")
                || h.value.as_deref().is_some_and(|v| v.contains("${"))
                || agentsh_policy::Operation::from_name(&h.operation).is_none()
            {
                unsafe_names += 1;
                continue;
            }
            if decision == "allow" && a.rule.starts_with("builtin:") {
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
                "warning: not proposed: {unsafe_names} operation(s) whose names hold control, bidirectional or \
                 invisible characters, unpaired surrogates or `${{` (shown escaped above); write those by hand"
            );
        }
        if proposals.is_empty() {
            return out;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# proposed rules for agentsh.remembered.yaml (review each; the session user's hive is written as HKCU)"
        );
        let _ = writeln!(out, "registry_rules:");
        for (i, (h, a, decision)) in proposals.iter().enumerate() {
            let _ = writeln!(out, "  - name: suggested-{}", i + 1);
            let _ = writeln!(
                out,
                "    description: '{} by a person {} time(s); held by rule {}'",
                if *decision == "allow" {
                    "allowed"
                } else {
                    "denied"
                },
                a.allowed + a.denied,
                a.rule.replace('\'', "''")
            );
            let key = quoted_pattern(&user_hive_as_hkcu(&h.path));
            match &h.value {
                Some(v) => {
                    let _ = writeln!(
                        out,
                        "    paths: [{{ key: {key}, value: {} }}]",
                        quoted_pattern(v)
                    );
                }
                None => {
                    let _ = writeln!(out, "    paths: [{key}]");
                }
            }
            let _ = writeln!(out, "    operations: [{}]", h.operation);
            let _ = writeln!(out, "    decision: {decision}");
            let _ = writeln!(
                out,
                "    priority: {}",
                agentsh_policy::overlay::REMEMBERED_PRIORITY
            );
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
