//! Security identifiers in their two documented forms (MS-DTYP 2.4.2.1 string form `S-1-5-32-544`,
//! MS-DTYP 2.4.2.2 packet form), and the per-session SID the restricted-token fallback carries.
//!
//! A fallback session's token lists a fresh SID among its restricting SIDs:
//! `S-1-9-1634169704-a-b-c-d` — the resource manager authority (9, `SECURITY_RESOURCE_MANAGER_
//! AUTHORITY`), agentsh's fixed first sub-authority (`0x61677368`, the bytes of "agsh"), and 128
//! random bits from the operating system's generator as four sub-authorities. agentsh.sys reads it
//! from the session root's primary token and recognises a broker thread impersonating that token
//! by it (docs/driver.md, "Broker attribution"); the form is what lets the driver find it among the
//! token's other restricting SIDs without a change to the service's messages.

use std::fmt;

/// `SECURITY_RESOURCE_MANAGER_AUTHORITY` (winnt.h; MS-DTYP 2.4.2.4: `S-1-9`).
pub const RESOURCE_MANAGER_AUTHORITY: u64 = 9;
/// agentsh's first sub-authority under the resource manager authority: `0x61677368` ("agsh").
pub const SESSION_SUB_AUTHORITY: u32 = 0x6167_7368;
/// Sub-authorities of a session SID: the fixed one and four random ones.
pub const SESSION_SUB_AUTHORITIES: usize = 5;

/// Most sub-authorities a SID may have (MS-DTYP 2.4.2.2: SubAuthorityCount at most 15).
pub const MAX_SUB_AUTHORITIES: usize = 15;
/// Largest identifier authority: six bytes.
const MAX_AUTHORITY: u64 = (1 << 48) - 1;

/// A SID: revision 1, a 48-bit identifier authority and 1 to 15 sub-authorities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    authority: u64,
    subs: Vec<u32>,
}

