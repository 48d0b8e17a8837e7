"""The image -> video -> music -> image cycle on FULL-SIZE random-weight files, on one ComfyUI server
with LockN Gen on a CPU, under a LockN RAM budget smaller than the three stacks together.

    python -m bench.bench_fullsize_cycle [--presets image=flux2-klein-4b-fp8,video=wan22-ti2v-5b,music=ace15-turbo]
        [--ram-budget-gb 16] [--disk-budget-gb 42] [--dir /var/tmp/lockn-fullsize-cycle] [--keep]
        [--timeout 3600] [--results bench/results] [--out FILE] [--dry-run-tiny]

The three presets' files are written (lockn_testing/fullsize.py) into DIR/models/<folder>/<file>
(files already there with the planned size are reused), dropped from the page cache, and one server
(bench_fullsize_family's set-up: the LockNBenchProbe custom node, --cache-classic) runs four prompts,
one per stage visit: image, video, music, image again, each with a LockNResidency node carrying
ram_budget_gb and its own sampler seeds (so no visit is served whole from ComfyUI's output cache).
Per visit the JSON (bench/results/<date>_cpu_fullsize_cycle.json) holds:

- registry: GET /lockn/residency afterwards (every entry: tier, bytes, loads from disk, and the
  change of its tier and of its disk-load count against the visit before), totals, budgets;
- disk: /proc/<server>/io read_bytes before and after (the difference is what the visit read from
  the disk: page-cache misses), the growth of the server's RssFile, and per model file the bytes in
  the page cache before and after the visit (mincore);
- rss: the server's VmRSS / VmHWM / RssAnon / RssFile peaks (overall and per node, sampled every
  0.2 s) and the system's lowest MemAvailable during the visit;
- wall time, node seconds, the probe's view of the models, the outcome ("finished", "error",
  "timeout", "killed": the server's exit code, -9 without a traceback is the OOM killer) and the
  interesting log lines of the visit. A dead server ends the cycle (later visits: "not run").

Graphs at the smallest size each model takes, one sampling step: Flux.2 klein 4B 32x32 (guidance
1.0: klein is distilled), Wan2.2 TI2V 5B 32x32 x 1 frame through the LockN loader with
weight_dtype fp8_e4m3fn (on a CPU ComfyUI would otherwise cast the 10 GB fp16 file to a 20 GB fp32
copy), ACE-Step 1.5 turbo on the shortest latent with the LM's audio codes off.

--dry-run-tiny: the same code path on the tiny test models (lockn_testing.tiny), nothing written or
deleted, a 0.1 GB RAM budget (unless given: above the largest tiny stack, below the three together)
so that evictions happen.
The files are deleted afterwards unless --keep; the server is stopped on every exit (Ctrl-C too).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import drop_from_page_cache, machine  # noqa: E402
from bench.bench_fullsize_family import (PROBE, Sampler, graph_for, log_lines, mem_available,  # noqa: E402
                                         proc_status, run_watched)

GB = 1e9
DEFAULT_PRESETS = "image=flux2-klein-4b-fp8,video=wan22-ti2v-5b,music=ace15-turbo"
VISITS = ("image", "video", "music", "image")
VIDEO_WEIGHT_DTYPE = "fp8_e4m3fn"
START_IMAGE = "cycle_start.png"
STOP: dict = {"signal": None}      # set by SIGINT / SIGTERM; checked again where a library might swallow the raise


def check_stop():
    if STOP["signal"] is not None:
        raise KeyboardInterrupt(f"signal {STOP['signal']}")


# ---- /proc and page-cache readers ------------------------------------------------------------------

def proc_io(pid: int) -> dict[str, int] | None:
    """/proc/PID/io (read_bytes: what the process caused to be fetched from the disk)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k.strip(): int(v) for k, v in (line.split(":") for line in f if ":" in line)}
    except OSError:
        return None


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_PAGE = os.sysconf("SC_PAGE_SIZE")
_LOW_BIT = bytes(b & 1 for b in range(256))      # mincore: bit 0 of each byte = page resident


