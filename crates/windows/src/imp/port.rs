//! Filter communication port client: connect, several outstanding overlapped `FilterGetMessage`
//! calls completed through an I/O completion port, `FilterReplyMessage` and `FilterSendMessage`.

use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr::{null, null_mut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Win32::Foundation::{
    ERROR_ABANDONED_WAIT_0, ERROR_INVALID_HANDLE, ERROR_OPERATION_ABORTED, HANDLE, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FILTER_MESSAGE_HEADER, FILTER_REPLY_HEADER, FilterConnectCommunicationPort, FilterGetMessage,
    FilterReplyMessage, FilterSendMessage,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetQueuedCompletionStatus, OVERLAPPED,
};
use windows_sys::Win32::System::Threading::INFINITE;

use super::util::{last_error, owned, wide};
use crate::port::{HResult, KernelMessage, MESSAGE_HEADER_LEN, PortError};

/// `HRESULT_FROM_WIN32(ERROR_IO_PENDING)`: the get was queued.
const HR_IO_PENDING: i32 = 0x8007_03E5_u32 as i32;

/// A connection to the driver's port. Closing the handle (drop) disconnects; the driver then sees
/// its disconnect callback and applies its fail mode.
#[derive(Debug)]
pub struct FilterPort {
    handle: OwnedHandle,
    name: String,
    pumping: AtomicBool,
}

// The port handle is used from several threads at once (replies while a pump waits); the filter
// manager serialises per call, and FilterPort keeps no other state than the atomic.

impl FilterPort {
    /// Connects to `name` (e.g. [`crate::port::PORT_NAME`]) passing `context` to the driver's connect
    /// callback. The handle is opened for overlapped I/O.
    pub fn connect(name: &str, context: &[u8]) -> Result<Arc<Self>, PortError> {
        let wname = wide(name);
        let context_len = u16::try_from(context.len()).map_err(|_| PortError::Call {
            port: name.to_owned(),
            operation: "FilterConnectCommunicationPort (context larger than 65535 bytes)",
            code: HResult(0x8007_0057_u32 as i32),
        })?;
        let mut raw: HANDLE = null_mut();
        // No context is NULL, not a dangling pointer with a size of 0.
        let context_ptr = if context.is_empty() {
            null()
        } else {
            context.as_ptr().cast()
        };
        // SAFETY: every pointer is valid for the call (or NULL with a size of 0); `raw` receives
        // the port handle.
        let hr = unsafe {
            FilterConnectCommunicationPort(
                wname.as_ptr(),
                0,
                context_ptr,
                context_len,
                null(),
                &mut raw,
            )
        };
        if hr < 0 {
            return Err(PortError::from_connect(name, HResult(hr)));
        }
        let handle = owned(raw).ok_or_else(|| PortError::Closed {
            port: name.to_owned(),
        })?;
        Ok(Arc::new(FilterPort {
            handle,
            name: name.to_owned(),
            pumping: AtomicBool::new(false),
        }))
    }

    /// The port's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn raw(&self) -> HANDLE {
        self.handle.as_raw_handle()
    }

    fn call_error(&self, operation: &'static str, hr: i32) -> PortError {
        PortError::Call {
            port: self.name.clone(),
            operation,
            code: HResult(hr),
        }
    }

    /// `FilterSendMessage`: sends `input`, returns how many bytes of `output` the driver filled.
    pub fn send(&self, input: &[u8], output: &mut [u8]) -> Result<usize, PortError> {
        let in_len = u32::try_from(input.len())
            .map_err(|_| self.call_error("FilterSendMessage", 0x8007_0057_u32 as i32))?;
        let out_len = u32::try_from(output.len())
            .map_err(|_| self.call_error("FilterSendMessage", 0x8007_0057_u32 as i32))?;
        let mut returned = 0u32;
        // SAFETY: input and output are valid for their lengths for the duration of the call.
        let hr = unsafe {
            FilterSendMessage(
                self.raw(),
                input.as_ptr().cast(),
                in_len,
                output.as_mut_ptr().cast(),
                out_len,
                &mut returned,
            )
        };
        if hr < 0 {
            return Err(self.call_error("FilterSendMessage", hr));
        }
        Ok(returned as usize)
    }

    /// `FilterReplyMessage` to the message `message_id` with an NTSTATUS and the reply bytes.
    pub fn reply(&self, message_id: u64, status: i32, reply: &[u8]) -> Result<(), PortError> {
        let buffer = crate::port::encode_reply(message_id, status, reply);
        debug_assert!(buffer.len() >= size_of::<FILTER_REPLY_HEADER>());
        let len = u32::try_from(buffer.len())
            .map_err(|_| self.call_error("FilterReplyMessage", 0x8007_0057_u32 as i32))?;
        // SAFETY: `buffer` starts with a FILTER_REPLY_HEADER layout and is valid for `len` bytes.
        let hr = unsafe { FilterReplyMessage(self.raw(), buffer.as_ptr().cast(), len) };
        if hr < 0 {
            return Err(self.call_error("FilterReplyMessage", hr));
        }
        Ok(())
    }

    /// Starts `outstanding` overlapped gets of `buffer_len` bytes each (header included). Only one
    /// pump per connection: the handle can belong to one completion port.
    pub fn pump(
        self: &Arc<Self>,
        outstanding: usize,
        buffer_len: usize,
    ) -> Result<MessagePump, PortError> {
        if self.pumping.swap(true, Ordering::SeqCst) {
            return Err(self.call_error(
                "second message pump on one connection",
                0x8007_00AA_u32 as i32,
            ));
        }
        // SAFETY: associates the port handle with a new completion port; no pointers are passed.
        let iocp = unsafe { CreateIoCompletionPort(self.raw(), null_mut(), 0, 1) };
        let iocp = owned(iocp).ok_or_else(|| {
            let (code, _) = last_error();
            self.call_error(
                "CreateIoCompletionPort",
                (0x8007_0000 | (code & 0xFFFF)) as i32,
            )
        })?;
        let mut pump = MessagePump {
            port: Arc::clone(self),
            iocp,
            slots: (0..outstanding.max(1))
                .map(|_| {
                    Box::new(Slot {
                        // SAFETY: OVERLAPPED is plain data; all-zero is its documented initial state.
                        overlapped: unsafe { std::mem::zeroed() },
                        buffer: vec![0; buffer_len.max(MESSAGE_HEADER_LEN + 8)],
                        pending: false,
                    })
                })
                .collect(),
        };
        for index in 0..pump.slots.len() {
            pump.issue(index)?;
        }
        Ok(pump)
    }
}

