//! Traces shipped with the emulator: the design's five manual test scenarios, replayed by
//! `agentsh demo`.

/// The five manual scenarios (design, "Manual Test Scenarios"). The demo approves the service key
/// whose name contains [`APPROVED_KEY_MARKER`] and leaves the other approval to time out.
pub const FIVE_SCENARIOS: &str = include_str!("../data/five-scenarios.jsonl");

/// Part of the service key the demo's approver approves (scenario 3).
pub const APPROVED_KEY_MARKER: &str = "agentsh-demo-approved";
