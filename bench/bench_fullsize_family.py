"""A preset's full-size files through the pack on a CPU: write them (lockn_testing/fullsize.py),
start a real ComfyUI with LockN Gen against them, run the family's graph through the LockN loader
for one sampling step per model on the smallest latent the model takes, and record what it cost.

    python -m bench.bench_fullsize_family [--preset wan22-i2v-a14b-q4_k_m] [--preset ace15-turbo]
        [--dir /var/tmp/lockn-fullsize-family] [--disk-budget-gb 30] [--keep] [--timeout 2400]

One preset at a time: the plan's total size must fit --disk-budget-gb (checked before anything is
written) and the free disk; the files are written into DIR/models/<folder>/<file> (the layout of a
ComfyUI models dir; files already there with the planned size are reused) and deleted after the
preset unless --keep. Per preset the JSON (bench/results/<date>_cpu_fullsize_<preset>.json) holds:

- files: name, bytes, write seconds;
- detected: what ComfyUI built from the files (model class, model_config class, parameter count
  of the loaded model, GGUF tensors counted by their real shape; text encoder class and count), read
  by a probe node (``LockNBenchProbe``, written into the server's custom_nodes at run time) that
  takes the loader's outputs, against the published count and the writer's plan count. The count is
  parameters + buffers, so it includes non-persistent buffers the file does not hold (ACE-Step 1.5's
  rotary cos/sin caches: +42,327,384; one buffer element each in umt5 and the Qwen3 encoders);
- node_seconds: wall time per node from the websocket (``load_s`` is the LockN loader's);
- rss: the server process's VmRSS / VmHWM / RssAnon / RssFile sampled every 0.2 s in a thread
  (peaks, the peak per executing node, a 1 s timeline) and the system's lowest MemAvailable,
  against the largest file and the sum of the files;
- residency: GET /lockn/residency after the run (entries with tier and bytes, totals, budgets);
- outcome: "finished", "error" (the node's message), "timeout", or "killed" (the server's exit
  code; -9 without a Python traceback is the kernel OOM killer's signature), with the log tail.

``--ram-budget-gb 0,30`` runs the prompt once per value on the same files, each on a fresh server:
0 is the pack's default budget (no Residency node), any other value puts a LockNResidency node with
that ram_budget_gb between the loader and the graph (lockn_testing.graphs.with_residency). The JSON
keeps every run under ``runs``; its top-level fields are the last finished run's.

Graphs (lockn_testing/graphs.py, loader="lockn"): Wan2.2 I2V A14B at 16x16 px and 1 frame
(WanImageToVideo's minimum: width/height step 16, length 1 -> a 1x2x2 latent, one 1x2x2 patch),
2 steps split at 1 so each expert samples exactly once (one step with split 1 would skip the
low-noise expert entirely); ACE-Step 1.5 turbo: 1 step on the shortest latent
(EmptyAceStep1.5LatentAudio's minimum seconds) with the LM planner's audio codes off (so the
1.7B LM's token-by-token generation does not dominate; its weights still load with the CLIP).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GB = 1e9

#: published parameter counts (model cards) by catalog file; None where no figure is published
PUBLISHED = {
    "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf": (14e9, "Wan2.2 A14B: 27B total, 14B per expert / active per step (Wan-AI model card)"),
    "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf": (14e9, "Wan2.2 A14B: 27B total, 14B per expert / active per step (Wan-AI model card)"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": (None, "umt5-xxl: 13B encoder-decoder published; ComfyUI keeps the encoder only"),
    "wan_2.1_vae.safetensors": (None, "Wan 2.1 VAE: 127M (not stated on the card)"),
    "acestep_v1.5_turbo.safetensors": (None, "ACE-Step 1.5 DiT: about 2B (model card), no exact count"),
    "qwen_0.6b_ace15.safetensors": (0.6e9, "Qwen3-0.6B: 0.6B (0.44B without embeddings)"),
    "qwen_1.7b_ace15.safetensors": (1.7e9, "Qwen3-1.7B: 1.7B (1.4B without embeddings)"),
}

PROBE = r'''
import json, torch

def _count(module):
    n = 0
    seen = set()
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        shape = getattr(t, "tensor_shape", None)          # ComfyUI-GGUF: the real shape of a packed tensor
        n += int(shape.numel() if shape is not None else t.numel())
    return n

def _model(m):
    mm = m.model
    dm = mm.diffusion_model
    cfg = {k: v for k, v in getattr(mm.model_config, "unet_config", {}).items() if isinstance(v, (int, float, str, bool))}
    dtypes = {}
    for t in dm.parameters():
        dtypes[str(t.dtype)] = dtypes.get(str(t.dtype), 0) + 1
    return {"model_class": type(mm).__name__, "config_class": type(mm.model_config).__name__,
            "diffusion_model_class": type(dm).__name__, "params": _count(dm), "unet_config": cfg,
            "weight_dtypes": dtypes, "manual_cast_dtype": str(getattr(mm, "manual_cast_dtype", None)),
            "model_dtype": str(mm.get_dtype()) if hasattr(mm, "get_dtype") else None}

class LockNBenchProbe:
    CATEGORY = "testing"
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "probe"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "optional": {"model": ("MODEL",), "model_2": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",)}}

    def probe(self, model=None, model_2=None, clip=None, vae=None):
        out = {}
        if model is not None:
            out["model"] = _model(model)
        if model_2 is not None:
            out["model_2"] = _model(model_2)
            out["model_2_is_model"] = model_2 is model
        if clip is not None:
            cs = clip.cond_stage_model
            out["clip"] = {"class": type(cs).__name__, "params": _count(cs),
                           "parts": {k: {"class": type(v).__name__, "params": _count(v)}
                                     for k, v in cs.named_children() if isinstance(v, torch.nn.Module)}}
        if vae is not None:
            fm = vae.first_stage_model
            out["vae"] = {"class": type(fm).__name__, "params": _count(fm)}
        return {"ui": {"probe": [json.dumps(out)]}}

NODE_CLASS_MAPPINGS = {"LockNBenchProbe": LockNBenchProbe}
'''

STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def proc_status(pid: int) -> dict[str, int] | None:
    try:
        out = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in STATUS_KEYS:
                    out[k] = int(v.split()[0]) * 1024
        return out
    except OSError:
        return None


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """/proc/PID/status every `period` s: peaks overall and per executing node, a 1 s timeline."""

    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.node = "(before prompt)"
        self.peak = {k: 0 for k in STATUS_KEYS}
        self.peak_at: dict[str, str] = {}
        self.per_node: dict[str, dict[str, int]] = {}
        self.timeline: list[dict] = []
        self.min_avail = None
        self.last: dict | None = None
        self.samples = 0
        self._halt = threading.Event()
        self.t0 = time.perf_counter()

    def run(self):
        next_tl = 0.0
        while not self._halt.is_set():
            s = proc_status(self.pid)
            if s is None:
                break
            self.samples += 1
            self.last = s
            avail = mem_available()
            self.min_avail = avail if self.min_avail is None else min(self.min_avail, avail)
            node = self.node
            pn = self.per_node.setdefault(node, {k: 0 for k in STATUS_KEYS})
            for k in STATUS_KEYS:
                v = s.get(k, 0)
                if v > self.peak[k]:
                    self.peak[k], self.peak_at[k] = v, node
                pn[k] = max(pn[k], v)
            t = time.perf_counter() - self.t0
            if t >= next_tl:
                self.timeline.append({"t": round(t, 1), "node": node, **{k: s.get(k, 0) for k in ("VmRSS", "RssAnon", "RssFile")},
                                      "MemAvailable": avail})
                next_tl = t + 1.0
            self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


def graph_for(preset: str, family: str, image: str, overrides: dict | None = None,
              info: dict | None = None) -> tuple[dict, str, dict]:
    """(prompt, loader node id, what was shrunk) for a preset's family at its minimum size (`info`: the
    server's /object_info, for minimums that differ between ComfyUI versions)."""
    from lockn_testing import graphs
    if family == "ltx2":
        g = graphs.ltx2_av(loader="lockn", preset=preset, overrides=overrides, width=64, height=64, length=1,
                           steps=1, prefix="video/fullsize")
        lid = "1"
        g["3"]["inputs"]["text"] = "A white dragon."
        g["4"]["inputs"]["text"] = "blurry"
        g["47"]["inputs"]["cfg"] = 1.0
        g["900"] = {"class_type": "LockNBenchProbe", "inputs": {"model": [lid, 0], "clip": [lid, 1], "vae": [lid, 2]}}
        return g, lid, {"width": 64, "height": 64, "length": 1, "steps": 1, "cfg": 1.0,
                        "note": "EmptyLTXVLatentVideo's minimum 64x64 x 1 frame (a 2x2x1 latent) and its audio "
                                "latent, one step at cfg 1 (one pass)"}
    if family == "wan22":
        g = graphs.wan22_i2v(image, loader="lockn", width=16, height=16, length=1, steps=2, split=1, fps=16.0,
                             prefix="video/fullsize", preset=preset)
        lid = "95"
        g["900"] = {"class_type": "LockNBenchProbe", "inputs": {"model": [lid, 0], "model_2": [lid, 1], "clip": [lid, 2], "vae": [lid, 3]}}
        g["93"]["inputs"]["text"] = "A white dragon."
        g["89"]["inputs"]["text"] = "blurry"
        return g, lid, {"width": 16, "height": 16, "length": 1, "steps": 2, "split": 1,
                        "note": "each expert samples one step (cfg 3.5: cond + uncond per step)"}
    if family == "ace15":
        g = graphs.ace15_t2m(seconds=1.0, steps=1, loader="lockn", prefix="audio/fullsize", preset=preset)
        lid = "104"
        g["94"]["inputs"].update(generate_audio_codes=False, lyrics="[Verse]\nla", tags="pop")
        g["900"] = {"class_type": "LockNBenchProbe", "inputs": {"model": [lid, 0], "clip": [lid, 1], "vae": [lid, 2]}}
        shrunk = {"seconds": 1.0, "steps": 1, "generate_audio_codes": False}
        ms = min_seconds_ace(info) if info else None
        if ms is not None:
            g["98"]["inputs"]["seconds"] = ms
            g["94"]["inputs"]["duration"] = ms
            shrunk["seconds"] = ms
        return g, lid, shrunk
    if family == "flux2":
        g = graphs.flux2_t2i(loader="lockn", width=32, height=32, steps=1, prefix="image/fullsize", preset=preset)
        lid = "12"
        g["6"]["inputs"]["text"] = "A white dragon."
        g["900"] = {"class_type": "LockNBenchProbe", "inputs": {"model": [lid, 0], "clip": [lid, 1], "vae": [lid, 2]}}
        return g, lid, {"width": 32, "height": 32, "steps": 1, "note": "a 2x2 latent, one step (guidance-distilled: one pass)"}
    raise SystemExit(f"no minimal graph for family {family!r} (supported: wan22, ace15, flux2, ltx2)")


