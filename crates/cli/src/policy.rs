//! `agentsh policy`: validate, check, explain and test policy files, print the JSON Schema and
//! the high-risk catalog. Exit codes: 0 success, 1 policy tests failed, 2 invalid input.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentsh_policy::catalog::{self, ATTACK_VERSION};
use agentsh_policy::filepath::VolumeMap;
use agentsh_policy::load::parse_access;
use agentsh_policy::{
    Access, Engine, FileQuery, LoadErrors, Policy, RegistryQuery, SessionContext, StepKind, Verdict,
};
use agentsh_wire::response::CacheTtl;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file; print every problem with file:line:col (exit 2 if any)
    Validate {
        /// Policy file (default: the embedded default policy)
        file: Option<PathBuf>,
    },
    /// Decide one operation, or a batch of JSON-lines queries
    Check(CheckArgs),
    /// Show which rules and catalog entries a query meets and why the winner won
    Explain(CheckArgs),
    /// Run a policy's `tests:` and report each (exit 1 if any fails)
    Test {
        /// Policy file
        file: PathBuf,
    },
    /// Print the JSON Schema of agentsh.yaml
    Schema,
    /// Propose remembered rules from the service's approval history (its events file)
    Suggest {
        /// Events file written by `agentsh service run --events FILE` (JSON lines)
        events: PathBuf,
    },
    /// Print the built-in high-risk catalog
    Catalog {
        /// One JSON object per entry
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file (default: the embedded default policy)
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Registry key in any spelling (HKLM\..., \REGISTRY\MACHINE\...)
    #[arg(long, conflicts_with_all = ["path", "batch"])]
    key: Option<String>,
    /// File path, for a file-rule check
    #[arg(long, conflicts_with = "batch")]
    path: Option<String>,
    /// Value name ("" = the default value)
    #[arg(long)]
    value: Option<String>,
    /// New name of a renamed key; new path of a renamed or hard-linked file
    #[arg(long)]
    rename_to: Option<String>,
    /// read, write, create, delete, rename, or a driver operation (SetValue, CreateKey, ...)
    #[arg(long)]
    op: Option<String>,
    /// The process is outside every sandbox session
    #[arg(long)]
    unsandboxed: bool,
    /// The session's application name (${APP_NAME})
    #[arg(long)]
    app: Option<String>,
    /// The session's workspace (${WORKSPACE})
    #[arg(long)]
    workspace: Option<String>,
    /// SID of the session's user (whose hive is HKCU)
    #[arg(long)]
    sid: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Read JSON-lines queries from FILE (`-` = standard input), write one JSON line each
    #[arg(long)]
    batch: Option<PathBuf>,
}

/// Runs one `agentsh policy` command.
pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Validate { file } => match load(file.as_deref(), true) {
            Ok(p) => {
                let d = p.document();
                println!(
                    "{}: ok ({} registry rules, {} file rules, {} tests)",
                    p.origin(),
                    d.registry.rules.len(),
                    d.files.rules.len(),
                    d.tests.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => invalid(&e),
        },
        PolicyCommand::Check(args) => match load(args.policy.as_deref(), true) {
            Ok(p) => match &args.batch {
                Some(b) => batch(p.engine(), b),
                None => single(p.engine(), &args, false),
            },
            Err(e) => invalid(&e),
        },
        PolicyCommand::Explain(args) => match load(args.policy.as_deref(), true) {
            Ok(p) => single(p.engine(), &args, true),
            Err(e) => invalid(&e),
        },
        PolicyCommand::Test { file } => test(&file),
        PolicyCommand::Schema => {
            let schema = agentsh_policy::schema::policy_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        PolicyCommand::Suggest { events } => suggest(&events),
        PolicyCommand::Catalog { json } => {
            print_catalog(json);
            ExitCode::SUCCESS
        }
    }
}

fn load(file: Option<&Path>, run_tests: bool) -> Result<Policy, LoadErrors> {
    match (file, run_tests) {
        (Some(f), true) => Policy::from_path(f),
        (Some(f), false) => {
            let overlay = Policy::read_overlay(f)?;
            Policy::compile_with(
                &Policy::read(f)?,
                &f.display().to_string(),
                overlay.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
            )
        }
        (None, _) => Policy::embedded_default(),
    }
}

fn suggest(events: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(events) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "agentsh policy suggest: cannot read `{}`: {e}",
                events.display()
            );
            return ExitCode::from(2);
        }
    };
    match crate::suggest::History::from_lines(&text, &events.display().to_string()) {
        Ok(h) => {
            print!("{}", h.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agentsh policy suggest: {e}");
            ExitCode::from(2)
        }
    }
}

fn invalid(errors: &LoadErrors) -> ExitCode {
    eprintln!("{errors}");
    ExitCode::from(2)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("agentsh policy: {message}");
    ExitCode::from(2)
}

