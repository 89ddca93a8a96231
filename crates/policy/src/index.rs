//! The prefix index behind the compiled matcher: patterns are filed under the key path their
//! literal prefix names, so a lookup walks the query's components once and only tests the
//! patterns filed along that walk. Cost grows with path depth and local density, not rule count.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::pattern::Glob;

/// One component of the path a pattern is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexComp {
    /// A key or directory name, upper-cased.
    Lit(Box<str>),
    /// Any one component: the user in a catalog `HKU\<user>\...` location.
    Any,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, u32, FxBuildHasher>,
    /// The child every component also reaches (kept apart from `children`, so a key really
    /// named like a wildcard never takes this branch by its name).
    any: Option<u32>,
    here: Vec<u32>,
    /// Everything filed at this node or beneath it (for deletes and renames of ancestors).
    subtree: Vec<u32>,
}

/// Maps component paths to entry ids.
#[derive(Debug)]
pub(crate) struct PathIndex {
    nodes: Vec<Node>,
}

/// The component path a glob is filed under: every component of a literal pattern, otherwise
/// its components up to the last complete literal one before a wildcard (a user component is
/// [`IndexComp::Any`]). The pattern's source text is never used: an escaped `[*]` is filed under
/// the literal `*` a key really has.
pub(crate) fn index_path(glob: &Glob) -> Vec<IndexComp> {
    glob.index_components()
}

/// The bytes of a key the index walk has compared literally before the target is tested: the
/// leading literal components, with their separators.
pub(crate) fn literal_len(path: &[IndexComp]) -> usize {
    let mut len = 0;
    for (i, c) in path.iter().enumerate() {
        match c {
            IndexComp::Lit(l) => len += l.len() + usize::from(i > 0),
            IndexComp::Any => break,
        }
    }
    len
}

/// Whether `path` names `key` or lies beneath it (component-wise; `Any` matches any one name).
pub(crate) fn is_beneath(path: &[IndexComp], key: &str) -> bool {
    let mut comps = path.iter();
    key.split('\\').all(|k| match comps.next() {
        Some(IndexComp::Lit(l)) => **l == *k,
        Some(IndexComp::Any) => !k.is_empty(),
        None => false,
    })
}

impl PathIndex {
    /// Files `ids` (in the order given) under their paths; lists stay in insertion order.
    pub(crate) fn build(items: impl IntoIterator<Item = (Vec<IndexComp>, u32)>) -> PathIndex {
        let mut idx = PathIndex {
            nodes: vec![Node::default()],
        };
        for (path, id) in items {
            let mut n = 0usize;
            for comp in path {
                let next = idx.nodes.len() as u32;
                let child = match comp {
                    IndexComp::Lit(name) => *idx.nodes[n].children.entry(name).or_insert(next),
                    IndexComp::Any => *idx.nodes[n].any.get_or_insert(next),
                };
                if child == next {
                    idx.nodes.push(Node::default());
                }
                n = child as usize;
            }
            idx.nodes[n].here.push(id);
        }
        idx.fill_subtrees(0);
        for n in &mut idx.nodes {
            n.subtree.sort_unstable();
            n.subtree.dedup();
        }
        idx
    }

    fn fill_subtrees(&mut self, n: usize) -> Vec<u32> {
        let mut all = self.nodes[n].here.clone();
        let children: Vec<u32> = self.nodes[n]
            .children
            .values()
            .copied()
            .chain(self.nodes[n].any)
            .collect();
        for c in children {
            all.extend(self.fill_subtrees(c as usize));
        }
        self.nodes[n].subtree = all.clone();
        all
    }

