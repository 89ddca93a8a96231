#!/usr/bin/env bash
# Driver-emulator reliability: one million operations from 8 simulated processes through the
# emulator's port, in release (every request answered exactly once, no memory growth after warm-up).
# The fail-mode and hostile-input tests are ordinary `cargo test` tests and ran in the test stage.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --release --locked -p agentsh-emulator --features reliability --test million -- --nocapture
cargo test --release --locked -p agentsh-service --features reliability --test million_service -- --nocapture