/// One query in any of its input forms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    key: Option<String>,
    path: Option<String>,
    value: Option<String>,
    rename_to: Option<String>,
    op: String,
    #[serde(default = "yes")]
    sandboxed: bool,
    app: Option<String>,
    workspace: Option<String>,
    sid: Option<String>,
}

fn yes() -> bool {
    true
}

fn decide(engine: &Engine, q: &Query) -> Result<Verdict, String> {
    let access: Access = parse_access(&q.op).ok_or_else(|| {
        format!(
            "unknown operation `{}` (expected read, write, create, delete, rename or a driver operation such as SetValue)",
            q.op
        )
    })?;
    let session = SessionContext::new(q.app.as_deref(), q.workspace.as_deref(), q.sid.as_deref())
        .map_err(|e| e.to_string())?;
    let volumes = VolumeMap::new();
    match (&q.key, &q.path) {
        (Some(key), None) => {
            let mut rq = RegistryQuery::new(key, access, &session);
            rq.value = q.value.as_deref();
            rq.rename_to = q.rename_to.as_deref();
            rq.sandboxed = q.sandboxed;
            Ok(engine.decide_registry(&rq))
        }
        (None, Some(path)) => {
            let mut fq = FileQuery::new(path, access.op, &session, &volumes);
            fq.sandboxed = q.sandboxed;
            fq.target = q.rename_to.as_deref();
            Ok(engine.decide_file(&fq))
        }
        _ => Err("give exactly one of `key` or `path`".to_owned()),
    }
}

fn verdict_json(v: &Verdict) -> Value {
    json!({
        "decision": v.decision.name(),
        "rule": v.rule.to_string(),
        "canonical": v.canonical,
        "operation": v.operation.name(),
        // Seconds; 0 = not cached; null = the driver's configured default (CacheDefaultTTLMs).
        "cache_ttl_seconds": match v.cache_ttl {
            CacheTtl::None => Some(0),
            CacheTtl::Seconds(s) => Some(s),
            CacheTtl::DriverDefault => None,
        },
        "notify": v.notify,
        "log": v.log,
        "risk_level": v.risk().map(|r| r.name()),
        "mitre_id": v.mitre_id(),
        "mitre_tactic": v.mitre_tactic(),
        "mitre_technique": v.high_risk.map(|e| e.technique_name),
        "attack_version": v.high_risk.map(|_| ATTACK_VERSION),
        "description": v.description(),
        "approval_timeout_seconds": v.approval_timeout_secs,
        "message": v.message,
    })
}

fn single(engine: &Engine, args: &CheckArgs, explain: bool) -> ExitCode {
    let Some(op) = &args.op else {
        return usage(
            "`--op` is required (read, write, create, delete, rename or a driver operation)",
        );
    };
    let q = Query {
        key: args.key.clone(),
        path: args.path.clone(),
        value: args.value.clone(),
        rename_to: args.rename_to.clone(),
        op: op.clone(),
        sandboxed: !args.unsandboxed,
        app: args.app.clone(),
        workspace: args.workspace.clone(),
        sid: args.sid.clone(),
    };
    if explain {
        return explain_query(engine, &q, args.json);
    }
    match decide(engine, &q) {
        Ok(v) if args.json => {
            println!("{}", verdict_json(&v));
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print_verdict(&v);
            ExitCode::SUCCESS
        }
        Err(e) => usage(&e),
    }
}

fn print_verdict(v: &Verdict) {
    println!("decision:  {}", v.decision);
    println!("rule:      {}", v.rule);
    println!("canonical: {}", v.canonical);
    match v.cache_ttl {
        CacheTtl::Seconds(t) => println!("cache ttl: {t}s"),
        CacheTtl::DriverDefault => {
            println!("cache ttl: the driver's default (CacheDefaultTTLMs)")
        }
        CacheTtl::None => println!("cache ttl: not cached"),
    }
    println!("notify:    {}", v.notify);
    println!("log:       {}", v.log);
    if let Some(e) = v.high_risk {
        println!(
            "high risk: {} {} {} ({}, ATT&CK v{ATTACK_VERSION}): {}",
            e.risk, e.technique, e.technique_name, e.tactic, e.description
        );
    }
    if let Some(t) = v.approval_timeout_secs {
        println!("approval timeout: {t}s");
    }
    if let Some(m) = &v.message {
        println!("message:   {m}");
    }
}

