//! User → kernel messages (`FilterSendMessage`, no Filter Manager header) and the kernel's
//! answer in the caller's output buffer ([`SendResult`]), plus the driver configuration and the
//! metrics snapshot they carry.

use crate::bytes::{
    check_len, check_prologue, emit_prologue, set_u32, set_u64, u16_at, u32_at, u64_at, zero,
};
use crate::op::{Decision, MessageType};
use crate::utf16::{check_field, read_field, write_plain_field};
use crate::{Error, Result, Utf16Buf};

/// Offsets shared by every control message after the common prologue.
pub mod field {
    pub const MESSAGE_TYPE: usize = 0;
    pub const MESSAGE_SIZE: usize = 2;

    /// Hello (16 bytes).
    pub mod hello {
        pub const PROTOCOL_VERSION: usize = 4;
        pub const RESERVED: usize = 8;
    }
    /// SetConfig (32 bytes).
    pub mod set_config {
        pub const FAIL_MODE: usize = 4;
        pub const POLICY_QUERY_TIMEOUT_MS: usize = 8;
        pub const MAX_CONSECUTIVE_FAILURES: usize = 12;
        pub const CACHE_MAX_ENTRIES: usize = 16;
        pub const CACHE_DEFAULT_TTL_MS: usize = 20;
        pub const PENDING_GRACE_MS: usize = 24;
        /// [`super::super::CONFIG_QUERY_READS`] | [`super::super::CONFIG_NOTIFY_READS`].
        pub const FLAGS: usize = 28;
    }
    /// RegisterSession (552 bytes).
    pub mod register_session {
        use core::ops::Range;
        pub const ROOT_PROCESS_ID: usize = 4;
        pub const SESSION_TOKEN: usize = 8;
        pub const SESSION_ID: usize = 16;
        pub const FLAGS: usize = 24;
        pub const RESERVED: usize = 28;
        pub const WORKSPACE: Range<usize> = 32..552;
    }
    /// UnregisterSession and FlushCache (16 bytes): Reserved u32 @4, SessionToken u64 @8.
    pub const SESSION_TOKEN: usize = 8;
    /// RotateSessionToken (24 bytes).
    pub mod rotate {
        pub const OLD_TOKEN: usize = 8;
        pub const NEW_TOKEN: usize = 16;
    }
    /// FinalDecision (32 bytes).
    pub mod final_decision {
        /// The approval ticket of the `pending` response (u32), then 4 reserved bytes.
        pub const TICKET: usize = 8;
        pub const DECISION: usize = 16;
        pub const FLAGS: usize = 20;
        pub const RESERVED: usize = 24;
    }
    /// QuerySession (8 bytes).
    pub mod query_session {
        pub const PROCESS_ID: usize = 4;
    }
    /// SendResult prologue (8 bytes), then the body.
    pub mod send_result {
        pub const MESSAGE_TYPE: usize = 0;
        pub const MESSAGE_SIZE: usize = 2;
        pub const STATUS: usize = 4;
        pub const BODY: usize = 8;
    }
}

/// Fixed sizes of the control messages.
pub mod len {
    pub const HELLO: usize = 16;
    pub const SET_CONFIG: usize = 32;
    pub const GET_METRICS: usize = 8;
    pub const REGISTER_SESSION: usize = 552;
    pub const UNREGISTER_SESSION: usize = 16;
    pub const EXCLUDE_SELF: usize = 8;
    pub const FLUSH_CACHE: usize = 16;
    pub const FINAL_DECISION: usize = 32;
    pub const ROTATE_SESSION_TOKEN: usize = 24;
    pub const QUERY_SESSION: usize = 8;
    pub const SEND_RESULT_HEADER: usize = 8;
    pub const HELLO_RESULT: usize = 16;
    pub const METRICS_RESULT: usize = SEND_RESULT_HEADER + 8 * super::Counter::COUNT;
    pub const SESSION_RESULT: usize = 16;
}

