//! Broker attribution: an operation performed by a thread outside every session that impersonates
//! the token of an AppContainer session is decided as that session's. WMI's registry provider, COM
//! servers and RPC services do work for their clients this way; without this, what a sandboxed
//! process asks them to do would be decided as theirs.
//!
//! A session is recognised by its per-sandbox AppContainer SID: when the service registers a
//! session, the driver reads the AppContainer SID of the root process's primary token and keeps
//! it with the root process id. A thread is attributed to that session when it impersonates (at
//! SecurityImpersonation or SecurityDelegation; an identification-level token does not let the
//! thread act as its client) a token with the same AppContainer SID, and the root is still in the
//! session. Sessions without an AppContainer (the restricted-token fallback) are not recognised.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::ffi::{self, Pvoid};
use crate::kernel::debug;
use crate::state::{Driver, Locked};

/// Most AppContainer sessions remembered at once (entries of ended sessions are reused).
pub const MAX_CONTAINERS: usize = 256;
/// A SID's header (8 bytes) and at most 15 sub-authorities.
const SID_MAX: usize = 8 + 4 * 15;

/// A SID's bytes.
#[derive(Clone, Copy)]
pub struct SidBytes {
    len: u8,
    bytes: [u8; SID_MAX],
}

impl SidBytes {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One AppContainer session: its root process and its container's SID.
pub struct Container {
    pid: u32,
    sid: SidBytes,
}

/// Remembers the AppContainer SID of a newly registered session's root process. PASSIVE_LEVEL,
/// without the driver's mutex. A root that is not in an AppContainer adds nothing.
pub fn record_session_root(d: &Driver, root_pid: u32) {
    let Some(sid) = container_sid_of_process(root_pid) else {
        return;
    };
    let stored = d.with(|s| {
        let Locked {
            core, containers, ..
        } = s;
        if core.session_of(root_pid).is_none() {
            return true;
        }
        containers.retain(|c| core.session_of(c.pid).is_some() && c.pid != root_pid);
        if containers.len() >= MAX_CONTAINERS || containers.try_reserve(1).is_err() {
            return false;
        }
        containers.push(Container { pid: root_pid, sid });
        d.containers
            .store(containers.len() as u32, Ordering::Release);
        true
    });
    if !stored {
        debug!("session root {root_pid}: its AppContainer SID could not be remembered");
    }
}

/// The session root whose AppContainer the current thread impersonates, if any. PASSIVE_LEVEL.
/// `pid` is the process the thread belongs to (the service itself is never attributed).
pub fn impersonated_session(d: &Driver, pid: u32) -> Option<u32> {
    if d.containers.load(Ordering::Acquire) == 0 {
        return None;
    }
    let (mut copy_on_open, mut effective_only, mut level) = (0u8, 0u8, 0u32);
    // SAFETY: PASSIVE_LEVEL; the current thread; the out parameters are locals.
    let token = unsafe {
        ffi::PsReferenceImpersonationToken(
            ffi::PsGetCurrentThread(),
            &mut copy_on_open,
            &mut effective_only,
            &mut level,
        )
    };
    if token.is_null() {
        return None;
    }
    let sid = if level >= ffi::SECURITY_IMPERSONATION {
        // SAFETY: `token` is referenced until the dereference below.
        unsafe { container_sid(token) }
    } else {
        None
    };
    // SAFETY: the reference PsReferenceImpersonationToken returned, dropped once.
    unsafe { ffi::PsDereferenceImpersonationToken(token) };
    let sid = sid?;
    d.with(|s| {
        if s.core.excluded_process() == Some(pid) {
            return None;
        }
        s.containers
            .iter()
            .find(|c| c.sid.as_slice() == sid.as_slice())
            .map(|c| c.pid)
            .filter(|&root| s.core.session_of(root).is_some())
    })
}

/// The AppContainer SID of a process's primary token. PASSIVE_LEVEL.
fn container_sid_of_process(pid: u32) -> Option<SidBytes> {
    let mut process: Pvoid = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; the out pointer is a local.
    let status =
        unsafe { ffi::PsLookupProcessByProcessId(pid as usize as ffi::Handle, &mut process) };
    if !ffi::nt_success(status) || process.is_null() {
        return None;
    }
    // SAFETY: `process` is referenced until ObfDereferenceObject below.
    let token = unsafe { ffi::PsReferencePrimaryToken(process) };
    let sid = if token.is_null() {
        None
    } else {
        // SAFETY: `token` is referenced until the dereference below.
        let sid = unsafe { container_sid(token) };
        // SAFETY: the reference PsReferencePrimaryToken returned, dropped once.
        unsafe { ffi::PsDereferencePrimaryToken(token) };
        sid
    };
    // SAFETY: the reference PsLookupProcessByProcessId returned, dropped once.
    unsafe { ffi::ObfDereferenceObject(process) };
    sid
}

/// # Safety
/// `token` is a referenced access token. PASSIVE_LEVEL.
unsafe fn container_sid(token: Pvoid) -> Option<SidBytes> {
    let mut info: Pvoid = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `token` is referenced (contract); the out pointer is a local.
    let status =
        unsafe { ffi::SeQueryInformationToken(token, ffi::TOKEN_APP_CONTAINER_SID, &mut info) };
    if !ffi::nt_success(status) || info.is_null() {
        return None;
    }
    // SAFETY: on success `info` is a TOKEN_APPCONTAINER_INFORMATION the kernel allocated.
    let sid = unsafe { (*info.cast::<ffi::TokenAppContainerInformation>()).token_app_container };
    let copied = if sid.is_null() {
        None
    } else {
        // SAFETY: a SID starts with its 8-byte header; SubAuthorityCount is at offset 1.
        let count = unsafe { (*sid.cast::<ffi::Sid>()).sub_authority_count };
        let len = 8 + 4 * usize::from(count);
        (len <= SID_MAX).then(|| {
            let mut bytes = [0u8; SID_MAX];
            // SAFETY: the SID is `len` bytes long (its header says so) inside the kernel's buffer.
            let src = unsafe { core::slice::from_raw_parts(sid.cast::<u8>(), len) };
            bytes[..len].copy_from_slice(src);
            SidBytes {
                len: len as u8,
                bytes,
            }
        })
    };
    // SAFETY: the buffer SeQueryInformationToken allocated, freed once with ExFreePool (its
    // documented release).
    unsafe { ffi::ExFreePool(info) };
    copied
}

/// An empty table (for the driver state).
pub fn empty() -> Vec<Container> {
    Vec::new()
}
