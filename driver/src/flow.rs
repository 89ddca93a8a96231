//! Runs one intercepted operation through kcore: begin → FltSendMessage → complete → hold, then
//! sends queued notifications from a work item and logs fail-mode transitions.

use core::sync::atomic::Ordering;

use agentsh_kcore::breaker::Transition;
use agentsh_kcore::{Caller, QueryOutcome, Request, Step, Verdict, Why};
use agentsh_wire::{file, registry, response};

use crate::ffi;
use crate::kernel::{EventCode, PoolBox, debug, event_log, now_ms, try_zeroed};
use crate::state::Driver;

/// Largest request the driver sends.
const REQUEST_MAX: usize = if file::LEN > registry::LEN {
    file::LEN
} else {
    registry::LEN
};

/// How long one one-way notification may wait for the service to take it. A service that does not
/// read costs the work item this once per drain: the rest of that drain is dropped and counted.
pub const NOTIFY_TIMEOUT_MS: u32 = 50;

/// How a held thread waits for its final decision.
#[derive(Clone, Copy)]
pub enum Wait {
    /// A file operation: FltCancellableWaitForSingleObject on its callback data, so a cancelled
    /// I/O or a terminating thread is released at once.
    File(*mut ffi::FltCallbackData),
    /// A registry operation: an alertable UserMode wait, which thread termination interrupts.
    Registry,
}

/// The caller of the current operation (PASSIVE or APC level).
pub fn current_caller() -> Caller {
    // SAFETY: any IRQL; returns the current process id.
    let pid = unsafe { ffi::PsGetCurrentProcessId() } as usize as u32;
    // SAFETY: any IRQL; returns the current thread id.
    let tid = unsafe { ffi::PsGetCurrentThreadId() } as usize as u32;
    Caller { pid, tid }
}

/// Whether the current thread is being terminated.
pub fn thread_terminating() -> bool {
    // SAFETY: any IRQL; the current thread's ETHREAD, valid while it runs.
    let thread = unsafe { ffi::PsGetCurrentThread() };
    // SAFETY: any IRQL; `thread` is the current thread.
    unsafe { ffi::PsIsThreadTerminating(thread) != 0 }
}

/// Decides `req` for `caller`: true = allow. IRQL <= APC_LEVEL.
pub fn decide(d: &Driver, caller: Caller, req: &Request<'_>, wait: Wait) -> bool {
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
        Step::Query { token, timeout_ms } => query(d, caller, req, token, timeout_ms, wait),
    };
    log_transitions(d);
    allowed
}

fn after_quick_answer(d: &Driver, why: Why) {
    // Only these answers can have queued a notification (see KernelCore::begin); the work item
    // is scheduled only when something is waiting.
    if matches!(
        why,
        Why::Unsandboxed | Why::ReadNotQueried | Why::Cached | Why::FailOpen | Why::FailClosed
    ) {
        schedule_notifications(d);
    }
}

fn query(
    d: &Driver,
    caller: Caller,
    req: &Request<'_>,
    token: u64,
    timeout_ms: u32,
    wait: Wait,
) -> bool {
    let mut reply = [0u8; response::LEN];
    // The request lives in pool (a deep pre-create stack has no room for it); without memory the
    // query is not sent and the operation is denied: a local resource failure is never an allow.
    let Some(mut request) = try_zeroed(REQUEST_MAX) else {
        return false;
    };
    let encoded = d.with(|s| s.core.encode_request(caller, req, token, &mut request));
    let outcome_len = match encoded {
        Ok(len) => send(d, &request[..len], &mut reply, timeout_ms),
        Err(_) => Err(QueryOutcome::Error),
    };
    drop(request);
    let outcome = match outcome_len {
        Ok(n) => QueryOutcome::Reply(&reply[..n]),
        Err(o) => o,
    };
    let mut verdict = d.with(|s| s.core.complete(now_ms(), caller, req, token, outcome));
    if matches!(verdict, Verdict::Hold { .. }) {
        verdict = hold(d, caller, req, verdict, wait);
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
            d.filter(),
            d.client_port.get(),
            request.as_ptr().cast_mut().cast(),
            request.len() as u32,
            reply.as_mut_ptr().cast(),
            &mut reply_len,
            &timeout,
        )
    };
    if status == ffi::STATUS_SUCCESS {
        return Ok((reply_len as usize).min(reply.len()));
    }
    // A requester that is being killed is not the service failing: deny it, count nothing.
    if status == ffi::STATUS_THREAD_IS_TERMINATING || thread_terminating() {
        return Err(QueryOutcome::RequesterTerminating);
    }
    Err(match status {
        ffi::STATUS_TIMEOUT => QueryOutcome::Timeout,
        ffi::STATUS_PORT_DISCONNECTED | ffi::STATUS_INVALID_PARAMETER => {
            QueryOutcome::NotConnected
        }
        _ => QueryOutcome::Error,
    })
}

