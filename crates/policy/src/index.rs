//! The prefix index behind the compiled matcher: patterns are filed under the key path their
//! literal prefix names, so a lookup walks the query's components once and only tests the
//! patterns filed along that walk. Cost grows with path depth and local density, not rule count.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

use crate::pattern::Glob;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, u32, FxBuildHasher>,
    here: Vec<u32>,
    /// Everything filed at this node or beneath it (for deletes and renames of ancestors).
    subtree: Vec<u32>,
}

/// Maps component paths to entry ids.
#[derive(Debug)]
pub(crate) struct PathIndex {
    nodes: Vec<Node>,
}

/// The component path a glob is filed under: the whole text for a literal pattern, otherwise its
/// literal prefix up to the last complete component.
pub(crate) fn index_path(glob: &Glob) -> String {
    if glob.is_literal() {
        return glob.as_str().to_owned();
    }
    let prefix = glob.literal_prefix();
    match prefix.rfind('\\') {
        Some(i) => prefix[..i].to_owned(),
        None => String::new(),
    }
}

impl PathIndex {
    /// Files `ids` (in the order given) under their paths; lists stay in insertion order.
    pub(crate) fn build(items: impl IntoIterator<Item = (String, u32)>) -> PathIndex {
        let mut idx = PathIndex {
            nodes: vec![Node::default()],
        };
        for (path, id) in items {
            let mut n = 0usize;
            for comp in path.split('\\').filter(|c| !c.is_empty()) {
                let next = idx.nodes.len() as u32;
                let child = *idx.nodes[n].children.entry(comp.into()).or_insert(next);
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
        let children: Vec<u32> = self.nodes[n].children.values().copied().collect();
        for c in children {
            all.extend(self.fill_subtrees(c as usize));
        }
        self.nodes[n].subtree = all.clone();
        all
    }

    /// Calls `f` with the ids filed at every node along `key` (root first). Returns the subtree
    /// of the node `key` names exactly, if the walk reached it.
    pub(crate) fn walk(&self, key: &str, mut f: impl FnMut(&[u32])) -> Option<&[u32]> {
        let mut n = &self.nodes[0];
        f(&n.here);
        for comp in key.split('\\') {
            match n.children.get(comp) {
                Some(&c) => {
                    n = &self.nodes[c as usize];
                    f(&n.here);
                }
                None => return None,
            }
        }
        Some(&n.subtree)
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

    #[test]
    fn globs_are_filed_under_their_last_complete_literal_component() {
        assert_eq!(index_path(&glob(r"HKLM\A\Run*")), r"HKLM\A");
        assert_eq!(index_path(&glob(r"HKLM\A\B")), r"HKLM\A\B");
        assert_eq!(index_path(&glob(r"HKCU\${APP_NAME}\*")), "HKCU");
        assert_eq!(index_path(&glob(r"*")), "");
        assert_eq!(index_path(&glob(r"HKLM\A\*")), r"HKLM\A");
    }

    #[test]
    fn walk_visits_the_nodes_along_the_key_and_returns_the_subtree() {
        let idx = PathIndex::build([
            (String::new(), 0),
            (r"HKLM\A".to_owned(), 1),
            (r"HKLM\A\B".to_owned(), 2),
            (r"HKLM\C".to_owned(), 3),
        ]);
        let mut seen = Vec::new();
        let sub = idx.walk(r"HKLM\A", |ids| seen.extend_from_slice(ids));
        assert_eq!(seen, [0, 1]);
        assert_eq!(sub, Some(&[1u32, 2][..]));
        let mut seen = Vec::new();
        assert_eq!(
            idx.walk(r"HKLM\A\X\Y", |ids| seen.extend_from_slice(ids)),
            None
        );
        assert_eq!(seen, [0, 1]);
    }
}
