#!/usr/bin/env bash
# The step cache at REAL shapes on the device machine (issue 23, the GPU part), as one command:
#   device run: command "bash bench/device/step_cache.sh", carry [".device"], timeout_s 570
# after `bash bench/device/prepare.sh` here (the .device payload, as for real_shapes.sh). Writes the full-size
# random-weight files of the non-turbo presets (lockn_testing.fullsize: Flux.2-dev Q4_K_M, Wan2.2 I2V A14B
# Q4_K_M, LTX-2.3 22B distilled fp8), then python -m bench.bench_step_cache --real-shapes --gpu on them: per
# stage the cache off and at 0.1 / 0.2 / 0.3, side by side (Flux.2-dev 1024 x 1024 28 steps, Wan2.2 81 x 640 x
# 640 20 steps, LTX-2 defaults). Random weights: the time per step and per skipped step are real, the skip
# counts and the quality figures are not a trained model's. Extra arguments go to bench.bench_step_cache
# (e.g. --stages wan22 --reps 1). Results in $OUT: step_cache.json, step_cache.log.
# Dry run of the same code path here: python -m bench.bench_step_cache --real-shapes --dry-run-cpu
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/out/device}; mkdir -p "$OUT"
DIR=${DIR:-/var/tmp/lockn-step-cache}
python3 -m pip install -q --no-index --find-links .device/wheels transformers==5.14.1 tokenizers==0.22.2 comfy-aimdo==0.3.0 \
  torchsde trampoline simpleeval blake3 gguf alembic sqlalchemy mako pydantic pydantic-settings python-dotenv \
  websocket-client kornia > "$OUT/pip.log" 2>&1; echo "pip rc=$?"
mkdir -p .device/ComfyUI/.venv/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > .device/ComfyUI/.venv/bin/python \
  && chmod +x .device/ComfyUI/.venv/bin/python
mkdir -p /tmp/fe && echo '<html></html>' > /tmp/fe/index.html
export COMFYUI_PATH=$PWD/.device/ComfyUI PYTHONPATH=$PWD/bench/device/stubs:$PWD
export LOCKN_COMFY_EXTRA_ARGS="--front-end-root /tmp/fe" PYTHONUNBUFFERED=1 LOCKN_COMFY_GPU=1
for preset in flux2-dev-q4_k_m wan22-i2v-a14b-q4_k_m ltx23-22b-distilled-fp8; do
  python3 -m lockn_testing.fullsize --preset "$preset" --out "$DIR" --workers 12 || echo "write $preset failed"
done
python3 -m bench.bench_step_cache --real-shapes --gpu --models "$DIR" --reps 1 --out "$OUT/step_cache.json" "$@" 2>&1 \
  | tee "$OUT/step_cache.log"
echo "step_cache rc=$?"
