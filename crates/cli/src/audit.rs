//! `agentsh audit report`: reads the events of an audit-mode run (JSON lines or OCSF) and
//! summarises what enforcement would have denied or held for a person, with the rules that would
//! allow it, so a policy can be tightened before it is enforced.
//!
//! Catalog decisions (`builtin:<id>`) are listed but never proposed: unlocking a high-risk
//! location is a deliberate `overrides:` an administrator writes, not something a report suggests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use agentsh_winstr::name::{Display, has_dangerous};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Summarise an audit run's would-be denials and approvals and propose rules allowing them
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Events file written by `agentsh service run --events FILE` (JSON lines or OCSF)
    pub events: PathBuf,
}

pub fn run(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Report(args) = cmd;
    let text = match std::fs::read_to_string(&args.events) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "agentsh audit report: cannot read `{}`: {e}",
                args.events.display()
            );
            return ExitCode::from(1);
        }
    };
    match Report::from_lines(&text, &args.events.display().to_string()) {
        Ok(r) => {
            print!("{}", r.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agentsh audit report: {e}");
            ExitCode::from(1)
        }
    }
}

/// Which policy domain an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    Registry,
    File,
}

/// One distinct would-be denial or approval.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub domain: Domain,
    /// `would deny` or `would ask`.
    pub decision: String,
    /// The deciding rule (`default`, a rule name, `builtin:<id>`).
    pub rule: String,
    /// Policy operation (`write`, `create`, …).
    pub operation: String,
    pub path: String,
    pub value: Option<String>,
    /// `T1547.001 critical` for catalog locations.
    pub risk: Option<String>,
}

/// The summary of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub events: usize,
    pub findings: BTreeMap<Finding, usize>,
}

/// Calls `each` with every event of an events file's text, one JSON object a line; blank lines
/// are skipped, anything else that is not an event is an error naming `origin` and the line.
pub(crate) fn for_each_event(
    text: &str,
    origin: &str,
    mut each: impl FnMut(Value),
) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // Events name unpaired surrogates as their own `\ud800` escapes (docs/events.md); read
        // them back as name text before the JSON reader, which refuses them.
        let mut names = String::with_capacity(line.len());
        let _ = agentsh_winstr::name::write_json_names(&mut names, line);
        let v: Value = serde_json::from_str(&names).map_err(|e| {
            format!(
                "{origin}:{}: not a JSON event: {}",
                i + 1,
                Display(&e.to_string())
            )
        })?;
        each(v);
    }
    Ok(())
}

impl Report {
    /// Reads events, one JSON object a line; blank lines are skipped, anything else that is not
    /// an event is an error naming the line.
    pub fn from_lines(text: &str, origin: &str) -> Result<Report, String> {
        let mut report = Report::default();
        for_each_event(text, origin, |v| {
            report.events += 1;
            if let Some(f) = finding(&v) {
                *report.findings.entry(f).or_default() += 1;
            }
        })?;
        Ok(report)
    }

    /// The printed report: a table of findings, then the proposed rules as YAML.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let denials: usize = self
            .findings
            .iter()
            .filter(|(f, _)| f.decision == "would deny")
            .map(|(_, n)| n)
            .sum();
        let asks: usize = self
            .findings
            .iter()
            .filter(|(f, _)| f.decision == "would ask")
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            out,
            "{} events; {denials} would have been denied and {asks} held for approval ({} distinct operations)",
            self.events,
            self.findings.len()
        );
        if self.findings.is_empty() {
            let _ = writeln!(out, "nothing would change when this policy is enforced");
            return out;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:>5}  {:<10}  {:<9}  {:<28}  path",
            "count", "decision", "operation", "rule"
        );
        // Every field of a finding comes from the events, so from the audited process: shown in
        // the display rendering, where no escape sequence can redraw the report.
        for (f, n) in &self.findings {
            let value = f
                .value
                .as_deref()
                .map(|v| format!(" (value `{}`)", Display(v)))
                .unwrap_or_default();
            let risk = f
                .risk
                .as_deref()
                .map(|r| format!(" [{}]", Display(r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{n:>5}  {:<10}  {:<9}  {:<28}  {}{value}{risk}",
                Display(&f.decision).to_string(),
                Display(&f.operation).to_string(),
                Display(&f.rule).to_string(),
                Display(&f.path)
            );
        }
        let (catalog, rest): (Vec<&Finding>, Vec<&Finding>) = self
            .findings
            .keys()
            .partition(|f| f.rule.starts_with("builtin:"));
        // A name with a control, bidi or invisible character or an unpaired surrogate cannot be
        // written as a rule (the loader refuses most of them) and must never reach the proposal
        // raw: such findings are flagged, not proposed.
        let (unsafe_names, proposable): (Vec<&Finding>, Vec<&Finding>) =
            rest.into_iter().partition(|f| {
                has_dangerous(&f.path)
                    || f.value.as_deref().is_some_and(has_dangerous)
                    || has_dangerous(&f.operation)
                    || has_dangerous(&f.rule)
                    || has_dangerous(&f.decision)
            });
        if !unsafe_names.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "warning: not proposed: {} operation(s) whose names hold control, bidirectional or invisible \
                 characters or unpaired surrogates (shown escaped above as \\u{{…}}); a process that names \
                 keys or files this way deserves a look, and a rule for them must be written by hand",
                unsafe_names.len()
            );
        }
        if !catalog.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "not proposed: {} operation(s) decided by the high-risk catalog; allowing one needs a rule \
                 listing the entry in `overrides:` (see docs/policy.md, deliberate overrides)",
                catalog.len()
            );
        }
        for domain in [Domain::Registry, Domain::File] {
            let rules: Vec<&&Finding> = proposable.iter().filter(|f| f.domain == domain).collect();
            if rules.is_empty() {
                continue;
            }
            let _ = writeln!(out);
            let section = match domain {
                Domain::Registry => "registry_rules",
                Domain::File => "file_rules",
            };
            let _ = writeln!(
                out,
                "# proposed {section} (review each; a rule named in a comment decided the operation and must \
                 come after these, or have a lower priority)"
            );
            let _ = writeln!(out, "{section}:");
            for (i, f) in rules.iter().enumerate() {
                out.push_str(&proposed_rule(f, i + 1));
            }
        }
        out
    }
}

