"""Step cache benchmark (issue 23): per stage, steps skipped, sampling time and the output's difference from
the uncached run, for the cache off and thresholds 0.1 / 0.2 / 0.3, side by side in one run on one server.

The stages are the shipped single-stage workflows, run as a user runs them (lockn_gen.client, --set): the
Image stage (Flux.2, flux2_text_to_image.json), the Video stage on Wan2.2 (both experts,
wan22_image_to_video.json) and on LTX-2 (ltx2_image_to_video.json, its default one-pass path). Each
configuration runs after a warm-up run of its stage (models loaded; the warm-up is not counted), with
`--reps` repetitions (the median counts), every configuration of a stage on the same seed.

The server runs with ComfyUI's --cache-none, so every run computes every node (LockN's registry keeps the
models loaded: nothing is read again). Recorded per stage and configuration: ComfyUI's execution time of the
prompt (from its history: execution start to success), the samplers' own time (each sampler node's start to
its last step, from the progress messages, for every configuration alike),
the steps skipped out of the steps run per sampler (the ``lockn.step_cache`` events), and against the
uncached output: PSNR and SSIM per frame (kornia.metrics, a maintained library ComfyUI already installs),
mean and worst frame, and the mean difference in levels of 255.

    python -m bench.bench_step_cache [--out bench/out/step_cache.json] [--reps 2] [--stages image,wan22,ltx2]
        [--thresholds 0.1,0.2,0.3] [--models DIR --gpu]   # DIR: full-size files (lockn_testing.fullsize)
    python -m bench.bench_step_cache --real-shapes --dry-run-cpu   # the GPU shapes' code path on CPU, tiny

Default shapes (CPU, tiny random-weight models of the real architectures, minutes in all): Flux.2 512 x 512
20 steps; Wan2.2 256 x 256 x 33 frames 20 steps (10 per expert); LTX-2 256 x 256 x 49 frames, the shipped 8
sigmas. --real-shapes: the issue's GPU shapes (Flux.2-dev 1024 x 1024 28 steps; Wan2.2 A14B Q4_K_M 640 x
640 x 81 frames 20 steps; LTX-2 defaults 768 x 512 x 121); with --dry-run-cpu they shrink to tiny sizes
but take the same path. Random weights say nothing of how often a trained model's steps can be skipped: on
those models the skipped counts and quality figures show the mechanism and its cost, not the gain on real
pictures; the time per skipped step is real.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402

WF = REPO / "workflows"
# stage -> (workflow, face of its stage, sets for the CPU shapes, for the real shapes, for the dry run of those)
STAGES = {
    "image": ("flux2_text_to_image", "Image",
              ["Image width.value=512", "Image height.value=512", "Image steps.steps=20"],
              ["Image width.value=1024", "Image height.value=1024", "Image steps.steps=28", "Image models.preset=flux2-dev-q4_k_m"],
              ["Image width.value=64", "Image height.value=64", "Image steps.steps=28"]),
    "wan22": ("wan22_image_to_video", "Video",
              ["Video size.width=256", "Video size.height=256", "Length (frames).value=33", "Video steps.value=20",
               "Video high-noise steps.value=10"],
              ["Video size.width=640", "Video size.height=640", "Length (frames).value=81", "Video steps.value=20",
               "Video high-noise steps.value=10", "Video models.preset=wan22-i2v-a14b-q4_k_m"],
              ["Video size.width=32", "Video size.height=32", "Length (frames).value=5", "Video steps.value=20",
               "Video high-noise steps.value=10"]),
    "ltx2": ("ltx2_image_to_video", "Video",
             ["Video size.width=256", "Video size.height=256", "Length (frames).value=49",
              "Video sigmas.sigmas=1., 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0"],
             [],                                              # the workflow's defaults: 768 x 512 x 121, 8 sigmas
             ["Video size.width=64", "Video size.height=64", "Length (frames).value=9"]),
}


def quality(ref: Path, out: Path) -> dict:
    """PSNR (dB) and SSIM per frame of `out` against `ref` (kornia.metrics on RGB in [0, 1]), mean and worst,
    and the mean absolute difference in levels of 255."""
    import numpy as np
    import torch
    from kornia.metrics import psnr, ssim

    from lockn_testing.media import decoded
    a, b = decoded(ref)["video"], decoded(out)["video"]
    if a is None or b is None or a.shape != b.shape:
        return {"error": f"shapes differ: {None if a is None else a.shape} vs {None if b is None else b.shape}"}
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255.0
    p = [float(psnr(y[i:i + 1], x[i:i + 1], 1.0)) for i in range(x.shape[0])]
    s = [float(ssim(y[i:i + 1], x[i:i + 1], 11).mean()) for i in range(x.shape[0])]
    return {"psnr_mean": statistics.fmean(p), "psnr_min": min(p), "ssim_mean": statistics.fmean(s), "ssim_min": min(s),
            "levels_mean": float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()), "frames": len(p)}


def _exec_seconds(status: dict) -> float | None:
    ts = {name: data.get("timestamp") for name, data in status.get("messages") or []}
    if ts.get("execution_start") and ts.get("execution_success"):
        return (ts["execution_success"] - ts["execution_start"]) / 1000.0
    return None


def run_once(url: str, stage: str, sets: list[str], out: Path) -> dict:
    from lockn_gen import client
    name = STAGES[stage][0]
    started: dict[str, float] = {}
    last_step: dict[str, float] = {}

    def on_progress(_, p):                 # a sampler's time: its node's start to its last step, cached or not
        if p.kind == "node":
            started[p.node] = time.perf_counter()
        elif p.kind == "step":
            last_step[p.node] = time.perf_counter()
    t0 = time.perf_counter()
    (res,) = client.run_workflow(str(WF / f"{name}.json"), sets, [url], out_dir=out, timeout=3600, on_progress=on_progress)
    wall = time.perf_counter() - t0
    if not res.ok:
        raise RuntimeError(f"{stage} {sets}: {res.error}")
    cache = res.result.step_cache
    return {"file": res.files[0], "wall_s": wall, "exec_s": _exec_seconds(res.result.status),
            "sampler_s": sum(t - started[n] for n, t in last_step.items() if n in started),
            "samplers": [{"node": d["node"], "title": d["title"], "skipped": d["skipped"], "steps": d["steps"],
                          "seconds": d["seconds"], "cache_bytes": d["cache_bytes"]} for d in cache]}


def bench_stage(url: str, stage: str, base_sets: list[str], thresholds: list[float], reps: int, out: Path,
                tiny: bool = True) -> dict:
    face = STAGES[stage][1]
    from lockn_gen.demo_sets import TINY
    sets = (TINY[STAGES[stage][0]] if tiny else []) + base_sets + [f"{face}.seed=777"]
    run_once(url, stage, sets, out / stage / "warmup")         # models loaded, not counted (the server runs with
                                                               # --cache-none: every run computes every node)
    configs = [("off", sets)] + [(f"{t:g}", sets + [f"{face}.cache_steps=true", f"{face}.cache_threshold={t}"])
                                 for t in thresholds]
    rows = {}
    for label, s in configs:
        runs = [run_once(url, stage, s, out / stage / f"{label}-{i}") for i in range(reps)]
        med = lambda k: statistics.median(r[k] for r in runs if r[k] is not None) if any(r[k] is not None for r in runs) else None  # noqa: E731
        rows[label] = {"exec_s": med("exec_s"), "wall_s": med("wall_s"), "sampler_s": med("sampler_s"),
                       "samplers": runs[0]["samplers"], "file": runs[0]["file"], "reps": reps}
    ref = Path(rows["off"]["file"])
    for label, row in rows.items():
        row["quality"] = quality(ref, Path(row["file"])) if label != "off" else None
        if rows["off"]["sampler_s"] and row["sampler_s"]:
            row["sampler_speedup"] = rows["off"]["sampler_s"] / row["sampler_s"]
        if rows["off"]["exec_s"] and row["exec_s"]:
            row["exec_speedup"] = rows["off"]["exec_s"] / row["exec_s"]
    return rows


def table(result: dict) -> str:
    lines = ["| stage | cache | skipped / steps (per sampler) | sampling s | x | prompt s | x | PSNR dB mean (worst) | SSIM mean (worst) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stage, rows in result["stages"].items():
        for label, r in rows.items():
            sk = ", ".join(f"{s['skipped']}/{s['steps']}" for s in r["samplers"]) or "-"
            q = r["quality"] or {}
            pq = f"{q['psnr_mean']:.1f} ({q['psnr_min']:.1f})" if "psnr_mean" in q else "-"
            sq = f"{q['ssim_mean']:.3f} ({q['ssim_min']:.3f})" if "ssim_mean" in q else "-"
            lines.append(f"| {stage} | {label} | {sk} | {r['sampler_s']:.2f} | {r.get('sampler_speedup', 1.0):.2f} | "
                         f"{r['exec_s'] or r['wall_s']:.2f} | {r.get('exec_speedup', 1.0):.2f} | {pq} | {sq} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "step_cache.json"))
    ap.add_argument("--stages", default="image,wan22,ltx2")
    ap.add_argument("--thresholds", default="0.1,0.2,0.3")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--models", default=None, help="models root (default: the tiny test models)")
    ap.add_argument("--gpu", action="store_true", help="ComfyUI on the GPU (default: --cpu)")
    ap.add_argument("--real-shapes", action="store_true", help="the issue's GPU shapes (see the docstring)")
    ap.add_argument("--dry-run-cpu", action="store_true", help="with --real-shapes: the same path at tiny sizes on CPU")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the CPU server (default: all)")
    a = ap.parse_args(argv)
    from lockn_testing import tiny
    from lockn_testing.harness.server import serving
    models = Path(a.models) if a.models else tiny.ensure(python=sys.executable, quiet=True)
    stages = [s for s in a.stages.split(",") if s]
    thresholds = [float(t) for t in a.thresholds.split(",") if t]
    shape = 2 if not a.real_shapes else (4 if a.dry_run_cpu else 3)
    out = Path(a.out)
    work = REPO / "bench" / "out" / "step_cache_files"       # the outputs (not kept with the results)
    env = {"OMP_NUM_THREADS": str(a.threads)} if a.threads else {}
    kw = {"extra_args": ("--cache-none",)}
    if a.gpu:
        kw["cpu"] = False
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "models": str(models),
              "shapes": "cpu" if shape == 2 else ("real" if shape == 3 else "real (dry run: tiny sizes)"),
              "thresholds": thresholds, "stages": {}}
    t0 = time.time()
    with serving(models, {"lockn_start.png": REPO / "workflows" / "input" / "lockn_start.png"}, env=env, **kw) as srv:
        result["comfyui"] = srv.get("/system_stats")["system"].get("comfyui_version")
        for stage in stages:
            print(f"[step cache bench] {stage} ...", flush=True)
            result["stages"][stage] = bench_stage(srv.url, stage, STAGES[stage][shape], thresholds, a.reps, work,
                                                  tiny=shape != 3)
    result["seconds"] = time.time() - t0
    result["table"] = table(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(result["table"])
    print(f"written: {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
