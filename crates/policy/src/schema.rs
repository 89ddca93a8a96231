//! JSON Schema (draft 2020-12) of `agentsh.yaml` for editors. Built from the same field lists
//! the loader accepts, so the two cannot drift apart (a test checks every list is covered).

use serde_json::{Map, Value, json};

use crate::catalog;
use crate::load::{self, CACHE_TTL_SECS, PRIORITY};
use crate::settings::{ApprovalSettings, DriverSettings, EventSettings};

fn object(fields: &[&str], props: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut map = Map::new();
    for (name, schema) in props {
        debug_assert!(
            fields.contains(&name),
            "schema property `{name}` unknown to the loader"
        );
        map.insert(name.to_owned(), schema);
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": Value::Object(map),
        "required": required,
    })
}

fn int_range(lo: i64, hi: i64, description: &str) -> Value {
    json!({ "type": "integer", "minimum": lo, "maximum": hi, "description": description })
}

fn decision() -> Value {
    json!({ "enum": ["allow", "deny", "approve"] })
}

const DURATION: &str = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

fn rule(domain: load::Domain) -> Value {
    let path = match domain {
        load::Domain::Registry => json!({
            "oneOf": [
                { "type": "string", "description": "key pattern: * spans \\, ? one character, [*] [?] [[] literals, ${WORKSPACE} ${APP_NAME}" },
                object(load::PATH_FIELDS, vec![
                    ("key", json!({ "type": "string" })),
                    ("value", json!({ "type": "string", "description": "value-name pattern; \"\" is the default value" })),
                ], &["key"]),
            ]
        }),
        load::Domain::File => json!({ "type": "string" }),
    };
    let ids: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.id).collect();
    object(
        load::RULE_FIELDS,
        vec![
            ("name", json!({ "type": "string", "minLength": 1 })),
            ("description", json!({ "type": "string" })),
            (
                "paths",
                json!({ "type": "array", "minItems": 1, "items": path }),
            ),
            (
                "operations",
                json!({ "type": "array", "minItems": 1, "items": { "enum": ["read", "write", "create", "delete", "rename", "*"] } }),
            ),
            ("decision", decision()),
            ("action", decision()),
            (
                "priority",
                int_range(
                    *PRIORITY.start(),
                    *PRIORITY.end(),
                    "higher first; ties keep file order",
                ),
            ),
            ("notify", json!({ "type": "boolean" })),
            (
                "message",
                json!({ "type": "string", "description": "{{.Path}} {{.ValueName}} {{.Operation}} {{.ProcessName}} {{.ProcessID}} {{.Rule}}" }),
            ),
            ("timeout", json!({ "type": "string", "pattern": DURATION })),
            (
                "timeout_seconds",
                int_range(
                    1,
                    i64::from(*ApprovalSettings::TIMEOUT_SECS.end()),
                    "approval timeout",
                ),
            ),
            (
                "cache_ttl",
                int_range(
                    *CACHE_TTL_SECS.start(),
                    *CACHE_TTL_SECS.end(),
                    "seconds; 0 = do not cache",
                ),
            ),
            (
                "overrides",
                json!({ "type": "array", "items": { "enum": ids } }),
            ),
            (
                "apps",
                json!({ "type": "array", "minItems": 1, "uniqueItems": true, "items": { "type": "string", "minLength": 1, "pattern": "^[^\\\\*?\\u0000-\\u001f\\u007f-\\u009f]+$" }, "description": "application names (compared case-insensitively) whose sessions the rule applies to; a label the session's starter chooses, not an authentication" }),
            ),
        ],
        &["name", "paths", "operations"],
    )
}

fn policy_section(domain: load::Domain) -> Value {
    object(
        load::POLICY_FIELDS,
        vec![
            ("default_action", decision()),
            ("log_all", json!({ "type": "boolean" })),
            (
                "default_cache_ttl",
                int_range(
                    *CACHE_TTL_SECS.start(),
                    *CACHE_TTL_SECS.end(),
                    "seconds; 0 = no cache",
                ),
            ),
            ("notify_on_deny", json!({ "type": "boolean" })),
            ("rules", json!({ "type": "array", "items": rule(domain) })),
        ],
        &[],
    )
}

fn u32_range(r: &std::ops::RangeInclusive<u32>, d: &str) -> Value {
    int_range(i64::from(*r.start()), i64::from(*r.end()), d)
}

