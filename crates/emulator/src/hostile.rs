//! Hostile kernel → user messages for robustness tests of a user side (the service): each is a
//! registry check corrupted in one documented way. Send them with [`crate::port::Port::query`]
//! (or `notify`); a robust user side logs each, never crashes, and still answers the next valid
//! request. The corpus is checked to be rejected by the wire decoders, so it stays hostile as the
//! layouts evolve.

use agentsh_wire::registry::{self, RegistryRequestRepr, field};
use agentsh_wire::{Operation, Utf16Buf, op::OpFlags};

fn units<const N: usize>(s: &str) -> Utf16Buf<N> {
    let units: Vec<u16> = s.encode_utf16().collect();
    Utf16Buf::from_units_truncating(&units).0
}

/// A well-formed registry check (a sandboxed write under an app key), the base of the corpus.
pub fn valid_registry_check(session_token: u64, pid: u32) -> Vec<u8> {
    let repr = RegistryRequestRepr {
        session_token,
        process_id: pid,
        thread_id: pid + 1,
        operation: Operation::SetValue,
        flags: OpFlags(0),
        value_type: 1,
        data_size: 10,
        key_path: units("\\REGISTRY\\USER\\S-1-5-21-1\\SOFTWARE\\TestApp\\config"),
        value_name: units("theme"),
    };
    let mut buf = vec![0u8; registry::LEN];
    // The buffer is exactly the message length, so emitting cannot fail.
    let _ = repr.emit(&mut buf);
    buf
}

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The corpus: (what is wrong, message bytes).
pub fn hostile_registry_checks(session_token: u64, pid: u32) -> Vec<(&'static str, Vec<u8>)> {
    let base = valid_registry_check(session_token, pid);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    let fill = |range: std::ops::Range<usize>, unit: u16| {
        move |b: &mut Vec<u8>| {
            for at in range.clone().step_by(2) {
                put_u16(b, at, unit);
            }
        }
    };
    vec![
        ("empty message", Vec::new()),
        ("one byte", vec![2]),
        ("prologue only", base[..4].to_vec()),
        ("truncated in the key path", base[..1000].to_vec()),
        (
            "unknown message type",
            with(&|b| put_u16(b, field::MESSAGE_TYPE, 0x7777)),
        ),
        (
            "a user-to-kernel type sent by the kernel",
            with(&|b| put_u16(b, field::MESSAGE_TYPE, 0x10)),
        ),
        (
            "size field smaller than the message",
            with(&|b| put_u16(b, field::MESSAGE_SIZE, 100)),
        ),
        (
            "size field larger than the message",
            with(&|b| put_u16(b, field::MESSAGE_SIZE, u16::MAX)),
        ),
        (
            "unknown operation code",
            with(&|b| put_u32(b, field::OPERATION, 0xFF)),
        ),
        (
            "operation code 0",
            with(&|b| put_u32(b, field::OPERATION, 0)),
        ),
        (
            "unknown operation flag bits",
            with(&|b| put_u32(b, field::OPERATION, 2 | (0x8000 << 16))),
        ),
        (
            "key path without a terminator",
            with(&fill(field::KEY_PATH, u16::from(b'A'))),
        ),
        (
            "value name without a terminator",
            with(&fill(field::VALUE_NAME, u16::from(b'v'))),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_decodes_and_every_hostile_message_is_rejected_by_the_wire_decoder() {
        let base = valid_registry_check(7, 100);
        let repr = RegistryRequestRepr::decode(&base).expect("valid base");
        assert_eq!(repr.value_name.to_string(), "theme");
        for (what, bytes) in hostile_registry_checks(7, 100) {
            assert!(
                RegistryRequestRepr::decode(&bytes).is_err(),
                "`{what}` was accepted"
            );
        }
    }
}
