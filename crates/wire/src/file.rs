//! The file policy check (kernel → user): the registry request's style for the minifilter's
//! create, write and set-information pre-operations.

use crate::bytes::{check_prologue, emit_prologue, set_u32, set_u64, u32_at, u64_at};
use crate::op::{FileOperation, MessageType, OpFlags};
use crate::utf16::{check_field, copy_field, write_field};
use crate::{Error, Result, Utf16Buf};

/// Byte offsets.
pub mod field {
    use core::ops::Range;
    pub const MESSAGE_TYPE: usize = 0;
    pub const MESSAGE_SIZE: usize = 2;
    pub const SESSION_TOKEN: usize = 4;
    pub const PROCESS_ID: usize = 12;
    pub const THREAD_ID: usize = 16;
    /// Low 16 bits: the file operation code; high 16 bits: [`crate::op::OpFlags`].
    pub const OPERATION: usize = 20;
    /// The create's DesiredAccess mask (0 for write and set-information).
    pub const DESIRED_ACCESS: usize = 24;
    /// The create's disposition (FILE_SUPERSEDE..FILE_OVERWRITE_IF), 0 otherwise.
    pub const CREATE_DISPOSITION: usize = 28;
    /// The normalized name (FltGetFileNameInformation), NUL-terminated.
    pub const PATH: Range<usize> = 32..1072;
    /// Rename or hard-link target, NUL-terminated; empty otherwise.
    pub const TARGET_PATH: Range<usize> = 1072..2112;
}

/// Size of the message.
pub const LEN: usize = 2112;
/// Capacity of each path field in UTF-16 units, terminator included.
pub const PATH_UNITS: usize = 520;
/// Longest path a request carries.
pub const PATH_MAX: usize = PATH_UNITS - 1;

/// A checked view of a file request.
#[derive(Debug, Clone, Copy)]
pub struct FileRequest<T: AsRef<[u8]>> {
    buf: T,
    path_len: usize,
    target_len: usize,
}

impl<T: AsRef<[u8]>> FileRequest<T> {
    /// Validates length, type, size field, operation and both paths once.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        check_prologue(b, MessageType::PolicyCheckFile as u16, LEN)?;
        let raw = u32_at(b, field::OPERATION);
        if FileOperation::from_code((raw & 0xFFFF) as u16).is_none() {
            return Err(Error::BadValue {
                field: "Operation",
                value: raw,
            });
        }
        let flags = OpFlags::check((raw >> 16) as u16)?;
        let path_len = check_field(
            b,
            field::PATH.start,
            PATH_UNITS,
            "Path",
            flags.has(OpFlags::PATH_ESCAPED),
        )?;
        let target_len = check_field(
            b,
            field::TARGET_PATH.start,
            PATH_UNITS,
            "TargetPath",
            flags.has(OpFlags::NAME_ESCAPED),
        )?;
        Ok(FileRequest {
            buf,
            path_len,
            target_len,
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
    pub fn operation(&self) -> FileOperation {
        let code = (u32_at(self.buf.as_ref(), field::OPERATION) & 0xFFFF) as u16;
        FileOperation::from_code(code).unwrap_or(FileOperation::Read)
    }

    pub fn flags(&self) -> OpFlags {
        OpFlags((u32_at(self.buf.as_ref(), field::OPERATION) >> 16) as u16)
    }

    pub fn desired_access(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::DESIRED_ACCESS)
    }

    pub fn create_disposition(&self) -> u32 {
        u32_at(self.buf.as_ref(), field::CREATE_DISPOSITION)
    }

    pub fn path(&self) -> Utf16Buf<PATH_MAX> {
        copy_field(
            self.buf.as_ref(),
            field::PATH.start,
            self.path_len,
            self.flags().has(OpFlags::PATH_ESCAPED),
        )
    }

    pub fn target_path(&self) -> Utf16Buf<PATH_MAX> {
        copy_field(
            self.buf.as_ref(),
            field::TARGET_PATH.start,
            self.target_len,
            self.flags().has(OpFlags::NAME_ESCAPED),
        )
    }
}

/// A parsed file request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequestRepr {
    pub session_token: u64,
    pub process_id: u32,
    pub thread_id: u32,
    pub operation: FileOperation,
    pub flags: OpFlags,
    pub desired_access: u32,
    pub create_disposition: u32,
    pub path: Utf16Buf<PATH_MAX>,
    pub target_path: Utf16Buf<PATH_MAX>,
}

impl FileRequestRepr {
    /// Parses a checked view.
    pub fn parse<T: AsRef<[u8]>>(view: &FileRequest<T>) -> Self {
        FileRequestRepr {
            session_token: view.session_token(),
            process_id: view.process_id(),
            thread_id: view.thread_id(),
            operation: view.operation(),
            flags: OpFlags(view.flags().0 & !OpFlags::ESCAPES),
            desired_access: view.desired_access(),
            create_disposition: view.create_disposition(),
            path: view.path(),
            target_path: view.target_path(),
        }
    }

    /// Validates and parses raw bytes.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        Ok(Self::parse(&FileRequest::new_checked(buf)?))
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the message into `buf[..LEN]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        crate::bytes::check_len(buf, LEN)?;
        emit_prologue(buf, MessageType::PolicyCheckFile as u16, LEN);
        set_u64(buf, field::SESSION_TOKEN, self.session_token);
        set_u32(buf, field::PROCESS_ID, self.process_id);
        set_u32(buf, field::THREAD_ID, self.thread_id);
        set_u32(buf, field::DESIRED_ACCESS, self.desired_access);
        set_u32(buf, field::CREATE_DISPOSITION, self.create_disposition);
        let path_escaped = write_field(
            buf,
            field::PATH.start,
            PATH_UNITS,
            self.path.as_units(),
            "Path",
        )?;
        let name_escaped = write_field(
            buf,
            field::TARGET_PATH.start,
            PATH_UNITS,
            self.target_path.as_units(),
            "TargetPath",
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
