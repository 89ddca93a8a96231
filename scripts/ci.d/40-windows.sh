#!/usr/bin/env bash
# CI stage: cross-build every workspace crate for Windows and run the Windows-target tests under Wine.
set -euo pipefail
exec "$(dirname "$0")/../windows.sh" all
