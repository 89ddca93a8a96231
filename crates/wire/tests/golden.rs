//! Golden byte vectors written from the layout tables (the design's for the registry request and
//! the response, docs/protocol.md for the rest), never produced by the encoder under test.

use agentsh_wire::control::{
    CONFIG_QUERY_READS, ControlRepr, Counter, DriverConfig, FailMode, Metrics, SendResult,
    SendStatus,
};
use agentsh_wire::file::{self, FileRequestRepr};
use agentsh_wire::framing::{FrameHeader, FrameKind};
use agentsh_wire::header::{FilterMessageHeader, FilterReplyHeader};
use agentsh_wire::notify::{NotifyReason, NotifyRepr, ProcessEventKind, ProcessEventRepr, Subject};
use agentsh_wire::op::{Decision, FileOperation, MessageType, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequestRepr};
use agentsh_wire::response::{self, CacheTtl, PolicyResponseRepr};
use agentsh_wire::{Error, Utf16Buf};

/// Places `bytes` at `at` in a zeroed buffer of `len` bytes, the way the tables read.
struct Golden(Vec<u8>);

impl Golden {
    fn new(len: usize) -> Self {
        Golden(vec![0; len])
    }
    fn at(mut self, at: usize, bytes: &[u8]) -> Self {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }
    fn utf16(self, at: usize, s: &str) -> Self {
        let bytes: Vec<u8> = s
            .encode_utf16()
            .flat_map(|u| [u as u8, (u >> 8) as u8])
            .collect();
        self.at(at, &bytes)
    }
}

const RUN_KEY: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";

fn golden_registry_request() -> Vec<u8> {
    Golden::new(1584)
        .at(0, &[0x02, 0x00]) // MessageType 2 = MsgPolicyCheckRegistry
        .at(2, &[0x30, 0x06]) // MessageSize 1584
        .at(4, &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]) // SessionToken
        .at(12, &[0x34, 0x12, 0x00, 0x00]) // ProcessId 0x1234
        .at(16, &[0x78, 0x56, 0x00, 0x00]) // ThreadId 0x5678
        .at(20, &[0x02, 0x00, 0x00, 0x00]) // Operation 2 = SetValue
        .at(24, &[0x04, 0x00, 0x00, 0x00]) // ValueType REG_DWORD
        .at(28, &[0x04, 0x00, 0x00, 0x00]) // DataSize 4
        .utf16(32, RUN_KEY)
        .utf16(1072, "Updater")
        .0
}

#[test]
fn registry_request_matches_the_design_table() {
    let bytes = golden_registry_request();
    let repr = RegistryRequestRepr::decode(&bytes).expect("golden request decodes");
    assert_eq!(repr.session_token, 0x1122_3344_5566_7788);
    assert_eq!(repr.process_id, 0x1234);
    assert_eq!(repr.thread_id, 0x5678);
    assert_eq!(repr.operation, Operation::SetValue);
    assert_eq!(repr.flags, OpFlags(0));
    assert_eq!(repr.value_type, 4);
    assert_eq!(repr.data_size, 4);
    assert_eq!(repr.key_path.to_string(), RUN_KEY);
    assert_eq!(repr.value_name.to_string(), "Updater");
    let mut out = vec![0xAA; registry::LEN];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, bytes);
}

#[test]
fn rename_key_carries_the_new_name_in_value_name() {
    let bytes = Golden::new(1584)
        .at(0, &[0x02, 0x00])
        .at(2, &[0x30, 0x06])
        .at(20, &[0x09, 0x00, 0x00, 0x00])
        .utf16(32, "\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor")
        .utf16(1072, "Renamed")
        .0;
    let repr = RegistryRequestRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.operation, Operation::RenameKey);
    assert_eq!(repr.value_name.to_string(), "Renamed");
}

#[test]
fn operation_flags_live_in_the_high_half_of_operation() {
    // CreateKey (4) with PATH_TRUNCATED | NEW_KEY (bits 16 and 18).
    let bytes = Golden::new(1584)
        .at(0, &[0x02, 0x00])
        .at(2, &[0x30, 0x06])
        .at(20, &[0x04, 0x00, 0x05, 0x00])
        .utf16(32, "\\REGISTRY\\MACHINE\\SYSTEM")
        .0;
    let repr = RegistryRequestRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.operation, Operation::CreateKey);
    assert!(repr.flags.has(OpFlags::PATH_TRUNCATED));
    assert!(repr.flags.has(OpFlags::NEW_KEY));
    assert!(repr.flags.truncated());
}

