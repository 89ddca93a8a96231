//! The decision engine: rules sorted by priority (stable), the high-risk catalog floor, and a
//! compiled prefix index so a decision costs about the same with ten rules or ten thousand.
//! A linear scan over the same data is kept as the reference the index is tested against.

use agentsh_wire::response::CacheTtl;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::canonical::{self, CanonicalKey};
use crate::catalog::{self, Entry};
use crate::filepath::{self, VolumeMap};
use crate::index::{IndexComp, PathIndex, index_path, is_beneath, literal_len};
use crate::load::{PolicyDoc, RuleSet};
use crate::ops::{Access, Decision, OpSet, Operation, Risk};
use crate::pattern::{self, Glob, UserScope, VarValues};
use crate::template::{Template, TemplateValues};

/// What the sandbox registered for a session: the values `${APP_NAME}` and `${WORKSPACE}` take,
/// and the SID whose hive is `HKCU`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionContext {
    app_name: Option<String>,
    workspace: Option<String>,
    user_sid: Option<String>,
    vars: VarValues,
}

/// Keys directly under `HKCU\SOFTWARE` that other programs and Windows itself trust: an
/// application registered under one of these names would be granted all of it by
/// `HKCU\SOFTWARE\${APP_NAME}\*`.
const SHARED_SOFTWARE_KEYS: [&str; 7] = [
    "MICROSOFT",
    "CLASSES",
    "POLICIES",
    "WOW6432NODE",
    "CLIENTS",
    "REGISTEREDAPPLICATIONS",
    "APPDATALOW",
];

/// A session registration that would make patterns mean something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(
        "application name `{0}` must be non-empty, contain no `\\`, `*`, `?` or control characters, and not be a shared key such as `Microsoft` or `Classes`"
    )]
    AppName(String),
    #[error("workspace `{0}` must be an absolute directory below a drive letter or UNC share root")]
    Workspace(String),
    #[error("user SID `{0}` is not of the form `S-1-...`")]
    UserSid(String),
    #[error(
        "workspace device path `{0}` must be a directory below a volume root (`\\Device\\HarddiskVolume3\\work`), a drive letter or a UNC share"
    )]
    WorkspaceDevice(String),
}

/// Checks an application name as a session registration (and a rule's `apps:`) must give it:
/// non-empty, not `.` or `..`, no `\`, `*`, `?` or control character, and not a key under
/// `HKCU\SOFTWARE` that other programs trust.
pub fn check_app_name(a: &str) -> Result<(), SessionError> {
    let bad = a.trim().is_empty()
        || a == "."
        || a == ".."
        || a.chars()
            .any(|c| c.is_control() || matches!(c, '\\' | '*' | '?'))
        || SHARED_SOFTWARE_KEYS.contains(&canonical::upcase(a).as_str());
    if bad {
        Err(SessionError::AppName(a.to_owned()))
    } else {
        Ok(())
    }
}

impl SessionContext {
    /// A session with the given registration values.
    pub fn new(
        app_name: Option<&str>,
        workspace: Option<&str>,
        user_sid: Option<&str>,
    ) -> Result<SessionContext, SessionError> {
        if let Some(a) = app_name {
            check_app_name(a)?;
        }
        let workspace_canon = match workspace {
            Some(w) => {
                let c = filepath::canonicalize_file(w, &VolumeMap::new());
                let s = c.as_str();
                let rooted = s.as_bytes().get(1) == Some(&b':') || s.starts_with("UNC\\");
                // A volume or share root as the workspace would make `${WORKSPACE}\*` the whole volume.
                let depth = s.split('\\').count();
                let below_root = if s.starts_with("UNC\\") {
                    depth > 3
                } else {
                    depth > 1
                };
                if !rooted || !below_root {
                    return Err(SessionError::Workspace(w.to_owned()));
                }
                Some(s.to_owned())
            }
            None => None,
        };
        if let Some(s) = user_sid {
            let ok = s.len() > 4
                && s[..4].eq_ignore_ascii_case("S-1-")
                && s[4..].chars().all(|c| c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(SessionError::UserSid(s.to_owned()));
            }
        }
        Ok(SessionContext {
            app_name: app_name.map(str::to_owned),
            workspace: workspace.map(str::to_owned),
            user_sid: user_sid.map(str::to_owned),
            vars: VarValues {
                workspace: workspace_canon,
                app_name: app_name.map(canonical::upcase),
            },
        })
    }

    /// Adds the workspace as the file system names it (`\Device\HarddiskVolume3\work`, from
    /// `GetFinalPathNameByHandleW` with `VOLUME_NAME_NT` in the sandbox user's context, which
    /// sees that user's `subst` and mapped drives and resolves links), and makes `${WORKSPACE}`
    /// stand for it as `volumes` names it: the spelling the minifilter's paths arrive in, mapped
    /// the same way. The registered spelling stays what [`SessionContext::workspace`] shows. A
    /// volume `volumes` does not know leaves the device form, which is also how that volume's
    /// requests are canonicalized, so the two still meet.
    pub fn with_workspace_device(
        mut self,
        device_path: &str,
        volumes: &VolumeMap,
    ) -> Result<SessionContext, SessionError> {
        let c = filepath::canonicalize_file(device_path, volumes).into_string();
        let depth = c.split('\\').count();
        let ok = if c.as_bytes().get(1) == Some(&b':') {
            depth > 1
        } else if c.starts_with("UNC\\") {
            depth > 3
        } else {
            c.starts_with("DEVICE\\") && depth > 2
        };
        if !ok || self.workspace.is_none() {
            return Err(SessionError::WorkspaceDevice(device_path.to_owned()));
        }
        self.vars.workspace = Some(c);
        Ok(self)
    }

