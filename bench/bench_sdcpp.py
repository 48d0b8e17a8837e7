"""ComfyUI (+ the LockN loader) against stable-diffusion.cpp (the LockN sd.cpp node) on the same Flux.2 files and
shapes, side by side in one run of one ComfyUI server (issue 27). Run on purpose, never in CI.

For each engine, one after the other in the same server (everything freed and the files dropped from the page cache
before each engine's first run, so each reads its files from the disk):

- ComfyUI: the LockN Flux.2 loader (preset PRESET) -> CLIPTextEncode -> FluxGuidance -> BasicGuider ->
  SamplerCustomAdvanced (euler, Flux2Scheduler) -> VAEDecode -> SaveImage: the pack's image stage.
- sd.cpp: the LockN Flux.2 stable-diffusion.cpp node (preset PRESET-sdcpp: the same diffusion model and VAE file;
  for klein the same text encoder file) -> SaveImage. `--threads` for the worker (0: sd.cpp's choice).

Each engine runs every size in `--sizes` (the first run loads, the next ones find the model resident). Per run:
wall seconds; the loader's or context's load seconds (ComfyUI: the loader node; sd.cpp: its "loaded ... in X s"
log line); seconds per sampling step from the websocket's progress messages (the interval between the first and the
last step's message over steps - 1: text encoding, loading and decoding left out); text encoding and decoding
seconds for ComfyUI (their nodes); peak resident memory of the server and its children (the sd.cpp worker),
sampled every 0.2 s; the picture's path. The server runs `--cpu --bf16-unet --bf16-text-enc` on a CPU box (ComfyUI
would otherwise hold the bf16 files as fp32 there: twice the memory, 22.6 GB peak for klein at 64x64 on this 23 GB
box, and not the same work as sd.cpp's bf16).

    python -m lockn_testing.fullsize --preset flux2-klein-4b --out /tmp/fsk/models
    COMFYUI_PATH=~/comfy33/ComfyUI ~/comfy33/ComfyUI/.venv/bin/python -m bench.bench_sdcpp --models /tmp/fsk/models \\
        [--preset flux2-klein-4b] [--sizes 512,1024] [--steps 2] [--threads 2] [--engines sdcpp,comfy]
        [--out bench/results/DATE_sdcpp_cpu.json]

Random weights say nothing of quality: on the GPU run (bench/device/sdcpp_gpu.sh) the real files' pictures are
compared by eye.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

from bench import drop_from_page_cache, machine

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a red fox in fresh snow at dawn, soft light, detailed fur"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (one level: the sd.cpp worker)."""
    total = 0
    for p in [str(pid), *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def _children(pid: int) -> list[str]:
    """Children of every thread of the process (the worker is started from ComfyUI's executor thread)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += f.read().split()
        except OSError:
            continue
    return out


class Peak(threading.Thread):
    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak, self._halt = pid, period, 0, threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._halt.wait(self.period)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def comfy_graph(preset: str, size: int, steps: int, seed: int) -> tuple[dict, str, str]:
    from lockn_testing import graphs
    g = graphs.flux2_t2i(loader="lockn", preset=preset, width=size, height=size, steps=steps, seed=seed,
                         prefix=f"bench-sdcpp/comfy-{size}")
    g["6"]["inputs"]["text"] = PROMPT
    return g, "12", "13"                         # the graph, its loader node, its sampler node


def sdcpp_graph(preset: str, size: int, steps: int, seed: int, threads: int) -> tuple[dict, str, str]:
    from lockn_testing import graphs
    g = graphs.sdcpp_t2i(prompt=PROMPT, width=size, height=size, steps=steps, seed=seed, preset=preset,
                         prefix=f"bench-sdcpp/sdcpp-{size}", threads=threads, text_encoder="(preset)")
    return g, "1", "1"


def step_seconds(res, node: str) -> float | None:
    """Seconds per sampling step from the node's progress messages: between the first step's end and the last
    step's (sd.cpp also reports step 0 at the start of sampling, ComfyUI's samplers do not: values below 1 are left
    out, so both count the same steps)."""
    marks = [(m["data"]["value"], m["received_at"]) for m in res.messages
             if m.get("type") == "progress" and str(m.get("data", {}).get("node")) == node
             and m["data"].get("value", 0) >= 1]
    if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
        return None
    return round((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]), 2)


def run_one(srv, engine: str, size: int, graph: dict, loader: str, sampler: str, steps: int, log_from: int) -> dict:
    peak = Peak(srv.proc.pid)
    base = tree_rss(srv.proc.pid)
    peak.start()
    t0 = time.perf_counter()
    try:
        res = srv.run(graph, timeout=6 * 3600)
    finally:
        top = peak.stop()
    out = {"wall_s": round(time.perf_counter() - t0, 1), "rss_before_gb": round(base / 1e9, 2),
           "peak_rss_gb": round(top / 1e9, 2), "step_s": step_seconds(res, sampler)}
    ns = {k: round(v, 1) for k, v in res.node_seconds().items()}
    out["node_s"] = {f"{k} {graph[k]['class_type']}": v for k, v in ns.items() if k in graph}
    log = srv.log_path.read_text(errors="replace")[log_from:]
    if engine == "comfy":
        out["load_s"] = ns.get(loader) if loader not in res.cached else 0.0
        out["text_encode_s"] = ns.get("6")
        out["decode_s"] = ns.get("8")
    else:
        m = re.search(r"LockN sd\.cpp: loaded .* in ([0-9.]+) s on (\S+)", log)
        out["load_s"] = float(m.group(1)) if m else 0.0
        out["device"] = m.group(2) if m else None
        node = ns.get(loader)
        if node is not None and out["step_s"] is not None:      # its text encoding and decoding, together
            out["text_encode_and_decode_s"] = round(node - out["load_s"] - steps * out["step_s"], 1)
    keep = REPO / "bench" / "out" / "sdcpp"
    keep.mkdir(parents=True, exist_ok=True)
    out["pictures"] = []
    for i, p in enumerate(srv.output_files(res)):
        dest = keep / f"{engine}-{size}-{i}{p.suffix}"
        shutil.copy(p, dest)
        out["pictures"].append(str(dest.relative_to(REPO)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="models root with the preset's files (lockn_testing.fullsize)")
    ap.add_argument("--preset", default="flux2-klein-4b", help="the ComfyUI preset; sd.cpp runs PRESET-sdcpp")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="sd.cpp worker threads (0: sd.cpp's choice)")
    ap.add_argument("--engines", default="sdcpp,comfy",
                    help="in this order (sd.cpp first: its worker gives all its memory back when freed)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--gpu", action="store_true", help="a GPU server (no --cpu, no --bf16-unet)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from lockn_gen import catalog
    from lockn_testing.comfy_boot import COMFYUI_PATH
    from lockn_testing.harness.server import serving
    cat = catalog.builtin()
    sizes = [int(s) for s in a.sizes.split(",")]
    files = {e: [Path(a.models) / cat.files[n].folder / n for n in cat.presets[p].components.values()]
             for e, p in (("comfy", a.preset), ("sdcpp", f"{a.preset}-sdcpp"))}
    missing = [str(f) for fs in files.values() for f in fs if not f.is_file()]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; write them with python -m lockn_testing.fullsize --preset "
                         f"{a.preset} --out {a.models}")
    version = (Path(COMFYUI_PATH) / "comfyui_version.py").read_text().split('"')[1]
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "comfyui": version,
              "preset": a.preset, "sizes": sizes, "steps": a.steps, "threads": a.threads, "prompt": PROMPT,
              "files": {e: {f.name: f.stat().st_size for f in fs} for e, fs in files.items()}, "runs": []}
    out = Path(a.out or REPO / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}_sdcpp_{'gpu' if a.gpu else 'cpu'}.json")
    args = () if a.gpu else ("--bf16-unet", "--bf16-text-enc")
    with serving(a.models, extra_args=args, cpu=not a.gpu) as srv:
        for engine in a.engines.split(","):
            srv.post("/free", {"free_memory": True, "unload_models": True})
            time.sleep(2)
            drop_from_page_cache(*files[engine])
            for i, size in enumerate(sizes):
                g, loader, sampler = (comfy_graph(a.preset, size, a.steps, a.seed) if engine == "comfy" else
                                      sdcpp_graph(f"{a.preset}-sdcpp", size, a.steps, a.seed, a.threads))
                log_from = srv.log_path.stat().st_size
                print(f"[bench_sdcpp] {engine} {size}x{size} {a.steps} steps ...", flush=True)
                r = {"engine": engine, "size": size, "first": i == 0,
                     **run_one(srv, engine, size, g, loader, sampler, a.steps, log_from)}
                print(f"[bench_sdcpp]   {json.dumps(r)}", flush=True)
                result["runs"].append(r)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(result, indent=1))
        result["registry"] = srv.get("/lockn/residency")["entries"]
    out.write_text(json.dumps(result, indent=1))
    print(f"[bench_sdcpp] written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