#[test]
fn every_design_operation_code_keeps_its_value() {
    let design = [
        (1, "QueryValue"),
        (2, "SetValue"),
        (3, "DeleteValue"),
        (4, "CreateKey"),
        (5, "DeleteKey"),
        (6, "EnumKeys"),
        (7, "EnumValues"),
        (8, "OpenKey"),
        (9, "RenameKey"),
    ];
    for (code, name) in design {
        let op = Operation::from_code(code).expect("design code");
        assert_eq!(op.name(), name);
        assert_eq!(Operation::from_name(name), Some(op));
    }
    assert_eq!(Operation::from_code(0), None);
    assert_eq!(Operation::from_code(15), None);
}

#[test]
fn response_matches_the_design_table() {
    // deny, CacheTTL 30 s, notify | log
    let bytes = Golden::new(24)
        .at(0, &[0x02, 0x00])
        .at(4, &[0x00, 0x00, 0x00, 0x00])
        .at(8, &[0x1E, 0x00, 0x00, 0x00])
        .at(12, &[0x03, 0x00, 0x00, 0x00])
        .0;
    let repr = PolicyResponseRepr::decode(&bytes).expect("decodes");
    assert_eq!(
        repr,
        PolicyResponseRepr {
            message_type: MessageType::PolicyCheckRegistry,
            decision: Decision::Deny,
            cache_ttl: CacheTtl::Seconds(30),
            notify: true,
            log: true,
            approval_timeout_secs: 0,
            approval_ticket: 0,
        }
    );
    let mut out = [0xAA; response::LEN];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out.as_slice(), bytes.as_slice());
}

#[test]
fn pending_response_carries_timeout_and_ticket_in_the_reserved_bytes() {
    let bytes = Golden::new(24)
        .at(0, &[0x02, 0x00])
        .at(4, &[0x02, 0x00, 0x00, 0x00]) // pending
        .at(12, &[0x01, 0x00, 0x00, 0x00]) // notify
        .at(16, &[0x78, 0x00, 0x00, 0x00]) // 120 s
        .at(20, &[0x07, 0x00, 0x00, 0x00]) // ticket 7
        .0;
    let repr = PolicyResponseRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.decision, Decision::Pending);
    assert_eq!(repr.cache_ttl, CacheTtl::None);
    assert_eq!(repr.approval_timeout_secs, 120);
    assert_eq!(repr.approval_ticket, 7);
    let mut out = [0u8; 24];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out.as_slice(), bytes.as_slice());
}

#[test]
fn ttl_sentinels_are_pinned() {
    let allow = |ttl: [u8; 4]| {
        Golden::new(24)
            .at(0, &[2, 0])
            .at(4, &[1, 0, 0, 0])
            .at(8, &ttl)
            .0
    };
    let none = PolicyResponseRepr::decode(&allow([0, 0, 0, 0])).expect("ttl 0");
    assert_eq!(none.cache_ttl, CacheTtl::None);
    let default = PolicyResponseRepr::decode(&allow([0xFF; 4])).expect("sentinel");
    assert_eq!(default.cache_ttl, CacheTtl::DriverDefault);
}

