//! Little-endian field access on slices whose length a checked view has already validated.
//!
//! Callers pass ranges from a message's `field` module; a view only calls these after
//! `new_checked` proved the buffer long enough, so the `get` fallbacks are never taken there.

use core::ops::Range;

use crate::{Error, Result};

pub(crate) fn check_len(buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() < needed {
        return Err(Error::Truncated {
            needed,
            got: buf.len(),
        });
    }
    Ok(())
}

fn array<const N: usize>(buf: &[u8], start: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(start..start + N) {
        out.copy_from_slice(src);
    }
    out
}

pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array(buf, at))
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(buf, at))
}

pub(crate) fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(array(buf, at))
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(buf, at))
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

pub(crate) fn set_u16(buf: &mut [u8], at: usize, v: u16) {
    put(buf, at, &v.to_le_bytes());
}

pub(crate) fn set_u32(buf: &mut [u8], at: usize, v: u32) {
    put(buf, at, &v.to_le_bytes());
}

pub(crate) fn set_i32(buf: &mut [u8], at: usize, v: i32) {
    put(buf, at, &v.to_le_bytes());
}

pub(crate) fn set_u64(buf: &mut [u8], at: usize, v: u64) {
    put(buf, at, &v.to_le_bytes());
}

pub(crate) fn zero(buf: &mut [u8], range: Range<usize>) {
    if let Some(dst) = buf.get_mut(range) {
        dst.fill(0);
    }
}

/// Validates the common prologue of every port message: `MessageType u16 @0`, `MessageSize u16
/// @2`. The buffer must hold at least `size` bytes and the size field must equal `size`.
pub(crate) fn check_prologue(buf: &[u8], expected_type: u16, size: usize) -> Result<()> {
    check_len(buf, 4)?;
    let ty = u16_at(buf, 0);
    if ty != expected_type {
        return Err(Error::WrongType {
            expected: expected_type,
            got: ty,
        });
    }
    let declared = usize::from(u16_at(buf, 2));
    if declared != size {
        return Err(Error::SizeMismatch {
            declared,
            expected: size,
        });
    }
    check_len(buf, size)
}

/// Writes the common prologue.
pub(crate) fn emit_prologue(buf: &mut [u8], ty: u16, size: usize) {
    set_u16(buf, 0, ty);
    set_u16(buf, 2, u16::try_from(size).unwrap_or(u16::MAX));
}
