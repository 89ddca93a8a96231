//! The `\AgentshPort` callbacks: one client (admins/SYSTEM only, by the port's security
//! descriptor), its process excluded on request, and every user → kernel message handled by kcore
//! after an exception-guarded copy out of the caller's user-mode buffer.

use agentsh_wire::control::ControlRepr;

use crate::broker;
use crate::ffi::{self, Pvoid};
use crate::flow::{log_transitions, wake, wake_all};
use crate::kernel::{EventCode, debug, event_log, try_zeroed};
use crate::state::Driver;

/// Largest SendResult written (control answers are far smaller).
const MESSAGE_MAX: usize = 4096;
/// Largest user → kernel message accepted: SetReadScope, the one variable-length message, is
/// the largest; kcore validates every message whatever its length.
const INPUT_MAX: usize = agentsh_wire::scope::MAX_LEN;
/// MM_USER_PROBE_ADDRESS on x64: user buffers end below it.
const USER_PROBE_ADDRESS: usize = 0x7FFF_FFFF_0000;

// Copies `len` bytes between a user-mode and a kernel buffer under a structured exception
// handler: a fault (unmapped or freed user page) returns STATUS_ACCESS_VIOLATION instead of
// crashing. The scope table entry makes __C_specific_handler resume at the fault label.
core::arch::global_asm!(
    ".text",
    ".globl agentsh_guarded_copy",
    ".def agentsh_guarded_copy; .scl 2; .type 32; .endef",
    ".seh_proc agentsh_guarded_copy",
    ".seh_handler __C_specific_handler, @except",
    "agentsh_guarded_copy:",
    "push rsi",
    ".seh_pushreg rsi",
    "push rdi",
    ".seh_pushreg rdi",
    "sub rsp, 40",
    ".seh_stackalloc 40",
    ".seh_endprologue",
    "mov rdi, rcx",
    "mov rsi, rdx",
    "mov rcx, r8",
    "agentsh_guarded_copy_try:",
    "rep movsb",
    "agentsh_guarded_copy_try_end:",
    "nop",
    "xor eax, eax",
    "jmp agentsh_guarded_copy_out",
    "agentsh_guarded_copy_fault:",
    "mov eax, 0xC0000005",
    "agentsh_guarded_copy_out:",
    "add rsp, 40",
    "pop rdi",
    "pop rsi",
    "ret",
    ".seh_handlerdata",
    ".long 1",
    ".rva agentsh_guarded_copy_try",
    ".rva agentsh_guarded_copy_try_end",
    ".long 1",
    ".rva agentsh_guarded_copy_fault",
    ".text",
    ".seh_endproc",
);

unsafe extern "C" {
    fn agentsh_guarded_copy(dst: *mut u8, src: *const u8, len: usize) -> ffi::NtStatus;
}

fn is_user_range(addr: usize, len: usize) -> bool {
    addr.checked_add(len)
        .is_some_and(|end| end <= USER_PROBE_ADDRESS)
}

/// Connect: records the client port; kcore refuses a second client. PASSIVE_LEVEL, in the context
/// of the connecting process.
pub unsafe extern "system" fn on_connect(
    client_port: Pvoid,
    _server_cookie: Pvoid,
    _context: Pvoid,
    _context_len: u32,
    _connection_cookie: *mut Pvoid,
) -> ffi::NtStatus {
    let Some(d) = Driver::get() else {
        return ffi::STATUS_ACCESS_DENIED;
    };
    // SAFETY: PASSIVE_LEVEL; the id of the connecting process.
    let pid = unsafe { ffi::PsGetCurrentProcessId() } as usize as u32;
    let accepted = d.with(|s| {
        let ok = s.core.on_client_connected(pid).is_ok();
        if ok {
            // SAFETY: the mutex is held; the connect callback is the only writer of a new port.
            unsafe { d.client_port.get().write(client_port) };
        }
        ok
    });
    debug!(
        "client {pid} {}",
        if accepted { "connected" } else { "refused" }
    );
    if !accepted {
        return ffi::STATUS_ACCESS_DENIED;
    }
    // Filter Manager attaches to the mounted volumes when filtering starts, before any service
    // can connect: a load with no instance by now (typically another filter at the same altitude,
    // STATUS_FLT_INSTANCE_ALTITUDE_COLLISION, which never reaches InstanceSetup) enforces no file
    // rule, and says so on every connection of the service.
    if d.filtering.load(core::sync::atomic::Ordering::Acquire)
        && d.instances.load(core::sync::atomic::Ordering::Acquire) == 0
    {
        event_log(
            d.driver_object,
            EventCode::NoInstance,
            ffi::STATUS_SUCCESS,
            "no volume instance attached since the driver loaded",
        );
    }
    ffi::STATUS_SUCCESS
}

