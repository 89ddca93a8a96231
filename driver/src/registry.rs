//! The registry callback (CmRegisterCallbackEx, at the installed altitude, see altitude.rs): maps
//! each pre-operation class to a kcore request with the key's full name and enforces the decision.
//!
//! The session is checked first, without a lock. Processes outside every session are never
//! blocked: their writes cost one key-name query (and a one-way message only for a high-risk key);
//! their reads cost nothing, except opens whose name can reach the credential stores.

use alloc::vec::Vec;

use agentsh_kcore::{Caller, RegistryOp, Request};
use agentsh_wire::op::{OpFlags, Operation};

use crate::ffi::{self, Pvoid, UnicodeString};
use crate::flow::{Wait, current_caller, decide};
use crate::kernel::try_copy;
use crate::sessions::may_be_in_session;
use crate::state::Driver;

/// REG_NOTIFY_CLASS values handled (wdm.h). RegNtPreDeleteKey is 0: never guard on a zero class.
pub mod class {
    pub const PRE_DELETE_KEY: u32 = 0;
    pub const PRE_SET_VALUE_KEY: u32 = 1;
    pub const PRE_DELETE_VALUE_KEY: u32 = 2;
    pub const PRE_SET_INFORMATION_KEY: u32 = 3;
    pub const PRE_RENAME_KEY: u32 = 4;
    pub const PRE_ENUMERATE_KEY: u32 = 5;
    pub const PRE_ENUMERATE_VALUE_KEY: u32 = 6;
    pub const PRE_QUERY_KEY: u32 = 7;
    pub const PRE_QUERY_VALUE_KEY: u32 = 8;
    pub const PRE_QUERY_MULTIPLE_VALUE_KEY: u32 = 9;
    pub const PRE_CREATE_KEY_EX: u32 = 26;
    pub const PRE_OPEN_KEY_EX: u32 = 28;
    pub const PRE_LOAD_KEY: u32 = 32;
    pub const PRE_UNLOAD_KEY: u32 = 34;
    pub const PRE_SET_KEY_SECURITY: u32 = 38;
    pub const PRE_RESTORE_KEY: u32 = 41;
    pub const PRE_SAVE_KEY: u32 = 43;
    pub const PRE_REPLACE_KEY: u32 = 45;
    /// Not in mingw's or Wine's enum; the WDK's REG_NOTIFY_CLASS documents it after
    /// RegNtPostQueryKeyName (48).
    pub const PRE_SAVE_MERGED_KEY: u32 = 49;
}

/// Access rights that can change a key: KEY_SET_VALUE, KEY_CREATE_SUB_KEY, KEY_CREATE_LINK,
/// DELETE, WRITE_DAC, WRITE_OWNER, ACCESS_SYSTEM_SECURITY, and MAXIMUM_ALLOWED, GENERIC_ALL,
/// GENERIC_WRITE (which grant them once resolved).
pub const KEY_WRITE_RIGHTS: u32 = 0x0002
    | 0x0004
    | 0x0020
    | 0x0001_0000
    | 0x0004_0000
    | 0x0008_0000
    | 0x0100_0000
    | 0x0200_0000
    | 0x1000_0000
    | 0x4000_0000;
const KEY_QUERY_VALUE: u32 = 0x0001;

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
    // The driver's own existence probe re-enters here on the same thread: not the caller's.
    if d.in_probe() {
        return ffi::STATUS_SUCCESS;
    }
    let class = arg1 as usize as u32;
    let mut caller = current_caller();
    let mut in_session = may_be_in_session(d, caller.pid);
    if !in_session {
        // A thread impersonating a session's token works for that session.
        if let Some(root) = crate::broker::impersonated_session(d, caller.pid) {
            caller.pid = root;
            in_session = true;
        }
    }
    let allowed = if in_session {
        // SAFETY: `arg2` is the REG_*_INFORMATION matching `class`, valid for the callback.
        unsafe { intercept(d, caller, class, arg2) }
    } else {
        // SAFETY: as above.
        unsafe { outside(d, caller, class, arg2) };
        true
    };
    if allowed {
        ffi::STATUS_SUCCESS
    } else {
        ffi::STATUS_ACCESS_DENIED
    }
}

