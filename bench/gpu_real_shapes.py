"""The quality chain at REAL shapes on a GPU, under the workstation's memory pressure (issue 15, part 2).

One prepared run for the device tool (at most 8 minutes of GPU-machine time in all; the one command is
``bash bench/device/real_shapes.sh``, which calls this module):

1. **disk check + plan**: the catalog presets' full-size files (lockn_testing/fullsize.py plans:
   Flux.2-dev Q4_K_M + Mistral fp4_mixed + VAE = 32.74 GB; Wan2.2 I2V A14B Q4_K_M both experts + umt5
   fp8 + VAE = 26.31 GB; ACE-Step 1.5 turbo DiT + Qwen3 0.6B + 1.7B LM + VAE = 10.03 GB; 69.07 GB in all,
   64.3 GiB, more than the device machine's 64 GiB disk holds free). Files go to --dir while its free
   space (less --disk-margin-gb) allows, the rest to --shm-dir (tmpfs, RAM) up to --shm-max-gb; a stage
   whose files fit nowhere is skipped and said so. Files already there at the planned size are reused.
2. **write** (budget --write-budget-s, default 170 s): every file written with random content at the
   real tensor layout and quant mix, in parallel, by lockn_testing/fullsize.py's one writer
   (fullsize.write_files: --workers processes, each writing ~0.5 GB tensor groups into its place with
   pwrite; the writer behind FilePlan.write and ``python -m lockn_testing.fullsize --workers N``).
3. **GPU pressure + bandwidth**: a separate process measures host-to-GPU copy bandwidth (a pinned
   1 GiB tensor, --bw-reps copies timed with CUDA events; also pageable H2D and pinned D2H), then
   allocates all of the GPU but --keep-free-gb (default 20, GB of 1e9 bytes) and holds it, as the LLMs
   would; a 2 s burst of pinned copies calibrates the PCIe counter below.
4. **the chain, three ways** (--ways): ``lockn`` (LockN's loaders, default cache), ``default`` (core
   loaders: UnetLoaderGGUF / UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader; ComfyUI's default cache)
   and ``favourable`` (core loaders with the most favourable core cache flags of that ComfyUI version:
   ``--cache-lru 16`` on 0.20.x, the one that keeps every stack across a cycle; ``--high-ram`` on 0.33,
   the fastest core cache in the 0.33 mode-switch table). Each way: a fresh ComfyUI server on the GPU,
   then the stages of --cycle (default image,video,music,image: the return to image is the warm switch)
   as separate prompts, seeds changed per visit so no output cache serves a whole prompt:
   Flux.2-dev Q4_K_M 1024x1024, 4 steps; Wan2.2 I2V A14B Q4_K_M 81 frames 640x640, 4 steps split 2, cfg
   1.0 (the workflows' turbo path WITHOUT the lightx2v LoRAs: the writer has no LoRA recipe); ACE-Step
   1.5 turbo 30 s, 8 steps (LM audio codes on, as in the chain; --no-ace-codes to skip them).
5. optional **--fp8-compare**: Flux.2-dev fp8mixed (35.46 GB, written after the ways, deleting the video
   and music files first if the room needs it) at the same shape through UNETLoader, for its per-step
   time against Q4_K_M's. Does not fit the 8 minutes with the three ways: give it its own device call.

Recorded per stage visit: wall time; time in loader nodes; time inside ComfyUI's load_models_gpu
outside loader nodes (a probe custom node wraps it, synchronising CUDA around it); the switch = those
two; compute = wall - switch; per sampler the first step (node start to first progress: includes any
lazy weight loading) and the steady per-step time; bytes moved to the GPU: ComfyUI's own count (sum of
ModelPatcher.loaded_size() growth over load_models_gpu calls) and the PCIe receive counter (NVML
nvmlDeviceGetPcieThroughput sampled continuously, integrated; calibrated against the bandwidth test's
known bytes), split into switch windows and compute windows; the physical floor of the switch
(PCIe bytes in switch windows / pinned bandwidth); peak CUDA memory of the server; LockN's registry.

    python -m bench.gpu_real_shapes [--out FILE] [--ways lockn,default,favourable] [--fp8-compare] ...
    python -m bench.gpu_real_shapes --dry-run-cpu --fp8-compare     # same code path on CPU, tiny models

``--dry-run-cpu``: the tiny test models (lockn_testing.tiny.ensure) instead of written files, tiny shapes
(Flux 64x64, Wan 32x32 5 frames, ACE 2 s), ComfyUI on CPU; the disk check and the placement are still
computed for the real files (reported, not written) and the parallel writer is checked on one
truncated real-width file (a 1-block Wan expert, parsed back with gguf-py). Output: one JSON (--out,
default $OUT/gpu_real_shapes.json when $OUT is set, else bench/out/gpu_real_shapes.json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GB = 1e9
GIB = 1 << 30

PRESETS = {"image": "flux2-dev-q4_k_m", "video": "wan22-i2v-a14b-q4_k_m", "music": "ace15-turbo"}
FP8_PRESET = "flux2-dev-fp8mixed"
FP8_FILE = "flux2_dev_fp8mixed.safetensors"
MISTRAL_Q4 = "mistral_3_small_flux2_fp4_mixed.safetensors"      # the flux2-dev-q4_k_m preset's encoder
WAYS = ("lockn", "default", "favourable")
#: loader node ids in lockn_testing.graphs (LockN's and the core ones)
#: ("R": LockN's Residency node, present only with explicit budgets: its moves are switch time too)
LOADERS = {"image": {"12", "38", "10", "R"}, "video": {"95", "96", "84", "90", "R"}, "music": {"104", "105", "106", "R"},
           "image_fp8": {"12", "38", "10"}}
SAMPLERS = {"image": ("13",), "video": ("86", "85"), "music": ("3",), "image_fp8": ("13",)}
TEXT_NODES = {"music": "94"}                                      # ACE-Step's LM emits one progress per token


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

class Clock:
    """Wall-clock budget of the whole run."""

    def __init__(self, budget_s: float):
        self.t0 = time.time()
        self.budget = budget_s

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def at(self) -> float:
        return round(time.time() - self.t0, 1)


def meminfo() -> dict:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("MemTotal", "MemAvailable", "Cached", "Dirty", "Shmem"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def free_bytes(path: Path) -> int:
    p = Path(path)
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def comfy_version() -> str:
    from lockn_testing.harness import comfyui_path
    try:
        return (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    except (OSError, IndexError):
        return "?"


def favourable_args(version: str) -> list[str]:
    """The core cache flags that keep the most across a cycle, per ComfyUI version (see module doc)."""
    try:
        minor = int(version.split(".")[1])
    except (IndexError, ValueError):
        minor = 20
    return ["--high-ram"] if minor >= 33 else ["--cache-lru", "16"]


# --------------------------------------------------------------------------------------------
# 1-2. plan, placement, parallel writer
# --------------------------------------------------------------------------------------------

def plan_files(stages: list[str]) -> list[dict]:
    """[{name, folder, stage, size, plan}] for the presets of the stages (in stage order)."""
    from lockn_testing import fullsize
    cat = fullsize._catalog()
    out, seen = [], set()
    order = [s for s in ("image", "video", "music") if s in stages]
    for stage in order:
        for name, plan in fullsize.plan_preset(PRESETS[stage]).items():
            if name in seen:
                continue
            seen.add(name)
            out.append({"name": name, "folder": cat.file(name).folder, "stage": stage,
                        "size": plan.size() if plan else None, "plan": plan,
                        "catalog_size": cat.file(name).size})
    return out


def plan_fp8() -> dict:
    from lockn_testing import fullsize
    cat = fullsize._catalog()
    p = fullsize.plan_file(FP8_FILE)
    return {"name": FP8_FILE, "folder": cat.file(FP8_FILE).folder, "stage": "image_fp8", "size": p.size(), "plan": p,
            "catalog_size": cat.file(FP8_FILE).size, "where": "written after the ways"}


def place(files: list[dict], disk: Path, shm: Path | None, margin_gb: float, shm_max_gb: float) -> dict:
    """Decide where each file goes: reuse, disk, shm, or nowhere. Returns the placement report."""
    disk_room = free_bytes(disk) - margin_gb * GB
    shm_room = 0.0
    if shm is not None and Path("/dev/shm").exists():
        shm_room = min(free_bytes(shm) - margin_gb * GB, shm_max_gb * GB)
    rep = {"disk_dir": str(disk), "shm_dir": str(shm) if shm else None, "disk_free_bytes": free_bytes(disk),
           "shm_free_bytes": free_bytes(shm) if shm and Path("/dev/shm").exists() else None,
           "margin_gb": margin_gb, "shm_max_gb": shm_max_gb, "meminfo": meminfo(), "files": []}
    for f in files:
        where, path = None, None
        if f["size"] is None:
            where = "no recipe"
        else:
            for root, tag in ((disk, "disk (reused)"), (shm, "shm (reused)")):
                if root is not None:
                    p = root / f["folder"] / f["name"]
                    if p.exists() and p.stat().st_size == f["size"]:
                        where, path = tag, p
                        break
            if where is None and f["size"] <= disk_room:
                where, path = "disk", disk / f["folder"] / f["name"]
                disk_room -= f["size"]
            elif where is None and f["size"] <= shm_room:
                where, path = "shm", shm / f["folder"] / f["name"]
                shm_room -= f["size"]
            elif where is None:
                where = "no room"
        f["where"], f["path"] = where, path
        rep["files"].append({"name": f["name"], "stage": f["stage"], "bytes": f["size"],
                             "catalog_bytes": f["catalog_size"], "where": where})
    rep["total_bytes"] = sum(f["size"] or 0 for f in files)
    rep["stages_without_room"] = sorted({f["stage"] for f in files if f["where"] in ("no room", "no recipe")})
    return rep


def write_parallel(jobs: list[tuple[str, object, Path]], workers: int, deadline_s: float,
                   group_bytes: int = 512 << 20) -> dict:
    """Write [(name, FilePlan, final path)] with `workers` processes through lockn_testing/fullsize.py's one
    writer (fullsize.write_files: header and size first, ~0.5 GB tensor groups written in place with pwrite,
    each file fsynced and renamed into place when complete; stops at the deadline, unfinished files removed).
    It needs numpy only: on the device machine it runs from what real_shapes.sh carries."""
    from lockn_testing import fullsize
    return fullsize.write_files(jobs, workers=workers, deadline_s=deadline_s, group_bytes=group_bytes)


def writer_check(tmpdir: Path, workers: int) -> dict:
    """Dry run: the parallel writer on a truncated real-width file, parsed back with gguf-py."""
    from lockn_testing import fullsize
    name = "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"
    plan = fullsize.plan_truncated(name, 1)
    path = tmpdir / "diffusion_models" / name
    res = write_parallel([(name, plan, path)], workers, 600, group_bytes=64 << 20)
    out = {"file": name + " (1 block)", "plan_bytes": plan.size(), **res}
    try:
        out["file_bytes"] = path.stat().st_size
        import gguf
        r = gguf.GGUFReader(str(path))
        _, items, _ = plan.layout()
        want = {s.name: (off, s.dtype) for s, off in items}
        got = {t.name: (int(t.data_offset), t.tensor_type.name) for t in r.tensors}
        out["gguf_tensors"] = len(got)
        out["offsets_and_types_match"] = got == want
    except Exception as e:                  # noqa: BLE001 (reported)
        out["check_error"] = f"{type(e).__name__}: {e}"
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------
# 3. GPU pressure + host-to-GPU bandwidth (a separate process)
# --------------------------------------------------------------------------------------------

def hog_main(keep_free_gb: float, reps: int) -> None:
    """Child process: measure copy bandwidth, then hold all of the GPU but keep_free_gb until killed."""
    import torch
    res: dict = {"cuda": torch.cuda.is_available(), "pid": os.getpid()}
    held = []
    if res["cuda"]:
        n = GIB
        dev = torch.device("cuda:0")
        d = torch.empty(n, dtype=torch.uint8, device=dev)
        h = torch.empty(n, dtype=torch.uint8, pin_memory=True)
        h.fill_(1)
        p = torch.empty(n, dtype=torch.uint8)
        p.fill_(1)

        def timed(fn) -> list[float]:
            fn()
            torch.cuda.synchronize()
            out = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                out.append(a.elapsed_time(b) / 1000)
            return out
        res["bw_window"] = [time.time()]
        t_h2d = timed(lambda: d.copy_(h, non_blocking=True))
        res["bw_window"].append(time.time())
        t_d2h = timed(lambda: h.copy_(d, non_blocking=True))
        t_pg = timed(lambda: d.copy_(p))
        res["bw_window"].append(time.time())
        # a 2 s burst of pinned H2D copies: known bytes against which the NVML PCIe counter is calibrated
        k, c0 = 0, time.time()
        while time.time() - c0 < 2.0:
            d.copy_(h, non_blocking=True)
            k += 1
            if k % 8 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        res["calibration"] = {"t0": c0, "t1": time.time(), "h2d_bytes": k * n}
        res["bandwidth"] = {
            "bytes_per_copy": n, "reps": reps,
            "h2d_pinned_gb_s": [round(n / t / GB, 2) for t in t_h2d],
            "h2d_pinned_gb_s_median": round(n / statistics.median(t_h2d) / GB, 2),
            "d2h_pinned_gb_s_median": round(n / statistics.median(t_d2h) / GB, 2),
            "h2d_pageable_gb_s_median": round(n / statistics.median(t_pg) / GB, 2)}
        del d, h, p
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        res["before_hold"] = {"free": free, "total": total}
        want = free - int(keep_free_gb * GB)
        chunk = 2 * GIB
        while want > 64 << 20:
            take = min(chunk, want)
            try:
                held.append(torch.empty(take, dtype=torch.uint8, device=dev))
            except RuntimeError:
                break
            want -= take
        free2, _ = torch.cuda.mem_get_info()
        res["held_bytes"] = sum(t.numel() for t in held)
        res["free_after_hold"] = free2
    print("HOG " + json.dumps(res), flush=True)
    parent = os.getppid()
    while True:                                  # hold until the parent ends us (or dies)
        time.sleep(0.5)
        if os.getppid() != parent:
            return


def start_hog(keep_free_gb: float, reps: int, timeout: float = 180.0) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.gpu_real_shapes", "--hog", str(keep_free_gb),
                             "--bw-reps", str(reps)], cwd=str(REPO), stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    t0 = time.time()
    info: dict = {}
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            info = {"error": f"hog exited ({proc.poll()})"}
            break
        if line.startswith("HOG "):
            info = json.loads(line[4:])
            break
    info["start_s"] = round(time.time() - t0, 1)
    return proc, info


# --------------------------------------------------------------------------------------------
# PCIe counters (NVML through ctypes: no extra package, no CUDA context in this process)
# --------------------------------------------------------------------------------------------

class Pcie(threading.Thread):
    """Samples NVML's PCIe throughput (RX = bytes the GPU receives, TX = sends; KB/s over ~20 ms)
    continuously; integrate() gives bytes over a time window (time.time())."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int, int]] = []
        self.error = None
        self._halt = threading.Event()
        try:
            import ctypes
            self.ct = ctypes
            self.lib = ctypes.CDLL("libnvidia-ml.so.1")
            if self.lib.nvmlInit_v2() != 0:
                raise OSError("nvmlInit failed")
            self.h = ctypes.c_void_p()
            if self.lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(0), ctypes.byref(self.h)) != 0:
                raise OSError("no NVML device 0")
        except OSError as e:
            self.lib, self.error = None, str(e)

    def _read(self, counter: int):
        v = self.ct.c_uint()
        rc = self.lib.nvmlDeviceGetPcieThroughput(self.h, self.ct.c_int(counter), self.ct.byref(v))
        return int(v.value) if rc == 0 else None

    def run(self):
        if self.lib is None:
            return
        while not self._halt.is_set():
            rx, tx = self._read(1), self._read(0)
            if rx is None and tx is None:
                self.error = "nvmlDeviceGetPcieThroughput unsupported"
                return
            self.samples.append((time.time(), rx or 0, tx or 0))

    def stop(self):
        self._halt.set()
        self.join(timeout=5)

    def integrate(self, windows: list[tuple[float, float]], which: int = 1) -> int | None:
        """Bytes over the union of windows; each sample's rate covers the gap since the previous one."""
        if self.lib is None or len(self.samples) < 2:
            return None
        s = list(self.samples)
        total = 0.0
        for (ta, *_), (tb, rx, tx) in zip(s, s[1:]):
            rate = (rx if which == 1 else tx) * 1024.0
            for w0, w1 in windows:
                lo, hi = max(ta, w0), min(tb, w1)
                if hi > lo:
                    total += rate * (hi - lo)
        return int(total)

    def peak_gb_s(self, w0: float, w1: float, which: int = 1) -> float | None:
        vals = [(rx if which == 1 else tx) for t, rx, tx in self.samples if w0 <= t <= w1]
        return round(max(vals) * 1024 / GB, 2) if vals else None


