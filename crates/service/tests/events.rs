//! Event output: a golden file per event type in both formats, checks of the OCSF mappings a SIEM
//! relies on, and the pipeline's bound.

use agentsh_service::events::{Event, EventKind, EventPipeline, Format, Reason};

fn sample(kind: EventKind) -> Event {
    let mut e = Event::now(kind);
    e.timestamp_ms = 1_767_312_000_000;
    e.session_id = "s-1".into();
    e.process_id = 4100;
    e.process_name = "python.exe".into();
    e.process_image = r"C:\Python311\python.exe".into();
    let file = matches!(
        kind,
        EventKind::FileRead
            | EventKind::FileWrite
            | EventKind::FileCreate
            | EventKind::FileDelete
            | EventKind::FileRename
            | EventKind::FileBlocked
    );
    if file {
        e.key_path = r"C:\work\project\out.txt".into();
        e.operation = "write";
        e.driver_operation = "write";
        e.decision = if kind == EventKind::FileBlocked {
            "deny"
        } else {
            "allow"
        };
        e.reason = Reason::Rule;
        e.rule_name = "workspace-only".into();
        return e;
    }
    e.key_path =
        r"\REGISTRY\USER\S-1-5-21-1-2-3-1001\SOFTWARE\Microsoft\Windows\CurrentVersion\Run".into();
    e.value_name = Some("Updater".into());
    e.operation = "write";
    e.driver_operation = "SetValue";
    e.value_type = Some("REG_SZ");
    e.data_size = Some(46);
    e.rule_name = "builtin:run-keys-hkcu".into();
    e.reason = Reason::Catalog;
    e.risk_level = Some("critical");
    e.mitre_id = Some("T1547.001");
    e.mitre_tactic = Some("persistence");
    e.description = Some("per-user Run/RunOnce keys start programs at logon");
    e.attack_version = Some("18.1");
    e.decision = match kind {
        EventKind::RegistryBlocked => "deny",
        EventKind::RegistryApprovalRequest => "approve",
        EventKind::FailModeEngaged => "deny",
        _ => "allow",
    };
    if matches!(
        kind,
        EventKind::RegistryApprovalRequest | EventKind::RegistryApprovalResponse
    ) {
        e.approval_id = Some(3);
        e.message = Some(
            "Agent wants to modify service: HKLM\\SYSTEM\\CurrentControlSet\\Services\\x".into(),
        );
        e.reason = if kind == EventKind::RegistryApprovalResponse {
            Reason::Person
        } else {
            Reason::Rule
        };
    }
    if kind == EventKind::FailModeEngaged {
        e.reason = Reason::FailClosed;
    }
    e
}

#[test]
fn every_event_type_has_golden_json_and_ocsf() {
    for &kind in EventKind::ALL {
        let e = sample(kind);
        insta::assert_json_snapshot!(format!("{}_json", kind.name()), e.to_json());
        insta::assert_json_snapshot!(format!("{}_ocsf", kind.name()), e.to_ocsf());
    }
}

