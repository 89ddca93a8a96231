//! Event Log records of the "AgentSH" source in the System log: their ids (which must match the
//! message table `packaging/agentsh.mc` compiled into agentsh.exe), severities and insertion strings.

#[cfg(windows)]
pub use crate::imp::eventlog::{EventLog, register_source, unregister_source};

/// Event source name, as the guide specifies.
pub const SOURCE: &str = "AgentSH";
/// The log the source is registered in.
pub const LOG: &str = "System";
/// The driver's message table (its RT_MESSAGETABLE resource), as the Event Log expands it.
pub const DRIVER_MESSAGE_FILE: &str = "%SystemRoot%\\System32\\drivers\\agentsh.sys";
/// Where `service install` puts agentsh.exe, for a registration made before the service's.
pub const SERVICE_MESSAGE_FILE: &str = "%ProgramFiles%\\agentsh\\agentsh.exe";

/// `EventMessageFile` of the one source key both the driver (IoWriteErrorLogEntry source
/// `agentsh`) and the service (`AgentSH`) log under — Event Log source names are
/// case-insensitive, so they are the same key — listing both message tables. Their ids do not
/// overlap: the driver's carry the customer bit (driver/messages.txt), the service's do not
/// (packaging/agentsh.mc).
pub fn message_files(service_exe: &str) -> String {
    format!("{DRIVER_MESSAGE_FILE};{service_exe}")
}

/// Event Log entry types (winnt.h `EVENTLOG_*_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Information = 4,
    Warning = 2,
    Error = 1,
}

/// One record for the Event Log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Decision {
        allowed: bool,
        operation: String,
        path: String,
        rule: String,
        technique: Option<String>,
        /// The public session id (`s-1`), never the token; `none` outside sessions.
        session: String,
    },
    FailMode {
        closed: bool,
        reason: String,
    },
    FailModeRecovered {
        detail: String,
    },
    ServiceStarted {
        detail: String,
    },
    ServiceStopped {
        detail: String,
    },
    DriverUnavailable {
        reason: String,
    },
    /// The local API cannot be served (a squatted pipe name, descriptor exhaustion); the
    /// service keeps answering the driver.
    ApiUnavailable {
        reason: String,
    },
}

const SEV_INFORMATIONAL: u32 = 1 << 30;
const SEV_WARNING: u32 = 2 << 30;
const SEV_ERROR: u32 = 3 << 30;

impl Event {
    /// The message id: severity bits over the `MessageId` of the .mc file.
    pub fn id(&self) -> u32 {
        match self {
            Event::Decision { allowed: true, .. } => SEV_INFORMATIONAL | 1000,
            Event::Decision { allowed: false, .. } => SEV_WARNING | 1001,
            Event::FailMode { closed: false, .. } => SEV_WARNING | 1100,
            Event::FailMode { closed: true, .. } => SEV_ERROR | 1101,
            Event::FailModeRecovered { .. } => SEV_INFORMATIONAL | 1102,
            Event::ServiceStarted { .. } => SEV_INFORMATIONAL | 1200,
            Event::ServiceStopped { .. } => SEV_INFORMATIONAL | 1201,
            Event::DriverUnavailable { .. } => SEV_ERROR | 1202,
            Event::ApiUnavailable { .. } => SEV_ERROR | 1203,
        }
    }

    /// The entry type Event Viewer shows.
    pub fn severity(&self) -> Severity {
        match self.id() >> 30 {
            3 => Severity::Error,
            2 => Severity::Warning,
            _ => Severity::Information,
        }
    }

    /// Insertion strings `%1`, `%2`, ... in order.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Event::Decision {
                operation,
                path,
                rule,
                technique,
                session,
                ..
            } => vec![
                operation.clone(),
                path.clone(),
                rule.clone(),
                technique.clone().unwrap_or_else(|| "none".into()),
                session.clone(),
            ],
            Event::FailMode { reason, .. }
            | Event::DriverUnavailable { reason }
            | Event::ApiUnavailable { reason } => {
                vec![reason.clone()]
            }
            Event::FailModeRecovered { detail }
            | Event::ServiceStarted { detail }
            | Event::ServiceStopped { detail } => vec![detail.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (MessageId, severity bits, number of insertion strings) from packaging/agentsh.mc.
    fn message_table() -> Vec<(u32, u32, usize)> {
        let text = include_str!("../../../packaging/agentsh.mc");
        let mut out = Vec::new();
        let mut id = None;
        let mut severity = 0;
        let mut body: Option<String> = None;
        for line in text.lines() {
            if let Some(b) = body.as_mut() {
                if line == "." {
                    let inserts = (1..=9).filter(|n| b.contains(&format!("%{n}"))).count();
                    out.push((id.take().expect("id"), severity, inserts));
                    body = None;
                } else {
                    b.push_str(line);
                }
            } else if let Some(v) = line.strip_prefix("MessageId=") {
                id = Some(v.parse().expect("message id"));
            } else if let Some(v) = line.strip_prefix("Severity=") {
                severity = match v {
                    "Informational" => 1,
                    "Warning" => 2,
                    "Error" => 3,
                    other => panic!("unknown severity {other}"),
                };
            } else if line.starts_with("Language=") {
                body = Some(String::new());
            }
        }
        out
    }

    #[test]
    fn every_event_matches_its_message_table_entry() {
        let table = message_table();
        let s = || String::from("x");
        let events = [
            Event::Decision {
                allowed: true,
                operation: s(),
                path: s(),
                rule: s(),
                technique: None,
                session: "s-1".into(),
            },
            Event::Decision {
                allowed: false,
                operation: s(),
                path: s(),
                rule: s(),
                technique: Some("T1547.001".into()),
                session: "s-1".into(),
            },
            Event::FailMode {
                closed: false,
                reason: s(),
            },
            Event::FailMode {
                closed: true,
                reason: s(),
            },
            Event::FailModeRecovered { detail: s() },
            Event::ServiceStarted { detail: s() },
            Event::ServiceStopped { detail: s() },
            Event::DriverUnavailable { reason: s() },
            Event::ApiUnavailable { reason: s() },
        ];
        assert_eq!(table.len(), events.len(), "one message per event");
        for event in &events {
            let id = event.id();
            let entry = table
                .iter()
                .find(|(m, sev, _)| *m == id & 0xFFFF && *sev == id >> 30)
                .unwrap_or_else(|| panic!("{event:?}: id {id:#x} not in agentsh.mc"));
            assert_eq!(
                entry.2,
                event.strings().len(),
                "{event:?}: insertion strings"
            );
        }
    }

    #[test]
    fn severities_follow_the_id_bits() {
        let closed = Event::FailMode {
            closed: true,
            reason: "service unreachable".into(),
        };
        assert_eq!(closed.severity(), Severity::Error);
        assert_eq!(closed.id(), 0xC000_044D);
        assert_eq!(closed.strings(), vec!["service unreachable".to_owned()]);
    }
}

#[cfg(test)]
mod message_file_tests {
    use super::*;

    #[test]
    fn one_source_lists_the_driver_and_the_service() {
        assert!(SOURCE.eq_ignore_ascii_case(crate::driver::FILTER_NAME));
        let list = message_files(r"C:\Program Files\agentsh\agentsh.exe");
        let files: Vec<&str> = list.split(';').collect();
        assert_eq!(
            files,
            [
                r"%SystemRoot%\System32\drivers\agentsh.sys",
                r"C:\Program Files\agentsh\agentsh.exe"
            ]
        );
        assert!(files[0].ends_with(crate::driver::IMAGE_NAME));
    }
}
