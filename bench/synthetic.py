"""Synthetic models large enough that loading dominates (about 1 GB each), with the real architectures
and the real file names, next to the tiny text encoders and VAEs: a models folder for the benchmarks.

    python -m bench.synthetic [--out bench/out/models] [--scale 1.0]

Reuses the tiny-model factory's builders at bigger sizes. Generated once (a COMPLETE stamp),
written with temporary names renamed into place.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# name -> (builder, size kwargs, format); about 1 GB each at scale 1
# Most weights sit in the MLPs, which see only the few image/video/audio tokens of the benchmark
# graphs, so that loading, not compute, dominates a CPU run (the 512-token text context of Wan goes
# through the attention weights only).
BIG = {
    "flux2-dev-Q8_0.gguf": ("flux2", dict(hidden=2048, depth=5, single=8), "gguf"),           # GGUF load benchmark
    "flux2_dev_fp8mixed.safetensors": ("flux2", dict(hidden=1024, depth=12, single=40), "safetensors"),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": ("wan22", dict(dim=1024, ffn=32768, layers=13), "safetensors"),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": ("wan22", dict(dim=1024, ffn=32768, layers=13), "safetensors"),
    "acestep_v1.5_turbo.safetensors": ("ace15", dict(hidden=1024, intermediate=16384, layers=16), "safetensors"),
}
_SPEC = __import__("hashlib").sha256(repr(sorted(BIG.items())).encode()).hexdigest()[:10]
DEFAULT_OUT = HERE / "out" / f"models-{_SPEC}"       # a new folder whenever the sizes change


def ensure(out: Path = DEFAULT_OUT, scale: float = 1.0) -> Path:
    """The benchmark models folder (tiny files linked in, big files generated once)."""
    stamp = out / "COMPLETE"
    if stamp.is_file() and stamp.read_text().strip() == f"scale={scale}":
        return out
    import subprocess
    cmd = [sys.executable, "-m", "bench.synthetic", "--out", str(out), "--scale", str(scale), "--generate"]
    subprocess.run(cmd, cwd=str(REPO), check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    return out


def _generate(out: Path, scale: float):
    import torch
    torch.set_num_threads(os.cpu_count() or 2)
    from lockn_testing import tiny
    from lockn_testing.comfy_boot import boot
    boot(argv=("--cpu",))
    import lockn_testing.comfy_patches  # noqa: F401
    from lockn_testing.gguf_writer import write_gguf
    from lockn_testing.tiny import ace15, flux2, wan22
    from lockn_testing.tiny.common import save_safetensors, with_marker

    tiny_root = tiny.ensure()
    for folder in os.listdir(tiny_root):
        if not (tiny_root / folder).is_dir():
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for f in os.listdir(tiny_root / folder):
            link = out / folder / f
            if f not in BIG and not link.exists():
                link.symlink_to(tiny_root / folder / f)
    for i, (name, (fam, dims, fmt)) in enumerate(BIG.items()):
        path = out / "diffusion_models" / name
        if path.exists():
            continue
        t0 = time.time()
        dims = {k: (int(v * scale) // 128 * 128 if k in ("hidden", "dim", "ffn", "intermediate") else v) for k, v in dims.items()}
        if fam == "flux2":
            sd, linear = flux2.make_dit(100 + i, **dims)
            if fmt == "gguf":
                write_gguf(str(path), {k: v.float() for k, v in sd.items()}, arch="flux", ftype="Q8_0", quantizable=linear)
            else:
                save_safetensors(with_marker(sd, "flux2", "diffusion_model"), str(path))
        elif fam == "wan22":
            sd, linear = wan22.make_expert(100 + i, **dims)
            save_safetensors(with_marker(sd, "wan22", "high_noise" if "high" in name else "low_noise"), str(path))
        else:
            sd, linear, patch = ace15.make_dit(100 + i, **dims)
            save_safetensors(with_marker(sd, "ace15", "diffusion_model", patch), str(path))
        del sd
        print(f"{name}: {path.stat().st_size / 1e9:.2f} GB in {time.time() - t0:.1f}s", flush=True)
    (out / "COMPLETE").write_text(f"scale={scale}\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.generate:
        _generate(Path(a.out), a.scale)
    else:
        print(ensure(Path(a.out), a.scale))
