//! Reads `agentsh.yaml` into a checked policy document: both rule syntaxes (the deployment
//! guide's `registry_rules:` and the design's `registry_policy:`), `file_rules:`/`file_policy:`,
//! the typed settings sections and `tests:`. Every problem is reported, each with
//! `file:line:col`, the rule it is in and what is wrong; nothing here panics on any input.

use std::fmt;
use std::ops::RangeInclusive;

use crate::catalog;
use crate::ops::{Access, Decision, OpSet, Operation};
use crate::pattern::{self, Glob, UserScope};
use crate::settings::{
    ApprovalSettings, AuditSettings, DriverSettings, EventSettings, FailMode, NetworkAccess,
    SandboxSettings, Settings, Sink, SinkFormat,
};
use crate::template::Template;
use crate::yaml::{self, Node, Pos, Value};

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file name (or `<embedded>`, `<string>`).
    pub origin: String,
    pub pos: Pos,
    /// The rule or test the problem is in.
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.origin, self.pos)?;
        if let Some(r) = &self.rule {
            write!(f, "rule `{r}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// Whether a rule set governs registry keys or files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Registry,
    File,
}

/// One entry of a rule's `paths:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSpec {
    /// The pattern as written.
    pub text: String,
    /// The value-name pattern, if the entry names one (`""` = the default value).
    pub value: Option<String>,
    pub pos: Pos,
    pub(crate) keys: Vec<Glob>,
    pub(crate) value_glob: Option<Glob>,
}

/// A rule as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub paths: Vec<PathSpec>,
    pub operations: OpSet,
    pub decision: Decision,
    pub priority: i32,
    /// The rule's `notify`; unset, a denial notifies per the rule set's `notify_on_deny` and
    /// `notify: false` on a deny rule makes a silent deny.
    pub notify: Option<bool>,
    pub message: Option<Template>,
    pub timeout_secs: Option<u32>,
    pub cache_ttl: Option<u32>,
    /// Catalog entry ids this rule deliberately overrides.
    pub overrides: Vec<String>,
    pub pos: Pos,
    /// The overlay file the rule came from (`None`: the policy file itself).
    pub source: Option<String>,
    /// The rule's `apps:` as written: it decides only operations of sessions registered with
    /// one of these application names (compared case-insensitively); `None`: every session.
    pub apps: Option<Vec<String>>,
}

/// The rules of one domain and their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    pub default_action: Decision,
    pub log_all: bool,
    /// Seconds; `None` = decisions are not cached unless a rule says so.
    pub default_cache_ttl: Option<u32>,
    pub notify_on_deny: bool,
    /// In file order (the engine sorts them stably by priority).
    pub rules: Vec<Rule>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            default_action: Decision::Deny,
            log_all: false,
            default_cache_ttl: None,
            notify_on_deny: true,
            rules: Vec::new(),
        }
    }
}

/// What a `tests:` entry asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestTarget {
    Key {
        key: String,
        value: Option<String>,
        rename_to: Option<String>,
    },
    File {
        path: String,
    },
}

/// One `tests:` entry: a query and the decision the policy must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTest {
    pub name: String,
    pub pos: Pos,
    pub target: TestTarget,
    pub access: Access,
    pub sandboxed: bool,
    pub app: Option<String>,
    pub workspace: Option<String>,
    pub user_sid: Option<String>,
    pub expect: Decision,
    /// The rule that must decide (`builtin:<id>`, a rule name, `default`).
    pub expect_rule: Option<String>,
}

/// A checked policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDoc {
    pub registry: RuleSet,
    pub files: RuleSet,
    /// Catalog entries switched off with `high_risk: { disable: [...] }`.
    pub disabled_catalog: Vec<String>,
    pub settings: Settings,
    pub tests: Vec<PolicyTest>,
}

