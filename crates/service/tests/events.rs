//! Event output: a golden file per event type in both formats, checks of the OCSF mappings a SIEM
//! relies on, and the pipeline's bound.

use agentsh_service::events::{Event, EventKind, EventPipeline, Format, Reason};

/// A realistic event of each kind: the driver operation that produces it, and for fail-mode
/// transitions what the service really reports (no key, no process).
fn sample(kind: EventKind) -> Event {
    let mut e = Event::now(kind);
    e.timestamp_ms = 1_767_312_000_000;
    if matches!(
        kind,
        EventKind::FailModeEngaged | EventKind::FailModeRecovered
    ) {
        e.reason = if kind == EventKind::FailModeEngaged {
            Reason::FailClosed
        } else {
            Reason::Default
        };
        e.decision = if kind == EventKind::FailModeEngaged {
            "deny"
        } else {
            ""
        };
        e.message = Some(if kind == EventKind::FailModeEngaged {
            "the driver decided without the service: 0 allowed (fail open), 3 denied (fail closed) \
             since the service last read its counters"
                .into()
        } else {
            "the driver is asking the service again".into()
        });
        return e;
    }
    e.session_id = "s-1".into();
    e.process_id = 4100;
    e.process_name = "python.exe".into();
    e.process_image = r"C:\Python311\python.exe".into();
    let file_op = match kind {
        EventKind::FileRead => Some(("read", "read")),
        EventKind::FileWrite | EventKind::FileBlocked => Some(("write", "write")),
        EventKind::FileCreate => Some(("create", "create")),
        EventKind::FileDelete => Some(("delete", "delete")),
        EventKind::FileRename => Some(("rename", "rename")),
        _ => None,
    };
    if let Some((operation, driver_operation)) = file_op {
        e.key_path = r"C:\work\project\out.txt".into();
        e.operation = operation;
        e.driver_operation = driver_operation;
        if kind == EventKind::FileRename {
            e.target_path = Some(r"C:\work\project\renamed.txt".into());
        }
        e.decision = if kind == EventKind::FileBlocked {
            "deny"
        } else {
            "allow"
        };
        e.reason = Reason::Rule;
        e.rule_name = "workspace-only".into();
        return e;
    }
    let run = r"\REGISTRY\USER\S-1-5-21-1-2-3-1001\SOFTWARE\Microsoft\Windows\CurrentVersion\Run";
    e.key_path = run.into();
    e.rule_name = "builtin:run-keys-hkcu".into();
    e.reason = Reason::Catalog;
    e.risk_level = Some("critical");
    e.mitre_id = Some("T1547.001");
    e.mitre_tactic = Some("persistence");
    e.technique_name = Some("Registry Run Keys / Startup Folder");
    e.description = Some("per-user Run/RunOnce keys start programs at logon");
    e.attack_version = Some("18.1");
    match kind {
        EventKind::RegistryRead => {
            e.operation = "read";
            e.driver_operation = "QueryValue";
            e.value_name = Some("Updater".into());
        }
        EventKind::RegistryCreate => {
            e.operation = "create";
            e.driver_operation = "CreateKey";
            e.key_path = format!(r"{run}\Sub");
        }
        EventKind::RegistryDelete => {
            e.operation = "delete";
            e.driver_operation = "DeleteValue";
            e.value_name = Some("Updater".into());
        }
        EventKind::RegistryRename => {
            e.operation = "rename";
            e.driver_operation = "RenameKey";
            e.key_path = format!(r"{run}\Old");
            e.target_path = Some(format!(r"{run}\New"));
        }
        _ => {
            e.operation = "write";
            e.driver_operation = "SetValue";
            e.value_name = Some("Updater".into());
            e.value_type = Some("REG_SZ");
            e.data_size = Some(46);
        }
    }
    e.decision = match kind {
        EventKind::RegistryBlocked => "deny",
        EventKind::RegistryApprovalRequest => "approve",
        _ => "allow",
    };
    if matches!(
        kind,
        EventKind::RegistryApprovalRequest | EventKind::RegistryApprovalResponse
    ) {
        e.approval_id = Some(3);
        e.app = Some("TestApp".into());
        e.canonical_path = Some(r"HKCU\SOFTWARE\MICROSOFT\WINDOWS\CURRENTVERSION\RUN".into());
        e.message = Some(
            "Agent wants to modify service: HKLM\\SYSTEM\\CurrentControlSet\\Services\\x".into(),
        );
        e.reason = if kind == EventKind::RegistryApprovalResponse {
            Reason::Person
        } else {
            Reason::Rule
        };
    }
    e
}

