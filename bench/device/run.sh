#!/usr/bin/env bash
# LockN Gen's GPU benchmarks on a bare CUDA box, as one short script (device time is scarce):
#   [REPS=2] [COLD=1] bash bench/device/run.sh [mode_switch|gpu_check|gguf_load|all]      (default: mode_switch)
# A fresh box spends about 2 minutes before the benchmark (pip, tiny set, synthetic models); each rep
# of the mode switch (default, then LockN) about 1 minute on an H100.
# Needs the payload from bench/device/prepare.sh (carried as .device). Results land in $OUT.
# The box has no PyAV: a stand-in lets ComfyUI start, and the graphs end in LockN's report node.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/out/device}; mkdir -p "$OUT"
what=${1:-mode_switch}
t0=$(date +%s); step() { echo "== $* ($(( $(date +%s) - t0 ))s)"; }
step pip
python3 -m pip install -q --no-index --find-links .device/wheels transformers==5.14.1 tokenizers==0.22.2 comfy-aimdo==0.3.0 \
  torchsde trampoline simpleeval blake3 gguf alembic sqlalchemy mako pydantic pydantic-settings python-dotenv \
  websocket-client > "$OUT/pip.log" 2>&1; echo "pip rc=$?"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# The harness starts ComfyUI with $COMFYUI_PATH/.venv/bin/python: there, the box's own Python (a wrapper,
# not a link, so that the box's venv keeps its site-packages).
mkdir -p .device/ComfyUI/.venv/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > .device/ComfyUI/.venv/bin/python \
  && chmod +x .device/ComfyUI/.venv/bin/python
mkdir -p /tmp/fe && echo '<html></html>' > /tmp/fe/index.html
export COMFYUI_PATH=$PWD/.device/ComfyUI PYTHONPATH=$PWD/bench/device/stubs:$PWD LOCKN_TINY_CACHE=/tmp/tiny
export LOCKN_COMFY_EXTRA_ARGS="--front-end-root /tmp/fe" LOCKN_BENCH_SINK=report PYTHONUNBUFFERED=1
step tiny
python3 -m lockn_testing.tiny > "$OUT/tiny.log" 2>&1; echo "tiny rc=$?"; tail -1 "$OUT/tiny.log"
if [ "$what" = gpu_check ] || [ "$what" = all ]; then
  step gpu_check
  timeout 200 python3 -m bench.gpu_check --out "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1; echo "gpu_check rc=$?"
  grep -E "GPU CHECK|\"error\"" "$OUT/gpu_check.log" | head -5
fi
if [ "$what" = gguf_load ] || [ "$what" = all ]; then
  step gguf_load
  timeout 150 python3 -m bench.bench_gguf_load --reps 2 --gpu --out "$OUT/gguf_load_gpu.json" > "$OUT/gguf.log" 2>&1; echo "gguf rc=$?"
  tail -12 "$OUT/gguf.log"
fi
if [ "$what" = mode_switch ] || [ "$what" = all ]; then
  step synthetic
  timeout 200 python3 -m bench.synthetic --spec stacks > "$OUT/synthetic.log" 2>&1; echo "synthetic rc=$?"; grep GB "$OUT/synthetic.log"
  step mode_switch
  timeout 330 python3 -m bench.bench_mode_switch --reps ${REPS:-2} --gpu --spec stacks ${COLD:+--cold} --out "$OUT/mode_switch_gpu_stacks${COLD:+_cold}.json" \
    > "$OUT/mode_switch.log" 2>&1; echo "mode rc=$?"
  tail -26 "$OUT/mode_switch.log"
fi
step end
