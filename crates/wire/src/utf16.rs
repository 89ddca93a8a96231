//! Fixed-size UTF-16LE string fields: NUL-terminated inside their buffer, held without
//! allocation in a [`Utf16Buf`].

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

/// The bytes of a field of `units_cap` units at `start` (empty if the buffer is short, which a
/// checked view has already ruled out).
fn field_bytes(buf: &[u8], start: usize, units_cap: usize) -> &[u8] {
    buf.get(start..start + 2 * units_cap).unwrap_or(&[])
}

const LANES_LOW: u128 = 0x0001_0001_0001_0001_0001_0001_0001_0001;
const LANES_HIGH: u128 = 0x8000_8000_8000_8000_8000_8000_8000_8000;
const LANES_SURROGATE_MASK: u128 = 0xF800_F800_F800_F800_F800_F800_F800_F800;
const LANES_SURROGATE: u128 = 0xD800_D800_D800_D800_D800_D800_D800_D800;

/// Whether any of the eight 16-bit lanes of `x` is zero (the classic SWAR test).
fn has_zero_lane(x: u128) -> bool {
    x.wrapping_sub(LANES_LOW) & !x & LANES_HIGH != 0
}

/// Scans a field: the string's length in units (up to its NUL) and whether it holds any
/// surrogate. Eight units at a time; `None` if there is no NUL.
fn scan(bytes: &[u8]) -> Option<(usize, bool)> {
    let mut surrogates = false;
    let mut blocks = bytes.chunks_exact(16);
    let mut base = 0;
    for block in blocks.by_ref() {
        let mut word = [0u8; 16];
        word.copy_from_slice(block);
        let x = u128::from_le_bytes(word);
        if has_zero_lane(x) {
            break;
        }
        surrogates |= has_zero_lane((x & LANES_SURROGATE_MASK) ^ LANES_SURROGATE);
        base += 8;
    }
    for (i, pair) in bytes[base * 2..].chunks_exact(2).enumerate() {
        let unit = u16::from_le_bytes([pair[0], pair[1]]);
        if unit == 0 {
            return Some((base + i, surrogates));
        }
        surrogates |= unit & 0xF800 == 0xD800;
    }
    None
}

/// Validates a string field without copying it: returns its length in units.
pub(crate) fn check_field(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
) -> Result<usize> {
    let bytes = field_bytes(buf, start, units_cap);
    let (len, surrogates) = scan(bytes).ok_or(Error::Unterminated { field })?;
    if surrogates {
        let units = bytes[..len * 2]
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]));
        if char::decode_utf16(units).any(|r| r.is_err()) {
            return Err(Error::InvalidUtf16 { field });
        }
    }
    Ok(len)
}

/// Copies the first `len` units of a field already validated by [`check_field`].
pub(crate) fn copy_field<const N: usize>(buf: &[u8], start: usize, len: usize) -> Utf16Buf<N> {
    let mut out = Utf16Buf::<N>::EMPTY;
    let len = len.min(N);
    let bytes = field_bytes(buf, start, len);
    for (dst, pair) in out.units.iter_mut().zip(bytes.chunks_exact(2)) {
        *dst = u16::from_le_bytes([pair[0], pair[1]]);
    }
    out.len = len;
    out
}

/// Reads and validates a NUL-terminated UTF-16LE string from a field of `units_cap` units at
/// byte `start`. The string may use at most `units_cap - 1` units: a field without a NUL is
/// malformed.
pub(crate) fn read_field<const N: usize>(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
) -> Result<Utf16Buf<N>> {
    let len = check_field(buf, start, units_cap, field)?;
    if len > N {
        return Err(Error::TooLong {
            field,
            max_units: N,
        });
    }
    Ok(copy_field(buf, start, len))
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
    let Some(dst) = buf.get_mut(start..start + 2 * units_cap) else {
        return Err(Error::Truncated {
            needed: start + 2 * units_cap,
            got: buf.len(),
        });
    };
    let (text, rest) = dst.split_at_mut(2 * s.len());
    for (pair, unit) in text.chunks_exact_mut(2).zip(s) {
        pair.copy_from_slice(&unit.to_le_bytes());
    }
    rest.fill(0);
    Ok(())
}
