//! Names of arbitrary code units (unpaired surrogates, NULs, the escape unit): the driver's copy
//! always encodes, the decoder gives back exactly the units it was given, and a request or a
//! notification carrying them is never malformed.
#![no_main]
use agentsh_wire::Utf16Buf;
use agentsh_wire::file::{self, FileRequestRepr};
use agentsh_wire::op::{FileOperation, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequestRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let (a, b) = units.split_at(units.len() / 2);
    let (key_path, key_cut) = Utf16Buf::<{ registry::KEY_PATH_MAX }>::from_units_truncating(a);
    let (value_name, name_cut) = Utf16Buf::<{ registry::VALUE_NAME_MAX }>::from_units_truncating(b);
    assert_eq!(key_path.as_units(), &a[..key_path.len()]);
    assert_eq!(value_name.as_units(), &b[..value_name.len()]);
    let reg = RegistryRequestRepr {
        session_token: 1,
        process_id: 2,
        thread_id: 3,
        operation: Operation::SetValue,
        flags: OpFlags(0).with_cuts(key_cut, name_cut),
        value_type: 1,
        data_size: 0,
        key_path,
        value_name,
    };
    let mut buf = vec![0u8; registry::LEN];
    reg.emit(&mut buf).expect("the driver's copy always fits");
    assert_eq!(RegistryRequestRepr::decode(&buf), Ok(reg));

    let (path, path_cut) = Utf16Buf::<{ file::PATH_MAX }>::from_units_truncating(b);
    let (target_path, target_cut) = Utf16Buf::<{ file::PATH_MAX }>::from_units_truncating(a);
    let f = FileRequestRepr {
        session_token: 1,
        process_id: 2,
        thread_id: 3,
        operation: FileOperation::Rename,
        flags: OpFlags(0).with_cuts(path_cut, target_cut),
        desired_access: 0,
        create_disposition: 0,
        path,
        target_path,
    };
    let mut buf = vec![0u8; file::LEN];
    f.emit(&mut buf).expect("the driver's copy always fits");
    assert_eq!(FileRequestRepr::decode(&buf), Ok(f));
});
