//! Broker attribution: an operation performed by a thread outside every session that impersonates
//! a session's token is decided as that session's. WMI's registry provider, COM servers and RPC
//! services do work for their clients this way; without this, what a sandboxed process asks them
//! to do would be decided as theirs.
//!
//! A session is recognised by a SID its token carries. When the service registers a session, the
//! driver reads the root process's primary token and keeps, with the root's process id, either
//! its AppContainer SID (an AppContainer session: the per-sandbox package SID) or, for a token
//! outside every AppContainer, the per-session SID among its restricting SIDs (the restricted-token
//! fallback: `S-1-9-1634169704-a-b-c-d`, 128 random bits that agentsh-windows puts there). A thread
//! is attributed to that session when it impersonates (at SecurityImpersonation or
//! SecurityDelegation; an identification-level token does not let the thread act as its client) a
//! token with the same AppContainer SID, or whose restricting SIDs contain the same session SID,
//! and the root is still in the session.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::ffi::{self, Pvoid};
use crate::kernel::debug;
use crate::state::{Driver, Locked};

/// Most sessions remembered at once (entries of ended sessions are reused).
pub const MAX_RECOGNISED: usize = 256;
/// A SID's header (8 bytes) and at most 15 sub-authorities.
const SID_MAX: usize = 8 + 4 * 15;
/// The fallback's session SIDs: revision 1, five sub-authorities, the resource manager authority
/// (9), and agentsh's first sub-authority 0x61677368 (little-endian in memory); four random
/// sub-authorities follow (agentsh-windows, `sid.rs`).
const SESSION_SID_PREFIX: [u8; 12] = [1, 5, 0, 0, 0, 0, 0, 9, 0x68, 0x73, 0x67, 0x61];
const SESSION_SID_LEN: usize = 8 + 4 * 5;
/// Session SIDs taken from one impersonation token's restricting SIDs (a session's token has one;
/// more can only come from a token made outside every session).
const SESSION_SIDS_PER_TOKEN: usize = 4;

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

    fn from_slice(src: &[u8]) -> Option<SidBytes> {
        (src.len() <= SID_MAX).then(|| {
            let mut bytes = [0u8; SID_MAX];
            bytes[..src.len()].copy_from_slice(src);
            SidBytes {
                len: src.len() as u8,
                bytes,
            }
        })
    }
}

/// How a session's token is recognised.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// By its AppContainer SID.
    AppContainer,
    /// By the session SID among its restricting SIDs (the restricted-token fallback).
    Restricting,
}

/// One recognised session: its root process and the SID its token carries.
pub struct Recognised {
    pid: u32,
    kind: Kind,
    sid: SidBytes,
}

/// Remembers the SID of a newly registered session's root process. PASSIVE_LEVEL, without the
/// driver's mutex. A root whose token carries neither an AppContainer SID nor a session SID adds
/// nothing.
pub fn record_session_root(d: &Driver, root_pid: u32) {
    let Some((kind, sid)) = session_key_of_process(root_pid) else {
        return;
    };
    let stored = d.with(|s| {
        let Locked {
            core, recognised, ..
        } = s;
        if core.session_of(root_pid).is_none() {
            return true;
        }
        recognised.retain(|r| core.session_of(r.pid).is_some() && r.pid != root_pid);
        let stored = recognised.len() < MAX_RECOGNISED && recognised.try_reserve(1).is_ok() && {
            recognised.push(Recognised {
                pid: root_pid,
                kind,
                sid,
            });
            true
        };
        let count = |k| recognised.iter().filter(|r| r.kind == k).count() as u32;
        d.containers
            .store(count(Kind::AppContainer), Ordering::Release);
        d.fallbacks
            .store(count(Kind::Restricting), Ordering::Release);
        stored
    });
    if !stored {
        debug!("session root {root_pid}: its token's SID could not be remembered");
    }
}

