//! Windows name comparison: the one upcasing rule that the kernel core (cache keys) and the policy
//! engine (pattern matching) share, so that a name the matcher considers equal is also the same
//! cache entry.
//!
//! Windows compares registry and file names case-insensitively by upcasing each UTF-16 code unit
//! independently (`RtlUpcaseUnicodeChar`, the NTFS `$UpCase` table). The table Windows ships is
//! the Unicode simple uppercase mapping restricted to one code unit in, one code unit out. This
//! crate implements exactly that rule:
//!
//! - a code unit whose simple uppercase mapping is a single BMP code point maps to it;
//! - everything else (already uppercase, no mapping, a mapping to several code points such as
//!   `ß` → `SS`, a mapping outside the BMP, and every surrogate half) maps to itself.
//!
//! Nothing here allocates, performs I/O or depends on the host OS.
#![no_std]

pub mod name;

/// Upcases one UTF-16 code unit the way Windows compares names.
#[inline]
#[must_use]
pub fn upcase_unit(unit: u16) -> u16 {
    if unit < 0x80 {
        return (unit as u8).to_ascii_uppercase() as u16;
    }
    match char::from_u32(u32::from(unit)) {
        // Surrogate halves are not scalar values: Windows leaves them unchanged.
        None => unit,
        Some(c) => {
            let upper = upcase_char(c);
            // `upcase_char` of a BMP char stays in the BMP (see there).
            u16::try_from(u32::from(upper)).unwrap_or(unit)
        }
    }
}

/// Upcases one character under the same rule as [`upcase_unit`]. Characters outside the BMP are
/// two code units on Windows and each half is left unchanged, so they map to themselves.
#[inline]
#[must_use]
pub fn upcase_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    if u32::from(c) > 0xFFFF {
        return c;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if u32::from(u) <= 0xFFFF => u,
        _ => c,
    }
}

/// Upcases a buffer of UTF-16 code units in place.
#[inline]
pub fn upcase_in_place(units: &mut [u16]) {
    for unit in units {
        *unit = upcase_unit(*unit);
    }
}

/// Upcases `src` into the front of `dst` (which must be at least as long). Runs of ASCII take a
/// branch-free path the compiler vectorizes; anything else falls back to [`upcase_unit`].
#[inline]
pub fn upcase_into(src: &[u16], dst: &mut [u16]) {
    let mut high = 0u16;
    for (d, &s) in dst.iter_mut().zip(src) {
        high |= s & 0xFF80;
        let is_lower = u16::from(s.wrapping_sub(u16::from(b'a')) < 26);
        *d = s - (is_lower << 5);
    }
    if high != 0 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = upcase_unit(s);
        }
    }
}

/// Compares two UTF-16 names as Windows does: equal length and equal after upcasing every unit.
#[must_use]
pub fn eq_ignore_case(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| x == y || upcase_unit(x) == upcase_unit(y))
}

/// Whether `name` starts with `prefix` under Windows case-insensitivity.
#[must_use]
pub fn starts_with_ignore_case(name: &[u16], prefix: &[u16]) -> bool {
    name.len() >= prefix.len() && eq_ignore_case(&name[..prefix.len()], prefix)
}

/// Compares a UTF-16 name with a Rust string under Windows case-insensitivity, without
/// allocating. Characters outside the BMP compare as their surrogate pairs, unchanged.
#[must_use]
pub fn eq_ignore_case_str(units: &[u16], s: &str) -> bool {
    let mut it = units.iter();
    for expected in s.encode_utf16() {
        match it.next() {
            Some(&got) if got == expected || upcase_unit(got) == upcase_unit(expected) => {}
            _ => return false,
        }
    }
    it.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> [u16; 64] {
        let mut buf = [0u16; 64];
        for (slot, u) in buf.iter_mut().zip(s.encode_utf16()) {
            *slot = u;
        }
        buf
    }

    #[test]
    fn ascii_letters_upcase_and_others_stay() {
        assert_eq!(upcase_unit(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(upcase_unit(u16::from(b'z')), u16::from(b'Z'));
        assert_eq!(upcase_unit(u16::from(b'\\')), u16::from(b'\\'));
        assert_eq!(upcase_unit(u16::from(b'*')), u16::from(b'*'));
    }

    #[test]
    fn non_ascii_letters_upcase_beyond_ascii() {
        // Windows upcasing is not ASCII-only: é → É, ü → Ü, я → Я, ω → Ω, ÿ → Ÿ.
        for (lower, upper) in [('é', 'É'), ('ü', 'Ü'), ('я', 'Я'), ('ω', 'Ω'), ('ÿ', 'Ÿ')]
        {
            assert_eq!(upcase_char(lower), upper);
            assert_eq!(upcase_unit(lower as u16), upper as u16);
        }
    }

    #[test]
    fn multi_unit_mappings_stay_unchanged() {
        // ß uppercases to "SS" in full Unicode casing; Windows keeps it.
        assert_eq!(upcase_char('ß'), 'ß');
        // ŉ uppercases to two code points.
        assert_eq!(upcase_char('ŉ'), 'ŉ');
    }

    #[test]
    fn surrogates_and_astral_chars_stay_unchanged() {
        assert_eq!(upcase_unit(0xD801), 0xD801);
        assert_eq!(upcase_unit(0xDC28), 0xDC28);
        // Deseret small long I (U+10428) has an uppercase form, but on Windows it is a surrogate
        // pair and each half maps to itself.
        assert_eq!(upcase_char('\u{10428}'), '\u{10428}');
    }

    #[test]
    fn comparisons_fold_case() {
        let a = units("\\REGISTRY\\Machine\\Software\\Évian");
        let b = units("\\registry\\machine\\SOFTWARE\\évian");
        assert!(eq_ignore_case(&a, &b));
        assert!(eq_ignore_case_str(
            &a[..28],
            "\\registry\\machine\\software\\é"
        ));
        assert!(!eq_ignore_case_str(
            &a[..28],
            "\\registry\\machine\\software\\"
        ));
        assert!(starts_with_ignore_case(&a, &units("\\REGISTRY")[..9]));
        assert!(!eq_ignore_case(&units("RUN")[..3], &units("RUNONCE")[..7]));
    }

    proptest::proptest! {
        #[test]
        fn bulk_upcasing_agrees_with_unit_upcasing(src in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..80)) {
            let mut dst = [0u16; 80];
            upcase_into(&src, &mut dst);
            for (d, s) in dst.iter().zip(&src) {
                proptest::prop_assert_eq!(*d, upcase_unit(*s));
            }
        }

        #[test]
        fn upcasing_is_idempotent(u in proptest::prelude::any::<u16>()) {
            proptest::prop_assert_eq!(upcase_unit(upcase_unit(u)), upcase_unit(u));
        }

        #[test]
        fn char_and_unit_rules_agree(c in proptest::prelude::any::<char>()) {
            if let Ok(unit) = u16::try_from(u32::from(c)) {
                proptest::prop_assert_eq!(u32::from(upcase_unit(unit)), u32::from(upcase_char(c)));
            }
        }
    }
}
