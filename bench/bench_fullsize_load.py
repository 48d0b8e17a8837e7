"""Write one full-size random-weight file (lockn_testing/fullsize.py) and load it with ComfyUI's
own loader on the CPU, measuring what the load costs in memory against the file size.

    python -m bench.bench_fullsize_load [--file Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf] [--dir /tmp/lockn-fullsize] [--keep]

Steps: (1) write the file (timed) into DIR/<folder>/<file> and compare its size with the
catalog; (2) in a fresh process (so nothing else is mapped), load it through ComfyUI-GGUF's
UnetLoaderGGUF (``.gguf``) or ``comfy.sd.load_diffusion_model`` (``.safetensors``) and record
the peak resident memory the load added (VmHWM after resetting it via /proc/self/clear_refs,
minus VmRSS before), split into anonymous memory (RssAnon: copies) and file pages (RssFile: the
memory-mapped file, reclaimable page cache); (3) read every stored weight byte once (what the
first forward pass on a CPU does) and record the same figures again. The file is deleted
afterwards unless ``--keep``; ``--cold`` drops it from the page cache before the load.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _status() -> dict[str, int]:
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out


def child(path: str) -> None:
    sys.path.insert(0, str(REPO))
    models = str(Path(path).parents[1])
    from lockn_testing.harness.inprocess import InProcessComfy
    c = InProcessComfy(models, tempfile.mkdtemp(prefix="lockn-fullsize-"), load_pack=False)
    import comfy.sd
    import torch
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    s0 = _status()
    t0 = time.perf_counter()
    if path.endswith(".gguf"):
        model = c.nodes.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]().load_unet(os.path.basename(path))[0]
    else:
        model = comfy.sd.load_diffusion_model(path)
    t1 = time.perf_counter()
    s1 = _status()
    mc = model.model.model_config
    cfg = {k: v for k, v in mc.unet_config.items() if isinstance(v, (int, float, str, bool))}
    dm = model.model.diffusion_model                   # GGUF weights keep their real shape in tensor_shape
    params = sum(int(getattr(t, "tensor_shape", None).numel() if getattr(t, "tensor_shape", None) is not None
                     else t.numel()) for t in list(dm.parameters()) + list(dm.buffers()))
    with torch.inference_mode():                       # what the first forward pass on a CPU reads
        for t in model.model.diffusion_model.state_dict().values():
            storage = t.untyped_storage()
            if storage.device.type == "cpu" and storage.nbytes():
                int(torch.empty(0, dtype=torch.uint8).set_(storage).sum())
    t2 = time.perf_counter()
    s2 = _status()
    print(json.dumps({"detected": type(mc).__name__, "unet_config": cfg, "params": params,
                      "load_s": t1 - t0, "touch_s": t2 - t1, "rss_before": s0["VmRSS"],
                      "load_peak_added": s1["VmHWM"] - s0["VmRSS"], "load_anon_added": s1["RssAnon"] - s0["RssAnon"],
                      "load_file_added": s1["RssFile"] - s0["RssFile"],
                      "touched_peak_added": s2["VmHWM"] - s0["VmRSS"], "touched_anon_added": s2["RssAnon"] - s0["RssAnon"],
                      "touched_file_added": s2["RssFile"] - s0["RssFile"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", default="Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "lockn-fullsize"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child)
    sys.path.insert(0, str(REPO))
    from bench import drop_from_page_cache, machine
    from lockn_testing import fullsize
    plan = fullsize.plan_file(a.file)
    entry = fullsize._catalog().file(a.file)
    path = os.path.join(a.dir, entry.folder, a.file)
    res = {"file": a.file, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        if os.path.exists(path) and os.path.getsize(path) == plan.size():
            print(f"reusing {path}")
        else:
            w = plan.write(path, progress=None)
            import resource
            res.update(write_s=w["seconds"], write_mb_s=w["bytes"] / w["seconds"] / 1e6,
                       writer_maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            print(f"wrote {path}: {w['bytes']:,} bytes in {w['seconds']:.1f} s", flush=True)
        size = os.path.getsize(path)
        res.update(file_bytes=size, plan_bytes=plan.size(), catalog_bytes=entry.size, ratio=size / entry.size)
        if a.cold:
            drop_from_page_cache(path)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        out = subprocess.run([sys.executable, "-m", "bench.bench_fullsize_load", "--child", path], cwd=str(REPO),
                             capture_output=True, text=True, env=env)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not line:
            raise SystemExit(f"load failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        res.update(json.loads(line[-1]))
        for k in ("load_peak_added", "load_anon_added", "touched_peak_added", "touched_anon_added"):
            res[k + "_over_file"] = res[k] / size
    finally:
        if not a.keep and os.path.exists(path):
            os.remove(path)
    outp = REPO / "bench" / "out" / "fullsize_load.json"
    outp.parent.mkdir(parents=True, exist_ok=True)
    outp.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
