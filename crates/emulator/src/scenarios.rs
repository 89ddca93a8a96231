//! Traces shipped with the emulator: the design's five manual test scenarios, replayed by
//! `agentsh demo`.

/// The five manual scenarios (design, "Manual Test Scenarios"). The demo approves the service key
/// whose name contains [`APPROVED_KEY_MARKER`] and leaves the other approval to time out.
pub const FIVE_SCENARIOS: &str = include_str!("../data/five-scenarios.jsonl");

/// Part of the service key the demo's approver approves (scenario 3).
pub const APPROVED_KEY_MARKER: &str = "agentsh-demo-approved";

/// File rules against device paths: a workspace write allowed and a write outside it denied, both
/// sent as `\Device\HarddiskVolume3\…` through the emulator's volume table. Replayed by
/// `agentsh demo` after the five scenarios.
pub const FILE_SCENARIOS: &str = include_str!("../data/file-scenarios.jsonl");
