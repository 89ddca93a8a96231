//! Kernel services wrapped once: pool allocator, bug-checking panic handler, clock, debug output
//! and Event Log entries.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::{self, Write};

use crate::ffi;

/// Pool tag of every allocation made by agentsh.sys ("AgSh" in pool dumps).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"AgSh");

/// Bug-check code raised by a panic (a driver-defined code; parameters: line, column).
const BUGCHECK_AGENTSH_PANIC: u32 = 0x4147_5348;

struct PoolAllocator;

// SAFETY: ExAllocatePool2 returns non-paged memory aligned to 16 bytes or null; larger
// alignments are refused (null), which GlobalAlloc permits.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL (every caller allocates at PASSIVE or APC level);
        // non-paged pool, zeroed by ExAllocatePool2.
        unsafe { ffi::ExAllocatePool2(ffi::POOL_FLAG_NON_PAGED, layout.size().max(1), POOL_TAG) }
            .cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with the same tag; IRQL <= DISPATCH_LEVEL.
        unsafe { ffi::ExFreePoolWithTag(ptr.cast(), POOL_TAG) }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (line, column) = info.location().map_or((0, 0), |l| (l.line(), l.column()));
    // SAFETY: any IRQL; a panic is a broken invariant and stopping the machine is the only safe
    // continuation for a security driver.
    unsafe { ffi::KeBugCheckEx(BUGCHECK_AGENTSH_PANIC, line as usize, column as usize, 0, 0) }
}

/// Monotonic milliseconds since boot (interrupt time, unaffected by clock changes).
pub fn now_ms() -> u64 {
    // `QpcTimeStamp` is `_Out_` (mandatory): the routine stores the performance counter there.
    let mut qpc = 0u64;
    // SAFETY: any IRQL; `qpc` is a valid, writable local for the call.
    let hundred_ns = unsafe { ffi::KeQueryInterruptTimePrecise(&mut qpc) };
    hundred_ns / 10_000
}

/// A seed for kcore's hash keys, drawn at load.
pub fn seed() -> u64 {
    // SAFETY: any IRQL; `PerformanceFrequency` is `_Out_opt_`, so null is allowed.
    let pc = unsafe { ffi::KeQueryPerformanceCounter(core::ptr::null_mut()) } as u64;
    pc.rotate_left(29) ^ now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A small fixed buffer so formatting never allocates.
struct LineBuf {
    buf: [u8; 160],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len + 1 >= self.buf.len() {
                break;
            }
            self.buf[self.len] = if b == 0 { b'?' } else { b };
            self.len += 1;
        }
        Ok(())
    }
}

/// DbgPrint one line prefixed with `agentsh: ` (visible in DebugView with kernel capture on).
pub fn debug_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; 160],
        len: 0,
    };
    let _ = line.write_fmt(args);
    line.buf[line.len] = 0;
    // SAFETY: IRQL <= DIRQL; "%s" consumes exactly the one NUL-terminated argument passed.
    unsafe { ffi::DbgPrint(c"agentsh: %s\n".as_ptr().cast(), line.buf.as_ptr()) };
}

macro_rules! debug {
    ($($t:tt)*) => { $crate::kernel::debug_line(format_args!($($t)*)) };
}
pub(crate) use debug;

/// Event Log message codes (customer bit set; the insertion string carries the text).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum EventCode {
    LoadFailed = 0xE000_0001,
    FailModeTripped = 0xA000_0002,
    FailModeRecovered = 0x6000_0003,
    NoInstance = 0xA000_0004,
}

