//! Fixed-size UTF-16LE string fields: NUL-terminated inside their buffer, held without
//! allocation in a [`Utf16Buf`].

use crate::bytes::{set_u16, u16_at, zero};
use crate::{Error, Result};

/// A UTF-16 string of at most `N` code units, stored inline (no allocation, usable in the kernel).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Utf16Buf<const N: usize> {
    units: [u16; N],
    len: usize,
}

impl<const N: usize> Utf16Buf<N> {
    /// The empty string.
    pub const EMPTY: Self = Utf16Buf {
        units: [0; N],
        len: 0,
    };

    /// Copies `units`; `None` if longer than `N`.
    pub fn from_units(units: &[u16]) -> Option<Self> {
        if units.len() > N {
            return None;
        }
        let mut buf = Self::EMPTY;
        buf.units[..units.len()].copy_from_slice(units);
        buf.len = units.len();
        Some(buf)
    }

    /// Copies the first `N` units of `units` and says whether anything was cut off. The driver
    /// uses this for names longer than a field; the cut is always reported (see the truncation
    /// flags of [`crate::op::OpFlags`]), never hidden.
    pub fn from_units_truncating(units: &[u16]) -> (Self, bool) {
        let take = units.len().min(N);
        let mut buf = Self::EMPTY;
        buf.units[..take].copy_from_slice(&units[..take]);
        buf.len = take;
        (buf, units.len() > N)
    }

    /// Encodes `s`; `None` if it needs more than `N` units.
    pub fn encode(s: &str) -> Option<Self> {
        let mut buf = Self::EMPTY;
        for unit in s.encode_utf16() {
            if buf.len == N {
                return None;
            }
            buf.units[buf.len] = unit;
            buf.len += 1;
        }
        Some(buf)
    }

    /// The code units.
    pub fn as_units(&self) -> &[u16] {
        &self.units[..self.len]
    }

    /// Number of code units.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The characters; a valid buffer (one produced by [`read_field`]) never holds an unpaired
    /// surrogate, but one built with [`Utf16Buf::from_units`] may, and yields U+FFFD for it.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        char::decode_utf16(self.as_units().iter().copied())
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
    }
}

impl<const N: usize> core::fmt::Debug for Utf16Buf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        f.write_char('"')?;
        for c in self.chars() {
            for e in c.escape_debug() {
                f.write_char(e)?;
            }
        }
        f.write_char('"')
    }
}

impl<const N: usize> core::fmt::Display for Utf16Buf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        self.chars().try_for_each(|c| f.write_char(c))
    }
}

/// Reads a NUL-terminated UTF-16LE string from a field of `units_cap` units at byte `start`.
/// The string may use at most `units_cap - 1` units: a field without a NUL is malformed.
pub(crate) fn read_field<const N: usize>(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
) -> Result<Utf16Buf<N>> {
    let mut out = Utf16Buf::<N>::EMPTY;
    for i in 0..units_cap {
        let unit = u16_at(buf, start + 2 * i);
        if unit == 0 {
            if char::decode_utf16(out.as_units().iter().copied()).any(|r| r.is_err()) {
                return Err(Error::InvalidUtf16 { field });
            }
            return Ok(out);
        }
        if out.len == N {
            return Err(Error::TooLong {
                field,
                max_units: N,
            });
        }
        out.units[out.len] = unit;
        out.len += 1;
    }
    Err(Error::Unterminated { field })
}

/// Writes `s` followed by a NUL and zero padding into a field of `units_cap` units.
pub(crate) fn write_field(
    buf: &mut [u8],
    start: usize,
    units_cap: usize,
    s: &[u16],
    field: &'static str,
) -> Result<()> {
    if s.len() >= units_cap {
        return Err(Error::TooLong {
            field,
            max_units: units_cap - 1,
        });
    }
    zero(buf, start..start + 2 * units_cap);
    for (i, &unit) in s.iter().enumerate() {
        set_u16(buf, start + 2 * i, unit);
    }
    Ok(())
}

/// Validates a string field without copying it: returns its length in units.
pub(crate) fn check_field(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
) -> Result<usize> {
    let mut len = 0;
    let units = (0..units_cap).map(|i| u16_at(buf, start + 2 * i));
    let mut terminated = false;
    for unit in units.clone() {
        if unit == 0 {
            terminated = true;
            break;
        }
        len += 1;
    }
    if !terminated {
        return Err(Error::Unterminated { field });
    }
    if char::decode_utf16(units.take(len)).any(|r| r.is_err()) {
        return Err(Error::InvalidUtf16 { field });
    }
    Ok(len)
}
