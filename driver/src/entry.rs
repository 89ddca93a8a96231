//! DriverEntry and unload: register in order, unwind exactly what was registered on any failure,
//! and unregister in reverse order after every callback in flight has returned.

use core::sync::atomic::Ordering;

use crate::ffi::{self, Pvoid, UnicodeString};
use crate::kernel::{EventCode, debug, event_log};
use crate::state::Driver;
use crate::{altitude, file, flow, handles, port, registry};

const PORT_NAME: &[u16] = &[
    b'\\' as u16,
    b'A' as u16,
    b'g' as u16,
    b'e' as u16,
    b'n' as u16,
    b't' as u16,
    b's' as u16,
    b'h' as u16,
    b'P' as u16,
    b'o' as u16,
    b'r' as u16,
    b't' as u16,
];

static REGISTRATION: ffi::FltRegistration = ffi::FltRegistration {
    size: core::mem::size_of::<ffi::FltRegistration>() as u16,
    version: ffi::FLT_REGISTRATION_VERSION_0202,
    flags: 0,
    context_registration: core::ptr::null_mut(),
    operation_registration: file::OPERATIONS.as_ptr(),
    filter_unload_callback: Some(unload),
    instance_setup_callback: Some(file::instance_setup),
    instance_query_teardown_callback: core::ptr::null_mut(),
    instance_teardown_start_callback: core::ptr::null_mut(),
    instance_teardown_complete_callback: core::ptr::null_mut(),
    generate_file_name_callback: core::ptr::null_mut(),
    normalize_name_component_callback: core::ptr::null_mut(),
    normalize_context_cleanup_callback: core::ptr::null_mut(),
    transaction_notification_callback: core::ptr::null_mut(),
    normalize_name_component_ex_callback: core::ptr::null_mut(),
};

// SAFETY: the registration is immutable and only read by Filter Manager.
unsafe impl Sync for ffi::FltRegistration {}
// SAFETY: the operation table is immutable and only read by Filter Manager.
unsafe impl Sync for ffi::FltOperationRegistration {}

/// What has been registered so far, unwound in reverse.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Stage {
    Filter,
    Port,
    Registry,
    Process,
    Objects,
}

