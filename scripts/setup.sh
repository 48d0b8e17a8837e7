#!/usr/bin/env bash
# LockN Gen set-up: find (or install) ComfyUI, make its Python environment have what the pack and its
# tests need, make sure ComfyUI-GGUF is there. Idempotent: a second run checks and does nothing.
# Supported ComfyUI versions: 0.20.1 and 0.33.0; any install at COMFYUI_PATH is used as it is.
#
#   COMFYUI_PATH   the ComfyUI folder (default ~/comfy/ComfyUI, comfy-cli's default workspace)
#   LOCKN_COMFYUI_VERSION   which version to install when COMFYUI_PATH has none: 0.20.1 (default) or 0.33.0
#   LOCKN_SETUP_TEST=1   also install the test tools (pytest, playwright, Debian chromium)
#   LOCKN_SETUP_SDCPP=1  also build and install stable-diffusion.cpp's Python binding (optional second image engine;
#                        CPU unless CMAKE_ARGS says otherwise, e.g. CMAKE_ARGS="-DSD_CUDA=ON"); the wheel is kept in
#                        ~/.cache/lockn-gen/wheels, so a second set-up on the same machine does not rebuild it
#   LOCKN_SETUP_HEARTMULA=1  also make HeartMuLa's own Python environment (heartlib; see section 7)
#   LOCKN_SETUP_DISTRIBUTED=1  also bring ComfyUI-Distributed (robertvoy, v1.4.4 a91f9fb0: several machines, `lockn-gen
#                        run --master`) into custom_nodes when it is missing (git clone; LOCKN_DISTRIBUTED_REPO overrides
#                        where from, e.g. a local mirror); pure Python, no extra packages
#
# It never changes the user's ComfyUI beyond: creating $COMFYUI_PATH/.venv if missing, installing
# missing packages (or transformers<5.15, which the Flux.2 tokenizer of ComfyUI 0.20.1 needs) into it, and
# adding ComfyUI-GGUF (and, when asked, ComfyUI-Distributed) to custom_nodes when it is missing.
set -euo pipefail

COMFYUI_PATH=${COMFYUI_PATH:-$HOME/comfy/ComfyUI}
COMFYUI_REPO=https://github.com/comfyanonymous/ComfyUI.git
COMFYUI_VERSION=${LOCKN_COMFYUI_VERSION:-0.20.1}
case "$COMFYUI_VERSION" in
  0.20.1) COMFYUI_COMMIT=aa9d2fc713664e9ffe37763f4c9240c0c3eda667 ;;   # 2026-05-10
  0.33.0) COMFYUI_COMMIT=783545f689a0af730065994b46b382ae24844c99 ;;   # 2026-08-22
  *) printf '[lockn-gen setup] ERROR: LOCKN_COMFYUI_VERSION=%s; supported: 0.20.1, 0.33.0\n' "$COMFYUI_VERSION" >&2; exit 2 ;;
esac
GGUF_REPO=https://github.com/city96/ComfyUI-GGUF.git
GGUF_COMMIT=6ea2651e7df66d7585f6ffee804b20e92fb38b8a             # 2026-01-12 (LTX-2 metadata, Gemma 3)
PACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf '[lockn-gen setup] %s\n' "$*" >&2; }
die() { printf '\n[lockn-gen setup] ERROR: %s\n\n' "$*" >&2; exit 2; }

# ---- 1. ComfyUI --------------------------------------------------------------------------------------
if [ ! -f "$COMFYUI_PATH/main.py" ]; then
  say "no ComfyUI at $COMFYUI_PATH; installing ComfyUI $COMFYUI_VERSION the way users do (git clone + checkout)"
  if ! { git clone -q "$COMFYUI_REPO" "$COMFYUI_PATH" && git -C "$COMFYUI_PATH" checkout -q "$COMFYUI_COMMIT"; } 2>/dev/null; then
    rm -rf "$COMFYUI_PATH" 2>/dev/null || true
    die "ComfyUI is missing and could not be installed (no network?).
  Looked for: $COMFYUI_PATH/main.py
  Provide it in one of these ways, then run this again:
    - point COMFYUI_PATH at an existing ComfyUI 0.20.1 or 0.33.0 folder (export COMFYUI_PATH=/path/to/ComfyUI), or
    - git clone $COMFYUI_REPO $COMFYUI_PATH && git -C $COMFYUI_PATH checkout $COMFYUI_COMMIT, or
    - comfy --workspace=$COMFYUI_PATH install   (comfy-cli)
  Its Python environment is expected at \$COMFYUI_PATH/.venv (created here if missing)."
  fi