    /// The directory `${WORKSPACE}` stands for, canonical.
    pub fn workspace_canonical(&self) -> Option<&str> {
        self.vars.workspace.as_deref()
    }

    /// The application name as registered.
    pub fn app_name(&self) -> Option<&str> {
        self.app_name.as_deref()
    }

    /// The workspace as registered.
    pub fn workspace(&self) -> Option<&str> {
        self.workspace.as_deref()
    }

    /// The SID whose hive is `HKCU`.
    pub fn user_sid(&self) -> Option<&str> {
        self.user_sid.as_deref()
    }
}

/// One registry operation to decide.
#[derive(Debug, Clone, Copy)]
pub struct RegistryQuery<'a> {
    /// The key path in any spelling (kernel or user form).
    pub key: &'a str,
    /// The value name for value operations (`Some("")` = the default value).
    pub value: Option<&'a str>,
    pub access: Access,
    /// For a rename: the new name (or full path) of the key.
    pub rename_to: Option<&'a str>,
    /// Whether the process belongs to a sandbox session.
    pub sandboxed: bool,
    pub session: &'a SessionContext,
    pub process_name: &'a str,
    pub process_id: u32,
    /// The driver cut the key path or name (`OpFlags::truncated`): the real path is longer
    /// than the text, so a sandboxed write-class operation is denied (rule `truncated`).
    pub truncated: bool,
}

impl<'a> RegistryQuery<'a> {
    /// A sandboxed query with no value, rename target or process details.
    pub fn new(key: &'a str, access: impl Into<Access>, session: &'a SessionContext) -> Self {
        RegistryQuery {
            key,
            value: None,
            access: access.into(),
            rename_to: None,
            sandboxed: true,
            session,
            process_name: "",
            process_id: 0,
            truncated: false,
        }
    }
}

/// One file operation to decide.
#[derive(Debug, Clone, Copy)]
pub struct FileQuery<'a> {
    /// The path in any spelling (drive letter, `\??\`, `\\?\`, `\Device\HarddiskVolumeN\`).
    pub path: &'a str,
    pub op: Operation,
    pub sandboxed: bool,
    pub session: &'a SessionContext,
    /// NT device names to drive letters, as the caller knows them.
    pub volumes: &'a VolumeMap,
    /// For a rename or hard link: the new name's path, decided as a creation there too.
    pub target: Option<&'a str>,
    pub process_name: &'a str,
    pub process_id: u32,
    /// The driver cut the path or target (see [`RegistryQuery::truncated`]).
    pub truncated: bool,
}

impl<'a> FileQuery<'a> {
    /// A sandboxed query with no process details.
    pub fn new(
        path: &'a str,
        op: Operation,
        session: &'a SessionContext,
        volumes: &'a VolumeMap,
    ) -> Self {
        FileQuery {
            path,
            op,
            sandboxed: true,
            session,
            volumes,
            target: None,
            process_name: "",
            process_id: 0,
            truncated: false,
        }
    }
}

/// What decided an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleRef {
    /// A catalog entry (`builtin:<id>`).
    Builtin(&'static str),
    /// A policy rule, by name.
    Rule(Arc<str>),
    /// No rule matched: the policy's `default_action`.
    Default,
    /// The process is outside every sandbox session: never blocked.
    Unsandboxed,
    /// The driver cut the path: a sandboxed write-class operation on it is denied.
    Truncated,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Builtin(id) => write!(f, "builtin:{id}"),
            RuleRef::Rule(name) => f.write_str(name),
            RuleRef::Default => f.write_str("default"),
            RuleRef::Unsandboxed => f.write_str("unsandboxed"),
            RuleRef::Truncated => f.write_str("truncated"),
        }
    }
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub rule: RuleRef,
    /// How long the driver may cache the decision: the deciding rule's `cache_ttl`, else the
    /// rule set's `default_cache_ttl`, else the driver's configured `CacheDefaultTTLMs`
    /// (`DriverDefault`, the wire's sentinel); a TTL of 0 is `None` (do not cache), and so is
    /// every `approve`.
    pub cache_ttl: CacheTtl,
    pub notify: bool,
    pub log: bool,
    /// The strictest matching high-risk entry, if any.
    pub high_risk: Option<&'static Entry>,
    /// For `approve`: how long to wait for a person before denying.
    pub approval_timeout_secs: Option<u32>,
    /// For `approve` (and rules with a `message`): the rendered message.
    pub message: Option<String>,
    /// The canonical key or file path that was decided.
    pub canonical: String,
    pub operation: Operation,
}

impl Verdict {
    /// The response message's Flags field: bit 0 notify, bit 1 log.
    pub fn wire_flags(&self) -> u32 {
        u32::from(self.notify) | (u32::from(self.log) << 1)
    }

    /// Risk level of the matching high-risk entry.
    pub fn risk(&self) -> Option<Risk> {
        self.high_risk.map(|e| e.risk)
    }

    /// ATT&CK technique id of the matching high-risk entry.
    pub fn mitre_id(&self) -> Option<&'static str> {
        self.high_risk.map(|e| e.technique)
    }

    /// ATT&CK tactic of the matching high-risk entry.
    pub fn mitre_tactic(&self) -> Option<&'static str> {
        self.high_risk.map(|e| e.tactic)
    }

    /// Description of the matching high-risk entry.
    pub fn description(&self) -> Option<&'static str> {
        self.high_risk.map(|e| e.description)
    }
}