/// One outstanding get: its OVERLAPPED must stay at a fixed address until it completes, hence the box.
#[repr(C)]
struct Slot {
    overlapped: OVERLAPPED,
    buffer: Vec<u8>,
    pending: bool,
}

/// Keeps several `FilterGetMessage` calls outstanding and hands out messages as they complete.
pub struct MessagePump {
    port: Arc<FilterPort>,
    iocp: OwnedHandle,
    slots: Vec<Box<Slot>>,
}

impl std::fmt::Debug for MessagePump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagePump")
            .field("port", &self.port.name)
            .field(
                "outstanding",
                &self.slots.iter().filter(|s| s.pending).count(),
            )
            .finish()
    }
}

impl MessagePump {
    fn issue(&mut self, index: usize) -> Result<(), PortError> {
        let port = self.port.raw();
        let slot = &mut self.slots[index];
        // SAFETY: OVERLAPPED is plain data; it is reset before reuse as the API requires.
        slot.overlapped = unsafe { std::mem::zeroed() };
        let len = u32::try_from(slot.buffer.len()).unwrap_or(u32::MAX);
        let buffer: *mut FILTER_MESSAGE_HEADER = slot.buffer.as_mut_ptr().cast();
        // SAFETY: the boxed slot (buffer and OVERLAPPED) stays alive and unmoved until the get
        // completes: `next` and `drop` wait for the completion before reusing or freeing it.
        let hr = unsafe { FilterGetMessage(port, buffer, len, &mut slot.overlapped) };
        if hr < 0 && hr != HR_IO_PENDING {
            return Err(self.port.call_error("FilterGetMessage", hr));
        }
        slot.pending = true;
        Ok(())
    }

