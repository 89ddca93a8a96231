//! The minifilter: pre-create, pre-write and pre-set-information map to kcore file operations on
//! normalized names; instances attach to NTFS and ReFS volumes only.

use agentsh_kcore::{Caller, FileOp, Request};
use agentsh_wire::op::{FileOperation, OpFlags};

use crate::ffi::{self, FltCallbackData, FltRelatedObjects, Pvoid};
use crate::flow::decide;
use crate::state::Driver;

const FILE_WRITE_RIGHTS: u32 =
    0x0002 | 0x0004 | 0x0010 | 0x0100 | 0x0001_0000 | 0x0004_0000 | 0x0008_0000;
const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
const FILE_SUPERSEDE: u32 = 0;
const FILE_CREATE: u32 = 2;
const FILE_OPEN_IF: u32 = 3;
const FILE_OVERWRITE: u32 = 4;
const FILE_OVERWRITE_IF: u32 = 5;

pub static OPERATIONS: [ffi::FltOperationRegistration; 4] = [
    op_reg(ffi::IRP_MJ_CREATE, 0),
    op_reg(
        ffi::IRP_MJ_WRITE,
        ffi::FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
    ),
    op_reg(
        ffi::IRP_MJ_SET_INFORMATION,
        ffi::FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
    ),
    ffi::FltOperationRegistration {
        major_function: ffi::IRP_MJ_OPERATION_END,
        flags: 0,
        pre_operation: None,
        post_operation: core::ptr::null_mut(),
        reserved1: core::ptr::null_mut(),
    },
];

const fn op_reg(major: u8, flags: u32) -> ffi::FltOperationRegistration {
    ffi::FltOperationRegistration {
        major_function: major,
        flags,
        pre_operation: Some(pre_operation),
        post_operation: core::ptr::null_mut(),
        reserved1: core::ptr::null_mut(),
    }
}

/// Attach to NTFS and ReFS only. PASSIVE_LEVEL.
pub unsafe extern "system" fn instance_setup(
    _objects: *const FltRelatedObjects,
    _flags: u32,
    _device_type: u32,
    fs_type: u32,
) -> ffi::NtStatus {
    if fs_type == ffi::FLT_FSTYPE_NTFS || fs_type == ffi::FLT_FSTYPE_REFS {
        ffi::STATUS_SUCCESS
    } else {
        ffi::STATUS_FLT_DO_NOT_ATTACH
    }
}

