//! Events: one canonical record for everything the service and the kernel decided, rendered as
//! the design's JSON payload or as OCSF, through a bounded queue that never blocks a decision.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// OCSF schema version the events follow: the latest release (Registry Key/Value Activity live in
/// its Windows extension, uid 2, whose version is the schema's). CI validates every event the
/// tests produce against this release's schema.
pub const OCSF_VERSION: &str = "1.8.0";

/// ATT&CK release the catalog's technique ids were checked against.
pub const ATTACK_VERSION: &str = "18.1";

/// The event types: the design's eight, plus file and fail-mode types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::VariantArray)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RegistryRead,
    RegistryWrite,
    RegistryCreate,
    RegistryDelete,
    RegistryRename,
    /// A denied registry operation (carries its operation).
    RegistryBlocked,
    RegistryApprovalRequest,
    RegistryApprovalResponse,
    FileRead,
    FileWrite,
    FileCreate,
    FileDelete,
    FileRename,
    FileBlocked,
    /// The kernel started deciding without the service (fail open or closed).
    FailModeEngaged,
    /// The kernel is asking the service again.
    FailModeRecovered,
}

impl EventKind {
    /// Every kind, for exhaustiveness tests (derived: a new kind cannot be left out).
    pub const ALL: &'static [EventKind] = <EventKind as strum::VariantArray>::VARIANTS;

    /// The `type` string.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn is_file(self) -> bool {
        matches!(
            self,
            EventKind::FileRead
                | EventKind::FileWrite
                | EventKind::FileCreate
                | EventKind::FileDelete
                | EventKind::FileRename
                | EventKind::FileBlocked
        )
    }
}

/// Why the decision was what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A policy rule decided.
    Rule,
    /// A high-risk catalog entry decided.
    Catalog,
    /// No rule matched: the policy's default action.
    Default,
    /// The process is outside every sandbox session (never blocked).
    Unsandboxed,
    /// The path was longer than the driver's buffer.
    Truncated,
    /// The kernel allowed because the service could not answer.
    FailOpen,
    /// The kernel denied because the service could not answer.
    FailClosed,
    /// An approval was not answered in time.
    Timeout,
    /// The driver connection closed while an approval was held: the kernel denied the operation.
    ConnectionLost,
    /// The kernel refused to hold an operation awaiting approval (the session's hold quota was
    /// taken) and denied it.
    HoldRefused,
    /// A person answered an approval.
    Person,
    /// A grant for the rest of the session allowed it.
    SessionGrant,
    /// Audit mode: recorded as decided, allowed anyway.
    Audit,
    /// The kernel answered from its cache.
    Cached,
    /// The driver sent a request the decoder refused (a kernel bug): a session's is denied.
    Malformed,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it was decided, in milliseconds since the Unix epoch; written as the design's
    /// `timestamp` (RFC 3339, UTC, milliseconds).
    #[serde(rename = "timestamp", serialize_with = "rfc3339")]
    pub timestamp_ms: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Public session id (`s-1`), never the token; empty outside sessions.
    pub session_id: String,
    pub key_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_name: Option<String>,
    /// Policy operation (`write`, …) and the driver's (`SetValue`, …).
    pub operation: &'static str,
    pub driver_operation: &'static str,
    pub process_id: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub process_name: String,
    /// The process's full image path, when the kernel reported it (session processes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub process_image: String,
    /// For a value written: its registry type (`REG_SZ`, …) and size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_size: Option<u32>,
    /// `allow`, `deny`, `approve`, or in audit mode `would deny` / `would ask`.
    pub decision: &'static str,
    pub reason: Reason,
    /// Whether the deciding rule asked for notification (the response's notify flag): a denial
    /// without it is a silent deny, logged (when the log flag says so) under its operation's own
    /// type rather than as a `*_blocked` notification.
    pub notify: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule_name: String,
    /// The catalog entry's risk, ATT&CK tactic and technique, and description (static catalog
    /// text: no allocation per event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitre_tactic: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitre_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'static str>,
    /// Approval events: the approval's id and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<u32>,
    /// Approval events: the session's application name, as registered (absent when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Approval events: the key or file as the policy's rules name it (canonical key with the
    /// session user's hive as `HKCU`; a file's drive-letter path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// ATT&CK release of `mitre_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack_version: Option<&'static str>,
    /// The ATT&CK technique's name (OCSF only: the design's payload has no field for it).
    #[serde(skip)]
    pub technique_name: Option<&'static str>,
    /// The other name of a two-name operation: the new key path of a `RenameKey`, the new path of
    /// a file rename, the new link of a hard link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// The wall check `sandbox run` reported when registering the session (`passed: …`,
    /// `skipped: …`): carried by the session's first event only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_check: Option<String>,
}

