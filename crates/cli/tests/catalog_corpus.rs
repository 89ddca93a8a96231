//! The high-risk catalog against the corpus in crates/policy/tests/corpus: registry writes taken
//! from public attack-emulation and detection sources (attack.jsonl) and harmless operations of
//! a sandboxed application and its developer tools (benign.jsonl), run through the batch checker
//! (`agentsh policy check --batch`) under a policy that allows everything the catalog does not
//! stop (`registry_policy: {default_action: allow}`).
//!
//! Thresholds: at least 98 % of the attack cases refused (denied or held for approval), at least
//! 90 % of them reported with a technique that one of the case's cited sources gives, and every
//! benign case decided as expected. Corpus lines are
//! `{"key", "value", "op": "write|create|delete|read", "expect": "refused|allow", "technique",
//! "source"}`; `technique` and `source` are a string or a list.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";
const APP: &str = "TestApp";

struct Case {
    file: &'static str,
    line: usize,
    key: String,
    value: String,
    op: String,
    refused: bool,
    techniques: Vec<String>,
    sources: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn corpus(file: &'static str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/corpus")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", n + 1));
        let field = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("{file}:{}: `{name}` is not a string", n + 1))
                .to_owned()
        };
        let op = field("op");
        assert!(
            ["write", "create", "delete", "read"].contains(&op.as_str()),
            "{file}:{}: op `{op}`",
            n + 1
        );
        let expect = field("expect");
        assert!(
            expect == "refused" || expect == "allow",
            "{file}:{}: expect `{expect}`",
            n + 1
        );
        let sources = strings(&v["source"]);
        assert!(!sources.is_empty(), "{file}:{}: no source", n + 1);
        out.push(Case {
            file,
            line: n + 1,
            key: field("key"),
            value: field("value"),
            op,
            refused: expect == "refused",
            techniques: strings(&v["technique"]),
            sources,
        });
    }
    out
}

/// The batch query of a case: the driver operation the corpus operation names.
fn query(c: &Case) -> Value {
    let (op, value) = match (c.op.as_str(), c.value.is_empty()) {
        ("write", _) => ("SetValue", Some(c.value.as_str())),
        ("create", _) => ("CreateKey", None),
        ("delete", true) => ("DeleteKey", None),
        ("delete", false) => ("DeleteValue", Some(c.value.as_str())),
        ("read", true) => ("OpenKey", None),
        (_, false) => ("QueryValue", Some(c.value.as_str())),
        (other, _) => panic!("operation {other}"),
    };
    let mut q = json!({ "key": c.key, "op": op, "app": APP, "sid": SID });
    if let Some(v) = value {
        q["value"] = json!(v);
    }
    q
}

/// Decides every case with `agentsh policy check --batch`.
fn decide(cases: &[Case]) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("agentsh-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("allow.yaml");
    std::fs::write(&policy, "registry_policy:\n  default_action: allow\n").expect("policy");
    let batch = dir.join("batch.jsonl");
    let mut f = std::fs::File::create(&batch).expect("batch file");
    for c in cases {
        writeln!(f, "{}", query(c)).expect("batch line");
    }
    drop(f);
    let out = Command::new(env!("CARGO_BIN_EXE_agentsh"))
        .args(["policy", "check", "--policy"])
        .arg(&policy)
        .arg("--batch")
        .arg(&batch)
        .output()
        .expect("agentsh runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("verdict line"))
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "one verdict per case");
    verdicts
}

fn percent(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The source's project: `owner/repository`, or the page named.
fn project(source: &str) -> &str {
    source.split(' ').next().unwrap_or(source)
}

#[test]
fn the_catalog_refuses_the_attack_corpus_and_lets_the_benign_corpus_through() {
    let attack = corpus("attack.jsonl");
    let benign = corpus("benign.jsonl");
    let verdicts = decide(&attack);
    let refused = |v: &Value| matches!(v["decision"].as_str(), Some("deny" | "approve"));

    let mut not_refused = Vec::new();
    let mut wrong_technique = Vec::new();
    let mut techniques = BTreeSet::new();
    let mut projects = BTreeSet::new();
    for (c, v) in attack.iter().zip(&verdicts) {
        assert!(
            c.refused,
            "{}:{}: attack cases expect refused",
            c.file, c.line
        );
        assert!(
            !c.techniques.is_empty(),
            "{}:{}: an attack case names its sources' techniques",
            c.file,
            c.line
        );
        techniques.extend(c.techniques.iter().cloned());
        projects.extend(c.sources.iter().map(|s| project(s).to_owned()));
        if !refused(v) {
            not_refused.push(format!(
                "{}:{}: {} > {} gave {}",
                c.file, c.line, c.key, c.value, v
            ));
        }
        let reported = v["mitre_id"].as_str().unwrap_or("none");
        if !c.techniques.iter().any(|t| t == reported) {
            wrong_technique.push(format!(
                "{}:{}: {} > {} reported {reported}, sources give {:?}",
                c.file, c.line, c.key, c.value, c.techniques
            ));
        }
    }
    let refused_pct = percent(attack.len() - not_refused.len(), attack.len());
    let technique_pct = percent(attack.len() - wrong_technique.len(), attack.len());
    println!(
        "attack cases: {}, refused {refused_pct:.1} %, technique from a cited source {technique_pct:.1} %",
        attack.len()
    );
    println!(
        "distinct techniques given by the sources: {}; source projects: {} ({})",
        techniques.len(),
        projects.len(),
        projects.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("not refused:\n{}", not_refused.join("\n"));
    println!("technique differs:\n{}", wrong_technique.join("\n"));

    let benign_verdicts = decide(&benign);
    let mut unexpected = Vec::new();
    for (c, v) in benign.iter().zip(&benign_verdicts) {
        if refused(v) != c.refused {
            unexpected.push(format!(
                "{}:{}: {} {} > {} gave {} (expected {})",
                c.file,
                c.line,
                c.op,
                c.key,
                c.value,
                v["decision"],
                if c.refused { "refused" } else { "allow" }
            ));
        }
    }
    println!("benign cases: {}", benign.len());

    assert!(attack.len() >= 300, "only {} attack cases", attack.len());
    assert!(benign.len() >= 100, "only {} benign cases", benign.len());
    let repo_sources = projects.iter().filter(|p| p.contains('/')).count();
    assert!(repo_sources >= 4, "attack cases cite only {projects:?}");
    assert!(
        refused_pct >= 98.0,
        "{refused_pct:.1} % of attack cases refused:\n{}",
        not_refused.join("\n")
    );
    assert!(
        technique_pct >= 90.0,
        "{technique_pct:.1} % reported with a cited technique:\n{}",
        wrong_technique.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "benign cases decided unexpectedly:\n{}",
        unexpected.join("\n")
    );
}