def union(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# --------------------------------------------------------------------------------------------
# 4. the server probe: load_models_gpu timed, bytes loaded, CUDA peaks
# --------------------------------------------------------------------------------------------

PROBE = r'''
import threading, time
import torch
import comfy.model_management as mm
import server
from aiohttp import web

_lock = threading.Lock()
_records = []
_cuda = mm.get_torch_device().type == "cuda"


def _loaded():
    out = []
    for lm in list(mm.current_loaded_models):
        m = lm.model
        try:
            ls = int(m.loaded_size())
        except Exception:
            ls = None
        try:
            size = int(m.model_size())
        except Exception:
            size = None
        out.append({"class": type(getattr(m, "model", m)).__name__, "loaded": ls, "size": size})
    return out


def _sum(items):
    return sum(x["loaded"] or 0 for x in items)


_orig = mm.load_models_gpu


def load_models_gpu(models, *a, **k):
    if _cuda:
        torch.cuda.synchronize()
    before = _loaded()
    t0 = time.time()
    try:
        return _orig(models, *a, **k)
    finally:
        if _cuda:
            torch.cuda.synchronize()
        t1 = time.time()
        after = _loaded()
        with _lock:
            _records.append({"t0": t0, "t1": t1, "models": [type(getattr(m, "model", m)).__name__ for m in models],
                             "loaded_before": _sum(before), "loaded_after": _sum(after)})


mm.load_models_gpu = load_models_gpu


@server.PromptServer.instance.routes.get("/lockn_bench/probe")
async def _probe(request):
    reset = request.query.get("reset") == "1"
    with _lock:
        recs = list(_records)
        if reset:
            _records.clear()
    out = {"records": recs, "loaded": _loaded(), "time": time.time(), "cuda": _cuda}
    if _cuda:
        out["max_allocated"] = torch.cuda.max_memory_allocated()
        out["max_reserved"] = torch.cuda.max_memory_reserved()
        free, total = torch.cuda.mem_get_info()
        out["mem_free"], out["mem_total"] = free, total
        if reset:
            torch.cuda.reset_peak_memory_stats()
    return web.json_response(out)


NODE_CLASS_MAPPINGS = {}
'''


# --------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------

def stage_graph(stage: str, way: str, sh: dict, visit: int) -> dict:
    from lockn_testing import graphs
    lockn = way == "lockn"
    if stage in ("image", "image_fp8"):
        if stage == "image_fp8":
            g = graphs.flux2_t2i(loader="core", width=sh["flux_size"], height=sh["flux_size"], steps=sh["flux_steps"],
                                 prefix="rs/img8")
        else:
            g = graphs.flux2_t2i(loader="lockn" if lockn else "gguf", width=sh["flux_size"], height=sh["flux_size"],
                                 steps=sh["flux_steps"], prefix="rs/img", preset=PRESETS["image"])
        if "38" in g:
            g["38"]["inputs"]["clip_name"] = MISTRAL_Q4
        g["25"]["inputs"]["noise_seed"] += visit
    elif stage == "video":
        g = graphs.wan22_i2v(loader="lockn" if lockn else "gguf", width=sh["wan_size"], height=sh["wan_size"],
                             length=sh["wan_frames"], steps=sh["wan_steps"], split=sh["wan_split"], prefix="rs/vid",
                             preset=PRESETS["video"])
        for n in ("86", "85"):
            g[n]["inputs"]["cfg"] = sh["wan_cfg"]
        g["86"]["inputs"]["noise_seed"] += visit
    elif stage == "music":
        g = graphs.ace15_t2m(seconds=sh["ace_seconds"], steps=sh["ace_steps"], loader="lockn" if lockn else "core",
                             top_p=sh["ace_top_p"], prefix="rs/mus", preset=PRESETS["music"])
        g["94"]["inputs"]["generate_audio_codes"] = sh["ace_codes"]
        g["94"]["inputs"]["seed"] += visit
        g["3"]["inputs"]["seed"] += visit
    else:
        raise ValueError(stage)
    if lockn and (sh.get("lockn_gpu_gb") or sh.get("lockn_ram_gb")):
        g = graphs.with_residency(g, sh.get("lockn_gpu_gb") or 0.0, sh.get("lockn_ram_gb") or 0.0)
    return graphs.report_sinks(g)              # no media encoding: every Save* becomes a residency report


# --------------------------------------------------------------------------------------------
# running one stage visit and reading it
# --------------------------------------------------------------------------------------------

def analyse(stage: str, g: dict, res, wall: tuple[float, float], probe: dict, pcie: Pcie | None, bw: float | None,
            off: float) -> dict:
    """Split one prompt's time into switch and compute; bytes to the GPU; per-step times."""
    pid = res.prompt_id
    marks = [(m["received_at"] + off, m["data"].get("node")) for m in res.messages
             if m.get("type") == "executing" and m.get("data", {}).get("prompt_id") == pid]
    windows = {}
    for (t0, node), (t1, _) in zip(marks, marks[1:]):
        if node is not None:
            windows.setdefault(node, []).append((t0, t1))
    node_s = {f"{g[k]['class_type']}#{k}": round(sum(b - a for a, b in w), 3) for k, w in windows.items() if k in g}
    loader_w = [w for k in LOADERS[stage] for w in windows.get(k, [])]
    loader_s = sum(b - a for a, b in loader_w)

    def inside(t, ws):
        return any(a <= t <= b for a, b in ws)
    recs = [r for r in probe.get("records", []) if wall[0] - 1 <= r["t0"] <= wall[1] + 1]
    load_out = [r for r in recs if not inside(r["t0"], loader_w)]
    gpu_load_s = sum(r["t1"] - r["t0"] for r in load_out)
    switch_w = union(loader_w + [(r["t0"], r["t1"]) for r in load_out])
    switch_s = sum(b - a for a, b in switch_w)
    wall_s = wall[1] - wall[0]
    out = {"wall_s": round(wall_s, 3), "loader_s": round(loader_s, 3), "gpu_load_s": round(gpu_load_s, 3),
           "switch_s": round(switch_s, 3), "compute_s": round(wall_s - switch_s, 3), "node_seconds": node_s,
           "load_models_gpu_calls": [{"models": r["models"], "s": round(r["t1"] - r["t0"], 3),
                                      "loaded_before": r["loaded_before"], "loaded_after": r["loaded_after"],
                                      "in_loader_node": inside(r["t0"], loader_w)} for r in recs],
           "comfy_loaded_growth_bytes": sum(max(0, r["loaded_after"] - r["loaded_before"]) for r in recs)}
    # per-step times from the progress messages: (time, value). ComfyUI's ProgressBar throttles them
    # (the first and the last always go out), so the step time is (t_last - t_first) / (v_last - v_first).
    prog: dict[str, list[tuple[float, int]]] = {}
    for m in res.messages:
        d = m.get("data", {})
        if m.get("type") == "progress" and d.get("prompt_id") in (None, pid):
            prog.setdefault(str(d.get("node")), []).append((m["received_at"] + off, int(d.get("value") or 0)))

    def rate(tv):
        (t0, v0), (t1, v1) = tv[0], tv[-1]
        return (t1 - t0) / (v1 - v0) if v1 > v0 else None
    samplers = {}
    for n in SAMPLERS[stage]:
        tv = prog.get(n, [])
        start = windows.get(n, [(None, None)])[0][0]
        if not tv or start is None:
            continue
        per = rate(tv)
        first_s = tv[0][0] - start                    # node start to the first progress (value v0 steps)
        samplers[f"{g[n]['class_type']}#{n}"] = {
            "steps": tv[-1][1], "messages": len(tv), "first_progress_value": tv[0][1],
            "first_progress_s": round(first_s, 3), "per_step_s": round(per, 3) if per is not None else None,
            "steps_span_s": round(tv[-1][0] - start, 3),
            # what the first step(s) cost beyond steady steps: lazy loading / streaming set-up
            "first_step_extra_s": round(first_s - tv[0][1] * per, 3) if per is not None else None}
    out["samplers"] = samplers
    pers = [s["per_step_s"] for s in samplers.values() if s["per_step_s"] is not None]
    out["per_step_s"] = round(statistics.median(pers), 3) if pers else None
    tn = TEXT_NODES.get(stage)
    if tn and prog.get(tn):
        per = rate(prog[tn])
        out["lm_tokens"] = {"count": prog[tn][-1][1], "per_token_s": round(per, 4) if per is not None else None}
    if probe.get("cuda"):
        out["cuda_peak_allocated_bytes"] = probe.get("max_allocated")
        out["cuda_peak_reserved_bytes"] = probe.get("max_reserved")
        out["cuda_free_after_bytes"] = probe.get("mem_free")
    out["loaded_after"] = probe.get("loaded")
    if pcie is not None and pcie.lib is not None:
        rx_all = pcie.integrate([wall])
        rx_sw = pcie.integrate(switch_w)
        out["pcie"] = {"rx_bytes": rx_all, "rx_bytes_switch": rx_sw,
                       "rx_bytes_compute": None if rx_all is None or rx_sw is None else rx_all - rx_sw,
                       "tx_bytes": pcie.integrate([wall], which=0), "rx_peak_gb_s": pcie.peak_gb_s(*wall)}
        if bw and rx_sw is not None:
            out["switch_floor_s"] = round(rx_sw / (bw * GB), 3)          # the switch's physical limit
            out["switch_over_floor"] = round(switch_s / out["switch_floor_s"], 2) if out["switch_floor_s"] > 0 else None
        if bw and rx_all is not None and out["pcie"]["rx_bytes_compute"] is not None:
            out["compute_streaming_floor_s"] = round(out["pcie"]["rx_bytes_compute"] / (bw * GB), 3)
    if bw and out["comfy_loaded_growth_bytes"]:
        out["comfy_loaded_floor_s"] = round(out["comfy_loaded_growth_bytes"] / (bw * GB), 3)
    return out


def run_way(way: str, models: Path, extra_dirs: tuple, cycle: list[str], sh: dict, gpu: bool, clock: Clock,
            pcie: Pcie | None, bw: float | None, server_extra: list[str], version: str) -> dict:
    from lockn_testing.harness.server import ComfyServer, PromptError
    args = (favourable_args(version) if way == "favourable" else []) + list(server_extra)
    base = Path(tempfile.mkdtemp(prefix=f"lockn-rs-{way}-"))
    probe_dir = base / "_probe"
    probe_dir.mkdir()
    (probe_dir / "__init__.py").write_text(PROBE)
    srv = ComfyServer(models, base_dir=base / "comfy", extra_args=tuple(args), extra_model_dirs=extra_dirs, cpu=not gpu)
    srv.custom_nodes["lockn_bench_gpuprobe"] = probe_dir
    out: dict = {"way": way, "server_args": args, "visits": []}
    off = time.time() - time.perf_counter()
    try:
        t0 = time.time()
        srv.start(timeout=max(30.0, min(240.0, clock.left())))
        out["server_start_s"] = round(time.time() - t0, 1)
        log = srv.log_tail(100000)
        out["log_vram"] = [ln.strip() for ln in log.splitlines()
                           if "VRAM" in ln or "aimdo" in ln.lower() or "dynamic" in ln.lower()][:6]
        try:
            srv.get("/lockn_bench/probe?reset=1")
            out["probe"] = "ok"
        except Exception as e:                  # noqa: BLE001
            out["probe"] = f"not loaded: {str(e)[:200]}"
        for visit, stage in enumerate(cycle):
            left = clock.left()
            if left < 20:
                out["visits"].append({"stage": stage, "skipped": f"budget: {left:.0f} s left"})
                continue
            g = stage_graph(stage, way, sh, visit)
            w0 = time.time()
            try:
                res = srv.run(g, timeout=max(10.0, left - 5))
                ok, err = True, None
            except PromptError as e:
                res, ok, err = e.result, False, str(e)[:1500]
            except TimeoutError as e:
                res, ok, err = None, False, f"timeout: {str(e)[:300]}"
            w1 = time.time()
            try:
                probe = srv.get("/lockn_bench/probe?reset=1", timeout=60)
            except Exception as e:              # noqa: BLE001 (the probe is an extra; the timings stand)
                probe = {"error": str(e)[:300]}
            v = {"stage": stage, "visit": visit, "ok": ok}
            if err:
                v["error"] = err
            if res is not None:
                v.update(analyse(stage, g, res, (w0, w1), probe, pcie, bw, off))
                v["cached_nodes"] = len(res.cached)
            else:
                v["wall_s"] = round(w1 - w0, 3)
            if way == "lockn":
                try:
                    rep = srv.get("/lockn/residency", timeout=30)
                    v["residency"] = {"entries": [{k: e.get(k) for k in ("name", "tier", "device", "bytes", "loads_from_disk")}
                                                  for e in rep.get("entries", [])],
                                      "budgets": rep.get("budgets"), "warnings": rep.get("warnings")}
                except Exception as e:            # noqa: BLE001 (reported)
                    v["residency_error"] = str(e)[:300]
            out["visits"].append(v)
            print(f"  {way} {stage}#{visit}: {'ok' if ok else 'FAILED'} wall {v.get('wall_s')} s, switch "
                  f"{v.get('switch_s')} s, compute {v.get('compute_s')} s, step {v.get('per_step_s')} s, "
                  f"PCIe rx {((v.get('pcie') or {}).get('rx_bytes') or 0) / GB:.2f} GB [{clock.at()} s]", flush=True)
            if not ok and res is None:
                break
    except Exception as e:                          # noqa: BLE001 (a way that breaks leaves the others)
        out["error"] = f"{type(e).__name__}: {str(e)[:1500]}"
    finally:
        out["log_tail"] = srv.log_tail(3000)
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out


def summarise(ways: list[dict]) -> dict:
    s: dict = {}
    for w in ways:
        rows = {}
        for v in w.get("visits", []):
            if "wall_s" not in v:
                continue
            rows[f"{v['stage']}#{v['visit']}"] = {k: v.get(k) for k in ("wall_s", "switch_s", "compute_s", "per_step_s",
                                                                          "switch_floor_s", "comfy_loaded_growth_bytes")}
            rows[f"{v['stage']}#{v['visit']}"]["pcie_rx_gb"] = round(((v.get("pcie") or {}).get("rx_bytes") or 0) / GB, 2)
        done = [v for v in w.get("visits", []) if "switch_s" in v]
        s[w["way"]] = {"visits": rows, "total_wall_s": round(sum(v["wall_s"] for v in done), 2),
                       "total_switch_s": round(sum(v["switch_s"] for v in done), 2),
                       "total_compute_s": round(sum(v["compute_s"] for v in done), 2),
                       "server_start_s": w.get("server_start_s"), "error": w.get("error")}
    return s


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="JSON file (default $OUT/gpu_real_shapes.json or bench/out/...)")
    ap.add_argument("--dry-run-cpu", action="store_true", help="same code path on CPU: tiny models, tiny shapes")
    ap.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, of {', '.join(WAYS)}")
    ap.add_argument("--cycle", default="image,video,music,image", help="stage visits per way, in order")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall budget of this script: no new work past it (default 450 s; 900 s with --dry-run-cpu)")
    ap.add_argument("--dir", default="/var/tmp/lockn-real-shapes", help="models root on disk")
    ap.add_argument("--shm-dir", default="/dev/shm/lockn-real-shapes", help="overflow models root in RAM ('' = none)")
    ap.add_argument("--shm-max-gb", type=float, default=40.0)
    ap.add_argument("--disk-margin-gb", type=float, default=3.0)
    ap.add_argument("--write-budget-s", type=float, default=170.0)
    ap.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    ap.add_argument("--keep-files", action="store_true", help="leave the written files (default: deleted at the end)")
    ap.add_argument("--keep-free-gb", type=float, default=20.0, help="GPU memory left to ComfyUI by the hog process")
    ap.add_argument("--no-hog", action="store_true")
    ap.add_argument("--bw-reps", type=int, default=5)
    ap.add_argument("--flux-size", type=int, default=None)
    ap.add_argument("--flux-steps", type=int, default=4)
    ap.add_argument("--wan-size", type=int, default=None)
    ap.add_argument("--wan-frames", type=int, default=None)
    ap.add_argument("--wan-steps", type=int, default=4)
    ap.add_argument("--wan-split", type=int, default=2)
    ap.add_argument("--wan-cfg", type=float, default=1.0, help="1.0: the turbo path's cfg (3.5 without it)")
    ap.add_argument("--ace-seconds", type=float, default=None)
    ap.add_argument("--ace-steps", type=int, default=8)
    ap.add_argument("--no-ace-codes", action="store_true", help="skip the LM's audio codes (the chain has them on)")
    ap.add_argument("--lockn-gpu-budget-gb", type=float, default=0.0, help="LockN GPU budget (0: automatic)")
    ap.add_argument("--lockn-ram-budget-gb", type=float, default=0.0, help="LockN RAM budget (0: automatic)")
    ap.add_argument("--fp8-compare", action="store_true", help="also Flux.2-dev fp8mixed per-step time, same shape")
    ap.add_argument("--server-arg", action="append", default=[], help="extra ComfyUI argument (repeatable)")
    ap.add_argument("--hog", type=float, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.hog is not None:
        hog_main(a.hog, a.bw_reps)
        return 0

    clock = Clock(a.budget_s or (900.0 if a.dry_run_cpu else 450.0))
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))      # a timeout still runs the clean-up below
    dry = a.dry_run_cpu
    sh = {"flux_size": a.flux_size or (64 if dry else 1024), "flux_steps": a.flux_steps,
          "wan_size": a.wan_size or (32 if dry else 640), "wan_frames": a.wan_frames or (5 if dry else 81),
          "wan_steps": a.wan_steps, "wan_split": a.wan_split, "wan_cfg": a.wan_cfg,
          "ace_seconds": a.ace_seconds or (2.0 if dry else 30.0), "ace_steps": a.ace_steps, "ace_codes": not a.no_ace_codes,
          "ace_top_p": 1.0 if dry else 0.9,          # the chain's 0.9; 1.0 with the tiny LM, as the other benches
          "lockn_gpu_gb": a.lockn_gpu_budget_gb, "lockn_ram_gb": a.lockn_ram_budget_gb}
    ways = [w.strip() for w in a.ways.split(",") if w.strip()]
    bad = [w for w in ways if w not in WAYS]
    if bad:
        ap.error(f"unknown way(s) {bad}")
    cycle = [s.strip() for s in a.cycle.split(",") if s.strip()]
    out_path = Path(a.out or (Path(os.environ["OUT"]) / "gpu_real_shapes.json" if os.environ.get("OUT")
                              else REPO / "bench" / "out" / "gpu_real_shapes.json"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from bench import machine
    version = comfy_version()
    R: dict = {"what": "issue 15 part 2: the quality chain at real shapes, three ways", "dry_run_cpu": dry,
               "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "comfyui": version,
               "command": " ".join([os.path.basename(sys.executable), "-m", "bench.gpu_real_shapes", *(argv or sys.argv[1:])]),
               "shapes": sh, "ways": ways, "cycle": cycle, "favourable_args": favourable_args(version),
               "notes": ["Wan2.2: the turbo path's settings (4 steps, split 2, cfg 1.0) WITHOUT the lightx2v 4-step "
                         "LoRAs (the full-size writer has no LoRA recipe)",
                         "core loaders for the GGUF presets: ComfyUI-GGUF's UnetLoaderGGUF + CLIPLoader + VAELoader "
                         "(ACE-Step: UNETLoader + DualCLIPLoader)",
                         "switch = loader nodes + load_models_gpu outside them; compute = wall - switch; with "
                         "dynamic VRAM or partial loads, weights also stream during compute (pcie.rx_bytes_compute)"],
               "phases": {}}

    def save():
        out_path.write_text(json.dumps(R, indent=2, default=str))

    # 1. plan + disk check (always computed for the real files)
    t = time.time()
    stages = sorted(set(cycle), key=["image", "video", "music"].index)
    files = plan_files(stages)
    f8 = plan_fp8() if a.fp8_compare else None
    disk, shm = Path(a.dir), (Path(a.shm_dir) if a.shm_dir else None)
    placement = place(files, disk, shm, a.disk_margin_gb, a.shm_max_gb)
    R["placement"] = placement
    R["phases"]["plan_s"] = round(time.time() - t, 1)
    tot = placement["total_bytes"]
    print(f"plan: {len(files)} files, {tot / GB:.2f} GB ({tot / GIB:.2f} GiB); disk free "
          f"{placement['disk_free_bytes'] / GB:.1f} GB, shm free {(placement['shm_free_bytes'] or 0) / GB:.1f} GB; "
          f"no room for {placement['stages_without_room'] or 'nothing'} [{clock.at()} s]", flush=True)
    for f in placement["files"]:
        print(f"  {f['where']:<14} {f['bytes'] / GB:7.2f} GB  {f['name']}", flush=True)
    save()

    # 2. write
    extra_dirs: tuple = ()
    if dry:
        from lockn_testing import tiny
        models = tiny.ensure()
        R["models_root"] = str(models)
        R["phases"]["writer_check"] = writer_check(Path(tempfile.mkdtemp(prefix="lockn-rs-wcheck-")), min(a.workers, 2))
        print(f"writer check: {json.dumps({k: v for k, v in R['phases']['writer_check'].items() if k != 'files'})}", flush=True)
    else:
        models = disk
        models.mkdir(parents=True, exist_ok=True)
        if shm is not None and any(f["where"].startswith("shm") for f in files):
            shm.mkdir(parents=True, exist_ok=True)
            extra_dirs = (str(shm),)
        jobs = [(f["name"], f["plan"], f["path"]) for f in files if f["where"] in ("disk", "shm")]
        print(f"writing {len(jobs)} files, {sum(j[1].size() for j in jobs) / GB:.2f} GB with {a.workers} workers "
              f"(budget {a.write_budget_s:.0f} s) [{clock.at()} s]", flush=True)
        w = write_parallel(jobs, a.workers, min(a.write_budget_s, max(10.0, clock.left() - 120)))
        R["phases"]["write"] = w
        print(f"wrote {w['written_bytes'] / GB:.2f} GB in {w['seconds']} s ({w['gb_per_s']} GB/s)"
              f"{' - TIMED OUT' if w['timed_out'] else ''} [{clock.at()} s]", flush=True)
        for f in files:
            if f["name"] in w["files"] and not w["files"][f["name"]]["written"]:
                f["where"] = "not written"
        R["meminfo_after_write"] = meminfo()
    save()
    missing_stages = {f["stage"] for f in files if not f["where"].startswith(("disk", "shm"))} if not dry else set()
    run_cycle = [s for s in cycle if s not in missing_stages]
    if missing_stages:
        R["skipped_stages"] = sorted(missing_stages)
        print(f"stages skipped (files missing): {sorted(missing_stages)}", flush=True)

    # 3. PCIe sampler + hog/bandwidth
    gpu = not dry
    pcie = Pcie() if gpu else None
    if pcie is not None:
        pcie.start()
        R["pcie_sampler"] = {"error": pcie.error}
    hog, bw = None, None
    if not a.no_hog:
        t = time.time()
        hog, info = start_hog(a.keep_free_gb, a.bw_reps)
        R["gpu_hold"] = info
        R["phases"]["hog_s"] = round(time.time() - t, 1)
        bw = (info.get("bandwidth") or {}).get("h2d_pinned_gb_s_median")
        cal = info.get("calibration")
        if pcie is not None and pcie.lib is not None and cal:
            got = pcie.integrate([(cal["t0"], cal["t1"])])
            R["pcie_sampler"]["calibration"] = {"known_h2d_bytes": cal["h2d_bytes"], "nvml_rx_bytes": got,
                                                "ratio": round(got / cal["h2d_bytes"], 3) if got else None}
        print(f"GPU hold: {json.dumps({k: v for k, v in info.items() if k not in ('bw_window', 'calibration')})} "
              f"[{clock.at()} s]", flush=True)
    save()

    # 4. the ways
    R["runs"] = []
    try:
        est = None
        for way in ways:
            left = clock.left()
            if est is not None and left < est * 0.9:
                R["runs"].append({"way": way, "skipped": f"budget: {left:.0f} s left, a way took {est:.0f} s"})
                print(f"{way}: skipped ({left:.0f} s left, a way took {est:.0f} s)", flush=True)
                continue
            print(f"way {way} [{clock.at()} s]", flush=True)
            t = time.time()
            r = run_way(way, models, extra_dirs, run_cycle, sh, gpu, clock, pcie, bw, a.server_arg, version)
            r["seconds"] = round(time.time() - t, 1)
            est = r["seconds"] if est is None else max(est, r["seconds"])
            R["runs"].append(r)
            save()
        R["summary"] = summarise([r for r in R["runs"] if "visits" in r])

        # 5. fp8mixed vs Q4_K_M per step (optional)
        if a.fp8_compare:
            fc = fp8_compare(a, f8, files, models, extra_dirs, sh, gpu, clock, pcie, bw, version, dry)
            q4 = {r["way"]: [v.get("per_step_s") for v in r.get("visits", []) if v.get("stage") == "image"]
                  for r in R["runs"] if "visits" in r}
            fc["q4_k_m_per_step_s"] = q4
            q4_core = [x for x in q4.get("default", []) + q4.get("favourable", []) if x]
            if q4_core and fc.get("fp8mixed_per_step_s"):
                fc["fp8mixed_over_q4_k_m"] = round(fc["fp8mixed_per_step_s"] / statistics.median(q4_core), 3)
            R["fp8_compare"] = fc
            save()
    finally:
        if hog is not None and hog.poll() is None:
            hog.terminate()
            try:
                hog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                hog.kill()
        if pcie is not None:
            pcie.stop()
            R["pcie_sampler"]["samples"] = len(pcie.samples)
        if not dry and not a.keep_files:
            for f in files + ([f8] if f8 else []):
                p = f.get("path")
                if p is not None and f["where"] in ("disk", "shm") and Path(p).exists():
                    Path(p).unlink()
        R["total_s"] = clock.at()
        save()
    print(json.dumps({"summary": R.get("summary"), "fp8_compare": {k: v for k, v in (R.get("fp8_compare") or {}).items()
                                                                   if k != "run"}}, indent=1), flush=True)
    print(f"-> {out_path} ({R['total_s']} s)", flush=True)
    ok = all("error" not in r and all(v.get("ok", True) for v in r.get("visits", [])) for r in R["runs"])
    print("REAL SHAPES", "FINISHED" if ok else "FINISHED WITH ERRORS", flush=True)
    return 0 if ok else 1


def fp8_compare(a, f8: dict, files: list[dict], models, extra_dirs, sh, gpu, clock, pcie, bw, version, dry) -> dict:
    """Flux.2-dev fp8mixed through UNETLoader at the same shape, after the ways: its per-step time.
    On the GPU its 35.46 GB file is written now (the video and music files are deleted first when the
    disk needs the room)."""
    out: dict = {"file": f8["name"], "bytes": f8["size"]}
    if not dry:
        path = Path(a.dir) / f8["folder"] / f8["name"]
        if not (path.exists() and path.stat().st_size == f8["size"]):
            room = free_bytes(Path(a.dir)) - a.disk_margin_gb * GB
            if f8["size"] > room:                       # make room: the video and music files go first
                for f in files:
                    if f["stage"] in ("video", "music") and f.get("path") and Path(f["path"]).exists():
                        Path(f["path"]).unlink()
                        f["where"] = "deleted for fp8"
                room = free_bytes(Path(a.dir)) - a.disk_margin_gb * GB
            if f8["size"] > room:
                return {**out, "skipped": f"{f8['size'] / GB:.2f} GB needed, {room / GB:.2f} GB free on disk"}
            if clock.left() < 150:
                return {**out, "skipped": f"budget: {clock.left():.0f} s left"}
            w = write_parallel([(f8["name"], f8["plan"], path)], a.workers, min(a.write_budget_s, clock.left() - 60))
            out["write"] = w
            if not w["files"][f8["name"]]["written"]:
                return out
        f8["path"], f8["where"] = path, "disk"
    r = run_way("default", models, extra_dirs, ["image_fp8"], sh, gpu, clock, pcie, bw, a.server_arg, version)
    out["run"] = r
    v = next((v for v in r.get("visits", []) if v.get("stage") == "image_fp8"), {})
    out["fp8mixed_per_step_s"] = v.get("per_step_s")
    out["fp8mixed_wall_s"] = v.get("wall_s")
    return out


if __name__ == "__main__":
    sys.exit(main())
