#!/usr/bin/env bash
# Flux.2 on stable-diffusion.cpp's CUDA build against ComfyUI on the device machine (issue 27, the GPU part), as one
# command:
#   here, once:   bash bench/device/prepare.sh && bash bench/device/sdcpp.sh --prepare   (adds the binding's source,
#                 20.5 MB, as .device/sdist/: the box cannot reach PyPI)
#   device run:   command "bash bench/device/sdcpp.sh", carry [".device"], timeout_s 590
# There it builds the binding with CUDA for the card (nvcc 13, CMake, ninja and scikit-build-core are in the box's
# image; CMAKE_CUDA_ARCHITECTURES=90, H100/H200 only, keeps the build short), installs it into /tmp/sdcpp-site (the
# worker finds it through PYTHONPATH), writes the full-size random-weight Flux.2 klein files (lockn_testing.fullsize),
# and runs python -m bench.bench_sdcpp --gpu: ComfyUI and sd.cpp on the same files at 512 and 1024, the same steps,
# in one server. Results in $OUT: sdcpp_gpu.json, build.log, bench.log and the pictures.
# Dry run here (DRY=1 bash bench/device/sdcpp.sh): no CUDA build (the CPU binding installed by the set-up), the same
# bench on the files in $DIR at 64x64, 2 steps, on the CPU.
set -u
cd "$(dirname "$0")/../.."
VERSION=0.4.7
if [ "${1:-}" = --prepare ]; then
  mkdir -p .device/sdist
  python3 -m pip download -q --no-deps --no-binary :all: -d .device/sdist "stable-diffusion-cpp-python==$VERSION"
  ls -la .device/sdist; exit 0
fi
OUT=${OUT:-bench/out/device}; mkdir -p "$OUT"
DIR=${DIR:-/var/tmp/lockn-sdcpp}
t0=$(date +%s); step() { echo "== $* ($(( $(date +%s) - t0 ))s)"; }
if [ "${DRY:-0}" = 1 ]; then
  step "dry run (CPU binding, $DIR)"
  PY=${COMFYUI_PATH:-$HOME/comfy33/ComfyUI}/.venv/bin/python
  [ -f "$DIR/diffusion_models/flux-2-klein-4b.safetensors" ] || $PY -m lockn_testing.fullsize --preset flux2-klein-4b --out "$DIR"
  $PY -m bench.bench_sdcpp --models "$DIR" --sizes 64 --steps 2 --threads 2 --out "$OUT/sdcpp_dry.json" 2>&1 | tee "$OUT/bench.log"
  step "dry run rc=${PIPESTATUS[0]}"; exit 0
fi
ls .device/sdist/stable_diffusion_cpp_python-$VERSION.tar.gz >/dev/null || { echo "no .device/sdist: run bash bench/device/sdcpp.sh --prepare here first"; exit 1; }
step pip
python3 -m pip install -q --no-index --find-links .device/wheels transformers==5.14.1 tokenizers==0.22.2 comfy-aimdo==0.3.0 \
  torchsde trampoline simpleeval blake3 gguf alembic sqlalchemy mako pydantic pydantic-settings python-dotenv \
  websocket-client > "$OUT/pip.log" 2>&1; echo "pip rc=$?"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nvcc --version | tail -1
step "build sd.cpp with CUDA"
CMAKE_ARGS="-DSD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90" CMAKE_BUILD_PARALLEL_LEVEL=16 \
  python3 -m pip install --no-index --no-deps --no-build-isolation --target /tmp/sdcpp-site \
  .device/sdist/stable_diffusion_cpp_python-$VERSION.tar.gz > "$OUT/build.log" 2>&1; echo "build rc=$?"; tail -3 "$OUT/build.log"
mkdir -p .device/ComfyUI/.venv/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > .device/ComfyUI/.venv/bin/python \
  && chmod +x .device/ComfyUI/.venv/bin/python
mkdir -p /tmp/fe && echo '<html></html>' > /tmp/fe/index.html
export COMFYUI_PATH=$PWD/.device/ComfyUI PYTHONPATH=/tmp/sdcpp-site:$PWD/bench/device/stubs:$PWD
export LOCKN_COMFY_EXTRA_ARGS="--front-end-root /tmp/fe" PYTHONUNBUFFERED=1 LOCKN_COMFY_GPU=1
python3 -c "import stable_diffusion_cpp" || { echo "the CUDA binding does not import"; exit 1; }
step "write the full-size klein files"
python3 -m lockn_testing.fullsize --preset flux2-klein-4b --out "$DIR" --workers 12 > "$OUT/write.log" 2>&1; echo "write rc=$?"
step bench
python3 -m bench.bench_sdcpp --gpu --models "$DIR" --sizes 512,1024 --steps 4 --out "$OUT/sdcpp_gpu.json" 2>&1 | tee "$OUT/bench.log"
step "bench rc=${PIPESTATUS[0]}"
cp bench/out/sdcpp/*.png "$OUT/" 2>/dev/null || true
