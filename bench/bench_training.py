"""What LockN's LoRA training costs on the installed ComfyUI: time per step, memory, the estimate it logs, the loss,
and the base files read while it trains (issue 25). Run on purpose, never in CI.

For each base of the tiny real-architecture set, in processes of their own (one per base and gradient-checkpointing
setting), this boots ComfyUI in-process on the tiny set, writes a dataset into its input folder (4 random pictures
with .txt captions: 64x64 for Flux.2, 32x32 for Wan2.2; 2 random 2-second 48 kHz stereo WAVs with captions for
ACE-Step 1.5), loads the base and encodes the dataset with one prompt (the LockN loader, Training Data (LockN) ->
Make Training Dataset, or Training Audio (LockN), into Save Latent), then trains with a second prompt whose loader
and dataset come from ComfyUI's cache: Train LoRA (LockN), rank 16, fp32 compute and adapters, AdamW, N steps.
Per run it records:

- seconds of the training prompt (the whole c.run: estimate, training, saving, hashing the tiny base) and steps per
  second from it, beside the trainer's own seconds from LockN's "saved ... in X s" log line;
- peak RSS: VmHWM of /proc/self/status, reset (/proc/self/clear_refs 5) just before the training prompt: the rise
  over the RSS before it and the absolute peak;
- the estimate the node logs ("LockN training ... adds X GB (...)", logger lockn_gen.training) and its bytes (the
  Cost lockn_gen.training.estimate returned inside the node);
- the loss from the saved file's metadata (lockn.losses): first, last, mean over the second half (no control run:
  random timesteps and noise make single steps noisy; tests/test_training_server.py compares against a control);
- the files read through comfy.utils.load_torch_file and ComfyUI-GGUF's gguf_sd_loader while loading and while
  training (the base's reads during training should be 0 on every ComfyUI LockN supports).

The trained LoRA files are deleted afterwards (only those this run wrote). Random weights say nothing of quality.

    COMFYUI_PATH=~/comfy33/ComfyUI ~/comfy33/ComfyUI/.venv/bin/python -m bench.bench_training [--steps 20]
        [--bases flux2-klein-4b,...] [--out bench/results/DATE_training_VERSION.json]
        [--models DIR --ckpt on --threads 2]       (full-size random-weight files written by lockn_testing.fullsize)
    ~/comfy33/ComfyUI/.venv/bin/python -m bench.bench_training --gpu-plan     (prints the real-shape plan, writes nothing)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# base -> (family, LockN preset, loader output of the trained model, dataset, learning rate)
BASES = {
    "flux2-klein-4b": ("flux2", "flux2-klein-4b", 0, "images64", 3e-3),
    "flux2-dev-q4_k_m": ("flux2", "flux2-dev-q4_k_m", 0, "images64", 3e-3),
    "wan22-ti2v-5b": ("wan22", "wan22-ti2v-5b", 0, "images32", 3e-3),
    "wan22-i2v-a14b-q4_k_m-high": ("wan22", "wan22-i2v-a14b-q4_k_m", 0, "images32", 3e-3),     # output 0: the high expert
    "ace15-turbo": ("ace15", "ace15-turbo", 0, "audio", 3e-2),
}
BASE_ROLES = ("diffusion_model", "high_noise")
CAPTIONS = "a .txt beside each file"
RANK = 16
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
DTYPE = "fp32"          # training and adapter dtype; bf16 (the node's default) for full-size files (--models)


def _status(key: str) -> int:
    """A VmXXX figure of /proc/self/status in bytes."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                    # resets VmHWM to the current RSS (Linux 4.0+)
        return True
    except OSError:
        return False