#[test]
fn filter_manager_headers() {
    let message = Golden::new(16)
        .at(0, &[0x28, 0x00, 0x00, 0x00]) // ReplyLength 40 = 16 + 24
        .at(8, &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
        .0;
    let (h, rest) = FilterMessageHeader::split(&message).expect("header");
    assert_eq!(
        h,
        FilterMessageHeader {
            reply_length: 40,
            message_id: 0x0807_0605_0403_0201
        }
    );
    assert!(rest.is_empty());
    assert!(h.expects_reply());
    let mut out = [0xAA; 16];
    h.emit(&mut out).expect("emit");
    assert_eq!(out.as_slice(), message.as_slice());

    let reply = Golden::new(16)
        .at(8, &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
        .0;
    let (r, _) = FilterReplyHeader::split(&reply).expect("reply header");
    assert_eq!(
        r,
        FilterReplyHeader {
            status: 0,
            message_id: 0x0807_0605_0403_0201
        }
    );
    let mut out = [0xAA; 16];
    r.emit(&mut out).expect("emit");
    assert_eq!(out.as_slice(), reply.as_slice());
}

#[test]
fn file_request_layout() {
    let bytes = Golden::new(2112)
        .at(0, &[0x01, 0x00])
        .at(2, &[0x40, 0x08]) // 2112
        .at(4, &[0x01, 0, 0, 0, 0, 0, 0, 0])
        .at(12, &[0x10, 0, 0, 0])
        .at(16, &[0x11, 0, 0, 0])
        .at(20, &[0x05, 0x00, 0x00, 0x00]) // rename
        .at(24, &[0x00, 0x00, 0x01, 0x00]) // DELETE access
        .utf16(32, "\\Device\\HarddiskVolume3\\work\\a.txt")
        .utf16(1072, "\\Device\\HarddiskVolume3\\Windows\\a.txt")
        .0;
    let repr = FileRequestRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.operation, FileOperation::Rename);
    assert_eq!(repr.desired_access, 0x0001_0000);
    assert_eq!(
        repr.path.to_string(),
        "\\Device\\HarddiskVolume3\\work\\a.txt"
    );
    assert_eq!(
        repr.target_path.to_string(),
        "\\Device\\HarddiskVolume3\\Windows\\a.txt"
    );
    let mut out = vec![0xAA; file::LEN];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, bytes);
}

#[test]
fn notification_wraps_the_request_it_is_about() {
    let request = golden_registry_request();
    let bytes = Golden::new(16 + 1584)
        .at(0, &[0x03, 0x00])
        .at(2, &[0x40, 0x06]) // 1600
        .at(4, &[0x01, 0x00]) // HighRiskUnsandboxed
        .at(8, &[0x01, 0x00, 0x00, 0x00]) // allowed
        .at(16, &request)
        .0;
    let repr = NotifyRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.reason, NotifyReason::HighRiskUnsandboxed);
    assert_eq!(repr.decision, Decision::Allow);
    let Subject::Registry(ref r) = repr.subject else {
        panic!("registry subject expected")
    };
    assert_eq!(r.key_path.to_string(), RUN_KEY);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, bytes);

    // docs/protocol.md: reason 7, a refused hold, denied, with the approval's ticket at @12.
    let refused = Golden::new(16 + 1584)
        .at(0, &[0x03, 0x00])
        .at(2, &[0x40, 0x06])
        .at(4, &[0x07, 0x00])
        .at(12, &[0x0F, 0x27, 0x00, 0x00]) // ticket 9999
        .at(16, &request)
        .0;
    let repr = NotifyRepr::decode(&refused).expect("decodes");
    assert_eq!(repr.reason, NotifyReason::HoldRefused);
    assert_eq!(repr.decision, Decision::Deny);
    assert_eq!(repr.flags, 9999);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, refused);
}

#[test]
fn process_event_layout() {
    let bytes = Golden::new(552)
        .at(0, &[0x04, 0x00])
        .at(2, &[0x28, 0x02]) // 552
        .at(4, &[0x09, 0, 0, 0, 0, 0, 0, 0]) // session id 9
        .at(12, &[0xE8, 0x03, 0, 0]) // pid 1000
        .at(16, &[0xE9, 0x03, 0, 0]) // creator 1001
        .at(20, &[0x04, 0x00, 0, 0]) // parent attribute 4
        .at(24, &[0x01, 0, 0, 0]) // created
        .utf16(32, "python.exe")
        .0;
    let repr = ProcessEventRepr::decode(&bytes).expect("decodes");
    assert_eq!(repr.kind, ProcessEventKind::Created);
    assert_eq!(
        (
            repr.process_id,
            repr.creating_process_id,
            repr.parent_process_id
        ),
        (1000, 1001, 4)
    );
    assert_eq!(repr.image_name.to_string(), "python.exe");
    let mut out = vec![0u8; 552];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, bytes);
}

