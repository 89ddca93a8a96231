#!/usr/bin/env bash
# agentsh.sys: cross build, PE checks, test signing and the emulated-kernel scenarios.
set -euo pipefail
exec "$(dirname "$0")/../driver.sh" all