/// The OCSF event with the host name and the product version, which differ between machines and
/// releases, replaced by placeholders (still strings, so the golden files stay valid events).
fn stable(mut ocsf: serde_json::Value) -> serde_json::Value {
    assert_eq!(
        ocsf["device"]["hostname"],
        agentsh_service::events::host_name(),
        "the device is this host"
    );
    ocsf["device"]["hostname"] = "[hostname]".into();
    ocsf["metadata"]["product"]["version"] = "[version]".into();
    ocsf
}

#[test]
fn every_event_type_has_golden_json_and_ocsf() {
    for &kind in EventKind::ALL {
        let e = sample(kind);
        insta::assert_json_snapshot!(format!("{}_json", kind.name()), e.to_json());
        insta::assert_json_snapshot!(format!("{}_ocsf", kind.name()), stable(e.to_ocsf()));
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

    let key = sample(EventKind::RegistryCreate).to_ocsf();
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
    let request = sample(EventKind::RegistryApprovalRequest).to_ocsf();
    assert_eq!(
        (
            request["action_id"].as_u64(),
            request["disposition_id"].as_u64()
        ),
        (Some(4), Some(14)),
        "held for a person: Modified + Delayed (Delayed does not conform to Observed)"
    );
}

#[test]
fn ocsf_content_findings() {
    // Fail-mode transitions are a change of the device's security state, not a registry key.
    let engaged = sample(EventKind::FailModeEngaged).to_ocsf();
    assert_eq!(engaged["class_uid"], 5019);
    assert_eq!(engaged["category_uid"], 5);
    assert_eq!(engaged["activity_id"], 99);
    assert_eq!(engaged["activity_name"], "Fail Mode Engaged");
    assert_eq!(engaged["type_uid"], 501_999);
    assert_eq!(
        (
            engaged["action_id"].as_u64(),
            engaged["disposition_id"].as_u64()
        ),
        (Some(2), Some(2)),
        "fail-closed denied: Denied + Blocked, the cause in status_detail"
    );
    assert_eq!(engaged["status_detail"], "fail-closed: service unavailable");
    assert_eq!(engaged["security_level"], "At Risk");
    assert!(engaged.get("reg_key").is_none() && engaged.get("actor").is_none());
    let recovered = sample(EventKind::FailModeRecovered).to_ocsf();
    assert_eq!(recovered["activity_name"], "Fail Mode Recovered");
    assert_eq!(recovered["security_level"], "Secure");
    assert!(recovered.get("action_id").is_none());

    // The device is identified; the schema release is a released one.
    let set = sample(EventKind::RegistryWrite).to_ocsf();
    assert!(
        set["device"]["hostname"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    assert_eq!(set["metadata"]["version"], "1.8.0");
    assert_eq!(set["metadata"]["extensions"][0]["version"], "1.8.0");

    // ATT&CK: the tactic by its name and id, the technique's name on the sub-technique.
    let attack = &set["attacks"][0];
    assert_eq!(attack["tactic"]["name"], "Persistence");
    assert_eq!(attack["tactic"]["uid"], "TA0003");
    assert_eq!(
        attack["sub_technique"]["name"],
        "Registry Run Keys / Startup Folder"
    );
    assert_eq!(
        set["firewall_rule"]["desc"],
        "per-user Run/RunOnce keys start programs at logon"
    );

    // A rule without a description has no `desc` (never null).
    let file = sample(EventKind::FileWrite).to_ocsf();
    assert!(file["firewall_rule"].get("desc").is_none(), "{file}");
    assert_eq!(file["file"]["type_id"], 0, "file or directory: not known");

    // Renames keep their target.
    let rename = sample(EventKind::RegistryRename).to_ocsf();
    assert_eq!(rename["activity_id"], 5);
    assert!(
        rename["reg_key"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(r"\New"))
    );
    assert!(
        rename["prev_reg_key"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(r"\Old"))
    );
    let moved = sample(EventKind::FileRename).to_ocsf();
    assert_eq!(moved["activity_id"], 5);
    assert_eq!(moved["file_result"]["path"], r"C:\work\project\renamed.txt");
    assert_eq!(moved["file_result"]["name"], "renamed.txt");

    // A hard link renames nothing: activity Other, named.
    let mut link = sample(EventKind::FileWrite);
    link.driver_operation = "hardlink";
    link.target_path = Some(r"C:\work\project\link.txt".into());
    let link = link.to_ocsf();
    assert_eq!(link["activity_id"], 99);
    assert_eq!(link["activity_name"], "Create Hard Link");
    assert_eq!(link["file_result"]["path"], r"C:\work\project\link.txt");

    // An unsandboxed process is named by id alone: no empty name.
    let mut outsider = sample(EventKind::RegistryWrite);
    outsider.process_name.clear();
    outsider.process_image.clear();
    let outsider = outsider.to_ocsf();
    assert_eq!(
        outsider["actor"]["process"],
        serde_json::json!({ "pid": 4100 })
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