#[derive(Debug)]
struct CompiledRule {
    name: Arc<str>,
    ops: OpSet,
    decision: Decision,
    priority: i32,
    notify: Option<bool>,
    message: Option<Template>,
    timeout_secs: Option<u32>,
    cache_ttl: Option<u32>,
    overrides: Vec<&'static str>,
    /// The overlay file the rule came from (`None`: the policy file).
    source: Option<Arc<str>>,
    /// The rule's `apps:`, upper-cased as `${APP_NAME}` is (`None`: every session).
    apps: Option<Box<[Box<str>]>>,
    /// The rule's `apps:` as written, for explanations.
    apps_written: Option<Box<[Box<str>]>>,
}

impl CompiledRule {
    /// Whether the rule decides operation `op` of a session whose upper-cased app name is `app`.
    #[inline]
    fn applies(&self, op: Operation, app: Option<&str>) -> bool {
        self.ops.contains(op) && self.for_app(app)
    }

    /// Whether the rule's `apps:` (if any) include the upper-cased app name `app`.
    #[inline]
    fn for_app(&self, app: Option<&str>) -> bool {
        match &self.apps {
            None => true,
            Some(apps) => app.is_some_and(|a| apps.iter().any(|x| **x == *a)),
        }
    }
}

#[derive(Debug)]
struct Target {
    key: Glob,
    value: Option<Glob>,
    owner: u32,
    specificity: usize,
    /// Length of the index path the target is filed under (bytes the index walk has matched).
    skip: usize,
}

impl Target {
    fn new(key: Glob, value: Option<Glob>, owner: u32, specificity: usize) -> Target {
        let skip = literal_len(&index_path(&key));
        Target {
            key,
            value,
            owner,
            specificity,
            skip,
        }
    }

    fn value_ok(&self, value: Option<&str>, vars: &VarValues) -> bool {
        match (&self.value, value) {
            (None, _) => true,
            (Some(g), Some(v)) => g.matches(v, vars),
            (Some(_), None) => false,
        }
    }

    /// Full match, as the linear reference does it.
    fn matches(&self, key: &str, value: Option<&str>, vars: &VarValues) -> bool {
        // The value name is short and often absent: test it before the key.
        self.value_ok(value, vars) && self.key.matches(key, vars)
    }

    /// Match for a target the index walk reached (its index path is a prefix of `key`).
    fn matches_walked(&self, key: &str, value: Option<&str>, vars: &VarValues) -> bool {
        self.value_ok(value, vars) && self.key.matches_at(key, self.skip, vars)
    }
}

/// Rules of one domain, compiled.
#[derive(Debug)]
struct RuleTable {
    settings: RuleSetSettings,
    rules: Vec<CompiledRule>,
    targets: Vec<Target>,
    /// The table's own index (files); registry rules share one index with the catalog.
    index: Option<PathIndex>,
}

#[derive(Debug, Clone, Copy)]
struct RuleSetSettings {
    default_action: Decision,
    log_all: bool,
    default_cache_ttl: Option<u32>,
    notify_on_deny: bool,
}

impl RuleTable {
    fn build(set: &RuleSet, own_index: bool) -> RuleTable {
        let mut order: Vec<usize> = (0..set.rules.len()).collect();
        // Stable: equal priorities keep file order.
        order.sort_by_key(|&i| std::cmp::Reverse(set.rules[i].priority));
        let mut rules = Vec::with_capacity(order.len());
        let mut targets = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            let r = &set.rules[i];
            rules.push(CompiledRule {
                name: r.name.as_str().into(),
                ops: r.operations,
                decision: r.decision,
                priority: r.priority,
                notify: r.notify,
                message: r.message.clone(),
                timeout_secs: r.timeout_secs,
                cache_ttl: r.cache_ttl,
                overrides: r
                    .overrides
                    .iter()
                    .filter_map(|id| catalog::entry(id).map(|e| e.id))
                    .collect(),
                source: r.source.as_deref().map(Arc::from),
                apps: r.apps.as_ref().map(|apps| {
                    apps.iter()
                        .map(|a| canonical::upcase(a).into_boxed_str())
                        .collect()
                }),
                apps_written: r
                    .apps
                    .as_ref()
                    .map(|apps| apps.iter().map(|a| a.as_str().into()).collect()),
            });
            for p in &r.paths {
                for k in &p.keys {
                    targets.push(Target::new(k.clone(), p.value_glob.clone(), rank as u32, 0));
                }
            }
        }
        let index = own_index.then(|| {
            PathIndex::build(
                targets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (index_path(&t.key), i as u32)),
            )
        });
        RuleTable {
            settings: RuleSetSettings {
                default_action: set.default_action,
                log_all: set.log_all,
                default_cache_ttl: set.default_cache_ttl,
                notify_on_deny: set.notify_on_deny,
            },
            rules,
            targets,
            index,
        }
    }

    /// The first rule (in priority order) matching, via the index.
    fn first_indexed(
        &self,
        key: &str,
        value: Option<&str>,
        op: Operation,
        vars: &VarValues,
    ) -> Option<u32> {
        let mut best: Option<u32> = None;
        let Some(index) = &self.index else {
            return self.first_linear(key, value, op, vars);
        };
        index.walk(key, |ids| {
            for &t in ids {
                let target = &self.targets[t as usize];
                if best.is_some_and(|b| target.owner >= b) {
                    // Ids at a node ascend with rule rank: nothing later here can win.
                    break;
                }
                if self.rules[target.owner as usize].applies(op, vars.app_name.as_deref())
                    && target.matches_walked(key, value, vars)
                {
                    best = Some(target.owner);
                    break;
                }
            }
        });
        best
    }

    /// The reference: every target in priority order.
    fn first_linear(
        &self,
        key: &str,
        value: Option<&str>,
        op: Operation,
        vars: &VarValues,
    ) -> Option<u32> {
        self.targets
            .iter()
            .find(|t| {
                self.rules[t.owner as usize].applies(op, vars.app_name.as_deref())
                    && t.matches(key, value, vars)
            })
            .map(|t| t.owner)
    }
}