/// Disconnect: closes the client port, forgets exclusion and cache, denies held operations.
pub unsafe extern "system" fn on_disconnect(_connection_cookie: Pvoid) {
    let Some(d) = Driver::get() else {
        return;
    };
    disconnect(d);
}

/// Shared by the disconnect callback and unload. PASSIVE_LEVEL.
pub fn disconnect(d: &Driver) {
    // SAFETY: PASSIVE_LEVEL; closes and nulls the stored client port (no-op when null).
    unsafe { ffi::FltCloseClientPort(d.filter(), d.client_port.get()) };
    d.with(|s| {
        // Every hold is now denied; wake them all (each polls its own hold).
        s.core.on_client_disconnected();
        wake_all(&s.holds);
    });
    debug!("client disconnected");
    log_transitions(d);
}

/// Message: copies the input out of user memory, lets kcore handle it, copies the SendResult back.
pub unsafe extern "system" fn on_message(
    _connection_cookie: Pvoid,
    input: Pvoid,
    input_len: u32,
    output: Pvoid,
    output_len: u32,
    returned: *mut u32,
) -> ffi::NtStatus {
    let Some(d) = Driver::get() else {
        return ffi::STATUS_INVALID_PARAMETER;
    };
    let Some(_guard) = d.enter() else {
        return ffi::STATUS_INVALID_PARAMETER;
    };
    let (in_len, out_len) = (input_len as usize, output_len as usize);
    if input.is_null()
        || in_len > INPUT_MAX
        || !is_user_range(input as usize, in_len)
        || (!output.is_null() && !is_user_range(output as usize, out_len))
        || returned.is_null()
    {
        return ffi::STATUS_INVALID_PARAMETER;
    }
    let Some(mut message) = try_zeroed(in_len) else {
        return ffi::STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: PASSIVE_LEVEL; `input` lies in user space (checked) and faults are caught by the
    // copy routine's exception handler; `message` has `in_len` bytes.
    let status = unsafe { agentsh_guarded_copy(message.as_mut_ptr(), input.cast(), in_len) };
    if status != ffi::STATUS_SUCCESS {
        return status;
    }
    let Some(mut result) = try_zeroed(out_len.min(MESSAGE_MAX)) else {
        return ffi::STATUS_INSUFFICIENT_RESOURCES;
    };
    let registered_root = match ControlRepr::decode(&message) {
        Ok(ControlRepr::RegisterSession {
            root_process_id, ..
        }) => Some(root_process_id),
        _ => None,
    };
    let handled = d.with(|s| {
        let r = s.core.on_user_message(&message, &mut result);
        if let Some(ticket) = r.wake {
            wake(&s.holds, ticket);
        }
        // A session may have started or ended; the configuration may have changed.
        d.pids.sync(s);
        d.config_flags
            .store(s.core.config().flags, core::sync::atomic::Ordering::Release);
        r
    });
    log_transitions(d);
    if let Some(root) = registered_root {
        broker::record_session_root(d, root);
    }
    if handled.written > 0 && !output.is_null() {
        // SAFETY: `output` lies in user space (checked) with `out_len` >= written bytes; faults are
        // caught by the copy routine.
        let status =
            unsafe { agentsh_guarded_copy(output.cast(), result.as_ptr(), handled.written) };
        if status != ffi::STATUS_SUCCESS {
            return status;
        }
    }
    // SAFETY: `returned` is Filter Manager's kernel-mode out parameter (checked non-null).
    unsafe { returned.write(handled.written as u32) };
    ffi::STATUS_SUCCESS
}