def write_dataset(folder: str, data: str) -> None:
    import numpy as np
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    if data == "audio":
        import wave
        for i in range(2):
            a = (rng.standard_normal((48000 * 2, 2)) * 3000).astype(np.int16)
            with wave.open(f"{folder}/clip{i}.wav", "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(48000)
                w.writeframes(a.tobytes())
            Path(f"{folder}/clip{i}.txt").write_text("lofi, lockn style")
        return
    from PIL import Image
    size = 64 if data == "images64" else 32
    for i in range(4):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(f"{folder}/pic{i}.png")
        Path(f"{folder}/pic{i}.txt").write_text("a lockn style picture")


def graphs_for(base: str, folder: str, lora_name: str, steps: int, ckpt: bool) -> tuple[dict, dict]:
    """(the prompt that loads and encodes, the prompt that trains): the same loader and dataset nodes, so the
    second takes them from ComfyUI's cache."""
    from lockn_testing import graphs
    family, preset, out, data, lr = BASES[base]
    g = {"1": graphs.lockn_loader(family, preset)}
    if data == "audio":
        g["2"] = {"class_type": "LockNTrainingAudio", "inputs": {
            "folder": folder, "vae": ["1", 2], "clip": ["1", 1], "captions": CAPTIONS, "caption": "", "seconds": 2.0,
            "bpm": 90}}
        lat, cond = ["2", 0], ["2", 1]
    else:
        vae_out, clip_out = (3, 2) if family == "wan22" else (2, 1)
        g["2"] = {"class_type": "LockNTrainingData", "inputs": {"folder": folder, "captions": CAPTIONS, "caption": "",
                                                                "bucket_by_size": False}}
        g["3"] = {"class_type": "MakeTrainingDataset", "inputs": {"images": ["2", 0], "vae": ["1", vae_out],
                                                                  "clip": ["1", clip_out], "texts": ["2", 1]}}
        lat, cond = ["3", 0], ["3", 1]
    load = {**g, "P": {"class_type": "SaveLatent", "inputs": {"samples": lat, "filename_prefix": "bench/dataset"}}}
    train = {**g, "4": {"class_type": "LockNTrainLoRA", "inputs": {
        "model": ["1", out], "latents": lat, "conditioning": cond, "lora_name": lora_name, "steps": steps, "rank": RANK,
        "learning_rate": lr, "batch_size": 1, "gradient_checkpointing": ckpt, "overwrite": False, "seed": 0,
        "optimizer": "AdamW", "training_dtype": DTYPE, "lora_dtype": DTYPE}}}
    return load, train


def complete(graph: dict) -> dict:
    """Inputs a node requires that the graph leaves out (one added since this bench was written, e.g. Training
    Data's frames) filled with the node's defaults, as the editor would: the bench keeps running as nodes grow."""
    import nodes
    for node in graph.values():
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if cls is None:
            continue
        for name, spec in cls.INPUT_TYPES().get("required", {}).items():
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if name not in node["inputs"] and "default" in opts:
                node["inputs"][name] = opts["default"]
    return graph


def bench_one(base: str, steps: int, ckpt: bool, models: str | None = None) -> dict:
    """In this process: boot ComfyUI on the tiny set (or the models folder `models`), load `base` and its dataset, train `steps` steps, report."""
    import logging

    from lockn_gen import catalog
    from lockn_testing import tiny
    from lockn_testing.harness.inprocess import InProcessComfy
    family, preset, _, data, lr = BASES[base]
    base_files = {f for role, f in catalog.builtin().presets[preset].components.items() if role in BASE_ROLES}
    scratch = tempfile.mkdtemp(prefix="lockn-bench-train-")
    out: dict = {"base": base, "family": family, "preset": preset, "base_files": sorted(base_files), "steps": steps,
                 "rank": RANK, "learning_rate": lr, "gradient_checkpointing": ckpt}
    out["models"] = "tiny" if not models else f"full size ({models})"
    if models:
        # full size on a CPU box: ComfyUI keeps weights in fp32 on CPU, which doubles a bf16 file in RAM (ACE-Step 1.5's
        # DiT and both text encoders: ~20 GB); hold them as the files store them, as a GPU would
        from lockn_testing.comfy_boot import boot
        flags = ("--cpu", "--bf16-unet", "--bf16-text-enc")
        boot(models_root=models, argv=flags, scratch=scratch)
        out["comfyui_flags"] = list(flags)
        global DTYPE
        DTYPE = "bf16"
    out["dtypes"] = f"{DTYPE}/{DTYPE}"
    c = InProcessComfy(models or str(tiny.ensure(quiet=True)), scratch)
    import comfy.utils
    import folder_paths
    import torch
    out["torch_threads"] = torch.get_num_threads()

    reads: list[str] = []
    original = comfy.utils.load_torch_file

    def counting(path, *a, **k):
        reads.append(os.path.basename(str(path)))
        return original(path, *a, **k)
    comfy.utils.load_torch_file = counting
    holders = [m for n, m in list(sys.modules.items()) if "GGUF" in n and hasattr(m, "gguf_sd_loader")]
    if holders:                             # ComfyUI-GGUF reads its files with its own reader (bound by name in nodes.py)
        gguf_original = holders[0].gguf_sd_loader

        def gguf_counting(path, *a, **k):
            reads.append(os.path.basename(str(path)))
            return gguf_original(path, *a, **k)
        for m in holders:
            m.gguf_sd_loader = gguf_counting

    # the estimate the node makes: its log line, and the Cost itself (the line rounds to 0.01 GB)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
    logger = logging.getLogger("lockn_gen.training")
    logger.addHandler(Keep(logging.INFO))
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    costs: list = []
    for name, mod in list(sys.modules.items()):
        if name.endswith("lockn_gen.training") and callable(getattr(mod, "estimate", None)):
            def recording(*a, _orig=mod.estimate, **k):
                cost = _orig(*a, **k)
                costs.append(cost)
                return cost
            mod.estimate = recording

    # each optimizer step's end (core's trainer steps a torch optimizer once per step): the time per step
    step_ends: list[float] = []
    from torch.optim.optimizer import register_optimizer_step_post_hook
    register_optimizer_step_post_hook(lambda *_: step_ends.append(time.perf_counter()))

    folder = "bench-train"
    write_dataset(os.path.join(folder_paths.get_input_directory(), folder), data)
    lora_name = f"bench-{base}-{'ckpt' if ckpt else 'nockpt'}-{os.getpid()}"
    load, train = (complete(g) for g in graphs_for(base, folder, lora_name, steps, ckpt))
    saved: list[str] = []
    try:
        t0 = time.perf_counter()
        c.run(load)
        out["load_seconds"] = round(time.perf_counter() - t0, 2)
        out["files_read_at_load"] = list(reads)          # the watch works: the base's file is among them
        reads.clear()
        records.clear()
        costs.clear()
        step_ends.clear()
        rss_before = _status("VmRSS")
        out["peak_reset"] = _reset_peak()
        out["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]   # other processes on the box show here
        t0 = time.perf_counter()
        try:
            res = c.run(train)
        except Exception as e:              # the finding: what stops it (ComfyUI's exception, not the wrapper)
            import re
            found = re.search(r"'exception_message': ['\"](.*?)['\"], 'exception_type': '(\w+)'", str(e), re.S)
            msg = f"{found.group(2)}: {found.group(1)}" if found else f"{type(e).__name__}: {e}"
            out.update(trains=False, error=msg.replace("\\n", " ").strip()[:600])
            return out
        finally:
            seconds = time.perf_counter() - t0
            peak = _status("VmHWM")
            out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            for r in records:               # the saved file, even when the run failed after saving
                if r.getMessage().startswith("LockN training saved ") and r.args:
                    saved.append(str(r.args[0]))
            out.update(seconds=round(seconds, 3), rss_before_mb=round(rss_before / 1e6, 1),
                       peak_rss_mb=round(peak / 1e6, 1), peak_rss_rise_mb=round((peak - rss_before) / 1e6, 1),
                       files_read_while_training=list(reads),
                       base_reads_while_training=sum(1 for f in reads if f in base_files))
        out.update(trains=True, steps_per_second=round(steps / seconds, 3), seconds_per_step=round(seconds / steps, 4),
                   executed=res["executed"], cached=res["cached"])
        if len(step_ends) >= 2:             # between the first step's end and the last's: no set-up, no saving
            gaps = sorted(b - a for a, b in zip(step_ends, step_ends[1:]))
            out["optimizer_steps"] = len(step_ends)
            out["step_seconds"] = {"median": round(gaps[len(gaps) // 2], 4), "max": round(gaps[-1], 4),
                                   "min": round(gaps[0], 4),
                                   "steady_mean": round((step_ends[-1] - step_ends[0]) / (len(step_ends) - 1), 4),
                                   "each": [round(b - a, 4) for a, b in zip(step_ends, step_ends[1:])]}
        lines = [r.getMessage() for r in records]
        out["log"] = lines
        est = next((ln for ln in lines if "; adds " in ln), "")
        out["estimate_line"] = est.split("; adds ", 1)[1] if est else None
        out["estimate_gb"] = float(out["estimate_line"].split(" GB", 1)[0]) if est else None
        if costs:                           # the node's own estimate: its line is the one logged (fixes() makes more)
            cost = next((c for c in costs if c.line() == out["estimate_line"]), costs[0])
            out["estimate_bytes"] = {"total": cost.total, "adapters": cost.adapters, "gradients": cost.gradients,
                                     "optimizer": cost.optimizer, "activations": cost.activations,
                                     "weights": getattr(cost, "weights", 0), "adapter_params": cost.adapter_params,
                                     "tokens": cost.tokens}
        done = next((r for r in records if r.getMessage().startswith("LockN training saved ")), None)
        if done is not None and len(done.args) >= 4:
            out["trainer_seconds"] = round(float(done.args[3]), 3)
            out["trainer_seconds_per_step"] = round(float(done.args[3]) / steps, 4)
        if saved:
            from safetensors import safe_open
            with safe_open(saved[0], "pt") as f:
                meta = f.metadata()
                out["lora_tensors"] = len(list(f.keys()))
            losses = json.loads(meta.get("lockn.losses", "[]"))
            half = losses[len(losses) // 2:]
            out["loss"] = {"first": losses[0] if losses else None, "last": losses[-1] if losses else None,
                           "second_half_mean": round(sum(half) / len(half), 6) if half else None, "points": len(losses)}
            out["meta_expert"] = meta.get("lockn.expert")
            out["meta_steps"] = meta.get("lockn.steps")
        return out
    finally:
        for p in saved:                     # only the files this run wrote
            try:
                os.remove(p)
            except OSError:
                pass
        shutil.rmtree(scratch, ignore_errors=True)


# ---- the real-shape plan (no GPU here): lockn_gen.training.estimate on shapes from public configs -------------
def _with_weights(shape, block, top):
    """The shape with its adapted weights' elements: all, and those alive at once with the blocks checkpointed one at
    a time (the largest block's, plus the linears outside the blocks), as the node's seam counts them."""
    import dataclasses
    elems = lambda ls: sum(o * i for o, i in ls)       # noqa: E731
    return dataclasses.replace(shape, weights=elems(shape.linears), unit_weights=elems(block) + elems(top))


def _flux2_shape(hidden, double, single, context_in, guidance, mlp_ratio=3, channels=128):
    """Flux.2 as ComfyUI builds it: double blocks with an image and a text stream (qkv, proj, SwiGLU MLP), single
    blocks (fused qkv+MLP in, proj+MLP out), modulation shared across blocks (outside them), no biases."""
    from lockn_gen import training as T
    h, mlp = hidden, hidden * mlp_ratio
    stream = [(3 * h, h), (h, h), (2 * mlp, h), (h, mlp)]
    dbl, sgl = stream * 2, [(3 * h + 2 * mlp, h), (h, h + mlp)]
    top = [(h, channels), (h, context_in), (h, 256), (h, h), (6 * h, h), (6 * h, h), (3 * h, h), (2 * h, h), (channels, h)]
    if guidance:
        top += [(h, 256), (h, h)]
    return _with_weights(T.ModelShape(tuple(dbl * double + sgl * single + top), h, double + single,
                                      max(sum(o for o, _ in dbl), sum(o for o, _ in sgl))),
                         max(dbl, sgl, key=lambda b: sum(o * i for o, i in b)), top)


def _wan22_5b_shape(hidden=3072, blocks=30, ffn=14336, text=4096, out_channels=48):
    """Wan2.2 TI2V 5B: self and cross attention (q, k, v, o) and the FFN per block; text and time embeddings and
    the head outside the blocks (the patch embedding is a 3-D convolution: not adapted)."""
    from lockn_gen import training as T
    h = hidden
    blk = [(h, h)] * 8 + [(ffn, h), (h, ffn)]
    top = [(h, text), (h, h), (h, 256), (h, h), (6 * h, h), (out_channels * 4, h)]
    return _with_weights(T.ModelShape(tuple(blk * blocks + top), h, blocks, sum(o for o, _ in blk)), blk, top)


def _ace15_shape(hidden=2048, layers=24, inter=6144, heads=16, kv_heads=8, head_dim=128):
    """ACE-Step 1.5 DiT: self and cross attention (grouped-query: k and v narrower) and a SwiGLU MLP per layer;
    of the linears outside the layers only the two time embeddings are counted (the rest are small)."""
    from lockn_gen import training as T
    h, q, kv = hidden, heads * head_dim, kv_heads * head_dim
    attn = [(q, h), (kv, h), (kv, h), (h, q)]
    blk = attn * 2 + [(inter, h), (inter, h), (h, inter)]
    top = [(h, 256), (h, h), (6 * h, h)] * 2
    return _with_weights(T.ModelShape(tuple(blk * layers + top), h, layers, sum(o for o, _ in blk)), blk, top)


TEXT_TOKENS = 512
PLAN = [
    # (run, family, latent shape, what it is, shape builder, assumption)
    ("Flux.2 dev, 1024x1024", "flux2", (1, 128, 64, 64), "1024x1024 picture: 128-channel latent at 1/16",
     lambda: _flux2_shape(6144, 8, 48, 15360, True),
     "ASSUMED from the public config: hidden 6144, 8 double + 48 single blocks, MLP ratio 3 (SwiGLU), text in 15360"),
    ("Flux.2 klein 4B, 1024x1024", "flux2", (1, 128, 64, 64), "1024x1024 picture: 128-channel latent at 1/16",
     lambda: _flux2_shape(3072, 5, 20, 7680, False),
     "ASSUMED from the public config: hidden 3072, 5 double + 20 single blocks, MLP ratio 3 (SwiGLU), text in 7680"),
    ("Wan2.2 TI2V 5B, 480p 33 frames", "wan22", (1, 48, 9, 30, 52), "832x480, 33 frames: 48-channel latent at 1/16, 1/4 in time",
     _wan22_5b_shape, "ASSUMED from the public config: hidden 3072, 30 blocks, FFN 14336, text 4096"),
    ("ACE-Step 1.5 turbo, 30 s", "ace15", (1, 64, 750), "30 s at 48 kHz: 64-channel latent at 25 Hz",
     _ace15_shape, "ASSUMED from the public config: hidden 2048, 24 layers, MLP 6144, 16 heads (8 key/value) of 128"),
]


def gpu_plan() -> int:
    from lockn_gen import training as T
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        gpu = None
    print("LockN training, real-shape GPU runs: plan" + (f" (GPU present: {gpu})" if gpu else " (dry run: no GPU here)"))
    print("Settings: rank 16, batch 1, AdamW, the node's defaults bf16 compute and bf16 adapters; text tokens "
          f"{TEXT_TOKENS} (ASSUMED; only Flux.2 runs them through its blocks). Nothing is written.")
    print("Model shapes are NOT read from files: they are written in this script from public configs (assumptions).")
    for run, family, latent, what, build, assumption in PLAN:
        shape = build()
        tokens = T.tokens_of(family, latent, TEXT_TOKENS)
        print(f"\n{run}: latent {list(latent)} ({what}), {tokens} tokens")
        print(f"  {assumption}; {len(shape.linears)} adapted linears, {shape.blocks} blocks, widest block "
              f"{shape.block_outputs} outputs")
        for ckpt in (True, False):
            cost = T.estimate(shape, tokens, T.Settings(rank=16, batch=1, optimizer="AdamW", checkpointing=ckpt,
                                                        lora_bytes=2, compute_bytes=2))
            print(f"  checkpointing {'on ' if ckpt else 'off'}: adds {cost.line()}")
    if gpu:
        print("\nThis script plans these runs; it does not run them (no real-size weights here).")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bases", default=",".join(BASES))
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (1: a second busy process on the box slows a run the least)")
    ap.add_argument("--gpu-plan", action="store_true", help="print the real-shape GPU runs' plan and estimates; write nothing")
    ap.add_argument("--one", help=argparse.SUPPRESS)      # the child process: one base, JSON on the last line
    ap.add_argument("--no-ckpt", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--models", help="a ComfyUI models folder to use instead of the tiny set (the full-size random-weight files of"
                    " lockn_testing.fullsize: python -m lockn_testing.fullsize --preset ace15-turbo --out DIR)")
    ap.add_argument("--ckpt", choices=("both", "on", "off"), default="both", help="gradient checkpointing settings to run")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc settings alone (times without the fixed mmap threshold; RSS then overstates)")
    args = ap.parse_args(argv)
    if args.gpu_plan:
        return gpu_plan()
    if args.one:
        print(json.dumps(bench_one(args.one, args.steps, not args.no_ckpt, args.models)))
        return 0
    from bench import machine
    from lockn_testing.harness import comfyui_path
    rows = []
    for name in args.bases.split(","):
        for ckpt in {"both": (True, False), "on": (True,), "off": (False,)}[args.ckpt]:
            cmd = [sys.executable, "-m", "bench.bench_training", "--one", name, "--steps", str(args.steps)]
            cmd += ["--models", os.path.abspath(args.models)] if args.models else []
            threads = str(args.threads)
            env = {**os.environ, "LOCKN_TEST_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                   # glibc keeps freed blocks under its (dynamic, up to 32 MB) mmap threshold in the heap, so RSS would
                   # stay at the highest point a freed tensor reached and vary run to run by GBs; with a fixed 64 KB
                   # threshold every tensor is its own mapping, returned when freed: the peak RSS is the peak in use
                   **({} if args.default_malloc else MALLOC_ENV)}
            res = subprocess.run(cmd + ([] if ckpt else ["--no-ckpt"]), cwd=REPO, capture_output=True, text=True,
                                 timeout=900 if not args.models else 3600, env=env)
            try:
                row = json.loads(res.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                row = {"base": name, "gradient_checkpointing": ckpt, "trains": False,
                       "error": "bench crashed: " + (res.stderr.strip().splitlines() or ["?"])[-1]}
            rows.append(row)
            loss = row.get("loss") or {}
            print(f"{name:28} ckpt {'on ' if ckpt else 'off'} "
                  + (f"{row['seconds_per_step']:.3f} s/step (trainer {row.get('trainer_seconds_per_step', 0):.3f}) "
                     f"peak RSS +{row['peak_rss_rise_mb']:.0f} MB ({row['peak_rss_mb']:.0f}) "
                     f"est {row.get('estimate_gb')} GB ({(row.get('estimate_bytes') or {}).get('total', 0) / 1e6:.1f} MB) "
                     f"base reads {row['base_reads_while_training']} "
                     f"loss {loss.get('first')} -> {loss.get('second_half_mean')}"
                     if row.get("trains") else f"FAILS {row.get('error', '')[:300]}"), flush=True)
    version = (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    result = {"comfyui": version, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "steps": args.steps,
              "malloc": "glibc defaults" if args.default_malloc else MALLOC_ENV,
              "models": "tiny" if not args.models else "full size, random weights",
              "threads": args.threads, "rows": rows}
    out = Path(args.out or REPO / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}_training_{version}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
