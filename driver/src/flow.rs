//! Runs one intercepted operation through kcore: begin → FltSendMessage → complete → hold, then
//! sends queued notifications from a work item and logs fail-mode transitions.

use alloc::boxed::Box;
use alloc::vec;

use agentsh_kcore::breaker::Transition;
use agentsh_kcore::{Caller, QueryOutcome, Request, Step, Verdict, Why};
use agentsh_wire::{file, registry, response};

use crate::ffi;
use crate::kernel::{EventCode, debug, event_log, now_ms};
use crate::state::Driver;

/// Largest request the driver sends.
const REQUEST_MAX: usize = if file::LEN > registry::LEN {
    file::LEN
} else {
    registry::LEN
};

/// The caller of the current operation (PASSIVE or APC level).
pub fn current_caller() -> Caller {
    // SAFETY: any IRQL; returns the current process id.
    let pid = unsafe { ffi::PsGetCurrentProcessId() } as usize as u32;
    // SAFETY: any IRQL; returns the current thread id.
    let tid = unsafe { ffi::PsGetCurrentThreadId() } as usize as u32;
    Caller { pid, tid }
}

/// Decides `req` for `caller`: true = allow. IRQL <= APC_LEVEL.
pub fn decide(d: &Driver, caller: Caller, req: &Request<'_>) -> bool {
    let step = d.with(|s| s.core.begin(now_ms(), caller, req));
    let allowed = match step {
        Step::Allow(why) => {
            after_quick_answer(d, why);
            true
        }
        Step::Deny(why) => {
            after_quick_answer(d, why);
            false
        }
        Step::Query { token, timeout_ms } => query(d, caller, req, token, timeout_ms),
    };
    log_transitions(d);
    allowed
}

fn after_quick_answer(d: &Driver, why: Why) {
    // Only these answers can have queued a notification (see KernelCore::begin).
    if matches!(
        why,
        Why::Unsandboxed | Why::ReadNotQueried | Why::Cached | Why::FailOpen | Why::FailClosed
    ) {
        schedule_notifications(d);
    }
}

fn query(d: &Driver, caller: Caller, req: &Request<'_>, token: u64, timeout_ms: u32) -> bool {
    let mut request = vec![0u8; REQUEST_MAX];
    let mut reply = [0u8; response::LEN];
    let encoded = d.with(|s| s.core.encode_request(caller, req, token, &mut request));
    let outcome_len = match encoded {
        Ok(len) => send(d, &request[..len], &mut reply, timeout_ms),
        Err(_) => Err(QueryOutcome::Error),
    };
    let outcome = match outcome_len {
        Ok(n) => QueryOutcome::Reply(&reply[..n]),
        Err(o) => o,
    };
    let mut verdict = d.with(|s| s.core.complete(now_ms(), caller, req, token, outcome));
    if matches!(verdict, Verdict::Hold { .. }) {
        verdict = hold(d, caller, req, verdict);
    }
    schedule_notifications(d);
    match verdict {
        Verdict::Allow(_) => true,
        Verdict::Deny(_) => false,
        Verdict::Hold { .. } => false,
    }
}

/// FltSendMessage with a relative timeout; STATUS_TIMEOUT is a success code that means no answer.
fn send(
    d: &Driver,
    request: &[u8],
    reply: &mut [u8],
    timeout_ms: u32,
) -> Result<usize, QueryOutcome<'static>> {
    let timeout = -(i64::from(timeout_ms) * 10_000);
    let mut reply_len = reply.len() as u32;
    // SAFETY: IRQL <= APC_LEVEL; buffers outlive the call; `client_port` is the address of the
    // stored client port, which FltCloseClientPort nulls under Filter Manager's own lock.
    let status = unsafe {
        ffi::FltSendMessage(
            d.filter,
            d.client_port.get(),
            request.as_ptr().cast_mut().cast(),
            request.len() as u32,
            reply.as_mut_ptr().cast(),
            &mut reply_len,
            &timeout,
        )
    };
    match status {
        ffi::STATUS_SUCCESS => Ok((reply_len as usize).min(reply.len())),
        ffi::STATUS_TIMEOUT => Err(QueryOutcome::Timeout),
        ffi::STATUS_PORT_DISCONNECTED | ffi::STATUS_INVALID_PARAMETER => {
            Err(QueryOutcome::NotConnected)
        }
        _ => Err(QueryOutcome::Error),
    }
}