/// Capacity of RegisterSession.Workspace in units, terminator included.
pub const WORKSPACE_UNITS: usize = 260;

/// What to do when the service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FailMode {
    /// FAIL_MODE_OPEN (the guide's default): allow.
    Open = 0,
    /// FAIL_MODE_CLOSED: deny.
    Closed = 1,
}

/// The driver configuration (SetConfig), with the guide's defaults and ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    pub fail_mode: FailMode,
    pub policy_query_timeout_ms: u32,
    pub max_consecutive_failures: u32,
    pub cache_max_entries: u32,
    pub cache_default_ttl_ms: u32,
    /// How long past a pending reply's approval timeout the kernel still waits for the final
    /// decision before denying on its own.
    pub pending_grace_ms: u32,
    /// [`CONFIG_QUERY_READS`] and [`CONFIG_NOTIFY_READS`].
    pub flags: u32,
}

/// Config flag: some rule can deny a read, so session reads take a round trip to the service.
/// Without it, reads are allowed in the kernel without blocking.
pub const CONFIG_QUERY_READS: u32 = 1 << 0;
/// Config flag: report session reads that were not queried (the policy's `log_all`).
pub const CONFIG_NOTIFY_READS: u32 = 1 << 1;

/// One configurable parameter: its name, default and inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub default: u32,
    pub min: u32,
    pub max: u32,
}

impl DriverConfig {
    pub const POLICY_QUERY_TIMEOUT_MS: Param = Param {
        name: "PolicyQueryTimeoutMs",
        default: 5000,
        min: 100,
        max: 60_000,
    };
    pub const MAX_CONSECUTIVE_FAILURES: Param = Param {
        name: "MaxConsecutiveFailures",
        default: 10,
        min: 1,
        max: 1000,
    };
    pub const CACHE_MAX_ENTRIES: Param = Param {
        name: "CacheMaxEntries",
        default: 4096,
        min: 100,
        max: 100_000,
    };
    pub const CACHE_DEFAULT_TTL_MS: Param = Param {
        name: "CacheDefaultTTLMs",
        default: 5000,
        min: 100,
        max: 3_600_000,
    };
    pub const PENDING_GRACE_MS: Param = Param {
        name: "PendingGraceMs",
        default: 5000,
        min: 0,
        max: 60_000,
    };

    /// The guide's defaults.
    pub const DEFAULT: DriverConfig = DriverConfig {
        fail_mode: FailMode::Open,
        policy_query_timeout_ms: Self::POLICY_QUERY_TIMEOUT_MS.default,
        max_consecutive_failures: Self::MAX_CONSECUTIVE_FAILURES.default,
        cache_max_entries: Self::CACHE_MAX_ENTRIES.default,
        cache_default_ttl_ms: Self::CACHE_DEFAULT_TTL_MS.default,
        pending_grace_ms: Self::PENDING_GRACE_MS.default,
        flags: 0,
    };

    /// Checks every value against its range; the error names the parameter, value and range.
    pub fn validate(&self) -> core::result::Result<(), ConfigError> {
        for (param, value) in [
            (Self::POLICY_QUERY_TIMEOUT_MS, self.policy_query_timeout_ms),
            (
                Self::MAX_CONSECUTIVE_FAILURES,
                self.max_consecutive_failures,
            ),
            (Self::CACHE_MAX_ENTRIES, self.cache_max_entries),
            (Self::CACHE_DEFAULT_TTL_MS, self.cache_default_ttl_ms),
            (Self::PENDING_GRACE_MS, self.pending_grace_ms),
        ] {
            if value < param.min || value > param.max {
                return Err(ConfigError { param, value });
            }
        }
        Ok(())
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A configuration value outside its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    pub param: Param,
    pub value: u32,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} = {} is outside its range {}..={}",
            self.param.name, self.value, self.param.min, self.param.max
        )
    }
}

