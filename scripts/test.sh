#!/usr/bin/env bash
# Run LockN Gen's whole test suite inside real ComfyUI (after the idempotent set-up).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k ltx2 -x`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$(LOCKN_SETUP_TEST=1 bash "$here/scripts/setup.sh")
cd "$here"
exec "$PY" -m pytest -q -rfEs --durations=15 "$@"