/// The rule that would allow `f`: its exact path (and value), its operation only.
fn proposed_rule(f: &Finding, n: usize) -> String {
    let mut out = String::new();
    let prefix = match f.domain {
        Domain::Registry => "audit-allow-registry",
        Domain::File => "audit-allow-file",
    };
    let _ = writeln!(out, "  - name: {prefix}-{n}");
    if f.rule != "default" {
        let _ = writeln!(out, "    # {} by rule `{}`", f.decision, f.rule);
    }
    match &f.value {
        Some(v) => {
            let _ = writeln!(
                out,
                "    paths: [{{ key: {}, value: {} }}]",
                quoted_pattern(&f.path),
                quoted_pattern(v)
            );
        }
        None => {
            let _ = writeln!(out, "    paths: [{}]", quoted_pattern(&f.path));
        }
    }
    let _ = writeln!(out, "    operations: [{}]", Display(&f.operation));
    let _ = writeln!(out, "    decision: allow");
    out
}

/// A literal path as a single-quoted YAML glob: wildcard characters bracketed, quotes doubled.
pub(crate) fn quoted_pattern(literal: &str) -> String {
    let mut s = String::from("'");
    for c in literal.chars() {
        match c {
            '*' => s.push_str("[*]"),
            '?' => s.push_str("[?]"),
            '[' => s.push_str("[[]"),
            '\'' => s.push_str("''"),
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// The policy operation of a driver operation name, through the policy crate's one mapping.
fn policy_operation(domain: Domain, driver_op: &str) -> String {
    use agentsh_policy::{Access, Operation};
    use agentsh_wire::{FileOperation, Operation as Wire};
    let op = match domain {
        Domain::Registry => Wire::from_name(driver_op).map(|o| Access::from(o).op),
        Domain::File => FileOperation::ALL
            .into_iter()
            .find(|o| o.name() == driver_op)
            .map(Operation::from),
    };
    op.map_or_else(|| driver_op.to_owned(), |o| o.name().to_owned())
}

/// The finding an event records, if it is an audit-mode would-be denial or approval.
fn finding(v: &Value) -> Option<Finding> {
    let s = |v: &Value| v.as_str().map(str::to_owned);
    if v.get("class_uid").is_some() {
        // OCSF: the decision and rule are kept in `unmapped`.
        let u = v.get("unmapped")?;
        let decision = s(&u["decision"])?;
        if !decision.starts_with("would ") {
            return None;
        }
        let (domain, path, value) = if let Some(f) = v.get("file") {
            (Domain::File, s(&f["path"])?, None)
        } else if let Some(r) = v.get("reg_value") {
            (Domain::Registry, s(&r["path"])?, s(&r["name"]))
        } else {
            // A rename's `reg_key` is the new name; the rule applies to the key as it was.
            let key = v.get("prev_reg_key").unwrap_or(&v["reg_key"]);
            (Domain::Registry, s(&key["path"])?, None)
        };
        let risk = v["attacks"][0]["sub_technique"]["uid"]
            .as_str()
            .or(v["attacks"][0]["technique"]["uid"].as_str())
            .map(str::to_owned);
        return Some(Finding {
            domain,
            decision,
            rule: s(&u["rule"]).unwrap_or_default(),
            operation: policy_operation(domain, u["driver_operation"].as_str().unwrap_or_default()),
            path,
            value,
            risk,
        });
    }
    let decision = s(&v["decision"])?;
    if !decision.starts_with("would ") {
        return None;
    }
    let kind = s(&v["type"]).unwrap_or_default();
    let domain = if kind.starts_with("file_") {
        Domain::File
    } else {
        Domain::Registry
    };
    let risk = match (s(&v["mitre_id"]), s(&v["risk_level"])) {
        (Some(id), Some(r)) => Some(format!("{id} {r}")),
        (Some(id), None) => Some(id),
        (None, r) => r,
    };
    Some(Finding {
        domain,
        decision,
        rule: s(&v["rule_name"]).unwrap_or_else(|| "default".to_owned()),
        operation: s(&v["operation"]).unwrap_or_default(),
        path: s(&v["key_path"])?,
        value: s(&v["value_name"]),
        risk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentsh_policy::{Decision, Policy, RegistryQuery, SessionContext};

    const RUN: &str = r#"
{"timestamp":"2026-01-02T00:00:01.000Z","type":"registry_write","session_id":"s-1","key_path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\Tool","value_name":"Level","operation":"write","driver_operation":"SetValue","process_id":7,"decision":"would deny","reason":"audit","rule_name":"default"}
{"timestamp":"2026-01-02T00:00:02.000Z","type":"registry_write","session_id":"s-1","key_path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\Tool","value_name":"Level","operation":"write","driver_operation":"SetValue","process_id":7,"decision":"would deny","reason":"audit","rule_name":"default"}
{"timestamp":"2026-01-02T00:00:03.000Z","type":"registry_write","session_id":"s-1","key_path":"\\REGISTRY\\USER\\S-1-5-21-1\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run","value_name":"x","operation":"write","driver_operation":"SetValue","process_id":7,"decision":"would deny","reason":"audit","rule_name":"builtin:run-keys-hkcu","risk_level":"critical","mitre_id":"T1547.001"}
{"timestamp":"2026-01-02T00:00:04.000Z","type":"registry_create","session_id":"s-1","key_path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Odd*Name[1]","operation":"create","driver_operation":"CreateKey","process_id":7,"decision":"would ask","reason":"audit","rule_name":"ask-vendor"}
{"timestamp":"2026-01-02T00:00:05.000Z","type":"registry_write","session_id":"s-1","key_path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\Tool","operation":"write","driver_operation":"SetValue","process_id":7,"decision":"allow","reason":"rule","rule_name":"x"}
"#;

    #[test]
    fn findings_are_grouped_and_counted() {
        let r = Report::from_lines(RUN, "run.jsonl").expect("events parse");
        assert_eq!(r.events, 5);
        assert_eq!(r.findings.len(), 3);
        let level = r
            .findings
            .iter()
            .find(|(f, _)| f.value.as_deref() == Some("Level"))
            .expect("the Level write is a finding");
        assert_eq!(*level.1, 2);
        assert_eq!(level.0.rule, "default");
        assert!(
            !r.findings.keys().any(|f| f.decision == "allow"),
            "allowed operations are not findings"
        );
    }

    #[test]
    fn catalog_decisions_are_listed_but_never_proposed() {
        let text = Report::from_lines(RUN, "run.jsonl")
            .expect("events parse")
            .render();
        assert!(text.contains("builtin:run-keys-hkcu"), "{text}");
        assert!(text.contains("T1547.001 critical"), "{text}");
        assert!(text.contains("not proposed: 1 operation(s)"), "{text}");
        let yaml = &text[text.find("registry_rules:").expect("rules proposed")..];
        assert!(!yaml.contains("CurrentVersion\\Run"), "{yaml}");
    }

    /// The proposed rules, added to a deny-by-default policy, allow exactly what was denied.
    #[test]
    fn proposed_rules_load_and_allow_the_denied_operations() {
        let text = Report::from_lines(RUN, "run.jsonl")
            .expect("events parse")
            .render();
        let rules = &text[text.find("registry_rules:").expect("rules proposed")..];
        let policy_text = format!("registry_policy:\n  default_action: deny\n{rules}");
        let policy = Policy::from_str(&policy_text, "proposed.yaml")
            .unwrap_or_else(|e| panic!("proposed rules must load: {e}\n{policy_text}"));
        let session = SessionContext::default();
        let mut q = RegistryQuery::new(
            r"\REGISTRY\MACHINE\SOFTWARE\Vendor\Tool",
            agentsh_wire::Operation::SetValue,
            &session,
        );
        q.value = Some("Level");
        q.sandboxed = true;
        assert_eq!(
            policy.engine().decide_registry(&q).decision,
            Decision::Allow
        );
        q.value = Some("Other");
        assert_eq!(
            policy.engine().decide_registry(&q).decision,
            Decision::Deny,
            "a proposal covers only the value that was denied"
        );
        let created = RegistryQuery {
            sandboxed: true,
            ..RegistryQuery::new(
                r"\REGISTRY\MACHINE\SOFTWARE\Odd*Name[1]",
                agentsh_wire::Operation::CreateKey,
                &session,
            )
        };
        // Checked on the rule scan: the engine's indexed decision for exact keys holding escaped
        // wildcards is the policy crate's to fix.
        let explained = policy.engine().explain_registry(&created);
        assert!(
            explained
                .steps
                .iter()
                .any(|s| s.name.starts_with("audit-allow-registry-")
                    && s.outcome.starts_with("first match")),
            "the proposal for a key whose name holds `*` and `[` matches it: {:?}",
            explained.steps
        );
    }

    #[test]
    fn wildcard_characters_in_real_names_are_quoted_literally() {
        assert_eq!(quoted_pattern(r"A*B?C[D]'E"), r"'A[*]B[?]C[[]D]''E'");
    }

    #[test]
    fn ocsf_events_are_read_too() {
        let line = r#"{"class_uid":201002,"reg_value":{"path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor","name":"Level"},"unmapped":{"decision":"would deny","rule":"default","driver_operation":"SetValue","session_id":"s-1","reason":"audit"}}"#;
        let r = Report::from_lines(line, "run.ocsf").expect("event parses");
        let f = r.findings.keys().next().expect("one finding");
        assert_eq!(f.path, r"\REGISTRY\MACHINE\SOFTWARE\Vendor");
        assert_eq!(f.value.as_deref(), Some("Level"));
        assert_eq!(f.operation, "write", "SetValue is the policy's write");
    }

    #[test]
    fn a_line_that_is_not_json_names_its_place() {
        let e = Report::from_lines("{}\nnot json\n", "run.jsonl").expect_err("line 2 is bad");
        assert!(e.starts_with("run.jsonl:2: not a JSON event"), "{e}");
    }

    /// F7 (security review, trace-audit2.jsonl): an audit-mode agent named a value so that the
    /// report drew a fake "proposed registry_rules" block with a catch-all allow and hid the real
    /// one behind `ESC[8m`. The name is now shown escaped on one line, no proposal is built from
    /// it, and a warning says why.
    #[test]
    fn f7_a_value_name_cannot_draw_a_fake_proposal() {
        let value = "`)\n\n# proposed registry_rules (review each)\nregistry_rules:\n  - name: audit-allow-registry-1\n    paths: ['*']\n    operations: ['*']\n    decision: allow\n\u{1b}[8m";
        let event = serde_json::json!({
            "timestamp": "2026-01-02T00:00:01.000Z", "type": "registry_write", "session_id": "s-1",
            "key_path": "\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\Tool", "value_name": value,
            "operation": "write", "driver_operation": "SetValue", "process_id": 7,
            "decision": "would deny", "reason": "audit", "rule_name": "default",
        });
        let text = Report::from_lines(&event.to_string(), "run.jsonl")
            .expect("events parse")
            .render();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("paths: ['*']")),
            "a catch-all proposal the audit data does not support: {text}"
        );
        assert!(
            !text.contains("registry_rules:\n"),
            "nothing proposable: {text}"
        );
        assert!(
            text.contains("warning: not proposed: 1 operation(s)"),
            "{text}"
        );
        assert!(text.contains("(value ``)\\u{a}\\u{a}# proposed"), "{text}");
    }

    /// Events name an unpaired surrogate as its own escape; the report reads it back and shows it.
    #[test]
    fn a_lone_surrogate_in_an_event_is_read_and_shown_escaped() {
        let line = r#"{"type":"registry_write","key_path":"\\REGISTRY\\MACHINE\\SOFTWARE\\Tool","value_name":"\ud800Updater","operation":"write","driver_operation":"SetValue","decision":"would deny","rule_name":"default"}"#;
        let r = Report::from_lines(line, "run.jsonl").expect("a lone surrogate is a name");
        let f = r.findings.keys().next().expect("one finding");
        assert_eq!(
            agentsh_winstr::name::units(f.value.as_deref().unwrap_or_default()).next(),
            Some(0xD800)
        );
        assert!(r.render().contains("(value `\\u{d800}Updater`)"));
    }
}
