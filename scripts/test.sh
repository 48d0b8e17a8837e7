#!/usr/bin/env bash
# Run LockN Gen's whole test suite inside real ComfyUI (after the idempotent set-up).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k ltx2 -x`.
#   LOCKN_TEST_WORKERS  parallel pytest workers, one test file each at a time (default: the CPU count, at most 4;
#                       0 runs everything in this process)
#   LOCKN_TEST_THREADS  torch threads per test ComfyUI (default 1: see lockn_testing/harness/__init__.py)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$(LOCKN_SETUP_TEST=1 LOCKN_SETUP_SDCPP=${LOCKN_SETUP_SDCPP:-1} LOCKN_SETUP_DISTRIBUTED=${LOCKN_SETUP_DISTRIBUTED:-1} \
     LOCKN_SETUP_HEARTMULA=${LOCKN_SETUP_HEARTMULA:-1} bash "$here/scripts/setup.sh")
cd "$here"
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)   # nproc obeys OMP_NUM_THREADS
export LOCKN_TEST_THREADS=${LOCKN_TEST_THREADS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$LOCKN_TEST_THREADS} MKL_NUM_THREADS=${MKL_NUM_THREADS:-$LOCKN_TEST_THREADS}
workers=${LOCKN_TEST_WORKERS:-$(( cpus > 4 ? 4 : cpus ))}
# the tiny models once, before the workers start (each would otherwise make its own copy at the same time)
"$PY" -c "import sys; from lockn_testing import tiny; tiny.ensure(python=sys.executable)"
if [ "$workers" -gt 1 ]; then
  exec "$PY" -m pytest -q -rfEs --durations=15 -n "$workers" --dist loadfile "$@"
fi
exec "$PY" -m pytest -q -rfEs --durations=15 "$@"