/// The session root whose token the current thread impersonates, if any. PASSIVE_LEVEL.
/// `pid` is the process the thread belongs to (the service itself is never attributed).
pub fn impersonated_session(d: &Driver, pid: u32) -> Option<u32> {
    let containers = d.containers.load(Ordering::Acquire) != 0;
    let fallbacks = d.fallbacks.load(Ordering::Acquire) != 0;
    if !containers && !fallbacks {
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
    let mut container = None;
    let mut sessions = [None; SESSION_SIDS_PER_TOKEN];
    if level >= ffi::SECURITY_IMPERSONATION {
        if containers {
            // SAFETY: `token` is referenced until the dereference below.
            container = unsafe { container_sid(token) };
        }
        if container.is_none() && fallbacks {
            // SAFETY: `token` is referenced until the dereference below.
            unsafe { session_sids(token, &mut sessions) };
        }
    }
    // SAFETY: the reference PsReferenceImpersonationToken returned, dropped once.
    unsafe { ffi::PsDereferenceImpersonationToken(token) };
    if container.is_none() && sessions[0].is_none() {
        return None;
    }
    d.with(|s| {
        if s.core.excluded_process() == Some(pid) {
            return None;
        }
        let matches = |r: &&Recognised| match r.kind {
            Kind::AppContainer => container
                .as_ref()
                .is_some_and(|c| c.as_slice() == r.sid.as_slice()),
            Kind::Restricting => sessions
                .iter()
                .flatten()
                .any(|sid| sid.as_slice() == r.sid.as_slice()),
        };
        s.recognised
            .iter()
            .filter(matches)
            .map(|r| r.pid)
            .find(|&root| s.core.session_of(root).is_some())
    })
}

/// What recognises the session of a process's primary token: its AppContainer SID, or else the
/// session SID among its restricting SIDs. PASSIVE_LEVEL.
fn session_key_of_process(pid: u32) -> Option<(Kind, SidBytes)> {
    let mut process: Pvoid = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; the out pointer is a local.
    let status =
        unsafe { ffi::PsLookupProcessByProcessId(pid as usize as ffi::Handle, &mut process) };
    if !ffi::nt_success(status) || process.is_null() {
        return None;
    }
    // SAFETY: `process` is referenced until ObfDereferenceObject below.
    let token = unsafe { ffi::PsReferencePrimaryToken(process) };
    let key = if token.is_null() {
        None
    } else {
        // SAFETY: `token` is referenced until the dereference below.
        let key = match unsafe { container_sid(token) } {
            Some(sid) => Some((Kind::AppContainer, sid)),
            None => {
                let mut sessions = [None; SESSION_SIDS_PER_TOKEN];
                // SAFETY: `token` is referenced until the dereference below.
                unsafe { session_sids(token, &mut sessions) };
                sessions[0].map(|sid| (Kind::Restricting, sid))
            }
        };
        // SAFETY: the reference PsReferencePrimaryToken returned, dropped once.
        unsafe { ffi::PsDereferencePrimaryToken(token) };
        key
    };
    // SAFETY: the reference PsLookupProcessByProcessId returned, dropped once.
    unsafe { ffi::ObfDereferenceObject(process) };
    key
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
        (len <= SID_MAX)
            .then(|| {
                // SAFETY: the SID is `len` bytes long (its header says so) inside the kernel's
                // buffer.
                let src = unsafe { core::slice::from_raw_parts(sid.cast::<u8>(), len) };
                SidBytes::from_slice(src)
            })
            .flatten()
    };
    // SAFETY: the buffer SeQueryInformationToken allocated, freed once with ExFreePool (its
    // documented release).
    unsafe { ffi::ExFreePool(info) };
    copied
}

/// Fills `out` with the session SIDs (the fallback's form, see SESSION_SID_PREFIX) among the
/// token's restricting SIDs, in their order; a token without restricting SIDs is skipped without
/// a query (SeTokenIsRestricted).
///
/// # Safety
/// `token` is a referenced access token. PASSIVE_LEVEL.
unsafe fn session_sids(token: Pvoid, out: &mut [Option<SidBytes>; SESSION_SIDS_PER_TOKEN]) {
    // SAFETY: PASSIVE_LEVEL; `token` is referenced (contract).
    if unsafe { ffi::SeTokenIsRestricted(token) } == 0 {
        return;
    }
    let mut info: Pvoid = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `token` is referenced (contract); the out pointer is a local.
    let status =
        unsafe { ffi::SeQueryInformationToken(token, ffi::TOKEN_RESTRICTED_SIDS, &mut info) };
    if !ffi::nt_success(status) || info.is_null() {
        return;
    }
    let groups = info.cast::<ffi::TokenGroups>();
    // SAFETY: on success `info` is a TOKEN_GROUPS the kernel allocated.
    let count = unsafe { (*groups).group_count } as usize;
    // SAFETY: the Groups array starts inside the structure; `count` entries follow in the
    // kernel's buffer.
    let first = unsafe { core::ptr::addr_of!((*groups).groups) }.cast::<ffi::SidAndAttributes>();
    let mut found = 0;
    for index in 0..count {
        if found == out.len() {
            break;
        }
        // SAFETY: `index` is below GroupCount; each entry's SID points into the same buffer.
        let sid = unsafe { (*first.add(index)).sid };
        if sid.is_null() {
            continue;
        }
        // SAFETY: every SID has at least its 8-byte header; a session SID's 28 bytes are read
        // only when the header says it has five sub-authorities.
        let header = unsafe { core::slice::from_raw_parts(sid.cast::<u8>(), 8) };
        if header != &SESSION_SID_PREFIX[..8] {
            continue;
        }
        // SAFETY: the header says the SID is SESSION_SID_LEN bytes long.
        let src = unsafe { core::slice::from_raw_parts(sid.cast::<u8>(), SESSION_SID_LEN) };
        if src[8..12] == SESSION_SID_PREFIX[8..] {
            out[found] = SidBytes::from_slice(src);
            found += 1;
        }
    }
    // SAFETY: the buffer SeQueryInformationToken allocated, freed once with ExFreePool (its
    // documented release).
    unsafe { ffi::ExFreePool(info) };
}

/// An empty table (for the driver state).
pub fn empty() -> Vec<Recognised> {
    Vec::new()
}