/// The schema as a JSON value.
pub fn policy_schema() -> Value {
    let ids: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.id).collect();
    let top = object(
        load::TOP_LEVEL,
        vec![
            ("version", json!({ "const": 1 })),
            ("registry_policy", policy_section(load::Domain::Registry)),
            (
                "registry_rules",
                json!({ "type": "array", "items": rule(load::Domain::Registry) }),
            ),
            ("file_policy", policy_section(load::Domain::File)),
            (
                "file_rules",
                json!({ "type": "array", "items": rule(load::Domain::File) }),
            ),
            (
                "high_risk",
                object(
                    load::HIGH_RISK_FIELDS,
                    vec![(
                        "disable",
                        json!({ "type": "array", "items": { "enum": ids } }),
                    )],
                    &[],
                ),
            ),
            (
                "driver",
                object(
                    load::DRIVER_FIELDS,
                    vec![
                        ("fail_mode", json!({ "enum": ["open", "closed"] })),
                        (
                            "policy_query_timeout_ms",
                            u32_range(&DriverSettings::QUERY_TIMEOUT_MS, "default 5000"),
                        ),
                        (
                            "max_consecutive_failures",
                            u32_range(&DriverSettings::MAX_FAILURES, "default 10"),
                        ),
                        (
                            "cache_max_entries",
                            u32_range(&DriverSettings::CACHE_ENTRIES, "default 4096"),
                        ),
                        (
                            "cache_default_ttl_ms",
                            u32_range(&DriverSettings::CACHE_TTL_MS, "default 5000"),
                        ),
                    ],
                    &[],
                ),
            ),
            (
                "approvals",
                object(
                    load::APPROVAL_FIELDS,
                    vec![
                        (
                            "default_timeout",
                            json!({ "type": "string", "pattern": DURATION }),
                        ),
                        ("terminal_prompt", json!({ "type": "boolean" })),
                        (
                            "api",
                            object(
                                load::API_FIELDS,
                                vec![
                                    (
                                        "listen",
                                        json!({ "type": "string", "description": "loopback address:port" }),
                                    ),
                                    ("token_file", json!({ "type": "string" })),
                                ],
                                &[],
                            ),
                        ),
                    ],
                    &[],
                ),
            ),
            (
                "audit",
                object(
                    load::AUDIT_FIELDS,
                    vec![("enabled", json!({ "type": "boolean" }))],
                    &[],
                ),
            ),
            (
                "events",
                object(
                    load::EVENT_FIELDS,
                    vec![
                        (
                            "sinks",
                            json!({ "type": "array", "items": object(load::SINK_FIELDS, vec![
                    ("format", json!({ "enum": ["jsonl", "ocsf"] })),
                    ("path", json!({ "type": "string" })),
                ], &["format", "path"]) }),
                        ),
                        (
                            "queue_capacity",
                            u32_range(&EventSettings::QUEUE, "default 10000"),
                        ),
                    ],
                    &[],
                ),
            ),
            (
                "sandbox",
                object(
                    load::SANDBOX_FIELDS,
                    vec![
                        ("name", json!({ "type": "string" })),
                        ("workspace", json!({ "type": "string" })),
                        (
                            "allow",
                            json!({ "type": "array", "items": { "type": "string" } }),
                        ),
                        (
                            "network",
                            json!({ "enum": ["none", "outbound", "local", "full"] }),
                        ),
                        ("appcontainer", json!({ "type": "boolean" })),
                        ("fail_on_appcontainer_error", json!({ "type": "boolean" })),
                        ("minifilter", json!({ "type": "boolean" })),
                    ],
                    &[],
                ),
            ),
            (
                "tests",
                json!({ "type": "array", "items": object(load::TEST_FIELDS, vec![
                ("name", json!({ "type": "string" })),
                ("key", json!({ "type": "string" })),
                ("path", json!({ "type": "string" })),
                ("value", json!({ "type": "string" })),
                ("rename_to", json!({ "type": "string" })),
                ("op", json!({ "type": "string" })),
                ("sandboxed", json!({ "type": "boolean" })),
                ("app", json!({ "type": "string" })),
                ("workspace", json!({ "type": "string" })),
                ("user_sid", json!({ "type": "string" })),
                ("expect", decision()),
                ("rule", json!({ "type": "string" })),
            ], &["op", "expect"]) }),
            ),
        ],
        &[],
    );
    let mut schema = top;
    if let Value::Object(m) = &mut schema {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert("title".into(), json!("agentsh policy (agentsh.yaml)"));
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
        let mut cur = v;
        for p in path {
            cur = &cur[p];
        }
        let mut keys: Vec<&str> = cur["properties"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    fn sorted(fields: &[&'static str]) -> Vec<&'static str> {
        let mut v = fields.to_vec();
        v.sort_unstable();
        v
    }

    #[test]
    fn schema_covers_exactly_what_the_loader_accepts() {
        let s = policy_schema();
        assert_eq!(props(&s, &[]), sorted(load::TOP_LEVEL));
        assert_eq!(
            props(&s, &["properties", "registry_policy"]),
            sorted(load::POLICY_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "registry_rules", "items"]),
            sorted(load::RULE_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "driver"]),
            sorted(load::DRIVER_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "approvals"]),
            sorted(load::APPROVAL_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "events"]),
            sorted(load::EVENT_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "sandbox"]),
            sorted(load::SANDBOX_FIELDS)
        );
        assert_eq!(
            props(&s, &["properties", "tests", "items"]),
            sorted(load::TEST_FIELDS)
        );
        assert_eq!(s["additionalProperties"], json!(false));
    }
}
