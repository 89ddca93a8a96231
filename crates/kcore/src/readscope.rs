//! The compiled read scope (SetReadScope): key and path prefixes under which the policy can
//! decide a read other than "allow, unlogged". Stored case-folded in memory allocated fallibly,
//! replaced whole.

use alloc::vec::Vec;

use agentsh_wire::scope::{ReadScopeView, ScopeKind};

/// A stored scope.
#[derive(Debug, Default)]
pub struct ReadScope {
    registry: Vec<Vec<u16>>,
    file: Vec<Vec<u16>>,
}

impl ReadScope {
    /// Copies a validated message; `None` when an allocation fails (nothing is kept).
    pub fn try_from_view(view: &ReadScopeView<'_>) -> Option<Self> {
        let mut registry = Vec::new();
        let mut file = Vec::new();
        for (kind, units) in view.entries() {
            let mut prefix = Vec::new();
            prefix.try_reserve_exact(units.len()).ok()?;
            prefix.extend(units.iter().map(agentsh_winstr::upcase_unit));
            let list = match kind {
                ScopeKind::Registry => &mut registry,
                ScopeKind::File => &mut file,
            };
            list.try_reserve(1).ok()?;
            list.push(prefix);
        }
        Some(ReadScope { registry, file })
    }

    /// Whether a registry key path lies in the scope (starts with a prefix, case-insensitively).
    pub fn covers_key(&self, key: &[u16]) -> bool {
        covers(&self.registry, key)
    }

    /// Whether a file path lies in the scope.
    pub fn covers_path(&self, path: &[u16]) -> bool {
        covers(&self.file, path)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.registry.len() + self.file.len()
    }

    /// Whether the scope holds no prefix (no read is queried).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn covers(prefixes: &[Vec<u16>], name: &[u16]) -> bool {
    prefixes.iter().any(|p| {
        name.len() >= p.len()
            && name
                .iter()
                .zip(p)
                .all(|(&n, &f)| n == f || agentsh_winstr::upcase_unit(n) == f)
    })
}
