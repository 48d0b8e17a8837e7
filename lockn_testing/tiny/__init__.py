"""Tiny random-weight models with the REAL architectures, named like the real files.

`ensure()` returns a models folder laid out like ComfyUI's (diffusion_models/, text_encoders/, vae/,
checkpoints/, latent_upscale_models/, loras/), generating it once per version of the factory and of
ComfyUI and reusing it afterwards. Generation runs in a child process (it imports ComfyUI) and writes
to a temporary folder renamed into place only when complete, so an interrupted run never leaves a
half set that looks finished.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = ("flux2", "wan22", "ltx2", "ace15",
            "encoders", "flux1", "sd35", "sdxl", "ltxv", "stable_audio", "wan21", "hunyuan15", "skyreels")   # issue 24
SEED = 0
_SOURCES = [*sorted(HERE.glob("*.py")), HERE.parent / "gguf_writer.py", HERE.parent / "kquants.py",
            *sorted((HERE.parent / "comfy_patches").glob("*.py")), HERE.parent / "comfy_boot.py"]


def cache_root() -> Path:
    return Path(os.environ.get("LOCKN_TINY_CACHE", Path.home() / ".cache" / "lockn-gen" / "tiny"))


def cache_key() -> str:
    """Changes when the factory's code, ComfyUI's version or torch's version changes."""
    h = hashlib.sha256()
    for p in _SOURCES:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    from lockn_testing.comfy_boot import COMFYUI_PATH
    for f in ("comfyui_version.py",):
        fp = Path(COMFYUI_PATH) / f
        h.update(fp.read_bytes() if fp.exists() else b"?")
    h.update(f"seed={SEED}".encode())
    return h.hexdigest()[:16]


def ensure(python: str = sys.executable, quiet: bool = False) -> Path:
    """The models folder of the tiny set, generated if missing. Returns `<cache>/<key>/models`."""
    final = cache_root() / cache_key()
    if (final / "COMPLETE").is_file():
        ensure_heartmula(final / "models", quiet=quiet)
        return final / "models"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{final.name}.partial-{os.getpid()}"
    t0 = time.time()
    cmd = [python, "-m", "lockn_testing.tiny", "--out", str(tmp / "models")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"tiny-model generation failed ({' '.join(cmd)}):\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}")
    (tmp / "COMPLETE").write_text(f"generated in {time.time() - t0:.1f}s\n")
    try:
        os.replace(tmp, final)
    except OSError:          # another process finished first: use its set
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(f"tiny models generated in {time.time() - t0:.1f}s: {final / 'models'}", file=sys.stderr)
    ensure_heartmula(final / "models", quiet=quiet)
    return final / "models"


def ensure_heartmula(models: Path, quiet: bool = False) -> bool:
    """The tiny HeartMuLa set at `models`/HeartMuLa, made once by HeartMuLa's own Python (heartlib is not in ComfyUI's:
    lockn_gen/heartmula.py) when that Python has heartlib; whether it is there. Made beside and renamed into place."""
    final = models / "HeartMuLa"
    if final.is_dir():
        return True
    from lockn_gen import heartmula
    python = heartmula.worker_python()
    if not heartmula.installed(python):
        if not quiet:
            print(f"tiny HeartMuLa set not made: {python} has no heartlib (LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh)",
                  file=sys.stderr)
        return False
    tmp = models.parent / f"heartmula.partial-{os.getpid()}"
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([python, "-m", "lockn_testing.tiny.heartmula", "--out", str(tmp)], env=env,
                         capture_output=True, text=True, cwd=str(HERE.parent.parent))
    if res.returncode != 0:
        raise RuntimeError(f"tiny HeartMuLa generation failed with {python}:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    try:
        os.replace(tmp / "HeartMuLa", final)
    except OSError:          # another process finished first
        pass
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(f"tiny HeartMuLa set generated in {time.time() - t0:.1f}s: {final}", file=sys.stderr)
    return True


def generate(out: str, families=FAMILIES, seed: int = SEED) -> dict:
    """Write every tiny file under `out` (call inside a process where ComfyUI is booted)."""
    import importlib
    written = {}
    for fam in families:
        mod = importlib.import_module(f"lockn_testing.tiny.{fam}")
        t = time.time()
        files = mod.build(out, seed=seed)
        written.update(files)
        print(f"{fam}: {len(files)} files in {time.time() - t:.1f}s", flush=True)
    if "flux2" in families:                   # the klein text encoder at stable-diffusion.cpp's fixed head layout
        from lockn_testing.tiny import sdcpp
        path = os.path.join(out, "text_encoders", sdcpp.KLEIN_TE_SDCPP)
        written[sdcpp.KLEIN_TE_SDCPP] = sdcpp.write_klein_te(path, seed=seed + 50)
        print("sdcpp: 1 file", flush=True)
    if set(FAMILIES) <= set(families):        # LoRAs are sized from the tiny base files just written
        from lockn_testing.tiny import loras
        files = loras.build(out, seed=seed)
        written.update(files)
        print(f"loras: {len(files)} files", flush=True)
    return written