/// Every counter of the metrics snapshot, in wire order (each a u64 in the GetMetrics result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Counter {
    CacheHitCount,
    CacheMissCount,
    RegistryPolicyQueries,
    FilePolicyQueries,
    PolicyQueryTimeouts,
    PolicyQueryErrors,
    AllowDecisions,
    DenyDecisions,
    PendingDecisions,
    PendingExpired,
    FailOpenDecisions,
    FailClosedDecisions,
    ConsecutiveFailures,
    FailOpenMode,
    FailMode,
    CacheEntries,
    CacheEvictions,
    NotificationsQueued,
    NotificationsDropped,
    ExcludedOperations,
    UnsandboxedOperations,
    ActiveSessions,
    TrackedProcesses,
    TruncatedPaths,
    ServiceConnected,
}

impl Counter {
    /// Number of counters.
    pub const COUNT: usize = 25;
    /// Every counter in wire order.
    pub const ALL: [Counter; Counter::COUNT] = [
        Counter::CacheHitCount,
        Counter::CacheMissCount,
        Counter::RegistryPolicyQueries,
        Counter::FilePolicyQueries,
        Counter::PolicyQueryTimeouts,
        Counter::PolicyQueryErrors,
        Counter::AllowDecisions,
        Counter::DenyDecisions,
        Counter::PendingDecisions,
        Counter::PendingExpired,
        Counter::FailOpenDecisions,
        Counter::FailClosedDecisions,
        Counter::ConsecutiveFailures,
        Counter::FailOpenMode,
        Counter::FailMode,
        Counter::CacheEntries,
        Counter::CacheEvictions,
        Counter::NotificationsQueued,
        Counter::NotificationsDropped,
        Counter::ExcludedOperations,
        Counter::UnsandboxedOperations,
        Counter::ActiveSessions,
        Counter::TrackedProcesses,
        Counter::TruncatedPaths,
        Counter::ServiceConnected,
    ];

    /// The guide's name (`CacheHitCount`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Counter::CacheHitCount => "CacheHitCount",
            Counter::CacheMissCount => "CacheMissCount",
            Counter::RegistryPolicyQueries => "RegistryPolicyQueries",
            Counter::FilePolicyQueries => "FilePolicyQueries",
            Counter::PolicyQueryTimeouts => "PolicyQueryTimeouts",
            Counter::PolicyQueryErrors => "PolicyQueryErrors",
            Counter::AllowDecisions => "AllowDecisions",
            Counter::DenyDecisions => "DenyDecisions",
            Counter::PendingDecisions => "PendingDecisions",
            Counter::PendingExpired => "PendingExpired",
            Counter::FailOpenDecisions => "FailOpenDecisions",
            Counter::FailClosedDecisions => "FailClosedDecisions",
            Counter::ConsecutiveFailures => "ConsecutiveFailures",
            Counter::FailOpenMode => "FailOpenMode",
            Counter::FailMode => "FailMode",
            Counter::CacheEntries => "CacheEntries",
            Counter::CacheEvictions => "CacheEvictions",
            Counter::NotificationsQueued => "NotificationsQueued",
            Counter::NotificationsDropped => "NotificationsDropped",
            Counter::ExcludedOperations => "ExcludedOperations",
            Counter::UnsandboxedOperations => "UnsandboxedOperations",
            Counter::ActiveSessions => "ActiveSessions",
            Counter::TrackedProcesses => "TrackedProcesses",
            Counter::TruncatedPaths => "TruncatedPaths",
            Counter::ServiceConnected => "ServiceConnected",
        }
    }
}

/// A metrics snapshot: one u64 per [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Metrics(pub [u64; Counter::COUNT]);

impl Metrics {
    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// Sets one counter.
    pub fn set(&mut self, c: Counter, v: u64) {
        self.0[c as usize] = v;
    }

    /// The guide's cache hit rate, in percent; `None` before the first lookup.
    pub fn cache_hit_rate_percent(&self) -> Option<f64> {
        let hits = self.get(Counter::CacheHitCount);
        let total = hits + self.get(Counter::CacheMissCount);
        (total != 0).then(|| hits as f64 / total as f64 * 100.0)
    }
}