impl Event {
    /// An event stamped now.
    pub fn now(kind: EventKind) -> Event {
        Event {
            timestamp_ms: now_ms(),
            ..Event::unstamped(kind)
        }
    }

    /// An event whose timestamp (0) is still to be set: [`EventPipeline::emit`] stamps it when it
    /// is queued.
    pub fn unstamped(kind: EventKind) -> Event {
        Event {
            timestamp_ms: 0,
            kind,
            session_id: String::new(),
            key_path: String::new(),
            value_name: None,
            operation: "",
            driver_operation: "",
            process_id: 0,
            process_name: String::new(),
            process_image: String::new(),
            value_type: None,
            data_size: None,
            decision: "",
            reason: Reason::Default,
            notify: false,
            rule_name: String::new(),
            risk_level: None,
            mitre_tactic: None,
            mitre_id: None,
            description: None,
            approval_id: None,
            app: None,
            canonical_path: None,
            message: None,
            attack_version: None,
            technique_name: None,
            target_path: None,
            wall_check: None,
        }
    }

    /// The design's JSON payload (plus the fields agentsh adds).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// OCSF 1.8.0: Registry Key Activity (201001) or Registry Value Activity (201002) of the
    /// Windows extension, file events as File System Activity (1001), all with the
    /// security_control profile; fail-mode transitions as Device Config State Change (5019), a
    /// change of the device's security state (see docs/events.md §3).
    pub fn to_ocsf(&self) -> Value {
        if matches!(
            self.kind,
            EventKind::FailModeEngaged | EventKind::FailModeRecovered
        ) {
            return self.fail_mode_ocsf();
        }
        let value_event = self.value_name.is_some();
        let (class_uid, class_name) = if self.kind.is_file() {
            (1001, "File System Activity")
        } else if value_event {
            (201002, "Registry Value Activity")
        } else {
            (201001, "Registry Key Activity")
        };
        let activity_id = ocsf_activity(class_uid, self.driver_operation);
        let (action_id, disposition_id) = self.action_and_disposition();
        let mut ev = json!({
            // Registry Key/Value Activity belong to the System Activity category (1) like File
            // System Activity; 201 is the Windows extension's class range, not a category.
            "category_uid": 1,
            "class_uid": class_uid,
            "class_name": class_name,
            "activity_id": activity_id,
            "type_uid": class_uid * 100 + activity_id,
            "time": self.timestamp_ms,
            "severity_id": match self.risk_level { Some("critical") => 5, Some("high") => 4, Some("medium") => 3, _ => 1 },
            "action_id": action_id,
            "disposition_id": disposition_id,
            "metadata": ocsf_metadata(self.kind.name()),
            "actor": { "process": self.ocsf_process() },
            "device": ocsf_device(),
            "is_alert": self.notify,
            "unmapped": { "session_id": self.session_id, "reason": self.reason, "decision": self.decision,
                          "rule": self.rule_name, "driver_operation": self.driver_operation, "notify": self.notify },
        });
        if let Some(wall_check) = &self.wall_check {
            ev["unmapped"]["wall_check"] = json!(wall_check);
        }
        if let Some(app) = &self.app {
            ev["unmapped"]["app"] = json!(app);
        }
        if let Some(c) = &self.canonical_path {
            ev["unmapped"]["canonical_path"] = json!(c);
        }
        if activity_id == 99 && self.driver_operation == "hardlink" {
            ev["activity_name"] = json!("Create Hard Link");
        }
        if class_uid == 1001 {
            ev["file"] = ocsf_file(&self.key_path);
            if let Some(t) = &self.target_path {
                ev["file_result"] = ocsf_file(t);
            }
        } else if value_event {
            ev["reg_value"] = json!({ "path": self.key_path, "name": self.value_name, "is_default": self.value_name.as_deref() == Some("") });
            if let Some(t) = self.value_type {
                ev["reg_value"]["type"] = json!(t);
                ev["reg_value"]["type_id"] = json!(ocsf_value_type_id(t));
            }
        } else if let Some(t) = &self.target_path {
            // A rename: the key as it is after the change, and as it was before.
            ev["reg_key"] = json!({ "path": t });
            ev["prev_reg_key"] = json!({ "path": self.key_path });
        } else {
            ev["reg_key"] = json!({ "path": self.key_path });
        }
        if !self.rule_name.is_empty() {
            ev["firewall_rule"] = json!({ "name": self.rule_name });
            if let Some(d) = self.description {
                ev["firewall_rule"]["desc"] = json!(d);
            }
        }
        if let Some(id) = self.mitre_id {
            let (technique, sub) = match id.split_once('.') {
                Some((t, _)) => (t, Some(id)),
                None => (id, None),
            };
            let mut attack = json!({ "technique": { "uid": technique }, "version": self.attack_version.unwrap_or(ATTACK_VERSION) });
            if let Some(s) = sub {
                attack["sub_technique"] = json!({ "uid": s });
                if let Some(n) = self.technique_name {
                    attack["sub_technique"]["name"] = json!(n);
                }
            } else if let Some(n) = self.technique_name {
                attack["technique"]["name"] = json!(n);
            }
            if let Some((name, uid)) = self.mitre_tactic.and_then(agentsh_policy::catalog::tactic) {
                attack["tactic"] = json!({ "name": name, "uid": uid });
            }
            ev["attacks"] = json!([attack]);
        }
        if let Some(m) = &self.message {
            ev["message"] = json!(m);
        }
        let detail = self.status_detail();
        if !detail.is_empty() {
            ev["status_detail"] = json!(detail);
        }
        ev
    }