/// A process outside every session: never blocked; reported by kcore when a write hits a
/// high-risk key or an open reaches a credential store.
///
/// # Safety
/// `info` is the information structure the configuration manager passes for `class`.
unsafe fn outside(d: &Driver, caller: Caller, class: u32, info: Pvoid) {
    let write = |key: &[u16], op, name: &[u16], value_type, data_size| {
        let request = Request::Registry(RegistryOp {
            op,
            flags: OpFlags(0),
            key,
            name,
            value_type,
            data_size,
        });
        decide(d, caller, &request, Wait::Registry);
    };
    match class {
        class::PRE_SET_VALUE_KEY => {
            // SAFETY: class 1 passes a REG_SET_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegSetValueKeyInformation>() };
            if let Some(key) = KeyName::of(d, i.object) {
                // SAFETY: ValueName is a valid UNICODE_STRING for the callback's duration.
                let name = unsafe { borrowed_units(i.value_name) };
                // SAFETY: the name is valid until `key` drops.
                write(
                    unsafe { key.units() },
                    Operation::SetValue,
                    name,
                    i.r#type,
                    i.data_size,
                );
            }
        }
        class::PRE_DELETE_VALUE_KEY => {
            // SAFETY: class 2 passes a REG_DELETE_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegDeleteValueKeyInformation>() };
            if let Some(key) = KeyName::of(d, i.object) {
                // SAFETY: as above.
                let name = unsafe { borrowed_units(i.value_name) };
                // SAFETY: as above.
                write(unsafe { key.units() }, Operation::DeleteValue, name, 0, 0);
            }
        }
        class::PRE_DELETE_KEY
        | class::PRE_RENAME_KEY
        | class::PRE_SET_INFORMATION_KEY
        | class::PRE_SET_KEY_SECURITY
        | class::PRE_RESTORE_KEY
        | class::PRE_REPLACE_KEY
        | class::PRE_UNLOAD_KEY => {
            // SAFETY: each of these classes passes a structure whose first field is the Object.
            let i = unsafe { &*info.cast::<ffi::RegObjectOnlyInformation>() };
            let op = object_operation(class);
            if let (Some(op), Some(key)) = (op, KeyName::of(d, i.object)) {
                // SAFETY: as above.
                write(unsafe { key.units() }, op, &[], 0, 0);
            }
        }
        class::PRE_LOAD_KEY => {
            // SAFETY: class 32 passes a REG_LOAD_KEY_INFORMATION; KeyName is absolute.
            let i = unsafe { &*info.cast::<ffi::RegLoadKeyInformation>() };
            // SAFETY: KeyName / SourceFile are valid UNICODE_STRINGs for the callback's duration.
            let (key, file) =
                unsafe { (borrowed_units(i.key_name), borrowed_units(i.source_file)) };
            write(key, Operation::LoadKey, file, 0, 0);
        }
        class::PRE_CREATE_KEY_EX | class::PRE_OPEN_KEY_EX => {
            // SAFETY: classes 26 and 28 pass REG_CREATE_KEY_INFORMATION / REG_OPEN_KEY_INFORMATION
            // (same layout for the fields read).
            let i = unsafe { &*info.cast::<ffi::RegCreateKeyInformation>() };
            // SAFETY: CompleteName is a valid UNICODE_STRING for the callback's duration.
            let complete = unsafe { borrowed_units(i.complete_name) };
            // Only a name that can reach SAM or SECURITY is worth a name query.
            if !agentsh_kcore::highrisk::may_name_credential_store(complete) {
                return;
            }
            let Some(full) = full_key_name(d, complete, i.root_object) else {
                return;
            };
            let request = Request::Registry(RegistryOp {
                op: Operation::OpenKey,
                flags: OpFlags(0),
                key: &full,
                name: &[],
                value_type: 0,
                data_size: 0,
            });
            decide(d, caller, &request, Wait::Registry);
        }
        // Other reads of processes outside every session are not looked at.
        _ => {}
    }
}

fn object_operation(class: u32) -> Option<Operation> {
    Some(match class {
        class::PRE_DELETE_KEY => Operation::DeleteKey,
        class::PRE_RENAME_KEY => Operation::RenameKey,
        // Key metadata (last-write time, flags): judged as a write of the key's default value,
        // the wire has no operation of its own for it.
        class::PRE_SET_INFORMATION_KEY => Operation::SetValue,
        class::PRE_SET_KEY_SECURITY => Operation::SetKeySecurity,
        class::PRE_RESTORE_KEY => Operation::RestoreKey,
        class::PRE_REPLACE_KEY => Operation::ReplaceKey,
        // Unmounting a hive is judged with the hive operations, as a load on the mount point.
        class::PRE_UNLOAD_KEY => Operation::LoadKey,
        class::PRE_ENUMERATE_KEY | class::PRE_QUERY_KEY => Operation::EnumKeys,
        class::PRE_ENUMERATE_VALUE_KEY => Operation::EnumValues,
        class::PRE_QUERY_MULTIPLE_VALUE_KEY => Operation::QueryValue,
        class::PRE_SAVE_KEY | class::PRE_SAVE_MERGED_KEY => Operation::SaveKey,
        _ => return None,
    })
}

