#!/usr/bin/env bash
# OCSF: every event the tests produce is validated against the released OCSF schema (1.8.0, with
# the Windows extension): the golden files (crates/service/tests/snapshots/*_ocsf.snap) and the
# events of real runs of the service against the driver emulator (crates/service/tests/ocsf_runs.rs
# and through_emulator.rs write them to target/tmp/ocsf-events/). The validator is independent of
# the encoder: PyPI ocsf-json-schema generates a JSON Schema per class and profile set from the
# OCSF server's export of the release, `jsonschema` checks it, and
# crates/service/tests/ocsf/validate_ocsf.py adds the schema's rules a JSON Schema cannot express.
# The packages go into target/ocsf/site with `pip install --target` (nothing is installed into the
# system Python).
set -euo pipefail
cd "$(dirname "$0")/../.."

version=1.8.0
work="target/ocsf"
if [ ! -f "$work/site/.complete" ]; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
  fi
  rm -rf "$work/site"
  timeout 300 python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$work/site" 'ocsf-json-schema==1.2.0' 'jsonschema==4.26.0'
  touch "$work/site/.complete"
fi

rm -rf target/tmp/ocsf-events
timeout 900 cargo test --locked -q -p agentsh-service --test ocsf_runs --test through_emulator \
  --test events
shopt -s nullglob
runs=(target/tmp/ocsf-events/*.jsonl)
if [ ${#runs[@]} -eq 0 ]; then
  echo "no events were recorded by the runs" >&2
  exit 1
fi
PYTHONPATH="$work/site" timeout 300 python3 crates/service/tests/ocsf/validate_ocsf.py "$version" \
  crates/service/tests/snapshots/*_ocsf.snap "${runs[@]}"