    /// The event as one line of `format`, lossless and line-safe: every dangerous character of
    /// a name (`agentsh_winstr::name::is_dangerous`: controls, DEL, NEL, U+2028/2029, bidi and
    /// invisible characters) is a `\uXXXX` escape, and an unpaired surrogate of a name is its
    /// own escape (`\ud800`, see docs/events.md), so no consumer splits the line and every
    /// name reads back to its exact code units.
    pub fn line(&self, format: Format) -> String {
        let value = match format {
            Format::Jsonl => self.to_json(),
            Format::Ocsf => self.to_ocsf(),
        };
        let raw = value.to_string();
        if raw.is_ascii() {
            return raw;
        }
        let mut out = String::with_capacity(raw.len() + 16);
        // Writing to a String cannot fail.
        let _ = agentsh_winstr::name::write_json_safe(&mut out, &raw);
        out
    }

    /// The security_control profile's action and disposition. Each disposition is one the
    /// schema's `action_id` description lists as conforming to the action: a person's approval
    /// pending is Modified + Delayed, a denial (including fail-closed, whose cause is in
    /// `status_detail`) Denied + Blocked, a person's denial Denied + Rejected, a person's or a
    /// session grant's allowance Allowed + Approved, audit mode Observed + Logged.
    fn action_and_disposition(&self) -> (u32, u32) {
        match (self.reason, self.decision) {
            (Reason::Person, "deny") => (2, 25),
            (Reason::Person | Reason::SessionGrant, _) => (1, 8),
            (_, "approve") => (4, 14),
            (Reason::Audit, _) => (3, 17),
            (
                Reason::Timeout | Reason::FailClosed | Reason::ConnectionLost | Reason::HoldRefused,
                _,
            )
            | (_, "deny") => (2, 2),
            _ => (1, 1),
        }
    }

