//! Hand-written kernel and Filter Manager declarations: only what agentsh.sys uses, each layout
//! pinned by size and offset asserts (cross-checked against mingw's ddk headers in layout/check.c).

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

pub type NtStatus = i32;
pub type Handle = *mut c_void;
pub type Pvoid = *mut c_void;

pub const STATUS_SUCCESS: NtStatus = 0;
pub const STATUS_TIMEOUT: NtStatus = 0x102;
pub const STATUS_ACCESS_DENIED: NtStatus = 0xC000_0022_u32 as i32;
pub const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as i32;
pub const STATUS_FLT_DO_NOT_ATTACH: NtStatus = 0xC01C_000F_u32 as i32;
/// ntstatus.h: 0xC0000037 (not 0xC000037E).
pub const STATUS_PORT_DISCONNECTED: NtStatus = 0xC000_0037_u32 as i32;
/// FltSendMessage / FltCancellableWaitForSingleObject: the requesting thread is being terminated.
pub const STATUS_THREAD_IS_TERMINATING: NtStatus = 0xC000_004B_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;

pub fn nt_success(s: NtStatus) -> bool {
    s >= 0
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct UnicodeString {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *mut u16,
}

impl UnicodeString {
    /// The string's units; empty for a null buffer.
    ///
    /// # Safety
    /// `buffer` must point to `length` readable bytes for the returned lifetime.
    pub unsafe fn units<'a>(&self) -> &'a [u16] {
        if self.buffer.is_null() {
            return &[];
        }
        // SAFETY: the caller guarantees `length` bytes are readable at `buffer` (any IRQL: the
        // strings we read are in non-paged or already-resident callback parameters).
        unsafe { core::slice::from_raw_parts(self.buffer, usize::from(self.length) / 2) }
    }

    pub const fn from_static(s: &'static [u16]) -> Self {
        UnicodeString {
            length: (s.len() * 2) as u16,
            maximum_length: (s.len() * 2) as u16,
            buffer: s.as_ptr().cast_mut(),
        }
    }
}

#[repr(C)]
pub struct ObjectAttributes {
    pub length: u32,
    pub root_directory: Handle,
    pub object_name: *const UnicodeString,
    pub attributes: u32,
    pub security_descriptor: Pvoid,
    pub security_quality_of_service: Pvoid,
}
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;

/// KEVENT / KMUTEX storage; initialised only through KeInitialize*.
#[repr(C, align(8))]
pub struct KEvent(pub [u8; 24]);
#[repr(C, align(8))]
pub struct KMutex(pub [u8; 56]);
#[repr(C, align(8))]
pub struct RundownRef(pub usize);

pub const NOTIFICATION_EVENT: u32 = 0;

pub type PoolFlags = u64;
pub const POOL_FLAG_NON_PAGED: PoolFlags = 0x40;

// ---- registry callback information (wdm.h) ----
/// KEY_VALUE_PARTIAL_INFORMATION: the header ZwQueryValueKey writes, the data following it.
#[repr(C)]
pub struct KeyValuePartialInformation {
    pub title_index: u32,
    pub r#type: u32,
    pub data_length: u32,
    pub data: [u8; 1],
}
/// KeyValuePartialInformation of KEY_VALUE_INFORMATION_CLASS.
pub const KEY_VALUE_PARTIAL_INFORMATION_CLASS: u32 = 2;

#[repr(C)]
pub struct RegSetValueKeyInformation {
    pub object: Pvoid,
    pub value_name: *const UnicodeString,
    pub title_index: u32,
    pub r#type: u32,
    pub data: Pvoid,
    pub data_size: u32,
}
#[repr(C)]
pub struct RegDeleteValueKeyInformation {
    pub object: Pvoid,
    pub value_name: *const UnicodeString,
}
#[repr(C)]
pub struct RegObjectOnlyInformation {
    pub object: Pvoid,
}
#[repr(C)]
pub struct RegRenameKeyInformation {
    pub object: Pvoid,
    pub new_name: *const UnicodeString,
}
#[repr(C)]
pub struct RegQueryValueKeyInformation {
    pub object: Pvoid,
    pub value_name: *const UnicodeString,
}
#[repr(C)]
pub struct RegCreateKeyInformation {
    pub complete_name: *const UnicodeString,
    pub root_object: Pvoid,
    pub object_type: Pvoid,
    pub create_options: u32,
    pub class: *const UnicodeString,
    pub security_descriptor: Pvoid,
    pub security_quality_of_service: Pvoid,
    pub desired_access: u32,
    pub granted_access: u32,
}
#[repr(C)]
pub struct RegReplaceKeyInformation {
    pub object: Pvoid,
    pub old_file_name: *const UnicodeString,
    pub new_file_name: *const UnicodeString,
}
#[repr(C)]
pub struct RegLoadKeyInformation {
    pub object: Pvoid,
    pub key_name: *const UnicodeString,
    pub source_file: *const UnicodeString,
}

// ---- process notify (ntddk.h) ----
#[repr(C)]
pub struct ClientId {
    pub unique_process: Handle,
    pub unique_thread: Handle,
}
#[repr(C)]
pub struct PsCreateNotifyInfo {
    pub size: usize,
    pub flags: u32,
    pub parent_process_id: Handle,
    pub creating_thread_id: ClientId,
    pub file_object: Pvoid,
    pub image_file_name: *const UnicodeString,
    pub command_line: *const UnicodeString,
    pub creation_status: NtStatus,
}

// ---- event log (wdm.h) ----
#[repr(C)]
pub struct IoErrorLogPacket {
    pub major_function_code: u8,
    pub retry_count: u8,
    pub dump_data_size: u16,
    pub number_of_strings: u16,
    pub string_offset: u16,
    pub event_category: u16,
    pub error_code: NtStatus,
    pub unique_error_value: u32,
    pub final_status: NtStatus,
    pub sequence_number: u32,
    pub io_control_code: u32,
    pub device_offset: i64,
    pub dump_data: [u32; 1],
}

// ---- Filter Manager (fltKernel.h) ----
pub type PreOpCallback =
    unsafe extern "system" fn(*mut FltCallbackData, *const FltRelatedObjects, *mut Pvoid) -> i32;
pub type UnloadCallback = unsafe extern "system" fn(u32) -> NtStatus;
pub type InstanceSetupCallback =
    unsafe extern "system" fn(*const FltRelatedObjects, u32, u32, u32) -> NtStatus;

#[repr(C)]
pub struct FltOperationRegistration {
    pub major_function: u8,
    pub flags: u32,
    pub pre_operation: Option<PreOpCallback>,
    pub post_operation: Pvoid,
    pub reserved1: Pvoid,
}
#[repr(C)]
pub struct FltRegistration {
    pub size: u16,
    pub version: u16,
    pub flags: u32,
    pub context_registration: Pvoid,
    pub operation_registration: *const FltOperationRegistration,
    pub filter_unload_callback: Option<UnloadCallback>,
    pub instance_setup_callback: Option<InstanceSetupCallback>,
    pub instance_query_teardown_callback: Pvoid,
    pub instance_teardown_start_callback: Pvoid,
    pub instance_teardown_complete_callback: Pvoid,
    pub generate_file_name_callback: Pvoid,
    pub normalize_name_component_callback: Pvoid,
    pub normalize_context_cleanup_callback: Pvoid,
    pub transaction_notification_callback: Pvoid,
    pub normalize_name_component_ex_callback: Pvoid,
}
pub const FLT_REGISTRATION_VERSION_0202: u16 = 0x0202;
pub const IRP_MJ_CREATE: u8 = 0;
pub const IRP_MJ_WRITE: u8 = 4;
pub const IRP_MJ_SET_INFORMATION: u8 = 6;
pub const IRP_MJ_SET_SECURITY: u8 = 0x15;
/// `(UCHAR)-1`.
pub const IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION: u8 = 0xFF;
/// FLT_IO_PARAMETER_BLOCK.OperationFlags: the create opens the target's parent for a rename/link.
pub const SL_OPEN_TARGET_DIRECTORY: u8 = 0x04;
pub const IRP_MJ_OPERATION_END: u8 = 0x80;
pub const FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO: u32 = 1;
pub const FLT_FSTYPE_NTFS: u32 = 2;
pub const FLT_FSTYPE_FAT: u32 = 3;
pub const FLT_FSTYPE_MUP: u32 = 13;
pub const FLT_FSTYPE_EXFAT: u32 = 22;
pub const FLT_FSTYPE_REFS: u32 = 28;
pub const FLT_PREOP_SUCCESS_NO_CALLBACK: i32 = 1;
pub const FLT_PREOP_COMPLETE: i32 = 4;
pub const FLT_FILE_NAME_NORMALIZED: u32 = 0x01;
pub const FLT_FILE_NAME_QUERY_DEFAULT: u32 = 0x0100;
pub const FLT_PORT_ALL_ACCESS: u32 = 0x001F_0001;

#[repr(C)]
pub struct IoStatusBlock {
    pub status: isize,
    pub information: usize,
}
#[repr(C)]
pub struct FltCallbackData {
    pub flags: u32,
    pub thread: Pvoid,
    pub iopb: *mut FltIoParameterBlock,
    pub io_status: IoStatusBlock,
    pub tag_data: Pvoid,
    pub filter_context: [Pvoid; 4],
    pub requestor_mode: i8,
}
#[repr(C)]
pub struct FltIoParameterBlock {
    pub irp_flags: u32,
    pub major_function: u8,
    pub minor_function: u8,
    pub operation_flags: u8,
    pub reserved: u8,
    pub target_file_object: Pvoid,
    pub target_instance: Pvoid,
    /// FLT_PARAMETERS: the union, read through the views below.
    pub parameters: [usize; 5],
}
#[repr(C)]
pub struct IoSecurityContext {
    pub security_qos: Pvoid,
    pub access_state: Pvoid,
    pub desired_access: u32,
    pub full_create_options: u32,
}
#[repr(C)]
pub struct FltCreateParameters {
    pub security_context: *const IoSecurityContext,
    pub options: u32,
}
/// A field declared `POINTER_ALIGNMENT` in the WDK headers (`DECLSPEC_ALIGN(8)` on x64).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct PointerAligned<T>(pub T);

/// FLT_PARAMETERS.SetFileInformation.
#[repr(C)]
pub struct FltSetFileInformationParameters {
    pub length: u32,
    pub file_information_class: PointerAligned<u32>,
    pub parent_of_target: Pvoid,
    /// The union of { ReplaceIfExists, AdvanceOnly }, ClusterCount and DeleteHandle.
    pub dummy_union_name: Pvoid,
    pub info_buffer: Pvoid,
}
/// FLT_PARAMETERS.AcquireForSectionSynchronization.
#[repr(C)]
pub struct FltAcquireForSectionSynchronizationParameters {
    pub sync_type: u32,
    pub page_protection: u32,
    pub output_information: Pvoid,
}
/// FS_FILTER_SECTION_SYNC_TYPE: SyncTypeCreateSection.
pub const SYNC_TYPE_CREATE_SECTION: u32 = 1;
#[repr(C)]
pub struct FileRenameInformation {
    pub replace_if_exists: u8,
    pub root_directory: Handle,
    pub file_name_length: u32,
    pub file_name: [u16; 1],
}
#[repr(C)]
pub struct FltRelatedObjects {
    pub size: u16,
    pub transaction_context: u16,
    pub filter: Pvoid,
    pub volume: Pvoid,
    pub instance: Pvoid,
    pub file_object: Pvoid,
    pub transaction: Pvoid,
}
#[repr(C)]
pub struct FltFileNameInformation {
    pub size: u16,
    pub names_parsed: u16,
    pub format: u32,
    pub name: UnicodeString,
}
pub const FILE_BASIC_INFORMATION: u32 = 4;
pub const FILE_RENAME_INFORMATION: u32 = 10;
pub const FILE_LINK_INFORMATION: u32 = 11;
pub const FILE_DISPOSITION_INFORMATION: u32 = 13;
pub const FILE_ALLOCATION_INFORMATION: u32 = 19;
pub const FILE_END_OF_FILE_INFORMATION: u32 = 20;
pub const FILE_VALID_DATA_LENGTH_INFORMATION: u32 = 39;
pub const FILE_DISPOSITION_INFORMATION_EX: u32 = 64;
pub const FILE_RENAME_INFORMATION_EX: u32 = 65;
pub const FILE_LINK_INFORMATION_EX: u32 = 72;
pub const FILE_DISPOSITION_DELETE: u32 = 1;

pub type ConnectNotify =
    unsafe extern "system" fn(Pvoid, Pvoid, Pvoid, u32, *mut Pvoid) -> NtStatus;
pub type DisconnectNotify = unsafe extern "system" fn(Pvoid);
pub type MessageNotify =
    unsafe extern "system" fn(Pvoid, Pvoid, u32, Pvoid, u32, *mut u32) -> NtStatus;
pub type RegistryCallback = unsafe extern "system" fn(Pvoid, Pvoid, Pvoid) -> NtStatus;
pub type CreateProcessNotifyEx = unsafe extern "system" fn(Pvoid, Handle, *mut PsCreateNotifyInfo);
pub type GenericWorkItemRoutine = unsafe extern "system" fn(Pvoid, Pvoid, Pvoid);

pub type ObPreOperationCallback =
    unsafe extern "system" fn(Pvoid, *mut ObPreOperationInformation) -> u32;

/// OB_CALLBACK_REGISTRATION (wdm.h).
#[repr(C)]
pub struct ObCallbackRegistration {
    pub version: u16,
    pub operation_registration_count: u16,
    pub altitude: UnicodeString,
    pub registration_context: Pvoid,
    pub operation_registration: *const ObOperationRegistration,
}

/// OB_OPERATION_REGISTRATION: `object_type` is the address of the kernel's `PsProcessType` /
/// `PsThreadType` variable (a `POBJECT_TYPE *`).
#[repr(C)]
pub struct ObOperationRegistration {
    pub object_type: *const Pvoid,
    pub operations: u32,
    pub pre_operation: Option<ObPreOperationCallback>,
    pub post_operation: Pvoid,
}

/// OB_PRE_OPERATION_INFORMATION; `flags` is the union whose bit 0 is KernelHandle.
#[repr(C)]
pub struct ObPreOperationInformation {
    pub operation: u32,
    pub flags: u32,
    pub object: Pvoid,
    pub object_type: Pvoid,
    pub call_context: Pvoid,
    pub parameters: Pvoid,
}

/// OB_PRE_CREATE_HANDLE_INFORMATION (the create arm of OB_PRE_OPERATION_PARAMETERS).
#[repr(C)]
pub struct ObPreCreateHandleInformation {
    pub desired_access: u32,
    pub original_desired_access: u32,
}

/// OB_PRE_DUPLICATE_HANDLE_INFORMATION (the duplicate arm of OB_PRE_OPERATION_PARAMETERS).
#[repr(C)]
pub struct ObPreDuplicateHandleInformation {
    pub desired_access: u32,
    pub original_desired_access: u32,
    pub source_process: Pvoid,
    pub target_process: Pvoid,
}

/// TOKEN_INFORMATION_CLASS TokenAppContainerSid.
pub const TOKEN_APP_CONTAINER_SID: u32 = 31;
/// TOKEN_INFORMATION_CLASS TokenRestrictedSids.
pub const TOKEN_RESTRICTED_SIDS: u32 = 11;
/// SECURITY_IMPERSONATION_LEVEL SecurityImpersonation.
pub const SECURITY_IMPERSONATION: u32 = 2;

/// SID_AND_ATTRIBUTES (winnt.h / ntifs.h).
#[repr(C)]
pub struct SidAndAttributes {
    pub sid: Pvoid,
    pub attributes: u32,
}

/// TOKEN_GROUPS (winnt.h / ntifs.h): `group_count` entries, the first declared here, the rest
/// following in the same buffer.
#[repr(C)]
pub struct TokenGroups {
    pub group_count: u32,
    pub groups: [SidAndAttributes; 1],
}

/// TOKEN_APPCONTAINER_INFORMATION (winnt.h): null for a token outside every AppContainer.
#[repr(C)]
pub struct TokenAppContainerInformation {
    pub token_app_container: Pvoid,
}

/// SID (winnt.h): the header and the first sub-authority; `sub_authority_count` of them follow.
#[repr(C)]
pub struct Sid {
    pub revision: u8,
    pub sub_authority_count: u8,
    pub identifier_authority: [u8; 6],
    pub sub_authority: [u32; 1],
}

pub const OB_FLT_REGISTRATION_VERSION: u16 = 0x0100;
pub const OB_OPERATION_HANDLE_CREATE: u32 = 0x0000_0001;
pub const OB_OPERATION_HANDLE_DUPLICATE: u32 = 0x0000_0002;
pub const OB_PREOP_SUCCESS: u32 = 0;
pub const PROCESS_CREATE_THREAD: u32 = 0x0002;
pub const PROCESS_VM_OPERATION: u32 = 0x0008;
pub const PROCESS_VM_WRITE: u32 = 0x0020;
pub const PROCESS_DUP_HANDLE: u32 = 0x0040;
pub const THREAD_SUSPEND_RESUME: u32 = 0x0002;
pub const THREAD_SET_CONTEXT: u32 = 0x0010;

#[link(name = "agentsh_ntoskrnl", kind = "static")]
unsafe extern "system" {
    pub fn ExAllocatePool2(flags: PoolFlags, size: usize, tag: u32) -> Pvoid;
    pub fn ExFreePoolWithTag(p: Pvoid, tag: u32);
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    pub fn KeQueryInterruptTimePrecise(qpc: *mut u64) -> u64;
    pub fn PsGetCurrentThread() -> Pvoid;
    pub fn PsIsThreadTerminating(thread: Pvoid) -> u8;
    pub fn KeQueryPerformanceCounter(freq: *mut i64) -> i64;
    pub fn KeInitializeMutex(m: *mut KMutex, level: u32);
    pub fn KeReleaseMutex(m: *mut KMutex, wait: u8) -> i32;
    pub fn KeInitializeEvent(e: *mut KEvent, kind: u32, state: u8);
    pub fn KeSetEvent(e: *mut KEvent, increment: i32, wait: u8) -> i32;
    pub fn KeWaitForSingleObject(
        object: Pvoid,
        reason: u32,
        mode: i8,
        alertable: u8,
        timeout: *const i64,
    ) -> NtStatus;
    pub fn ExInitializeRundownProtection(r: *mut RundownRef);
    pub fn ExAcquireRundownProtection(r: *mut RundownRef) -> u8;
    pub fn ExReleaseRundownProtection(r: *mut RundownRef);
    pub fn ExWaitForRundownProtectionRelease(r: *mut RundownRef);
    pub fn PsGetCurrentProcessId() -> Handle;
    pub fn PsGetCurrentThreadId() -> Handle;
    pub fn PsSetCreateProcessNotifyRoutineEx(cb: CreateProcessNotifyEx, remove: u8) -> NtStatus;
    pub fn CmRegisterCallbackEx(
        cb: RegistryCallback,
        altitude: *const UnicodeString,
        driver: Pvoid,
        context: Pvoid,
        cookie: *mut i64,
        reserved: Pvoid,
    ) -> NtStatus;
    pub fn CmUnRegisterCallback(cookie: i64) -> NtStatus;
    pub fn CmCallbackGetKeyObjectIDEx(
        cookie: *const i64,
        object: Pvoid,
        id: *mut usize,
        name: *mut *const UnicodeString,
        flags: u32,
    ) -> NtStatus;
    pub fn CmCallbackReleaseKeyObjectIDEx(name: *const UnicodeString);
    pub fn ZwOpenKey(key: *mut Handle, access: u32, attrs: *const ObjectAttributes) -> NtStatus;
    pub fn ZwClose(h: Handle) -> NtStatus;
    pub fn ZwQueryValueKey(
        key: Handle,
        value_name: *const UnicodeString,
        class: u32,
        info: Pvoid,
        length: u32,
        result_length: *mut u32,
    ) -> NtStatus;
    pub fn IoAllocateErrorLogEntry(io_object: Pvoid, size: u8) -> *mut IoErrorLogPacket;
    pub fn IoWriteErrorLogEntry(entry: *mut IoErrorLogPacket);
    pub fn ObRegisterCallbacks(
        registration: *const ObCallbackRegistration,
        handle: *mut Pvoid,
    ) -> NtStatus;
    pub fn ObUnRegisterCallbacks(handle: Pvoid);
    pub fn PsGetProcessId(process: Pvoid) -> Handle;
    pub fn PsGetThreadProcessId(thread: Pvoid) -> Handle;
    pub fn PsReferenceImpersonationToken(
        thread: Pvoid,
        copy_on_open: *mut u8,
        effective_only: *mut u8,
        level: *mut u32,
    ) -> Pvoid;
    pub fn PsDereferenceImpersonationToken(token: Pvoid);
    pub fn PsLookupProcessByProcessId(pid: Handle, process: *mut Pvoid) -> NtStatus;
    pub fn PsReferencePrimaryToken(process: Pvoid) -> Pvoid;
    pub fn PsDereferencePrimaryToken(token: Pvoid);
    pub fn ObfDereferenceObject(object: Pvoid) -> isize;
    pub fn SeQueryInformationToken(token: Pvoid, class: u32, info: *mut Pvoid) -> NtStatus;
    pub fn SeTokenIsRestricted(token: Pvoid) -> u8;
    pub fn ExFreePool(p: Pvoid);
}

#[link(name = "agentsh_ntoskrnl", kind = "static")]
unsafe extern "C" {
    pub fn DbgPrint(format: *const u8, ...) -> u32;
}

// Exported variables (`POBJECT_TYPE *PsProcessType`): the import library's `__imp_` slot holds the
// variable's address, which is what OB_OPERATION_REGISTRATION.ObjectType takes.
#[link(name = "agentsh_ntoskrnl", kind = "static")]
unsafe extern "C" {
    #[link_name = "__imp_PsProcessType"]
    pub static PS_PROCESS_TYPE: *const Pvoid;
    #[link_name = "__imp_PsThreadType"]
    pub static PS_THREAD_TYPE: *const Pvoid;
}

#[link(name = "agentsh_fltmgr", kind = "static")]
unsafe extern "system" {
    pub fn FltRegisterFilter(
        driver: Pvoid,
        registration: *const FltRegistration,
        filter: *mut Pvoid,
    ) -> NtStatus;
    pub fn FltStartFiltering(filter: Pvoid) -> NtStatus;
    pub fn FltUnregisterFilter(filter: Pvoid);
    pub fn FltBuildDefaultSecurityDescriptor(sd: *mut Pvoid, access: u32) -> NtStatus;
    pub fn FltFreeSecurityDescriptor(sd: Pvoid);
    pub fn FltCreateCommunicationPort(
        filter: Pvoid,
        port: *mut Pvoid,
        attrs: *const ObjectAttributes,
        cookie: Pvoid,
        connect: ConnectNotify,
        disconnect: DisconnectNotify,
        message: MessageNotify,
        max_connections: i32,
    ) -> NtStatus;
    pub fn FltCloseCommunicationPort(port: Pvoid);
    pub fn FltCloseClientPort(filter: Pvoid, client_port: *mut Pvoid);
    pub fn FltSendMessage(
        filter: Pvoid,
        client_port: *const Pvoid,
        send: Pvoid,
        send_len: u32,
        reply: Pvoid,
        reply_len: *mut u32,
        timeout: *const i64,
    ) -> NtStatus;
    pub fn FltGetRequestorProcessId(data: *mut FltCallbackData) -> u32;
    pub fn FltGetFileNameInformation(
        data: *mut FltCallbackData,
        options: u32,
        info: *mut *mut FltFileNameInformation,
    ) -> NtStatus;
    pub fn FltGetDestinationFileNameInformation(
        instance: Pvoid,
        file_object: Pvoid,
        root: Handle,
        name: *const u16,
        name_len: u32,
        options: u32,
        info: *mut *mut FltFileNameInformation,
    ) -> NtStatus;
    pub fn FltReleaseFileNameInformation(info: *mut FltFileNameInformation);
    pub fn FltAllocateGenericWorkItem() -> Pvoid;
    pub fn FltQueueGenericWorkItem(
        item: Pvoid,
        flt_object: Pvoid,
        routine: GenericWorkItemRoutine,
        queue_type: u32,
        context: Pvoid,
    ) -> NtStatus;
    pub fn FltFreeGenericWorkItem(item: Pvoid);
    pub fn FltCancellableWaitForSingleObject(
        object: Pvoid,
        timeout: *const i64,
        data: *mut FltCallbackData,
    ) -> NtStatus;
}

macro_rules! layout {
    ($t:ty, $size:expr $(, $field:ident @ $off:expr)*) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}
// Every field of every structure above, by size and offset. `driver/layout/check.py` reads these
// lines and asserts the same numbers against mingw-w64's and Wine's headers (field names are the
// C member names in snake_case), so a wrong number fails on one side or the other.
layout!(UnicodeString, 16, length @ 0, maximum_length @ 2, buffer @ 8);
layout!(ObjectAttributes, 48, length @ 0, root_directory @ 8, object_name @ 16, attributes @ 24, security_descriptor @ 32, security_quality_of_service @ 40);
layout!(KEvent, 24);
layout!(KMutex, 56);
layout!(RundownRef, 8);
layout!(KeyValuePartialInformation, 16, title_index @ 0, r#type @ 4, data_length @ 8, data @ 12);
layout!(RegSetValueKeyInformation, 40, object @ 0, value_name @ 8, title_index @ 16, r#type @ 20, data @ 24, data_size @ 32);
layout!(RegDeleteValueKeyInformation, 16, object @ 0, value_name @ 8);
layout!(RegObjectOnlyInformation, 8, object @ 0);
layout!(RegRenameKeyInformation, 16, object @ 0, new_name @ 8);
layout!(RegQueryValueKeyInformation, 16, object @ 0, value_name @ 8);
layout!(RegCreateKeyInformation, 64, complete_name @ 0, root_object @ 8, object_type @ 16, create_options @ 24, class @ 32, security_descriptor @ 40, security_quality_of_service @ 48, desired_access @ 56, granted_access @ 60);
layout!(RegReplaceKeyInformation, 24, object @ 0, old_file_name @ 8, new_file_name @ 16);
layout!(RegLoadKeyInformation, 24, object @ 0, key_name @ 8, source_file @ 16);
layout!(ClientId, 16, unique_process @ 0, unique_thread @ 8);
layout!(PsCreateNotifyInfo, 72, size @ 0, flags @ 8, parent_process_id @ 16, creating_thread_id @ 24, file_object @ 40, image_file_name @ 48, command_line @ 56, creation_status @ 64);
layout!(IoErrorLogPacket, 48, major_function_code @ 0, retry_count @ 1, dump_data_size @ 2, number_of_strings @ 4, string_offset @ 6, event_category @ 8, error_code @ 12, unique_error_value @ 16, final_status @ 20, sequence_number @ 24, io_control_code @ 28, device_offset @ 32, dump_data @ 40);
layout!(FltOperationRegistration, 32, major_function @ 0, flags @ 4, pre_operation @ 8, post_operation @ 16, reserved1 @ 24);
layout!(FltRegistration, 0x68, size @ 0, version @ 2, flags @ 4, context_registration @ 8, operation_registration @ 16, filter_unload_callback @ 24, instance_setup_callback @ 32, instance_query_teardown_callback @ 40, instance_teardown_start_callback @ 48, instance_teardown_complete_callback @ 56, generate_file_name_callback @ 64, normalize_name_component_callback @ 72, normalize_context_cleanup_callback @ 80, transaction_notification_callback @ 88, normalize_name_component_ex_callback @ 96);
layout!(IoStatusBlock, 16, status @ 0, information @ 8);
layout!(FltCallbackData, 88, flags @ 0, thread @ 8, iopb @ 16, io_status @ 24, tag_data @ 40, filter_context @ 48, requestor_mode @ 80);
layout!(FltIoParameterBlock, 64, irp_flags @ 0, major_function @ 4, minor_function @ 5, operation_flags @ 6, reserved @ 7, target_file_object @ 8, target_instance @ 16, parameters @ 24);
layout!(IoSecurityContext, 24, security_qos @ 0, access_state @ 8, desired_access @ 16, full_create_options @ 20);
layout!(FltCreateParameters, 16, security_context @ 0, options @ 8);
layout!(FltSetFileInformationParameters, 40, length @ 0, file_information_class @ 8, parent_of_target @ 16, dummy_union_name @ 24, info_buffer @ 32);
layout!(FltAcquireForSectionSynchronizationParameters, 16, sync_type @ 0, page_protection @ 4, output_information @ 8);
layout!(FileRenameInformation, 24, replace_if_exists @ 0, root_directory @ 8, file_name_length @ 16, file_name @ 20);
layout!(FltRelatedObjects, 48, size @ 0, transaction_context @ 2, filter @ 8, volume @ 16, instance @ 24, file_object @ 32, transaction @ 40);
layout!(FltFileNameInformation, 24, size @ 0, names_parsed @ 2, format @ 4, name @ 8);
layout!(ObCallbackRegistration, 40, version @ 0, operation_registration_count @ 2, altitude @ 8, registration_context @ 24, operation_registration @ 32);
layout!(ObOperationRegistration, 32, object_type @ 0, operations @ 8, pre_operation @ 16, post_operation @ 24);
layout!(ObPreOperationInformation, 40, operation @ 0, flags @ 4, object @ 8, object_type @ 16, call_context @ 24, parameters @ 32);
layout!(ObPreCreateHandleInformation, 8, desired_access @ 0, original_desired_access @ 4);
layout!(ObPreDuplicateHandleInformation, 24, desired_access @ 0, original_desired_access @ 4, source_process @ 8, target_process @ 16);
layout!(TokenAppContainerInformation, 8, token_app_container @ 0);
layout!(Sid, 12, revision @ 0, sub_authority_count @ 1, identifier_authority @ 2, sub_authority @ 8);
layout!(SidAndAttributes, 16, sid @ 0, attributes @ 8);
layout!(TokenGroups, 24, group_count @ 0, groups @ 8);