/// Session flags in RegisterSession.
pub const SESSION_FLAG_AUDIT: u32 = 1 << 0;

/// A parsed user → kernel message.
#[expect(
    clippy::large_enum_variant,
    reason = "no allocation: the kernel decodes into one value per message, in pool memory"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRepr {
    Hello {
        protocol_version: u32,
    },
    SetConfig(DriverConfig),
    GetMetrics,
    RegisterSession {
        root_process_id: u32,
        session_token: u64,
        /// Public identifier for events; never the token.
        session_id: u64,
        flags: u32,
        workspace: Utf16Buf<{ WORKSPACE_UNITS - 1 }>,
    },
    UnregisterSession {
        session_token: u64,
    },
    /// Exclude the connected process (the kernel takes the id from the connection, never from
    /// the message: this message carries none).
    ExcludeSelf,
    /// Drop cached decisions of one session, or all with token 0.
    FlushCache {
        session_token: u64,
    },
    /// The final decision for a request answered `pending`, by its approval ticket.
    FinalDecision {
        ticket: u32,
        decision: Decision,
        flags: u32,
    },
    RotateSessionToken {
        old_token: u64,
        new_token: u64,
    },
    /// Which session `process_id` belongs to, if any (the service's API asks about callers whose
    /// process announcement it has not seen yet).
    QuerySession {
        process_id: u32,
    },
}

