//! Notifications the kernel sends without waiting for an answer, through a bounded queue: pushing
//! never blocks the operation; when the queue is full the notification is dropped and counted.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use agentsh_wire::Utf16Buf;
use agentsh_wire::file::{self, FileRequestRepr};
use agentsh_wire::notify::{NotifyReason, NotifyRepr, ProcessEventRepr, Subject};
use agentsh_wire::op::{Decision, FileOperation, OpFlags, Operation};
use agentsh_wire::registry::{self, RegistryRequestRepr};

/// Notifications waiting at most; beyond, new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;

/// What a notification is about, owned (the operation's buffers are gone when it is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedSubject {
    Registry {
        op: Operation,
        flags: OpFlags,
        value_type: u32,
        data_size: u32,
        key: Vec<u16>,
        name: Vec<u16>,
    },
    File {
        op: FileOperation,
        flags: OpFlags,
        desired_access: u32,
        create_disposition: u32,
        path: Vec<u16>,
        target: Vec<u16>,
    },
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub reason: NotifyReason,
    pub allowed: bool,
    pub flags: u32,
    pub session_token: u64,
    pub process_id: u32,
    pub thread_id: u32,
    pub subject: OwnedSubject,
}

impl Notification {
    /// The wire form (names longer than their fields are cut and flagged as truncated).
    pub fn to_repr(&self) -> NotifyRepr {
        let subject = match &self.subject {
            OwnedSubject::Registry {
                op,
                flags,
                value_type,
                data_size,
                key,
                name,
            } => {
                let (key_path, key_cut) = Utf16Buf::from_units_truncating(key);
                let (value_name, name_cut) = Utf16Buf::from_units_truncating(name);
                Subject::Registry(RegistryRequestRepr {
                    session_token: self.session_token,
                    process_id: self.process_id,
                    thread_id: self.thread_id,
                    operation: *op,
                    flags: flags.with_cuts(key_cut, name_cut),
                    value_type: *value_type,
                    data_size: *data_size,
                    key_path,
                    value_name,
                })
            }
            OwnedSubject::File {
                op,
                flags,
                desired_access,
                create_disposition,
                path,
                target,
            } => {
                let (p, path_cut) = Utf16Buf::<{ file::PATH_MAX }>::from_units_truncating(path);
                let (t, target_cut) = Utf16Buf::<{ file::PATH_MAX }>::from_units_truncating(target);
                Subject::File(FileRequestRepr {
                    session_token: self.session_token,
                    process_id: self.process_id,
                    thread_id: self.thread_id,
                    operation: *op,
                    flags: flags.with_cuts(path_cut, target_cut),
                    desired_access: *desired_access,
                    create_disposition: *create_disposition,
                    path: p,
                    target_path: t,
                })
            }
        };
        NotifyRepr {
            reason: self.reason,
            decision: if self.allowed {
                Decision::Allow
            } else {
                Decision::Deny
            },
            flags: self.flags,
            subject,
        }
    }
}

const _: () = assert!(registry::KEY_PATH_MAX <= file::PATH_MAX);

/// `units` copied with a fallible allocation.
pub(crate) fn try_copy(units: &[u16]) -> Option<Vec<u16>> {
    let mut v = Vec::new();
    v.try_reserve_exact(units.len()).ok()?;
    v.extend_from_slice(units);
    Some(v)
}

/// A one-way message waiting to be sent: a decision the kernel made on its own, or a session
/// process starting or exiting (so the service can name processes by their image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Decision(Notification),
    Process(ProcessEvent),
}

/// A session process started or exited, owned until sent (the image name is copied with a
/// fallible allocation; the wire form is built when the notification is emitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEvent {
    pub session_id: u64,
    pub process_id: u32,
    pub creating_process_id: u32,
    pub parent_process_id: u32,
    pub kind: agentsh_wire::notify::ProcessEventKind,
    pub exit_status: u32,
    pub image: Vec<u16>,
}

impl ProcessEvent {
    /// The wire form (the image name cut to its field).
    pub fn to_repr(&self) -> ProcessEventRepr {
        ProcessEventRepr {
            session_id: self.session_id,
            process_id: self.process_id,
            creating_process_id: self.creating_process_id,
            parent_process_id: self.parent_process_id,
            kind: self.kind,
            exit_status: self.exit_status,
            // An image is an NTFS path, which cannot hold a NUL; ImageName has no escape flag,
            // so anything from a NUL on is not part of the name.
            image_name: Utf16Buf::from_units_truncating(
                self.image.split(|&u| u == 0).next().unwrap_or_default(),
            )
            .0,
        }
    }
}

impl Outgoing {
    /// Writes the message into `buf` and returns its length. `buf` must hold
    /// [`Outgoing::MAX_LEN`] bytes.
    pub fn emit(&self, buf: &mut [u8]) -> agentsh_wire::Result<usize> {
        match self {
            Outgoing::Decision(n) => {
                let repr = n.to_repr();
                repr.emit(buf)?;
                Ok(repr.buffer_len())
            }
            Outgoing::Process(p) => {
                let repr = p.to_repr();
                repr.emit(buf)?;
                Ok(repr.buffer_len())
            }
        }
    }

    /// The longest message [`Outgoing::emit`] writes.
    pub const MAX_LEN: usize = agentsh_wire::notify::HEADER_LEN + file::LEN;
}

const _: () = assert!(agentsh_wire::notify::PROCESS_EVENT_LEN <= Outgoing::MAX_LEN);
const _: () = assert!(registry::LEN <= file::LEN);

/// The bounded queue.
#[derive(Debug, Default)]
pub struct NotificationQueue {
    queue: VecDeque<Outgoing>,
    queued: u64,
    dropped: u64,
}

impl NotificationQueue {
    /// Queues `n`, or drops and counts it when full. Never blocks.
    pub fn push(&mut self, n: Outgoing) {
        // Fallible growth: an allocation failure drops the notification, never the machine.
        if self.queue.len() >= QUEUE_CAPACITY || self.queue.try_reserve(1).is_err() {
            self.dropped += 1;
        } else {
            self.queue.push_back(n);
            self.queued += 1;
        }
    }

    /// The oldest waiting notification.
    pub fn pop(&mut self) -> Option<Outgoing> {
        self.queue.pop_front()
    }

    /// Waiting notifications.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Notifications queued so far.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Counts a notification that could not even be built (its copies could not be allocated).
    pub fn count_dropped(&mut self) {
        self.dropped += 1;
    }

    /// Notifications dropped because the queue was full or memory ran out.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