    /// A fail-mode transition: Device Config State Change (5019), activity Other with its name,
    /// the device's security level (At Risk while the kernel decides on its own, Secure once it
    /// asks the service again), and what the kernel did meanwhile as action and disposition.
    fn fail_mode_ocsf(&self) -> Value {
        let engaged = self.kind == EventKind::FailModeEngaged;
        let (name, level, prev, state) = if engaged {
            ("Fail Mode Engaged", (2, "At Risk"), (1, "Secure"), 1)
        } else {
            ("Fail Mode Recovered", (1, "Secure"), (2, "At Risk"), 2)
        };
        let mut ev = json!({
            "category_uid": 5,
            "class_uid": 5019,
            "class_name": "Device Config State Change",
            "activity_id": 99,
            "activity_name": name,
            "type_uid": 5019 * 100 + 99,
            "time": self.timestamp_ms,
            "severity_id": if engaged { 4 } else { 1 },
            "security_level_id": level.0,
            "security_level": level.1,
            "prev_security_level_id": prev.0,
            "prev_security_level": prev.1,
            "state_id": state,
            "is_alert": engaged,
            "metadata": ocsf_metadata(self.kind.name()),
            "device": ocsf_device(),
            "unmapped": { "reason": self.reason, "decision": self.decision },
        });
        match self.reason {
            Reason::FailOpen => {
                ev["action_id"] = json!(1);
                ev["disposition_id"] = json!(1);
            }
            Reason::FailClosed => {
                ev["action_id"] = json!(2);
                ev["disposition_id"] = json!(2);
            }
            _ => {}
        }
        if let Some(m) = &self.message {
            ev["message"] = json!(m);
        }
        let detail = self.status_detail();
        if !detail.is_empty() {
            ev["status_detail"] = json!(detail);
        }
        ev
    }

    /// The acting process: its id when known (the kernel always gives one for an operation), its
    /// name and image only when known (an unsandboxed process is reported by id alone).
    fn ocsf_process(&self) -> Value {
        let mut p = json!({ "pid": self.process_id });
        if !self.process_name.is_empty() {
            p["name"] = json!(self.process_name);
        }
        if !self.process_image.is_empty() {
            p["file"] = json!({ "path": self.process_image, "name": self.process_image.rsplit('\\').next().unwrap_or(&self.process_image), "type_id": 1 });
        }
        p
    }

    fn status_detail(&self) -> &'static str {
        match self.reason {
            Reason::Timeout => "approval timeout",
            Reason::FailOpen => "fail-open: service unavailable",
            Reason::FailClosed => "fail-closed: service unavailable",
            Reason::ConnectionLost => "driver connection lost while the approval was held",
            Reason::HoldRefused => "the driver's hold quota for the session was taken",
            Reason::Audit => "audit mode",
            Reason::Truncated => "path longer than the driver's buffer",
            _ => "",
        }
    }
}

/// `metadata`: the product (with this build's version), the schema release, the Windows
/// extension, the profile and the event code.
fn ocsf_metadata(event_code: String) -> Value {
    json!({
        "product": { "name": "agentsh", "vendor_name": "agentsh", "version": env!("CARGO_PKG_VERSION") },
        "version": OCSF_VERSION,
        "extensions": [{ "name": "win", "uid": "2", "version": OCSF_VERSION }],
        "profiles": ["security_control"],
        "event_code": event_code,
    })
}

