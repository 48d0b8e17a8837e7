"""Residency on a real NVIDIA GPU, with ComfyUI's dynamic VRAM on (its NVIDIA default) and off.

    LOCKN_BENCH_SINK=report python -m bench.gpu_check [--out bench/out/gpu_check.json]

For each setting, a fresh ComfyUI server on the GPU runs workflow A (Flux.2 image), B (Wan2.2 video),
C (ACE-Step music), then A again, through LockN's loaders, and checks: A's models were not read from
disk again; entries sit on the CUDA device; POST /free {unload_models} takes everything off the GPU,
pinned models included, and the registry stays consistent (same entries, models served from RAM on
the next run); a GPU budget applies after a prompt and a dropped model reloads onto the device (the
registry settles those outside the prompt worker's thread). Prints and writes the observations as
JSON; exits 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lockn_testing import graphs, tiny  # noqa: E402
from lockn_testing.harness.server import ComfyServer  # noqa: E402


def flows():
    g = {"A": graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", width=256, height=256, steps=4),
         "B": graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", width=64, height=64, length=9),
         "C": graphs.ace15_t2m(loader="lockn", preset="ace15-turbo", seconds=2.0, steps=4, top_p=1.0)}
    if os.environ.get("LOCKN_BENCH_SINK") == "report":
        g = {k: graphs.report_sinks(v) for k, v in g.items()}
    return g


def check_setting(models, start_image, dynamic: bool) -> dict:
    args = () if dynamic else ("--disable-dynamic-vram",)
    srv = ComfyServer(models, cpu=os.environ.get("LOCKN_GPU_CHECK_CPU") == "1", extra_args=args)   # CPU: dry run only
    obs = {"dynamic_vram": dynamic, "checks": {}}
    try:
        srv.start()
        shutil.copy(start_image, srv.base / "input" / "start.png")
        g = flows()
        timings = {}
        for step in ("A", "B", "C", "A"):
            t0 = time.perf_counter()
            srv.run(g[step], timeout=600)
            timings.setdefault(step, []).append(round(time.perf_counter() - t0, 3))
            if step == "A" and "after_first_A" not in obs:
                obs["after_first_A"] = srv.get("/lockn/residency")
        rep = srv.get("/lockn/residency")
        obs["timings_s"] = timings
        flux_first = {e["name"]: e["loads_from_disk"] for e in obs["after_first_A"]["entries"] if e["family"] == "flux2"}
        flux_now = {e["name"]: e["loads_from_disk"] for e in rep["entries"] if e["family"] == "flux2"}
        obs["checks"]["A_not_reloaded"] = flux_first == flux_now and len(flux_now) == 3
        obs["checks"]["entries_on_cuda"] = any(e["tier"] == "gpu" and e["device"].startswith("cuda") for e in rep["entries"])
        obs["tiers_after_cycle"] = {e["name"]: (e["tier"], e["device"]) for e in rep["entries"]}
        ace = next(e for e in rep["entries"] if e["family"] == "ace15" and e["role"] == "diffusion_model")
        srv.post("/lockn/residency/pin", {"id": ace["id"], "pinned": True})
        loads = {e["id"]: e["loads_from_disk"] for e in rep["entries"]}
        srv.post("/free", {"unload_models": True})
        deadline = time.time() + 30
        while time.time() < deadline and any(e["tier"] == "gpu" for e in srv.get("/lockn/residency")["entries"]):
            time.sleep(0.3)
        after = srv.get("/lockn/residency")
        obs["tiers_after_free"] = {e["name"]: (e["tier"], e["device"]) for e in after["entries"]}
        obs["host_pinned_bytes_after_free"] = {"total": after["totals"].get("host_pinned_bytes"),
                                               **{e["name"]: e.get("host_pinned_bytes") for e in after["entries"]}}
        obs["checks"]["free_unloads_all_pinned_included"] = all(e["tier"] != "gpu" for e in after["entries"])
        obs["checks"]["pin_kept_as_flag"] = next(e for e in after["entries"] if e["id"] == ace["id"])["pinned"]
        srv.run(g["C"], timeout=600)
        again = srv.get("/lockn/residency")
        obs["checks"]["registry_consistent_after_free"] = (
            {e["id"]: e["loads_from_disk"] for e in again["entries"]} == loads
            and any(e["tier"] == "gpu" for e in again["entries"] if e["family"] == "ace15"))
        # Settling outside the prompt worker's thread (a report, the idle watcher), on the device:
        # a GPU budget of 1 MB applies after the prompt; a dropped model reloads onto the device.
        srv.run(graphs.with_residency(g["A"], gpu_gb=0.001), timeout=600)
        tight = srv.get("/lockn/residency")
        obs["tiers_after_1mb_budget"] = {e["name"]: (e["tier"], e["device"]) for e in tight["entries"]}
        dit = next(e for e in tight["entries"] if e["family"] == "flux2" and e["role"] == "diffusion_model")
        obs["warnings_after_1mb_budget"] = tight["warnings"]                # the pinned ACE-Step model stays
        obs["checks"]["budget_applied_after_prompt"] = (
            dit["tier"] == "ram" and all(e["tier"] != "gpu" for e in tight["entries"] if not e["pinned"]))
        srv.post("/lockn/residency/evict", {"id": dit["id"], "to": "dropped"})
        srv.run(graphs.with_residency(g["A"], gpu_gb=0.0), timeout=600)          # the default budget again
        back = next(e for e in srv.get("/lockn/residency")["entries"] if e["id"] == dit["id"])
        obs["checks"]["dropped_model_reloads_onto_the_device"] = (
            back["loads_from_disk"] == dit["loads_from_disk"] + 1 and back["tier"] == "gpu")
        log = srv.log_tail(200000)
        obs["log_mentions_dynamic_vram"] = [line.strip() for line in log.splitlines()
                                            if "dynamic" in line.lower() or "aimdo" in line.lower()][:6]
        obs["vram_state_lines"] = [line.strip() for line in log.splitlines() if "VRAM" in line][:4]
    except Exception as e:                                   # report, and let the other setting run
        obs["error"] = f"{type(e).__name__}: {e}"
        obs["log_tail"] = srv.log_tail(4000)
    finally:
        srv.stop()
        shutil.rmtree(srv.base, ignore_errors=True)
    return obs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "gpu_check.json"))
    a = ap.parse_args()
    from bench import machine
    import numpy as np
    from PIL import Image
    models = tiny.ensure()
    img = Path(a.out).parent / "start.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")).save(img)
    res = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "settings": [check_setting(models, img, dynamic=True), check_setting(models, img, dynamic=False)]}
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1)[:6000])
    ok = all(s.get("checks") and all(s["checks"].values()) and "error" not in s for s in res["settings"])
    print("GPU CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
