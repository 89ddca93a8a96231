#!/usr/bin/env bash
# Every check, exactly as CI runs it. Installs what it needs on a fresh machine (idempotently).
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n==> %s\n' "$*"; }

stage "format"
cargo fmt --all -- --check

stage "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "tests"
cargo test --workspace --locked
