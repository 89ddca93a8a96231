//! docs/catalog.md is generated from the catalog and must not drift from it; docs/policy.md
//! documents every top-level section the loader accepts and points to the catalog page.

use agentsh_policy::catalog::{self, ENTRIES};
use agentsh_policy::load::TOP_LEVEL;

fn doc(name: &str) -> (std::path::PathBuf, String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    (path, text)
}

#[test]
fn the_catalog_page_is_generated_from_the_table() {
    let (path, on_disk) = doc("catalog.md");
    let generated = catalog::markdown();
    if std::env::var_os("AGENTSH_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("docs/catalog.md written");
        return;
    }
    assert!(
        on_disk == generated,
        "docs/catalog.md is not the generated catalog page; regenerate it with \
         `AGENTSH_BLESS=1 cargo test -p agentsh-policy --test docs_sync`"
    );
    // Every entry appears with its technique, action, reason and every source.
    for e in ENTRIES {
        let row = on_disk
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", e.id)))
            .unwrap_or_else(|| panic!("no catalog row for `{}`", e.id));
        assert!(row.contains(e.technique), "{row}");
        assert!(row.contains(&format!("| {} |", e.action)), "{row}");
        assert!(row.contains(&e.reason.replace('|', "\\|")), "{row}");
        for s in e.sources {
            assert!(row.contains(&s.replace('|', "\\|")), "{}: {s}", e.id);
        }
    }
}

#[test]
fn the_policy_reference_documents_every_section_and_links_the_catalog() {
    let (_, text) = doc("policy.md");
    assert!(
        text.contains("catalog.md"),
        "docs/policy.md links docs/catalog.md"
    );
    for section in TOP_LEVEL {
        assert!(
            text.contains(&format!("| `{section}` |")),
            "section `{section}` undocumented"
        );
    }
}
