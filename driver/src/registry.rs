//! The registry callback (CmRegisterCallbackEx, altitude 385200): maps each pre-operation class to
//! a kcore request with the key's full name and enforces the decision.

use alloc::vec::Vec;

use agentsh_kcore::{RegistryOp, Request};
use agentsh_wire::op::{OpFlags, Operation};

use crate::ffi::{self, Pvoid, UnicodeString};
use crate::flow::{current_caller, decide};
use crate::state::Driver;

/// REG_NOTIFY_CLASS values handled (wdm.h). RegNtPreDeleteKey is 0: never guard on a zero class.
mod class {
    pub const PRE_DELETE_KEY: u32 = 0;
    pub const PRE_SET_VALUE_KEY: u32 = 1;
    pub const PRE_DELETE_VALUE_KEY: u32 = 2;
    pub const PRE_RENAME_KEY: u32 = 4;
    pub const PRE_ENUMERATE_KEY: u32 = 5;
    pub const PRE_ENUMERATE_VALUE_KEY: u32 = 6;
    pub const PRE_QUERY_VALUE_KEY: u32 = 8;
    pub const PRE_CREATE_KEY_EX: u32 = 26;
    pub const PRE_OPEN_KEY_EX: u32 = 28;
    pub const PRE_LOAD_KEY: u32 = 32;
    pub const PRE_SET_KEY_SECURITY: u32 = 38;
    pub const PRE_RESTORE_KEY: u32 = 41;
    pub const PRE_SAVE_KEY: u32 = 43;
    pub const PRE_REPLACE_KEY: u32 = 45;
}

/// Access rights that can change a key (KEY_SET_VALUE, KEY_CREATE_SUB_KEY, KEY_CREATE_LINK,
/// DELETE, WRITE_DAC, WRITE_OWNER).
const KEY_WRITE_RIGHTS: u32 = 0x0002 | 0x0004 | 0x0020 | 0x0001_0000 | 0x0004_0000 | 0x0008_0000;
const KEY_QUERY_VALUE: u32 = 0x0001;

/// The altitude the callback registers at.
pub const ALTITUDE: &[u16] = &[
    b'3' as u16,
    b'8' as u16,
    b'5' as u16,
    b'2' as u16,
    b'0' as u16,
    b'0' as u16,
];

/// RegistryCallback. IRQL: PASSIVE_LEVEL (the configuration manager calls pre-notifications there).
pub unsafe extern "system" fn registry_callback(
    _ctx: Pvoid,
    arg1: Pvoid,
    arg2: Pvoid,
) -> ffi::NtStatus {
    let Some(d) = Driver::get() else {
        return ffi::STATUS_SUCCESS;
    };
    let Some(_guard) = d.enter() else {
        return ffi::STATUS_SUCCESS;
    };
    if arg2.is_null() {
        return ffi::STATUS_SUCCESS;
    }
    let class = arg1 as usize as u32;
    // SAFETY: `arg2` is the REG_*_INFORMATION matching `class`, valid for the callback's duration.
    let allowed = match unsafe { intercept(d, class, arg2) } {
        Some(allowed) => allowed,
        None => true,
    };
    if allowed {
        ffi::STATUS_SUCCESS
    } else {
        ffi::STATUS_ACCESS_DENIED
    }
}