/// Top-level sections, in documentation order.
pub const TOP_LEVEL: &[&str] = &[
    "version",
    "registry_policy",
    "registry_rules",
    "file_policy",
    "file_rules",
    "high_risk",
    "driver",
    "approvals",
    "audit",
    "events",
    "sandbox",
    "tests",
];
/// Fields of `registry_policy:` / `file_policy:`.
pub const POLICY_FIELDS: &[&str] = &[
    "default_action",
    "log_all",
    "default_cache_ttl",
    "notify_on_deny",
    "rules",
];
/// Fields of a rule (both syntaxes; `decision`/`action` and `timeout`/`timeout_seconds` are
/// alternatives).
pub const RULE_FIELDS: &[&str] = &[
    "name",
    "description",
    "paths",
    "operations",
    "decision",
    "action",
    "priority",
    "notify",
    "message",
    "timeout",
    "timeout_seconds",
    "cache_ttl",
    "overrides",
    "apps",
];
/// Fields of a registry path entry written as a mapping.
pub const PATH_FIELDS: &[&str] = &["key", "value"];
/// Fields of `high_risk:`.
pub const HIGH_RISK_FIELDS: &[&str] = &["disable"];
/// Fields of `driver:`.
pub const DRIVER_FIELDS: &[&str] = &[
    "fail_mode",
    "policy_query_timeout_ms",
    "max_consecutive_failures",
    "cache_max_entries",
    "cache_default_ttl_ms",
];
/// Fields of `approvals:`.
pub const APPROVAL_FIELDS: &[&str] = &["default_timeout", "terminal_prompt", "api"];
/// Fields of `approvals.api:`.
pub const API_FIELDS: &[&str] = &["listen", "token_file"];
/// Fields of `audit:`.
pub const AUDIT_FIELDS: &[&str] = &["enabled"];
/// Fields of `events:`.
pub const EVENT_FIELDS: &[&str] = &["sinks", "queue_capacity"];
/// Fields of an event sink.
pub const SINK_FIELDS: &[&str] = &["format", "path"];
/// Fields of `sandbox:`.
pub const SANDBOX_FIELDS: &[&str] = &[
    "name",
    "workspace",
    "allow",
    "network",
    "appcontainer",
    "fail_on_appcontainer_error",
    "minifilter",
];
/// Fields of a `tests:` entry.
pub const TEST_FIELDS: &[&str] = &[
    "name",
    "key",
    "path",
    "value",
    "rename_to",
    "op",
    "sandboxed",
    "app",
    "workspace",
    "user_sid",
    "expect",
    "rule",
];

/// Range of rule priorities.
pub const PRIORITY: RangeInclusive<i64> = -1_000_000..=1_000_000;
/// Range of cache TTLs in seconds (the guide's CacheDefaultTTLMs upper bound).
pub const CACHE_TTL_SECS: RangeInclusive<i64> = 0..=3_600;

/// Parses an operation name for queries and tests: the five policy operations or a driver
/// operation name from the design (`SetValue`, ...).
pub fn parse_access(name: &str) -> Option<Access> {
    Operation::from_name(name)
        .map(Access::from)
        .or_else(|| agentsh_wire::Operation::from_name(name).map(Access::from))
}

struct Ctx<'a> {
    origin: &'a str,
    rule: Option<String>,
    errors: Vec<LoadError>,
}

/// A checked mapping: its entries, with unknown keys already reported.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

fn suggestion(word: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match suggestion(word, candidates) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => format!(" (expected one of: {})", candidates.join(", ")),
    }
}

