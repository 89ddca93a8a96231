//! JSON Schema of `agentsh.yaml` for editors.
