//! The shipped traces parse, and the five-scenario trace says what the design's
//! manual scenarios expect.

use agentsh_emulator::trace::{Action, Expect, Trace};
use agentsh_wire::Operation;

fn load(name: &str, text: &str) -> Trace {
    Trace::parse(name, text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn five_scenarios_trace_expects_the_designed_outcomes() {
    let trace = load(
        "five-scenarios.jsonl",
        agentsh_emulator::scenarios::FIVE_SCENARIOS,
    );
    let ops: Vec<(Operation, Expect)> = trace
        .lines
        .iter()
        .filter_map(|l| match (&l.action, l.expect) {
            (Action::Registry(r), Some(e)) => Some((r.op, e)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        [
            (Operation::SetValue, Expect::Deny),
            (Operation::SetValue, Expect::Allow),
            (Operation::CreateKey, Expect::Allow),
            (Operation::CreateKey, Expect::Deny),
            (Operation::SetValue, Expect::Allow),
        ]
    );
}