/// The catalog, compiled (entries disabled by the policy are left out).
#[derive(Debug)]
struct CatalogTable {
    targets: Vec<Target>,
    /// Index path of each target, for the linear reference's ancestor test.
    paths: Vec<Vec<IndexComp>>,
}

/// Catalog matches of one query: the entry to report, and the floor to enforce.
#[derive(Debug, Clone, Copy, Default)]
struct CatalogHit {
    report: Option<(u32, HitRank)>,
    floor: Option<(u32, HitRank)>,
}

/// Entries are ranked by strictness of their action, then risk, then how specific the matching
/// location is (value-specific, longer literal prefix); ties keep catalog order.
type HitRank = (u8, Risk, usize);

impl CatalogHit {
    fn add(&mut self, owner: u32, specificity: usize, overridden: &[&'static str]) {
        let e = &catalog::ENTRIES[owner as usize];
        let rank = (e.action.strictness(), e.risk, specificity);
        let better = |cur: Option<(u32, HitRank)>| {
            cur.is_none_or(|(o, r)| rank > r || (rank == r && owner < o))
        };
        if better(self.report) {
            self.report = Some((owner, rank));
        }
        // A log-only entry is reported but imposes no floor.
        if e.action.floor().is_some() && !overridden.contains(&e.id) && better(self.floor) {
            self.floor = Some((owner, rank));
        }
    }
}

impl CatalogTable {
    fn build(disabled: &[String]) -> CatalogTable {
        let mut targets = Vec::new();
        for (i, e) in catalog::ENTRIES.iter().enumerate() {
            if disabled.iter().any(|d| d == e.id) {
                continue;
            }
            for loc in e.locations {
                let (key, value) = catalog::split_location(loc);
                let value = value.and_then(|v| pattern::value_name(v).ok());
                let value_bonus = if value.is_some() { 1_000 } else { 0 };
                for g in pattern::registry_key(key, UserScope::AnyUser).unwrap_or_default() {
                    let specificity = g.literal_prefix().len() + value_bonus;
                    targets.push(Target::new(g, value.clone(), i as u32, specificity));
                }
            }
        }
        let paths: Vec<Vec<IndexComp>> = targets.iter().map(|t| index_path(&t.key)).collect();
        CatalogTable { targets, paths }
    }

    /// Whether an operation on `key` also reaches what lies beneath it: deleting or renaming a
    /// key destroys its subkeys, exporting a hive (`reg save HKLM\SYSTEM`) copies them.
    fn covers_subtree(value: Option<&str>, access: Access) -> bool {
        value.is_none()
            && (matches!(access.op, Operation::Delete | Operation::Rename) || access.exports_hive)
    }

    fn hits_linear(
        &self,
        key: &str,
        value: Option<&str>,
        access: Access,
        overridden: &[&'static str],
    ) -> CatalogHit {
        let mut hit = CatalogHit::default();
        let vars = VarValues::default();
        let subtree = Self::covers_subtree(value, access);
        for (t, path) in self.targets.iter().zip(&self.paths) {
            let beneath = subtree && is_beneath(path, key);
            if beneath || t.matches(key, value, &vars) {
                hit.add(t.owner, t.specificity, overridden);
            }
        }
        hit
    }
}

/// How rules and catalog entries are looked up: the compiled index or the linear reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Indexed,
    Linear,
}

/// The compiled policy. Immutable, `Send + Sync`, cheap to share in an `Arc`.
#[derive(Debug)]
pub struct Engine {
    registry: RuleTable,
    files: RuleTable,
    catalog: CatalogTable,
    /// Registry rule targets (ids below `registry.targets.len()`) and catalog targets (the ids
    /// after them) in one index, so a decision walks the key once.
    registry_index: PathIndex,
    approval_timeout_secs: u32,
}

/// What the driver must do with session reads so that they are decided as the policy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadHandling {
    /// Some rule can decide a read other than a plain allow (it denies, asks, or notifies): the
    /// driver asks the service about session reads (`CONFIG_QUERY_READS`).
    pub query: bool,
    /// `log_all`: every session read is reported one-way (`CONFIG_NOTIFY_READS`).
    pub report: bool,
}

/// Where session reads must be asked about ([`Engine::read_scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadScope {
    /// Registry key prefixes in the kernel's form, upper case, none covered by another.
    pub registry: Vec<String>,
    /// Some file rule can decide a read: every file read is in scope (file paths reach the
    /// kernel as volume device names, which the policy does not know when it compiles).
    pub files: bool,
}