def min_seconds_ace(info: dict) -> float | None:
    try:
        return float(info["EmptyAceStep1.5LatentAudio"]["input"]["required"]["seconds"][1]["min"])
    except (KeyError, IndexError, TypeError):
        return None


def log_lines(text: str) -> list[str]:
    keep = re.compile(r"model_type|Requested to load|loaded completely|loaded partially|model weight dtype|"
                      r"CLIP/text encoder model load device|VAE load device|Killed|MemoryError|Traceback|Error|"
                      r"LockN|gguf|Prompt executed", re.I)
    return [ln for ln in text.splitlines() if keep.search(ln)][-80:]


def run_preset(preset: str, root: Path, budget_gb: float, keep: bool, timeout: float, period: float,
               ram_budgets=(0.0,), overrides: dict | None = None, stand_ins: bool = False) -> dict:
    from bench import machine
    from lockn_testing import fullsize
    from lockn_testing.harness.server import ComfyServer, PromptError

    cat = fullsize._catalog()
    pre = cat.presets[preset] if hasattr(cat, "presets") else None
    if overrides:       # role -> another catalog file (the loader's per-role inputs take the same)
        comps = {**pre.components, **overrides}
        plans = {n: (fullsize.plan_file(n) if n in fullsize.RECIPES else None) for n in comps.values()}
    else:
        plans = fullsize.plan_preset(preset)
    res: dict = {"preset": preset, "machine": {**machine(), "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")},
                 "date": time.strftime("%Y-%m-%d %H:%M"), "disk_budget_gb": budget_gb,
                 "command": f"python -m bench.bench_fullsize_family --preset {preset} --disk-budget-gb {budget_gb:g} "
                            f"--ram-budget-gb {','.join(f'{x:g}' for x in ram_budgets)}"}
    missing = [n for n, p in plans.items() if p is None]
    total = sum(p.size() for p in plans.values() if p is not None)
    res["plan"] = {"files": {n: (p.size() if p else None) for n, p in plans.items()}, "total_bytes": total,
                   "no_recipe": missing}
    res["overrides"] = overrides or {}
    stand = {}
    if missing and stand_ins:
        # files without a writer recipe: the tiny test set's file of that name (same key layout and latent
        # channels, tiny widths), said so in the results
        from lockn_testing import tiny
        troot = tiny.ensure()
        for n in missing:
            src = troot / cat.file(n).folder / n
            if src.exists():
                stand[n] = src
        missing = [n for n in missing if n not in stand]
    res["stand_ins"] = {n: {"bytes": os.path.getsize(src), "from": "the tiny test set (no writer recipe)"}
                        for n, src in stand.items()}
    if missing:
        res["outcome"] = "skipped"
        res["reason"] = f"the writer has no recipe for {missing}"
        return res
    if total > budget_gb * GB:
        res["outcome"] = "skipped"
        res["reason"] = f"{total / GB:.2f} GB of files > disk budget {budget_gb:g} GB"
        return res
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    existing = 0
    paths = {}
    for n, p in plans.items():
        path = models / cat.file(n).folder / n
        paths[n] = path
        if p is not None and path.exists() and path.stat().st_size == p.size():
            existing += p.size()
    free = shutil.disk_usage(models).free
    if free < total - existing + (2 << 30):
        res["outcome"] = "skipped"
        res["reason"] = f"{(total - existing) / GB:.2f} GB to write, {free / GB:.2f} GB free"
        return res

    files = {}
    try:
        for n, src in stand.items():
            paths[n].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, paths[n])
            files[n] = {"bytes": os.path.getsize(paths[n]), "write_s": None, "stand_in": True}
            print(f"stand-in {n}: the tiny test file ({files[n]['bytes'] / 1e6:.1f} MB)", flush=True)
        for n, p in plans.items():
            if p is None:
                continue
            path = paths[n]
            if path.exists() and path.stat().st_size == p.size():
                files[n] = {"bytes": p.size(), "write_s": None, "reused": True}
                print(f"reusing {path}", flush=True)
                continue
            w = p.write(str(path))
            files[n] = {"bytes": os.path.getsize(path), "write_s": round(w["seconds"], 1),
                        "write_mb_s": round(w["bytes"] / w["seconds"] / 1e6, 1), "plan_params": p.params}
            print(f"wrote {n}: {w['bytes'] / GB:.2f} GB in {w['seconds']:.0f} s", flush=True)
        for n, p in plans.items():
            files[n].setdefault("plan_params", p.params if p is not None else None)
            pub = PUBLISHED.get(n)
            files[n]["published_params"], files[n]["published_note"] = pub if pub else (None, None)
            files[n]["role"] = next((r for r, f in ({**pre.components, **(overrides or {})}.items() if pre is not None else [])
                                     if f == n), None)
        res["files"] = files
        res["written_bytes"] = sum(f["bytes"] for f in files.values())
        res["largest_file_bytes"] = max(f["bytes"] for f in files.values())
        runs = []
        for ram_gb in ram_budgets:
            print(f"running {preset} with ram_budget_gb={ram_gb:g} ({'default' if not ram_gb else 'Residency node'})", flush=True)
            r = _serve_and_run(preset, models, res, timeout, period, ComfyServer, PromptError, ram_gb)
            print("  " + summary({**res, **r}), flush=True)
            runs.append(r)
        res["runs"] = runs
        res.update(next((r for r in reversed(runs) if r.get("outcome") == "finished"), runs[-1]))
    finally:
        if not keep:
            for path in paths.values():
                if path.exists():
                    path.unlink()
    return res


