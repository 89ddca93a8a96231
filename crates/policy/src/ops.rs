//! The five policy operations, decisions, and risk levels: the vocabulary rules are written in.
//! The driver's own operations are mapped onto these in exactly one place ([`Access`]).

use std::fmt;

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

/// The driver's registry operations by design name and code, with what each is for the policy.
/// This table is the one place driver operations become policy operations.
const DRIVER_OPS: [(&str, u32, Operation, bool); 14] = [
    ("QueryValue", 1, Operation::Read, false),
    ("SetValue", 2, Operation::Write, false),
    ("DeleteValue", 3, Operation::Delete, false),
    ("CreateKey", 4, Operation::Create, false),
    ("DeleteKey", 5, Operation::Delete, false),
    ("EnumKeys", 6, Operation::Read, false),
    ("EnumValues", 7, Operation::Read, false),
    ("OpenKey", 8, Operation::Read, false),
    ("RenameKey", 9, Operation::Rename, false),
    ("SaveKey", 10, Operation::Read, true),
    ("RestoreKey", 11, Operation::Write, false),
    ("ReplaceKey", 12, Operation::Write, false),
    ("LoadKey", 13, Operation::Write, false),
    ("SetKeySecurity", 14, Operation::Write, false),
];

/// The policy view of a driver operation code as it travels on the wire (1 = QueryValue, ...).
pub fn driver_access_by_code(code: u32) -> Option<Access> {
    DRIVER_OPS
        .iter()
        .find(|(_, c, ..)| *c == code)
        .map(|&(_, _, op, exports_hive)| Access { op, exports_hive })
}

/// The design name of a driver operation code.
pub fn driver_operation_name(code: u32) -> Option<&'static str> {
    DRIVER_OPS
        .iter()
        .find(|(_, c, ..)| *c == code)
        .map(|(n, ..)| *n)
}

/// The policy view of a driver operation name (`SetValue`, ...).
pub fn driver_access_by_name(name: &str) -> Option<Access> {
    DRIVER_OPS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, _, op, exports_hive)| Access { op, exports_hive })
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
        match self {
            Decision::Deny => 0,
            Decision::Allow => 1,
            Decision::Approve => 2,
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
    fn driver_codes_and_names_are_the_design_table() {
        for (code, name) in [
            (1, "QueryValue"),
            (2, "SetValue"),
            (5, "DeleteKey"),
            (9, "RenameKey"),
            (10, "SaveKey"),
        ] {
            assert_eq!(driver_operation_name(code), Some(name));
            assert_eq!(driver_access_by_code(code), driver_access_by_name(name));
        }
        assert_eq!(driver_access_by_code(0), None);
        assert_eq!(driver_access_by_code(15), None);
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
