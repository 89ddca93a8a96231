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

    /// Copies the longest prefix of `units` that fits a field of `N` units and says whether
    /// anything was cut off. The driver uses this for names longer than a field; the cut is
    /// always reported (see the truncation flags of [`crate::op::OpFlags`]), never hidden. A name
    /// holding a NUL travels escaped ([`escaped_len`]), so the prefix is the longest whose escaped
    /// form fits: what the buffer holds can always be written to its field.
    pub fn from_units_truncating(units: &[u16]) -> (Self, bool) {
        let take = if units.contains(&0) {
            let mut extra = 0;
            let mut take = 0;
            for (i, &u) in units.iter().enumerate() {
                if u == 0 || u == ESCAPE {
                    extra += 1;
                }
                // The escaped length of `units[..=i]` (the NUL that makes escaping needed may
                // come later; counting it early only makes the cut shorter, never too long).
                if i + 1 + extra > N {
                    break;
                }
                take = i + 1;
            }
            take
        } else {
            units.len().min(N)
        };
        let mut buf = Self::EMPTY;
        buf.units[..take].copy_from_slice(&units[..take]);
        buf.len = take;
        (buf, units.len() > take)
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

/// The unit that introduces an escape in a field whose escape flag is set (see
/// [`crate::op::OpFlags::PATH_ESCAPED`]): `ESCAPE` followed by [`ESCAPED_NUL`] is a NUL of the
/// name, `ESCAPE ESCAPE` is the unit `ESCAPE` itself; nothing else may follow it.
pub const ESCAPE: u16 = 0xFFFF;
/// The unit after [`ESCAPE`] that stands for a NUL of the name (`'0'`).
pub const ESCAPED_NUL: u16 = 0x0030;

/// How many units `units` take in a field: their count, or, when they hold a NUL (and so travel
/// escaped), their count plus one per NUL and per [`ESCAPE`].
pub fn escaped_len(units: &[u16]) -> usize {
    if units.contains(&0) {
        units.len() + units.iter().filter(|&&u| u == 0 || u == ESCAPE).count()
    } else {
        units.len()
    }
}

/// The bytes of a field of `units_cap` units at `start` (empty if the buffer is short, which a
/// checked view has already ruled out).
fn field_bytes(buf: &[u8], start: usize, units_cap: usize) -> &[u8] {
    buf.get(start..start + 2 * units_cap).unwrap_or(&[])
}

const LANES_LOW: u128 = 0x0001_0001_0001_0001_0001_0001_0001_0001;
const LANES_HIGH: u128 = 0x8000_8000_8000_8000_8000_8000_8000_8000;

/// Whether any of the eight 16-bit lanes of `x` is zero (the classic SWAR test).
fn has_zero_lane(x: u128) -> bool {
    x.wrapping_sub(LANES_LOW) & !x & LANES_HIGH != 0
}

/// The length in units of the string in a field (up to its NUL), eight units at a time; `None`
/// if there is no NUL.
fn scan(bytes: &[u8]) -> Option<usize> {
    let mut blocks = bytes.chunks_exact(16);
    let mut base = 0;
    for block in blocks.by_ref() {
        let mut word = [0u8; 16];
        word.copy_from_slice(block);
        if has_zero_lane(u128::from_le_bytes(word)) {
            break;
        }
        base += 8;
    }
    bytes[base * 2..]
        .chunks_exact(2)
        .position(|pair| pair == [0, 0])
        .map(|i| base + i)
}

fn units_of(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
}

/// Validates a string field without copying it: returns its length in units as stored. Any
/// sequence of code units is a name (an unpaired surrogate included); only the terminator, and
/// for an `escaped` field its escapes, are checked.
pub(crate) fn check_field(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
    escaped: bool,
) -> Result<usize> {
    let bytes = field_bytes(buf, start, units_cap);
    let len = scan(bytes).ok_or(Error::Unterminated { field })?;
    if escaped {
        let mut it = units_of(&bytes[..len * 2]);
        while let Some(u) = it.next() {
            if u == ESCAPE && !matches!(it.next(), Some(ESCAPE | ESCAPED_NUL)) {
                return Err(Error::BadEscape { field });
            }
        }
    }
    Ok(len)
}

/// Copies the first `len` units of a field already validated by [`check_field`], resolving its
/// escapes when `escaped`.
pub(crate) fn copy_field<const N: usize>(
    buf: &[u8],
    start: usize,
    len: usize,
    escaped: bool,
) -> Utf16Buf<N> {
    let mut out = Utf16Buf::<N>::EMPTY;
    let bytes = field_bytes(buf, start, len);
    let mut it = units_of(bytes);
    while out.len < N
        && let Some(u) = it.next()
    {
        out.units[out.len] = match (escaped, u) {
            (true, ESCAPE) => match it.next() {
                Some(ESCAPED_NUL) => 0,
                _ => ESCAPE,
            },
            _ => u,
        };
        out.len += 1;
    }
    out
}

/// Reads and validates a NUL-terminated UTF-16LE string from a field of `units_cap` units at
/// byte `start` (a field without escapes). The string may use at most `units_cap - 1` units: a
/// field without a NUL is malformed.
pub(crate) fn read_field<const N: usize>(
    buf: &[u8],
    start: usize,
    units_cap: usize,
    field: &'static str,
) -> Result<Utf16Buf<N>> {
    let len = check_field(buf, start, units_cap, field, false)?;
    if len > N {
        return Err(Error::TooLong {
            field,
            max_units: N,
        });
    }
    Ok(copy_field(buf, start, len, false))
}

/// Writes `s` into a field that has no escape flag: a NUL in `s` is an error, never a silent cut.
pub(crate) fn write_plain_field(
    buf: &mut [u8],
    start: usize,
    units_cap: usize,
    s: &[u16],
    field: &'static str,
) -> Result<()> {
    if s.contains(&0) {
        return Err(Error::EmbeddedNul { field });
    }
    write_field(buf, start, units_cap, s, field).map(|_| ())
}

/// Writes `s` followed by a NUL and zero padding into a field of `units_cap` units. A string
/// holding a NUL is written escaped (see [`ESCAPE`]); returns whether it was.
pub(crate) fn write_field(
    buf: &mut [u8],
    start: usize,
    units_cap: usize,
    s: &[u16],
    field: &'static str,
) -> Result<bool> {
    let escaped = s.contains(&0);
    let stored = escaped_len(s);
    if stored >= units_cap {
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
    let (text, rest) = dst.split_at_mut(2 * stored);
    let mut pairs = text.chunks_exact_mut(2);
    for &unit in s {
        let parts: &[u16] = match (escaped, unit) {
            (true, 0) => &[ESCAPE, ESCAPED_NUL],
            (true, ESCAPE) => &[ESCAPE, ESCAPE],
            _ => core::slice::from_ref(&unit),
        };
        for (u, pair) in parts.iter().zip(pairs.by_ref()) {
            pair.copy_from_slice(&u.to_le_bytes());
        }
    }
    rest.fill(0);
    Ok(escaped)
}
