//! The driver's one global state: kcore behind a kernel mutex (callers stay at PASSIVE or APC
//! level, so kcore may allocate), the registration handles, the held-operation events and the
//! rundown reference that unload waits on.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use agentsh_kcore::KernelCore;

use crate::ffi;

/// What the mutex protects.
pub struct Locked {
    pub core: KernelCore,
    /// One event per held operation, keyed by approval ticket.
    pub holds: Vec<(u32, *mut ffi::KEvent)>,
}

pub struct Driver {
    pub driver_object: ffi::Pvoid,
    pub filter: ffi::Pvoid,
    pub server_port: ffi::Pvoid,
    /// Written by the connect callback and by FltCloseClientPort; FltSendMessage takes its address
    /// (the documented pattern that makes a concurrent disconnect safe).
    pub client_port: UnsafeCell<ffi::Pvoid>,
    pub cm_cookie: i64,
    pub notify_queued: AtomicBool,
    mutex: UnsafeCell<ffi::KMutex>,
    rundown: UnsafeCell<ffi::RundownRef>,
    locked: UnsafeCell<Locked>,
}

// SAFETY: `locked` is only reached through `Driver::with`, which holds the kernel mutex; the
// other fields are written during DriverEntry / unload only, before callbacks are registered or
// after they are unregistered, or are kernel objects designed for concurrent use.
unsafe impl Sync for Driver {}

static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());

impl Driver {
    /// Allocates and publishes the state. Called once from DriverEntry at PASSIVE_LEVEL.
    pub fn install(driver_object: ffi::Pvoid) -> &'static mut Driver {
        let d = Box::leak(Box::new(Driver {
            driver_object,
            filter: core::ptr::null_mut(),
            server_port: core::ptr::null_mut(),
            client_port: UnsafeCell::new(core::ptr::null_mut()),
            cm_cookie: 0,
            notify_queued: AtomicBool::new(false),
            mutex: UnsafeCell::new(ffi::KMutex([0; 56])),
            rundown: UnsafeCell::new(ffi::RundownRef(0)),
            locked: UnsafeCell::new(Locked {
                core: KernelCore::new(crate::kernel::seed()),
                holds: Vec::new(),
            }),
        }));
        // SAFETY: PASSIVE_LEVEL; the mutex lives in non-paged pool for the driver's lifetime.
        unsafe { ffi::KeInitializeMutex(d.mutex.get(), 0) };
        // SAFETY: PASSIVE_LEVEL; initialised before any callback can acquire it.
        unsafe { ffi::ExInitializeRundownProtection(d.rundown.get()) };
        DRIVER.store(d, Ordering::Release);
        d
    }

    /// The state, if the driver is loaded.
    pub fn get() -> Option<&'static Driver> {
        let p = DRIVER.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published by `install` and stays valid until `remove`,
        // which runs only after every callback is unregistered and the rundown has drained.
        unsafe { p.as_ref() }
    }

    /// Unpublishes and frees the state (unload, after every registration is gone).
    pub fn remove() {
        let p = DRIVER.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from Box::leak in `install`; nothing references it any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }

    /// Runs `f` under the kernel mutex. IRQL <= APC_LEVEL; never called recursively.
    pub fn with<R>(&self, f: impl FnOnce(&mut Locked) -> R) -> R {
        // SAFETY: IRQL <= APC_LEVEL (all callers); KernelMode wait without timeout on our mutex.
        let status = unsafe {
            ffi::KeWaitForSingleObject(self.mutex.get().cast(), 0, 0, 0, core::ptr::null())
        };
        debug_assert!(ffi::nt_success(status));
        // SAFETY: the mutex is held, so this is the only reference to `locked`.
        let r = f(unsafe { &mut *self.locked.get() });
        // SAFETY: we own the mutex (acquired above on this thread).
        unsafe { ffi::KeReleaseMutex(self.mutex.get(), 0) };
        r
    }

    /// Enters a callback; `None` once unload has begun waiting.
    pub fn enter(&self) -> Option<RundownGuard<'_>> {
        // SAFETY: IRQL <= DISPATCH_LEVEL; the rundown reference was initialised in `install`.
        let ok = unsafe { ffi::ExAcquireRundownProtection(self.rundown.get()) };
        (ok != 0).then_some(RundownGuard(self))
    }

    /// Waits until every callback that entered has left; later `enter` calls fail.
    pub fn wait_for_callbacks(&self) {
        // SAFETY: PASSIVE_LEVEL (unload); initialised in `install`.
        unsafe { ffi::ExWaitForRundownProtectionRelease(self.rundown.get()) }
    }
}

/// Releases the rundown reference when a callback returns.
pub struct RundownGuard<'a>(&'a Driver);

impl Drop for RundownGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: IRQL <= DISPATCH_LEVEL; paired with the successful acquire in `enter`.
        unsafe { ffi::ExReleaseRundownProtection(self.0.rundown.get()) }
    }
}