/// Why a string or a byte sequence is not a SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    #[error("`{text}` is not a SID: {reason}")]
    Text { text: String, reason: &'static str },
    #[error("{len} bytes are not a SID: {reason}")]
    Bytes { len: usize, reason: &'static str },
    #[error("a SID has 1 to 15 sub-authorities and a 48-bit authority; got {subs} and {authority}")]
    Parts { authority: u64, subs: usize },
}

impl Sid {
    /// A SID from its parts; at most 15 sub-authorities, at least one, authority below 2^48.
    pub fn new(authority: u64, subs: &[u32]) -> Result<Sid, SidError> {
        if subs.is_empty() || subs.len() > MAX_SUB_AUTHORITIES || authority > MAX_AUTHORITY {
            return Err(SidError::Parts {
                authority,
                subs: subs.len(),
            });
        }
        Ok(Sid {
            authority,
            subs: subs.to_vec(),
        })
    }

    pub fn authority(&self) -> u64 {
        self.authority
    }

    pub fn sub_authorities(&self) -> &[u32] {
        &self.subs
    }

    /// Reads the string form (MS-DTYP 2.4.2.1): `S-1-`, the authority in decimal (at most ten
    /// digits) or as `0x` and twelve hexadecimal digits, then `-` and each sub-authority in
    /// decimal, without leading zeros. The grammar allows either form for any authority; the
    /// writer ([`fmt::Display`]) uses decimal below 2^32 and hexadecimal from there, as the
    /// specification says. The `S` may be lower case, as Windows' own reader accepts.
    pub fn parse(text: &str) -> Result<Sid, SidError> {
        let bad = |reason| SidError::Text {
            text: text.to_owned(),
            reason,
        };
        let rest = text
            .strip_prefix("S-1-")
            .or_else(|| text.strip_prefix("s-1-"))
            .ok_or_else(|| bad("it does not start with `S-1-`"))?;
        let mut parts = rest.split('-');
        let authority_text = parts.next().unwrap_or("");
        let authority = if let Some(hex) = authority_text
            .strip_prefix("0x")
            .or_else(|| authority_text.strip_prefix("0X"))
        {
            if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    "a hexadecimal authority is `0x` and exactly twelve hex digits",
                ));
            }
            u64::from_str_radix(hex, 16).map_err(|_| bad("bad authority"))?
        } else {
            decimal(authority_text)
                .ok_or_else(|| bad("the authority is not a decimal number without leading zeros"))?
        };
        if authority > MAX_AUTHORITY {
            return Err(bad("the authority does not fit in six bytes"));
        }
        let mut subs = Vec::new();
        for part in parts {
            let value = decimal(part)
                .filter(|&v| v <= u64::from(u32::MAX))
                .ok_or_else(|| {
                    bad("a sub-authority is a 32-bit decimal number without leading zeros")
                })?;
            if subs.len() == MAX_SUB_AUTHORITIES {
                return Err(bad("a SID has at most 15 sub-authorities"));
            }
            subs.push(value as u32);
        }
        if subs.is_empty() {
            return Err(bad("a SID has at least one sub-authority"));
        }
        Ok(Sid { authority, subs })
    }

    /// The packet form (MS-DTYP 2.4.2.2) as Windows keeps it in memory: revision 1, the
    /// sub-authority count, the authority as six big-endian bytes, the sub-authorities as
    /// little-endian 32-bit integers.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.subs.len());
        out.push(1);
        out.push(self.subs.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in &self.subs {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// Reads the packet form; `bytes` is exactly one SID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sid, SidError> {
        let bad = |reason| SidError::Bytes {
            len: bytes.len(),
            reason,
        };
        if bytes.len() < 8 {
            return Err(bad("shorter than the 8-byte header"));
        }
        if bytes[0] != 1 {
            return Err(bad("the revision is not 1"));
        }
        let count = usize::from(bytes[1]);
        if count == 0 || count > MAX_SUB_AUTHORITIES {
            return Err(bad("the sub-authority count is not 1 to 15"));
        }
        if bytes.len() != 8 + 4 * count {
            return Err(bad("the length does not match the sub-authority count"));
        }
        let mut authority = [0u8; 8];
        authority[2..].copy_from_slice(&bytes[2..8]);
        let subs = bytes[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Sid {
            authority: u64::from_be_bytes(authority),
            subs,
        })
    }

    /// The per-session SID made from 128 random bits (see the module documentation).
    pub fn session(random: [u8; 16]) -> Sid {
        let mut subs = vec![SESSION_SUB_AUTHORITY];
        subs.extend(
            random
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Sid {
            authority: RESOURCE_MANAGER_AUTHORITY,
            subs,
        }
    }

    /// Whether this SID has the form of a fallback session's SID.
    pub fn is_session(&self) -> bool {
        self.authority == RESOURCE_MANAGER_AUTHORITY
            && self.subs.len() == SESSION_SUB_AUTHORITIES
            && self.subs[0] == SESSION_SUB_AUTHORITY
    }
}

/// A decimal number of at most ten digits without leading zeros (a lone `0` is allowed).
fn decimal(text: &str) -> Option<u64> {
    let ok = !text.is_empty()
        && text.len() <= 10
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority < 1 << 32 {
            write!(f, "S-1-{}", self.authority)?;
        } else {
            write!(f, "S-1-0x{:012X}", self.authority)?;
        }
        for sub in &self.subs {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors: the well-known SIDs of MS-DTYP 2.4.2.4, with their packet form written out from
    // 2.4.2.2 (revision 1, count, six big-endian authority bytes, little-endian sub-authorities).
    const VECTORS: &[(&str, &[u8])] = &[
        // BUILTIN_ADMINISTRATORS
        (
            "S-1-5-32-544",
            &[1, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 0x02, 0, 0],
        ),
        // EVERYONE
        ("S-1-1-0", &[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
        // ML_LOW (low mandatory level)
        ("S-1-16-4096", &[1, 1, 0, 0, 0, 0, 0, 16, 0, 0x10, 0, 0]),
        // ALL_APP_PACKAGES
        (
            "S-1-15-2-1",
            &[1, 2, 0, 0, 0, 0, 0, 15, 2, 0, 0, 0, 1, 0, 0, 0],
        ),
        // LOCAL_SYSTEM
        ("S-1-5-18", &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]),
    ];

    #[test]
    fn the_well_known_sids_of_ms_dtyp_read_and_write_in_both_forms() {
        for (text, bytes) in VECTORS {
            let sid = Sid::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sid.to_string(), *text);
            assert_eq!(sid.to_bytes(), *bytes, "{text}");
            assert_eq!(Sid::from_bytes(bytes).as_ref(), Ok(&sid), "{text}");
        }
        let admins = Sid::parse("S-1-5-32-544").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (admins.authority(), admins.sub_authorities()),
            (5, &[32u32, 544][..])
        );
    }

    #[test]
    fn an_authority_of_2_32_or_more_is_twelve_hex_digits() {
        // MS-DTYP 2.4.2.1: authorities >= 2^32 are "0x" and 12 hexadecimal digits; smaller
        // ones are decimal (either is read).
        let sid = Sid::parse("S-1-0x0000FFFFFFFF-7").map(|s| s.to_string());
        assert_eq!(sid, Ok("S-1-4294967295-7".to_owned()));
        let sid = Sid::parse("S-1-4294967296-7").map(|s| s.to_string());
        assert_eq!(sid, Ok("S-1-0x000100000000-7".to_owned()));
        let big = Sid::parse("S-1-0x123456789ABC-7").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(big.authority(), 0x1234_5678_9ABC);
        assert_eq!(big.to_string(), "S-1-0x123456789ABC-7");
        assert_eq!(&big.to_bytes()[2..8], &[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]);
        assert_eq!(
            Sid::parse("S-1-0x123456789abc-7").map(|s| s.to_string()),
            Ok("S-1-0x123456789ABC-7".to_owned())
        );
        assert_eq!(
            Sid::new(1 << 32, &[1]).map(|s| s.to_string()),
            Ok("S-1-0x000100000000-1".to_owned())
        );
    }

    #[test]
    fn malformed_sids_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "does not start"),
            ("S-2-5-18", "does not start"),
            ("S-1-5", "at least one sub-authority"),
            ("S-1-05-18", "authority is not a decimal"),
            ("S-1-5-018", "sub-authority"),
            ("S-1-5-4294967296", "sub-authority"),
            ("S-1-5--1", "sub-authority"),
            ("S-1-5-1-", "sub-authority"),
            ("S-1-0x12345-1", "twelve hex digits"),
            ("S-1-0x12345678901G-1", "twelve hex digits"),
            ("S-1-12345678901-1", "authority is not a decimal"),
            ("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "at most 15"),
            ("S-1-5-x", "sub-authority"),
        ] {
            match Sid::parse(text) {
                Err(SidError::Text { reason: r, .. }) => assert!(r.contains(reason), "{text}: {r}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(Sid::parse("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15").is_ok());
    }

    #[test]
    fn malformed_packets_are_refused_with_the_reason() {
        for (bytes, reason) in [
            (&[1u8, 1, 0, 0, 0, 0, 0][..], "header"),
            (&[2, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0][..], "revision"),
            (&[1, 0, 0, 0, 0, 0, 0, 5][..], "count"),
            (&[1, 16, 0, 0, 0, 0, 0, 5][..], "count"),
            (&[1, 2, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0][..], "length"),
        ] {
            match Sid::from_bytes(bytes) {
                Err(SidError::Bytes { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        assert!(matches!(Sid::new(5, &[]), Err(SidError::Parts { .. })));
        assert!(matches!(
            Sid::new(1 << 48, &[1]),
            Err(SidError::Parts { .. })
        ));
    }

    #[test]
    fn a_session_sid_is_s_1_9_agsh_and_the_random_bits_as_four_sub_authorities() {
        let random = [
            0x01, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0x80,
        ];
        let sid = Sid::session(random);
        // 0x61677368 = 1634169704; the random words little-endian: 1, 4294967295, 0x12345678,
        // 0x80000000.
        assert_eq!(
            sid.to_string(),
            "S-1-9-1634169704-1-4294967295-305419896-2147483648"
        );
        let bytes = sid.to_bytes();
        assert_eq!(&bytes[..8], &[1, 5, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            &bytes[8..12],
            b"hsga",
            "the fixed sub-authority's bytes in memory"
        );
        assert_eq!(&bytes[12..], &random, "the random bits follow unchanged");
        assert!(sid.is_session());
        assert_eq!(
            Sid::parse(&sid.to_string()).map(|s| s.is_session()),
            Ok(true)
        );
        for other in [
            "S-1-9-1634169704-1-2-3",
            "S-1-9-1634169705-1-2-3-4",
            "S-1-5-1634169704-1-2-3-4",
            "S-1-9-1634169704-1-2-3-4-5",
        ] {
            assert_eq!(
                Sid::parse(other).map(|s| s.is_session()),
                Ok(false),
                "{other}"
            );
        }
    }
}
