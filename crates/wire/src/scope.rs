//! SetReadScope (user → kernel, 0x19): the compiled read scope, the key and path prefixes under
//! which the policy can decide a read other than "allow, unlogged". The kernel queries a session
//! read only inside the scope (when QUERY_READS is set) and answers the rest itself.
//!
//! Layout (little-endian, packed): `MessageType u16 @0` (0x19), `MessageSize u16 @2` (the whole
//! message, at most [`MAX_LEN`]), `EntryCount u16 @4`, reserved `u16 @6` (zero), then
//! `EntryCount` entries from `@8`, each `Kind u16 @+0` (1 registry key, 2 file path),
//! `Units u16 @+2` (1..=[`MAX_PREFIX_UNITS`]), then `Units` UTF-16LE code units, no NUL.
//! The entries fill the message exactly.

use crate::bytes::{check_len, set_u16, u16_at, zero};
use crate::op::MessageType;
use crate::{Error, Result};

/// Offsets of the fixed part.
pub mod field {
    pub const ENTRY_COUNT: usize = 4;
    pub const RESERVED: usize = 6;
    pub const ENTRIES: usize = 8;
}

/// Bytes before the first entry.
pub const HEADER_LEN: usize = 8;
/// Largest message the kernel accepts (the size field is 16 bits; the kernel copies at most this).
pub const MAX_LEN: usize = 32 * 1024;
/// Longest prefix, in code units (a registry key path is at most 32767 bytes; a scope entry is a
/// rule's literal prefix and far shorter).
pub const MAX_PREFIX_UNITS: usize = 1024;
/// Most entries in one message.
pub const MAX_ENTRIES: usize = 1024;

/// What an entry's prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ScopeKind {
    /// A registry key path in the kernel's form (`\REGISTRY\MACHINE\...`).
    Registry = 1,
    /// A file path in the form the driver reports (`\Device\HarddiskVolumeN\...`).
    File = 2,
}

impl ScopeKind {
    fn from_u16(v: u16) -> Result<Self> {
        match v {
            1 => Ok(ScopeKind::Registry),
            2 => Ok(ScopeKind::File),
            v => Err(Error::BadValue {
                field: "Kind",
                value: u32::from(v),
            }),
        }
    }
}

/// A validated SetReadScope message.
#[derive(Debug, Clone, Copy)]
pub struct ReadScopeView<'a> {
    buf: &'a [u8],
    count: usize,
}

impl<'a> ReadScopeView<'a> {
    /// Validates the whole message: type, size field, count, every entry's kind and length, and
    /// that the entries fill the message exactly.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        check_len(buf, HEADER_LEN)?;
        let ty = u16_at(buf, 0);
        if ty != MessageType::SetReadScope as u16 {
            return Err(Error::WrongType {
                expected: MessageType::SetReadScope as u16,
                got: ty,
            });
        }
        let size = usize::from(u16_at(buf, 2));
        if size > MAX_LEN {
            return Err(Error::FrameTooLarge { len: size });
        }
        if size != buf.len() || size < HEADER_LEN {
            return Err(Error::SizeMismatch {
                declared: size,
                expected: buf.len(),
            });
        }
        let count = usize::from(u16_at(buf, field::ENTRY_COUNT));
        if count > MAX_ENTRIES {
            return Err(Error::BadValue {
                field: "EntryCount",
                value: count as u32,
            });
        }
        let reserved = u16_at(buf, field::RESERVED);
        if reserved != 0 {
            return Err(Error::BadValue {
                field: "Reserved",
                value: u32::from(reserved),
            });
        }
        let mut at = HEADER_LEN;
        for _ in 0..count {
            check_len(buf, at + 4)?;
            ScopeKind::from_u16(u16_at(buf, at))?;
            let units = usize::from(u16_at(buf, at + 2));
            if units == 0 || units > MAX_PREFIX_UNITS {
                return Err(Error::BadValue {
                    field: "Units",
                    value: units as u32,
                });
            }
            at += 4 + 2 * units;
            check_len(buf, at)?;
        }
        if at != size {
            return Err(Error::SizeMismatch {
                declared: size,
                expected: at,
            });
        }
        Ok(ReadScopeView { buf, count })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the scope is empty (no read is queried).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries in message order: kind and the prefix's code units.
    pub fn entries(&self) -> impl Iterator<Item = (ScopeKind, ScopeUnits<'a>)> + 'a {
        let buf = self.buf;
        let mut at = HEADER_LEN;
        (0..self.count).map(move |_| {
            let kind = ScopeKind::from_u16(u16_at(buf, at)).unwrap_or(ScopeKind::Registry);
            let units = usize::from(u16_at(buf, at + 2));
            let start = at + 4;
            at = start + 2 * units;
            (kind, ScopeUnits(buf.get(start..at).unwrap_or(&[])))
        })
    }
}

/// A prefix's code units as they lie in the message (little-endian pairs).
#[derive(Debug, Clone, Copy)]
pub struct ScopeUnits<'a>(&'a [u8]);

impl ScopeUnits<'_> {
    /// Number of code units.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether there are none (never, in a validated message).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The code units in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    }
}

/// Bytes a message with these entries takes, or `None` when it exceeds [`MAX_LEN`],
/// [`MAX_ENTRIES`] or an entry exceeds [`MAX_PREFIX_UNITS`] or is empty.
pub fn encoded_len<'e>(entries: impl IntoIterator<Item = (ScopeKind, &'e [u16])>) -> Option<usize> {
    let mut n = HEADER_LEN;
    let mut count = 0usize;
    for (_, units) in entries {
        if units.is_empty() || units.len() > MAX_PREFIX_UNITS {
            return None;
        }
        n += 4 + 2 * units.len();
        count += 1;
    }
    (n <= MAX_LEN && count <= MAX_ENTRIES).then_some(n)
}

/// Writes a SetReadScope message into `buf` and returns its length. Refuses (never truncates) a
/// scope over the limits.
pub fn emit<'e>(
    entries: impl IntoIterator<Item = (ScopeKind, &'e [u16])> + Clone,
    buf: &mut [u8],
) -> Result<usize> {
    let n = encoded_len(entries.clone()).ok_or(Error::TooLong {
        field: "ReadScope",
        max_units: MAX_LEN / 2,
    })?;
    check_len(buf, n)?;
    zero(buf, 0..n);
    set_u16(buf, 0, MessageType::SetReadScope as u16);
    set_u16(buf, 2, n as u16);
    let mut at = HEADER_LEN;
    let mut count = 0u16;
    for (kind, units) in entries {
        set_u16(buf, at, kind as u16);
        set_u16(buf, at + 2, units.len() as u16);
        at += 4;
        for &u in units {
            set_u16(buf, at, u);
            at += 2;
        }
        count += 1;
    }
    set_u16(buf, field::ENTRY_COUNT, count);
    Ok(n)
}