fn check_control(bytes: &[u8], expected: ControlRepr) {
    let repr = ControlRepr::decode(bytes).expect("golden control message decodes");
    assert_eq!(repr, expected);
    let mut out = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut out).expect("emit");
    assert_eq!(out, bytes, "{:?}", expected.message_type());
}

#[test]
fn control_messages() {
    check_control(
        &Golden::new(16)
            .at(0, &[0x10, 0])
            .at(2, &[16, 0])
            .at(4, &[1, 0, 0, 0])
            .0,
        ControlRepr::Hello {
            protocol_version: 1,
        },
    );
    check_control(
        &Golden::new(32)
            .at(0, &[0x11, 0])
            .at(2, &[32, 0])
            .at(4, &[1, 0, 0, 0]) // closed
            .at(8, &[0xD0, 0x07, 0, 0]) // 2000 ms
            .at(12, &[5, 0, 0, 0])
            .at(16, &[0x00, 0x10, 0, 0]) // 4096
            .at(20, &[0x88, 0x13, 0, 0]) // 5000
            .at(24, &[0xE8, 0x03, 0, 0]) // 1000
            .at(28, &[1, 0, 0, 0])
            .0,
        ControlRepr::SetConfig(DriverConfig {
            fail_mode: FailMode::Closed,
            policy_query_timeout_ms: 2000,
            max_consecutive_failures: 5,
            cache_max_entries: 4096,
            cache_default_ttl_ms: 5000,
            pending_grace_ms: 1000,
            flags: CONFIG_QUERY_READS,
        }),
    );
    check_control(
        &Golden::new(8).at(0, &[0x12, 0]).at(2, &[8, 0]).0,
        ControlRepr::GetMetrics,
    );
    check_control(
        &Golden::new(552)
            .at(0, &[0x13, 0])
            .at(2, &[0x28, 0x02])
            .at(4, &[0x64, 0, 0, 0])
            .at(8, &[0xEF, 0xBE, 0xAD, 0xDE, 0, 0, 0, 0])
            .at(16, &[0x2A, 0, 0, 0, 0, 0, 0, 0])
            .at(24, &[1, 0, 0, 0])
            .utf16(32, "C:\\work")
            .0,
        ControlRepr::RegisterSession {
            root_process_id: 100,
            session_token: 0xDEAD_BEEF,
            session_id: 42,
            flags: 1,
            workspace: Utf16Buf::encode("C:\\work").expect("fits"),
        },
    );
    check_control(
        &Golden::new(16)
            .at(0, &[0x14, 0])
            .at(2, &[16, 0])
            .at(8, &[0xEF, 0xBE, 0xAD, 0xDE, 0, 0, 0, 0])
            .0,
        ControlRepr::UnregisterSession {
            session_token: 0xDEAD_BEEF,
        },
    );
    check_control(
        &Golden::new(8).at(0, &[0x15, 0]).at(2, &[8, 0]).0,
        ControlRepr::ExcludeSelf,
    );
    check_control(
        &Golden::new(16).at(0, &[0x16, 0]).at(2, &[16, 0]).0,
        ControlRepr::FlushCache { session_token: 0 },
    );
    check_control(
        &Golden::new(32)
            .at(0, &[0x17, 0])
            .at(2, &[32, 0])
            .at(8, &[7, 0, 0, 0])
            .at(16, &[1, 0, 0, 0])
            .at(20, &[2, 0, 0, 0])
            .0,
        ControlRepr::FinalDecision {
            ticket: 7,
            decision: Decision::Allow,
            flags: 2,
        },
    );
    check_control(
        &Golden::new(24)
            .at(0, &[0x18, 0])
            .at(2, &[24, 0])
            .at(8, &[1, 0, 0, 0, 0, 0, 0, 0])
            .at(16, &[2, 0, 0, 0, 0, 0, 0, 0])
            .0,
        ControlRepr::RotateSessionToken {
            old_token: 1,
            new_token: 2,
        },
    );
    // docs/protocol.md: QuerySession (8) is `ProcessId u32 @4`.
    check_control(
        &Golden::new(8)
            .at(0, &[0x1A, 0])
            .at(2, &[8, 0])
            .at(4, &[0x39, 0x30, 0, 0]) // 12345
            .0,
        ControlRepr::QuerySession { process_id: 12345 },
    );
}

