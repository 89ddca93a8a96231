//! The vocabularies on the wire: message types, the driver's registry and file operations, the
//! operation flags, and decisions.

use crate::{Error, Result};

/// Every message type on the port. Kernel → user messages (reply expected unless one-way) have
/// types below 0x10; user → kernel messages (`FilterSendMessage`) have types from 0x10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageType {
    /// Kernel → user: may this file operation proceed?
    PolicyCheckFile = 1,
    /// Kernel → user: may this registry operation proceed? (the design's MsgPolicyCheckRegistry)
    PolicyCheckRegistry = 2,
    /// Kernel → user, one-way: an operation the kernel only monitored.
    Notify = 3,
    /// Kernel → user, one-way: a process was created or exited.
    ProcessEvent = 4,
    /// User → kernel: version handshake, the first message of a connection.
    Hello = 0x10,
    /// User → kernel: driver configuration.
    SetConfig = 0x11,
    /// User → kernel: read the driver's counters.
    GetMetrics = 0x12,
    /// User → kernel: a sandbox's root process starts a session.
    RegisterSession = 0x13,
    /// User → kernel: a session ends.
    UnregisterSession = 0x14,
    /// User → kernel: exclude the connected process (MSG_EXCLUDE_PROCESS).
    ExcludeSelf = 0x15,
    /// User → kernel: drop cached decisions (policy reload).
    FlushCache = 0x16,
    /// User → kernel: the final decision for a request answered `pending`.
    FinalDecision = 0x17,
    /// User → kernel: replace a session's token, keeping its processes.
    RotateSessionToken = 0x18,
    /// User → kernel: the compiled read scope (variable length, `scope` module).
    SetReadScope = 0x19,
    /// User → kernel: which session, if any, a process id belongs to (extension).
    QuerySession = 0x1A,
}

impl MessageType {
    /// Every message type, for exhaustive tests and documentation.
    pub const ALL: [MessageType; 15] = [
        MessageType::PolicyCheckFile,
        MessageType::PolicyCheckRegistry,
        MessageType::Notify,
        MessageType::ProcessEvent,
        MessageType::Hello,
        MessageType::SetConfig,
        MessageType::GetMetrics,
        MessageType::RegisterSession,
        MessageType::UnregisterSession,
        MessageType::ExcludeSelf,
        MessageType::FlushCache,
        MessageType::FinalDecision,
        MessageType::RotateSessionToken,
        MessageType::SetReadScope,
        MessageType::QuerySession,
    ];

    /// Decodes a message type field.
    pub fn from_u16(v: u16) -> Result<Self> {
        MessageType::ALL
            .into_iter()
            .find(|t| *t as u16 == v)
            .ok_or(Error::UnknownType(v))
    }

    /// Reads the type of any port message (the first two bytes).
    pub fn of(buf: &[u8]) -> Result<Self> {
        crate::bytes::check_len(buf, 2)?;
        Self::from_u16(crate::bytes::u16_at(buf, 0))
    }
}

/// The driver's registry operations: the design's enum (1..9) and the extensions from 10 for the
/// hive and security operations an attacker would use instead of value writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Operation {
    QueryValue = 1,
    SetValue = 2,
    DeleteValue = 3,
    CreateKey = 4,
    DeleteKey = 5,
    EnumKeys = 6,
    EnumValues = 7,
    OpenKey = 8,
    /// The request's ValueName field carries the new key name.
    RenameKey = 9,
    /// `RegSaveKey`: exports a hive (`reg save HKLM\SAM`).
    SaveKey = 10,
    /// `RegRestoreKey`: overwrites a key from a file.
    RestoreKey = 11,
    /// `RegReplaceKey`: replaces a hive file at next boot.
    ReplaceKey = 12,
    /// `RegLoadKey`: mounts a hive file.
    LoadKey = 13,
    /// `RegSetKeySecurity`: changes a key's security descriptor.
    SetKeySecurity = 14,
}

impl Operation {
    /// Every operation in code order.
    pub const ALL: [Operation; 14] = [
        Operation::QueryValue,
        Operation::SetValue,
        Operation::DeleteValue,
        Operation::CreateKey,
        Operation::DeleteKey,
        Operation::EnumKeys,
        Operation::EnumValues,
        Operation::OpenKey,
        Operation::RenameKey,
        Operation::SaveKey,
        Operation::RestoreKey,
        Operation::ReplaceKey,
        Operation::LoadKey,
        Operation::SetKeySecurity,
    ];

    /// Decodes an operation code.
    pub fn from_code(code: u16) -> Option<Self> {
        Operation::ALL.into_iter().find(|o| *o as u16 == code)
    }

    /// The design's name (`SetValue`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Operation::QueryValue => "QueryValue",
            Operation::SetValue => "SetValue",
            Operation::DeleteValue => "DeleteValue",
            Operation::CreateKey => "CreateKey",
            Operation::DeleteKey => "DeleteKey",
            Operation::EnumKeys => "EnumKeys",
            Operation::EnumValues => "EnumValues",
            Operation::OpenKey => "OpenKey",
            Operation::RenameKey => "RenameKey",
            Operation::SaveKey => "SaveKey",
            Operation::RestoreKey => "RestoreKey",
            Operation::ReplaceKey => "ReplaceKey",
            Operation::LoadKey => "LoadKey",
            Operation::SetKeySecurity => "SetKeySecurity",
        }
    }

    /// Parses the design's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Read-class operations: reported per the log settings, not blocked by default.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Operation::QueryValue
                | Operation::EnumKeys
                | Operation::EnumValues
                | Operation::OpenKey
        )
    }
}

