#!/usr/bin/env bash
# Time-boxed fuzzing of the policy loader and the canonicalizers (~30 s each). cargo-fuzz needs
# nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them, and no sanitizer is
# requested (stable has none), so this runs with only rustup stable installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
dir=fuzz/policy
for target in load_policy canonicalize; do
  mkdir -p "$dir/corpus/$target"
  cargo fuzz run --fuzz-dir "$dir" --sanitizer none "$target" "$dir/corpus/$target" \
    -- -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096
done
