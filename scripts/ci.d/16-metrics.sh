#!/usr/bin/env bash
# The Prometheus text the service serves, checked by an independent linter: `promtool check
# metrics` (Debian's prometheus package) on the text crates/service/tests/metrics_format.rs
# renders with every service metric and every driver counter (text format 0.0.4: # HELP and
# # TYPE for every family, counters named _total).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  apt-get update -qq
  # The package's postinst may try to start the server; nothing here needs it running.
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends prometheus
fi
rm -f target/tmp/metrics/agentsh.prom
timeout 600 cargo test --locked -q -p agentsh-service --test metrics_format
test -s target/tmp/metrics/agentsh.prom
promtool check metrics < target/tmp/metrics/agentsh.prom
echo "promtool: $(grep -c '^# TYPE' target/tmp/metrics/agentsh.prom) metric families pass"