/// The kernel spellings a canonical literal key prefix can have (each a plain prefix: a partial
/// last component stays partial).
fn kernel_prefixes(canonical: &str) -> Vec<String> {
    const MACHINE: &str = "\\REGISTRY\\MACHINE\\";
    const USERS: &str = "\\REGISTRY\\USER\\";
    let parts: Vec<&str> = canonical.split('\\').collect();
    let rest = |from: usize| parts.get(from..).map(|p| p.join("\\")).unwrap_or_default();
    match parts.as_slice() {
        // Every numbered control set is CURRENTCONTROLSET in the canonical form.
        ["HKLM", "SYSTEM", cs, ..]
            if !cs.is_empty()
                && ("CURRENTCONTROLSET".starts_with(cs) || cs.starts_with("CURRENTCONTROLSET")) =>
        {
            vec![format!("{MACHINE}SYSTEM\\C")]
        }
        ["HKLM", "SYSTEM", _, ..] => vec![format!("{MACHINE}{}", rest(1))],
        ["HKLM", "SOFTWARE", third, ..]
            if !third.is_empty() && "CLASSES".starts_with(third)
                || third.starts_with("CLASSES") =>
        {
            // HKCR: the machine's classes, their 32-bit view and every user's classes.
            let tail = rest(3);
            let mut v = vec![
                format!("{MACHINE}SOFTWARE\\{}", rest(2)),
                format!("{MACHINE}SOFTWARE\\WOW6432NODE\\{}", rest(2)),
                USERS.to_string(),
            ];
            if parts.len() > 3 {
                v.push(format!("{MACHINE}SOFTWARE\\CLASSES\\WOW6432NODE\\{tail}"));
            }
            v
        }
        ["HKLM", "SOFTWARE", _, ..] => vec![
            format!("{MACHINE}SOFTWARE\\{}", rest(2)),
            format!("{MACHINE}SOFTWARE\\WOW6432NODE\\{}", rest(2)),
        ],
        ["HKLM", second, _, ..] if *second != "SOFTWARE" && *second != "SYSTEM" => {
            vec![format!("{MACHINE}{}", rest(1))]
        }
        ["HKLM", ..] => vec![MACHINE.to_string()],
        ["HKU", ".DEFAULT", ..] => vec![format!("{USERS}{}", rest(1)), format!("{USERS}S-1-5-18")],
        // The SID without its separator also covers `<SID>_Classes`.
        ["HKU", sid, _, ..] if !sid.is_empty() => vec![format!("{USERS}{sid}")],
        ["HKU", ..] | ["HKCU", ..] => vec![USERS.to_string()],
        ["REGISTRY", _, ..] => vec![format!("\\{canonical}")],
        _ => vec!["\\REGISTRY".to_string()],
    }
}

impl Engine {
    /// How the driver must treat session reads for this policy. Reads no rule names are allowed
    /// (never by `default_action`), so unless a rule can decide a read otherwise the driver
    /// answers reads itself; reads of high-risk locations are reported by the driver in any case.
    pub fn read_handling(&self) -> ReadHandling {
        let decides = |t: &RuleTable| {
            t.rules.iter().any(|r| {
                r.ops.contains(Operation::Read)
                    && (r.decision != Decision::Allow || r.notify == Some(true))
            })
        };
        ReadHandling {
            query: decides(&self.registry) || decides(&self.files),
            report: self.registry.settings.log_all || self.files.settings.log_all,
        }
    }

    /// The compiled read scope: where a session read can be decided other than "allow,
    /// unlogged", as the kernel names it. Registry prefixes are in the kernel's form
    /// (`\REGISTRY\...`, upper case) and cover every kernel spelling of a rule's key: the literal
    /// text before the pattern's first wildcard or variable, widened where the canonical form
    /// merges several kernel names (any user hive for `HKCU` and `HKCR`, every numbered control
    /// set, 32-bit views). A prefix may cover more than the rules, never less.
    pub fn read_scope(&self) -> ReadScope {
        let decides = |r: &CompiledRule| {
            r.ops.contains(Operation::Read)
                && (r.decision != Decision::Allow || r.notify == Some(true))
        };
        let mut registry: Vec<String> = Vec::new();
        for t in &self.registry.targets {
            if decides(&self.registry.rules[t.owner as usize]) {
                registry.extend(kernel_prefixes(&t.key.literal_prefix()));
            }
        }
        registry.sort();
        registry.dedup();
        // A prefix covered by a shorter one adds nothing.
        let mut kept: Vec<String> = Vec::new();
        for p in registry {
            if !kept.iter().any(|k| p.starts_with(k.as_str())) {
                kept.push(p);
            }
        }
        ReadScope {
            registry: kept,
            files: self.files.rules.iter().any(decides),
        }
    }

    /// Compiles a checked policy document.
    pub fn new(doc: &PolicyDoc) -> Engine {
        let registry = RuleTable::build(&doc.registry, false);
        let catalog = CatalogTable::build(&doc.disabled_catalog);
        let rule_targets = registry.targets.iter().map(|t| index_path(&t.key));
        let catalog_targets = catalog.paths.iter().cloned();
        let registry_index = PathIndex::build(
            rule_targets
                .chain(catalog_targets)
                .enumerate()
                .map(|(i, p)| (p, i as u32)),
        );
        Engine {
            registry,
            files: RuleTable::build(&doc.files, true),
            catalog,
            registry_index,
            approval_timeout_secs: doc.settings.approvals.default_timeout_secs,
        }
    }