impl ControlRepr {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            ControlRepr::Hello { .. } => MessageType::Hello,
            ControlRepr::SetConfig(_) => MessageType::SetConfig,
            ControlRepr::GetMetrics => MessageType::GetMetrics,
            ControlRepr::RegisterSession { .. } => MessageType::RegisterSession,
            ControlRepr::UnregisterSession { .. } => MessageType::UnregisterSession,
            ControlRepr::ExcludeSelf => MessageType::ExcludeSelf,
            ControlRepr::FlushCache { .. } => MessageType::FlushCache,
            ControlRepr::FinalDecision { .. } => MessageType::FinalDecision,
            ControlRepr::RotateSessionToken { .. } => MessageType::RotateSessionToken,
            ControlRepr::QuerySession { .. } => MessageType::QuerySession,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            ControlRepr::Hello { .. } => len::HELLO,
            ControlRepr::SetConfig(_) => len::SET_CONFIG,
            ControlRepr::GetMetrics => len::GET_METRICS,
            ControlRepr::RegisterSession { .. } => len::REGISTER_SESSION,
            ControlRepr::UnregisterSession { .. } => len::UNREGISTER_SESSION,
            ControlRepr::ExcludeSelf => len::EXCLUDE_SELF,
            ControlRepr::FlushCache { .. } => len::FLUSH_CACHE,
            ControlRepr::FinalDecision { .. } => len::FINAL_DECISION,
            ControlRepr::RotateSessionToken { .. } => len::ROTATE_SESSION_TOKEN,
            ControlRepr::QuerySession { .. } => len::QUERY_SESSION,
        }
    }

    /// Validates and parses any user → kernel message. SetConfig values are range-checked too.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let ty = MessageType::of(buf)?;
        let size = |n: usize| check_prologue(buf, ty as u16, n);
        Ok(match ty {
            MessageType::Hello => {
                size(len::HELLO)?;
                ControlRepr::Hello {
                    protocol_version: u32_at(buf, field::hello::PROTOCOL_VERSION),
                }
            }
            MessageType::SetConfig => {
                use field::set_config as f;
                size(len::SET_CONFIG)?;
                let fail_mode = match u32_at(buf, f::FAIL_MODE) {
                    0 => FailMode::Open,
                    1 => FailMode::Closed,
                    v => {
                        return Err(Error::BadValue {
                            field: "FailMode",
                            value: v,
                        });
                    }
                };
                let config = DriverConfig {
                    fail_mode,
                    policy_query_timeout_ms: u32_at(buf, f::POLICY_QUERY_TIMEOUT_MS),
                    max_consecutive_failures: u32_at(buf, f::MAX_CONSECUTIVE_FAILURES),
                    cache_max_entries: u32_at(buf, f::CACHE_MAX_ENTRIES),
                    cache_default_ttl_ms: u32_at(buf, f::CACHE_DEFAULT_TTL_MS),
                    pending_grace_ms: u32_at(buf, f::PENDING_GRACE_MS),
                    flags: u32_at(buf, f::FLAGS),
                };
                if config.flags & !(CONFIG_QUERY_READS | CONFIG_NOTIFY_READS) != 0 {
                    return Err(Error::BadValue {
                        field: "Flags",
                        value: config.flags,
                    });
                }
                config.validate().map_err(|e| Error::BadValue {
                    field: e.param.name,
                    value: e.value,
                })?;
                ControlRepr::SetConfig(config)
            }
            MessageType::GetMetrics => {
                size(len::GET_METRICS)?;
                ControlRepr::GetMetrics
            }
            MessageType::RegisterSession => {
                use field::register_session as f;
                size(len::REGISTER_SESSION)?;
                check_field(buf, f::WORKSPACE.start, WORKSPACE_UNITS, "Workspace", false)?;
                let session_token = u64_at(buf, f::SESSION_TOKEN);
                if session_token == 0 {
                    return Err(Error::BadValue {
                        field: "SessionToken",
                        value: 0,
                    });
                }
                ControlRepr::RegisterSession {
                    root_process_id: u32_at(buf, f::ROOT_PROCESS_ID),
                    session_token,
                    session_id: u64_at(buf, f::SESSION_ID),
                    flags: u32_at(buf, f::FLAGS),
                    workspace: read_field(buf, f::WORKSPACE.start, WORKSPACE_UNITS, "Workspace")?,
                }
            }
            MessageType::UnregisterSession => {
                size(len::UNREGISTER_SESSION)?;
                ControlRepr::UnregisterSession {
                    session_token: u64_at(buf, field::SESSION_TOKEN),
                }
            }
            MessageType::ExcludeSelf => {
                size(len::EXCLUDE_SELF)?;
                ControlRepr::ExcludeSelf
            }
            MessageType::FlushCache => {
                size(len::FLUSH_CACHE)?;
                ControlRepr::FlushCache {
                    session_token: u64_at(buf, field::SESSION_TOKEN),
                }
            }
            MessageType::FinalDecision => {
                use field::final_decision as f;
                size(len::FINAL_DECISION)?;
                let decision = Decision::from_u32(u32_at(buf, f::DECISION))?;
                if decision == Decision::Pending {
                    return Err(Error::BadValue {
                        field: "Decision",
                        value: 2,
                    });
                }
                let ticket = u32_at(buf, f::TICKET);
                if ticket == 0 {
                    return Err(Error::BadValue {
                        field: "Ticket",
                        value: 0,
                    });
                }
                ControlRepr::FinalDecision {
                    ticket,
                    decision,
                    flags: u32_at(buf, f::FLAGS),
                }
            }
            MessageType::RotateSessionToken => {
                size(len::ROTATE_SESSION_TOKEN)?;
                let new_token = u64_at(buf, field::rotate::NEW_TOKEN);
                if new_token == 0 {
                    return Err(Error::BadValue {
                        field: "NewToken",
                        value: 0,
                    });
                }
                ControlRepr::RotateSessionToken {
                    old_token: u64_at(buf, field::rotate::OLD_TOKEN),
                    new_token,
                }
            }
            MessageType::QuerySession => {
                size(len::QUERY_SESSION)?;
                ControlRepr::QuerySession {
                    process_id: u32_at(buf, field::query_session::PROCESS_ID),
                }
            }
            other => {
                return Err(Error::WrongType {
                    expected: MessageType::Hello as u16,
                    got: other as u16,
                });
            }
        })
    }

    /// Writes the message into `buf[..self.buffer_len()]`, reserved bytes zeroed.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let n = self.buffer_len();
        check_len(buf, n)?;
        zero(buf, 0..n);
        emit_prologue(buf, self.message_type() as u16, n);
        match *self {
            ControlRepr::Hello { protocol_version } => {
                set_u32(buf, field::hello::PROTOCOL_VERSION, protocol_version);
            }
            ControlRepr::SetConfig(c) => {
                use field::set_config as f;
                set_u32(buf, f::FAIL_MODE, c.fail_mode as u32);
                set_u32(buf, f::POLICY_QUERY_TIMEOUT_MS, c.policy_query_timeout_ms);
                set_u32(buf, f::MAX_CONSECUTIVE_FAILURES, c.max_consecutive_failures);
                set_u32(buf, f::CACHE_MAX_ENTRIES, c.cache_max_entries);
                set_u32(buf, f::CACHE_DEFAULT_TTL_MS, c.cache_default_ttl_ms);
                set_u32(buf, f::PENDING_GRACE_MS, c.pending_grace_ms);
                set_u32(buf, f::FLAGS, c.flags);
            }
            ControlRepr::GetMetrics | ControlRepr::ExcludeSelf => {}
            ControlRepr::RegisterSession {
                root_process_id,
                session_token,
                session_id,
                flags,
                workspace,
            } => {
                use field::register_session as f;
                set_u32(buf, f::ROOT_PROCESS_ID, root_process_id);
                set_u64(buf, f::SESSION_TOKEN, session_token);
                set_u64(buf, f::SESSION_ID, session_id);
                set_u32(buf, f::FLAGS, flags);
                write_plain_field(
                    buf,
                    f::WORKSPACE.start,
                    WORKSPACE_UNITS,
                    workspace.as_units(),
                    "Workspace",
                )?;
            }
            ControlRepr::UnregisterSession { session_token }
            | ControlRepr::FlushCache { session_token } => {
                set_u64(buf, field::SESSION_TOKEN, session_token);
            }
            ControlRepr::FinalDecision {
                ticket,
                decision,
                flags,
            } => {
                use field::final_decision as f;
                set_u32(buf, f::TICKET, ticket);
                set_u32(buf, f::DECISION, decision as u32);
                set_u32(buf, f::FLAGS, flags);
            }
            ControlRepr::RotateSessionToken {
                old_token,
                new_token,
            } => {
                set_u64(buf, field::rotate::OLD_TOKEN, old_token);
                set_u64(buf, field::rotate::NEW_TOKEN, new_token);
            }
            ControlRepr::QuerySession { process_id } => {
                set_u32(buf, field::query_session::PROCESS_ID, process_id);
            }
        }
        Ok(())
    }
}