/// Holds the thread until the final decision arrives or the deadline passes.
fn hold(d: &Driver, caller: Caller, req: &Request<'_>, first: Verdict) -> Verdict {
    let Verdict::Hold { ticket, .. } = first else {
        return first;
    };
    let event = Box::into_raw(Box::new(ffi::KEvent([0; 24])));
    // SAFETY: PASSIVE/APC level; `event` is non-paged pool owned by this function.
    unsafe { ffi::KeInitializeEvent(event, ffi::NOTIFICATION_EVENT, 0) };
    let mut verdict = d.with(|s| {
        s.holds.push((ticket, event));
        s.core.hold_status(now_ms(), caller, req, ticket)
    });
    while let Verdict::Hold { deadline, .. } = verdict {
        let wait_ms = deadline.saturating_sub(now_ms()).max(1);
        let timeout = -(wait_ms as i64 * 10_000);
        // SAFETY: IRQL <= APC_LEVEL; KernelMode, non-alertable wait on our event with a timeout.
        unsafe { ffi::KeWaitForSingleObject(event.cast(), 0, 0, 0, &timeout) };
        verdict = d.with(|s| s.core.hold_status(now_ms(), caller, req, ticket));
    }
    d.with(|s| s.holds.retain(|(t, _)| *t != ticket));
    // SAFETY: removed from `holds` under the mutex, so no waker can still reach it.
    drop(unsafe { Box::from_raw(event) });
    verdict
}

/// Wakes the thread holding `ticket` (called with the mutex held by the message callback).
pub fn wake(holds: &[(u32, *mut ffi::KEvent)], ticket: u32) {
    for &(t, event) in holds {
        if t == ticket {
            // SAFETY: IRQL <= DISPATCH_LEVEL; the event stays allocated while it is in `holds`.
            unsafe { ffi::KeSetEvent(event, 0, 0) };
        }
    }
}

/// A session process started or exited: its announcement to the service waits in the
/// notification queue; send it from a work item (never from the process notify routine).
pub fn announce_processes(d: &Driver) {
    schedule_notifications(d);
}

/// Queues one work item that drains the notification queue, unless one is already queued.
fn schedule_notifications(d: &Driver) {
    if d.notify_queued
        .swap(true, core::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let item = unsafe { ffi::FltAllocateGenericWorkItem() };
    if item.is_null() {
        d.notify_queued
            .store(false, core::sync::atomic::Ordering::Release);
        return;
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL; the filter is registered; DelayedWorkQueue (1). Filter
    // Manager keeps the filter alive until the item has run.
    let status =
        unsafe { ffi::FltQueueGenericWorkItem(item, d.filter, drain_notifications, 1, item) };
    if !ffi::nt_success(status) {
        // SAFETY: the item was not queued, so it is still ours to free.
        unsafe { ffi::FltFreeGenericWorkItem(item) };
        d.notify_queued
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// Work item: sends every queued notification one-way (ReplyLength 0) at PASSIVE_LEVEL.
unsafe extern "system" fn drain_notifications(
    item: ffi::Pvoid,
    _flt: ffi::Pvoid,
    _ctx: ffi::Pvoid,
) {
    if let Some(d) = Driver::get()
        && let Some(_guard) = d.enter()
    {
        d.notify_queued
            .store(false, core::sync::atomic::Ordering::Release);
        let mut buf = vec![0u8; agentsh_kcore::notify::Outgoing::MAX_LEN];
        while let Some(n) = d.with(|s| s.core.next_notification()) {
            let Ok(len) = n.emit(&mut buf) else {
                continue;
            };
            let timeout =
                -(i64::from(d.with(|s| s.core.config().policy_query_timeout_ms)) * 10_000);
            // SAFETY: PASSIVE_LEVEL; one-way message (no reply buffer); `buf` outlives the call.
            let status = unsafe {
                ffi::FltSendMessage(
                    d.filter,
                    d.client_port.get(),
                    buf.as_mut_ptr().cast(),
                    len as u32,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    &timeout,
                )
            };
            if status != ffi::STATUS_SUCCESS {
                debug!("notification not delivered: status {status:#x}");
            }
        }
    }
    // SAFETY: PASSIVE_LEVEL; the item was allocated by schedule_notifications and has run.
    unsafe { ffi::FltFreeGenericWorkItem(item) };
}

/// Writes fail-mode transitions to the debugger and the Event Log.
pub fn log_transitions(d: &Driver) {
    while let Some(t) = d.with(|s| s.core.take_transition()) {
        let (code, text) = match t {
            Transition::TrippedByFailures { .. } => (
                EventCode::FailModeTripped,
                "fail mode engaged: consecutive policy query failures",
            ),
            Transition::TrippedByDisconnect => (
                EventCode::FailModeTripped,
                "fail mode engaged: the agentsh service disconnected",
            ),
            Transition::Recovered => (
                EventCode::FailModeRecovered,
                "fail mode cleared: the agentsh service answers again",
            ),
        };
        debug!("{text}");
        event_log(d.driver_object, code, ffi::STATUS_SUCCESS, text);
    }
}
