//! Names as text, losslessly, and how attacker-chosen text is shown.
//!
//! A Windows registry or file name is any sequence of UTF-16 code units: it may hold an unpaired
//! surrogate, an embedded NUL or any control character. The service and the policy engine work on
//! Rust text, so this module defines one injective mapping from code units to characters (the
//! *name text*) and its inverse:
//!
//! - a unit that is not a surrogate, and a well-formed surrogate pair, map to their character;
//! - an unpaired surrogate `u` (`0xD800..=0xDFFF`) maps to the reserved character
//!   `U+10F800 + (u - 0xD800)` (the last 2,048 code points of Supplementary Private Use
//!   Area-B, [`RESERVED_FIRST`]..=`U+10FFFF`);
//! - a well-formed pair whose character itself lies in that reserved block maps to the two
//!   reserved characters of its two halves, so that no real character is ever confused with an
//!   unpaired surrogate.
//!
//! [`units`] maps name text back, so `units(decode(u)) == u` for every `u`; two names are the same
//! text exactly when they are the same units. Policy patterns never contain reserved characters
//! (the loader rejects them), so an unpaired surrogate is matched by wildcards only and by no
//! literal, and case folding ([`crate::upcase_char`]) leaves every reserved character alone,
//! exactly as Windows leaves every surrogate unit alone.
//!
//! The second half is the one classification of dangerous characters ([`is_dangerous`]) and its
//! two renderings: [`Display`] for terminals and the Event Log (`\u{…}` escapes), and
//! [`write_json_escaped`] for JSON lines and OCSF (`\uXXXX` escapes, an unpaired surrogate as its
//! own `\uD800`-style escape).

use core::fmt::{self, Write};

/// The first reserved character: `U+10F800 + k` stands for the unpaired surrogate `0xD800 + k`.
pub const RESERVED_FIRST: u32 = 0x10_F800;

/// Whether `c` is one of the reserved characters standing for a surrogate unit.
#[inline]
#[must_use]
pub fn is_reserved(c: char) -> bool {
    u32::from(c) >= RESERVED_FIRST
}

/// The surrogate unit a reserved character stands for.
#[inline]
#[must_use]
pub fn reserved_unit(c: char) -> Option<u16> {
    let v = u32::from(c);
    (v >= RESERVED_FIRST).then(|| 0xD800 + (v - RESERVED_FIRST) as u16)
}

/// The reserved character standing for the surrogate unit `u` (`0xD800..=0xDFFF`).
#[inline]
fn reserved_char(u: u16) -> char {
    char::from_u32(RESERVED_FIRST + u32::from(u - 0xD800)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn is_high(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn is_low(u: u16) -> bool {
    (0xDC00..0xE000).contains(&u)
}

/// The name text of `units` (see the module documentation), character by character.
#[must_use]
pub fn decode(units: &[u16]) -> Decode<'_> {
    Decode {
        units,
        pos: 0,
        pending: None,
    }
}

/// Iterator returned by [`decode`].
#[derive(Debug, Clone)]
pub struct Decode<'a> {
    units: &'a [u16],
    pos: usize,
    pending: Option<char>,
}

impl Iterator for Decode<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if let Some(c) = self.pending.take() {
            return Some(c);
        }
        let u = *self.units.get(self.pos)?;
        self.pos += 1;
        if !(0xD800..0xE000).contains(&u) {
            return char::from_u32(u32::from(u));
        }
        if is_high(u)
            && let Some(&low) = self.units.get(self.pos)
            && is_low(low)
        {
            self.pos += 1;
            let v = 0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
            if v >= RESERVED_FIRST {
                self.pending = Some(reserved_char(low));
                return Some(reserved_char(u));
            }
            return char::from_u32(v);
        }
        Some(reserved_char(u))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.units.len() - self.pos;
        let pending = usize::from(self.pending.is_some());
        (left.div_ceil(2) + pending, Some(left + pending))
    }
}