def _serve_and_run(preset, models, res, timeout, period, ComfyServer, PromptError, ram_gb=0.0) -> dict:
    from lockn_gen import catalog
    from lockn_testing import graphs
    from PIL import Image
    family = catalog.builtin().presets[preset].family
    out: dict = {"family": family, "ram_budget_gb": ram_gb}
    base = Path(tempfile.mkdtemp(prefix="lockn-fsfam-"))
    probe_dir = base / "_probe"
    probe_dir.mkdir()
    (probe_dir / "__init__.py").write_text(PROBE)
    srv = ComfyServer(models, base_dir=base / "comfy", extra_args=("--cache-classic",))
    srv.custom_nodes["lockn_bench_probe"] = probe_dir
    sampler = None
    try:
        t0 = time.perf_counter()
        srv.start(timeout=300)
        out["server_start_s"] = round(time.perf_counter() - t0, 1)
        Image.new("RGB", (16, 16), (200, 180, 160)).save(srv.base / "input" / "fullsize_start.png")
        info = srv.get("/object_info")
        prompt, lid, shrunk = graph_for(preset, family, "fullsize_start.png", res.get("overrides") or None, info)
        if ram_gb:
            prompt = graphs.with_residency(prompt, ram_gb=ram_gb)   # LockNResidency between loader and graph
        out["graph"] = {"shrunk": shrunk, "loader_node": lid, "nodes": {k: v["class_type"] for k, v in prompt.items()}}
        base_status = proc_status(srv.proc.pid)
        out["rss_idle_server"] = base_status
        sampler = Sampler(srv.proc.pid, period)
        sampler.start()

        t1 = time.perf_counter()
        result, outcome = run_watched(srv, prompt, timeout, sampler, PromptError)
        out.update(outcome)
        out["run_s"] = round(time.perf_counter() - t1, 1)
        time.sleep(1.0)
        rc = srv.proc.poll()
        out["server_exit_code"] = rc
        if rc is not None:
            out["outcome"] = "killed" if rc in (-9, 137) else f"server exited ({rc})"
            out["killed_during"] = sampler.node
            out["rss_last_sample"] = sampler.last
        sampler.stop()
        if result is not None:
            ns = result.node_seconds()
            out["node_seconds"] = {f"{k} {prompt.get(k, {}).get('class_type', '?')}": round(v, 2) for k, v in ns.items()}
            out["load_s"] = round(ns[lid], 2) if lid in ns else None
            probe = result.outputs.get("900", {}).get("probe")
            if probe:
                out["detected"] = json.loads(probe[0])
            out["executed"] = list(result.executed)
        out["rss"] = {"peak": sampler.peak, "peak_at_node": sampler.peak_at, "per_node": sampler.per_node,
                      "min_mem_available": sampler.min_avail, "samples": sampler.samples, "period_s": period,
                      "timeline": sampler.timeline}
        out["rss"]["peak_over_largest_file"] = sampler.peak["VmHWM"] / res["largest_file_bytes"]
        out["rss"]["peak_over_total_files"] = sampler.peak["VmHWM"] / res["written_bytes"]
        out["rss"]["peak_anon_over_total_files"] = sampler.peak["RssAnon"] / res["written_bytes"]
        if rc is None:
            after = proc_status(srv.proc.pid)
            out["rss_after"] = after
            try:
                rep = srv.get("/lockn/residency", timeout=60)
                out["residency"] = {"entries": [{k: e.get(k) for k in ("name", "role", "mode", "tier", "device", "bytes",
                                                                       "loads_from_disk", "pinned", "held_after_drop")}
                                                for e in rep["entries"]],
                                    "totals": rep.get("totals"), "budgets": rep.get("budgets"),
                                    "warnings": rep.get("warnings")}
            except Exception as e:
                out["residency_error"] = f"{type(e).__name__}: {e}"
        log = srv.log_tail(200000)
        out["log_lines"] = log_lines(log)
        out["log_tail"] = log[-3000:]
    finally:
        try:
            if sampler is not None and sampler.is_alive():
                sampler.stop()
        finally:
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out


