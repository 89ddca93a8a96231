//! Typed sections of `agentsh.yaml` beyond the rules: driver settings (the deployment guide's
//! defaults and ranges), approvals, audit, event sinks and the sandbox. The loader fills them;
//! the service, the Windows glue and the CLI read them.

use std::ops::RangeInclusive;

/// What the driver does when the policy service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Allow operations (the guide's default, `FAIL_MODE_OPEN`).
    Open,
    /// Deny operations (`FAIL_MODE_CLOSED`).
    Closed,
}

/// `driver:`: the driver configuration the service sends with SetConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverSettings {
    pub fail_mode: FailMode,
    pub policy_query_timeout_ms: u32,
    pub max_consecutive_failures: u32,
    pub cache_max_entries: u32,
    pub cache_default_ttl_ms: u32,
}

impl DriverSettings {
    /// Range of `policy_query_timeout_ms` (the guide gives 5000 as its example; agentsh bounds it).
    pub const QUERY_TIMEOUT_MS: RangeInclusive<u32> = 100..=60_000;
    /// Range of `max_consecutive_failures`.
    pub const MAX_FAILURES: RangeInclusive<u32> = 1..=1_000;
    /// The guide's range of CacheMaxEntries.
    pub const CACHE_ENTRIES: RangeInclusive<u32> = 100..=100_000;
    /// The guide's range of CacheDefaultTTLMs.
    pub const CACHE_TTL_MS: RangeInclusive<u32> = 100..=3_600_000;
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            fail_mode: FailMode::Open,
            policy_query_timeout_ms: 5_000,
            max_consecutive_failures: 10,
            cache_max_entries: 4_096,
            cache_default_ttl_ms: 5_000,
        }
    }
}

/// `approvals:`: how held operations are presented and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// Timeout for `approve` rules (and catalog entries) that give none, in seconds.
    pub default_timeout_secs: u32,
    /// Ask on the service's terminal as well.
    pub terminal_prompt: bool,
    /// Loopback address of the approvals HTTP API, if enabled.
    pub api_listen: Option<String>,
    /// File holding the API token (created by the service if missing).
    pub api_token_file: Option<String>,
}

impl ApprovalSettings {
    /// Range of approval timeouts, in seconds.
    pub const TIMEOUT_SECS: RangeInclusive<u32> = 1..=3_600;
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            default_timeout_secs: 30,
            terminal_prompt: false,
            api_listen: None,
            api_token_file: None,
        }
    }
}

/// `audit:`: decide and record everything, enforce nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSettings {
    pub enabled: bool,
}

/// An event output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// One JSON object per line in the design's event payload.
    Jsonl,
    /// OCSF Registry Key/Value Activity with the security_control profile.
    Ocsf,
}

/// One event sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    pub format: SinkFormat,
    /// File path, or `-` for standard output.
    pub path: String,
}

/// `events:`: where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    pub sinks: Vec<Sink>,
    /// Bound of the event queue; events beyond it are dropped and counted.
    pub queue_capacity: u32,
}

impl EventSettings {
    /// Range of `queue_capacity`.
    pub const QUEUE: RangeInclusive<u32> = 1..=1_000_000;
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            sinks: Vec::new(),
            queue_capacity: 10_000,
        }
    }
}

/// Network access of a sandbox (the guide's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkAccess {
    None,
    Outbound,
    Local,
    Full,
}

/// `sandbox:`: defaults for `agentsh sandbox run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub name: Option<String>,
    pub workspace: Option<String>,
    pub allow: Vec<String>,
    pub network: NetworkAccess,
    pub appcontainer: bool,
    pub fail_on_appcontainer_error: bool,
    pub minifilter: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            name: None,
            workspace: None,
            allow: Vec::new(),
            network: NetworkAccess::None,
            appcontainer: true,
            fail_on_appcontainer_error: false,
            minifilter: true,
        }
    }
}

/// Every section other than rules, with defaults for what the file leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub driver: DriverSettings,
    pub approvals: ApprovalSettings,
    pub audit: AuditSettings,
    pub events: EventSettings,
    pub sandbox: SandboxSettings,
}
