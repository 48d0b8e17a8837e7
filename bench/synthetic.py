"""Synthetic models large enough that loading dominates, with the real architectures and the real file
names: a models folder for the benchmarks.

    python -m bench.synthetic [--spec stacks|dit] [--out DIR] [--scale 1.0]

Two specs:
- "stacks" (default): every model of the three stacks the mode-switch benchmark swaps is big, in about
  the proportions of the real files (../shared/MODELS.md: a text encoder is 35-100% of its diffusion
  model). The diffusion models are 1.8-2.0 GB; the text encoders keep their real widths and real
  vocabularies (Mistral 5120 x 131072, umt5 4096 x 256384, Qwen3 0.6B 1024 x 151669, the 1.7B LM
  2048 x 217204) with few, thin layers, so their size sits in the embedding tables, as a large part of
  it does in the real ones. The VAEs stay tiny (0.25-0.34 GB real, 1% of a stack).
- "dit": only the diffusion models are big (the spec of the first mode-switch runs), tiny text encoders.

Reuses the tiny-model factory's builders at bigger sizes; the rest is linked from the tiny set.
Generated once (a COMPLETE stamp), written with temporary names renamed into place; a new folder
whenever the spec changes.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Diffusion models: name -> (builder, size kwargs, format). Most weights sit in the MLPs, which see
# only the few image/video/audio tokens of the benchmark graphs, so that loading, not compute, dominates.
BIG = {
    "flux2-dev-Q8_0.gguf": ("flux2", dict(hidden=2048, depth=5, single=8), "gguf"),           # GGUF load benchmark
    "flux2_dev_fp8mixed.safetensors": ("flux2", dict(hidden=1024, depth=12, single=40), "safetensors"),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": ("wan22", dict(dim=1024, ffn=32768, layers=13), "safetensors"),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": ("wan22", dict(dim=1024, ffn=32768, layers=13), "safetensors"),
    "acestep_v1.5_turbo.safetensors": ("ace15", dict(hidden=1024, intermediate=16384, layers=16), "safetensors"),
}
# Text encoders of the "stacks" spec: real widths and vocabularies, thin layers.
FLUX2_TE = dict(hidden=5120, vocab=131072, intermediate=64)
WAN22_TE = dict(vocab=256384)
ACE15_TE = dict(te_hidden=1024, te_vocab=151669, lm_hidden=2048, lm_vocab=217204)
TEXT = {
    "mistral_3_small_flux2_fp8.safetensors": ("flux2", FLUX2_TE),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": ("wan22", WAN22_TE),
    "qwen_0.6b_ace15.safetensors": ("ace15", ACE15_TE),      # with qwen_1.7b_ace15.safetensors
}
SPECS = ("stacks", "dit")


def spec_items(spec: str) -> dict:
    return {"big": sorted(BIG.items()), "text": sorted(TEXT.items()) if spec == "stacks" else []}


def default_out(spec: str = "stacks") -> Path:
    """A folder per spec and per size table, so that a change of sizes never reuses old files."""
    h = hashlib.sha256(repr(spec_items(spec)).encode()).hexdigest()[:10]
    return HERE / "out" / f"models-{spec}-{h}"


def ensure(out: Path | None = None, scale: float = 1.0, spec: str = "stacks") -> Path:
    """The benchmark models folder (tiny files linked in, big files generated once)."""
    out = out or default_out(spec)
    stamp = out / "COMPLETE"
    if stamp.is_file() and stamp.read_text().strip() == f"scale={scale} spec={spec}":
        _link_tiny(out, spec)            # the tiny set may have been regenerated since (a new cache key)
        return out
    import subprocess
    cmd = [sys.executable, "-m", "bench.synthetic", "--out", str(out), "--scale", str(scale), "--spec", spec, "--generate"]
    subprocess.run(cmd, cwd=str(REPO), check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    return out


def _made_here(spec: str) -> set[str]:
    return set(BIG) | ({*TEXT, "qwen_1.7b_ace15.safetensors"} if spec == "stacks" else set())


def _link_tiny(out: Path, spec: str):
    """Link every file of the tiny set that this spec does not make big; links into an older tiny set
    (its cache key changes with the factory's code) are pointed at the current one."""
    from lockn_testing import tiny
    tiny_root = tiny.ensure()
    made = _made_here(spec)
    for folder in os.listdir(tiny_root):
        if not (tiny_root / folder).is_dir():
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for f in os.listdir(tiny_root / folder):
            link, target = out / folder / f, tiny_root / folder / f
            if f in made:
                continue
            if link.is_symlink() and os.readlink(link) != str(target):
                link.unlink()
            if not os.path.lexists(link):
                link.symlink_to(target)


def _generate(out: Path, scale: float, spec: str):
    import torch
    torch.set_num_threads(os.cpu_count() or 2)
    from lockn_testing.comfy_boot import boot
    boot(argv=("--cpu",))
    import lockn_testing.comfy_patches  # noqa: F401  (the builders construct ComfyUI's classes at the marker's sizes)
    from lockn_testing.gguf_writer import write_gguf
    from lockn_testing.tiny import ace15, flux2, wan22
    from lockn_testing.tiny.common import save_safetensors, with_marker

    stacks = spec == "stacks"
    _link_tiny(out, spec)
    te_hidden = FLUX2_TE["hidden"] if stacks else flux2.TE_HIDDEN
    text_hidden = ACE15_TE["te_hidden"] if stacks else ace15.QWEN06["fields"]["hidden_size"]
    for i, (name, (fam, dims, fmt)) in enumerate(BIG.items()):
        path = out / "diffusion_models" / name
        if path.exists():
            continue
        t0 = time.time()
        dims = {k: (int(v * scale) // 128 * 128 if k in ("hidden", "dim", "ffn", "intermediate") else v) for k, v in dims.items()}
        if fam == "flux2":
            sd, linear = flux2.make_dit(100 + i, te_hidden=te_hidden, **dims)
            if fmt == "gguf":
                write_gguf(str(path), {k: v.float() for k, v in sd.items()}, arch="flux", ftype="Q8_0", quantizable=linear)
            else:
                save_safetensors(with_marker(sd, "flux2", "diffusion_model"), str(path))
        elif fam == "wan22":
            sd, linear = wan22.make_expert(100 + i, **dims)
            save_safetensors(with_marker(sd, "wan22", "high_noise" if "high" in name else "low_noise"), str(path))
        else:
            sd, linear, patch = ace15.make_dit(100 + i, text_hidden=text_hidden, **dims)
            save_safetensors(with_marker(sd, "ace15", "diffusion_model", patch), str(path))
        del sd
        print(f"{name}: {path.stat().st_size / 1e9:.2f} GB in {time.time() - t0:.1f}s", flush=True)

    def save(name, sd, dtype):
        path = out / "text_encoders" / name
        save_safetensors(sd, str(path), dtype=dtype)
        print(f"{name}: {path.stat().st_size / 1e9:.2f} GB", flush=True)

    if stacks:      # same dtypes as the tiny set's files (bf16; the ACE-Step encoders fp32 for the CPU)
        if not (out / "text_encoders" / "mistral_3_small_flux2_fp8.safetensors").exists():
            save("mistral_3_small_flux2_fp8.safetensors", flux2.make_te(200, **FLUX2_TE), torch.bfloat16)
        if not (out / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors").exists():
            save("umt5_xxl_fp8_e4m3fn_scaled.safetensors", wan22.make_te(201, **WAN22_TE), torch.bfloat16)
        if not all((out / "text_encoders" / n).exists() for n in ("qwen_0.6b_ace15.safetensors", "qwen_1.7b_ace15.safetensors")):
            q06, lm = ace15.make_te(202, ace15.te_patch(**ACE15_TE))
            save("qwen_0.6b_ace15.safetensors", q06, torch.float32)
            del q06
            save("qwen_1.7b_ace15.safetensors", lm, torch.float32)
    (out / "COMPLETE").write_text(f"scale={scale} spec={spec}\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", choices=SPECS, default="stacks")
    ap.add_argument("--out", default=None, help="default: bench/out/models-<spec>-<hash of the sizes>")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out) if a.out else default_out(a.spec)
    if a.generate:
        _generate(out, a.scale, a.spec)
    else:
        print(ensure(out, a.scale, a.spec))
