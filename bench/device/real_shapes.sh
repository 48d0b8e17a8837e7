#!/usr/bin/env bash
# The quality chain at REAL shapes on the device machine (issue 15, part 2), as one command:
#   device run: command "bash bench/device/real_shapes.sh", carry [".device"], timeout_s 570
# after `bash bench/device/prepare.sh` here (the .device payload: ComfyUI's code with ComfyUI-GGUF, and the
# wheels the box lacks). At most 8 minutes (T_ALL=480 s) from this script's start: setup (pip, checks)
# about 30-40 s, then python -m bench.gpu_real_shapes with the rest as --budget-s (disk check + plan,
# writing the 69.07 GB of full-size files within 170 s, the GPU hold + bandwidth, the three ways; a way
# that no longer fits the budget is skipped and said so in the JSON). Extra arguments go to
# bench.gpu_real_shapes, e.g. `--ways lockn,default`, or `--fp8-compare --ways default --cycle image`
# (Flux.2-dev fp8mixed against Q4_K_M per step: a call of its own, it writes 35.5 GB more).
# Results in $OUT: gpu_real_shapes.json, real_shapes.log, pip.log.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/out/device}; mkdir -p "$OUT"
T_ALL=${T_ALL:-480}
t0=$(date +%s); step() { echo "== $* ($(( $(date +%s) - t0 ))s)"; }
step pip
python3 -m pip install -q --no-index --find-links .device/wheels transformers==5.14.1 tokenizers==0.22.2 comfy-aimdo==0.3.0 \
  torchsde trampoline simpleeval blake3 gguf alembic sqlalchemy mako pydantic pydantic-settings python-dotenv \
  websocket-client > "$OUT/pip.log" 2>&1; echo "pip rc=$?"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader
df -h / /var/tmp /dev/shm 2>/dev/null; free -g | head -2; echo "cores $(nproc)"
# ComfyUI is started as $COMFYUI_PATH/.venv/bin/python: there, the box's own Python (as run.sh does).
mkdir -p .device/ComfyUI/.venv/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > .device/ComfyUI/.venv/bin/python \
  && chmod +x .device/ComfyUI/.venv/bin/python
mkdir -p /tmp/fe && echo '<html></html>' > /tmp/fe/index.html
export COMFYUI_PATH=$PWD/.device/ComfyUI PYTHONPATH=$PWD/bench/device/stubs:$PWD
export LOCKN_COMFY_EXTRA_ARGS="--front-end-root /tmp/fe" LOCKN_BENCH_SINK=report PYTHONUNBUFFERED=1
step real_shapes
left=$(( T_ALL - ($(date +%s) - t0) - 10 ))
set -o pipefail
timeout -s TERM $(( left + 40 )) python3 -m bench.gpu_real_shapes --budget-s "$left" --out "$OUT/gpu_real_shapes.json" "$@" 2>&1 \
  | tee "$OUT/real_shapes.log"
echo "real_shapes rc=$?"
step end
