#!/usr/bin/env bash
# The wire format and kernel core: the kernel core builds for the driver's target with only
# core and alloc, and every decoder is fuzzed for a fixed time (FUZZ_SECONDS each, default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
[ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust ] || need+=(rustc-web rust-web-src)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "kernel core for x86_64-pc-windows-gnu with core + alloc only"
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/kcore-windows \
  cargo build --locked -q -p agentsh-kcore -Zbuild-std=core,alloc --target x86_64-pc-windows-gnu

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
dir=fuzz/wire
for target in registry_request file_request response control notify process_event send_result \
  frame_header kernel_core names read_scope; do
  mkdir -p "$dir/corpus/$target"
  cargo fuzz run --fuzz-dir "$dir" --sanitizer none "$target" "$dir/corpus/$target" \
    -- -max_total_time="${FUZZ_SECONDS:-10}" -max_len=4096 2>&1 | tail -n 2
done