/// The code units of name text: the inverse of [`decode`] (a reserved character is its one
/// surrogate unit; every other character is its UTF-16 encoding).
pub fn units(text: &str) -> impl Iterator<Item = u16> + '_ {
    text.chars().flat_map(|c| {
        let mut buf = [0u16; 2];
        let n = match reserved_unit(c) {
            Some(u) => {
                buf[0] = u;
                1
            }
            None => c.encode_utf16(&mut buf).len(),
        };
        buf.into_iter().take(n)
    })
}

/// Whether a name text holds any reserved character (an unpaired surrogate, or half of a
/// character of the reserved block).
#[must_use]
pub fn has_reserved(text: &str) -> bool {
    // Every reserved character is encoded in UTF-8 as F4 8F (A0..BF) ..; a cheap byte test.
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == 0xF4 && w[1] == 0x8F && w[2] >= 0xA0)
}

/// The one classification of characters that must never reach an operator's screen, a log line
/// or an event unescaped: C0 and C1 controls and DEL (terminal escape sequences, CR, NEL), the
/// line and paragraph separators, bidirectional controls and overrides, zero-width, invisible and
/// other format characters (`General_Category=Cf` and the default-ignorable code points: soft
/// hyphen, joiners, variation selectors, Hangul fillers, tags, interlinear annotation marks), and
/// the reserved characters standing for unpaired surrogates.
#[must_use]
pub fn is_dangerous(c: char) -> bool {
    let v = u32::from(c);
    if v < 0x20 || (0x7F..=0x9F).contains(&v) {
        return true;
    }
    if v < 0xA0 {
        return false;
    }
    matches!(
        v,
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    ) || v >= RESERVED_FIRST
}

/// Whether any character of `text` is [dangerous](is_dangerous).
#[must_use]
pub fn has_dangerous(text: &str) -> bool {
    text.chars().any(is_dangerous)
}

/// The display rendering of attacker-chosen text, for terminals and the Event Log: every
/// [dangerous](is_dangerous) character becomes a visible `\u{1b}` escape (an unpaired surrogate
/// as `\u{d800}`, its unit), and a literal `\u{` in the text becomes `\u{5c}u{` so that no name
/// can spell an escape it does not contain. Everything else is shown as is.
#[derive(Debug, Clone, Copy)]
pub struct Display<'a>(pub &'a str);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_display(f, self.0)
    }
}