/// Pre-operation for create, write and set-information. IRQL <= APC_LEVEL (paging I/O skipped).
unsafe extern "system" fn pre_operation(
    data: *mut FltCallbackData,
    objects: *const FltRelatedObjects,
    _completion: *mut Pvoid,
) -> i32 {
    let Some(d) = Driver::get() else {
        return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let Some(_guard) = d.enter() else {
        return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: IRQL <= APC_LEVEL; `data` is the callback data of this operation.
    let pid = unsafe { ffi::FltGetRequestorProcessId(data) };
    // Processes outside every session are never blocked: skip the name query for them.
    if d.with(|s| s.core.session_of(pid).is_none()) {
        return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: `data` and `objects` are valid for the duration of the pre-operation callback.
    let allowed = unsafe { intercept(d, pid, data, objects) }.unwrap_or(true);
    if allowed {
        return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: we own `data` during the pre-operation; completing it with an error status.
    let io_status = unsafe { &mut (*data).io_status };
    io_status.status = ffi::STATUS_ACCESS_DENIED as isize;
    io_status.information = 0;
    ffi::FLT_PREOP_COMPLETE
}

/// # Safety
/// `data` / `objects` are the valid arguments of a pre-operation callback.
unsafe fn intercept(
    d: &Driver,
    pid: u32,
    data: *mut FltCallbackData,
    objects: *const FltRelatedObjects,
) -> Option<bool> {
    // SAFETY: Iopb is always valid in a pre-operation callback.
    let iopb = unsafe { &*(*data).iopb };
    let params = iopb.parameters.as_ptr();
    let mut flags = 0u16;
    let (op, desired_access, disposition, target_info) = match iopb.major_function {
        ffi::IRP_MJ_CREATE => {
            // SAFETY: the create arm of FLT_PARAMETERS is active for IRP_MJ_CREATE.
            let create = unsafe { &*params.cast::<ffi::FltCreateParameters>() };
            // SAFETY: SecurityContext is valid for creates.
            let access =
                unsafe { create.security_context.as_ref() }.map_or(0, |c| c.desired_access);
            let disposition = create.options >> 24;
            if access & FILE_WRITE_RIGHTS != 0 {
                flags |= OpFlags::WRITE_ACCESS;
            }
            let op = if create.options & FILE_DELETE_ON_CLOSE != 0 {
                FileOperation::Delete
            } else if matches!(disposition, FILE_CREATE | FILE_OPEN_IF) {
                FileOperation::Create
            } else if matches!(
                disposition,
                FILE_SUPERSEDE | FILE_OVERWRITE | FILE_OVERWRITE_IF
            ) || access & FILE_WRITE_RIGHTS != 0
            {
                FileOperation::Write
            } else {
                FileOperation::Read
            };
            (op, access, disposition, None)
        }
        ffi::IRP_MJ_WRITE => (FileOperation::Write, 0, 0, None),
        ffi::IRP_MJ_SET_INFORMATION => {
            // SAFETY: the set-information arm of FLT_PARAMETERS is active.
            let set = unsafe { &*params.cast::<ffi::FltSetInformationParameters>() };
            match set.file_information_class {
                ffi::FILE_DISPOSITION_INFORMATION => {
                    // SAFETY: FILE_DISPOSITION_INFORMATION starts with BOOLEAN DeleteFile.
                    let delete = unsafe { set.info_buffer.cast::<u8>().read() } != 0;
                    if !delete {
                        return None;
                    }
                    (FileOperation::Delete, 0, 0, None)
                }
                ffi::FILE_DISPOSITION_INFORMATION_EX => {
                    // SAFETY: FILE_DISPOSITION_INFORMATION_EX starts with ULONG Flags.
                    let ex = unsafe { set.info_buffer.cast::<u32>().read_unaligned() };
                    if ex & ffi::FILE_DISPOSITION_DELETE == 0 {
                        return None;
                    }
                    (FileOperation::Delete, 0, 0, None)
                }
                ffi::FILE_RENAME_INFORMATION | ffi::FILE_RENAME_INFORMATION_EX => {
                    (FileOperation::Rename, 0, 0, Some(set.info_buffer))
                }
                ffi::FILE_LINK_INFORMATION | ffi::FILE_LINK_INFORMATION_EX => {
                    (FileOperation::HardLink, 0, 0, Some(set.info_buffer))
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let name = FileName::of(data)?;
    let target = match target_info {
        // SAFETY: `objects` is valid; the buffer is the FILE_RENAME/LINK_INFORMATION of this call.
        Some(info) => Some(unsafe { FileName::destination(objects, info) }?),
        None => None,
    };
    // SAFETY: the name buffers stay valid until the FileName values drop at the end of scope.
    let path = unsafe { name.units() };
    // SAFETY: as above.
    let target_units = target.as_ref().map_or(&[][..], |t| unsafe { t.units() });
    let request = Request::File(FileOp {
        op,
        flags: OpFlags(flags),
        path,
        target: target_units,
        desired_access,
        create_disposition: disposition,
    });
    // SAFETY: IRQL <= APC_LEVEL; the current thread id.
    let tid = unsafe { ffi::PsGetCurrentThreadId() } as usize as u32;
    Some(decide(d, Caller { pid, tid }, &request))
}

/// A normalized name from Filter Manager, released on drop.
struct FileName(*mut ffi::FltFileNameInformation);

impl FileName {
    fn of(data: *mut FltCallbackData) -> Option<FileName> {
        let mut info = core::ptr::null_mut();
        // SAFETY: IRQL <= APC_LEVEL; `data` is the current operation's callback data.
        let status = unsafe {
            ffi::FltGetFileNameInformation(
                data,
                ffi::FLT_FILE_NAME_NORMALIZED | ffi::FLT_FILE_NAME_QUERY_DEFAULT,
                &mut info,
            )
        };
        (ffi::nt_success(status) && !info.is_null()).then_some(FileName(info))
    }

    /// # Safety
    /// `objects` is valid and `info` is the FILE_RENAME/LINK_INFORMATION buffer of the operation.
    unsafe fn destination(objects: *const FltRelatedObjects, info: Pvoid) -> Option<FileName> {
        // SAFETY: per the contract.
        let objects = unsafe { &*objects };
        // SAFETY: per the contract.
        let rename = unsafe { &*info.cast::<ffi::FileRenameInformation>() };
        let mut out = core::ptr::null_mut();
        // SAFETY: PASSIVE_LEVEL (set-information); FileName holds FileNameLength bytes.
        let status = unsafe {
            ffi::FltGetDestinationFileNameInformation(
                objects.instance,
                objects.file_object,
                rename.root_directory,
                rename.file_name.as_ptr(),
                rename.file_name_length,
                ffi::FLT_FILE_NAME_NORMALIZED | ffi::FLT_FILE_NAME_QUERY_DEFAULT,
                &mut out,
            )
        };
        (ffi::nt_success(status) && !out.is_null()).then_some(FileName(out))
    }

    /// # Safety
    /// The returned slice must not outlive `self`.
    unsafe fn units<'a>(&self) -> &'a [u16] {
        // SAFETY: the information block is valid until released in `drop`.
        unsafe { (*self.0).name.units() }
    }
}

impl Drop for FileName {
    fn drop(&mut self) {
        // SAFETY: IRQL <= APC_LEVEL; obtained from FltGet*FileNameInformation, released once.
        unsafe { ffi::FltReleaseFileNameInformation(self.0) }
    }
}
