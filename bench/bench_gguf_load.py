"""GGUF load benchmark: a synthetic Flux.2 GGUF of about 1.15 GB (Q8_0, bench/synthetic.py) loaded
through LockN's Flux.2 loader node vs ComfyUI-GGUF's UnetLoaderGGUF called directly, side by side
(alternating, each measurement in a fresh process so the registry and the page-in state are equal).

    python -m bench.bench_gguf_load [--reps 5] [--gpu] [--cold]

Measured per load: wall time of the load, and of the load followed by making the model ready on the
compute device (comfy.model_management.load_models_gpu; on a CPU, where ComfyUI keeps GGUF weights
memory-mapped until the first forward pass, every weight is read once instead), plus the peak
resident memory added during it (VmHWM after resetting it through /proc/self/clear_refs, minus
VmRSS before). `--cold` drops the
file from the page cache before each measurement (posix_fadvise DONTNEED), so the disk read counts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILE = "flux2-dev-Q8_0.gguf"


def _status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(mode: str, models: str, gpu: bool, cold: bool):
    sys.path.insert(0, str(REPO))
    from lockn_testing.harness.inprocess import InProcessComfy
    import tempfile
    c = InProcessComfy(models, tempfile.mkdtemp(prefix="lockn-bench-"), cpu=not gpu)
    import comfy.model_management as mm
    path = os.path.join(models, "diffusion_models", FILE)
    if cold:
        from bench import drop_from_page_cache
        drop_from_page_cache(path)
    if mode == "lockn":
        loaders = next(m for k, m in sys.modules.items() if k.endswith(".nodes.loaders") and hasattr(m, "build_specs"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                   # reset VmHWM to the current RSS
    rss0 = _status("VmRSS")
    t0 = time.perf_counter()
    if mode == "direct":
        model = c.nodes.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]().load_unet(unet_name=FILE)[0]
    else:
        # the diffusion model's path through the Flux.2 loader node: preflight of the whole preset
        # (resolution, every file's header), then the registry's seam and ComfyUI-GGUF's node
        _, res = loaders.preflight("flux2", "flux2-dev-q8_0", {})
        model = loaders._load(loaders.build_specs("flux2", res)["model"])
    t1 = time.perf_counter()
    import torch
    if not gpu:
        # on a CPU ComfyUI keeps GGUF weights memory-mapped and reads them at the first forward pass:
        # read every stored byte once here (what that first pass does), the same way in both modes
        with torch.inference_mode():
            for t in model.model.diffusion_model.state_dict().values():
                storage = t.untyped_storage()
                if storage.device.type == "cpu":
                    int(torch.empty(0, dtype=torch.uint8).set_(storage).sum())
    mm.load_models_gpu([model], force_full_load=True)
    if gpu:
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    peak = _status("VmHWM") - rss0
    print(json.dumps({"mode": mode, "load_s": t1 - t0, "load_ready_s": t2 - t0, "peak_rss_added": peak,
                      "file_bytes": os.path.getsize(path)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--models", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "gguf_load.json"))
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.models, a.gpu, a.cold)
    sys.path.insert(0, str(REPO))
    from bench import synthetic
    from bench import machine
    models = str(synthetic.ensure(spec="dit"))     # the GGUF file of the recorded runs; tiny text encoders
    rows = []
    for rep in range(a.reps):
        for mode in ("direct", "lockn"):
            cmd = [sys.executable, "-m", "bench.bench_gguf_load", "--child", mode, "--models", models]
            cmd += ["--gpu"] * a.gpu + ["--cold"] * a.cold
            out = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
            line = [x for x in out.stdout.splitlines() if x.startswith("{")]
            if out.returncode or not line:
                raise SystemExit(f"measurement failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
            rows.append(json.loads(line[-1]))
            r = rows[-1]
            print(f"rep {rep + 1} {mode:6s} load {r['load_s'] * 1000:8.1f} ms  load+ready {r['load_ready_s'] * 1000:8.1f} ms  "
                  f"peak RSS +{r['peak_rss_added'] / 1e9:.3f} GB", flush=True)

    def med(mode, key):
        return statistics.median(r[key] for r in rows if r["mode"] == mode)
    size = rows[0]["file_bytes"]
    summary = {"file_bytes": size,
               **{f"{m}_{k}": med(m, k) for m in ("direct", "lockn") for k in ("load_s", "load_ready_s", "peak_rss_added")}}
    summary["overhead_load_pct"] = 100 * (summary["lockn_load_s"] / summary["direct_load_s"] - 1)
    summary["overhead_load_ready_pct"] = 100 * (summary["lockn_load_ready_s"] / summary["direct_load_ready_s"] - 1)
    summary["overhead_ms"] = 1000 * (summary["lockn_load_s"] - summary["direct_load_s"])
    summary["lockn_peak_rss_over_file"] = summary["lockn_peak_rss_added"] / size
    summary["direct_peak_rss_over_file"] = summary["direct_peak_rss_added"] / size
    res = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "gpu": a.gpu, "cold": a.cold, "rows": rows,
           "summary": summary}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps({"machine": res["machine"], "cold": a.cold, **summary}, indent=2))


if __name__ == "__main__":
    main()
