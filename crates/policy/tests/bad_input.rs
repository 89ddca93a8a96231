//! Every class of bad policy input is a clear error with its location and rule, never a panic.

use agentsh_policy::Policy;

/// Loads `yaml` and expects exactly the errors given as (line:col, rule, fragment).
fn check(yaml: &str, want: &[(&str, Option<&str>, &str)]) {
    let errs = match Policy::from_str(yaml, "bad.yaml") {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.0,
    };
    let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), want.len(), "errors: {got:#?}");
    for (e, (pos, rule, fragment)) in errs.iter().zip(want) {
        assert_eq!(e.pos.to_string(), *pos, "{e}");
        assert_eq!(e.rule.as_deref(), *rule, "{e}");
        assert!(e.message.contains(fragment), "`{e}` lacks `{fragment}`");
        assert!(
            e.to_string().starts_with(&format!("bad.yaml:{pos}: ")),
            "{e}"
        );
    }
}

#[test]
fn duplicate_yaml_keys() {
    check(
        "registry_policy:\n  default_action: deny\n  default_action: allow\n",
        &[("3:3", None, "duplicate")],
    );
}

#[test]
fn unknown_fields_say_did_you_mean() {
    check(
        "registry_rules:\n  - name: r\n    paths: ['HKCU\\x']\n    operations: [read]\n    decision: allow\n    priorty: 3\n",
        &[(
            "6:5",
            Some("r"),
            "unknown field `priorty` in a rule (did you mean `priority`?)",
        )],
    );
    check(
        "regsitry_rules: []\n",
        &[("1:1", None, "did you mean `registry_rules`?")],
    );
    check(
        "driver: { fail_mod: open }\n",
        &[("1:11", None, "did you mean `fail_mode`?")],
    );
}

#[test]
fn unknown_operations_and_decisions() {
    check(
        "registry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [wirte], decision: alow }\n",
        &[
            (
                "2:48",
                Some("r"),
                "unknown operation `wirte` (expected read, write, create, delete, rename or *; did you mean `write`?)",
            ),
            (
                "2:66",
                Some("r"),
                "unknown decision `alow` (did you mean `allow`?)",
            ),
        ],
    );
}

#[test]
fn empty_and_missing_lists() {
    check(
        "registry_rules:\n  - { name: r, paths: [], operations: [], decision: deny }\n  - { name: s, decision: deny }\n",
        &[
            ("2:23", Some("r"), "`paths` is empty"),
            ("2:39", Some("r"), "`operations` is empty"),
            ("3:5", Some("s"), "rule without `paths`"),
            ("3:5", Some("s"), "rule without `operations`"),
        ],
    );
}

#[test]
fn invalid_globs_unknown_roots_and_variables() {
    check(
        "registry_rules:\n  - name: r\n    paths: ['HKCU\\[x]', 'HKLX\\SOFTWARE', 'HKCU\\${HOME}\\*', 'HKCU\\${APP_NAME']\n    operations: [read]\n    decision: allow\n",
        &[
            ("3:13", Some("r"), "`[` starts an escape"),
            ("3:25", Some("r"), "unknown registry root `HKLX`"),
            ("3:42", Some("r"), "unknown variable `${HOME}`"),
            ("3:60", Some("r"), "unterminated variable"),
        ],
    );
}

#[test]
fn control_characters_from_double_quoted_backslashes() {
    // In double quotes `\t` and `\n` are escapes: "HKCU\Network\tcpip" is not the key it looks like.
    check(
        "registry_rules:\n  - name: r\n    paths: [\"HKCU\\\\Software\\tcpip\"]\n    operations: [read]\n    decision: allow\n",
        &[(
            "3:13",
            Some("r"),
            "control character U+0009 in pattern (in YAML, write paths in single quotes)",
        )],
    );
}

#[test]
fn bad_durations() {
    check(
        "registry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: approve, timeout: 2 minutes }\n",
        &[("2:84", Some("r"), "bad duration `2 minutes`")],
    );
    check(
        "approvals: { default_timeout: 2h }\n",
        &[("1:31", None, "out of range 1s..=1h")],
    );
}