fi
[ -f "$COMFYUI_PATH/requirements.txt" ] || die "$COMFYUI_PATH has main.py but no requirements.txt: not a ComfyUI folder?"
found=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMFYUI_PATH/comfyui_version.py" 2>/dev/null || true)
case "$found" in
  0.20.1|0.33.0) ;;
  *) say "note: ComfyUI ${found:-(unknown version)} at $COMFYUI_PATH; LockN Gen is tested with 0.20.1 and 0.33.0 (using it as it is)" ;;
esac

# ---- 2. ComfyUI-GGUF ---------------------------------------------------------------------------------
GGUF_DIR=$COMFYUI_PATH/custom_nodes/ComfyUI-GGUF
if [ ! -f "$GGUF_DIR/nodes.py" ]; then
  say "ComfyUI-GGUF missing in $COMFYUI_PATH/custom_nodes; installing city96/ComfyUI-GGUF"
  if ! { git clone -q "$GGUF_REPO" "$GGUF_DIR" && git -C "$GGUF_DIR" checkout -q "$GGUF_COMMIT"; } 2>/dev/null; then
    rm -rf "$GGUF_DIR" 2>/dev/null || true
    die "ComfyUI-GGUF is missing and could not be installed (no network?).
  Looked for: $GGUF_DIR/nodes.py
  Provide it: git clone $GGUF_REPO $GGUF_DIR && git -C $GGUF_DIR checkout $GGUF_COMMIT
  (city96's main of 2026-01-12 or later: it passes GGUF metadata on, which LTX-2 needs)."
  fi
fi
if ! grep -q 'extra.get("metadata"' "$GGUF_DIR/nodes.py" || ! grep -qi 'gemma3' "$GGUF_DIR/loader.py"; then
  die "ComfyUI-GGUF in $GGUF_DIR is older than 2026-01-12 (no GGUF metadata pass-through / Gemma 3).
  Update it: git -C $GGUF_DIR pull   (or check out $GGUF_COMMIT)."
fi

# ---- 3. Python environment ---------------------------------------------------------------------------
PY=$COMFYUI_PATH/.venv/bin/python
if [ ! -x "$PY" ]; then
  say "creating $COMFYUI_PATH/.venv"
  python3 -m venv "$COMFYUI_PATH/.venv" || die "could not create a virtual environment with python3 -m venv"
fi
PIP=("$PY" -m pip install --disable-pip-version-check -q)

stamp=$COMFYUI_PATH/.venv/.lockn-gen-setup
want=$(cat "$COMFYUI_PATH/requirements.txt" "$GGUF_DIR/requirements.txt" "$PACK/requirements.txt" "$PACK/scripts/setup.sh" \
       $([ "${LOCKN_SETUP_TEST:-0}" = 1 ] && echo "$PACK/requirements-test.txt") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "import torch, torchaudio, torchvision, comfy_aimdo, gguf, huggingface_hub, websocket" 2>/dev/null; then
  say "Python environment up to date ($PY)"
else
  if ! "$PY" -c "import torch" 2>/dev/null; then
    say "installing torch 2.9.1 / torchvision 0.24.1 / torchaudio 2.9 (the tested versions; several GB)"
    "${PIP[@]}" torch==2.9.1 torchvision==0.24.1 || die "pip could not install torch 2.9.1 / torchvision 0.24.1"
    "${PIP[@]}" torch==2.9.1 'torchaudio==2.9.*' || die "pip could not install torchaudio 2.9"
  else
    tv=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
    [ "$tv" = "2.9.1" ] || say "note: torch $tv found; LockN Gen is tested with 2.9.1 (leaving yours in place)"
    "$PY" -c "import torchaudio" 2>/dev/null || "${PIP[@]}" "torch==$tv" "torchaudio==${tv%.*}.*" || die "pip could not install a torchaudio matching torch $tv"
  fi
  say "installing ComfyUI's, ComfyUI-GGUF's and LockN Gen's requirements"
  "${PIP[@]}" -r "$COMFYUI_PATH/requirements.txt" -r "$GGUF_DIR/requirements.txt" -r "$PACK/requirements.txt" 'transformers<5.15' \
    || die "pip could not install the requirements (see the messages above)"
  if [ "${LOCKN_SETUP_TEST:-0}" = 1 ]; then
    "${PIP[@]}" -r "$PACK/requirements-test.txt" || die "pip could not install the test requirements"
  fi
  echo "$want" > "$stamp"
fi
tf=$("$PY" -c "import transformers; print(transformers.__version__)")
"$PY" - "$tf" <<'EOF' || { say "transformers $tf breaks the Flux.2 tokenizer of ComfyUI 0.20.1; installing transformers<5.15"; "${PIP[@]}" 'transformers<5.15'; }
import sys
major, minor = (int(x) for x in sys.argv[1].split(".")[:2])
sys.exit(0 if (major, minor) < (5, 15) else 1)
EOF

# ---- 4. test tools (browser) --------------------------------------------------------------------------
if [ "${LOCKN_SETUP_TEST:-0}" = 1 ]; then
  "$PY" -c "import pytest, playwright, xdist" 2>/dev/null || "${PIP[@]}" -r "$PACK/requirements-test.txt"
  if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      say "installing Debian chromium for the editor tests"
      (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
        || die "could not install chromium (apt-get install chromium); the editor tests need /usr/bin/chromium"
    else
      die "the editor tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium"
    fi
  fi
fi
# ---- 5. stable-diffusion.cpp (optional) ------------------------------------------------------------------
# PyPI has only its source (it vendors stable-diffusion.cpp and ggml and builds them with CMake, for this CPU:
# -march=native), so the wheel is built once per machine, Python and CMAKE_ARGS and kept.
SDCPP_VERSION=0.4.7
if [ "${LOCKN_SETUP_SDCPP:-0}" = 1 ]; then
  if "$PY" -c "import importlib.metadata as m, stable_diffusion_cpp; assert m.version('stable-diffusion-cpp-python') == '$SDCPP_VERSION'" 2>/dev/null; then
    say "stable-diffusion.cpp binding $SDCPP_VERSION present"
  else
    key=$( { echo "$SDCPP_VERSION|${CMAKE_ARGS:-}"; "$PY" -c 'import sys; print(sys.version)'; uname -m; grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || sysctl -n machdep.cpu.features 2>/dev/null || true; } | sha256sum | cut -c1-16)
    cache=${LOCKN_WHEEL_CACHE:-$HOME/.cache/lockn-gen/wheels}/sdcpp-$SDCPP_VERSION-$key
    whl=$(ls "$cache"/stable_diffusion_cpp_python-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$whl" ]; then
      command -v cmake >/dev/null && { command -v c++ >/dev/null || command -v g++ >/dev/null; } \
        || die "building stable-diffusion.cpp needs CMake and a C++ compiler: sudo apt-get install cmake g++ (or xcode-select --install)"
      say "building stable-diffusion.cpp's binding $SDCPP_VERSION for this machine (CMAKE_ARGS='${CMAKE_ARGS:-}': $([ -n "${CMAKE_ARGS:-}" ] && echo as given || echo CPU)); a few minutes, once"
      tmp=$(mktemp -d)
      CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)} \
        "$PY" -m pip wheel --disable-pip-version-check -q --no-deps --no-binary stable-diffusion-cpp-python -w "$tmp" \
        "stable-diffusion-cpp-python==$SDCPP_VERSION" >&2 \
        || { rm -rf "$tmp"; die "pip could not build stable-diffusion-cpp-python $SDCPP_VERSION (see the messages above; CMAKE_ARGS='${CMAKE_ARGS:-}')"; }
      built=$(ls "$tmp"/stable_diffusion_cpp_python-*.whl)
      mkdir -p "$cache"
      cp "$built" "$cache/.$(basename "$built").partial" && mv "$cache/.$(basename "$built").partial" "$cache/$(basename "$built")"
      rm -rf "$tmp"
      whl=$cache/$(basename "$built")
    fi
    say "installing stable-diffusion.cpp's binding from $whl"
    "${PIP[@]}" --no-deps "$whl" || die "pip could not install $whl"
    "$PY" -c "import stable_diffusion_cpp" || die "stable_diffusion_cpp does not import after installing $whl"
  fi
fi
# ---- 6. ComfyUI-Distributed (optional) -------------------------------------------------------------------
DIST_REPO=${LOCKN_DISTRIBUTED_REPO:-https://github.com/robertvoy/ComfyUI-Distributed}
DIST_COMMIT=a91f9fb081eb5fc27db429a7c3f35d2ef7ce4a50                 # v1.4.4, 2026-04-08
if [ "${LOCKN_SETUP_DISTRIBUTED:-0}" = 1 ]; then
  DIST_DIR=$COMFYUI_PATH/custom_nodes/ComfyUI-Distributed
  if [ -f "$DIST_DIR/distributed.py" ]; then
    say "ComfyUI-Distributed present ($DIST_DIR)"
  else
    say "ComfyUI-Distributed missing in $COMFYUI_PATH/custom_nodes; installing robertvoy/ComfyUI-Distributed ${DIST_COMMIT:0:12}"
    if ! { git clone -q "$DIST_REPO" "$DIST_DIR" && git -C "$DIST_DIR" checkout -q "$DIST_COMMIT"; } 2>/dev/null; then
      rm -rf "$DIST_DIR" 2>/dev/null || true
      die "ComfyUI-Distributed is missing and could not be installed from $DIST_REPO (no network?).
  Looked for: $DIST_DIR/distributed.py
  Provide it: git clone https://github.com/robertvoy/ComfyUI-Distributed $DIST_DIR && git -C $DIST_DIR checkout $DIST_COMMIT
  (or LOCKN_DISTRIBUTED_REPO=<a local clone> and run this again)."
    fi
  fi
fi
# ---- 7. HeartMuLa's environment (optional) ---------------------------------------------------------------
# heartlib is not on PyPI and pins numpy 2.0.2 / transformers 4.57.0, which would move ComfyUI's own packages; so it
# gets a Python of its own (one for every ComfyUI on the machine), driven by the HeartMuLa node as a worker process.
# torch is pinned to ComfyUI's tested 2.9.1 trio (inside heartlib's range) so pip's cache serves it.
HEARTLIB_COMMIT=3981c52f2cab175c6cef67e4061e92988db1bdf4            # HeartMuLa/heartlib, 2026-03-05
HM_VENV=${LOCKN_HEARTMULA_VENV:-$HOME/.local/share/lockn-gen/heartmula-venv}
HM_SOURCE=${LOCKN_HEARTLIB_SOURCE:-git+https://github.com/HeartMuLa/heartlib@$HEARTLIB_COMMIT}
if [ "${LOCKN_SETUP_HEARTMULA:-0}" = 1 ]; then
  hm_stamp=$HM_VENV/.lockn-gen-heartlib
  if [ -f "$hm_stamp" ] && [ "$(cat "$hm_stamp")" = "$HEARTLIB_COMMIT" ] && "$HM_VENV/bin/python" -c "import heartlib, torchtune" 2>/dev/null; then
    say "HeartMuLa environment present ($HM_VENV)"
  else
    say "making HeartMuLa's own Python environment at $HM_VENV (heartlib ${HEARTLIB_COMMIT:0:8} from $HM_SOURCE; several GB, once)"
    [ -x "$HM_VENV/bin/python" ] || python3 -m venv "$HM_VENV" || die "could not create $HM_VENV with python3 -m venv"
    HPIP=("$HM_VENV/bin/python" -m pip install --disable-pip-version-check -q)
    "${HPIP[@]}" torch==2.9.1 torchvision==0.24.1 'torchaudio==2.9.*' || die "pip could not install torch 2.9.1 into $HM_VENV"
    "${HPIP[@]}" "$HM_SOURCE" torch==2.9.1 torchvision==0.24.1 'torchaudio==2.9.*' \
      || die "pip could not install heartlib from $HM_SOURCE into $HM_VENV (no network? LOCKN_HEARTLIB_SOURCE=<a local copy of
  github.com/HeartMuLa/heartlib at $HEARTLIB_COMMIT> and run this again)"
    "$HM_VENV/bin/python" -c "import heartlib, torchtune" || die "heartlib does not import in $HM_VENV after installing it"
    echo "$HEARTLIB_COMMIT" > "$hm_stamp"
  fi
fi
echo "$PY"
