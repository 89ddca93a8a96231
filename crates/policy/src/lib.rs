//! agentsh policy engine: loads `agentsh.yaml`, canonicalizes registry and file paths, knows the
//! high-risk catalog and decides every operation with a compiled matcher.
//!
//! The service's entry points: [`Policy`] (load from a path, a string or the embedded default),
//! [`Engine`] (shared in an `Arc`), [`Engine::decide_registry`] and [`Engine::decide_file`]
//! returning a [`Verdict`].

pub mod canonical;
pub mod catalog;
pub mod engine;
pub mod filepath;
mod index;
pub mod load;
pub mod ops;
pub mod overlay;
pub mod pattern;
mod policy;
pub mod schema;
pub mod settings;
pub mod template;
pub mod workload;
pub mod yaml;

pub use engine::{
    Engine, Explanation, FileQuery, ReadHandling, RegistryQuery, RuleRef, SessionContext,
    SessionError, Step, StepKind, Strategy, Verdict,
};
pub use load::{LoadError, LoadErrors};
pub use ops::{Access, Decision, OpSet, Operation, Risk};
pub use policy::{DEFAULT_POLICY_YAML, Policy, TestFailure};
