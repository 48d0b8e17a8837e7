#!/usr/bin/env bash
# The main job: image -> video -> music chain on the tiny default models, one MP4 (after the set-up).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$(bash "$here/scripts/setup.sh")
exec "$PY" "$here/scripts/demo.py" "$@"
