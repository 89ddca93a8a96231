//! A lock-free filter of the process ids that may be in a session, so that the callbacks of every
//! other process on the machine return without a lock, a name or an allocation.
//!
//! One bit per process id (ids are multiples of four) up to [`PID_LIMIT`]; ids beyond it always
//! take the locked path. The filter is a superset of kcore's session table: a bit is set before
//! kcore counts the process as a member (the process notify routine runs before the new process's
//! first thread; a session root is registered while suspended) and cleared when the process exits
//! or its session ends. A stale bit costs one locked lookup; a missing bit cannot happen.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::state::{Driver, Locked};

/// Process ids below this are filtered by bit; 2^20 covers every id a desktop hands out.
pub const PID_LIMIT: u32 = 1 << 20;
const WORDS: usize = (PID_LIMIT / 4 / 64) as usize;

/// All-zero is the empty filter (it is allocated zeroed, never built on the stack).
pub struct PidFilter([AtomicU64; WORDS]);

// SAFETY: the filter is atomics only.
unsafe impl Sync for PidFilter {}

impl PidFilter {
    fn at(pid: u32) -> Option<(usize, u64)> {
        (pid < PID_LIMIT).then(|| {
            let i = pid / 4;
            ((i / 64) as usize, 1u64 << (i % 64))
        })
    }

    /// Whether `pid` may be in a session (lock-free, any IRQL).
    pub fn may_contain(&self, pid: u32) -> bool {
        match Self::at(pid) {
            Some((w, bit)) => self.0[w].load(Ordering::Acquire) & bit != 0,
            None => true,
        }
    }

    pub fn insert(&self, pid: u32) {
        if let Some((w, bit)) = Self::at(pid) {
            self.0[w].fetch_or(bit, Ordering::AcqRel);
        }
    }

    pub fn remove(&self, pid: u32) {
        if let Some((w, bit)) = Self::at(pid) {
            self.0[w].fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Makes the filter match kcore's table: every member set, then every non-member cleared
    /// (in that order, so a member's bit is never clear). Called with the mutex held after a
    /// message that may have changed membership.
    pub fn sync(&self, s: &Locked) {
        for pid in s.core.session_pids() {
            self.insert(pid);
        }
        for (w, word) in self.0.iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let pid = ((w as u32) * 64 + b) * 4;
                if s.core.session_of(pid).is_none() {
                    self.remove(pid);
                }
            }
        }
    }
}

/// Whether `pid`'s operations need a decision: lock-free, and false for almost every process.
pub fn may_be_in_session(d: &Driver, pid: u32) -> bool {
    if !d.pids.may_contain(pid) {
        return false;
    }
    d.with(|s| s.core.session_of(pid).is_some())
}