/// The file operations the minifilter asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum FileOperation {
    /// Open for reading (IRP_MJ_CREATE without write access).
    Read = 1,
    /// Open for writing or a write (IRP_MJ_CREATE with write access, IRP_MJ_WRITE).
    Write = 2,
    /// A create disposition that makes a new file.
    Create = 3,
    /// Delete disposition or delete-on-close.
    Delete = 4,
    /// Rename; TargetPath carries the new name.
    Rename = 5,
    /// Hard link; TargetPath carries the link name.
    HardLink = 6,
}

impl FileOperation {
    /// Every file operation in code order.
    pub const ALL: [FileOperation; 6] = [
        FileOperation::Read,
        FileOperation::Write,
        FileOperation::Create,
        FileOperation::Delete,
        FileOperation::Rename,
        FileOperation::HardLink,
    ];

    /// Decodes a file operation code.
    pub fn from_code(code: u16) -> Option<Self> {
        FileOperation::ALL.into_iter().find(|o| *o as u16 == code)
    }

    /// The name used in traces and events.
    pub fn name(self) -> &'static str {
        match self {
            FileOperation::Read => "read",
            FileOperation::Write => "write",
            FileOperation::Create => "create",
            FileOperation::Delete => "delete",
            FileOperation::Rename => "rename",
            FileOperation::HardLink => "hardlink",
        }
    }
}

/// Flags carried in the high 16 bits of a request's 32-bit Operation field; the low 16 bits are
/// the operation code, so every documented code keeps its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpFlags(pub u16);

impl OpFlags {
    /// The key path (or file path) did not fit its field and was cut: never match it as if it
    /// were the shorter path.
    pub const PATH_TRUNCATED: u16 = 1 << 0;
    /// The value name (or rename/link target) did not fit its field and was cut.
    pub const NAME_TRUNCATED: u16 = 1 << 1;
    /// `CreateKey` only: the key did not exist before (a real creation, not an open).
    pub const NEW_KEY: u16 = 1 << 2;
    /// `OpenKey` only: the open asks for write access (observed, so refused attempts are seen).
    pub const WRITE_ACCESS: u16 = 1 << 3;
    /// The key path (or file path) field holds a name with a NUL, written escaped (see
    /// [`crate::utf16::ESCAPE`]). Set and cleared by the encoder and decoder themselves: a parsed
    /// request's names are always the real code units.
    pub const PATH_ESCAPED: u16 = 1 << 4;
    /// The value name (or rename/link target) field is written escaped.
    pub const NAME_ESCAPED: u16 = 1 << 5;
    /// Both escape flags.
    pub const ESCAPES: u16 = Self::PATH_ESCAPED | Self::NAME_ESCAPED;
    const KNOWN: u16 = 0b11_1111;

    /// Whether any name in the request was cut.
    pub fn truncated(self) -> bool {
        self.0 & (Self::PATH_TRUNCATED | Self::NAME_TRUNCATED) != 0
    }

    /// Whether `flag` is set.
    pub fn has(self, flag: u16) -> bool {
        self.0 & flag != 0
    }

    /// These flags, marking the path and the name as cut where the caller had to cut them to
    /// fit their fields (set flags stay set).
    #[must_use]
    pub fn with_cuts(self, path_cut: bool, name_cut: bool) -> Self {
        let mut bits = self.0;
        if path_cut {
            bits |= Self::PATH_TRUNCATED;
        }
        if name_cut {
            bits |= Self::NAME_TRUNCATED;
        }
        OpFlags(bits)
    }

    pub(crate) fn check(bits: u16) -> Result<Self> {
        if bits & !Self::KNOWN != 0 {
            return Err(Error::BadValue {
                field: "Operation.flags",
                value: u32::from(bits),
            });
        }
        Ok(OpFlags(bits))
    }
}

/// A decision on the wire: 0 deny, 1 allow, 2 pending (the design's encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Decision {
    Deny = 0,
    Allow = 1,
    /// Held for a person's approval; the final decision follows in a `FinalDecision` message.
    Pending = 2,
}

impl Decision {
    /// Decodes a decision field.
    pub fn from_u32(v: u32) -> Result<Self> {
        match v {
            0 => Ok(Decision::Deny),
            1 => Ok(Decision::Allow),
            2 => Ok(Decision::Pending),
            _ => Err(Error::BadValue {
                field: "Decision",
                value: v,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpFlags;

    #[test]
    fn cuts_add_the_truncation_flags_and_keep_the_others() {
        let open = OpFlags(OpFlags::WRITE_ACCESS);
        assert_eq!(open.with_cuts(false, false), open);
        assert!(!open.truncated());
        let cut = open.with_cuts(true, false);
        assert!(cut.has(OpFlags::PATH_TRUNCATED) && cut.has(OpFlags::WRITE_ACCESS));
        assert!(!cut.has(OpFlags::NAME_TRUNCATED) && cut.truncated());
        let both = cut.with_cuts(false, true);
        assert_eq!(
            both.0,
            OpFlags::WRITE_ACCESS | OpFlags::PATH_TRUNCATED | OpFlags::NAME_TRUNCATED
        );
    }
}