/// A session process's operation: true = allow. A key name that cannot be obtained, or memory
/// that cannot be allocated, is a denial, never an allow.
///
/// # Safety
/// `info` is the information structure the configuration manager passes for `class`.
unsafe fn intercept(d: &Driver, caller: Caller, class: u32, info: Pvoid) -> bool {
    let mut op = RegOp::default();
    let key_name;
    match class {
        class::PRE_SET_VALUE_KEY => {
            // SAFETY: class 1 passes a REG_SET_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegSetValueKeyInformation>() };
            key_name = KeyName::of(d, i.object);
            // SAFETY: ValueName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { borrowed_units(i.value_name) };
            op.value_type = i.r#type;
            op.data_size = i.data_size;
            op.op = Some(Operation::SetValue);
        }
        class::PRE_DELETE_VALUE_KEY => {
            // SAFETY: class 2 passes a REG_DELETE_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegDeleteValueKeyInformation>() };
            key_name = KeyName::of(d, i.object);
            // SAFETY: as above.
            op.name = unsafe { borrowed_units(i.value_name) };
            op.op = Some(Operation::DeleteValue);
        }
        class::PRE_QUERY_VALUE_KEY => {
            // SAFETY: class 8 passes a REG_QUERY_VALUE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegQueryValueKeyInformation>() };
            key_name = KeyName::of(d, i.object);
            // SAFETY: as above.
            op.name = unsafe { borrowed_units(i.value_name) };
            op.op = Some(Operation::QueryValue);
        }
        class::PRE_RENAME_KEY => {
            // SAFETY: class 4 passes a REG_RENAME_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegRenameKeyInformation>() };
            key_name = KeyName::of(d, i.object);
            // SAFETY: NewName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { borrowed_units(i.new_name) };
            op.op = Some(Operation::RenameKey);
        }
        class::PRE_REPLACE_KEY => {
            // SAFETY: class 45 passes a REG_REPLACE_KEY_INFORMATION.
            let i = unsafe { &*info.cast::<ffi::RegReplaceKeyInformation>() };
            key_name = KeyName::of(d, i.object);
            // SAFETY: NewFileName is a valid UNICODE_STRING for the callback's duration.
            op.name = unsafe { borrowed_units(i.new_file_name) };
            op.op = Some(Operation::ReplaceKey);
        }
        class::PRE_LOAD_KEY => {
            // SAFETY: class 32 passes a REG_LOAD_KEY_INFORMATION; KeyName is the absolute mount point.
            let i = unsafe { &*info.cast::<ffi::RegLoadKeyInformation>() };
            // SAFETY: KeyName / SourceFile are valid UNICODE_STRINGs for the callback's duration.
            let key = unsafe { borrowed_units(i.key_name) };
            // SAFETY: as above.
            op.name = unsafe { borrowed_units(i.source_file) };
            op.op = Some(Operation::LoadKey);
            return decide_op(d, caller, &op, key);
        }
        class::PRE_CREATE_KEY_EX | class::PRE_OPEN_KEY_EX => {
            // SAFETY: classes 26 and 28 pass REG_CREATE_KEY_INFORMATION / REG_OPEN_KEY_INFORMATION
            // (same layout for the fields read).
            let i = unsafe { &*info.cast::<ffi::RegCreateKeyInformation>() };
            // SAFETY: CompleteName is a valid UNICODE_STRING for the callback's duration.
            let complete = unsafe { borrowed_units(i.complete_name) };
            let Some(full) = full_key_name(d, complete, i.root_object) else {
                return false;
            };
            if i.desired_access & KEY_WRITE_RIGHTS != 0 {
                op.flags |= OpFlags::WRITE_ACCESS;
            }
            // RegCreateKeyEx also opens existing keys: only a key that does not exist yet is a
            // create. Without a probe slot the create is judged as a new key (the stricter).
            let exists = class == class::PRE_CREATE_KEY_EX && key_exists(d, &full) == Some(true);
            if class == class::PRE_CREATE_KEY_EX && !exists {
                op.flags |= OpFlags::NEW_KEY;
                op.op = Some(Operation::CreateKey);
            } else {
                op.op = Some(Operation::OpenKey);
            }
            return decide_op(d, caller, &op, &full);
        }
        _ => {
            let Some(operation) = object_operation(class) else {
                return true;
            };
            // SAFETY: every class `object_operation` names passes a structure whose first field
            // is the key Object.
            let i = unsafe { &*info.cast::<ffi::RegObjectOnlyInformation>() };
            key_name = KeyName::of(d, i.object);
            op.op = Some(operation);
        }
    }
    let Some(key) = key_name else {
        return false;
    };
    // SAFETY: the name is valid until `key` drops at the end of this function.
    decide_op(d, caller, &op, unsafe { key.units() })
}