    /// Calls `f` with the ids filed at every node along `key` (root first; a component reaches
    /// both its named child and the any-component child). Returns the subtrees of the nodes
    /// `key` names exactly (none if the walk fell off the index).
    pub(crate) fn walk(&self, key: &str, mut f: impl FnMut(&[u32])) -> SmallVec<[&[u32]; 2]> {
        let mut live: SmallVec<[u32; 2]> = SmallVec::new();
        live.push(0);
        f(&self.nodes[0].here);
        for comp in key.split('\\') {
            let mut next: SmallVec<[u32; 2]> = SmallVec::new();
            for &n in &live {
                let node = &self.nodes[n as usize];
                let named = node.children.get(comp).copied();
                let any = node.any.filter(|_| !comp.is_empty());
                for c in named.into_iter().chain(any) {
                    f(&self.nodes[c as usize].here);
                    next.push(c);
                }
            }
            if next.is_empty() {
                return SmallVec::new();
            }
            live = next;
        }
        live.iter()
            .map(|&n| self.nodes[n as usize].subtree.as_slice())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{UserScope, registry_key};

    fn glob(p: &str) -> Glob {
        registry_key(p, UserScope::SessionUser)
            .expect("valid")
            .remove(0)
    }

    fn lits(path: &str) -> Vec<IndexComp> {
        path.split('\\')
            .filter(|c| !c.is_empty())
            .map(|c| IndexComp::Lit(c.into()))
            .collect()
    }

    #[test]
    fn globs_are_filed_under_their_last_complete_literal_component() {
        assert_eq!(index_path(&glob(r"HKLM\A\Run*")), lits(r"HKLM\A"));
        assert_eq!(index_path(&glob(r"HKLM\A\B")), lits(r"HKLM\A\B"));
        assert_eq!(index_path(&glob(r"HKCU\${APP_NAME}\*")), lits("HKCU"));
        assert_eq!(index_path(&glob(r"*")), lits(""));
        assert_eq!(index_path(&glob(r"HKLM\A\*")), lits(r"HKLM\A"));
        assert_eq!(literal_len(&lits(r"HKLM\A")), r"HKLM\A".len());
    }

    #[test]
    fn escaped_wildcards_are_filed_under_the_literal_character() {
        let mut star = index_path(&glob(r"HKCR\[*]"));
        assert_eq!(star.last(), Some(&IndexComp::Lit("*".into())));
        star.push(IndexComp::Lit("SHELL".into()));
        assert_eq!(index_path(&glob(r"HKCR\[*]\shell")), star);
    }

    #[test]
    fn a_catalog_user_location_is_filed_under_any_user() {
        let globs = registry_key(r"HKCU\Environment\*", UserScope::AnyUser).expect("valid");
        let any = &globs[0];
        assert_eq!(any.as_str(), r"HKU\*\ENVIRONMENT\*");
        let path = index_path(any);
        assert_eq!(
            path,
            [
                IndexComp::Lit("HKU".into()),
                IndexComp::Any,
                IndexComp::Lit("ENVIRONMENT".into())
            ]
        );
        assert_eq!(literal_len(&path), 3);
        let vars = Default::default();
        assert!(any.matches(r"HKU\S-1-5-21-1\ENVIRONMENT", &vars));
        assert!(any.matches(r"HKU\.DEFAULT\ENVIRONMENT\PATH", &vars));
        // The user is one component: a deeper key that happens to end the same way is not it.
        assert!(!any.matches(r"HKU\S-1-5-21-1\X\ENVIRONMENT", &vars));
        assert!(!any.matches(r"HKU\\ENVIRONMENT", &vars));
        assert!(is_beneath(&path, r"HKU\S-1-5-21-1"));
        assert!(is_beneath(&path, "HKU"));
        assert!(!is_beneath(&path, r"HKU\S-1-5-21-1\SOFTWARE"));
    }

    #[test]
    fn walk_takes_the_named_and_the_any_branch() {
        let idx = PathIndex::build([
            (lits("HKU"), 0),
            (
                vec![
                    IndexComp::Lit("HKU".into()),
                    IndexComp::Any,
                    IndexComp::Lit("RUN".into()),
                ],
                1,
            ),
            (lits(r"HKU\S-1\RUN"), 2),
            (lits(r"HKU\S-1\OTHER"), 3),
        ]);
        let mut seen = Vec::new();
        let subtrees = idx.walk(r"HKU\S-1\RUN", |ids| seen.extend_from_slice(ids));
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(subtrees.len(), 2);
        let mut seen = Vec::new();
        let subtrees = idx.walk(r"HKU\S-2", |ids| seen.extend_from_slice(ids));
        assert_eq!(seen, [0]);
        assert_eq!(subtrees.as_slice(), [&[1u32][..]]);
    }

    #[test]
    fn walk_visits_the_nodes_along_the_key_and_returns_the_subtree() {
        let idx = PathIndex::build([
            (lits(""), 0),
            (lits(r"HKLM\A"), 1),
            (lits(r"HKLM\A\B"), 2),
            (lits(r"HKLM\C"), 3),
        ]);
        let mut seen = Vec::new();
        let sub = idx.walk(r"HKLM\A", |ids| seen.extend_from_slice(ids));
        assert_eq!(seen, [0, 1]);
        assert_eq!(sub.as_slice(), [&[1u32, 2][..]]);
        let mut seen = Vec::new();
        assert!(
            idx.walk(r"HKLM\A\X\Y", |ids| seen.extend_from_slice(ids))
                .is_empty()
        );
        assert_eq!(seen, [0, 1]);
    }
}