#[test]
fn ocsf_classes_activities_and_dispositions() {
    let set = sample(EventKind::RegistryBlocked).to_ocsf();
    assert_eq!(
        set["class_uid"], 201002,
        "a value event is Registry Value Activity"
    );
    assert_eq!(set["activity_id"], 2, "SetValue is Set");
    assert_eq!(set["type_uid"], 20100202);
    assert_eq!(
        (set["action_id"].as_u64(), set["disposition_id"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(set["attacks"][0]["sub_technique"]["uid"], "T1547.001");
    assert_eq!(set["attacks"][0]["technique"]["uid"], "T1547");
    assert_eq!(set["attacks"][0]["version"], "18.1");
    assert_eq!(set["reg_value"]["type"], "REG_SZ");
    assert_eq!(
        set["reg_value"]["type_id"], 10,
        "OCSF numbers REG_SZ 10, not Windows' 1"
    );
    assert_eq!(
        set["actor"]["process"]["file"]["path"],
        r"C:\Python311\python.exe"
    );
    assert_eq!(set["time"], 1_767_312_000_000u64, "OCSF time is epoch ms");
    let json = sample(EventKind::RegistryBlocked).to_json();
    assert_eq!(
        json["timestamp"], "2026-01-02T00:00:00.000Z",
        "the design's `timestamp`, RFC 3339 in UTC"
    );
    assert_eq!(json["value_type"], "REG_SZ");
    assert_eq!(json["process_image"], r"C:\Python311\python.exe");

    let mut key = sample(EventKind::RegistryCreate);
    key.value_name = None;
    key.driver_operation = "CreateKey";
    let key = key.to_ocsf();
    assert_eq!(
        (key["class_uid"].as_u64(), key["activity_id"].as_u64()),
        (Some(201001), Some(1))
    );

    let mut by_person = sample(EventKind::RegistryApprovalResponse);
    by_person.decision = "deny";
    assert_eq!(
        by_person.to_ocsf()["disposition_id"],
        25,
        "a person's denial is Rejected"
    );
    by_person.reason = Reason::Timeout;
    let timed_out = by_person.to_ocsf();
    assert_eq!(
        timed_out["disposition_id"], 2,
        "a timeout is Blocked, never Rejected"
    );
    assert_eq!(timed_out["status_detail"], "approval timeout");
    let mut allowed = sample(EventKind::RegistryApprovalResponse);
    allowed.decision = "allow";
    assert_eq!(allowed.to_ocsf()["disposition_id"], 8, "Approved");
    assert_eq!(
        sample(EventKind::RegistryApprovalRequest).to_ocsf()["disposition_id"],
        14,
        "Delayed"
    );
    assert_eq!(
        sample(EventKind::FailModeEngaged).to_ocsf()["disposition_id"],
        27,
        "fail-closed is Error"
    );
}

#[test]
fn events_never_carry_a_session_token() {
    let json = sample(EventKind::RegistryWrite).to_json();
    assert_eq!(json["session_id"], "s-1");
    assert!(json.get("session_token").is_none());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (pipeline, mut rx) = EventPipeline::channel(2);
    for _ in 0..5 {
        pipeline.emit(sample(EventKind::RegistryWrite));
    }
    assert_eq!((pipeline.emitted(), pipeline.dropped()), (2, 3));
    assert!(rx.recv().await.is_some());
}

/// F11 (security review, trace-inject.jsonl): a value name carrying U+2028, U+0085, U+202E, DEL
/// and a forged JSON object split one event into several "lines" for `splitlines()`-style
/// readers. Both formats now write every dangerous character as a `\uXXXX` escape, an unpaired
/// surrogate as its own escape, and the line reads back to the exact code units.
#[test]
fn f11_event_lines_escape_line_separators_and_keep_names_exact() {
    let value_units: Vec<u16> = "x\u{1b}[2K\r\n{\"type\":\"registry_write\",\"decision\":\"allow\"}\u{2028}\u{2029}\u{85}\u{202e}\u{7f}"
        .encode_utf16()
        .chain([0xD800, u16::from(b'U')])
        .collect();
    let mut ev = sample(EventKind::RegistryBlocked);
    ev.value_name = Some(agentsh_winstr::name::decode(&value_units).collect());
    for format in [Format::Jsonl, Format::Ocsf] {
        let line = ev.line(format);
        assert_eq!(
            line.lines().count(),
            1,
            "{format:?}: one line for every reader: {line:?}"
        );
        for raw in [
            '\u{2028}', '\u{2029}', '\u{85}', '\u{7f}', '\u{202e}', '\u{1b}', '\r',
        ] {
            assert!(
                !line.contains(raw),
                "{format:?}: raw U+{:04X} in {line}",
                u32::from(raw)
            );
        }
        assert!(
            line.contains("\\u2028\\u2029\\u0085\\u202e\\u007f\\ud800U"),
            "{line}"
        );
        let mut names = String::new();
        agentsh_winstr::name::write_json_names(&mut names, &line).expect("to a String");
        let back: serde_json::Value = serde_json::from_str(&names).expect("valid JSON");
        let value = match format {
            Format::Jsonl => back["value_name"].as_str(),
            Format::Ocsf => back["reg_value"]["name"].as_str(),
        }
        .expect("the value name is present");
        assert_eq!(
            agentsh_winstr::name::units(value).collect::<Vec<_>>(),
            value_units,
            "{format:?}"
        );
    }
}
