#!/usr/bin/env bash
# Every check, exactly as CI runs it. Installs what it needs on a fresh machine (idempotently).
# Stages beyond the native build live in scripts/ci.d/NN-name.sh and run in name order.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n==> %s\n' "$*"; }

stage "format"
cargo fmt --all -- --check

stage "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "tests"
cargo test --workspace --locked

for s in scripts/ci.d/*.sh; do
  [ -e "$s" ] || continue
  stage "$(basename "$s" .sh)"
  bash "$s"
done