    /// One walk of the combined index: the first matching rule (sandboxed only) and every
    /// matching catalog entry, with the winning rule's overrides applied.
    fn registry_indexed(
        &self,
        key: &str,
        value: Option<&str>,
        access: Access,
        sandboxed: bool,
        vars: &VarValues,
    ) -> (Option<u32>, CatalogHit) {
        let rule_count = self.registry.targets.len() as u32;
        let op = access.op;
        let mut best: Option<u32> = None;
        let mut found: SmallVec<[(u32, usize); 8]> = SmallVec::new();
        let no_vars = VarValues::default();
        let app = vars.app_name.as_deref();
        let subtree = self.registry_index.walk(key, |ids| {
            let split = ids.partition_point(|&t| t < rule_count);
            let (rule_ids, catalog_ids) = ids.split_at(split);
            if sandboxed {
                for &t in rule_ids {
                    let target = &self.registry.targets[t as usize];
                    if best.is_some_and(|b| target.owner >= b) {
                        // Ids at a node ascend with rule rank: nothing later here can win.
                        break;
                    }
                    if self.registry.rules[target.owner as usize].applies(op, app)
                        && target.matches_walked(key, value, vars)
                    {
                        best = Some(target.owner);
                        break;
                    }
                }
            }
            for &t in catalog_ids {
                let target = &self.catalog.targets[(t - rule_count) as usize];
                if target.matches_walked(key, value, &no_vars) {
                    found.push((target.owner, target.specificity));
                }
            }
        });
        let overridden: &[&'static str] =
            best.map_or(&[], |r| &self.registry.rules[r as usize].overrides);
        let mut hit = CatalogHit::default();
        for (owner, specificity) in found {
            hit.add(owner, specificity, overridden);
        }
        if CatalogTable::covers_subtree(value, access) {
            for &t in subtree
                .iter()
                .flat_map(|ids| ids.iter())
                .filter(|&&t| t >= rule_count)
            {
                let target = &self.catalog.targets[(t - rule_count) as usize];
                hit.add(target.owner, target.specificity, overridden);
            }
        }
        (best, hit)
    }

    /// Decides a registry operation.
    pub fn decide_registry(&self, q: &RegistryQuery<'_>) -> Verdict {
        self.decide_registry_with(q, Strategy::Indexed)
    }

    /// Decides a registry operation with the given lookup strategy (the linear scan is the
    /// reference the index is checked against).
    pub fn decide_registry_with(&self, q: &RegistryQuery<'_>, strategy: Strategy) -> Verdict {
        let sid = q.session.user_sid();
        let key = canonical::canonicalize(q.key, sid);
        let value = q.value.map(canonical::upcase);
        let dest = match (q.access.op, q.rename_to) {
            (Operation::Rename, Some(to)) => Some(key.sibling(to, sid)),
            _ => None,
        };
        let source = self.decide_key(q, key, value.as_deref(), strategy);
        let verdict = match dest {
            // A rename is also a creation at its destination: the stricter answer wins.
            Some(dest) => stricter_of(source, self.decide_key(q, dest, None, strategy)),
            None => source,
        };
        refuse_if_truncated(
            verdict,
            q.truncated,
            q.sandboxed,
            q.access,
            self.registry.settings,
        )
    }

    fn decide_key(
        &self,
        q: &RegistryQuery<'_>,
        key: CanonicalKey,
        value: Option<&str>,
        strategy: Strategy,
    ) -> Verdict {
        let table = &self.registry;
        let op = q.access.op;
        let vars = &q.session.vars;
        let text = key.as_str();
        let (rule, hit) = match strategy {
            Strategy::Indexed => self.registry_indexed(text, value, q.access, q.sandboxed, vars),
            Strategy::Linear => {
                let rule = if q.sandboxed {
                    table.first_linear(text, value, op, vars)
                } else {
                    None
                };
                let overridden: &[&'static str] =
                    rule.map_or(&[], |r| &table.rules[r as usize].overrides);
                (
                    rule,
                    self.catalog.hits_linear(text, value, q.access, overridden),
                )
            }
        };
        let rule = rule.map(|r| &table.rules[r as usize]);
        let high_risk = hit.report.map(|(i, _)| &catalog::ENTRIES[i as usize]);
        let floor = hit.floor.map(|(i, _)| &catalog::ENTRIES[i as usize]);
        let ctx = RenderCtx {
            path: q.key,
            value: q.value.unwrap_or(""),
            process_name: q.process_name,
            process_id: q.process_id,
        };
        self.finish(
            table.settings,
            q.sandboxed,
            q.access,
            rule,
            high_risk,
            floor,
            key.into_string(),
            &ctx,
        )
    }

    /// Decides a file operation (the catalog is registry-only).
    pub fn decide_file(&self, q: &FileQuery<'_>) -> Verdict {
        self.decide_file_with(q, Strategy::Indexed)
    }

    /// Decides a file operation with the given lookup strategy.
    pub fn decide_file_with(&self, q: &FileQuery<'_>, strategy: Strategy) -> Verdict {
        let source = self.decide_path(q, q.path, q.op, strategy);
        let verdict = match q.target {
            // A rename or hard link also creates a name at its target: the stricter answer wins.
            Some(target) => stricter_of(
                source,
                self.decide_path(q, target, Operation::Create, strategy),
            ),
            None => source,
        };
        refuse_if_truncated(
            verdict,
            q.truncated,
            q.sandboxed,
            q.op.into(),
            self.files.settings,
        )
    }

    fn decide_path(
        &self,
        q: &FileQuery<'_>,
        raw: &str,
        op: Operation,
        strategy: Strategy,
    ) -> Verdict {
        let table = &self.files;
        let path = filepath::canonicalize_file(raw, q.volumes);
        let vars = &q.session.vars;
        let rule = if q.sandboxed {
            match strategy {
                Strategy::Indexed => table.first_indexed(path.as_str(), None, op, vars),
                Strategy::Linear => table.first_linear(path.as_str(), None, op, vars),
            }
        } else {
            None
        };
        let rule = rule.map(|r| &table.rules[r as usize]);
        let ctx = RenderCtx {
            path: raw,
            value: "",
            process_name: q.process_name,
            process_id: q.process_id,
        };
        self.finish(
            table.settings,
            q.sandboxed,
            op.into(),
            rule,
            None,
            None,
            path.into_string(),
            &ctx,
        )
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one place assembles every verdict field"
    )]
    fn finish(
        &self,
        set: RuleSetSettings,
        sandboxed: bool,
        access: Access,
        rule: Option<&CompiledRule>,
        high_risk: Option<&'static Entry>,
        floor: Option<&'static Entry>,
        canonical: String,
        ctx: &RenderCtx<'_>,
    ) -> Verdict {
        let op = access.op;
        if !sandboxed {
            // Outside every session: never blocked; high-risk writes are logged, every one of them.
            let floor_op = access.meets_catalog_floor();
            return Verdict {
                decision: Decision::Allow,
                rule: high_risk.map_or(RuleRef::Unsandboxed, |e| RuleRef::Builtin(e.id)),
                cache_ttl: if high_risk.is_some() && floor_op {
                    CacheTtl::None
                } else {
                    ttl_of(None, set.default_cache_ttl)
                },
                notify: false,
                log: set.log_all || high_risk.is_some(),
                high_risk,
                approval_timeout_secs: None,
                message: None,
                canonical,
                operation: op,
            };
        }
        let (mut decision, mut rule_ref, mut decider) = match rule {
            Some(r) => (r.decision, RuleRef::Rule(r.name.clone()), Some(r)),
            // `default_action` decides every operation but plain reads: a read no rule names is
            // allowed (docs/policy.md §Reads; docs/design-differences.md). A hive export
            // (SaveKey) is not a plain read.
            None if op == Operation::Read && !access.exports_hive => {
                (Decision::Allow, RuleRef::Default, None)
            }
            None => (set.default_action, RuleRef::Default, None),
        };
        // The catalog is more specific than `default_action`, so with no rule it decides outright;
        // against a rule it is a floor: only a stricter catalog action replaces the rule's.
        if access.meets_catalog_floor()
            && let Some(e) = floor
            && let Some(floor_decision) = e.action.floor()
            && (decider.is_none() || floor_decision.strictness() > decision.strictness())
        {
            decision = floor_decision;
            rule_ref = RuleRef::Builtin(e.id);
            decider = None;
        }
        let cache_ttl = if decision == Decision::Approve {
            CacheTtl::None
        } else {
            ttl_of(decider.and_then(|r| r.cache_ttl), set.default_cache_ttl)
        };
        let approval_timeout_secs = (decision == Decision::Approve).then(|| {
            decider
                .and_then(|r| r.timeout_secs)
                .unwrap_or(self.approval_timeout_secs)
        });
        let template = decider.and_then(|r| r.message.as_ref());
        let message = match (template, decision) {
            (Some(t), _) => Some(t.render(&ctx.values(op, &rule_ref.to_string()))),
            (None, Decision::Approve) => Some(default_message(ctx, op, high_risk)),
            (None, _) => None,
        };
        Verdict {
            decision,
            rule: rule_ref,
            cache_ttl,
            // The rule's own `notify` when it says; otherwise a denial notifies per
            // `notify_on_deny`. `notify: false` on a deny rule is a silent deny.
            notify: decider
                .and_then(|r| r.notify)
                .unwrap_or(decision == Decision::Deny && set.notify_on_deny),
            // Logged: everything with `log_all`, every catalog location, every approval. A
            // denial is logged when it notifies (the notification is its record) or by those
            // rules; a silent deny otherwise leaves no event (it is still counted).
            log: set.log_all || decision == Decision::Approve || high_risk.is_some(),
            high_risk,
            approval_timeout_secs,
            message,
            canonical,
            operation: op,
        }
    }

    /// Which rules and catalog entries a registry query meets, in evaluation order, and why the
    /// winner won.
    pub fn explain_registry(&self, q: &RegistryQuery<'_>) -> Explanation {
        let verdict = self.decide_registry(q);
        let key = canonical::canonicalize(q.key, q.session.user_sid());
        let value = q.value.map(canonical::upcase);
        let mut steps = rule_steps(
            &self.registry,
            key.as_str(),
            value.as_deref(),
            q.access.op,
            q.sandboxed,
            q.session,
        );
        let mut seen: Vec<u32> = Vec::new();
        let subtree = CatalogTable::covers_subtree(value.as_deref(), q.access);
        for (t, path) in self.catalog.targets.iter().zip(&self.catalog.paths) {
            if seen.contains(&t.owner) {
                continue;
            }
            let k = key.as_str();
            let beneath = subtree && is_beneath(path, k);
            let direct = t.matches(k, value.as_deref(), &VarValues::default());
            if !(direct || beneath) {
                continue;
            }
            seen.push(t.owner);
            let e = &catalog::ENTRIES[t.owner as usize];
            let why = if direct {
                format!("matches `{}`", t.key.as_str())
            } else {
                format!(
                    "`{}` lies beneath the key, which the operation reaches",
                    t.key.as_str()
                )
            };
            let effect = if !q.access.meets_catalog_floor() {
                "reads are allowed and logged".to_owned()
            } else if !q.sandboxed {
                "outside a session: allowed and logged".to_owned()
            } else if e.action.floor().is_none() {
                "log-only: the rules decide, the operation is logged".to_owned()
            } else if verdict.rule == RuleRef::Builtin(e.id) {
                format!(
                    "catalog action {} decides (no rule matched, or it is stricter than the rule)",
                    e.action
                )
            } else {
                format!(
                    "floor {} (not stricter, overridden by the deciding rule, or a stricter entry decided)",
                    e.action
                )
            };
            steps.push(Step {
                kind: StepKind::Catalog,
                name: format!("builtin:{}", e.id),
                source: None,
                priority: None,
                apps: None,
                outcome: format!("{why}; {} {} {}; {effect}", e.risk, e.technique, e.tactic),
            });
        }
        Explanation {
            canonical: key.as_str().to_owned(),
            steps,
            verdict,
        }
    }

    /// Which file rules a file query meets, in evaluation order, and why the winner won.
    pub fn explain_file(&self, q: &FileQuery<'_>) -> Explanation {
        let verdict = self.decide_file(q);
        let path = filepath::canonicalize_file(q.path, q.volumes);
        let steps = rule_steps(
            &self.files,
            path.as_str(),
            None,
            q.op,
            q.sandboxed,
            q.session,
        );
        Explanation {
            canonical: path.into_string(),
            steps,
            verdict,
        }
    }
}

/// The stricter of the verdicts for an operation's source and its target, reported against the
/// source's canonical path (ties keep the source's verdict).
fn stricter_of(source: Verdict, target: Verdict) -> Verdict {
    if target.decision.strictness() > source.decision.strictness() {
        Verdict {
            canonical: source.canonical,
            ..target
        }
    } else {
        source
    }
}

/// A path the driver had to cut is not the path it names: a sandboxed write-class operation on it
/// is denied and never cached; anything on it is logged.
fn refuse_if_truncated(
    mut v: Verdict,
    truncated: bool,
    sandboxed: bool,
    access: Access,
    set: RuleSetSettings,
) -> Verdict {
    if !truncated {
        return v;
    }
    v.log = true;
    if sandboxed && access.meets_catalog_floor() && v.decision != Decision::Deny {
        v.decision = Decision::Deny;
        v.rule = RuleRef::Truncated;
        v.cache_ttl = CacheTtl::None;
        v.notify = set.notify_on_deny;
        v.approval_timeout_secs = None;
        v.message = None;
    }
    v
}

/// The rule steps of an explanation: every rule in evaluation order, then the default.
fn rule_steps(
    table: &RuleTable,
    key: &str,
    value: Option<&str>,
    op: Operation,
    sandboxed: bool,
    session: &SessionContext,
) -> Vec<Step> {
    let vars = &session.vars;
    let app = session.app_name();
    let mut steps = Vec::new();
    let mut winner_seen = false;
    for (rank, r) in table.rules.iter().enumerate() {
        let matched = table
            .targets
            .iter()
            .find(|t| t.owner as usize == rank && t.matches(key, value, vars));
        let outcome = if !sandboxed {
            "not evaluated: the process is outside every sandbox session".to_owned()
        } else if !r.ops.contains(op) {
            format!("skipped: operation `{op}` not in the rule's operations")
        } else if !r.for_app(vars.app_name.as_deref()) {
            match app {
                Some(a) => format!("skipped: the session's app `{a}` is not in the rule's apps"),
                None => "skipped: the session has no app name and the rule names apps".to_owned(),
            }
        } else if let Some(t) = matched {
            if winner_seen {
                format!(
                    "matches `{}` but a rule earlier in priority order already won",
                    t.key.as_str()
                )
            } else {
                winner_seen = true;
                format!("first match: `{}` -> {}", t.key.as_str(), r.decision)
            }
        } else {
            "no pattern matches".to_owned()
        };
        steps.push(Step {
            kind: StepKind::Rule,
            name: r.name.to_string(),
            source: r.source.as_deref().map(str::to_owned),
            priority: Some(r.priority),
            apps: r
                .apps_written
                .as_ref()
                .map(|a| a.iter().map(|x| x.to_string()).collect()),
            outcome,
        });
    }
    if sandboxed && !winner_seen {
        steps.push(Step {
            kind: StepKind::Default,
            name: "default".to_owned(),
            source: None,
            priority: None,
            apps: None,
            outcome: format!(
                "no rule matched: default_action {}",
                table.settings.default_action
            ),
        });
    }
    steps
}

struct RenderCtx<'a> {
    path: &'a str,
    value: &'a str,
    process_name: &'a str,
    process_id: u32,
}

