//! An intercepted operation as the emulator holds it (owned, UTF-16 like the kernel's names), its
//! view as a kernel-core [`Request`], and the verdict and reason reported to the caller.

use agentsh_kcore::{FileOp, RegistryOp, Request, Why};
use agentsh_wire::op::OpFlags;
use agentsh_wire::{FileOperation, Operation};
use serde::Serialize;

pub use agentsh_wire::STATUS_ACCESS_DENIED;

/// STATUS_SUCCESS.
pub const STATUS_SUCCESS: u32 = 0;

// Access masks and create dispositions the I/O manager would pass for the traced file operations.
const FILE_GENERIC_READ: u32 = 0x0012_0089;
const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
const FILE_OPEN: u32 = 1;
const FILE_CREATE: u32 = 2;

/// One intercepted operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRequest {
    pub pid: u32,
    pub thread_id: u32,
    pub target: Target,
}

/// What the operation touches: registry names in kernel form (`\REGISTRY\...`), file names as
/// the filter manager reports them; both as UTF-16 units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Registry {
        op: Operation,
        key: Vec<u16>,
        value: Vec<u16>,
        value_type: u32,
        data_size: u32,
    },
    File {
        op: FileOperation,
        path: Vec<u16>,
        target: Vec<u16>,
    },
}

impl Target {
    /// A registry target; for `RenameKey` the new name travels in the value-name field (the wire
    /// contract), so `new_name` takes the value's place.
    pub fn registry(
        op: Operation,
        key: &str,
        value: &str,
        new_name: Option<&str>,
        value_type: u32,
        data_size: u32,
    ) -> Self {
        Target::Registry {
            op,
            key: agentsh_winstr::name::units(key).collect(),
            value: agentsh_winstr::name::units(new_name.unwrap_or(value)).collect(),
            value_type,
            data_size,
        }
    }

    pub fn file(op: FileOperation, path: &str, new_path: Option<&str>) -> Self {
        Target::File {
            op,
            path: agentsh_winstr::name::units(path).collect(),
            target: agentsh_winstr::name::units(new_path.unwrap_or_default()).collect(),
        }
    }

    /// The kernel core's view, borrowing the names.
    pub fn as_request(&self) -> Request<'_> {
        match self {
            Target::Registry {
                op,
                key,
                value,
                value_type,
                data_size,
            } => Request::Registry(RegistryOp {
                op: *op,
                // A traced create_key is a real creation, not an open of an existing key.
                flags: OpFlags(if *op == Operation::CreateKey {
                    OpFlags::NEW_KEY
                } else {
                    0
                }),
                key,
                name: value,
                value_type: *value_type,
                data_size: *data_size,
            }),
            Target::File { op, path, target } => {
                let (desired_access, create_disposition) = match op {
                    FileOperation::Read => (FILE_GENERIC_READ, FILE_OPEN),
                    FileOperation::Create => (FILE_GENERIC_WRITE, FILE_CREATE),
                    _ => (0, 0),
                };
                Request::File(FileOp {
                    op: *op,
                    flags: OpFlags(0),
                    path,
                    target,
                    desired_access,
                    create_disposition,
                })
            }
        }
    }
}

/// The kernel's verdict on an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    /// The NTSTATUS the caller of the operation sees.
    pub fn status(self) -> u32 {
        match self {
            Verdict::Allow => STATUS_SUCCESS,
            Verdict::Deny => STATUS_ACCESS_DENIED,
        }
    }
}

/// Why the kernel core reached its verdict (its [`Why`], named for reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Excluded,
    Unsandboxed,
    ReadNotQueried,
    Cached,
    Service,
    FailOpen,
    FailClosed,
    CriticalWhileUnavailable,
    Approval,
    ApprovalExpired,
    HoldRefused,
    RequesterTerminating,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Excluded,
        Reason::Unsandboxed,
        Reason::ReadNotQueried,
        Reason::Cached,
        Reason::Service,
        Reason::FailOpen,
        Reason::FailClosed,
        Reason::CriticalWhileUnavailable,
        Reason::Approval,
        Reason::ApprovalExpired,
        Reason::HoldRefused,
        Reason::RequesterTerminating,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Excluded => "excluded",
            Reason::Unsandboxed => "unsandboxed",
            Reason::ReadNotQueried => "read_not_queried",
            Reason::Cached => "cached",
            Reason::Service => "service",
            Reason::FailOpen => "fail_open",
            Reason::FailClosed => "fail_closed",
            Reason::CriticalWhileUnavailable => "critical_while_unavailable",
            Reason::Approval => "approval",
            Reason::ApprovalExpired => "approval_expired",
            Reason::HoldRefused => "hold_refused",
            Reason::RequesterTerminating => "requester_terminating",
        }
    }
}

impl From<Why> for Reason {
    fn from(why: Why) -> Self {
        match why {
            Why::Excluded => Reason::Excluded,
            Why::Unsandboxed => Reason::Unsandboxed,
            Why::ReadNotQueried => Reason::ReadNotQueried,
            Why::Cached => Reason::Cached,
            Why::Service => Reason::Service,
            Why::FailOpen => Reason::FailOpen,
            Why::FailClosed => Reason::FailClosed,
            Why::CriticalWhileUnavailable => Reason::CriticalWhileUnavailable,
            Why::Approval => Reason::Approval,
            Why::ApprovalExpired => Reason::ApprovalExpired,
            Why::HoldRefused => Reason::HoldRefused,
            Why::RequesterTerminating => Reason::RequesterTerminating,
        }
    }
}