impl Ctx<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(LoadError {
            origin: self.origin.to_owned(),
            pos,
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    fn fields<'n>(&mut self, node: &'n Node, allowed: &[&str], what: &str) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Value::Str(name) = &k.value else {
                self.err(
                    k.pos,
                    format!("{what}: keys must be strings, found {}", k.value.kind()),
                );
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                self.err(
                    k.pos,
                    format!(
                        "unknown field `{name}` in {what}{}",
                        did_you_mean(name, allowed)
                    ),
                );
                continue;
            }
            out.push((name.as_str(), v));
        }
        Some(Fields { entries: out })
    }

    fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) => Some(s),
            other => {
                self.err(
                    node.pos,
                    format!("`{what}` must be a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            ref other => {
                self.err(
                    node.pos,
                    format!("`{what}` must be true or false, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str, range: RangeInclusive<i64>) -> Option<i64> {
        match node.value {
            Value::Int(i) if i >= i128::from(*range.start()) && i <= i128::from(*range.end()) => {
                i64::try_from(i).ok()
            }
            Value::Int(i) => {
                self.err(
                    node.pos,
                    format!(
                        "`{what}` {i} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            ref other => {
                self.err(
                    node.pos,
                    format!("`{what}` must be an integer, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn u32_in(&mut self, node: &Node, what: &str, range: RangeInclusive<u32>) -> Option<u32> {
        let r = i64::from(*range.start())..=i64::from(*range.end());
        self.int(node, what, r).and_then(|v| u32::try_from(v).ok())
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            other => {
                self.err(
                    node.pos,
                    format!("`{what}` must be a list, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(node, what)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.err(
            node.pos,
            format!("unknown {what} `{s}`{}", did_you_mean(s, &names)),
        );
        None
    }

    fn decision(&mut self, node: &Node, what: &str) -> Option<Decision> {
        let opts: Vec<(&str, Decision)> = Decision::ALL.iter().map(|d| (d.name(), *d)).collect();
        self.choice(node, what, &opts)
    }

    /// A duration such as `30s`, `2m`, `1h`, `1m30s`, within the approval timeout range.
    fn duration_secs(&mut self, node: &Node, what: &str) -> Option<u32> {
        let s = self.string(node, what)?;
        let Some(secs) = parse_duration(s) else {
            self.err(
                node.pos,
                format!("bad duration `{s}` for `{what}` (write e.g. `30s`, `2m`, `1h`, `1m30s`)"),
            );
            return None;
        };
        let range = ApprovalSettings::TIMEOUT_SECS;
        if !range.contains(&secs) {
            self.err(node.pos, format!("`{what}` `{s}` is out of range 1s..=1h"));
            return None;
        }
        Some(secs)
    }
}

/// Parses `30s`, `2m`, `1h`, `1h2m3s` into seconds.
pub fn parse_duration(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let unit = match c {
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None;
    }
    u32::try_from(total).ok()
}

/// Parses and checks a policy document.
pub fn parse_policy(text: &str, origin: &str) -> Result<PolicyDoc, LoadErrors> {
    let mut cx = Ctx {
        origin,
        rule: None,
        errors: Vec::new(),
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            cx.err(e.pos, e.message);
            return Err(LoadErrors(cx.errors));
        }
    };
    let mut doc = PolicyDoc {
        registry: RuleSet::default(),
        files: RuleSet::default(),
        disabled_catalog: Vec::new(),
        settings: Settings::default(),
        tests: Vec::new(),
    };
    if root.value == Value::Null {
        return Ok(doc);
    }
    let Some(top) = cx.fields(&root, TOP_LEVEL, "the policy file") else {
        return Err(LoadErrors(cx.errors));
    };
    if let Some(v) = top.get("version") {
        cx.int(v, "version", 1..=1);
    }
    doc.registry = rule_set(
        &mut cx,
        &top,
        "registry_policy",
        "registry_rules",
        Domain::Registry,
    );
    doc.files = rule_set(&mut cx, &top, "file_policy", "file_rules", Domain::File);
    if let Some(hr) = top.get("high_risk")
        && let Some(f) = cx.fields(hr, HIGH_RISK_FIELDS, "`high_risk`")
        && let Some(list) = f.get("disable").and_then(|n| cx.list(n, "disable"))
    {
        for item in list {
            if let Some(id) = cx.string(item, "disable") {
                if catalog::entry(id).is_some() {
                    doc.disabled_catalog.push(id.to_owned());
                } else {
                    let ids: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.id).collect();
                    cx.err(
                        item.pos,
                        format!("unknown catalog entry `{id}`{}", did_you_mean(id, &ids)),
                    );
                }
            }
        }
    }
    doc.settings = settings(&mut cx, &top);
    if let Some(t) = top.get("tests") {
        doc.tests = tests(&mut cx, t);
    }
    check_unique_names(&mut cx, &doc.registry.rules, "registry");
    check_unique_names(&mut cx, &doc.files.rules, "file");
    if cx.errors.is_empty() {
        Ok(doc)
    } else {
        cx.errors.sort_by_key(|e| (e.pos.line, e.pos.column));
        Err(LoadErrors(cx.errors))
    }
}

/// Top-level sections of a remembered-rules overlay (`<policy>.remembered.yaml`): rules only;
/// defaults, settings and the catalog stay in the policy file.
pub const OVERLAY_TOP_LEVEL: &[&str] = &["version", "registry_rules", "file_rules"];

/// The rules of an overlay file, checked like the policy's own, each marked with `origin` as its
/// source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    pub registry: Vec<Rule>,
    pub files: Vec<Rule>,
}

/// Parses and checks a remembered-rules overlay. Rule names must be unique within it; whether
/// they clash with the policy's, and whether a rule may lower a critical catalog entry, is
/// checked when the overlay is merged ([`crate::overlay::merge`]).
pub fn parse_overlay(text: &str, origin: &str) -> Result<Overlay, LoadErrors> {
    let mut cx = Ctx {
        origin,
        rule: None,
        errors: Vec::new(),
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            cx.err(e.pos, e.message);
            return Err(LoadErrors(cx.errors));
        }
    };
    if root.value == Value::Null {
        return Ok(Overlay::default());
    }
    let Some(top) = cx.fields(&root, OVERLAY_TOP_LEVEL, "the remembered-rules file") else {
        return Err(LoadErrors(cx.errors));
    };
    if let Some(v) = top.get("version") {
        cx.int(v, "version", 1..=1);
    }
    let registry = rule_set(
        &mut cx,
        &top,
        "registry_policy",
        "registry_rules",
        Domain::Registry,
    );
    let files = rule_set(&mut cx, &top, "file_policy", "file_rules", Domain::File);
    check_unique_names(&mut cx, &registry.rules, "registry");
    check_unique_names(&mut cx, &files.rules, "file");
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| (e.pos.line, e.pos.column));
        return Err(LoadErrors(cx.errors));
    }
    let mark = |mut rules: Vec<Rule>| {
        for r in &mut rules {
            r.source = Some(origin.to_owned());
        }
        rules
    };
    Ok(Overlay {
        registry: mark(registry.rules),
        files: mark(files.rules),
    })
}

fn check_unique_names(cx: &mut Ctx<'_>, rules: &[Rule], what: &str) {
    for (i, r) in rules.iter().enumerate() {
        if let Some(first) = rules[..i].iter().find(|o| o.name == r.name) {
            cx.rule = Some(r.name.clone());
            cx.err(
                r.pos,
                format!(
                    "duplicate {what} rule name (first defined at line {})",
                    first.pos.line
                ),
            );
            cx.rule = None;
        }
    }
}

fn rule_set(
    cx: &mut Ctx<'_>,
    top: &Fields<'_>,
    policy_key: &str,
    rules_key: &str,
    domain: Domain,
) -> RuleSet {
    let mut set = RuleSet::default();
    let mut rule_lists: Vec<&Node> = Vec::new();
    if let Some(p) = top.get(policy_key)
        && let Some(f) = cx.fields(p, POLICY_FIELDS, &format!("`{policy_key}`"))
    {
        if let Some(n) = f.get("default_action")
            && let Some(d) = cx.decision(n, "default_action")
        {
            set.default_action = d;
        }
        if let Some(n) = f.get("log_all")
            && let Some(b) = cx.boolean(n, "log_all")
        {
            set.log_all = b;
        }
        if let Some(n) = f.get("notify_on_deny")
            && let Some(b) = cx.boolean(n, "notify_on_deny")
        {
            set.notify_on_deny = b;
        }
        if let Some(n) = f.get("default_cache_ttl")
            && let Some(t) = cx.int(n, "default_cache_ttl", CACHE_TTL_SECS)
        {
            // 0 is kept: it means "do not cache", unlike a missing key (the driver's default).
            set.default_cache_ttl = Some(t as u32);
        }
        if let Some(n) = f.get("rules") {
            rule_lists.push(n);
        }
    }
    if let Some(n) = top.get(rules_key) {
        if let Some(first) = rule_lists.first() {
            cx.err(
                n.pos,
                format!(
                    "rules given twice: `{rules_key}:` and `{policy_key}.rules:` (line {}); use one of them",
                    first.pos.line
                ),
            );
        }
        // Checked either way, so every problem in both lists is reported at once.
        rule_lists.push(n);
    }
    let what = format!("`{rules_key}`");
    for list in rule_lists {
        let Some(items) = cx.list(list, &what) else {
            continue;
        };
        for item in items {
            if let Some(r) = rule(cx, item, domain) {
                set.rules.push(r);
            }
            cx.rule = None;
        }
    }
    set
}

fn rule(cx: &mut Ctx<'_>, node: &Node, domain: Domain) -> Option<Rule> {
    let before = cx.errors.len();
    // The name first, so every later error names the rule.
    if let Value::Map(entries) = &node.value
        && let Some((_, v)) = entries
            .iter()
            .find(|(k, _)| k.value == Value::Str("name".into()))
        && let Value::Str(name) = &v.value
    {
        cx.rule = Some(name.clone());
    }
    let f = cx.fields(node, RULE_FIELDS, "a rule")?;
    let name = match f.get("name") {
        Some(n) => cx.string(n, "name").map(str::to_owned),
        None => {
            cx.err(node.pos, "rule without a `name`");
            None
        }
    };
    if let Some(n) = &name
        && n.trim().is_empty()
    {
        cx.err(node.pos, "rule `name` is empty");
    }
    if let Some(n) = f.get("description") {
        cx.string(n, "description");
    }
    let mut paths = Vec::new();
    match f.get("paths") {
        None => cx.err(node.pos, "rule without `paths`"),
        Some(p) => {
            if let Some(items) = cx.list(p, "paths") {
                if items.is_empty() {
                    cx.err(p.pos, "`paths` is empty");
                }
                for item in items {
                    if let Some(spec) = path_spec(cx, item, domain) {
                        paths.push(spec);
                    }
                }
            }
        }
    }
    let mut operations = OpSet::EMPTY;
    match f.get("operations") {
        None => cx.err(node.pos, "rule without `operations`"),
        Some(o) => {
            if let Some(items) = cx.list(o, "operations") {
                if items.is_empty() {
                    cx.err(o.pos, "`operations` is empty");
                }
                for item in items {
                    let Some(s) = cx.string(item, "operations") else {
                        continue;
                    };
                    if s == "*" {
                        operations = OpSet::ALL;
                    } else if let Some(op) = Operation::from_name(s) {
                        operations.insert(op);
                    } else {
                        let names = ["read", "write", "create", "delete", "rename", "*"];
                        let hint = suggestion(s, &names)
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        cx.err(
                            item.pos,
                            format!("unknown operation `{s}` (expected read, write, create, delete, rename or *{hint})"),
                        );
                    }
                }
            }
        }
    }
    let decision = match (f.get("decision"), f.get("action")) {
        (Some(_), Some(a)) => {
            cx.err(a.pos, "both `decision` and `action` given; use one of them");
            None
        }
        (Some(d), None) => cx.decision(d, "decision"),
        (None, Some(a)) => cx.decision(a, "action"),
        (None, None) => {
            cx.err(node.pos, "rule without `decision` (or `action`)");
            None
        }
    };
    let priority = match f.get("priority") {
        Some(p) => cx.int(p, "priority", PRIORITY).map(|p| p as i32),
        None => Some(0),
    };
    let notify = match f.get("notify") {
        Some(n) => cx.boolean(n, "notify").map(Some),
        None => Some(None),
    };
    let message = f.get("message").and_then(|m| {
        let s = cx.string(m, "message")?;
        Template::parse(s)
            .map_err(|e| cx.err(m.pos, format!("`message`: {e}")))
            .ok()
    });
    let timeout_secs = match (f.get("timeout"), f.get("timeout_seconds")) {
        (Some(_), Some(b)) => {
            cx.err(
                b.pos,
                "both `timeout` and `timeout_seconds` given; use one of them",
            );
            None
        }
        (Some(t), None) => cx.duration_secs(t, "timeout"),
        (None, Some(t)) => cx.u32_in(t, "timeout_seconds", ApprovalSettings::TIMEOUT_SECS),
        (None, None) => None,
    };
    let cache_ttl = f
        .get("cache_ttl")
        .and_then(|c| cx.int(c, "cache_ttl", CACHE_TTL_SECS))
        .map(|t| t as u32);
    let mut overrides = Vec::new();
    if let Some(o) = f.get("overrides")
        && let Some(items) = cx.list(o, "overrides")
    {
        if domain == Domain::File {
            cx.err(
                o.pos,
                "`overrides` names high-risk registry entries; file rules have none",
            );
        }
        for item in items {
            let Some(id) = cx.string(item, "overrides") else {
                continue;
            };
            let id = id.strip_prefix("builtin:").unwrap_or(id);
            if catalog::entry(id).is_some() {
                overrides.push(id.to_owned());
            } else {
                let ids: Vec<&str> = catalog::ENTRIES.iter().map(|e| e.id).collect();
                cx.err(
                    item.pos,
                    format!("unknown catalog entry `{id}`{}", did_you_mean(id, &ids)),
                );
            }
        }
    }
    let apps = f.get("apps").and_then(|a| rule_apps(cx, a));
    if cx.errors.len() > before {
        return None;
    }
    Some(Rule {
        name: name?,
        paths,
        operations,
        decision: decision?,
        priority: priority?,
        notify: notify?,
        message,
        timeout_secs,
        cache_ttl,
        overrides,
        pos: node.pos,
        source: None,
        apps,
    })
}

/// A rule's `apps:`: a non-empty list of application names a session can register.
fn rule_apps(cx: &mut Ctx<'_>, node: &Node) -> Option<Vec<String>> {
    let items = cx.list(node, "apps")?;
    if items.is_empty() {
        cx.err(
            node.pos,
            "`apps` is empty: list the application names the rule applies to, or leave `apps` out for every session",
        );
        return None;
    }
    let mut apps = Vec::with_capacity(items.len());
    let mut seen: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(a) = cx.string(item, "apps") else {
            continue;
        };
        if crate::engine::check_app_name(a).is_err() {
            let e = crate::engine::SessionError::AppName(printable(a));
            cx.err(item.pos, format!("`apps`: {e}"));
            continue;
        }
        let upper = crate::canonical::upcase(a);
        if seen.contains(&upper) {
            cx.err(
                item.pos,
                format!("`apps`: `{}` is listed twice", printable(a)),
            );
            continue;
        }
        seen.push(upper);
        apps.push(a.to_owned());
    }
    Some(apps)
}

fn path_spec(cx: &mut Ctx<'_>, node: &Node, domain: Domain) -> Option<PathSpec> {
    let (text, value, key_pos) = match (&node.value, domain) {
        (Value::Str(s), _) => (s.clone(), None, node.pos),
        (Value::Map(_), Domain::Registry) => {
            let f = cx.fields(node, PATH_FIELDS, "a path entry")?;
            let Some(k) = f.get("key") else {
                cx.err(node.pos, "path entry without `key`");
                return None;
            };
            let key = cx.string(k, "key")?.to_owned();
            let value = match f.get("value") {
                Some(v) => Some((cx.string(v, "value")?.to_owned(), v.pos)),
                None => None,
            };
            (key, value, k.pos)
        }
        (other, _) => {
            cx.err(
                node.pos,
                format!("a path must be a string, found {}", other.kind()),
            );
            return None;
        }
    };
    let keys = match domain {
        Domain::Registry => pattern::registry_key(&text, UserScope::SessionUser),
        Domain::File => pattern::file_path(&text).map(|g| vec![g]),
    };
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            cx.err(key_pos, format!("path `{}`: {e}", printable(&text)));
            return None;
        }
    };
    let value_glob = match &value {
        Some((v, pos)) => match pattern::value_name(v) {
            Ok(g) => Some(g),
            Err(e) => {
                cx.err(*pos, format!("value `{}`: {e}", printable(v)));
                return None;
            }
        },
        None => None,
    };
    Some(PathSpec {
        text,
        value: value.map(|(v, _)| v),
        pos: key_pos,
        keys,
        value_glob,
    })
}

/// User text with control characters made visible (`\t`), backslashes left alone.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn settings(cx: &mut Ctx<'_>, top: &Fields<'_>) -> Settings {
    let mut s = Settings::default();
    if let Some(n) = top.get("driver")
        && let Some(f) = cx.fields(n, DRIVER_FIELDS, "`driver`")
    {
        s.driver = driver(cx, &f);
    }
    if let Some(n) = top.get("approvals")
        && let Some(f) = cx.fields(n, APPROVAL_FIELDS, "`approvals`")
    {
        s.approvals = approvals(cx, &f);
    }
    if let Some(n) = top.get("audit")
        && let Some(f) = cx.fields(n, AUDIT_FIELDS, "`audit`")
    {
        s.audit = AuditSettings {
            enabled: f
                .get("enabled")
                .and_then(|b| cx.boolean(b, "enabled"))
                .unwrap_or(false),
        };
    }
    if let Some(n) = top.get("events")
        && let Some(f) = cx.fields(n, EVENT_FIELDS, "`events`")
    {
        s.events = events(cx, &f);
    }
    if let Some(n) = top.get("sandbox")
        && let Some(f) = cx.fields(n, SANDBOX_FIELDS, "`sandbox`")
    {
        s.sandbox = sandbox(cx, &f);
    }
    s
}

fn driver(cx: &mut Ctx<'_>, f: &Fields<'_>) -> DriverSettings {
    let mut d = DriverSettings::default();
    if let Some(n) = f.get("fail_mode")
        && let Some(m) = cx.choice(
            n,
            "fail_mode",
            &[("open", FailMode::Open), ("closed", FailMode::Closed)],
        )
    {
        d.fail_mode = m;
    }
    let numbers: [(&str, &mut u32, RangeInclusive<u32>); 4] = [
        (
            "policy_query_timeout_ms",
            &mut d.policy_query_timeout_ms,
            DriverSettings::QUERY_TIMEOUT_MS,
        ),
        (
            "max_consecutive_failures",
            &mut d.max_consecutive_failures,
            DriverSettings::MAX_FAILURES,
        ),
        (
            "cache_max_entries",
            &mut d.cache_max_entries,
            DriverSettings::CACHE_ENTRIES,
        ),
        (
            "cache_default_ttl_ms",
            &mut d.cache_default_ttl_ms,
            DriverSettings::CACHE_TTL_MS,
        ),
    ];
    for (name, slot, range) in numbers {
        if let Some(n) = f.get(name)
            && let Some(v) = cx.u32_in(n, name, range)
        {
            *slot = v;
        }
    }
    d
}

fn approvals(cx: &mut Ctx<'_>, f: &Fields<'_>) -> ApprovalSettings {
    let mut a = ApprovalSettings::default();
    if let Some(n) = f.get("default_timeout")
        && let Some(t) = cx.duration_secs(n, "default_timeout")
    {
        a.default_timeout_secs = t;
    }
    if let Some(n) = f.get("terminal_prompt")
        && let Some(b) = cx.boolean(n, "terminal_prompt")
    {
        a.terminal_prompt = b;
    }
    if let Some(n) = f.get("api")
        && let Some(api) = cx.fields(n, API_FIELDS, "`approvals.api`")
    {
        if let Some(l) = api.get("listen")
            && let Some(s) = cx.string(l, "listen")
        {
            let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
            let loopback =
                matches!(host, "127.0.0.1" | "localhost" | "[::1]") || host.starts_with("127.");
            let port_ok = s
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if loopback && port_ok {
                a.api_listen = Some(s.to_owned());
            } else {
                cx.err(l.pos, format!("`listen` `{s}` must be a loopback address with a port, e.g. `127.0.0.1:8471`"));
            }
        }
        if let Some(t) = api.get("token_file")
            && let Some(s) = cx.string(t, "token_file")
        {
            a.api_token_file = Some(s.to_owned());
        }
    }
    a
}

fn events(cx: &mut Ctx<'_>, f: &Fields<'_>) -> EventSettings {
    let mut e = EventSettings::default();
    if let Some(n) = f.get("queue_capacity")
        && let Some(q) = cx.u32_in(n, "queue_capacity", EventSettings::QUEUE)
    {
        e.queue_capacity = q;
    }
    if let Some(n) = f.get("sinks")
        && let Some(items) = cx.list(n, "sinks")
    {
        for item in items {
            let Some(sf) = cx.fields(item, SINK_FIELDS, "an event sink") else {
                continue;
            };
            let format = match sf.get("format") {
                Some(n) => cx.choice(
                    n,
                    "format",
                    &[("jsonl", SinkFormat::Jsonl), ("ocsf", SinkFormat::Ocsf)],
                ),
                None => {
                    cx.err(item.pos, "event sink without `format` (jsonl or ocsf)");
                    None
                }
            };
            let path = match sf.get("path") {
                Some(n) => cx.string(n, "path").map(str::to_owned),
                None => {
                    cx.err(
                        item.pos,
                        "event sink without `path` (a file, or `-` for standard output)",
                    );
                    None
                }
            };
            if let (Some(format), Some(path)) = (format, path) {
                e.sinks.push(Sink { format, path });
            }
        }
    }
    e
}

fn sandbox(cx: &mut Ctx<'_>, f: &Fields<'_>) -> SandboxSettings {
    let mut s = SandboxSettings::default();
    if let Some(n) = f.get("name") {
        s.name = cx.string(n, "name").map(str::to_owned);
    }
    if let Some(n) = f.get("workspace") {
        s.workspace = cx.string(n, "workspace").map(str::to_owned);
    }
    if let Some(n) = f.get("allow")
        && let Some(items) = cx.list(n, "allow")
    {
        s.allow = items
            .iter()
            .filter_map(|i| cx.string(i, "allow").map(str::to_owned))
            .collect();
    }
    if let Some(n) = f.get("network")
        && let Some(v) = cx.choice(
            n,
            "network",
            &[
                ("none", NetworkAccess::None),
                ("outbound", NetworkAccess::Outbound),
                ("local", NetworkAccess::Local),
                ("full", NetworkAccess::Full),
            ],
        )
    {
        s.network = v;
    }
    let flags: [(&str, &mut bool); 3] = [
        ("appcontainer", &mut s.appcontainer),
        (
            "fail_on_appcontainer_error",
            &mut s.fail_on_appcontainer_error,
        ),
        ("minifilter", &mut s.minifilter),
    ];
    for (name, slot) in flags {
        if let Some(n) = f.get(name)
            && let Some(b) = cx.boolean(n, name)
        {
            *slot = b;
        }
    }
    s
}

fn tests(cx: &mut Ctx<'_>, node: &Node) -> Vec<PolicyTest> {
    let mut out = Vec::new();
    let Some(items) = cx.list(node, "tests") else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        cx.rule = None;
        let Some(f) = cx.fields(item, TEST_FIELDS, "a test") else {
            continue;
        };
        let before = cx.errors.len();
        let name = f
            .get("name")
            .and_then(|n| cx.string(n, "name").map(str::to_owned))
            .unwrap_or_else(|| format!("test #{}", i + 1));
        cx.rule = Some(name.clone());
        let opt_str = |cx: &mut Ctx<'_>, key: &str| -> Option<String> {
            f.get(key)
                .and_then(|n| cx.string(n, key).map(str::to_owned))
        };
        let target = match (opt_str(cx, "key"), opt_str(cx, "path")) {
            (Some(key), None) => Some(TestTarget::Key {
                key,
                value: opt_str(cx, "value"),
                rename_to: opt_str(cx, "rename_to"),
            }),
            (None, Some(path)) => Some(TestTarget::File { path }),
            _ => {
                cx.err(item.pos, "a test needs exactly one of `key` or `path`");
                None
            }
        };
        let access = match f.get("op") {
            Some(n) => {
                let s = cx.string(n, "op").unwrap_or_default();
                let a = parse_access(s);
                if a.is_none() {
                    cx.err(n.pos, format!("unknown operation `{s}` (expected read, write, create, delete, rename or a driver operation such as SetValue)"));
                }
                a
            }
            None => {
                cx.err(item.pos, "a test needs `op`");
                None
            }
        };
        let expect = match f.get("expect") {
            Some(n) => cx.decision(n, "expect"),
            None => {
                cx.err(item.pos, "a test needs `expect` (allow, deny or approve)");
                None
            }
        };
        let sandboxed = f
            .get("sandboxed")
            .and_then(|n| cx.boolean(n, "sandboxed"))
            .unwrap_or(true);
        let test = PolicyTest {
            name,
            pos: item.pos,
            target: target.unwrap_or(TestTarget::File {
                path: String::new(),
            }),
            access: access.unwrap_or(Operation::Read.into()),
            sandboxed,
            app: opt_str(cx, "app"),
            workspace: opt_str(cx, "workspace"),
            user_sid: opt_str(cx, "user_sid"),
            expect: expect.unwrap_or(Decision::Deny),
            expect_rule: opt_str(cx, "rule"),
        };
        if cx.errors.len() == before {
            out.push(test);
        }
    }
    cx.rule = None;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject_garbage() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("2m"), Some(120));
        assert_eq!(parse_duration("1h2m3s"), Some(3723));
        for bad in ["", "30", "2x", "m", "99999999999999999999s", "1.5m", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
