//! A request the decoder refuses (only a kernel bug can send one now that any code units are a
//! name) never picks its own answer: a session's is denied whatever the fail mode, a write to a
//! critical key is denied in fail-open mode too, and every one is recorded as an event.

use agentsh_policy::Policy;
use agentsh_service::adapter::PolicyAdapter;
use agentsh_service::events::{EventKind, EventPipeline, Reason};
use agentsh_wire::control::FailMode;
use agentsh_wire::op::{Decision, MessageType};

const RUN: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";

/// A registry request with a bad flag bit (so it does not decode) naming `key`.
fn broken(token: u64, key: &str) -> Vec<u8> {
    let mut v = vec![0u8; 1584];
    v[0] = 2;
    v[2..4].copy_from_slice(&1584u16.to_le_bytes());
    v[4..12].copy_from_slice(&token.to_le_bytes());
    v[12..16].copy_from_slice(&4100u32.to_le_bytes());
    v[20..24].copy_from_slice(&(2u32 | 1 << 31).to_le_bytes()); // SetValue, unknown flag
    for (i, u) in key.encode_utf16().enumerate() {
        v[32 + 2 * i..34 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    v[1072..1076].copy_from_slice(&[0x00, 0xD8, 0x78, 0x00]); // value "\u{d800}x"
    v
}

#[tokio::test]
async fn malformed_requests_are_denied_for_sessions_keep_the_critical_floor_and_are_events() {
    let policy = Policy::embedded_default().expect("policy");
    let (pipeline, mut events) = EventPipeline::channel(16);
    let adapter = PolicyAdapter::for_policy(&policy, pipeline);
    let ty = MessageType::PolicyCheckRegistry;
    assert_eq!(adapter.fail_mode(), FailMode::Open);

    let session = adapter.malformed(
        ty,
        &broken(0x1234, "\\REGISTRY\\MACHINE\\SOFTWARE\\X"),
        "bad flags",
    );
    assert_eq!(
        session.decision,
        Decision::Deny,
        "a session's is denied in fail-open mode"
    );
    let critical = adapter.malformed(ty, &broken(0, RUN), "bad flags");
    assert_eq!(
        critical.decision,
        Decision::Deny,
        "the critical-key floor holds"
    );
    let other = adapter.malformed(
        ty,
        &broken(0, "\\REGISTRY\\MACHINE\\SOFTWARE\\X"),
        "bad flags",
    );
    assert_eq!(
        other.decision,
        Decision::Allow,
        "otherwise the fail mode decides"
    );
    let short = adapter.malformed(ty, &[2, 0], "truncated");
    assert_eq!(short.decision, Decision::Allow);
    adapter.set_fail_mode(FailMode::Closed);
    let closed = adapter.malformed(
        ty,
        &broken(0, "\\REGISTRY\\MACHINE\\SOFTWARE\\X"),
        "bad flags",
    );
    assert_eq!(closed.decision, Decision::Deny);

    let got: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert_eq!(got.len(), 5, "one event per malformed request: {got:#?}");
    assert!(got.iter().all(|e| e.reason == Reason::Malformed));
    assert_eq!(got[0].kind, EventKind::RegistryBlocked);
    assert_eq!(got[0].process_id, 4100);
    assert_eq!(got[0].driver_operation, "SetValue");
    assert_eq!(got[0].key_path, "\\REGISTRY\\MACHINE\\SOFTWARE\\X");
    assert_eq!(
        got[0]
            .value_name
            .as_deref()
            .map(|v| agentsh_winstr::name::units(v).collect::<Vec<_>>()),
        Some(vec![0xD800, 0x78])
    );
    assert!(
        got[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("bad flags"))
    );
    assert_eq!(
        (got[1].decision, got[1].risk_level),
        ("deny", Some("critical"))
    );
    assert_eq!(got[2].decision, "allow");
}
