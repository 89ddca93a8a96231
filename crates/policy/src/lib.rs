//! agentsh policy engine: loads `agentsh.yaml`, canonicalizes registry and file paths, knows the
//! high-risk catalog and decides every operation with a compiled matcher.

pub mod canonical;
pub mod catalog;
pub mod filepath;
pub mod ops;
pub mod pattern;
pub mod yaml;