impl RenderCtx<'_> {
    fn values<'b>(&'b self, op: Operation, rule: &'b str) -> TemplateValues<'b> {
        TemplateValues {
            path: self.path,
            value_name: self.value,
            operation: op.name(),
            process_name: self.process_name,
            process_id: self.process_id,
            rule,
        }
    }
}

fn default_message(ctx: &RenderCtx<'_>, op: Operation, high_risk: Option<&Entry>) -> String {
    let who = if ctx.process_name.is_empty() {
        "the agent"
    } else {
        ctx.process_name
    };
    let mut m = String::with_capacity(160);
    for part in [who, " wants to ", op.name(), " `", ctx.path, "`"] {
        m.push_str(part);
    }
    if !ctx.value.is_empty() {
        for part in [" value `", ctx.value, "`"] {
            m.push_str(part);
        }
    }
    if let Some(e) = high_risk {
        for part in [
            " (",
            e.risk.name(),
            " risk, ",
            e.technique,
            ": ",
            e.description,
            ")",
        ] {
            m.push_str(part);
        }
    }
    m
}

/// The kind of an explanation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Rule,
    Default,
    Catalog,
}

/// One rule or catalog entry considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    pub name: String,
    /// For a rule from a remembered-rules overlay: that file (`None`: the policy file, the
    /// default or the catalog).
    pub source: Option<String>,
    pub priority: Option<i32>,
    /// For a rule with `apps:`: those names as written (`None`: the rule applies to every
    /// session, or the step is not a rule).
    pub apps: Option<Vec<String>>,
    pub outcome: String,
}

/// The output of `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub canonical: String,
    pub steps: Vec<Step>,
    pub verdict: Verdict,
}

/// A decision's cache lifetime: the rule's TTL, else the rule set's default, else the driver's
/// own default; 0 at either level means "do not cache".
fn ttl_of(rule: Option<u32>, set_default: Option<u32>) -> CacheTtl {
    match rule.or(set_default) {
        Some(0) => CacheTtl::None,
        Some(t) => CacheTtl::Seconds(t),
        None => CacheTtl::DriverDefault,
    }
}