/// `device`: the machine the service runs on, by host name (the schema requires at least one
/// identifying attribute); its type is not known here, so Unknown.
fn ocsf_device() -> Value {
    json!({ "hostname": host_name(), "type_id": 0 })
}

/// The host name, read once.
pub fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let name = gethostname::gethostname().to_string_lossy().into_owned();
        if name.is_empty() {
            "localhost".to_owned()
        } else {
            name
        }
    })
}

/// A `file` object: path, last component as name, type Unknown (the driver does not say whether
/// the path is a file or a directory).
fn ocsf_file(path: &str) -> Value {
    json!({ "path": path, "name": path.rsplit('\\').next().unwrap_or(path), "type_id": 0 })
}

/// OCSF activity ids: Registry Key 1 Create, 2 Read, 3 Modify, 4 Delete, 5 Rename, 6 Set Security,
/// 7 Restore, 8 Import, 9 Export; Registry Value 1 Get, 2 Set, 3 Modify, 4 Delete; File System
/// 1 Create, 2 Read, 3 Update, 4 Delete, 5 Rename; 99 Other.
fn ocsf_activity(class_uid: u32, driver_op: &str) -> u32 {
    match (class_uid, driver_op) {
        (201001, "CreateKey") => 1,
        (201001, "OpenKey" | "EnumKeys" | "EnumValues" | "QueryValue") => 2,
        (201001, "DeleteKey") => 4,
        (201001, "RenameKey") => 5,
        (201001, "SetKeySecurity") => 6,
        (201001, "RestoreKey" | "ReplaceKey") => 7,
        (201001, "LoadKey") => 8,
        (201001, "SaveKey") => 9,
        (201002, "QueryValue") => 1,
        (201002, "SetValue") => 2,
        (201002, "DeleteValue") => 4,
        (1001, "create") => 1,
        (1001, "read") => 2,
        (1001, "write") => 3,
        (1001, "delete") => 4,
        (1001, "rename") => 5,
        _ => 99,
    }
}

/// Windows' registry value types (`REG_*` constants) by number; `None` for a number Windows does
/// not define.
pub fn value_type_name(value_type: u32) -> Option<&'static str> {
    Some(match value_type {
        0 => "REG_NONE",
        1 => "REG_SZ",
        2 => "REG_EXPAND_SZ",
        3 => "REG_BINARY",
        4 => "REG_DWORD",
        5 => "REG_DWORD_BIG_ENDIAN",
        6 => "REG_LINK",
        7 => "REG_MULTI_SZ",
        8 => "REG_RESOURCE_LIST",
        9 => "REG_FULL_RESOURCE_DESCRIPTOR",
        10 => "REG_RESOURCE_REQUIREMENTS_LIST",
        11 => "REG_QWORD",
        _ => return None,
    })
}

/// OCSF's own `reg_value.type_id` enumeration, which is not Windows' numbering.
fn ocsf_value_type_id(name: &str) -> u32 {
    match name {
        "REG_BINARY" => 1,
        "REG_DWORD" => 2,
        "REG_DWORD_BIG_ENDIAN" => 3,
        "REG_EXPAND_SZ" => 4,
        "REG_LINK" => 5,
        "REG_MULTI_SZ" => 6,
        "REG_NONE" => 7,
        "REG_QWORD" => 8,
        "REG_SZ" => 10,
        _ => 99,
    }
}

fn rfc3339<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(*ms);
    s.collect_str(&humantime::format_rfc3339_millis(t))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Output format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Ocsf,
}

/// A function given every event; returns whether it was delivered.
pub type Deliver = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Where the pipeline delivers events.
pub enum Sink {
    /// One line per event, in a format, to a writer (file, standard output).
    Lines(Format, Box<dyn Write + Send>),
    /// A function given every event (the Windows Event Log); returns whether it was delivered.
    Each(Deliver),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Lines(format, _) => write!(f, "Lines({format:?})"),
            Sink::Each(_) => f.write_str("Each"),
        }
    }
}