/// Writes the [`Display`] rendering of `text` to `out`.
pub fn write_display(out: &mut impl Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some((i, c)) = rest
        .char_indices()
        .find(|&(i, c)| is_dangerous(c) || (c == '\\' && rest[i + 1..].starts_with("u{")))
    {
        out.write_str(&rest[..i])?;
        match reserved_unit(c) {
            Some(u) => write!(out, "\\u{{{u:x}}}")?,
            None => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// Writes `text` as the inside of a JSON string (no quotes), losslessly: `"` and `\` as `\"` and
/// `\\`, every [dangerous](is_dangerous) character as `\uXXXX` (a character outside the BMP as
/// its surrogate pair, an unpaired surrogate as its own single escape, e.g. `\ud800`), everything
/// else as is. A JSON reader that keeps unpaired surrogates (or [`read_json_string`]) gets the
/// exact code units back.
pub fn write_json_escaped(out: &mut impl Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some((i, c)) = rest
        .char_indices()
        .find(|&(_, c)| c == '"' || c == '\\' || is_dangerous(c))
    {
        out.write_str(&rest[..i])?;
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            _ => match reserved_unit(c) {
                Some(u) => write!(out, "\\u{u:04x}")?,
                None => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        write!(out, "\\u{u:04x}")?;
                    }
                }
            },
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// Makes serialized JSON lossless and line-safe: every [dangerous](is_dangerous) character that a
/// JSON serializer wrote raw (DEL, C1 controls, U+2028, U+2029, bidi and invisible characters,
/// the reserved characters of unpaired surrogates) becomes its `\uXXXX` escape, as
/// [`write_json_escaped`] writes it. Raw non-ASCII characters appear in serialized JSON only inside
/// strings, so this is safe on a whole document.
pub fn write_json_safe(out: &mut impl Write, json: &str) -> fmt::Result {
    let mut rest = json;
    while let Some((i, c)) = rest.char_indices().find(|&(_, c)| is_dangerous(c)) {
        out.write_str(&rest[..i])?;
        match reserved_unit(c) {
            Some(u) => write!(out, "\\u{u:04x}")?,
            None => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    write!(out, "\\u{u:04x}")?;
                }
            }
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// Rewrites serialized JSON so that a standard JSON reader returns name text: every `\uXXXX`
/// escape of a surrogate is resolved here (a pair into its character, or into two reserved
/// characters when the character lies in the reserved block; an unpaired one into its reserved
/// character), and a raw reserved-block character is split into its two halves' reserved
/// characters. The output is still JSON; everything else is copied unchanged. Events written by
/// [`write_json_escaped`] / [`write_json_safe`] read back to the exact code units.
pub fn write_json_names(out: &mut impl Write, json: &str) -> fmt::Result {
    let bytes = json.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u16> {
        let s = json.get(at..at + 4)?;
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let Some(u) = hex4(i + 2) else {
                    i += 2;
                    continue;
                };
                if !(0xD800..0xE000).contains(&u) {
                    i += 6;
                    continue;
                }
                out.write_str(&json[copied..i])?;
                let low = if is_high(u) && json[i + 6..].starts_with("\\u") {
                    hex4(i + 8).filter(|&l| is_low(l))
                } else {
                    None
                };
                let pair = [u, low.unwrap_or(0)];
                let n = if low.is_some() { 2 } else { 1 };
                for c in decode(&pair[..n]) {
                    out.write_char(c)?;
                }
                i += 6 * n;
                copied = i;
            }
            b'\\' => i += 2,
            0xF4 if bytes.get(i + 1) == Some(&0x8F)
                && bytes.get(i + 2).is_some_and(|&b| b >= 0xA0) =>
            {
                out.write_str(&json[copied..i])?;
                let c = json[i..]
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut buf = [0u16; 2];
                for r in decode(c.encode_utf16(&mut buf)) {
                    out.write_char(r)?;
                }
                i += c.len_utf8();
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.write_str(&json[copied..])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn text(units: &[u16]) -> String {
        decode(units).collect()
    }

    #[test]
    fn ordinary_names_decode_to_their_characters() {
        let u: Vec<u16> = "Run\\Updater \u{1F600}".encode_utf16().collect();
        assert_eq!(text(&u), "Run\\Updater \u{1F600}");
        assert_eq!(units(&text(&u)).collect::<Vec<_>>(), u);
    }

    #[test]
    fn an_unpaired_surrogate_is_a_reserved_character_and_comes_back() {
        let u = [0xD800, u16::from(b'U'), 0xDC00];
        let t = text(&u);
        assert_eq!(
            t.chars().map(u32::from).collect::<Vec<_>>(),
            [0x10F800, u32::from('U'), 0x10FC00]
        );
        assert!(has_reserved(&t));
        assert_eq!(units(&t).collect::<Vec<_>>(), u);
    }

    #[test]
    fn a_real_character_of_the_reserved_block_is_not_an_unpaired_surrogate() {
        // U+10F800 is the pair DBFE DC00; an unpaired DBFE followed by nothing differs from it.
        let real = [0xDBFE, 0xDC00];
        let lone = [0xD800];
        assert_ne!(text(&real), text(&lone));
        assert_eq!(text(&real).chars().count(), 2);
        assert_eq!(units(&text(&real)).collect::<Vec<_>>(), real);
    }

    #[test]
    fn embedded_nul_is_kept() {
        let u = [0, u16::from(b'x')];
        assert_eq!(text(&u), "\0x");
        assert_eq!(units("\0x").collect::<Vec<_>>(), u);
    }

    #[test]
    fn display_escapes_every_dangerous_character_visibly() {
        let t = text(&[u16::from(b'a'), 0x1B, 0xD800, 0x202E, 0x2028, 0x85, 0x7F]);
        let shown = std::format!("{}", Display(&t));
        assert_eq!(shown, "a\\u{1b}\\u{d800}\\u{202e}\\u{2028}\\u{85}\\u{7f}");
        assert_eq!(std::format!("{}", Display("a\\u{1b}")), "a\\u{5c}u{1b}");
        assert_eq!(std::format!("{}", Display("HKCU\\Run")), "HKCU\\Run");
    }

    #[test]
    fn json_escaping_is_lossless_and_reads_back() {
        let u = [0xD800, u16::from(b'"'), 0x2029, 0xDBFE, 0xDC00, 0, 0xDC01];
        let t = text(&u);
        let mut json = String::from("\"");
        write_json_escaped(&mut json, &t).expect("writes to a String");
        json.push('"');
        assert_eq!(json, "\"\\ud800\\\"\\u2029\\udbfe\\udc00\\u0000\\udc01\"");
        let mut fixed = String::new();
        write_json_names(&mut fixed, &json).expect("writes to a String");
        let back: String = serde_json::from_str(&fixed).expect("valid JSON");
        assert_eq!(units(&back).collect::<Vec<_>>(), u);
    }

    #[test]
    fn the_classifier_covers_the_reviewed_characters() {
        for v in [
            0x1B, 0x7F, 0x85, 0x9B, 0x202E, 0x2067, 0x200F, 0x061C, 0x2028, 0x2029, 0x00AD, 0x2060,
            0x2061, 0x180E, 0xE0041, 0xFFF9, 0x206A, 0x115F, 0x3164, 0x034F, 0xFE0F,
        ] {
            assert!(
                is_dangerous(char::from_u32(v).expect("a scalar value")),
                "U+{v:04X}"
            );
        }
        for c in ['a', '\\', ' ', 'é', 'і', '\u{1F600}', '中'] {
            assert!(!is_dangerous(c), "{c:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_unit_sequence_round_trips(u in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..64)) {
            let t = text(&u);
            proptest::prop_assert_eq!(units(&t).collect::<Vec<_>>(), u);
        }

        #[test]
        fn two_names_are_one_text_exactly_when_they_are_one_sequence(
            a in proptest::collection::vec(0xD7F0u16..0xE010, 0..6),
            b in proptest::collection::vec(0xD7F0u16..0xE010, 0..6),
        ) {
            proptest::prop_assert_eq!(text(&a) == text(&b), a == b);
        }

        #[test]
        fn json_lines_carry_every_name_exactly(u in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..32)) {
            let mut json = String::from("\"");
            write_json_escaped(&mut json, &text(&u)).expect("writes to a String");
            json.push('"');
            let raw = json.contains(['\u{2028}', '\u{2029}', '\u{85}', '\n', '\r']);
            proptest::prop_assert!(!raw, "raw line break in {}", json);
            let mut fixed = String::new();
            write_json_names(&mut fixed, &json).expect("writes to a String");
            let back: String = serde_json::from_str(&fixed).expect("valid JSON");
            proptest::prop_assert_eq!(units(&back).collect::<Vec<_>>(), u);
        }

        #[test]
        fn case_folding_text_and_units_agree(u in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..32)) {
            let folded_text: String = text(&u).chars().map(crate::upcase_char).collect();
            let mut folded_units = u.clone();
            crate::upcase_in_place(&mut folded_units);
            proptest::prop_assert_eq!(folded_text, text(&folded_units));
        }
    }
}
