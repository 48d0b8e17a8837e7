"""Mode-switch benchmark: image -> video -> music -> image, three cycles, on synthetic models of 1-2 GB
each (bench/synthetic.py; --spec stacks: diffusion models and text encoders, --spec dit: diffusion
models only), with LockN's residency (its loader nodes) against ComfyUI's default cache (core loaders),
side by side in one run: a fresh server per configuration, alternated.

    python -m bench.bench_mode_switch [--reps 2] [--gpu] [--spec stacks|dit] [--cold] [--out bench/out/mode_switch.json]

--cold drops the model files from the page cache before every prompt (both configurations), as when
the LLMs' memory pushes them out of RAM: what the default cache reloads then comes from the disk.

Reports per configuration the cycle times (first and warm), the time spent in loader nodes, and
LockN's registry overhead per loader execution (its own bookkeeping, GET /lockn/residency).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import drop_from_page_cache, machine, synthetic  # noqa: E402
from lockn_testing import graphs  # noqa: E402
from lockn_testing.harness.server import ComfyServer  # noqa: E402


def workflows(config: str) -> list[tuple[str, dict]]:
    flows = _workflows(config)
    if os.environ.get("LOCKN_BENCH_SINK") == "report":      # no PyAV on the machine: do not save media
        flows = [(m, graphs.report_sinks(g)) for m, g in flows]
    return flows


def _workflows(config: str) -> list[tuple[str, dict]]:
    if config == "lockn":
        return [("image", graphs.flux2_t2i(loader="lockn", preset="flux2-dev-fp8mixed", steps=1, prefix="b/img")),
                ("video", graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-fp8", steps=2, split=1, prefix="b/vid")),
                ("music", graphs.ace15_t2m(loader="lockn", preset="ace15-turbo", seconds=1.0, steps=2, top_p=1.0, prefix="b/mus"))]
    return [("image", graphs.flux2_t2i(loader="core", steps=1, prefix="b/img")),
            ("video", graphs.wan22_i2v(loader="core", steps=2, split=1, prefix="b/vid")),
            ("music", graphs.ace15_t2m(loader="core", seconds=1.0, steps=2, top_p=1.0, prefix="b/mus"))]


LOADERS = {"12", "38", "10", "95", "96", "84", "90", "104", "105", "106"}   # loader node ids in lockn_testing.graphs


def run_config(models: Path, config: str, cycles: int, gpu: bool, cold: bool = False) -> dict:
    srv = ComfyServer(models, cpu=not gpu)
    try:
        srv.start()
        img = REPO / "bench" / "out" / "start.png"
        if not img.exists():
            import numpy as np
            from PIL import Image
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.random.RandomState(0).rand(48, 40, 3) * 255).astype("uint8")).save(img)
        shutil.copy(img, srv.base / "input" / "start.png")
        out = {"cycles": []}
        before = None
        for c in range(cycles):
            if c == 1 and config == "lockn":
                before = srv.get("/lockn/residency")
            cyc = {"prompts": []}
            for mode, g in workflows(config):
                if cold:
                    drop_from_page_cache(models)
                t0 = time.perf_counter()
                res = srv.run(g, timeout=1800)
                wall = time.perf_counter() - t0
                ns = res.node_seconds()
                cyc["prompts"].append({"mode": mode, "seconds": wall,
                                       "loader_seconds": sum(v for k, v in ns.items() if k in LOADERS),
                                       "executed": len(res.executed),
                                       # where the time goes, node by node (websocket 'executing' marks)
                                       "node_seconds": {f"{g[k]['class_type']}#{k}": round(v, 4) for k, v in ns.items() if k in g}})
            cyc["seconds"] = sum(p["seconds"] for p in cyc["prompts"])
            cyc["loader_seconds"] = sum(p["loader_seconds"] for p in cyc["prompts"])
            out["cycles"].append(cyc)
            print(f"  {config} cycle {c + 1}: {cyc['seconds']:.2f}s (loaders {cyc['loader_seconds']:.2f}s)", flush=True)
        if config == "lockn":
            after = srv.get("/lockn/residency")
            calls = after["calls"] - before["calls"]
            loader_execs = 3 * (cycles - 1)
            out["registry_overhead_ms_per_loader_execution"] = 1000 * (after["overhead_s_total"] - before["overhead_s_total"]) / loader_execs
            out["registry_calls_warm"] = calls
            out["loads_from_disk"] = {e["name"]: e["loads_from_disk"] for e in after["entries"]}
        return out
    finally:
        srv.stop()
        shutil.rmtree(srv.base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=2, help="alternations of (default, lockn)")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--gpu", action="store_true", help="run ComfyUI on the GPU (no --cpu)")
    ap.add_argument("--spec", choices=synthetic.SPECS, default="stacks", help="which models are big (bench/synthetic.py)")
    ap.add_argument("--cold", action="store_true", help="drop the model files from the page cache before every prompt")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "mode_switch.json"))
    a = ap.parse_args()
    models = synthetic.ensure(spec=a.spec)
    sizes = {f"{d}/{f}": round(os.path.getsize(models / d / f) / 1e9, 3) for d in ("diffusion_models", "text_encoders")
             for f in sorted(os.listdir(models / d)) if os.path.getsize(models / d / f) > 1e8}
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "spec": a.spec, "cold": a.cold,
               "big_files_gb": sizes, "runs": []}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(a.reps):
        for config in ("default", "lockn"):
            print(f"rep {rep + 1}: {config}", flush=True)
            results["runs"].append({"config": config, **run_config(models, config, a.cycles, a.gpu, a.cold)})
            out.write_text(json.dumps(results, indent=2))   # so far: a run cut short still leaves its data

    def warm(config, key="seconds"):
        return statistics.median(c[key] for r in results["runs"] if r["config"] == config for c in r["cycles"][1:])

    summary = {
        "warm_cycle_s": {c: warm(c) for c in ("default", "lockn")},
        "warm_cycle_loader_s": {c: warm(c, "loader_seconds") for c in ("default", "lockn")},
        "first_cycle_s": {c: statistics.median(r["cycles"][0]["seconds"] for r in results["runs"] if r["config"] == c)
                          for c in ("default", "lockn")},
        "registry_overhead_ms_per_loader_execution": statistics.median(
            r["registry_overhead_ms_per_loader_execution"] for r in results["runs"] if r["config"] == "lockn"),
    }
    summary["warm_speedup"] = summary["warm_cycle_s"]["default"] / summary["warm_cycle_s"]["lockn"]
    results["summary"] = summary
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"machine": results["machine"], **summary}, indent=2))


if __name__ == "__main__":
    main()
