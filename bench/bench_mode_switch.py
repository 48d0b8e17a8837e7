"""Mode-switch benchmark: image -> video -> music -> image, three cycles, on synthetic models of 1-2 GB
each (bench/synthetic.py; --spec stacks: diffusion models and text encoders, --spec dit: diffusion
models only), with LockN's residency (its loader nodes) against ComfyUI's own caches (core loaders),
side by side in one run: a fresh server per configuration, alternated. The ComfyUI used is the one at
COMFYUI_PATH.

    python -m bench.bench_mode_switch [--reps 2] [--cycles 3] [--gpu] [--spec stacks|dit] [--cold]
        [--out bench/out/mode_switch.json] [--configs default,lockn] [--vary-seeds] [--gpu-budget-gb G --ram-budget-gb R]

Configurations (--configs): default (core loaders, ComfyUI's default cache: classic on 0.20.1, RAM
pressure on 0.33), lru (--cache-lru 16), ram (0.33: --cache-ram with a headroom that leaves the cache
about the LockN budgets' room), high-ram (0.33: --high-ram), lockn (LockN's loaders, default cache,
and the budgets through a Residency node when given), lockn-auto (LockN's loaders, its automatic budgets).
--vary-seeds gives every cycle new seeds: a cycle that repeats the last one's prompts is served
whole from an output cache that keeps them (0.33's default) and measures nothing.
--cold drops the model files from the page cache before every prompt (all configurations), as when
the LLMs' memory pushes them out of RAM: what a cache reloads then comes from the disk.

Reports per configuration the cycle times (first and warm), the time spent in loader nodes,
LockN's registry overhead per loader execution (its own bookkeeping, GET /lockn/residency), and the
server's resident memory (RSS) after every cycle (with --cycles 10: is memory flat over time?).
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

from bench import drop_from_page_cache, give_start_image, machine, synthetic  # noqa: E402
from lockn_testing import graphs  # noqa: E402
from lockn_testing.harness.server import ComfyServer  # noqa: E402


CONFIGS = ("default", "lru", "ram", "high-ram", "lockn", "lockn-auto")


def server_args(config: str, budgets: tuple[float, float]) -> list[str]:
    if config == "lru":
        return ["--cache-lru", "16"]
    if config == "high-ram":
        return ["--high-ram"]
    if config == "ram":          # RAM pressure once the cache holds about what LockN's budgets allow
        import psutil
        total = psutil.virtual_memory().total / 1e9
        room = sum(budgets) if any(budgets) else total / 2
        headroom = max(2.0, total - room - 3.0)      # 3 GB: the server process itself
        return ["--cache-ram", f"{headroom:.1f}", f"{headroom:.1f}"]
    return []


def workflows(config: str, budgets: tuple[float, float] = (0.0, 0.0)) -> list[tuple[str, dict]]:
    flows = _workflows(config)
    if config == "lockn" and any(budgets):
        flows = [(m, graphs.with_residency(g, *budgets)) for m, g in flows]
    if os.environ.get("LOCKN_BENCH_SINK") == "report":      # no PyAV on the machine: do not save media
        flows = [(m, graphs.report_sinks(g)) for m, g in flows]
    return flows


def _workflows(config: str) -> list[tuple[str, dict]]:
    if config.startswith("lockn"):
        return [("image", graphs.flux2_t2i(loader="lockn", preset="flux2-dev-fp8mixed", steps=1, prefix="b/img")),
                ("video", graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-fp8", steps=2, split=1, prefix="b/vid")),
                ("music", graphs.ace15_t2m(loader="lockn", preset="ace15-turbo", seconds=1.0, steps=2, top_p=1.0, prefix="b/mus"))]
    return [("image", graphs.flux2_t2i(loader="core", steps=1, prefix="b/img")),
            ("video", graphs.wan22_i2v(loader="core", steps=2, split=1, prefix="b/vid")),
            ("music", graphs.ace15_t2m(loader="core", seconds=1.0, steps=2, top_p=1.0, prefix="b/mus"))]


LOADERS = {"12", "38", "10", "95", "96", "84", "90", "104", "105", "106"}   # loader node ids in lockn_testing.graphs


def server_rss(srv) -> int:
    """Resident memory of the server process (VmRSS), bytes."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def run_config(models: Path, config: str, cycles: int, gpu: bool, cold: bool = False, vary: bool = False,
               budgets: tuple[float, float] = (0.0, 0.0)) -> dict:
    from lockn_gen.workflow import vary_seeds
    srv = ComfyServer(models, cpu=not gpu, extra_args=tuple(server_args(config, budgets)))
    try:
        srv.start()
        give_start_image(srv)
        out = {"cycles": [], "server_args": list(srv.extra_args)}
        info = srv.get("/object_info") if vary else None
        before = None
        for c in range(cycles):
            if c == 1 and config.startswith("lockn"):
                before = srv.get("/lockn/residency")
            cyc = {"prompts": []}
            for mode, g in workflows(config, budgets):
                if vary:
                    g = vary_seeds(g, info, c)
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
            cyc["rss_bytes"] = server_rss(srv)            # the server's resident memory after the cycle
            if config.startswith("lockn"):
                cyc["registry_totals"] = srv.get("/lockn/residency")["totals"]
            cyc["seconds"] = sum(p["seconds"] for p in cyc["prompts"])
            cyc["loader_seconds"] = sum(p["loader_seconds"] for p in cyc["prompts"])
            out["cycles"].append(cyc)
            print(f"  {config} cycle {c + 1}: {cyc['seconds']:.2f}s (loaders {cyc['loader_seconds']:.2f}s), "
                  f"server RSS {cyc['rss_bytes'] / 1e9:.2f} GB", flush=True)
        if config.startswith("lockn"):
            after = srv.get("/lockn/residency")
            calls = after["calls"] - before["calls"]
            loader_execs = 3 * (cycles - 1)
            out["registry_overhead_ms_per_loader_execution"] = 1000 * (after["overhead_s_total"] - before["overhead_s_total"]) / loader_execs
            out["registry_calls_warm"] = calls
            out["loads_from_disk"] = {e["name"]: e["loads_from_disk"] for e in after["entries"]}
            out["tiers_at_end"] = {e["name"]: e["tier"] for e in after["entries"]}
            out["eviction_at_end"] = after.get("eviction")
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
    ap.add_argument("--configs", default="default,lockn", help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--vary-seeds", action="store_true", help="new seeds every cycle")
    ap.add_argument("--gpu-budget-gb", type=float, default=0.0, help="LockN's GPU budget (0: its default)")
    ap.add_argument("--ram-budget-gb", type=float, default=0.0, help="LockN's RAM budget (0: its default)")
    a = ap.parse_args()
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    budgets = (a.gpu_budget_gb, a.ram_budget_gb)
    models = synthetic.ensure(spec=a.spec)
    sizes = {f"{d}/{f}": round(os.path.getsize(models / d / f) / 1e9, 3) for d in ("diffusion_models", "text_encoders")
             for f in sorted(os.listdir(models / d)) if os.path.getsize(models / d / f) > 1e8}
    from lockn_testing.harness import comfyui_path
    version = (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "comfyui": version, "spec": a.spec,
               "cold": a.cold, "vary_seeds": a.vary_seeds, "lockn_budgets_gb": {"gpu": budgets[0], "ram": budgets[1]},
               "big_files_gb": sizes, "runs": []}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(a.reps):
        for config in configs:
            print(f"rep {rep + 1}: {config}", flush=True)
            results["runs"].append({"config": config, **run_config(models, config, a.cycles, a.gpu, a.cold,
                                                                   a.vary_seeds, budgets)})
            out.write_text(json.dumps(results, indent=2))   # so far: a run cut short still leaves its data

    def warm(config, key="seconds"):
        return statistics.median(c[key] for r in results["runs"] if r["config"] == config for c in r["cycles"][1:])

    summary = {
        "warm_cycle_s": {c: warm(c) for c in configs},
        "warm_cycle_loader_s": {c: warm(c, "loader_seconds") for c in configs},
        "first_cycle_s": {c: statistics.median(r["cycles"][0]["seconds"] for r in results["runs"] if r["config"] == c)
                          for c in configs},
    }
    summary["rss_gb_per_cycle"] = {f"{r['config']}#{i + 1}": [round(c["rss_bytes"] / 1e9, 2) for c in r["cycles"]]
                                   for i, r in enumerate(results["runs"])}
    if "lockn" in configs:
        summary["registry_overhead_ms_per_loader_execution"] = statistics.median(
            r["registry_overhead_ms_per_loader_execution"] for r in results["runs"] if r["config"] == "lockn")
        summary["warm_speedup_vs_lockn"] = {c: summary["warm_cycle_s"][c] / summary["warm_cycle_s"]["lockn"]
                                            for c in configs if c != "lockn"}
    results["summary"] = summary
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"machine": results["machine"], **summary}, indent=2))


if __name__ == "__main__":
    main()
