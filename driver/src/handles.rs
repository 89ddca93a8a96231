//! Handle protection: object callbacks on processes and threads. A handle that a session process
//! opens (or has duplicated into it) to a process outside its session, or to a thread of one,
//! loses the rights that inject code or steal handles: PROCESS_VM_WRITE, PROCESS_VM_OPERATION,
//! PROCESS_CREATE_THREAD, PROCESS_DUP_HANDLE, THREAD_SET_CONTEXT and THREAD_SUSPEND_RESUME. So a
//! session cannot get another process to do its work by writing into it, which the minifilter
//! and the registry callback would attribute to that other process.

use crate::ffi::{self, ObPreOperationInformation, Pvoid};
use crate::state::Driver;

/// Rights removed from a session's handle to a process outside its session.
pub const PROCESS_STRIPPED: u32 = ffi::PROCESS_VM_WRITE
    | ffi::PROCESS_VM_OPERATION
    | ffi::PROCESS_CREATE_THREAD
    | ffi::PROCESS_DUP_HANDLE;
/// Rights removed from a session's handle to a thread of a process outside its session.
pub const THREAD_STRIPPED: u32 = ffi::THREAD_SET_CONTEXT | ffi::THREAD_SUSPEND_RESUME;

const OPERATIONS: u32 = ffi::OB_OPERATION_HANDLE_CREATE | ffi::OB_OPERATION_HANDLE_DUPLICATE;
const KERNEL_HANDLE: u32 = 1;

/// Registers the process and thread callbacks at `altitude`. PASSIVE_LEVEL.
pub fn register(altitude: &ffi::UnicodeString, handle: *mut Pvoid) -> ffi::NtStatus {
    // SAFETY: reading the import slots of two exported kernel variables (set by the loader).
    let process_type = unsafe { ffi::PS_PROCESS_TYPE };
    // SAFETY: as above.
    let thread_type = unsafe { ffi::PS_THREAD_TYPE };
    let operations = [
        ffi::ObOperationRegistration {
            object_type: process_type,
            operations: OPERATIONS,
            pre_operation: Some(pre_handle),
            post_operation: core::ptr::null_mut(),
        },
        ffi::ObOperationRegistration {
            object_type: thread_type,
            operations: OPERATIONS,
            pre_operation: Some(pre_handle),
            post_operation: core::ptr::null_mut(),
        },
    ];
    let registration = ffi::ObCallbackRegistration {
        version: ffi::OB_FLT_REGISTRATION_VERSION,
        operation_registration_count: operations.len() as u16,
        altitude: *altitude,
        registration_context: core::ptr::null_mut(),
        operation_registration: operations.as_ptr(),
    };
    // SAFETY: PASSIVE_LEVEL; the registration and its table are read during the call only; the
    // callback is a 'static function; `handle` is the driver state's atomic storage.
    unsafe { ffi::ObRegisterCallbacks(&registration, handle) }
}

/// The pre-operation callback for process and thread handles. PASSIVE_LEVEL or APC_LEVEL, in the
/// context of the thread that creates or duplicates the handle.
unsafe extern "system" fn pre_handle(_context: Pvoid, info: *mut ObPreOperationInformation) -> u32 {
    let Some(d) = Driver::get() else {
        return ffi::OB_PREOP_SUCCESS;
    };
    let Some(_guard) = d.enter() else {
        return ffi::OB_PREOP_SUCCESS;
    };
    // SAFETY: the object manager passes a valid, writable information block for the call.
    let info = unsafe { &mut *info };
    if info.flags & KERNEL_HANDLE != 0 || info.parameters.is_null() {
        return ffi::OB_PREOP_SUCCESS;
    }
    // Who receives the handle: the caller for a create, the target process for a duplicate.
    let recipient = if info.operation == ffi::OB_OPERATION_HANDLE_DUPLICATE {
        // SAFETY: the duplicate arm of the parameters is active for a duplicate.
        let dup = unsafe {
            &*info
                .parameters
                .cast::<ffi::ObPreDuplicateHandleInformation>()
        };
        if dup.target_process.is_null() {
            return ffi::OB_PREOP_SUCCESS;
        }
        // SAFETY: TargetProcess is a referenced EPROCESS for the callback's duration.
        unsafe { ffi::PsGetProcessId(dup.target_process) as usize as u32 }
    } else {
        // SAFETY: any IRQL; the current process id.
        unsafe { ffi::PsGetCurrentProcessId() as usize as u32 }
    };
    // Almost every handle on the machine: one lock-free bit test.
    if !d.pids.may_contain(recipient) {
        return ffi::OB_PREOP_SUCCESS;
    }
    // SAFETY: reading the import slot of an exported kernel variable.
    let process_type = unsafe { ffi::PS_PROCESS_TYPE };
    // SAFETY: the slot points at the kernel's PsProcessType variable.
    let is_process = info.object_type == unsafe { *process_type };
    let target = if is_process {
        // SAFETY: Object is the referenced EPROCESS the handle is for.
        unsafe { ffi::PsGetProcessId(info.object) as usize as u32 }
    } else {
        // SAFETY: Object is the referenced ETHREAD the handle is for.
        unsafe { ffi::PsGetThreadProcessId(info.object) as usize as u32 }
    };
    if target == recipient {
        return ffi::OB_PREOP_SUCCESS;
    }
    let outside = d.with(|s| match s.core.session_of(recipient) {
        Some(session) => s.core.session_of(target) != Some(session),
        None => false,
    });
    if outside {
        let strip = if is_process {
            PROCESS_STRIPPED
        } else {
            THREAD_STRIPPED
        };
        // Both arms start with DesiredAccess.
        // SAFETY: the parameters block is writable for the callback's duration.
        let access = unsafe { &mut (*info.parameters.cast::<ffi::ObPreCreateHandleInformation>()) };
        access.desired_access &= !strip;
    }
    ffi::OB_PREOP_SUCCESS
}
