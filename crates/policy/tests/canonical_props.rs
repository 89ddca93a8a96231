//! Property tests: the canonicalizers are total, idempotent and spelling-independent, and a
//! literal pattern matches exactly its own canonical key.

use agentsh_policy::canonical::canonicalize;
use agentsh_policy::filepath::{VolumeMap, canonicalize_file};
use agentsh_policy::pattern::{UserScope, VarValues, registry_key};
use proptest::prelude::*;

const SID: &str = "S-1-5-21-1-2-3-1001";

/// A key component: letters (some non-ASCII with Windows upper-case mappings), digits, spaces,
/// punctuation; never `\`, `*`, `?`, `[`, `$`.
fn component() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 ._{}-]{1,6}[äöüßéñǆΩ]?[a-z0-9]{0,3}").expect("regex")
}

fn tail() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(component(), 0..6)
}

/// Re-spells a path: random case per character and random runs of backslashes.
fn respell(path: &str, case_bits: u64, sep_bits: u64) -> String {
    let mut out = String::new();
    for (i, c) in path.chars().enumerate() {
        if c == '\\' {
            out.push('\\');
            if sep_bits >> (i % 64) & 1 == 1 {
                out.push('\\');
            }
        } else if case_bits >> (i % 64) & 1 == 1 {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    if sep_bits & 1 == 1 {
        out.push('\\');
    }
    out
}

proptest! {
    #[test]
    fn canonicalize_is_total_and_idempotent(s in ".{0,80}") {
        let once = canonicalize(&s, Some(SID));
        let twice = canonicalize(once.as_str(), Some(SID));
        prop_assert_eq!(once.as_str(), twice.as_str());
        let f = canonicalize_file(&s, &VolumeMap::new());
        let f2 = canonicalize_file(f.as_str(), &VolumeMap::new());
        prop_assert_eq!(f.as_str(), f2.as_str());
    }

    #[test]
    fn every_spelling_of_a_machine_key_is_the_same_key(rest in tail(), case_bits: u64, sep_bits: u64, root in 0usize..3) {
        let rest = rest.join("\\");
        let roots = [r"HKLM\SOFTWARE", r"HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node", r"\REGISTRY\MACHINE\Software"];
        let want = canonicalize(&format!(r"HKLM\SOFTWARE\{rest}"), Some(SID));
        let spelled = respell(&format!(r"{}\{rest}", roots[root]), case_bits, sep_bits);
        prop_assert_eq!(canonicalize(&spelled, Some(SID)), want);
    }

    #[test]
    fn every_spelling_of_a_user_key_is_the_same_key(rest in tail(), case_bits: u64, sep_bits: u64, root in 0usize..4) {
        let rest = rest.join("\\");
        let roots = [
            r"HKCU\Software\Classes".to_owned(),
            format!(r"\REGISTRY\USER\{SID}_Classes"),
            format!(r"HKU\{SID}\SOFTWARE\CLASSES\Wow6432Node"),
            r"HKEY_CURRENT_USER\Software\Classes".to_owned(),
        ];
        let want = canonicalize(&format!(r"HKCU\SOFTWARE\CLASSES\{rest}"), Some(SID));
        let spelled = respell(&format!(r"{}\{rest}", roots[root]), case_bits, sep_bits);
        prop_assert_eq!(canonicalize(&spelled, Some(SID)), want);
    }

    #[test]
    fn numbered_control_sets_are_the_current_one(rest in tail(), n in 1u32..1000) {
        let rest = rest.join("\\");
        let a = canonicalize(&format!(r"\REGISTRY\MACHINE\SYSTEM\ControlSet{n:03}\{rest}"), None);
        let b = canonicalize(&format!(r"HKLM\SYSTEM\CurrentControlSet\{rest}"), None);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_literal_pattern_matches_its_key_and_a_star_matches_below(rest in proptest::collection::vec(component(), 1..6), extra in tail()) {
        let key = format!(r"HKLM\SOFTWARE\{}", rest.join("\\"));
        let vars = VarValues::default();
        let canon = canonicalize(&key, None);
        let lit = registry_key(&key, UserScope::SessionUser).expect("pattern").remove(0);
        prop_assert!(lit.matches(canon.as_str(), &vars));
        let star = registry_key(&format!(r"{key}\*"), UserScope::SessionUser).expect("pattern").remove(0);
        let below = canonicalize(&format!(r"{key}\{}", extra.join("\\")), None);
        prop_assert!(star.matches(below.as_str(), &vars));
        let sibling = canonicalize(&format!("{key}X"), None);
        prop_assert!(!lit.matches(sibling.as_str(), &vars));
        prop_assert!(!star.matches(sibling.as_str(), &vars));
    }
}