/// The kernel's verdict on a user → kernel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SendStatus {
    Ok = 0,
    /// Hello with another protocol version; the body carries the kernel's version.
    VersionMismatch = 1,
    /// The message did not decode.
    Malformed = 2,
    /// A SetConfig value outside its range.
    OutOfRange = 3,
    /// No such session, or no pending request with that MessageId.
    NotFound = 4,
    /// Anything before a successful Hello.
    HandshakeRequired = 5,
    /// Another client is connected (the port admits one).
    Busy = 6,
    /// A session with that token or root process exists already.
    AlreadyExists = 7,
    /// The kernel has no room (session table or pending holds full).
    NoResources = 8,
}

impl SendStatus {
    const ALL: [SendStatus; 9] = [
        SendStatus::Ok,
        SendStatus::VersionMismatch,
        SendStatus::Malformed,
        SendStatus::OutOfRange,
        SendStatus::NotFound,
        SendStatus::HandshakeRequired,
        SendStatus::Busy,
        SendStatus::AlreadyExists,
        SendStatus::NoResources,
    ];

    /// Decodes a status field.
    pub fn from_u32(v: u32) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| *s as u32 == v)
            .ok_or(Error::BadValue {
                field: "Status",
                value: v,
            })
    }
}

/// The kernel's answer in a `FilterSendMessage` output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    /// Status only (8 bytes).
    Status {
        message_type: MessageType,
        status: SendStatus,
    },
    /// Hello's answer: the kernel's protocol version (16 bytes), with `Ok` or `VersionMismatch`.
    Hello {
        status: SendStatus,
        kernel_version: u32,
    },
    /// GetMetrics' answer: the snapshot.
    Metrics(Metrics),
    /// QuerySession's answer when the process is in a session: the session's public id
    /// (16 bytes). A process in no session is answered `NotFound` without a body.
    Session { session_id: u64 },
}