def run_watched(srv, prompt: dict, timeout: float, sampler: "Sampler", PromptError, check=None):
    """Run one prompt with the sampler following the executing node. -> (the result or None, {"outcome",
    "error"}): finished, error (the node's message), timeout, or connection lost (the server died).
    `check` is called on every websocket message (a stop request raises from it)."""
    def on_message(m):
        if check is not None:
            check()
        d = m.get("data", {})
        if m.get("type") == "executing" and d.get("node") is not None:
            sampler.node = f"{d['node']} {prompt.get(d['node'], {}).get('class_type', '?')}"
    out: dict = {}
    result = None
    try:
        result = srv.run(prompt, timeout=timeout, on_message=on_message)
        out["outcome"] = "finished"
        # ComfyUI drops an output whose nodes fail validation and runs the rest: not a finished run
        ran = set(result.executed) | set(getattr(result, "cached", ()))
        dropped = [k for k, n in prompt.items() if n["class_type"].startswith("Save") and k not in ran]
        if dropped:
            out["outcome"] = "incomplete"
            out["error"] = f"output node(s) {dropped} did not run (failed validation?)"
    except PromptError as e:
        result = e.result
        out["outcome"] = "error"
        out["error"] = str(e)[:3000]
    except TimeoutError as e:
        out["outcome"] = "timeout"
        out["error"] = str(e)[:500]
    except Exception as e:                              # the websocket drops when the server dies
        out["outcome"] = "connection lost"
        out["error"] = f"{type(e).__name__}: {e}"[:1000]
    return result, out


