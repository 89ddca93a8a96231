//! The one error type of every decoder: what was wrong with the bytes, and where.

use core::fmt;

/// A malformed message. Every decoder returns one of these instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the message needs.
    Truncated { needed: usize, got: usize },
    /// The message type field names another message.
    WrongType { expected: u16, got: u16 },
    /// The message type field names no known message.
    UnknownType(u16),
    /// The size field disagrees with the message's fixed size or with the bytes received.
    SizeMismatch { declared: usize, expected: usize },
    /// A field holds a value outside its enumeration or range.
    BadValue { field: &'static str, value: u32 },
    /// A string field has no NUL terminator inside its fixed buffer.
    Unterminated { field: &'static str },
    /// An escaped string field holds an escape unit followed by neither of its two meanings.
    BadEscape { field: &'static str },
    /// A string with a NUL for a field that cannot carry one (it has no escape flag).
    EmbeddedNul { field: &'static str },
    /// A string is too long for its field.
    TooLong {
        field: &'static str,
        max_units: usize,
    },
    /// A stream frame is larger than the framing allows.
    FrameTooLarge { len: usize },
}

/// Result of a decoder.
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { needed, got } => {
                write!(f, "message truncated: {got} bytes, {needed} needed")
            }
            Error::WrongType { expected, got } => {
                write!(f, "message type {got} where {expected} was expected")
            }
            Error::UnknownType(t) => write!(f, "unknown message type {t}"),
            Error::SizeMismatch { declared, expected } => {
                write!(
                    f,
                    "size field says {declared} bytes, the message has {expected}"
                )
            }
            Error::BadValue { field, value } => {
                write!(f, "field `{field}` has invalid value {value}")
            }
            Error::Unterminated { field } => {
                write!(f, "string field `{field}` is not NUL-terminated")
            }
            Error::BadEscape { field } => {
                write!(f, "string field `{field}` holds an invalid escape")
            }
            Error::EmbeddedNul { field } => {
                write!(
                    f,
                    "string for `{field}` holds a NUL, which that field cannot carry"
                )
            }
            Error::TooLong { field, max_units } => {
                write!(f, "string for `{field}` exceeds {max_units} UTF-16 units")
            }
            Error::FrameTooLarge { len } => {
                write!(f, "frame of {len} bytes exceeds the framing limit")
            }
        }
    }
}

impl core::error::Error for Error {}
