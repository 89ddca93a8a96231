//! Which processes belong to which sandbox session.
//!
//! A session starts with its root process (registered by the service) and grows by process
//! creation: a new process joins the session of the process that *created* it (the creating
//! thread's process), never of the parent named in its creation attributes, which any process
//! can forge with PROC_THREAD_ATTRIBUTE_PARENT_PROCESS. Processes leave on exit; a creation
//! notification for a process id still in the table means the id was reused, and the old
//! membership is dropped first.

use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

/// Most sessions at once.
pub const MAX_SESSIONS: usize = 256;
/// Most tracked session processes at once.
pub const MAX_PROCESSES: usize = 65_536;

/// A session's identity as the kernel needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// The secret token carried in every request.
    pub token: u64,
    /// The public identifier used in events.
    pub id: u64,
    pub flags: u32,
}

#[derive(Debug, Clone)]
struct Session {
    r: SessionRef,
    root_pid: u32,
}

/// Why a session change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The token (or the root process) already belongs to a session.
    AlreadyExists,
    /// No session has that token.
    NotFound,
    /// The session or process table is full.
    Full,
}

/// The session table.
#[derive(Debug)]
pub struct SessionTable {
    sessions: Vec<Option<Session>>,
    procs: HashMap<u32, u32, FixedState>,
}

impl SessionTable {
    /// An empty table.
    pub fn new(seed: u64) -> Self {
        SessionTable {
            sessions: Vec::new(),
            procs: HashMap::with_hasher(FixedState::with_seed(seed)),
        }
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.iter().flatten().count()
    }

    /// Tracked session processes.
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    /// Starts a session rooted at `root_pid`.
    pub fn register(&mut self, root_pid: u32, r: SessionRef) -> Result<(), SessionError> {
        if self.slot_of_token(r.token).is_some() || self.procs.contains_key(&root_pid) {
            return Err(SessionError::AlreadyExists);
        }
        if self.procs.len() >= MAX_PROCESSES {
            return Err(SessionError::Full);
        }
        if self.procs.try_reserve(1).is_err() {
            return Err(SessionError::Full);
        }
        let slot = match self.sessions.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.sessions.len() < MAX_SESSIONS => {
                if self.sessions.try_reserve(1).is_err() {
                    return Err(SessionError::Full);
                }
                self.sessions.push(None);
                self.sessions.len() - 1
            }
            None => return Err(SessionError::Full),
        };
        self.sessions[slot] = Some(Session { r, root_pid });
        self.procs.insert(root_pid, slot as u32);
        Ok(())
    }

    /// Ends a session and forgets its processes.
    pub fn unregister(&mut self, token: u64) -> Result<SessionRef, SessionError> {
        let slot = self.slot_of_token(token).ok_or(SessionError::NotFound)?;
        let session = self.sessions[slot].take().ok_or(SessionError::NotFound)?;
        self.procs.retain(|_, s| *s as usize != slot);
        Ok(session.r)
    }

    /// Replaces a session's token; its processes stay members.
    pub fn rotate(&mut self, old: u64, new: u64) -> Result<(), SessionError> {
        if self.slot_of_token(new).is_some() {
            return Err(SessionError::AlreadyExists);
        }
        let slot = self.slot_of_token(old).ok_or(SessionError::NotFound)?;
        if let Some(s) = self.sessions[slot].as_mut() {
            s.r.token = new;
        }
        Ok(())
    }

    /// Every tracked process id.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.procs.keys().copied()
    }

    /// The session `pid` belongs to.
    pub fn lookup(&self, pid: u32) -> Option<SessionRef> {
        let slot = *self.procs.get(&pid)?;
        self.sessions.get(slot as usize)?.as_ref().map(|s| s.r)
    }

    /// A process was created by `creating_pid`. Returns the session it joined; an error when
    /// the creator is in a session but the child cannot be tracked (table full, no memory).
    pub fn process_created(
        &mut self,
        pid: u32,
        creating_pid: u32,
    ) -> Result<Option<SessionRef>, SessionError> {
        // A live entry for a new process id is a reused id: the new process is not the old one.
        self.procs.remove(&pid);
        let Some(&slot) = self.procs.get(&creating_pid) else {
            return Ok(None);
        };
        if self.procs.len() >= MAX_PROCESSES || self.procs.try_reserve(1).is_err() {
            return Err(SessionError::Full);
        }
        self.procs.insert(pid, slot);
        Ok(self
            .sessions
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.r))
    }

    /// A process exited; returns the session it was in. The session itself lives on until
    /// unregistered, even if its root exits.
    pub fn process_exited(&mut self, pid: u32) -> Option<SessionRef> {
        let slot = self.procs.remove(&pid)?;
        self.sessions.get(slot as usize)?.as_ref().map(|s| s.r)
    }

    /// The root process of the session with `token`.
    pub fn root_of(&self, token: u64) -> Option<u32> {
        self.slot_of_token(token)
            .and_then(|i| self.sessions[i].as_ref().map(|s| s.root_pid))
    }

    fn slot_of_token(&self, token: u64) -> Option<usize> {
        self.sessions
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.r.token == token))
    }
}
