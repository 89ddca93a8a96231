//! docs/policy.md lists every catalog entry with its technique and action, and every top-level
//! section the loader accepts.

use agentsh_policy::catalog::ENTRIES;
use agentsh_policy::load::TOP_LEVEL;

#[test]
fn the_policy_reference_documents_every_catalog_entry_and_section() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/policy.md");
    let doc = std::fs::read_to_string(path).expect("docs/policy.md exists");
    for e in ENTRIES {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", e.id)))
            .unwrap_or_else(|| panic!("no catalog row for `{}`", e.id));
        assert!(
            row.contains(e.technique) && row.contains(&format!("| {} |", e.action)),
            "{row}"
        );
    }
    for section in TOP_LEVEL {
        assert!(
            doc.contains(&format!("| `{section}` |")),
            "section `{section}` undocumented"
        );
    }
}
