//! The Event Log sink on Windows: the source opens and every kind of event is accepted by
//! ReportEventW (Wine implements the calls as stubs that succeed; Windows writes the records).
#![cfg(windows)]

use agentsh_windows::eventlog::{Event, EventLog};

#[test]
fn every_event_kind_is_reported() {
    let log = EventLog::open().expect("event source opens");
    let events = [
        Event::Decision {
            allowed: false,
            operation: "write".into(),
            path: r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run\x".into(),
            rule: "block-run-keys".into(),
            technique: Some("T1547.001".into()),
            session: "s-7".into(),
        },
        Event::FailMode {
            closed: true,
            reason: "policy service unreachable".into(),
        },
        Event::FailModeRecovered {
            detail: "service reconnected".into(),
        },
        Event::ServiceStarted {
            detail: "test".into(),
        },
        Event::ServiceStopped {
            detail: "test".into(),
        },
        Event::DriverUnavailable {
            reason: "test".into(),
        },
    ];
    for event in &events {
        log.report(event)
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }
}
