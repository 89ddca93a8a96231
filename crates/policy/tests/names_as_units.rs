//! Names are code units end to end: the kernel's decision cache (crates/kcore, which folds case
//! unit by unit) and the policy matcher (which works on name text) treat two names as one entry
//! exactly when they agree, for names holding unpaired surrogates, NULs and letters whose Windows
//! upper case is not their ASCII one. A lone surrogate matches only itself.

use agentsh_kcore::cache::{CacheKey, Cached, DecisionCache, Insert};
use agentsh_policy::canonical::{canonicalize_utf16, upcase};
use agentsh_policy::pattern::{self, UserScope, VarValues};
use agentsh_wire::response::CacheTtl;
use proptest::prelude::*;

/// Units chosen so that random names collide under some rule and not others: ASCII letters in
/// both cases, letters with non-ASCII Windows upper cases (é, ǆ/ǅ/Ǆ, ı, ſ, Kelvin K), ß (no
/// one-unit upper case), unpaired surrogates of both halves, the two halves of a reserved-block
/// character, NUL and the wire's escape unit.
const ALPHABET: &[u16] = &[
    0x61, 0x41, 0x6B, 0x4B, 0x69, 0x49, 0x73, 0x53, 0xE9, 0xC9, 0x1C4, 0x1C5, 0x1C6, 0x131, 0x17F,
    0x212A, 0xDF, 0xD800, 0xDC00, 0xDBFE, 0xDC01, 0x0000, 0xFFFF,
];

fn name() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), 1..6)
}

fn key_path(component: &[u16]) -> Vec<u16> {
    let mut k: Vec<u16> = "\\REGISTRY\\MACHINE\\SOFTWARE\\".encode_utf16().collect();
    k.extend_from_slice(component);
    k
}

/// Whether the kernel cache answers a lookup of `(path_b, name_b)` from an entry stored for
/// `(path_a, name_a)`.
fn cache_hit(path_a: &[u16], name_a: &[u16], path_b: &[u16], name_b: &[u16]) -> bool {
    let mut cache = DecisionCache::new(16, 7);
    let stored = Cached {
        allow: false,
        flags: 0,
    };
    let a = CacheKey {
        token: 1,
        kind: 2,
        path: path_a,
        name: name_a,
    };
    let inserted = cache.insert(0, &a, stored, CacheTtl::Seconds(60), 1000);
    assert_eq!(inserted, Insert::Stored);
    let b = CacheKey {
        token: 1,
        kind: 2,
        path: path_b,
        name: name_b,
    };
    cache.lookup(1, &b).is_some()
}

fn text(units: &[u16]) -> String {
    agentsh_winstr::name::decode(units).collect()
}

proptest! {
    #[test]
    fn the_cache_and_the_matcher_agree_on_which_names_are_one(a in name(), b in name(), va in name(), vb in name()) {
        let (pa, pb) = (key_path(&a), key_path(&b));
        let same_key = canonicalize_utf16(&pa, None).as_str() == canonicalize_utf16(&pb, None).as_str();
        let same_value = upcase(&text(&va)) == upcase(&text(&vb));
        prop_assert_eq!(cache_hit(&pa, &va, &pb, &vb), same_key && same_value);
        prop_assert_eq!(cache_hit(&pa, &[], &pb, &[]), same_key);

        // Where a name can be written as a rule (no reserved character, no control, no
        // wildcard), its literal pattern matches the other name exactly when the cache would
        // share their entry.
        let ta = text(&va);
        if let Ok(glob) = pattern::value_name(&ta.replace('[', "[[]").replace('*', "[*]").replace('?', "[?]")) {
            prop_assert_eq!(glob.matches(&upcase(&text(&vb)), &VarValues::default()), cache_hit(&pa, &va, &pa, &vb));
        }
        let ka = canonicalize_utf16(&pa, None);
        if let Ok(globs) = pattern::registry_key(ka.as_str(), UserScope::SessionUser) {
            let key_b = canonicalize_utf16(&pb, None);
            let matched = globs.iter().any(|g| g.matches(key_b.as_str(), &VarValues::default()));
            prop_assert_eq!(matched, cache_hit(&pa, &[], &pb, &[]));
        }
    }
}

/// F1: an unpaired surrogate is a unit that matches only itself; case folding leaves it alone,
/// and a wildcard still covers it.
#[test]
fn a_lone_surrogate_matches_only_itself() {
    let lone: Vec<u16> = [0xD800]
        .into_iter()
        .chain("updater".encode_utf16())
        .collect();
    let other: Vec<u16> = [0xD801]
        .into_iter()
        .chain("UPDATER".encode_utf16())
        .collect();
    let upper: Vec<u16> = [0xD800]
        .into_iter()
        .chain("UPDATER".encode_utf16())
        .collect();
    let k = key_path(&[0x52]);
    assert!(cache_hit(&k, &lone, &k, &upper));
    assert!(!cache_hit(&k, &lone, &k, &other));
    assert_ne!(upcase(&text(&lone)), upcase(&text(&other)));
    assert_eq!(upcase(&text(&lone)), upcase(&text(&upper)));
    let star = pattern::value_name("*UPDATER").expect("compiles");
    assert!(star.matches(&upcase(&text(&lone)), &VarValues::default()));
    let literal = pattern::value_name("UPDATER").expect("compiles");
    assert!(!literal.matches(&upcase(&text(&lone)), &VarValues::default()));
    assert!(pattern::value_name("\u{10F800}UPDATER").is_err());
}