/// The bounded event pipeline: `emit` never blocks; a full queue drops and counts.
#[derive(Debug, Clone)]
pub struct EventPipeline {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    emitted: Arc<AtomicU64>,
    /// Sessions whose first event is still to carry their wall check (public id → result).
    first_events: Arc<FirstEvents>,
}

/// Wall-check results waiting for their session's first event; `waiting` lets `emit` skip the
/// lock while none waits (the common case).
#[derive(Debug, Default)]
struct FirstEvents {
    waiting: std::sync::atomic::AtomicUsize,
    results: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl EventPipeline {
    /// A pipeline of `capacity` events written by a background task to `out` in `format`.
    pub fn spawn(capacity: usize, format: Format, out: Box<dyn Write + Send>) -> EventPipeline {
        Self::spawn_sinks(capacity, vec![Sink::Lines(format, out)])
    }

    /// A pipeline of `capacity` events delivered by one background task to every sink in turn. A
    /// sink whose write fails is reported (once per failing stretch) and the others go on.
    pub fn spawn_sinks(capacity: usize, mut sinks: Vec<Sink>) -> EventPipeline {
        let (tx, mut rx) = mpsc::channel::<Event>(capacity.max(1));
        tokio::spawn(async move {
            let mut failing = vec![false; sinks.len()];
            while let Some(ev) = rx.recv().await {
                for (i, sink) in sinks.iter_mut().enumerate() {
                    let ok = match sink {
                        Sink::Lines(format, out) => {
                            let line = ev.line(*format);
                            writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
                        }
                        Sink::Each(deliver) => deliver(&ev),
                    };
                    if !ok && !failing[i] {
                        tracing::error!(
                            sink = i,
                            "event sink write failed; its events are being lost"
                        );
                    }
                    failing[i] = !ok;
                }
            }
        });
        EventPipeline {
            tx,
            dropped: Arc::default(),
            emitted: Arc::default(),
            first_events: Arc::default(),
        }
    }

    /// A pipeline whose events the caller reads from the returned receiver (tests, the demo).
    pub fn channel(capacity: usize) -> (EventPipeline, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            EventPipeline {
                tx,
                dropped: Arc::default(),
                emitted: Arc::default(),
                first_events: Arc::default(),
            },
            rx,
        )
    }

    /// Queues an event, or drops and counts it when the queue is full. An event not yet stamped
    /// ([`Event::unstamped`]) is stamped now.
    pub fn emit(&self, mut ev: Event) {
        if ev.timestamp_ms == 0 {
            ev.timestamp_ms = now_ms();
        }
        if !ev.session_id.is_empty() && self.first_events.waiting.load(Ordering::Acquire) > 0 {
            ev.wall_check = self.take_first_event_result(&ev.session_id);
        }
        match self.tx.try_send(ev) {
            Ok(()) => {
                self.emitted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The next event of session `session_id` carries `wall_check` (set when the session is
    /// registered with a wall-check result).
    pub fn first_event_carries(&self, session_id: &str, wall_check: &str) {
        if let Ok(mut results) = self.first_events.results.lock() {
            results.insert(session_id.to_owned(), wall_check.to_owned());
            self.first_events
                .waiting
                .store(results.len(), Ordering::Release);
        }
    }

    /// Forgets a session's waiting wall-check result (the session ended before any event).
    pub fn forget_first_event(&self, session_id: &str) {
        let _ = self.take_first_event_result(session_id);
    }

    fn take_first_event_result(&self, session_id: &str) -> Option<String> {
        let mut results = self.first_events.results.lock().ok()?;
        let taken = results.remove(session_id);
        self.first_events
            .waiting
            .store(results.len(), Ordering::Release);
        taken
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events queued so far.
    pub fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::Relaxed)
    }
}
