//! Property tests: every message survives emit → decode, and no byte string makes a decoder
//! panic.

use agentsh_wire::Utf16Buf;
use agentsh_wire::control::{ControlRepr, SendResult};
use agentsh_wire::file::FileRequestRepr;
use agentsh_wire::framing::FrameHeader;
use agentsh_wire::notify::{NotifyRepr, ProcessEventRepr};
use agentsh_wire::op::{Decision, FileOperation, MessageType, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequestRepr};
use agentsh_wire::response::{CacheTtl, PolicyResponseRepr};
use proptest::prelude::*;

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..max)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("fits", move |s| s.encode_utf16().count() <= max)
}

proptest! {
    /// Any code units are a name: unpaired surrogates, NULs and the escape unit itself survive
    /// emit → decode exactly; a name too long once escaped is cut (and reported) by the driver's
    /// copy, never by the encoder.
    #[test]
    fn names_of_arbitrary_code_units_round_trip(
        key in proptest::collection::vec(prop_oneof![any::<u16>(), Just(0u16), Just(0xFFFF), 0xD800u16..0xE000], 0..600),
        value in proptest::collection::vec(prop_oneof![any::<u16>(), Just(0u16), Just(0xFFFF), 0xD800u16..0xE000], 0..300),
        flags in 0u16..16,
    ) {
        let (key_path, key_cut) = Utf16Buf::<{ registry::KEY_PATH_MAX }>::from_units_truncating(&key);
        let (value_name, name_cut) = Utf16Buf::<{ registry::VALUE_NAME_MAX }>::from_units_truncating(&value);
        prop_assert_eq!(key_cut, key_path.len() < key.len());
        prop_assert_eq!(name_cut, value_name.len() < value.len());
        prop_assert_eq!(key_path.as_units(), &key[..key_path.len()]);
        let repr = RegistryRequestRepr {
            session_token: 1, process_id: 2, thread_id: 3,
            operation: Operation::SetValue, flags: OpFlags(flags).with_cuts(key_cut, name_cut),
            value_type: 1, data_size: 0, key_path, value_name,
        };
        let mut buf = vec![0u8; registry::LEN];
        repr.emit(&mut buf).expect("what the driver's copy holds always fits");
        prop_assert_eq!(RegistryRequestRepr::decode(&buf).expect("decode"), repr);
    }

    #[test]
    fn registry_request_round_trips(
        token in any::<u64>(), pid in any::<u32>(), tid in any::<u32>(),
        op in 0usize..Operation::ALL.len(), flags in 0u16..16,
        value_type in any::<u32>(), data_size in any::<u32>(),
        key in name(registry::KEY_PATH_MAX), value in name(registry::VALUE_NAME_MAX),
    ) {
        let repr = RegistryRequestRepr {
            session_token: token, process_id: pid, thread_id: tid,
            operation: Operation::ALL[op], flags: OpFlags(flags), value_type, data_size,
            key_path: Utf16Buf::encode(&key).expect("fits"),
            value_name: Utf16Buf::encode(&value).expect("fits"),
        };
        let mut buf = vec![0u8; registry::LEN];
        repr.emit(&mut buf).expect("emit");
        prop_assert_eq!(RegistryRequestRepr::decode(&buf).expect("decode"), repr);
    }

    #[test]
    fn file_request_round_trips(op in 0usize..FileOperation::ALL.len(), path in name(200), target in name(200), access in any::<u32>()) {
        let repr = FileRequestRepr {
            session_token: 3, process_id: 4, thread_id: 5,
            operation: FileOperation::ALL[op], flags: OpFlags(0), desired_access: access,
            create_disposition: 2,
            path: Utf16Buf::encode(&path).expect("fits"),
            target_path: Utf16Buf::encode(&target).expect("fits"),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).expect("emit");
        prop_assert_eq!(FileRequestRepr::decode(&buf).expect("decode"), repr);
    }

    #[test]
    fn response_round_trips(d in 0u32..3, ttl in any::<u32>(), notify in any::<bool>(), log in any::<bool>(), timeout in any::<u32>(), ticket in 1u32..) {
        let decision = Decision::from_u32(d).expect("valid");
        let repr = PolicyResponseRepr {
            message_type: MessageType::PolicyCheckRegistry, decision,
            cache_ttl: if decision == Decision::Pending { CacheTtl::None } else {
                match ttl { 0 => CacheTtl::None, u32::MAX => CacheTtl::DriverDefault, s => CacheTtl::Seconds(s) }
            },
            notify, log,
            approval_timeout_secs: if decision == Decision::Pending { timeout } else { 0 },
            approval_ticket: if decision == Decision::Pending { ticket } else { 0 },
        };
        let mut buf = [0u8; 24];
        repr.emit(&mut buf).expect("emit");
        prop_assert_eq!(PolicyResponseRepr::decode(&buf).expect("decode"), repr);
    }

    #[test]
    fn control_round_trips(token in 1u64.., id in any::<u64>(), pid in any::<u32>(), ws in name(100), ticket in 1u32..) {
        for repr in [
            ControlRepr::RegisterSession { root_process_id: pid, session_token: token, session_id: id, flags: 0, workspace: Utf16Buf::encode(&ws).expect("fits") },
            ControlRepr::UnregisterSession { session_token: token },
            ControlRepr::FlushCache { session_token: token },
            ControlRepr::RotateSessionToken { old_token: id, new_token: token },
            ControlRepr::FinalDecision { ticket, decision: Decision::Deny, flags: 0 },
            ControlRepr::QuerySession { process_id: pid },
        ] {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf).expect("emit");
            prop_assert_eq!(ControlRepr::decode(&buf).expect("decode"), repr);
        }
    }

    #[test]
    fn no_decoder_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2200)) {
        let _ = RegistryRequestRepr::decode(&bytes);
        let _ = FileRequestRepr::decode(&bytes);
        let _ = PolicyResponseRepr::decode(&bytes);
        let _ = ControlRepr::decode(&bytes);
        let _ = NotifyRepr::decode(&bytes);
        let _ = ProcessEventRepr::decode(&bytes);
        let _ = FrameHeader::decode(&bytes);
        for t in MessageType::ALL {
            let _ = SendResult::decode(t, &bytes);
        }
    }

    #[test]
    fn decoders_survive_valid_prologues_with_garbage(ty in prop::sample::select(MessageType::ALL.to_vec()), mut bytes in proptest::collection::vec(any::<u8>(), 4..2200)) {
        let len = bytes.len() as u16;
        bytes[0..2].copy_from_slice(&(ty as u16).to_le_bytes());
        bytes[2..4].copy_from_slice(&len.to_le_bytes());
        let _ = RegistryRequestRepr::decode(&bytes);
        let _ = FileRequestRepr::decode(&bytes);
        let _ = ControlRepr::decode(&bytes);
        let _ = NotifyRepr::decode(&bytes);
        let _ = ProcessEventRepr::decode(&bytes);
    }
}