/// Holds the thread until the final decision arrives, the deadline passes, or the thread is
/// being terminated (released at once and denied).
fn hold(d: &Driver, caller: Caller, req: &Request<'_>, first: Verdict, wait: Wait) -> Verdict {
    let Verdict::Hold { ticket, .. } = first else {
        return first;
    };
    // The event is in pool, not on the stack: a UserMode wait lets the kernel page the stack out.
    let event = match PoolBox::try_new(ffi::KEvent([0; 24])) {
        Some(e) if !d.stopping.load(Ordering::Acquire) => e,
        _ => return d.with(|s| s.core.abandon_hold(ticket)),
    };
    // SAFETY: PASSIVE/APC level; `event` is non-paged pool owned by this function.
    unsafe { ffi::KeInitializeEvent(event.as_ptr(), ffi::NOTIFICATION_EVENT, 0) };
    let registered = d.with(|s| {
        if s.holds.try_reserve(1).is_err() {
            return None;
        }
        s.holds.push((ticket, event.as_ptr()));
        Some(s.core.hold_status(now_ms(), caller, req, ticket))
    });
    let Some(mut verdict) = registered else {
        return d.with(|s| s.core.abandon_hold(ticket));
    };
    while let Verdict::Hold { deadline, .. } = verdict {
        let wait_ms = deadline.saturating_sub(now_ms()).max(1);
        let timeout = -(wait_ms as i64 * 10_000);
        let status = match wait {
            // SAFETY: IRQL <= APC_LEVEL; our event; `data` is this operation's callback data.
            Wait::File(data) => unsafe {
                ffi::FltCancellableWaitForSingleObject(event.as_ptr().cast(), &timeout, data)
            },
            // SAFETY: PASSIVE_LEVEL (registry pre-notification); UserMode, alertable wait on an
            // event in non-paged pool.
            Wait::Registry => unsafe {
                ffi::KeWaitForSingleObject(event.as_ptr().cast(), 0, 1, 1, &timeout)
            },
        };
        verdict = if status == ffi::STATUS_SUCCESS || status == ffi::STATUS_TIMEOUT {
            d.with(|s| s.core.hold_status(now_ms(), caller, req, ticket))
        } else {
            // STATUS_USER_APC, STATUS_ALERTED, STATUS_CANCELLED, STATUS_THREAD_IS_TERMINATING:
            // the thread is being torn down or its I/O cancelled. Release it, denied.
            d.with(|s| s.core.abandon_hold(ticket))
        };
    }
    d.with(|s| s.holds.retain(|(t, _)| *t != ticket));
    // Removed from `holds` under the mutex, so no waker can still reach it: `event` drops here.
    drop(event);
    verdict
}

/// Wakes the thread holding `ticket` (called with the mutex held).
pub fn wake(holds: &[(u32, *mut ffi::KEvent)], ticket: u32) {
    for &(t, event) in holds {
        if t == ticket {
            // SAFETY: IRQL <= DISPATCH_LEVEL; the event stays allocated while it is in `holds`.
            unsafe { ffi::KeSetEvent(event, 0, 0) };
        }
    }
}

/// Wakes every held thread (called with the mutex held); each then polls its own hold.
pub fn wake_all(holds: &[(u32, *mut ffi::KEvent)]) {
    for &(_, event) in holds {
        // SAFETY: IRQL <= DISPATCH_LEVEL; the event stays allocated while it is in `holds`.
        unsafe { ffi::KeSetEvent(event, 0, 0) };
    }
}

/// A session process started or exited: its announcement to the service waits in the
/// notification queue; send it from a work item (never from the process notify routine).
pub fn announce_processes(d: &Driver) {
    schedule_notifications(d);
}

/// Queues one work item that drains the notification queue, unless one is already queued or
/// nothing is waiting.
fn schedule_notifications(d: &Driver) {
    if !d.with(|s| s.core.has_notifications()) {
        return;
    }
    if d.notify_queued.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let item = unsafe { ffi::FltAllocateGenericWorkItem() };
    if item.is_null() {
        d.notify_queued.store(false, Ordering::Release);
        return;
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL; the filter is registered; DelayedWorkQueue (1). Filter
    // Manager keeps the filter alive until the item has run.
    let status =
        unsafe { ffi::FltQueueGenericWorkItem(item, d.filter(), drain_notifications, 1, item) };
    if !ffi::nt_success(status) {
        // SAFETY: the item was not queued, so it is still ours to free.
        unsafe { ffi::FltFreeGenericWorkItem(item) };
        d.notify_queued.store(false, Ordering::Release);
    }
}

/// Work item: sends every queued notification one-way (ReplyLength 0) at PASSIVE_LEVEL, each with
/// a short timeout; after one timeout the rest of the queue is dropped (and counted), so a service
/// that does not read never ties up a system worker for long.
unsafe extern "system" fn drain_notifications(
    item: ffi::Pvoid,
    _flt: ffi::Pvoid,
    _ctx: ffi::Pvoid,
) {
    if let Some(d) = Driver::get()
        && let Some(_guard) = d.enter()
    {
        d.notify_queued.store(false, Ordering::Release);
        // A fresh worker stack has room for one message.
        let mut buf = [0u8; agentsh_kcore::notify::Outgoing::MAX_LEN];
        let timeout = -(i64::from(NOTIFY_TIMEOUT_MS) * 10_000);
        while let Some(n) = d.with(|s| s.core.next_notification()) {
            let Ok(len) = n.emit(&mut buf) else {
                continue;
            };
            drop(n);
            // SAFETY: PASSIVE_LEVEL; one-way message (no reply buffer); `buf` outlives the call.
            let status = unsafe {
                ffi::FltSendMessage(
                    d.filter(),
                    d.client_port.get(),
                    buf.as_mut_ptr().cast(),
                    len as u32,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    &timeout,
                )
            };
            if status != ffi::STATUS_SUCCESS {
                let dropped = d.with(|s| s.core.drop_notifications());
                debug!("notification not delivered: status {status:#x}; {dropped} more dropped");
                break;
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
