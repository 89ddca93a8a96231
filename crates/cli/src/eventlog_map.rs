//! Which service events the Windows service writes to the Event Log (source "AgentSH", System
//! log), and as which record. The System log is for what an administrator must see, not for
//! every allowed read: denied operations, approvals' outcomes, high-risk locations touched, and
//! fail-mode transitions. Every event still goes to the configured JSON / OCSF sinks.

use agentsh_service::{Event, EventKind, Reason};
use agentsh_windows::eventlog;

/// The Event Log record for `ev`, if it is one an administrator must see.
pub fn record(ev: &Event) -> Option<eventlog::Event> {
    match ev.kind {
        EventKind::FailModeEngaged => Some(eventlog::Event::FailMode {
            closed: ev.reason == Reason::FailClosed,
            reason: ev.message.as_deref().map_or_else(
                || "the driver is deciding without the policy service".to_owned(),
                inert,
            ),
        }),
        EventKind::FailModeRecovered => Some(eventlog::Event::FailModeRecovered {
            detail: ev.message.as_deref().map_or_else(
                || "the driver asks the policy service again".to_owned(),
                inert,
            ),
        }),
        EventKind::RegistryBlocked | EventKind::FileBlocked => Some(decision(ev, false)),
        EventKind::RegistryApprovalResponse => Some(decision(ev, ev.decision == "allow")),
        _ if ev.mitre_id.is_some() => Some(decision(ev, !ev.decision.contains("deny"))),
        _ => None,
    }
}

/// Attacker-chosen text as an Event Log insertion string: the display rendering (every control,
/// line break, bidi and invisible character and unpaired surrogate a visible `\u{…}` escape), with
/// `%` written as `\u{25}` so that no `%%n` or `%n` sequence can make the Event Viewer expand a
/// parameter message, and `"` as `\u{22}` so that a quoted value name cannot end early.
pub fn inert(text: &str) -> String {
    let shown = agentsh_winstr::name::Display(text).to_string();
    if !shown.contains(['%', '"']) {
        return shown;
    }
    shown.replace('%', "\\u{25}").replace('"', "\\u{22}")
}

fn decision(ev: &Event, allowed: bool) -> eventlog::Event {
    // The value name is quoted apart from the key: joined with `\` it would read as a subkey.
    let path = match &ev.value_name {
        Some(v) => format!("{} value \"{}\"", inert(&ev.key_path), inert(v)),
        None => inert(&ev.key_path),
    };
    eventlog::Event::Decision {
        allowed,
        operation: if ev.operation.is_empty() {
            ev.driver_operation.to_owned()
        } else {
            ev.operation.to_owned()
        },
        path,
        rule: if ev.rule_name.is_empty() {
            format!("{:?}", ev.reason).to_lowercase()
        } else {
            inert(&ev.rule_name)
        },
        technique: ev.mitre_id.map(str::to_owned),
        session: if ev.session_id.is_empty() {
            "none".to_owned()
        } else {
            inert(&ev.session_id)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        let mut ev = Event::now(kind);
        ev.session_id = "s-3".into();
        ev.key_path = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run".into();
        ev.value_name = Some("updater".into());
        ev.operation = "write";
        ev.driver_operation = "SetValue";
        ev.rule_name = "builtin:run-keys-hkcu".into();
        ev
    }

    #[test]
    fn a_blocked_write_is_a_denied_decision_naming_value_rule_technique_and_session() {
        let mut ev = event(EventKind::RegistryBlocked);
        ev.decision = "deny";
        ev.mitre_id = Some("T1547.001");
        let Some(eventlog::Event::Decision {
            allowed,
            operation,
            path,
            rule,
            technique,
            session,
        }) = record(&ev)
        else {
            panic!("a blocked write is recorded as a decision");
        };
        assert!(!allowed);
        assert_eq!(operation, "write");
        assert_eq!(
            path,
            r#"HKCU\Software\Microsoft\Windows\CurrentVersion\Run value "updater""#
        );
        assert_eq!(rule, "builtin:run-keys-hkcu");
        assert_eq!(technique.as_deref(), Some("T1547.001"));
        assert_eq!(session, "s-3");
    }

    #[test]
    fn routine_allowed_operations_stay_out_of_the_system_log() {
        let mut ev = event(EventKind::RegistryWrite);
        ev.decision = "allow";
        ev.rule_name = "allow-app-settings".into();
        assert_eq!(record(&ev), None);
    }

    #[test]
    fn an_allowed_write_to_a_high_risk_location_is_recorded() {
        let mut ev = event(EventKind::RegistryWrite);
        ev.decision = "allow";
        ev.session_id.clear();
        ev.reason = Reason::Unsandboxed;
        ev.rule_name.clear();
        ev.mitre_id = Some("T1547.001");
        match record(&ev) {
            Some(eventlog::Event::Decision {
                allowed: true,
                rule,
                session,
                ..
            }) => {
                assert_eq!(rule, "unsandboxed");
                assert_eq!(session, "none");
            }
            other => panic!("expected an allowed decision, got {other:?}"),
        }
    }

    #[test]
    fn approval_outcomes_and_fail_mode_transitions_are_recorded() {
        let mut ev = event(EventKind::RegistryApprovalResponse);
        ev.decision = "allow";
        assert!(matches!(
            record(&ev),
            Some(eventlog::Event::Decision { allowed: true, .. })
        ));
        ev.decision = "deny";
        assert!(matches!(
            record(&ev),
            Some(eventlog::Event::Decision { allowed: false, .. })
        ));

        let mut engaged = Event::now(EventKind::FailModeEngaged);
        engaged.reason = Reason::FailClosed;
        assert!(matches!(
            record(&engaged),
            Some(eventlog::Event::FailMode { closed: true, .. })
        ));
        engaged.reason = Reason::FailOpen;
        assert!(matches!(
            record(&engaged),
            Some(eventlog::Event::FailMode { closed: false, .. })
        ));
        assert!(matches!(
            record(&Event::now(EventKind::FailModeRecovered)),
            Some(eventlog::Event::FailModeRecovered { .. })
        ));
    }

    /// F18 (security review, code review of the Event Log path): a value name with `\` read as a
    /// subkey, CR/LF forged lines and `%%n` could expand a parameter message. Each is escaped.
    #[test]
    fn f18_event_log_records_carry_no_raw_attacker_text() {
        let mut ev = event(EventKind::RegistryBlocked);
        ev.decision = "deny";
        ev.value_name = Some("Sub\\Key\r\nAllowed: yes %%1 %1 \"\u{202e}".into());
        ev.key_path.push_str("\u{1b}[2K");
        let Some(eventlog::Event::Decision { path, .. }) = record(&ev) else {
            panic!("a blocked write is recorded as a decision");
        };
        for raw in ['\r', '\n', '%', '\u{1b}', '\u{202e}'] {
            assert!(!path.contains(raw), "raw {raw:?} in {path}");
        }
        assert_eq!(
            path,
            r#"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\u{1b}[2K value "Sub\Key\u{d}\u{a}Allowed: yes \u{25}\u{25}1 \u{25}1 \u{22}\u{202e}""#
        );
    }
}