impl SendResult {
    /// The status.
    pub fn status(&self) -> SendStatus {
        match self {
            SendResult::Status { status, .. } | SendResult::Hello { status, .. } => *status,
            SendResult::Metrics(_) | SendResult::Session { .. } => SendStatus::Ok,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            SendResult::Status { .. } => len::SEND_RESULT_HEADER,
            SendResult::Hello { .. } => len::HELLO_RESULT,
            SendResult::Metrics(_) => len::METRICS_RESULT,
            SendResult::Session { .. } => len::SESSION_RESULT,
        }
    }

    /// Writes the answer into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        use field::send_result as f;
        let n = self.buffer_len();
        check_len(buf, n)?;
        zero(buf, 0..n);
        let (ty, status) = match self {
            SendResult::Status {
                message_type,
                status,
            } => (*message_type, *status),
            SendResult::Hello { status, .. } => (MessageType::Hello, *status),
            SendResult::Metrics(_) => (MessageType::GetMetrics, SendStatus::Ok),
            SendResult::Session { .. } => (MessageType::QuerySession, SendStatus::Ok),
        };
        emit_prologue(buf, ty as u16, n);
        set_u32(buf, f::STATUS, status as u32);
        match self {
            SendResult::Status { .. } => {}
            SendResult::Hello { kernel_version, .. } => set_u32(buf, f::BODY, *kernel_version),
            SendResult::Metrics(m) => {
                for (i, v) in m.0.iter().enumerate() {
                    set_u64(buf, f::BODY + 8 * i, *v);
                }
            }
            SendResult::Session { session_id } => set_u64(buf, f::BODY, *session_id),
        }
        Ok(())
    }

    /// Validates and parses an answer to a message of type `sent`.
    pub fn decode(sent: MessageType, buf: &[u8]) -> Result<Self> {
        use field::send_result as f;
        check_len(buf, len::SEND_RESULT_HEADER)?;
        let ty = u16_at(buf, f::MESSAGE_TYPE);
        if ty != sent as u16 {
            return Err(Error::WrongType {
                expected: sent as u16,
                got: ty,
            });
        }
        let status = SendStatus::from_u32(u32_at(buf, f::STATUS))?;
        match (sent, status) {
            (MessageType::Hello, SendStatus::Ok | SendStatus::VersionMismatch) => {
                check_prologue(buf, ty, len::HELLO_RESULT)?;
                Ok(SendResult::Hello {
                    status,
                    kernel_version: u32_at(buf, f::BODY),
                })
            }
            (MessageType::GetMetrics, SendStatus::Ok) => {
                check_prologue(buf, ty, len::METRICS_RESULT)?;
                let mut m = Metrics::default();
                for (i, slot) in m.0.iter_mut().enumerate() {
                    *slot = u64_at(buf, f::BODY + 8 * i);
                }
                Ok(SendResult::Metrics(m))
            }
            (MessageType::QuerySession, SendStatus::Ok) => {
                check_prologue(buf, ty, len::SESSION_RESULT)?;
                Ok(SendResult::Session {
                    session_id: u64_at(buf, f::BODY),
                })
            }
            _ => {
                check_prologue(buf, ty, len::SEND_RESULT_HEADER)?;
                Ok(SendResult::Status {
                    message_type: sent,
                    status,
                })
            }
        }
    }
}