fn explain_query(engine: &Engine, q: &Query, as_json: bool) -> ExitCode {
    let Some(access) = parse_access(&q.op) else {
        return usage(&format!("unknown operation `{}`", q.op));
    };
    let session =
        match SessionContext::new(q.app.as_deref(), q.workspace.as_deref(), q.sid.as_deref()) {
            Ok(s) => s,
            Err(e) => return usage(&e.to_string()),
        };
    let volumes = VolumeMap::new();
    let ex = match (&q.key, &q.path) {
        (Some(key), None) => {
            let mut rq = RegistryQuery::new(key, access, &session);
            rq.value = q.value.as_deref();
            rq.rename_to = q.rename_to.as_deref();
            rq.sandboxed = q.sandboxed;
            engine.explain_registry(&rq)
        }
        (None, Some(path)) => {
            let mut fq = FileQuery::new(path, access.op, &session, &volumes);
            fq.sandboxed = q.sandboxed;
            fq.target = q.rename_to.as_deref();
            engine.explain_file(&fq)
        }
        _ => return usage("give exactly one of `--key` or `--path`"),
    };
    if as_json {
        let steps: Vec<Value> = ex
            .steps
            .iter()
            .map(|s| {
                json!({
                    "kind": match s.kind { StepKind::Rule => "rule", StepKind::Default => "default", StepKind::Catalog => "catalog" },
                    "name": s.name,
                    "source": s.source,
                    "priority": s.priority,
                    "apps": s.apps,
                    "outcome": s.outcome,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "canonical": ex.canonical, "steps": steps, "verdict": verdict_json(&ex.verdict) })
        );
        return ExitCode::SUCCESS;
    }
    println!("canonical: {}", ex.canonical);
    println!("considered, in evaluation order:");
    for s in &ex.steps {
        let prio = s
            .priority
            .map(|p| format!(" (priority {p})"))
            .unwrap_or_default();
        let from = s
            .source
            .as_deref()
            .map(|f| format!(" [remembered, {f}]"))
            .unwrap_or_default();
        let apps = s
            .apps
            .as_ref()
            .map(|a| format!(" [apps: {}]", a.join(", ")))
            .unwrap_or_default();
        println!("  {}{prio}{from}{apps}: {}", s.name, s.outcome);
    }
    println!("result:");
    print_verdict(&ex.verdict);
    ExitCode::SUCCESS
}

fn batch(engine: &Engine, file: &Path) -> ExitCode {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return usage(&format!("cannot read `{}`: {e}", file.display())),
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    for (n, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return usage(&format!("{}:{}: {e}", file.display(), n + 1)),
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Query>(&line)
            .map_err(|e| e.to_string())
            .and_then(|q| decide(engine, &q));
        let record = match result {
            Ok(v) => verdict_json(&v),
            Err(e) => {
                failed = true;
                json!({ "error": format!("{}:{}: {e}", file.display(), n + 1) })
            }
        };
        if writeln!(out, "{record}").is_err() {
            return ExitCode::from(2);
        }
    }
    if out.flush().is_err() || failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn test(file: &Path) -> ExitCode {
    let policy = match load(Some(file), false) {
        Ok(p) => p,
        Err(e) => return invalid(&e),
    };
    let failures = policy.run_tests();
    let tests = &policy.document().tests;
    for t in tests {
        match failures.iter().find(|f| f.test.pos == t.pos) {
            Some(f) => println!(
                "FAIL {}:{}: {}: {}",
                policy.origin(),
                t.pos,
                t.name,
                f.problem
            ),
            None => println!("ok   {}", t.name),
        }
    }
    println!(
        "{} passed, {} failed",
        tests.len() - failures.len(),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_catalog(as_json: bool) {
    if !as_json {
        println!(
            "{:<30} {:<8} {:<10} {:<20} {:<8} DESCRIPTION",
            "ID", "RISK", "TECHNIQUE", "TACTIC", "ACTION"
        );
    }
    for e in catalog::ENTRIES {
        if as_json {
            println!(
                "{}",
                json!({
                    "id": e.id,
                    "locations": e.locations,
                    "risk": e.risk.name(),
                    "technique": e.technique,
                    "technique_name": e.technique_name,
                    "tactic": e.tactic,
                    "tactic_name": catalog::tactic(e.tactic).map(|t| t.0),
                    "tactic_uid": catalog::tactic(e.tactic).map(|t| t.1),
                    "action": e.action.name(),
                    "reason": e.reason,
                    "description": e.description,
                    "origin": e.origin.name(),
                    "sources": e.sources,
                    "attack_version": ATTACK_VERSION,
                })
            );
        } else {
            println!(
                "{:<30} {:<8} {:<10} {:<20} {:<8} {}",
                e.id, e.risk, e.technique, e.tactic, e.action, e.description
            );
            for l in e.locations {
                println!("{:31}location: {l}", "");
            }
            println!("{:31}reason:   {}", "", e.reason);
            for s in e.sources {
                println!("{:31}source:   {s}", "");
            }
        }
    }
}
