"""What ComfyUI's prompt hook would cost every prompt: its cache-provider hook (comfy_api.latest Caching)
is the one prompt-end signal a custom node gets, and while any provider is registered ComfyUI's
executor serialises and hashes every node's cache key two or three times per node
(comfy_execution/caching.py, _build_context). LockN's registry first had it registered all the time;
it now settles after a prompt without it (nodes/residency.py, "prompt life cycle") and registers it
only while an eviction waits for a running prompt. This measures the price that avoids.

    python -m bench.bench_prompt_hook [--reps 5]

In-process ComfyUI (CPU) on the tiny models, core loaders. Each measured prompt follows a different
graph, so that under ComfyUI's default cache every node runs again, as on a mode switch. "off": no
provider registered; "on": LockN's hook registered when the prompt starts, as it was for every
prompt before. Alternated, medians. Graphs: the three template graphs of the mode-switch benchmark and
the shipped 37-node quality chain (workflows/chain_quality.json, with the demo's tiny settings).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402
from lockn_testing import graphs  # noqa: E402


def chain_prompt(models: Path) -> dict:
    """The shipped quality chain in API form with the demo's tiny settings (needs a server's
    /object_info: a short-lived one)."""
    from lockn_gen import workflow
    from lockn_gen.demo_sets import TINY
    from lockn_testing.harness.server import serving
    with serving(models) as srv:
        info = srv.get("/object_info")
    wf = workflow.to_api(str(REPO / "workflows" / "chain_quality.json"), info)
    workflow.apply_sets(wf, TINY["chain_quality"], info)
    return wf.prompt


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "prompt_hook.json"))
    a = ap.parse_args()

    from lockn_testing import tiny
    from lockn_testing.harness.inprocess import InProcessComfy
    models = tiny.ensure()
    chain = chain_prompt(models)
    comfy = InProcessComfy(str(models), tempfile.mkdtemp(prefix="lockn-hook-"))
    import folder_paths
    import numpy as np
    from PIL import Image
    start = Path(folder_paths.get_input_directory()) / "start.png"
    start.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.RandomState(0).rand(48, 40, 3) * 255).astype("uint8")).save(start)
    for n in chain.values():
        if n["class_type"] == "LoadImage" and n["inputs"]["image"] != "start.png":
            shutil.copy(start, start.parent / n["inputs"]["image"])

    flows = {
        "image (13 nodes)": lambda: graphs.flux2_t2i(loader="core", steps=1, prefix="hook/img"),
        "video (15 nodes)": lambda: graphs.wan22_i2v(loader="core", steps=2, split=1, prefix="hook/vid"),
        "music (10 nodes)": lambda: graphs.ace15_t2m(loader="core", seconds=1.0, steps=2, top_p=1.0, prefix="hook/mus"),
        "quality chain (37 nodes)": lambda: json.loads(json.dumps(chain)),
    }
    reg = next(m.REGISTRY for n, m in sys.modules.items() if n.endswith("nodes.residency") and hasattr(m, "REGISTRY"))
    import comfy_execution.cache_provider as cp
    spent = [0.0]
    originals = (cp._serialize_cache_key, cp._contains_self_unequal)

    def timed(fn):
        def wrapper(key):
            t = time.perf_counter()
            try:
                return fn(key)
            finally:
                spent[0] += time.perf_counter() - t
        return wrapper
    cp._serialize_cache_key, cp._contains_self_unequal = (timed(f) for f in originals)

    names = list(flows)
    res = {name: {"off": [], "on": [], "hashing_on": []} for name in names}
    try:
        for rep in range(a.reps + 1):                      # the first round warms up, not counted
            for i, name in enumerate(names):
                for mode in ("off", "on") if rep % 2 else ("on", "off"):
                    comfy.run(flows[names[i - 1]]())       # another graph first: everything runs again
                    if mode == "on":
                        reg.arm()                          # registered as it was for every prompt
                    spent[0] = 0.0
                    t0 = time.perf_counter()
                    comfy.run(flows[name]())
                    wall = time.perf_counter() - t0
                    assert not reg.armed, "the hook outlived its prompt"
                    if rep:
                        res[name][mode].append(wall)
                        if mode == "on":
                            res[name]["hashing_on"].append(spent[0])
            print(f"round {rep + 1}/{a.reps + 1} done", flush=True)
    finally:
        cp._serialize_cache_key, cp._contains_self_unequal = originals

    summary = {name: {"prompt_ms_without_hook": 1000 * statistics.median(r["off"]),
                      "prompt_ms_with_hook": 1000 * statistics.median(r["on"]),
                      "cache_key_hashing_ms_with_hook": 1000 * statistics.median(r["hashing_on"])}
               for name, r in res.items()}
    out = {"machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "reps": a.reps, "runs": res, "summary": summary}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    for name, s in summary.items():
        print(f"{name:26s} without {s['prompt_ms_without_hook']:7.1f} ms   with {s['prompt_ms_with_hook']:7.1f} ms"
              f"   of which key hashing {s['cache_key_hashing_ms_with_hook']:6.1f} ms")


if __name__ == "__main__":
    main()
