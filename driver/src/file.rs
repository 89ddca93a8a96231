//! The minifilter: pre-create, pre-write, pre-set-information, pre-set-security and the
//! section-creation synchronisation map to kcore file operations on normalized names; instances
//! attach to NTFS, ReFS, FAT, exFAT and the network redirector (MUP).

use agentsh_kcore::{Caller, FileOp, Request, unc};
use agentsh_wire::op::{FileOperation, OpFlags};

use crate::ffi::{self, FltCallbackData, FltRelatedObjects, Pvoid};
use crate::flow::{Wait, decide};
use crate::state::Driver;

/// Access rights that can change a file or what it is: FILE_WRITE_DATA, FILE_APPEND_DATA,
/// FILE_WRITE_EA, FILE_DELETE_CHILD, FILE_WRITE_ATTRIBUTES, DELETE, WRITE_DAC, WRITE_OWNER,
/// ACCESS_SYSTEM_SECURITY, and the rights that grant any of them once resolved: MAXIMUM_ALLOWED,
/// GENERIC_ALL, GENERIC_WRITE.
pub const FILE_WRITE_RIGHTS: u32 = 0x0002
    | 0x0004
    | 0x0010
    | 0x0040
    | 0x0100
    | 0x0001_0000
    | 0x0004_0000
    | 0x0008_0000
    | 0x0100_0000
    | 0x0200_0000
    | 0x1000_0000
    | 0x4000_0000;
const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
const FILE_SUPERSEDE: u32 = 0;
const FILE_CREATE: u32 = 2;
const FILE_OPEN_IF: u32 = 3;
const FILE_OVERWRITE: u32 = 4;
const FILE_OVERWRITE_IF: u32 = 5;
/// PAGE_READWRITE, PAGE_EXECUTE_READWRITE: section protections that write the file back.
const WRITABLE_PAGE_PROTECTION: u32 = 0x04 | 0x40;