#[test]
fn out_of_range_priorities_ttls_and_driver_settings() {
    check(
        "registry_policy:\n  default_cache_ttl: -1\nregistry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: allow, priority: 2000000, cache_ttl: 86400 }\ndriver: { cache_max_entries: 50, cache_default_ttl_ms: 4000000 }\n",
        &[
            (
                "2:22",
                None,
                "`default_cache_ttl` -1 is out of range 0..=3600",
            ),
            (
                "4:83",
                Some("r"),
                "`priority` 2000000 is out of range -1000000..=1000000",
            ),
            (
                "4:103",
                Some("r"),
                "`cache_ttl` 86400 is out of range 0..=3600",
            ),
            (
                "5:30",
                None,
                "`cache_max_entries` 50 is out of range 100..=100000",
            ),
            (
                "5:56",
                None,
                "`cache_default_ttl_ms` 4000000 is out of range 100..=3600000",
            ),
        ],
    );
}

#[test]
fn both_syntaxes_for_the_same_thing() {
    check(
        "registry_policy:\n  rules: []\nregistry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: allow, action: deny, timeout: 1m, timeout_seconds: 5 }\n",
        &[
            ("4:3", None, "rules given twice"),
            ("4:81", Some("r"), "both `decision` and `action` given"),
            (
                "4:117",
                Some("r"),
                "both `timeout` and `timeout_seconds` given",
            ),
        ],
    );
}

#[test]
fn wrong_types_duplicate_names_and_unknown_catalog_ids() {
    check(
        "registry_rules:\n  - { name: r, paths: 'HKCU\\x', operations: [write], decision: allow, notify: yes please }\n  - { name: r, paths: ['HKCU\\y'], operations: [write], decision: allow, overrides: [run-key-hkcu] }\nhigh_risk: { disable: [nope] }\n",
        &[
            ("2:23", Some("r"), "`paths` must be a list, found a string"),
            ("2:79", Some("r"), "`notify` must be true or false"),
            (
                "3:85",
                Some("r"),
                "unknown catalog entry `run-key-hkcu` (did you mean `run-keys-hkcu`?)",
            ),
            ("4:24", None, "unknown catalog entry `nope`"),
        ],
    );
}

#[test]
fn duplicate_rule_names() {
    check(
        "registry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: allow }\n  - { name: r, paths: ['HKCU\\y'], operations: [write], decision: deny }\n",
        &[(
            "3:5",
            Some("r"),
            "duplicate registry rule name (first defined at line 2)",
        )],
    );
}

#[test]
fn failing_policy_tests_are_load_errors() {
    check(
        "tests:\n  - { name: t, key: 'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run', op: SetValue, value: x, expect: allow }\n",
        &[("2:5", Some("t"), "expected allow, got deny")],
    );
    check(
        "tests:\n  - { key: 'HKCU\\x', op: Frob, expect: deny }\n",
        &[("2:26", Some("test #1"), "unknown operation `Frob`")],
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let errs = Policy::from_str("registry_rules:\n  - name: [unclosed\n", "bad.yaml")
        .expect_err("syntax error")
        .0;
    assert_eq!(errs.len(), 1);
    assert!(errs[0].pos.line >= 2, "{}", errs[0]);
}

#[test]
fn rule_apps_must_be_a_non_empty_list_of_valid_unique_app_names() {
    check(
        "registry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: allow, apps: [] }\n",
        &[("2:79", Some("r"), "`apps` is empty")],
    );
    check(
        "registry_rules:\n  - { name: r, paths: ['HKCU\\x'], operations: [write], decision: allow, apps: Editor }\n",
        &[("2:79", Some("r"), "`apps` must be a list")],
    );
    check(
        "file_rules:\n  - name: f\n    paths: ['C:\\x\\*']\n    operations: [write]\n    decision: deny\n    apps:\n      - Editor\n      - 'a*b'\n      - Microsoft\n      - ''\n      - \"x\\u0007y\"\n      - EDITOR\n      - [nested]\n",
        &[
            ("8:9", Some("f"), "`apps`: application name `a*b` must be"),
            ("9:9", Some("f"), "`apps`: application name `Microsoft`"),
            ("10:9", Some("f"), "`apps`: application name `` must be"),
            ("11:9", Some("f"), "application name `x\\u{7}y`"),
            ("12:9", Some("f"), "`apps`: `EDITOR` is listed twice"),
            ("13:9", Some("f"), "apps"),
        ],
    );
}