/// The driver's entry point. PASSIVE_LEVEL.
///
/// # Safety
/// Called once by the I/O manager with a valid DRIVER_OBJECT.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver_object: Pvoid,
    registry_path: Pvoid,
) -> ffi::NtStatus {
    let Some(d) = Driver::install(driver_object) else {
        event_log(
            driver_object,
            EventCode::LoadFailed,
            ffi::STATUS_INSUFFICIENT_RESOURCES,
            "driver state could not be allocated",
        );
        return ffi::STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: PASSIVE_LEVEL; RegistryPath is the I/O manager's UNICODE_STRING for this call.
    let altitude = unsafe { altitude::read(registry_path.cast()) };
    match register(d, &altitude) {
        Ok(()) => {
            debug!(
                "loaded; port \\AgentshPort, registry altitude {} ({})",
                altitude,
                if altitude.configured {
                    "installed"
                } else {
                    "default"
                }
            );
            ffi::STATUS_SUCCESS
        }
        Err((what, status)) => {
            debug!("load failed: {what} returned {status:#x}");
            event_log(driver_object, EventCode::LoadFailed, status, what);
            Driver::remove();
            status
        }
    }
}

/// Registers in order. Each handle is written through its `_Out_` pointer into an atomic of the
/// shared state, so callbacks that fire before registration finishes see either null or the
/// complete handle (never a half-written one, and never through a `&mut` held here).
fn register(
    d: &'static Driver,
    altitude: &altitude::Altitude,
) -> Result<(), (&'static str, ffi::NtStatus)> {
    // SAFETY: PASSIVE_LEVEL; REGISTRATION and its tables are 'static; the out pointer is the
    // atomic's own storage.
    let status =
        unsafe { ffi::FltRegisterFilter(d.driver_object, &REGISTRATION, d.filter.as_ptr()) };
    check(status, "FltRegisterFilter", d, None)?;

    let mut sd: Pvoid = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; builds a descriptor granting access to administrators and SYSTEM only.
    let status =
        unsafe { ffi::FltBuildDefaultSecurityDescriptor(&mut sd, ffi::FLT_PORT_ALL_ACCESS) };
    check(
        status,
        "FltBuildDefaultSecurityDescriptor",
        d,
        Some(Stage::Filter),
    )?;
    let name = UnicodeString::from_static(PORT_NAME);
    let attrs = ffi::ObjectAttributes {
        length: core::mem::size_of::<ffi::ObjectAttributes>() as u32,
        root_directory: core::ptr::null_mut(),
        object_name: &name,
        attributes: ffi::OBJ_CASE_INSENSITIVE | ffi::OBJ_KERNEL_HANDLE,
        security_descriptor: sd,
        security_quality_of_service: core::ptr::null_mut(),
    };
    // SAFETY: PASSIVE_LEVEL; one connection at most; callbacks are 'static functions.
    let status = unsafe {
        ffi::FltCreateCommunicationPort(
            d.filter(),
            d.server_port.as_ptr(),
            &attrs,
            core::ptr::null_mut(),
            port::on_connect,
            port::on_disconnect,
            port::on_message,
            1,
        )
    };
    // SAFETY: the port holds its own copy of the descriptor; ours is freed once.
    unsafe { ffi::FltFreeSecurityDescriptor(sd) };
    check(status, "FltCreateCommunicationPort", d, Some(Stage::Filter))?;

    let chars = altitude.as_slice();
    let bytes = (chars.len() * 2) as u16;
    let altitude = UnicodeString {
        length: bytes,
        maximum_length: bytes,
        buffer: chars.as_ptr().cast_mut(),
    };
    // SAFETY: PASSIVE_LEVEL; the callback is 'static; the cookie lives in the driver state.
    let status = unsafe {
        ffi::CmRegisterCallbackEx(
            registry::registry_callback,
            &altitude,
            d.driver_object,
            core::ptr::null_mut(),
            d.cm_cookie.as_ptr(),
            core::ptr::null_mut(),
        )
    };
    check(status, "CmRegisterCallbackEx", d, Some(Stage::Port))?;

    // SAFETY: PASSIVE_LEVEL; requires an image linked with FORCE_INTEGRITY (build.rs sets it).
    let status = unsafe { ffi::PsSetCreateProcessNotifyRoutineEx(process_notify, 0) };
    check(
        status,
        "PsSetCreateProcessNotifyRoutineEx",
        d,
        Some(Stage::Registry),
    )?;

    // Process and thread handle protection, at the same installed altitude.
    let status = handles::register(&altitude, d.ob_handle.as_ptr());
    check(status, "ObRegisterCallbacks", d, Some(Stage::Process))?;

    // SAFETY: PASSIVE_LEVEL; the filter is registered.
    let status = unsafe { ffi::FltStartFiltering(d.filter()) };
    check(status, "FltStartFiltering", d, Some(Stage::Objects))?;
    d.filtering.store(true, Ordering::Release);
    Ok(())
}

fn check(
    status: ffi::NtStatus,
    what: &'static str,
    d: &Driver,
    done: Option<Stage>,
) -> Result<(), (&'static str, ffi::NtStatus)> {
    if ffi::nt_success(status) {
        return Ok(());
    }
    if let Some(stage) = done {
        unwind(d, stage);
    }
    Err((what, status))
}

/// Unregisters everything up to and including `done`. PASSIVE_LEVEL.
///
/// Order: first nothing new may hold, and the port is closed, which fails every FltSendMessage in
/// flight and denies and wakes every held operation; only then the registry callback and the
/// process notify routine are removed (CmUnRegisterCallback waits for callbacks in flight, which
/// would otherwise be a held approval of up to an hour); then the rundown drains and the filter
/// is unregistered.
fn unwind(d: &Driver, done: Stage) {
    d.stopping.store(true, Ordering::Release);
    if done >= Stage::Port {
        // SAFETY: PASSIVE_LEVEL; our server port, closed once.
        unsafe { ffi::FltCloseCommunicationPort(d.server_port.load(Ordering::Acquire)) };
        port::disconnect(d);
    }
    if done >= Stage::Objects {
        // SAFETY: PASSIVE_LEVEL; the handle ObRegisterCallbacks returned, unregistered once.
        unsafe { ffi::ObUnRegisterCallbacks(d.ob_handle.load(Ordering::Acquire)) };
    }
    if done >= Stage::Process {
        // SAFETY: PASSIVE_LEVEL; removes the routine registered in `register`.
        unsafe { ffi::PsSetCreateProcessNotifyRoutineEx(process_notify, 1) };
    }
    if done >= Stage::Registry {
        // SAFETY: PASSIVE_LEVEL; the cookie of our registration.
        unsafe { ffi::CmUnRegisterCallback(d.cm_cookie.load(Ordering::Acquire)) };
    }
    d.wait_for_callbacks();
    // SAFETY: PASSIVE_LEVEL; waits for Filter Manager callbacks in flight, then unregisters.
    unsafe { ffi::FltUnregisterFilter(d.filter()) };
}

/// FilterUnloadCallback. PASSIVE_LEVEL.
unsafe extern "system" fn unload(_flags: u32) -> ffi::NtStatus {
    if let Some(d) = Driver::get() {
        unwind(d, Stage::Objects);
        debug!("unloaded");
    }
    Driver::remove();
    ffi::STATUS_SUCCESS
}

/// Process notify: sessions follow the creating process (CreatingThreadId), never the parent
/// attribute, which the creator can forge. A session's child that cannot be tracked (table full,
/// no memory) is not created. PASSIVE_LEVEL.
unsafe extern "system" fn process_notify(
    _process: Pvoid,
    pid: ffi::Handle,
    info: *mut ffi::PsCreateNotifyInfo,
) {
    let Some(d) = Driver::get() else {
        return;
    };
    let Some(_guard) = d.enter() else {
        return;
    };
    let pid = pid as usize as u32;
    // SAFETY: `info` is null on exit, otherwise valid (and writable: CreationStatus) for the
    // callback's duration.
    match unsafe { info.as_mut() } {
        Some(info) => {
            let creating = info.creating_thread_id.unique_process as usize as u32;
            let parent = info.parent_process_id as usize as u32;
            // Only a creator in a session can put the child in one.
            if !d.pids.may_contain(creating) {
                return;
            }
            // SAFETY: `image_file_name` is null or a valid UNICODE_STRING for the callback's
            // duration; copied (bounded by the core) before the callback returns.
            let image = match unsafe { info.image_file_name.as_ref() } {
                // SAFETY: its buffer holds `length` readable bytes for the callback's duration.
                Some(name) => unsafe { name.units() },
                None => &[],
            };
            // The filter bit goes up before kcore counts the child, under the mutex.
            let joined = d.with(|s| {
                let r = s
                    .core
                    .on_process_created_checked(pid, creating, parent, image);
                if let Ok(Some(_)) = r {
                    d.pids.insert(pid);
                }
                r
            });
            match joined {
                Ok(Some(_)) => flow::announce_processes(d),
                Ok(None) => {}
                Err(_) => info.creation_status = ffi::STATUS_INSUFFICIENT_RESOURCES,
            }
        }
        None => {
            if !d.pids.may_contain(pid) {
                return;
            }
            let left = d.with(|s| {
                let r = s.core.on_process_exited(pid);
                d.pids.remove(pid);
                r
            });
            if left.is_some() {
                flow::announce_processes(d);
            }
        }
    }
}