    /// Issues a get on every slot that has none outstanding (one whose re-issue failed earlier).
    /// An error only when no get is outstanding at all afterwards: then nothing could arrive.
    fn refill(&mut self) -> Result<(), PortError> {
        let mut first_error = None;
        for index in 0..self.slots.len() {
            if !self.slots[index].pending
                && let Err(e) = self.issue(index)
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) if !self.slots.iter().any(|s| s.pending) => Err(e),
            _ => Ok(()),
        }
    }

    /// Waits up to `timeout_ms` (None: forever) for the next message; `Ok(None)` on timeout. A
    /// completion that belongs to no get is ignored (`Ok(None)`); a get that cannot be issued
    /// again is retried on the next call, so the pump never runs out of outstanding gets silently.
    pub fn next(&mut self, timeout_ms: Option<u32>) -> Result<Option<KernelMessage>, PortError> {
        self.refill()?;
        let mut bytes = 0u32;
        let mut key = 0usize;
        let mut overlapped: *mut OVERLAPPED = null_mut();
        // SAFETY: out-pointers are valid locals; the completion port handle is owned by self.
        let ok = unsafe {
            GetQueuedCompletionStatus(
                self.iocp.as_raw_handle(),
                &mut bytes,
                &mut key,
                &mut overlapped,
                timeout_ms.unwrap_or(INFINITE),
            )
        };
        if ok == 0 && overlapped.is_null() {
            let (code, _) = last_error();
            if code == WAIT_TIMEOUT {
                return Ok(None);
            }
            if code == ERROR_ABANDONED_WAIT_0 || code == ERROR_INVALID_HANDLE {
                return Err(PortError::Closed {
                    port: self.port.name.clone(),
                });
            }
            return Err(self.port.call_error(
                "GetQueuedCompletionStatus",
                (0x8007_0000 | (code & 0xFFFF)) as i32,
            ));
        }
        let Some(index) = self
            .slots
            .iter()
            .position(|s| std::ptr::eq(&s.overlapped, overlapped))
        else {
            // Not one of our gets (a packet some other call posted): nothing to deliver.
            tracing::debug!("ignoring a completion that belongs to no outstanding get");
            return Ok(None);
        };
        self.slots[index].pending = false;
        if ok == 0 {
            let (code, _) = last_error();
            if code == ERROR_OPERATION_ABORTED || code == ERROR_INVALID_HANDLE {
                return Err(PortError::Closed {
                    port: self.port.name.clone(),
                });
            }
            let hr = (0x8007_0000 | (code & 0xFFFF)) as i32;
            // A failed re-issue leaves the slot empty; `refill` tries it again next time.
            let _ = self.issue(index);
            return Err(self.port.call_error("FilterGetMessage", hr));
        }
        let len = crate::port::received_len(bytes as usize, &self.slots[index].buffer);
        let message = KernelMessage::parse(&self.port.name, &self.slots[index].buffer[..len]);
        let _ = self.issue(index);
        message.map(Some)
    }
}

impl Drop for MessagePump {
    fn drop(&mut self) {
        // SAFETY: cancels this process's I/O on the port handle; no pointers are passed.
        unsafe { CancelIoEx(self.port.raw(), null()) };
        // Every cancelled get still posts a completion; wait for each before the slots are freed.
        while self.slots.iter().any(|s| s.pending) {
            let mut bytes = 0u32;
            let mut key = 0usize;
            let mut overlapped: *mut OVERLAPPED = null_mut();
            // SAFETY: out-pointers are valid locals; the completion port is still owned.
            let ok = unsafe {
                GetQueuedCompletionStatus(
                    self.iocp.as_raw_handle(),
                    &mut bytes,
                    &mut key,
                    &mut overlapped,
                    5_000,
                )
            };
            if overlapped.is_null() {
                // Timeout or a closed completion port: leak the buffers rather than free memory the
                // filter manager may still write.
                let _ = ok;
                std::mem::forget(std::mem::take(&mut self.slots));
                break;
            }
            if let Some(slot) = self
                .slots
                .iter_mut()
                .find(|s| std::ptr::eq(&s.overlapped, overlapped))
            {
                slot.pending = false;
            }
        }
    }
}
