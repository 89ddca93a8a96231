//! The driver's one global state: kcore behind a kernel mutex (callers stay at PASSIVE or APC
//! level), the registration handles (atomics: callbacks may run while DriverEntry is still
//! registering), the held-operation events and the rundown reference that unload waits on.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use agentsh_kcore::KernelCore;

use crate::ffi;
use crate::kernel::PoolBox;
use crate::sessions::PidFilter;

/// Threads that may probe key existence at the same time (a probe without a free slot is skipped
/// and the create is judged as a new key).
pub const PROBE_SLOTS: usize = 32;

/// What the mutex protects.
pub struct Locked {
    pub core: KernelCore,
    /// One event per held operation, keyed by approval ticket.
    pub holds: Vec<(u32, *mut ffi::KEvent)>,
    /// Sessions recognised by their token's SID, by their root process (broker attribution).
    pub recognised: Vec<crate::broker::Recognised>,
}

pub struct Driver {
    pub driver_object: ffi::Pvoid,
    pub filter: AtomicPtr<core::ffi::c_void>,
    pub server_port: AtomicPtr<core::ffi::c_void>,
    /// Written by the connect callback and by FltCloseClientPort; FltSendMessage takes its address
    /// (the documented pattern that makes a concurrent disconnect safe).
    pub client_port: UnsafeCell<ffi::Pvoid>,
    /// CmRegisterCallbackEx writes it through its `_Out_` pointer before it returns.
    pub cm_cookie: AtomicI64,
    /// ObRegisterCallbacks writes the process/thread callbacks' registration handle here.
    pub ob_handle: AtomicPtr<core::ffi::c_void>,
    /// Volume instances InstanceSetup accepted since the load.
    pub instances: AtomicU32,
    /// FltStartFiltering succeeded (instances have been offered to every mounted volume).
    pub filtering: AtomicBool,
    /// AppContainer entries in `Locked::recognised`.
    pub containers: AtomicU32,
    /// Restricted-token fallback entries in `Locked::recognised`. With `containers`, zero keeps
    /// broker attribution off every callback.
    pub fallbacks: AtomicU32,
    pub notify_queued: AtomicBool,
    /// The configuration's flags (CONFIG_QUERY_READS / CONFIG_NOTIFY_READS), mirrored after every
    /// control message so that a session's read can skip its name query without the lock.
    pub config_flags: AtomicU32,
    /// Unload has begun: no new holds start.
    pub stopping: AtomicBool,
    /// Threads (PETHREAD) inside the driver's own key-existence probe: their nested registry
    /// callbacks are the probe's, not the caller's.
    pub probing: [AtomicUsize; PROBE_SLOTS],
    /// The lock-free session filter (32 KiB, its own allocation).
    pub pids: PoolBox<PidFilter>,
    mutex: UnsafeCell<ffi::KMutex>,
    rundown: UnsafeCell<ffi::RundownRef>,
    locked: UnsafeCell<Locked>,
}

// SAFETY: `locked` is only reached through `Driver::with`, which holds the kernel mutex; the
// registration handles are atomics; `client_port` is written under the mutex or by Filter Manager
// (FltCloseClientPort) and read only through its address by FltSendMessage; the rest are kernel
// objects designed for concurrent use.
unsafe impl Sync for Driver {}

static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());

impl Driver {
    /// Allocates and publishes the state; `None` when the pool is exhausted. Called once from
    /// DriverEntry at PASSIVE_LEVEL.
    pub fn install(driver_object: ffi::Pvoid) -> Option<&'static Driver> {
        // SAFETY: PidFilter is an array of atomics, for which all-zero is the empty filter.
        let pids = unsafe { PoolBox::<PidFilter>::try_new_zeroed() }?;
        let boxed = PoolBox::try_new(Driver {
            driver_object,
            filter: AtomicPtr::new(core::ptr::null_mut()),
            server_port: AtomicPtr::new(core::ptr::null_mut()),
            client_port: UnsafeCell::new(core::ptr::null_mut()),
            cm_cookie: AtomicI64::new(0),
            ob_handle: AtomicPtr::new(core::ptr::null_mut()),
            instances: AtomicU32::new(0),
            filtering: AtomicBool::new(false),
            containers: AtomicU32::new(0),
            fallbacks: AtomicU32::new(0),
            notify_queued: AtomicBool::new(false),
            config_flags: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            probing: [const { AtomicUsize::new(0) }; PROBE_SLOTS],
            pids,
            mutex: UnsafeCell::new(ffi::KMutex([0; 56])),
            rundown: UnsafeCell::new(ffi::RundownRef(0)),
            locked: UnsafeCell::new(Locked {
                core: KernelCore::try_new(crate::kernel::seed())?,
                holds: Vec::new(),
                recognised: crate::broker::empty(),
            }),
        })?;
        let p = boxed.into_raw();
        // SAFETY: `p` is the fresh allocation above, owned by the driver until `remove`.
        let d: &'static Driver = unsafe { &*p };
        // SAFETY: PASSIVE_LEVEL; the mutex lives in non-paged pool for the driver's lifetime.
        unsafe { ffi::KeInitializeMutex(d.mutex.get(), 0) };
        // SAFETY: PASSIVE_LEVEL; initialised before any callback can acquire it.
        unsafe { ffi::ExInitializeRundownProtection(d.rundown.get()) };
        DRIVER.store(p, Ordering::Release);
        Some(d)
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
        // SAFETY: `p` came from PoolBox::into_raw in `install`; nothing references it any more.
        drop(unsafe { PoolBox::from_raw(p) });
    }

    /// Whether kcore needs the name of a session's read (reads are queried or notified).
    pub fn reads_need_names(&self) -> bool {
        let flags = self.config_flags.load(Ordering::Acquire);
        flags
            & (agentsh_wire::control::CONFIG_QUERY_READS
                | agentsh_wire::control::CONFIG_NOTIFY_READS)
            != 0
    }

    pub fn filter(&self) -> ffi::Pvoid {
        self.filter.load(Ordering::Acquire)
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
        (ok != 0).then(|| RundownGuard(self))
    }

    /// Waits until every callback that entered has left; later `enter` calls fail.
    pub fn wait_for_callbacks(&self) {
        // SAFETY: PASSIVE_LEVEL (unload); initialised in `install`.
        unsafe { ffi::ExWaitForRundownProtectionRelease(self.rundown.get()) }
    }

    /// Marks the current thread as probing; `None` when every slot is taken.
    pub fn begin_probe(&self) -> Option<ProbeGuard<'_>> {
        let me = current_thread();
        self.probing.iter().find_map(|slot| {
            slot.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
                .then(|| ProbeGuard(slot))
        })
    }

    /// Whether the current thread is inside the driver's own probe.
    pub fn in_probe(&self) -> bool {
        let me = current_thread();
        self.probing
            .iter()
            .any(|slot| slot.load(Ordering::Acquire) == me)
    }
}

fn current_thread() -> usize {
    // SAFETY: any IRQL; the current thread's ETHREAD.
    unsafe { ffi::PsGetCurrentThread() as usize }
}

/// Clears the probing mark when the probe ends.
pub struct ProbeGuard<'a>(&'a AtomicUsize);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
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