fn decide_op(d: &Driver, caller: Caller, op: &RegOp<'_>, key: &[u16]) -> bool {
    let Some(operation) = op.op else {
        return true;
    };
    let request = Request::Registry(RegistryOp {
        op: operation,
        flags: OpFlags(op.flags),
        key,
        name: op.name,
        value_type: op.value_type,
        data_size: op.data_size,
    });
    decide(d, caller, &request, Wait::Registry)
}

#[derive(Default)]
struct RegOp<'a> {
    op: Option<Operation>,
    flags: u16,
    name: &'a [u16],
    value_type: u32,
    data_size: u32,
}

/// # Safety
/// `s` is null or a valid UNICODE_STRING whose buffer is readable for the returned lifetime.
unsafe fn borrowed_units<'a>(s: *const UnicodeString) -> &'a [u16] {
    // SAFETY: per the contract, `s` is null or valid.
    match unsafe { s.as_ref() } {
        // SAFETY: the string's buffer holds `length` readable bytes.
        Some(s) => unsafe { s.units() },
        None => &[],
    }
}

/// The key an open or create names: an absolute CompleteName as it is, a relative one joined to
/// the root key's name (one name query and one pool copy). `None` when either fails.
fn full_key_name(d: &Driver, complete: &[u16], root: Pvoid) -> Option<Vec<u16>> {
    if complete.first() == Some(&u16::from(b'\\')) || root.is_null() {
        return try_copy(complete);
    }
    let root_name = KeyName::of(d, root)?;
    // SAFETY: valid until `root_name` drops at the end of this function.
    let root_units = unsafe { root_name.units() };
    let mut full = Vec::new();
    full.try_reserve_exact(root_units.len() + 1 + complete.len())
        .ok()?;
    full.extend_from_slice(root_units);
    full.push(u16::from(b'\\'));
    full.extend_from_slice(complete);
    Some(full)
}

/// The full name of a key object (`\REGISTRY\...`) as the configuration manager returns it,
/// released on drop.
struct KeyName(*const UnicodeString);

impl KeyName {
    fn of(d: &Driver, object: Pvoid) -> Option<KeyName> {
        if object.is_null() {
            return None;
        }
        let mut name: *const UnicodeString = core::ptr::null();
        // SAFETY: PASSIVE_LEVEL; `object` is the key object of the current callback; our cookie.
        let status = unsafe {
            ffi::CmCallbackGetKeyObjectIDEx(
                d.cm_cookie.as_ptr(),
                object,
                core::ptr::null_mut(),
                &mut name,
                0,
            )
        };
        (ffi::nt_success(status) && !name.is_null()).then(|| KeyName(name))
    }

    /// # Safety
    /// The returned slice must not outlive `self`.
    unsafe fn units<'a>(&self) -> &'a [u16] {
        // SAFETY: a valid UNICODE_STRING until released in `drop`.
        unsafe { borrowed_units(self.0) }
    }
}

impl Drop for KeyName {
    fn drop(&mut self) {
        // SAFETY: obtained from CmCallbackGetKeyObjectIDEx and released exactly once.
        unsafe { ffi::CmCallbackReleaseKeyObjectIDEx(self.0) };
    }
}

/// Whether the key already exists (a kernel-handle open, no access check); `None` when no probe
/// slot is free. The probe's own nested registry callback is recognised and passed. PASSIVE_LEVEL.
fn key_exists(d: &Driver, path: &[u16]) -> Option<bool> {
    let Ok(bytes) = u16::try_from(path.len() * 2) else {
        return Some(false);
    };
    let _probe = d.begin_probe()?;
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
        return Some(false);
    }
    // SAFETY: PASSIVE_LEVEL; `handle` was opened above and is closed once.
    unsafe { ffi::ZwClose(handle) };
    Some(true)
}
