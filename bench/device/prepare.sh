#!/usr/bin/env bash
# Builds the payload that bench/device/run.sh needs on a bare GPU box (the device tool's H100/H200, no
# internet there): .device/ (gitignored) with a copy of the ComfyUI install's code (ComfyUI and
# ComfyUI-GGUF, no .venv, no models) and the wheels of the Python packages that box lacks.
# Run it here, then: device run, carry [".device"], command "bash bench/device/run.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${COMFYUI_PATH:-$HOME/comfy/ComfyUI}
[ -f "$C/main.py" ] || { echo "no ComfyUI at $C (set COMFYUI_PATH)"; exit 1; }
rm -rf .device/ComfyUI && mkdir -p .device/ComfyUI .device/wheels
tar -C "$C" --exclude=./.venv --exclude=./.git --exclude=./models --exclude=./output --exclude=./input \
    --exclude=./user --exclude=./temp --exclude='*/__pycache__' --exclude=./tests --exclude=./tests-unit \
    --exclude='./custom_nodes/*/.git' -cf - . | tar -C .device/ComfyUI -xf -
# The box has torch (CUDA) but not these (versions as tested here; Python 3.12 there).
PY=$C/.venv/bin/python
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 -d .device/wheels \
    transformers==5.14.1 tokenizers==0.22.2 comfy-aimdo==0.3.0 torchsde==0.2.6 trampoline==0.1.2 \
    simpleeval blake3 gguf alembic sqlalchemy mako pydantic pydantic-core pydantic-settings python-dotenv \
    typing-extensions typing-inspection annotated-types websocket-client
du -sh .device