#[test]
fn send_results() {
    let hello = Golden::new(16)
        .at(0, &[0x10, 0])
        .at(2, &[16, 0])
        .at(4, &[1, 0, 0, 0])
        .at(8, &[1, 0, 0, 0])
        .0;
    let r = SendResult::decode(MessageType::Hello, &hello).expect("hello result");
    assert_eq!(
        r,
        SendResult::Hello {
            status: SendStatus::VersionMismatch,
            kernel_version: 1
        }
    );
    let mut out = vec![0xAA; r.buffer_len()];
    r.emit(&mut out).expect("emit");
    assert_eq!(out, hello);

    let mut metrics = Golden::new(8 + 8 * Counter::COUNT)
        .at(0, &[0x12, 0])
        .at(2, &[0xD0, 0]);
    metrics = metrics
        .at(8, &[5, 0, 0, 0, 0, 0, 0, 0])
        .at(16, &[1, 0, 0, 0, 0, 0, 0, 0]);
    let r = SendResult::decode(MessageType::GetMetrics, &metrics.0).expect("metrics result");
    let SendResult::Metrics(m) = r else {
        panic!("metrics expected")
    };
    assert_eq!(m.get(Counter::CacheHitCount), 5);
    assert_eq!(m.get(Counter::CacheMissCount), 1);
    assert_eq!(
        m.cache_hit_rate_percent().map(|p| (p * 10.0).round()),
        Some(833.0)
    );
    assert_eq!(Metrics::default().cache_hit_rate_percent(), None);

    let status = Golden::new(8)
        .at(0, &[0x13, 0])
        .at(2, &[8, 0])
        .at(4, &[7, 0, 0, 0])
        .0;
    let r = SendResult::decode(MessageType::RegisterSession, &status).expect("status");
    assert_eq!(r.status(), SendStatus::AlreadyExists);

    // QuerySession: in a session → Ok and `SessionId u64 @8` (16 bytes); in none → NotFound, 8 bytes.
    let member = Golden::new(16)
        .at(0, &[0x1A, 0])
        .at(2, &[16, 0])
        .at(8, &[0x2A, 0, 0, 0, 0, 0, 0, 0x80])
        .0;
    let r = SendResult::decode(MessageType::QuerySession, &member).expect("session result");
    assert_eq!(
        r,
        SendResult::Session {
            session_id: 0x8000_0000_0000_002A
        }
    );
    let mut out = vec![0xAA; r.buffer_len()];
    r.emit(&mut out).expect("emit");
    assert_eq!(out, member);
    let none = Golden::new(8)
        .at(0, &[0x1A, 0])
        .at(2, &[8, 0])
        .at(4, &[4, 0, 0, 0])
        .0;
    let r = SendResult::decode(MessageType::QuerySession, &none).expect("not-found result");
    assert_eq!(
        r,
        SendResult::Status {
            message_type: MessageType::QuerySession,
            status: SendStatus::NotFound
        }
    );
    // An Ok answer must carry the session id: the 8-byte form is refused.
    let short = Golden::new(8).at(0, &[0x1A, 0]).at(2, &[8, 0]).0;
    assert!(SendResult::decode(MessageType::QuerySession, &short).is_err());
}

#[test]
fn framing_header() {
    let bytes = [0x19, 0x00, 0x00, 0x00, 0x02];
    let h = FrameHeader::decode(&bytes).expect("frame header");
    assert_eq!(
        h,
        FrameHeader {
            kind: FrameKind::UserReply,
            body_len: 24
        }
    );
    let mut out = [0u8; 5];
    h.emit(&mut out).expect("emit");
    assert_eq!(out, bytes);
    assert_eq!(
        FrameHeader::decode(&[0x01, 0x00, 0x01, 0x00, 0x01]),
        Err(Error::FrameTooLarge { len: 65537 })
    );
    assert!(FrameHeader::decode(&[0, 0, 0, 0, 1]).is_err());
    assert!(FrameHeader::decode(&[1, 0, 0, 0, 9]).is_err());
}

