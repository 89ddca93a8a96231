//! The five policy operations, decisions, and risk levels: the vocabulary rules are written in.
//! The driver's own operations are mapped onto these in exactly one place ([`Access`]).

use std::fmt;

use agentsh_wire as wire;

/// A policy operation, as rules name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Rename,
}

impl Operation {
    /// Every operation, in documentation order.
    pub const ALL: [Operation; 5] = [
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Rename,
    ];

    /// The name used in policy files and events.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Rename => "rename",
        }
    }

    /// Parses a policy operation name (exact, lower case as documented).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Write-class operations change the registry or file system; the high-risk catalog applies
    /// its floor to these (and to hive exports, see [`Access`]).
    pub fn is_write_class(self) -> bool {
        self != Operation::Read
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of operations (`operations: [write, create]`, `*` = all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpSet(u8);

impl OpSet {
    /// Every operation.
    pub const ALL: OpSet = OpSet(0b1_1111);
    /// No operation.
    pub const EMPTY: OpSet = OpSet(0);

    /// Adds `op`.
    pub fn insert(&mut self, op: Operation) {
        self.0 |= op.bit();
    }

    /// Whether `op` is in the set.
    pub fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The operations in the set, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .into_iter()
            .filter(move |o| self.contains(*o))
    }
}

impl FromIterator<Operation> for OpSet {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> Self {
        let mut s = OpSet::EMPTY;
        for op in iter {
            s.insert(op);
        }
        s
    }
}

/// What is being asked of the policy: the policy operation plus whether it exports a hive
/// (`RegSaveKey`: a read for rules, but `reg save HKLM\SAM` must meet the catalog floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    pub op: Operation,
    pub exports_hive: bool,
}

impl From<Operation> for Access {
    fn from(op: Operation) -> Self {
        Access {
            op,
            exports_hive: false,
        }
    }
}

impl Access {
    /// Whether the catalog floor applies (write-class operations and hive exports).
    pub fn meets_catalog_floor(self) -> bool {
        self.op.is_write_class() || self.exports_hive
    }
}

/// The one place driver operations become policy operations (docs/policy.md, "Operations").
impl From<wire::Operation> for Access {
    fn from(op: wire::Operation) -> Access {
        use wire::Operation as W;
        let (op, exports_hive) = match op {
            W::QueryValue | W::EnumKeys | W::EnumValues | W::OpenKey => (Operation::Read, false),
            W::SetValue => (Operation::Write, false),
            W::DeleteValue | W::DeleteKey => (Operation::Delete, false),
            W::CreateKey => (Operation::Create, false),
            W::RenameKey => (Operation::Rename, false),
            // `reg save HKLM\SAM` reads, but must meet the catalog floor.
            W::SaveKey => (Operation::Read, true),
            W::RestoreKey | W::ReplaceKey | W::LoadKey | W::SetKeySecurity => {
                (Operation::Write, false)
            }
        };
        Access { op, exports_hive }
    }
}

/// File operations: a hard link is a write to the existing file (a new name is a new way to write
/// it); rename and hard link are also decided at their target as a creation (see `FileQuery`).
impl From<wire::FileOperation> for Operation {
    fn from(op: wire::FileOperation) -> Operation {
        use wire::FileOperation as F;
        match op {
            F::Read => Operation::Read,
            F::Write | F::HardLink => Operation::Write,
            F::Create => Operation::Create,
            F::Delete => Operation::Delete,
            F::Rename => Operation::Rename,
        }
    }
}

/// What happens to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny,
    /// Hold the operation until a person approves it or the timeout denies it.
    Approve,
}

impl Decision {
    /// Every decision.
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Deny, Decision::Approve];

    /// The name used in policy files, the CLI and events.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Approve => "approve",
        }
    }

    /// Parses a decision name.
    pub fn from_name(name: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Strictness: allow < approve < deny. Where several catalog entries match, or the catalog
    /// floor meets a rule, the stricter decision wins.
    pub fn strictness(self) -> u8 {
        match self {
            Decision::Allow => 0,
            Decision::Approve => 1,
            Decision::Deny => 2,
        }
    }

    /// The stricter of two decisions.
    pub fn stricter(self, other: Decision) -> Decision {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }

    /// The decision code on the wire (0 deny, 1 allow, 2 pending).
    pub fn wire_code(self) -> u32 {
        wire::Decision::from(self) as u32
    }
}

impl From<Decision> for wire::Decision {
    fn from(d: Decision) -> wire::Decision {
        match d {
            Decision::Allow => wire::Decision::Allow,
            Decision::Deny => wire::Decision::Deny,
            Decision::Approve => wire::Decision::Pending,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Risk level of a high-risk location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    /// The name used in events (`critical`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_orders_allow_approve_deny() {
        assert_eq!(
            Decision::Allow.stricter(Decision::Approve),
            Decision::Approve
        );
        assert_eq!(Decision::Deny.stricter(Decision::Approve), Decision::Deny);
        assert_eq!(
            Decision::Approve.stricter(Decision::Allow),
            Decision::Approve
        );
    }

    #[test]
    fn wire_codes_are_the_design_codes() {
        assert_eq!(Decision::Deny.wire_code(), 0);
        assert_eq!(Decision::Allow.wire_code(), 1);
        assert_eq!(Decision::Approve.wire_code(), 2);
    }

    #[test]
    fn every_driver_operation_has_a_policy_operation() {
        let reads = wire::Operation::ALL
            .into_iter()
            .filter(|o| Access::from(*o).op == Operation::Read)
            .count();
        // QueryValue, EnumKeys, EnumValues, OpenKey and SaveKey (a hive export).
        assert_eq!(reads, 5);
        for op in wire::Operation::ALL {
            assert_eq!(
                Access::from(op).op == Operation::Read,
                op.is_read() || op == wire::Operation::SaveKey,
                "{op:?}"
            );
        }
        assert_eq!(
            Operation::from(wire::FileOperation::HardLink),
            Operation::Write
        );
    }

    #[test]
    fn opset_round_trips() {
        let s: OpSet = [Operation::Write, Operation::Delete].into_iter().collect();
        assert!(s.contains(Operation::Write) && !s.contains(Operation::Read));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Operation::Write, Operation::Delete]
        );
        assert_eq!(OpSet::ALL.iter().count(), 5);
    }
}