def summary(r: dict) -> str:
    if r.get("outcome") == "skipped":
        return f"{r['preset']}: skipped ({r['reason']})"
    pk = r.get("rss", {}).get("peak", {})
    det = r.get("detected", {})
    parts = [f"{r['preset']}: {r.get('outcome')}", f"written {r.get('written_bytes', 0) / GB:.2f} GB",
             f"load {r.get('load_s')} s", f"run {r.get('run_s')} s",
             f"peak VmHWM {pk.get('VmHWM', 0) / GB:.2f} GB (anon {pk.get('RssAnon', 0) / GB:.2f}, file {pk.get('RssFile', 0) / GB:.2f})"]
    for k in ("model", "model_2"):
        if k in det:
            parts.append(f"{k} {det[k]['config_class']} {det[k]['params'] / 1e9:.3f}B")
    if "clip" in det:
        parts.append(f"clip {det['clip']['class']} {det['clip']['params'] / 1e9:.3f}B")
    for e in r.get("residency", {}).get("entries", []):
        parts.append(f"{e['role']}:{e['tier']}:{(e['bytes'] or 0) / GB:.2f}GB")
    return "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", help="catalog preset id (repeatable; default wan22-i2v-a14b-q4_k_m)")
    ap.add_argument("--dir", default="/var/tmp/lockn-fullsize-family", help="where the models root is written")
    ap.add_argument("--disk-budget-gb", type=float, default=30.0, help="the most one preset's files may take")
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--timeout", type=float, default=2400.0, help="seconds for the prompt")
    ap.add_argument("--period", type=float, default=0.2, help="RSS sampling period (s)")
    ap.add_argument("--ram-budget-gb", default="0",
                    help="comma-separated LockN RAM budgets, one server run each on the same files (0: the pack's "
                         "default, no Residency node; else a LockNResidency node with ram_budget_gb)")
    ap.add_argument("--override", action="append", default=[], metavar="ROLE=FILE",
                    help="use this catalog file for a role of the preset (the loader's per-role input), e.g. "
                         "text_encoder=gemma_3_12B_it_fp8_scaled.safetensors when the preset's has no writer recipe")
    ap.add_argument("--tiny-stand-ins", action="store_true",
                    help="files without a writer recipe: copy the tiny test set's file of that name (said so in "
                         "the results) instead of skipping the preset")
    ap.add_argument("--results", default=str(REPO / "bench" / "results"))
    a = ap.parse_args(argv)
    import sys
    sys.path.insert(0, str(REPO))
    root = Path(a.dir)
    for preset in a.preset or ["wan22-i2v-a14b-q4_k_m"]:
        r = run_preset(preset, root, a.disk_budget_gb, a.keep, a.timeout, a.period,
                       [float(x) for x in a.ram_budget_gb.split(",")],
                       overrides=dict(o.split("=", 1) for o in a.override), stand_ins=a.tiny_stand_ins)
        outp = Path(a.results) / f"{time.strftime('%Y-%m-%d')}_cpu_fullsize_{preset}.json"
        outp.parent.mkdir(parents=True, exist_ok=True)
        outp.write_text(json.dumps(r, indent=2))
        print(summary(r), flush=True)
        print(f"-> {outp}", flush=True)
    if not a.keep and root.exists():
        shutil.rmtree(root / "models", ignore_errors=True)


if __name__ == "__main__":
    main()
