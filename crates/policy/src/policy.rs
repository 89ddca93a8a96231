//! `Policy`: a loaded, checked and compiled policy file with its settings, and the runner for the
//! policy's own `tests:`.

use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, FileQuery, RegistryQuery, SessionContext, Verdict};
use crate::filepath::VolumeMap;
use crate::load::{self, LoadError, LoadErrors, PolicyDoc, PolicyTest, TestTarget};
use crate::overlay::overlay_path;
use crate::settings::Settings;
use crate::yaml::Pos;

/// The built-in policy (`agentsh.yaml` used when none is given).
pub const DEFAULT_POLICY_YAML: &str = include_str!("data/default.yaml");

/// A loaded policy: settings plus the compiled engine.
#[derive(Debug, Clone)]
pub struct Policy {
    doc: Arc<PolicyDoc>,
    engine: Arc<Engine>,
    origin: String,
}

/// A `tests:` entry whose decision differs from the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    pub test: PolicyTest,
    /// The verdict, when the query could be run.
    pub got: Option<Verdict>,
    pub problem: String,
}

impl Policy {
    /// Loads, checks and compiles policy text, then runs its `tests:`; a failing test is a load
    /// error. `origin` names the text in error messages.
    pub fn from_str(text: &str, origin: &str) -> Result<Policy, LoadErrors> {
        Policy::from_str_with(text, origin, None)
    }

    /// Like [`Policy::from_str`], with a remembered-rules overlay `(text, origin)` merged in
    /// before the tests run.
    pub fn from_str_with(
        text: &str,
        origin: &str,
        overlay: Option<(&str, &str)>,
    ) -> Result<Policy, LoadErrors> {
        let policy = Policy::compile_with(text, origin, overlay)?;
        let failures = policy.run_tests();
        if failures.is_empty() {
            Ok(policy)
        } else {
            Err(LoadErrors(
                failures
                    .into_iter()
                    .map(|f| LoadError {
                        origin: origin.to_owned(),
                        pos: f.test.pos,
                        rule: Some(f.test.name.clone()),
                        message: f.problem,
                    })
                    .collect(),
            ))
        }
    }

    /// Loads, checks and compiles policy text without running its `tests:` (for
    /// `agentsh policy test`, which reports each test itself).
    pub fn compile(text: &str, origin: &str) -> Result<Policy, LoadErrors> {
        Policy::compile_with(text, origin, None)
    }

    /// Like [`Policy::compile`], with a remembered-rules overlay `(text, origin)` merged in
    /// ([`crate::overlay`]).
    pub fn compile_with(
        text: &str,
        origin: &str,
        overlay: Option<(&str, &str)>,
    ) -> Result<Policy, LoadErrors> {
        let mut doc = load::parse_policy(text, origin)?;
        if let Some((overlay_text, overlay_origin)) = overlay {
            let rules = load::parse_overlay(overlay_text, overlay_origin)?;
            crate::overlay::merge(&mut doc, rules)?;
        }
        let engine = Engine::new(&doc);
        Ok(Policy {
            doc: Arc::new(doc),
            engine: Arc::new(engine),
            origin: origin.to_owned(),
        })
    }

    /// Reads a policy file's text, or says why not (as a load error naming the file).
    pub fn read(path: &Path) -> Result<String, LoadErrors> {
        std::fs::read_to_string(path).map_err(|e| {
            LoadErrors(vec![LoadError {
                origin: path.display().to_string(),
                pos: Pos::default(),
                rule: None,
                message: format!("cannot read the policy file: {e}"),
            }])
        })
    }

    /// Reads the remembered-rules overlay next to a policy file: `None` when there is none.
    pub fn read_overlay(policy: &Path) -> Result<Option<(String, String)>, LoadErrors> {
        let path = overlay_path(policy);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some((text, path.display().to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LoadErrors(vec![LoadError {
                origin: path.display().to_string(),
                pos: Pos::default(),
                rule: None,
                message: format!("cannot read the remembered-rules file: {e}"),
            }])),
        }
    }

    /// Loads a policy file and the remembered-rules overlay next to it, if there is one.
    pub fn from_path(path: &Path) -> Result<Policy, LoadErrors> {
        let text = Policy::read(path)?;
        let overlay = Policy::read_overlay(path)?;
        Policy::from_str_with(
            &text,
            &path.display().to_string(),
            overlay.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
        )
    }

    /// The built-in policy.
    pub fn embedded_default() -> Result<Policy, LoadErrors> {
        Policy::from_str(DEFAULT_POLICY_YAML, "<embedded default policy>")
    }

    /// The compiled engine, to share between threads.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The non-rule sections.
    pub fn settings(&self) -> &Settings {
        &self.doc.settings
    }

    /// The checked document (rules as written, in file order).
    pub fn document(&self) -> &PolicyDoc {
        &self.doc
    }

    /// Where the policy came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Runs the policy's `tests:`; returns the failures.
    pub fn run_tests(&self) -> Vec<TestFailure> {
        self.doc
            .tests
            .iter()
            .filter_map(|t| {
                let (verdict, problem) = match run_test(&self.engine, t) {
                    Ok(v) => {
                        let rule = v.rule.to_string();
                        if v.decision != t.expect {
                            let p = format!(
                                "expected {}, got {} (decided by `{rule}`, canonical `{}`)",
                                t.expect, v.decision, v.canonical
                            );
                            (v, Some(p))
                        } else if let Some(want) = t.expect_rule.as_deref().filter(|w| *w != rule) {
                            let p = format!("expected rule `{want}` to decide, got `{rule}`");
                            (v, Some(p))
                        } else {
                            (v, None)
                        }
                    }
                    Err(problem) => {
                        return Some(TestFailure {
                            test: t.clone(),
                            got: None,
                            problem,
                        });
                    }
                };
                problem.map(|problem| TestFailure {
                    test: t.clone(),
                    got: Some(verdict),
                    problem,
                })
            })
            .collect()
    }
}

fn run_test(engine: &Engine, t: &PolicyTest) -> Result<Verdict, String> {
    let session = SessionContext::new(
        t.app.as_deref(),
        t.workspace.as_deref(),
        t.user_sid.as_deref(),
    )
    .map_err(|e| format!("invalid session values: {e}"))?;
    let volumes = VolumeMap::new();
    Ok(match &t.target {
        TestTarget::Key {
            key,
            value,
            rename_to,
        } => {
            let mut q = RegistryQuery::new(key, t.access, &session);
            q.value = value.as_deref();
            q.rename_to = rename_to.as_deref();
            q.sandboxed = t.sandboxed;
            engine.decide_registry(&q)
        }
        TestTarget::File { path } => {
            let mut q = FileQuery::new(path, t.access.op, &session, &volumes);
            q.sandboxed = t.sandboxed;
            engine.decide_file(&q)
        }
    })
}
