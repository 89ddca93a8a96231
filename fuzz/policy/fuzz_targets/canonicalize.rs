//! Fuzzes the canonicalizers and the pattern compiler: total, idempotent, never a panic.
#![no_main]

use agentsh_policy::canonical::{canonicalize, canonicalize_utf16};
use agentsh_policy::filepath::{VolumeMap, canonicalize_file};
use agentsh_policy::pattern::{self, UserScope, VarValues};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The same bytes as a name of arbitrary code units, as the kernel sends it: canonicalizing is
    // total and idempotent, and a literal pattern of the result never matches a name with other
    // units (an unpaired surrogate matches only itself).
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let from_units = canonicalize_utf16(&units, Some("S-1-5-21-1"));
    assert_eq!(
        canonicalize(from_units.as_str(), Some("S-1-5-21-1")).as_str(),
        from_units.as_str()
    );
    let name: String = agentsh_winstr::name::decode(&units).collect();
    assert!(agentsh_winstr::name::units(&name).eq(units.iter().copied()));
    if let Ok(g) = pattern::value_name(&name) {
        assert!(!agentsh_winstr::name::has_reserved(&name));
        let _ = g.matches(&agentsh_policy::canonical::upcase(&name), &VarValues::default());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    let key = canonicalize(a, Some("S-1-5-21-1"));
    assert_eq!(
        canonicalize(key.as_str(), Some("S-1-5-21-1")).as_str(),
        key.as_str()
    );
    let mut volumes = VolumeMap::new();
    let _ = volumes.insert(r"\Device\HarddiskVolume1", "C:");
    let file = canonicalize_file(a, &volumes);
    assert_eq!(
        canonicalize_file(file.as_str(), &volumes).as_str(),
        file.as_str()
    );
    let vars = VarValues {
        workspace: Some(r"C:\W".into()),
        app_name: Some("APP".into()),
    };
    if let Ok(globs) = pattern::registry_key(b, UserScope::AnyUser) {
        for g in globs {
            let _ = g.matches(key.as_str(), &vars);
        }
    }
    if let Ok(g) = pattern::file_path(b) {
        let _ = g.matches(file.as_str(), &vars);
    }
    if let Ok(g) = pattern::value_name(b) {
        let _ = g.matches(a, &vars);
    }
});