/// Writes an Event Log entry (System log, source agentsh) with `text` as its one insertion string.
pub fn event_log(driver_object: ffi::Pvoid, code: EventCode, status: ffi::NtStatus, text: &str) {
    const HEADER: usize = core::mem::size_of::<ffi::IoErrorLogPacket>();
    // ERROR_LOG_MAXIMUM_SIZE is 240 bytes; keep the string and its NUL inside it.
    let units = text.len().min((240 - HEADER) / 2 - 1);
    let size = HEADER + (units + 1) * 2;
    // SAFETY: IRQL <= DISPATCH_LEVEL; `driver_object` is our DRIVER_OBJECT; size <= 240.
    let entry = unsafe { ffi::IoAllocateErrorLogEntry(driver_object, size as u8) };
    if entry.is_null() {
        debug!(
            "event log entry could not be allocated (code {:#x})",
            code as u32
        );
        return;
    }
    let packet = ffi::IoErrorLogPacket {
        major_function_code: 0,
        retry_count: 0,
        dump_data_size: 0,
        number_of_strings: 1,
        string_offset: HEADER as u16,
        event_category: 0,
        error_code: code as u32 as i32,
        unique_error_value: 0,
        final_status: status,
        sequence_number: 0,
        io_control_code: 0,
        device_offset: 0,
        dump_data: [0],
    };
    // SAFETY: `entry` points to `size` writable bytes owned by us until IoWriteErrorLogEntry.
    unsafe { entry.write(packet) };
    let strings = entry.cast::<u8>().wrapping_add(HEADER).cast::<u16>();
    for (i, b) in text
        .bytes()
        .take(units)
        .chain(core::iter::once(0))
        .enumerate()
    {
        // SAFETY: i <= units, inside the `size` bytes allocated above (2-byte aligned offset).
        unsafe { strings.add(i).write_unaligned(u16::from(b)) };
    }
    // SAFETY: the packet is complete; ownership passes to the I/O manager. IRQL <= DISPATCH.
    unsafe { ffi::IoWriteErrorLogEntry(entry) };
}

/// A value in its own non-paged pool allocation, created fallibly: on a callback path an
/// allocation failure must become a decision (the fail mode), never a bug-check.
pub struct PoolBox<T>(core::ptr::NonNull<T>);

impl<T> PoolBox<T> {
    /// `None` when the pool is exhausted (or `T` needs more than 16-byte alignment).
    pub fn try_new(value: T) -> Option<PoolBox<T>> {
        if core::mem::align_of::<T>() > 16 {
            return None;
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL; non-paged pool with our tag; the size is T's.
        let p = unsafe {
            ffi::ExAllocatePool2(
                ffi::POOL_FLAG_NON_PAGED,
                core::mem::size_of::<T>().max(1),
                POOL_TAG,
            )
        };
        let p = core::ptr::NonNull::new(p.cast::<T>())?;
        // SAFETY: `p` is a fresh allocation of size_of::<T>() bytes, 16-byte aligned.
        unsafe { p.as_ptr().write(value) };
        Some(PoolBox(p))
    }

    /// A zero-filled `T` allocated in place (never built on the stack, so it may be large);
    /// `None` when the pool is exhausted.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub unsafe fn try_new_zeroed() -> Option<PoolBox<T>> {
        if core::mem::align_of::<T>() > 16 {
            return None;
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL; non-paged pool with our tag; ExAllocatePool2 zeroes the
        // allocation (no POOL_FLAG_UNINITIALIZED), which the caller guarantees is a valid T.
        let p = unsafe {
            ffi::ExAllocatePool2(
                ffi::POOL_FLAG_NON_PAGED,
                core::mem::size_of::<T>().max(1),
                POOL_TAG,
            )
        };
        core::ptr::NonNull::new(p.cast::<T>()).map(PoolBox)
    }

    /// The address (stable for the box's lifetime).
    pub fn as_ptr(&self) -> *mut T {
        self.0.as_ptr()
    }

    /// Gives up ownership; [`PoolBox::from_raw`] takes it back.
    pub fn into_raw(self) -> *mut T {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// # Safety
    /// `p` came from [`PoolBox::into_raw`] and is taken back once.
    pub unsafe fn from_raw(p: *mut T) -> Option<PoolBox<T>> {
        core::ptr::NonNull::new(p).map(PoolBox)
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value is initialised and lives until the box drops.
        unsafe { self.0.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value was written in `try_new` and is dropped once here.
        unsafe { core::ptr::drop_in_place(self.0.as_ptr()) };
        // SAFETY: allocated in `try_new` with the same tag; IRQL <= DISPATCH_LEVEL.
        unsafe { ffi::ExFreePoolWithTag(self.0.as_ptr().cast(), POOL_TAG) };
    }
}

/// A zeroed byte buffer of `len`, or `None` when the pool is exhausted.
pub fn try_zeroed(len: usize) -> Option<alloc::vec::Vec<u8>> {
    let mut v = alloc::vec::Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// A copy of `units`, or `None` when the pool is exhausted.
pub fn try_copy(units: &[u16]) -> Option<alloc::vec::Vec<u16>> {
    let mut v = alloc::vec::Vec::new();
    v.try_reserve_exact(units.len()).ok()?;
    v.extend_from_slice(units);
    Some(v)
}