pub static OPERATIONS: [ffi::FltOperationRegistration; 6] = [
    op_reg(ffi::IRP_MJ_CREATE, 0),
    op_reg(
        ffi::IRP_MJ_WRITE,
        ffi::FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
    ),
    op_reg(
        ffi::IRP_MJ_SET_INFORMATION,
        ffi::FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
    ),
    op_reg(ffi::IRP_MJ_SET_SECURITY, 0),
    op_reg(ffi::IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION, 0),
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

/// Attach to every file system a session can write through: NTFS, ReFS, FAT, exFAT and the
/// network redirector (MUP, which carries every UNC path: SMB, WebDAV, RDP drives). Read-only
/// media (CDFS, UDF) and named pipes / mailslots are left alone. PASSIVE_LEVEL.
pub unsafe extern "system" fn instance_setup(
    _objects: *const FltRelatedObjects,
    _flags: u32,
    _device_type: u32,
    fs_type: u32,
) -> ffi::NtStatus {
    if attaches_to(fs_type) {
        if let Some(d) = Driver::get() {
            d.instances
                .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        }
        ffi::STATUS_SUCCESS
    } else {
        ffi::STATUS_FLT_DO_NOT_ATTACH
    }
}

/// The FLT_FILESYSTEM_TYPE values an instance attaches to.
pub fn attaches_to(fs_type: u32) -> bool {
    matches!(
        fs_type,
        ffi::FLT_FSTYPE_NTFS
            | ffi::FLT_FSTYPE_REFS
            | ffi::FLT_FSTYPE_FAT
            | ffi::FLT_FSTYPE_EXFAT
            | ffi::FLT_FSTYPE_MUP
    )
}

/// Pre-operation for every registered operation. IRQL <= APC_LEVEL (paging I/O skipped).
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
    let mut pid = unsafe { ffi::FltGetRequestorProcessId(data) };
    // SAFETY: Iopb is always valid in a pre-operation callback.
    let major = unsafe { (*(*data).iopb).major_function };
    // Processes outside every session are never blocked: no name, no allocation, no message.
    if !crate::sessions::may_be_in_session(d, pid) {
        // A broker thread impersonating a session's token opens files for that
        // session. Only the create is attributed (the one pre-operation documented to run at
        // PASSIVE_LEVEL, which the token functions need): writing, deleting, renaming or linking
        // needs a handle whose create asked for those rights and was judged.
        match (major == ffi::IRP_MJ_CREATE)
            .then(|| crate::broker::impersonated_session(d, pid))
            .flatten()
        {
            Some(root) => pid = root,
            None => return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK,
        }
    }
    // SAFETY: `data` and `objects` are valid for the duration of the pre-operation callback.
    if unsafe { intercept(d, pid, data, objects) } {
        return ffi::FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // A section creation may only be failed with STATUS_INSUFFICIENT_RESOURCES (FLT_PARAMETERS
    // for IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION); everything else is access denied.
    let status = if major == ffi::IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION {
        ffi::STATUS_INSUFFICIENT_RESOURCES
    } else {
        ffi::STATUS_ACCESS_DENIED
    };
    // SAFETY: we own `data` during the pre-operation; completing it with an error status.
    let io_status = unsafe { &mut (*data).io_status };
    io_status.status = status as isize;
    io_status.information = 0;
    ffi::FLT_PREOP_COMPLETE
}

/// What an operation is judged as.
struct Plan {
    op: FileOperation,
    flags: u16,
    desired_access: u32,
    disposition: u32,
    /// Rename / link: the FILE_RENAME_INFORMATION (same layout for links).
    target_info: Option<Pvoid>,
    /// Create-or-open dispositions with write intent: also judged as a write of the file.
    also_write: bool,
}

/// # Safety
/// `data` is the valid callback data of a pre-operation callback.
unsafe fn plan(data: *mut FltCallbackData) -> Option<Plan> {
    // SAFETY: Iopb is always valid in a pre-operation callback.
    let iopb = unsafe { &*(*data).iopb };
    let params = iopb.parameters.as_ptr();
    let plain = |op| Plan {
        op,
        flags: 0,
        desired_access: 0,
        disposition: 0,
        target_info: None,
        also_write: false,
    };
    match iopb.major_function {
        ffi::IRP_MJ_CREATE => {
            // The I/O manager opens a rename or link target's parent this way; the rename itself
            // is decided at set-information, with both names.
            if iopb.operation_flags & ffi::SL_OPEN_TARGET_DIRECTORY != 0 {
                return None;
            }
            // SAFETY: the create arm of FLT_PARAMETERS is active for IRP_MJ_CREATE.
            let create = unsafe { &*params.cast::<ffi::FltCreateParameters>() };
            // SAFETY: SecurityContext is valid for creates.
            let access =
                unsafe { create.security_context.as_ref() }.map_or(0, |c| c.desired_access);
            let disposition = create.options >> 24;
            let write_intent = access & FILE_WRITE_RIGHTS != 0;
            let mut flags = 0;
            if write_intent {
                flags |= OpFlags::WRITE_ACCESS;
            }
            let (op, also_write) = if create.options & FILE_DELETE_ON_CLOSE != 0 {
                (FileOperation::Delete, false)
            } else {
                match disposition {
                    FILE_CREATE => (FileOperation::Create, false),
                    // Creates the file or opens the existing one: judged as both.
                    FILE_OPEN_IF => (FileOperation::Create, write_intent),
                    FILE_SUPERSEDE | FILE_OVERWRITE_IF => (FileOperation::Create, true),
                    FILE_OVERWRITE => (FileOperation::Write, false),
                    _ if write_intent => (FileOperation::Write, false),
                    _ => (FileOperation::Read, false),
                }
            };
            Some(Plan {
                op,
                flags,
                desired_access: access,
                disposition,
                target_info: None,
                also_write,
            })
        }
        ffi::IRP_MJ_WRITE => Some(plain(FileOperation::Write)),
        ffi::IRP_MJ_SET_SECURITY => Some(Plan {
            flags: OpFlags::WRITE_ACCESS,
            ..plain(FileOperation::Write)
        }),
        ffi::IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION => {
            // SAFETY: the AcquireForSectionSynchronization arm is active for this operation.
            let sync =
                unsafe { &*params.cast::<ffi::FltAcquireForSectionSynchronizationParameters>() };
            (sync.sync_type == ffi::SYNC_TYPE_CREATE_SECTION
                && sync.page_protection & WRITABLE_PAGE_PROTECTION != 0)
                .then(|| Plan {
                    flags: OpFlags::WRITE_ACCESS,
                    ..plain(FileOperation::Write)
                })
        }
        ffi::IRP_MJ_SET_INFORMATION => {
            // SAFETY: the set-information arm of FLT_PARAMETERS is active.
            let set = unsafe { &*params.cast::<ffi::FltSetFileInformationParameters>() };
            match set.file_information_class.0 {
                ffi::FILE_DISPOSITION_INFORMATION => {
                    // SAFETY: FILE_DISPOSITION_INFORMATION starts with BOOLEAN DeleteFile.
                    let delete = unsafe { set.info_buffer.cast::<u8>().read() } != 0;
                    delete.then(|| plain(FileOperation::Delete))
                }
                ffi::FILE_DISPOSITION_INFORMATION_EX => {
                    // SAFETY: FILE_DISPOSITION_INFORMATION_EX starts with ULONG Flags.
                    let ex = unsafe { set.info_buffer.cast::<u32>().read_unaligned() };
                    (ex & ffi::FILE_DISPOSITION_DELETE != 0).then(|| plain(FileOperation::Delete))
                }
                ffi::FILE_RENAME_INFORMATION | ffi::FILE_RENAME_INFORMATION_EX => Some(Plan {
                    target_info: Some(set.info_buffer),
                    ..plain(FileOperation::Rename)
                }),
                ffi::FILE_LINK_INFORMATION | ffi::FILE_LINK_INFORMATION_EX => Some(Plan {
                    target_info: Some(set.info_buffer),
                    ..plain(FileOperation::HardLink)
                }),
                // Truncation, extension, timestamps and attributes change the file.
                ffi::FILE_END_OF_FILE_INFORMATION
                | ffi::FILE_ALLOCATION_INFORMATION
                | ffi::FILE_VALID_DATA_LENGTH_INFORMATION
                | ffi::FILE_BASIC_INFORMATION => Some(Plan {
                    flags: OpFlags::WRITE_ACCESS,
                    ..plain(FileOperation::Write)
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Decides the operation of a session process: true = allow. A name that cannot be obtained is a
/// denial, never an allow.
///
/// # Safety
/// `data` / `objects` are the valid arguments of a pre-operation callback.
unsafe fn intercept(
    d: &Driver,
    pid: u32,
    data: *mut FltCallbackData,
    objects: *const FltRelatedObjects,
) -> bool {
    // SAFETY: per the contract.
    let Some(plan) = (unsafe { plan(data) }) else {
        return true;
    };
    // A read kcore would allow without asking (ReadNotQueried) needs no name: skip the query, the
    // most expensive step of pre-create.
    if plan.op == FileOperation::Read && !d.reads_need_names() {
        return true;
    }
    let Some(name) = FileName::of(data) else {
        return false;
    };
    let target = match plan.target_info {
        // SAFETY: `objects` is valid; the buffer is the FILE_RENAME/LINK_INFORMATION of this call.
        Some(info) => match unsafe { FileName::destination(objects, info) } {
            Some(t) => Some(t),
            None => return false,
        },
        None => None,
    };
    // SAFETY: the name buffers stay valid until the FileName values drop at the end of scope.
    let path = unsafe { name.units() };
    // SAFETY: as above.
    let target_units = target.as_ref().map_or(&[][..], |t| unsafe { t.units() });
    // Through the redirector back to this machine (`\\localhost\C$`), the SMB server would do the
    // work as System, outside the session: denied (kcore::unc).
    if unc::reaches_local_machine(path) || unc::reaches_local_machine(target_units) {
        return false;
    }
    // SAFETY: IRQL <= APC_LEVEL; the current thread id.
    let tid = unsafe { ffi::PsGetCurrentThreadId() } as usize as u32;
    let caller = Caller { pid, tid };
    let mut request = FileOp {
        op: plan.op,
        flags: OpFlags(plan.flags),
        path,
        target: target_units,
        desired_access: plan.desired_access,
        create_disposition: plan.disposition,
    };
    if !decide(d, caller, &Request::File(request), Wait::File(data)) {
        return false;
    }
    if plan.also_write {
        request.op = FileOperation::Write;
        return decide(d, caller, &Request::File(request), Wait::File(data));
    }
    true
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
        (ffi::nt_success(status) && !info.is_null()).then(|| FileName(info))
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
        (ffi::nt_success(status) && !out.is_null()).then(|| FileName(out))
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