def cached_bytes(path: Path) -> int | None:
    """Bytes of the file in the page cache (mincore on a read-only mapping; nothing is read)."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return 0
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            pages = (size + _PAGE - 1) // _PAGE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                return None
            return bytes(vec).translate(_LOW_BIT).count(1) * _PAGE
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


# ---- graphs ----------------------------------------------------------------------------------------

def stage_graph(stage: str, preset: str, info: dict, ram_gb: float) -> tuple[dict, str, dict]:
    """(prompt, loader node id, what was shrunk) for one stage, with a LockNResidency node (ram_gb)."""
    from lockn_gen import catalog
    from lockn_testing import graphs
    family = catalog.builtin().presets[preset].family
    if family == "wan22" and "ti2v" in preset:
        g = graphs.wan22_ti2v(START_IMAGE, loader="lockn", width=32, height=32, length=1, steps=1,
                              prefix=f"cycle/{stage}", preset=preset)
        lid = "37"
        g[lid]["inputs"]["weight_dtype"] = VIDEO_WEIGHT_DTYPE
        g["900"] = {"class_type": "LockNBenchProbe", "inputs": {"model": [lid, 0], "model_2": [lid, 1], "clip": [lid, 2], "vae": [lid, 3]}}
        shrunk = {"width": 32, "height": 32, "length": 1, "steps": 1, "weight_dtype": VIDEO_WEIGHT_DTYPE,
                  "note": "Wan22ImageToVideoLatent minimum (32 px, 1 frame); weight_dtype fp8_e4m3fn so the CPU run "
                          "does not make a 20 GB fp32 copy of the 10 GB fp16 file (cfg 5: cond + uncond)"}
    else:
        g, lid, shrunk = graph_for(preset, family, START_IMAGE, info=info)
        for n in g.values():
            if n["class_type"] == "SaveImage" or n["class_type"].startswith("Save"):
                n["inputs"]["filename_prefix"] = f"cycle/{stage}"
        if family == "flux2":
            for n in g.values():
                if n["class_type"] == "FluxGuidance":
                    n["inputs"]["guidance"] = 1.0
                    shrunk["guidance"] = 1.0
    if ram_gb:
        g = graphs.with_residency(g, ram_gb=ram_gb)
    return g, lid, shrunk


def vary_seeds(g: dict, visit: int) -> dict:
    """The same prompt with every seed input moved by the visit number (fresh sampling each visit)."""
    g = {k: {**n, "inputs": dict(n["inputs"])} for k, n in g.items()}
    for n in g.values():
        for key in ("seed", "noise_seed"):
            if isinstance(n["inputs"].get(key), int):
                n["inputs"][key] = (n["inputs"][key] + 1000003 * (visit + 1)) % (2 ** 63)
    return g


# ---- registry --------------------------------------------------------------------------------------

def registry(srv) -> dict:
    rep = srv.get("/lockn/residency", timeout=120)
    keys = ("id", "name", "family", "role", "mode", "tier", "device", "bytes", "loads_from_disk", "hits",
            "pinned", "held_after_drop")
    return {"entries": [{k: e.get(k) for k in keys} for e in rep["entries"]], "totals": rep.get("totals"),
            "budgets": rep.get("budgets"), "eviction": rep.get("eviction"), "warnings": rep.get("warnings")}


def registry_changes(reg: dict, prev: dict | None) -> None:
    """Per entry: tier_before and disk loads during the visit (against the registry before it)."""
    before = {e["id"]: e for e in (prev or {}).get("entries", [])}
    for e in reg["entries"]:
        b = before.get(e["id"])
        e["tier_before"] = b["tier"] if b else "(new)"
        e["loads_from_disk_during_visit"] = (e.get("loads_from_disk") or 0) - ((b or {}).get("loads_from_disk") or 0)
    seen = {e["id"] for e in reg["entries"]}
    reg["gone"] = [{"id": i, "name": b["name"], "tier_before": b["tier"]} for i, b in before.items() if i not in seen]


# ---- the run ---------------------------------------------------------------------------------------

def parse_presets(text: str) -> dict[str, str]:
    out = dict(p.split("=", 1) for p in text.split(",") if p.strip())
    missing = {"image", "video", "music"} - set(out)
    if missing:
        raise SystemExit(f"--presets needs image=, video= and music= (missing {sorted(missing)})")
    return out


def prepare_files(presets: dict[str, str], root: Path, disk_budget_gb: float, res: dict, dry: bool, written: dict):
    """{file name: path} of every file of the presets, written unless dry (None + reason if skipped)."""
    from lockn_gen import catalog
    from lockn_testing import fullsize
    cat = catalog.builtin()
    names: dict[str, str] = {}                           # file -> stage
    for stage, preset in presets.items():
        for e in cat.preset_files(preset).values():
            names.setdefault(e.name, stage)
    models = root
    paths = {n: models / cat.file(n).folder / n for n in names}
    res["files"] = {n: {"stage": s, "folder": cat.file(n).folder} for n, s in names.items()}
    if dry:
        missing = [n for n, p in paths.items() if not p.exists()]
        if missing:
            return None, f"the tiny set lacks {missing}"
        for n, p in paths.items():
            res["files"][n]["bytes"] = p.stat().st_size
        return paths, None
    plans: dict = {}
    for preset in presets.values():
        plans.update(fullsize.plan_preset(preset))
    none = [n for n, p in plans.items() if p is None]
    if none:
        return None, f"the writer has no recipe for {none}"
    total = sum(p.size() for p in plans.values())
    res["plan_total_bytes"] = total
    for n, p in plans.items():
        res["files"][n]["plan_bytes"] = p.size()
        res["files"][n]["plan_params"] = p.params
    if total > disk_budget_gb * GB:
        return None, f"{total / GB:.2f} GB of files > disk budget {disk_budget_gb:g} GB"
    existing = sum(p.size() for n, p in plans.items() if paths[n].exists() and paths[n].stat().st_size == p.size())
    probe = models
    while not probe.exists():                           # the free space where the files would go (nothing made yet)
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < total - existing + (2 << 30):
        return None, f"{(total - existing) / GB:.2f} GB to write, {free / GB:.2f} GB free on {probe}"
    models.mkdir(parents=True, exist_ok=True)
    written.update(paths)                               # deleted afterwards unless --keep (a failed write too)
    for i, (n, p) in enumerate(plans.items()):
        path = paths[n]
        if path.exists() and path.stat().st_size == p.size():
            res["files"][n].update(bytes=p.size(), reused=True)
            print(f"reusing {path}", flush=True)
            continue
        w = p.write(str(path), seed=i)
        res["files"][n].update(bytes=os.path.getsize(path), write_s=round(w["seconds"], 1),
                               write_mb_s=round(w["bytes"] / max(w["seconds"], 1e-9) / 1e6, 1))
        print(f"wrote {n}: {w['bytes'] / GB:.2f} GB in {w['seconds']:.0f} s", flush=True)
    return paths, None


def run_visit(srv, i: int, stage: str, prompt: dict, lid: str, paths: dict, timeout: float, period: float,
              prev_reg: dict | None, log_offset: int) -> tuple[dict, int]:
    from lockn_testing.harness.server import PromptError
    pid = srv.proc.pid
    v: dict = {"visit": i + 1, "stage": stage}
    io0, st0 = proc_io(pid), proc_status(pid)
    v["page_cache_before"] = {n: cached_bytes(p) for n, p in paths.items()}
    sampler = Sampler(pid, period)
    sampler.start()

    t0 = time.perf_counter()
    try:
        result, outcome = run_watched(srv, prompt, timeout, sampler, PromptError, check=check_stop)
        v.update(outcome)
    finally:
        if STOP["signal"] is not None:
            sampler.stop()
    check_stop()
    v["wall_s"] = round(time.perf_counter() - t0, 2)
    time.sleep(1.0)
    io1, st1 = proc_io(pid), proc_status(pid)
    rc = srv.proc.poll()
    sampler.stop()
    v["server_exit_code"] = rc
    if rc is not None:
        v["outcome"] = "killed" if rc in (-9, 137) else f"server exited ({rc})"
        v["killed_during"] = sampler.node
        v["rss_last_sample"] = sampler.last
    if io0 and io1:
        v["read_bytes"] = io1["read_bytes"] - io0["read_bytes"]
        v["rchar"] = io1["rchar"] - io0["rchar"]
    else:
        v["read_bytes"] = None
    v["io_before"], v["io_after"] = io0, io1
    v["status_before"], v["status_after"] = st0, st1
    if st0 and st1:
        v["rss_file_growth"] = st1["RssFile"] - st0["RssFile"]
        v["rss_anon_growth"] = st1["RssAnon"] - st0["RssAnon"]
    v["page_cache_after"] = {n: cached_bytes(p) for n, p in paths.items()}
    v["rss"] = {"peak": sampler.peak, "peak_at_node": sampler.peak_at, "per_node": sampler.per_node,
                "min_mem_available": sampler.min_avail, "samples": sampler.samples, "period_s": period,
                "timeline": sampler.timeline}
    if result is not None:
        ns = result.node_seconds()
        v["node_seconds"] = {f"{k} {prompt.get(k, {}).get('class_type', '?')}": round(s, 2) for k, s in ns.items()}
        v["load_s"] = round(ns[lid], 2) if lid in ns else None
        v["executed"] = list(result.executed)
        v["cached_nodes"] = list(result.cached)
        probe = result.outputs.get("900", {}).get("probe")
        if probe:
            v["detected"] = json.loads(probe[0])
    if rc is None:
        try:
            reg = registry(srv)
            registry_changes(reg, prev_reg)
            v["registry"] = reg
        except Exception as e:
            v["registry_error"] = f"{type(e).__name__}: {e}"
    try:
        text = srv.log_path.read_text(errors="replace")
    except OSError:
        text = ""
    v["log_lines"] = log_lines(text[log_offset:])
    if v["outcome"] != "finished":
        v["log_tail"] = text[-4000:]
    return v, len(text)


def run_cycle(a, presets: dict[str, str], res: dict, write_json) -> None:
    from PIL import Image
    from lockn_testing.harness.server import ComfyServer
    dry = a.dry_run_tiny
    if dry:
        from lockn_testing import tiny
        models = Path(tiny.ensure())
    else:
        models = Path(a.dir) / "models"
    res["models_root"] = str(models)
    written: dict = {}
    base = Path(tempfile.mkdtemp(prefix="lockn-fscycle-"))
    srv = None
    try:
        paths, why = prepare_files(presets, models, a.disk_budget_gb, res, dry, written)
        if paths is None:
            res["outcome"] = "skipped"
            res["reason"] = why
            return
        res["total_bytes"] = sum(p.stat().st_size for p in paths.values())
        res["stack_bytes"] = {s: sum(f["bytes"] for f in res["files"].values() if f["stage"] == s) for s in presets}
        write_json()
        probe_dir = base / "_probe"
        probe_dir.mkdir()
        (probe_dir / "__init__.py").write_text(PROBE)
        srv = ComfyServer(models, base_dir=base / "comfy", extra_args=("--cache-classic",))
        srv.custom_nodes["lockn_bench_probe"] = probe_dir
        t0 = time.perf_counter()
        srv.start(timeout=600)
        res["server_start_s"] = round(time.perf_counter() - t0, 1)
        res["server_pid"] = srv.proc.pid
        Image.new("RGB", (32, 32), (200, 180, 160)).save(srv.base / "input" / START_IMAGE)
        info = srv.get("/object_info", timeout=120)
        graphs_ = {}
        for stage, preset in presets.items():
            g, lid, shrunk = stage_graph(stage, preset, info, a.ram_budget_gb)
            graphs_[stage] = (g, lid)
            res.setdefault("graphs", {})[stage] = {"preset": preset, "loader_node": lid, "shrunk": shrunk,
                                                   "nodes": {k: n["class_type"] for k, n in g.items()}}
        res["rss_idle_server"] = proc_status(srv.proc.pid)
        res["dropped_from_page_cache_bytes"] = drop_from_page_cache(*paths.values())
        res["page_cache_after_drop"] = {n: cached_bytes(p) for n, p in paths.items()}
        res["mem_available_before"] = mem_available()
        offset = len(srv.log_tail(10 ** 9))
        prev = None
        res["visits"] = []
        for i, stage in enumerate(VISITS):
            g, lid = graphs_[stage]
            check_stop()
            print(f"visit {i + 1}: {stage} ({presets[stage]})", flush=True)
            v, offset = run_visit(srv, i, stage, vary_seeds(g, i), lid, paths, a.timeout, a.period, prev, offset)
            v["preset"] = presets[stage]
            res["visits"].append(v)
            prev = v.get("registry", prev)
            print("  " + visit_line(v), flush=True)
            write_json()
            if v["outcome"] != "finished" and srv.proc.poll() is not None:
                for j in range(i + 1, len(VISITS)):
                    res["visits"].append({"visit": j + 1, "stage": VISITS[j], "preset": presets[VISITS[j]],
                                          "outcome": "not run (server dead)"})
                break
        outs = [v["outcome"] for v in res["visits"]]
        res["outcome"] = "finished" if all(o == "finished" for o in outs) else \
            ("killed" if "killed" in outs else next(o for o in outs if o != "finished"))
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)
        if not a.keep:
            for p in written.values():
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
            for d in {p.parent for p in written.values()}:
                try:
                    d.rmdir()                               # only if empty
                except OSError:
                    pass
            res["files_deleted"] = bool(written)


# ---- output ----------------------------------------------------------------------------------------

def _gb(x) -> str:
    return "-" if x is None else f"{x / GB:.2f}"


def visit_line(v: dict) -> str:
    pk = v.get("rss", {}).get("peak", {})
    tiers = ", ".join(f"{e['role']}:{e['tier']}" for e in v.get("registry", {}).get("entries", []))
    return (f"{v['stage']}: {v['outcome']} {v.get('wall_s')} s, read {_gb(v.get('read_bytes'))} GB, "
            f"peak anon {_gb(pk.get('RssAnon'))} / file {_gb(pk.get('RssFile'))} GB, "
            f"min avail {_gb(v.get('rss', {}).get('min_mem_available'))} GB; {tiers}")


def summary_table(res: dict) -> str:
    if res.get("outcome") == "skipped":
        return f"skipped: {res.get('reason')}"
    rows = [("#", "stage", "outcome", "wall s", "read GB", "RssFile+ GB", "peak anon", "peak file", "min avail",
             "disk loads", "registry after (role:tier GB)")]
    for v in res.get("visits", []):
        pk = v.get("rss", {}).get("peak", {})
        reg = v.get("registry", {})
        ents = reg.get("entries", [])
        loads = sum(e.get("loads_from_disk_during_visit", 0) for e in ents)
        tiers = " ".join(f"{e['family']}/{e['role']}:{e['tier']}{'*' if e['tier'] != e.get('tier_before') else ''}"
                         f" {(e.get('bytes') or 0) / GB:.2f}" for e in ents)
        rows.append((str(v["visit"]), v["stage"], v["outcome"], str(v.get("wall_s", "-")), _gb(v.get("read_bytes")),
                     _gb(v.get("rss_file_growth")), _gb(pk.get("RssAnon")), _gb(pk.get("RssFile")),
                     _gb(v.get("rss", {}).get("min_mem_available")), str(loads) if ents else "-", tiers or "-"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r[:-1])) + "  " + r[-1] for r in rows]
    lines.append(f"(budget {res.get('ram_budget_gb')} GB RAM; stacks " +
                 ", ".join(f"{s} {_gb(b)} GB" for s, b in res.get("stack_bytes", {}).items()) +
                 "; * = tier changed in this visit)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=DEFAULT_PRESETS, help="image=ID,video=ID,music=ID (catalog presets)")
    ap.add_argument("--ram-budget-gb", type=float, default=None,
                    help="LockN RAM budget through a Residency node (default 16; 0.1 with --dry-run-tiny; 0: the pack's default, no node)")
    ap.add_argument("--disk-budget-gb", type=float, default=42.0, help="the most the three presets' files may take")
    ap.add_argument("--dir", default="/var/tmp/lockn-fullsize-cycle", help="where the models root is written")
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per prompt")
    ap.add_argument("--period", type=float, default=0.2, help="RSS sampling period (s)")
    ap.add_argument("--dry-run-tiny", action="store_true", help="the tiny test models; nothing written or deleted")
    ap.add_argument("--results", default=str(REPO / "bench" / "results"))
    ap.add_argument("--out", default=None, help="the JSON's path (default: RESULTS/<date>_cpu_fullsize_cycle[_dry_tiny].json)")
    a = ap.parse_args(argv)
    if a.ram_budget_gb is None:
        a.ram_budget_gb = 0.1 if a.dry_run_tiny else 16.0
    presets = parse_presets(a.presets)
    out = Path(a.out) if a.out else Path(a.results) / (
        f"{time.strftime('%Y-%m-%d')}_cpu_fullsize_cycle{'_dry_tiny' if a.dry_run_tiny else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    cmd = (f"python -m bench.bench_fullsize_cycle --presets {','.join(f'{k}={v}' for k, v in presets.items())} "
           f"--ram-budget-gb {a.ram_budget_gb:g} --disk-budget-gb {a.disk_budget_gb:g} --dir {a.dir} "
           f"--timeout {a.timeout:g}{' --keep' if a.keep else ''}{' --dry-run-tiny' if a.dry_run_tiny else ''}")
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": cmd, "dry_run_tiny": a.dry_run_tiny,
                 "machine": {**machine(), "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")},
                 "presets": presets, "visit_order": list(VISITS), "ram_budget_gb": a.ram_budget_gb,
                 "disk_budget_gb": a.disk_budget_gb, "video_weight_dtype": VIDEO_WEIGHT_DTYPE,
                 "notes": {"video_weight_dtype": "the Wan2.2 TI2V 5B loader runs with weight_dtype fp8_e4m3fn so ComfyUI on a "
                                                 "CPU does not cast the 10 GB fp16 file to a 20 GB fp32 copy",
                           "read_bytes": "/proc/<server>/io read_bytes delta over the visit: bytes fetched from the disk "
                                         "(page-cache misses), first visit after the files were dropped from the page cache",
                           "ram_budget": "a LockNResidency node with ram_budget_gb in every prompt (0: none)",
                           "tiers": "registry tiers: 'gpu' = on ComfyUI's compute device, which on this --cpu server is "
                                    "system RAM (device 'cpu'); 'ram' = offloaded copy in RAM; 'dropped' = released, "
                                    "the next use loads from disk (or from the page cache: see read_bytes)"}}
    try:
        from lockn_testing.harness import comfyui_path
        res["comfyui"] = (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    except Exception:
        pass

    def write_json():
        out.write_text(json.dumps(res, indent=2))

    def on_term(signum, frame):
        if STOP["signal"] is not None:                 # a second signal: let the clean-up finish
            return
        STOP["signal"] = signum
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)         # also when started in the background (SIGINT ignored there)
    t0 = time.perf_counter()
    try:
        run_cycle(a, presets, res, write_json)
    except KeyboardInterrupt as e:
        res["outcome"] = "interrupted"
        res["reason"] = str(e) or "Ctrl-C"
    finally:
        res["total_s"] = round(time.perf_counter() - t0, 1)
        write_json()
    print(summary_table(res), flush=True)
    print(f"-> {out}", flush=True)
    return 0 if res.get("outcome") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