#[test]
fn malformed_registry_requests_are_typed_errors() {
    let good = golden_registry_request();
    assert_eq!(
        RegistryRequestRepr::decode(&good[..100]),
        Err(Error::Truncated {
            needed: 1584,
            got: 100
        })
    );
    assert_eq!(
        RegistryRequestRepr::decode(&good[..1]),
        Err(Error::Truncated { needed: 4, got: 1 })
    );
    let mut wrong_type = good.clone();
    wrong_type[0] = 1;
    assert_eq!(
        RegistryRequestRepr::decode(&wrong_type),
        Err(Error::WrongType {
            expected: 2,
            got: 1
        })
    );
    let mut lying_size = good.clone();
    lying_size[2] = 0x31;
    assert!(matches!(
        RegistryRequestRepr::decode(&lying_size),
        Err(Error::SizeMismatch { .. })
    ));
    let mut bad_op = good.clone();
    bad_op[20] = 0x63;
    assert!(matches!(
        RegistryRequestRepr::decode(&bad_op),
        Err(Error::BadValue {
            field: "Operation",
            ..
        })
    ));
    let mut bad_flags = good.clone();
    bad_flags[23] = 0x80;
    assert!(matches!(
        RegistryRequestRepr::decode(&bad_flags),
        Err(Error::BadValue { .. })
    ));
    let mut unterminated = good.clone();
    for b in &mut unterminated[32..1072] {
        *b = 0x41;
    }
    assert_eq!(
        RegistryRequestRepr::decode(&unterminated),
        Err(Error::Unterminated { field: "KeyPath" })
    );
    // An escape unit followed by anything but `0` or another escape unit, in a field marked
    // escaped (bit 21 NAME_ESCAPED), is malformed; so is an escape unit at the end.
    let mut bad_escape = good.clone();
    bad_escape[22] |= 0x20;
    bad_escape[1072..1078].copy_from_slice(&[0xFF, 0xFF, 0x31, 0x00, 0x00, 0x00]);
    assert_eq!(
        RegistryRequestRepr::decode(&bad_escape),
        Err(Error::BadEscape { field: "ValueName" })
    );
    bad_escape[1074..1076].copy_from_slice(&[0, 0]);
    assert_eq!(
        RegistryRequestRepr::decode(&bad_escape),
        Err(Error::BadEscape { field: "ValueName" })
    );
}

/// F1: a name is any sequence of code units. An unpaired surrogate in a value name (or a key
/// path) is carried unit for unit, never "malformed".
#[test]
fn unpaired_surrogates_are_names_not_malformed_messages() {
    let mut bytes = golden_registry_request();
    // ValueName = D800 'U' 'p' ; KeyPath ends in a lone low surrogate DC00.
    bytes[1072..].fill(0);
    bytes[1072..1080].copy_from_slice(&[0x00, 0xD8, 0x55, 0x00, 0x70, 0x00, 0x00, 0x00]);
    let key_end = 32 + 2 * RUN_KEY.len();
    bytes[key_end..key_end + 4].copy_from_slice(&[0x00, 0xDC, 0x00, 0x00]);
    let r = RegistryRequestRepr::decode(&bytes).expect("any code units are a name");
    assert_eq!(r.value_name.as_units(), &[0xD800, 0x55, 0x70]);
    assert_eq!(r.key_path.as_units().last(), Some(&0xDC00));
    let mut out = vec![0u8; registry::LEN];
    r.emit(&mut out).expect("emits");
    assert_eq!(out, bytes);
}