/// # Safety
/// `info` is the information structure the configuration manager passes for `class`.
unsafe fn intercept(d: &Driver, class: u32, info: Pvoid) -> Option<bool> {
    let mut op = RegOp::default();
    match class {
        class::PRE_SET_VALUE_KEY => {
            // SAFETY: class 1 passes a REG_SET_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegSetValueKeyInformation>() };
            op.key = key_name(d, i.object)?;
            // SAFETY: ValueName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { string_units(i.value_name) };
            op.value_type = i.value_type;
            op.data_size = i.data_size;
            op.op = Some(Operation::SetValue);
        }
        class::PRE_DELETE_VALUE_KEY => {
            // SAFETY: class 2 passes a REG_DELETE_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegDeleteValueKeyInformation>() };
            op.key = key_name(d, i.object)?;
            // SAFETY: as above.
            op.name = unsafe { string_units(i.value_name) };
            op.op = Some(Operation::DeleteValue);
        }
        class::PRE_QUERY_VALUE_KEY => {
            // SAFETY: class 8 passes a REG_QUERY_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegQueryValueKeyInformation>() };
            op.key = key_name(d, i.object)?;
            // SAFETY: as above.
            op.name = unsafe { string_units(i.value_name) };
            op.op = Some(Operation::QueryValue);
        }
        class::PRE_RENAME_KEY => {
            // SAFETY: class 4 passes a REG_RENAME_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegRenameKeyInformation>() };
            op.key = key_name(d, i.object)?;
            // SAFETY: NewName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { string_units(i.new_name) };
            op.op = Some(Operation::RenameKey);
        }
        class::PRE_REPLACE_KEY => {
            // SAFETY: class 45 passes a REG_REPLACE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegReplaceKeyInformation>() };
            op.key = key_name(d, i.object)?;
            // SAFETY: NewFileName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { string_units(i.new_file_name) };
            op.op = Some(Operation::ReplaceKey);
        }
        class::PRE_LOAD_KEY => {
            // SAFETY: class 32 passes a REG_LOAD_KEY_INFORMATION; KeyName is the absolute mount point.
            let i = unsafe { &*info.cast::<ffi::RegLoadKeyInformation>() };
            // SAFETY: KeyName / SourceFile are valid UNICODE_STRINGs for the callback's duration.
            op.key = unsafe { string_units(i.key_name) };
            // SAFETY: as above.
            op.name = unsafe { string_units(i.source_file) };
            op.op = Some(Operation::LoadKey);
        }
        class::PRE_DELETE_KEY
        | class::PRE_ENUMERATE_KEY
        | class::PRE_ENUMERATE_VALUE_KEY
        | class::PRE_SET_KEY_SECURITY
        | class::PRE_RESTORE_KEY
        | class::PRE_SAVE_KEY => {
            // SAFETY: each of these classes passes a structure whose first field is the key Object.
            let i = unsafe { &*info.cast::<ffi::RegObjectOnlyInformation>() };
            op.key = key_name(d, i.object)?;
            op.op = Some(match class {
                class::PRE_DELETE_KEY => Operation::DeleteKey,
                class::PRE_ENUMERATE_KEY => Operation::EnumKeys,
                class::PRE_ENUMERATE_VALUE_KEY => Operation::EnumValues,
                class::PRE_SET_KEY_SECURITY => Operation::SetKeySecurity,
                class::PRE_RESTORE_KEY => Operation::RestoreKey,
                _ => Operation::SaveKey,
            });
        }
        class::PRE_CREATE_KEY_EX | class::PRE_OPEN_KEY_EX => {
            // SAFETY: classes 26 and 28 pass REG_CREATE_KEY_INFORMATION / REG_OPEN_KEY_INFORMATION
            // (same layout for the fields read).
            let i = unsafe { &*info.cast::<ffi::RegCreateKeyInformation>() };
            // SAFETY: CompleteName is a valid UNICODE_STRING for the callback's duration.
            let complete = unsafe { string_units(i.complete_name) };
            op.key = if complete.first() == Some(&u16::from(b'\\')) || i.root_object.is_null() {
                complete
            } else {
                let mut full = key_name(d, i.root_object)?;
                full.push(u16::from(b'\\'));
                full.extend_from_slice(&complete);
                full
            };
            if i.desired_access & KEY_WRITE_RIGHTS != 0 {
                op.flags |= OpFlags::WRITE_ACCESS;
            }
            // RegCreateKeyEx also opens existing keys: only a key that does not exist yet is a create.
            if class == class::PRE_CREATE_KEY_EX && !key_exists(&op.key) {
                op.flags |= OpFlags::NEW_KEY;
                op.op = Some(Operation::CreateKey);
            } else {
                op.op = Some(Operation::OpenKey);
            }
        }
        _ => return None,
    }
    let request = Request::Registry(RegistryOp {
        op: op.op?,
        flags: OpFlags(op.flags),
        key: &op.key,
        name: &op.name,
        value_type: op.value_type,
        data_size: op.data_size,
    });
    Some(decide(d, current_caller(), &request))
}

#[derive(Default)]
struct RegOp {
    op: Option<Operation>,
    flags: u16,
    key: Vec<u16>,
    name: Vec<u16>,
    value_type: u32,
    data_size: u32,
}

/// # Safety
/// `s` is null or a valid UNICODE_STRING whose buffer is readable.
unsafe fn string_units(s: *const UnicodeString) -> Vec<u16> {
    // SAFETY: per the contract, `s` is null or valid.
    match unsafe { s.as_ref() } {
        // SAFETY: the string's buffer holds `length` readable bytes.
        Some(s) => unsafe { s.units() }.to_vec(),
        None => Vec::new(),
    }
}

/// The full name of a key object (`\REGISTRY\...`), copied; the kernel's name is released.
fn key_name(d: &Driver, object: Pvoid) -> Option<Vec<u16>> {
    if object.is_null() {
        return None;
    }
    let mut name: *const UnicodeString = core::ptr::null();
    // SAFETY: PASSIVE_LEVEL; `object` is the key object of the current callback; our cookie.
    let status = unsafe {
        ffi::CmCallbackGetKeyObjectIDEx(&d.cm_cookie, object, core::ptr::null_mut(), &mut name, 0)
    };
    if !ffi::nt_success(status) || name.is_null() {
        return None;
    }
    // SAFETY: on success `name` is a valid UNICODE_STRING until released below.
    let units = unsafe { string_units(name) };
    // SAFETY: `name` came from CmCallbackGetKeyObjectIDEx and is released exactly once.
    unsafe { ffi::CmCallbackReleaseKeyObjectIDEx(name) };
    Some(units)
}

/// Whether the key already exists (a kernel-handle open, no access check). PASSIVE_LEVEL.
fn key_exists(path: &[u16]) -> bool {
    let Ok(bytes) = u16::try_from(path.len() * 2) else {
        return false;
    };
    let name = UnicodeString {
        length: bytes,
        maximum_length: bytes,
        buffer: path.as_ptr().cast_mut(),
    };
    let attrs = ffi::ObjectAttributes {
        length: core::mem::size_of::<ffi::ObjectAttributes>() as u32,
        root_directory: core::ptr::null_mut(),
        object_name: &name,
        attributes: ffi::OBJ_CASE_INSENSITIVE | ffi::OBJ_KERNEL_HANDLE,
        security_descriptor: core::ptr::null_mut(),
        security_quality_of_service: core::ptr::null_mut(),
    };
    let mut handle: ffi::Handle = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `attrs` and `name` outlive the call; kernel handle.
    let status = unsafe { ffi::ZwOpenKey(&mut handle, KEY_QUERY_VALUE, &attrs) };
    if !ffi::nt_success(status) {
        return false;
    }
    // SAFETY: PASSIVE_LEVEL; `handle` was opened above and is closed once.
    unsafe { ffi::ZwClose(handle) };
    true
}
