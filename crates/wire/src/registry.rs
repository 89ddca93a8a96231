//! The registry policy check (MsgPolicyCheckRegistry, kernel → user): exactly the design's
//! 1584-byte request table.

use crate::bytes::{check_prologue, emit_prologue, set_u32, set_u64, u32_at, u64_at};
use crate::op::{MessageType, OpFlags, Operation};
use crate::utf16::{check_field, copy_field, write_field};
use crate::{Error, Result, Utf16Buf};

/// Byte offsets, from the design's table.
pub mod field {
    use core::ops::Range;
    pub const MESSAGE_TYPE: usize = 0;
    pub const MESSAGE_SIZE: usize = 2;
    pub const SESSION_TOKEN: usize = 4;
    pub const PROCESS_ID: usize = 12;
    pub const THREAD_ID: usize = 16;
    /// Low 16 bits: the operation code; high 16 bits: [`crate::op::OpFlags`].
    pub const OPERATION: usize = 20;
    pub const VALUE_TYPE: usize = 24;
    pub const DATA_SIZE: usize = 28;
    pub const KEY_PATH: Range<usize> = 32..1072;
    /// For `RenameKey`, the new key name.
    pub const VALUE_NAME: Range<usize> = 1072..1584;
}

/// Size of the message.
pub const LEN: usize = 1584;
/// Capacity of KeyPath in UTF-16 units (the string plus its NUL must fit).
pub const KEY_PATH_UNITS: usize = 520;
/// Capacity of ValueName in UTF-16 units (the string plus its NUL must fit).
pub const VALUE_NAME_UNITS: usize = 256;
/// Longest key path a request carries (one unit is the terminator).
pub const KEY_PATH_MAX: usize = KEY_PATH_UNITS - 1;
/// Longest value name a request carries.
pub const VALUE_NAME_MAX: usize = VALUE_NAME_UNITS - 1;

/// A checked view of a registry request.
#[derive(Debug, Clone, Copy)]
pub struct RegistryRequest<T: AsRef<[u8]>> {
    buf: T,
    key_len: usize,
    name_len: usize,
}

impl<T: AsRef<[u8]>> RegistryRequest<T> {
    /// Validates length, type, size field, operation and both strings once.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        check_prologue(b, MessageType::PolicyCheckRegistry as u16, LEN)?;
        let raw = u32_at(b, field::OPERATION);
        let code = (raw & 0xFFFF) as u16;
        if Operation::from_code(code).is_none() {
            return Err(Error::BadValue {
                field: "Operation",
                value: raw,
            });
        }
        let flags = OpFlags::check((raw >> 16) as u16)?;
        let key_len = check_field(
            b,
            field::KEY_PATH.start,
            KEY_PATH_UNITS,
            "KeyPath",
            flags.has(OpFlags::PATH_ESCAPED),
        )?;
        let name_len = check_field(
            b,
            field::VALUE_NAME.start,
            VALUE_NAME_UNITS,
            "ValueName",
            flags.has(OpFlags::NAME_ESCAPED),
        )?;
        Ok(RegistryRequest {
            buf,
            key_len,
            name_len,
        })
    }

    pub fn session_token(&self) -> u64 {
        u64_at(self.buf.as_ref(), field::SESSION_TOKEN)
    }

    pub fn process_id(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::PROCESS_ID)
    }

    pub fn thread_id(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::THREAD_ID)
    }

    /// The operation (validated by `new_checked`).
    pub fn operation(&self) -> Operation {
        let code = (u32_at(self.buf.as_ref(), field::OPERATION) & 0xFFFF) as u16;
        Operation::from_code(code).unwrap_or(Operation::QueryValue)
    }

    pub fn flags(&self) -> OpFlags {
        OpFlags((u32_at(self.buf.as_ref(), field::OPERATION) >> 16) as u16)
    }

    pub fn value_type(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::VALUE_TYPE)
    }

    pub fn data_size(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::DATA_SIZE)
    }

    /// The key path, as UTF-16 units without the terminator.
    pub fn key_path(&self) -> Utf16Buf<KEY_PATH_MAX> {
        copy_field(
            self.buf.as_ref(),
            field::KEY_PATH.start,
            self.key_len,
            self.flags().has(OpFlags::PATH_ESCAPED),
        )
    }

    /// The value name (the new key name for `RenameKey`).
    pub fn value_name(&self) -> Utf16Buf<VALUE_NAME_MAX> {
        copy_field(
            self.buf.as_ref(),
            field::VALUE_NAME.start,
            self.name_len,
            self.flags().has(OpFlags::NAME_ESCAPED),
        )
    }
}

/// A parsed registry request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRequestRepr {
    pub session_token: u64,
    pub process_id: u32,
    pub thread_id: u32,
    pub operation: Operation,
    pub flags: OpFlags,
    pub value_type: u32,
    pub data_size: u32,
    pub key_path: Utf16Buf<KEY_PATH_MAX>,
    /// The value name; for `RenameKey`, the new key name.
    pub value_name: Utf16Buf<VALUE_NAME_MAX>,
}

impl RegistryRequestRepr {
    /// Parses a checked view.
    pub fn parse<T: AsRef<[u8]>>(view: &RegistryRequest<T>) -> Self {
        RegistryRequestRepr {
            session_token: view.session_token(),
            process_id: view.process_id(),
            thread_id: view.thread_id(),
            operation: view.operation(),
            flags: OpFlags(view.flags().0 & !OpFlags::ESCAPES),
            value_type: view.value_type(),
            data_size: view.data_size(),
            key_path: view.key_path(),
            value_name: view.value_name(),
        }
    }

    /// Validates and parses raw bytes.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        Ok(Self::parse(&RegistryRequest::new_checked(buf)?))
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the message into `buf[..LEN]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        crate::bytes::check_len(buf, LEN)?;
        emit_prologue(buf, MessageType::PolicyCheckRegistry as u16, LEN);
        set_u64(buf, field::SESSION_TOKEN, self.session_token);
        set_u32(buf, field::PROCESS_ID, self.process_id);
        set_u32(buf, field::THREAD_ID, self.thread_id);
        set_u32(buf, field::VALUE_TYPE, self.value_type);
        set_u32(buf, field::DATA_SIZE, self.data_size);
        let path_escaped = write_field(
            buf,
            field::KEY_PATH.start,
            KEY_PATH_UNITS,
            self.key_path.as_units(),
            "KeyPath",
        )?;
        let name_escaped = write_field(
            buf,
            field::VALUE_NAME.start,
            VALUE_NAME_UNITS,
            self.value_name.as_units(),
            "ValueName",
        )?;
        let mut flags = self.flags.0 & !OpFlags::ESCAPES;
        if path_escaped {
            flags |= OpFlags::PATH_ESCAPED;
        }
        if name_escaped {
            flags |= OpFlags::NAME_ESCAPED;
        }
        let op = u32::from(self.operation as u16) | (u32::from(flags) << 16);
        set_u32(buf, field::OPERATION, op);
        Ok(())
    }
}