/// A value name holding a NUL (a Poweliks-style `"\0x"`) travels escaped: bit 21 NAME_ESCAPED
/// set, each NUL as FFFF 0030, each FFFF as FFFF FFFF, then the terminator (docs/protocol.md).
#[test]
fn a_name_with_a_nul_travels_escaped_and_comes_back_whole() {
    let design = Golden::new(1584)
        .at(0, &[0x02, 0x00])
        .at(2, &[0x30, 0x06])
        .at(20, &[0x02, 0x00, 0x20, 0x00]) // SetValue, flags bit 21 (NAME_ESCAPED)
        .utf16(32, RUN_KEY)
        // ValueName: NUL 'x' FFFF  ->  FFFF 0030 'x' FFFF FFFF
        .at(
            1072,
            &[0xFF, 0xFF, 0x30, 0x00, 0x78, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
        )
        .0;
    let r = RegistryRequestRepr::decode(&design).expect("decodes");
    assert_eq!(r.value_name.as_units(), &[0, 0x78, 0xFFFF]);
    assert_eq!(
        r.flags,
        OpFlags(0),
        "the escape flag is the encoder's business"
    );
    let mut out = vec![0u8; registry::LEN];
    r.emit(&mut out).expect("emits");
    assert_eq!(out, design);
    // Without the flag the same units are literal: FFFF is a unit like any other.
    let mut plain = design.clone();
    plain[22] = 0;
    let p = RegistryRequestRepr::decode(&plain).expect("decodes");
    assert_eq!(
        p.value_name.as_units(),
        &[0xFFFF, 0x30, 0x78, 0xFFFF, 0xFFFF]
    );
}

#[test]
fn a_file_path_with_a_nul_travels_escaped_in_bit_20() {
    let r = FileRequestRepr {
        session_token: 1,
        process_id: 2,
        thread_id: 3,
        operation: FileOperation::Write,
        flags: OpFlags(0),
        desired_access: 0,
        create_disposition: 0,
        path: Utf16Buf::from_units(&[0x43, 0, 0x44]).expect("fits"),
        target_path: Utf16Buf::EMPTY,
    };
    let mut out = vec![0u8; file::LEN];
    r.emit(&mut out).expect("emits");
    assert_eq!(&out[20..24], &[0x02, 0x00, 0x10, 0x00]);
    assert_eq!(&out[32..42], &[0x43, 0, 0xFF, 0xFF, 0x30, 0, 0x44, 0, 0, 0]);
    assert_eq!(FileRequestRepr::decode(&out), Ok(r));
}

#[test]
fn escaping_never_lets_a_name_overflow_its_field() {
    // 200 NULs escape to 400 units: the driver's copy keeps the longest prefix whose escaped
    // form fits ValueName (255 units) and reports the cut.
    let (name, cut) = Utf16Buf::<{ registry::VALUE_NAME_MAX }>::from_units_truncating(&[0; 200]);
    assert!(cut);
    assert_eq!(name.len(), 127);
    let r = RegistryRequestRepr {
        session_token: 0,
        process_id: 0,
        thread_id: 0,
        operation: Operation::SetValue,
        flags: OpFlags(OpFlags::NAME_TRUNCATED),
        value_type: 1,
        data_size: 0,
        key_path: Utf16Buf::EMPTY,
        value_name: name,
    };
    let mut out = vec![0u8; registry::LEN];
    r.emit(&mut out).expect("the cut name fits escaped");
    assert_eq!(RegistryRequestRepr::decode(&out), Ok(r));
}

#[test]
fn malformed_control_messages_are_typed_errors() {
    let out_of_range = Golden::new(32)
        .at(0, &[0x11, 0])
        .at(2, &[32, 0])
        .at(8, &[0x32, 0, 0, 0]) // 50 ms < 100
        .at(12, &[10, 0, 0, 0])
        .at(16, &[0x00, 0x10, 0, 0])
        .at(20, &[0x88, 0x13, 0, 0])
        .0;
    assert_eq!(
        ControlRepr::decode(&out_of_range),
        Err(Error::BadValue {
            field: "PolicyQueryTimeoutMs",
            value: 50
        })
    );
    let pending_final = Golden::new(32)
        .at(0, &[0x17, 0])
        .at(2, &[32, 0])
        .at(8, &[1, 0, 0, 0])
        .at(16, &[2, 0, 0, 0])
        .0;
    assert!(
        ControlRepr::decode(&pending_final).is_err(),
        "a final decision cannot be pending"
    );
    assert_eq!(
        ControlRepr::decode(&[0x99, 0x00, 8, 0]),
        Err(Error::UnknownType(0x99))
    );
    assert!(
        ControlRepr::decode(&golden_registry_request()).is_err(),
        "kernel messages are not control"
    );
}

#[test]
fn long_names_never_pass_as_shorter_ones() {
    let long: Vec<u16> = std::iter::repeat_n(u16::from(b'A'), 600).collect();
    let (buf, cut) = Utf16Buf::<{ registry::KEY_PATH_MAX }>::from_units_truncating(&long);
    assert!(cut);
    assert_eq!(buf.len(), registry::KEY_PATH_MAX);
    let repr = RegistryRequestRepr {
        session_token: 1,
        process_id: 1,
        thread_id: 1,
        operation: Operation::SetValue,
        flags: OpFlags(OpFlags::PATH_TRUNCATED),
        value_type: 1,
        data_size: 0,
        key_path: buf,
        value_name: Utf16Buf::EMPTY,
    };
    let mut out = vec![0u8; registry::LEN];
    repr.emit(&mut out)
        .expect("the longest path fits with its terminator");
    let back = RegistryRequestRepr::decode(&out).expect("decodes");
    assert!(back.flags.truncated(), "the cut travels with the request");
}

#[test]
fn driver_config_ranges_are_the_guides() {
    assert_eq!(DriverConfig::DEFAULT.validate(), Ok(()));
    let d = DriverConfig::DEFAULT;
    for (config, name) in [
        (
            DriverConfig {
                cache_max_entries: 99,
                ..d
            },
            "CacheMaxEntries",
        ),
        (
            DriverConfig {
                cache_max_entries: 100_001,
                ..d
            },
            "CacheMaxEntries",
        ),
        (
            DriverConfig {
                cache_default_ttl_ms: 99,
                ..d
            },
            "CacheDefaultTTLMs",
        ),
        (
            DriverConfig {
                cache_default_ttl_ms: 3_600_001,
                ..d
            },
            "CacheDefaultTTLMs",
        ),
        (
            DriverConfig {
                max_consecutive_failures: 0,
                ..d
            },
            "MaxConsecutiveFailures",
        ),
        (
            DriverConfig {
                max_consecutive_failures: 1001,
                ..d
            },
            "MaxConsecutiveFailures",
        ),
        (
            DriverConfig {
                policy_query_timeout_ms: 60_001,
                ..d
            },
            "PolicyQueryTimeoutMs",
        ),
    ] {
        let err = config.validate().expect_err("out of range");
        assert_eq!(err.param.name, name);
    }
    for config in [
        DriverConfig {
            cache_max_entries: 100,
            cache_default_ttl_ms: 100,
            ..d
        },
        DriverConfig {
            cache_max_entries: 100_000,
            cache_default_ttl_ms: 3_600_000,
            ..d
        },
        DriverConfig {
            max_consecutive_failures: 1,
            policy_query_timeout_ms: 100,
            ..d
        },
        DriverConfig {
            max_consecutive_failures: 1000,
            policy_query_timeout_ms: 60_000,
            ..d
        },
    ] {
        assert_eq!(config.validate(), Ok(()), "bounds are inclusive");
    }
    assert_eq!(
        (
            d.cache_max_entries,
            d.cache_default_ttl_ms,
            d.max_consecutive_failures,
            d.policy_query_timeout_ms
        ),
        (4096, 5000, 10, 5000)
    );
}

#[test]
fn approval_fields_of_a_non_pending_response_are_ignored() {
    // Found by fuzzing: an allow or deny whose reserved words are not zero decodes with them
    // zeroed, as the kernel reads it, so decode and re-encode agree.
    let bytes = Golden::new(24)
        .at(0, &[2, 0])
        .at(16, &[0x00, 0xCC, 0, 0])
        .at(20, &[9, 0, 0, 0])
        .0;
    let repr = PolicyResponseRepr::decode(&bytes).expect("decodes");
    assert_eq!((repr.approval_timeout_secs, repr.approval_ticket), (0, 0));
    // And a pending answer is never cached, whatever its CacheTTL says.
    let pending = Golden::new(24)
        .at(0, &[2, 0])
        .at(4, &[2, 0, 0, 0])
        .at(8, &[60, 0, 0, 0])
        .at(20, &[1, 0, 0, 0])
        .0;
    assert_eq!(
        PolicyResponseRepr::decode(&pending).map(|r| r.cache_ttl),
        Ok(CacheTtl::None)
    );
}
