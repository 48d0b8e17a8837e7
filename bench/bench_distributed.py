"""Several servers on loopback: residency-aware choice against ComfyUI-Distributed's least-busy choice and
against one server, on the same queue of mixed jobs, in one run (issue 26). Run on purpose, never in CI.

Three ComfyUI processes on 127.0.0.1, each with its own base directory: a ComfyUI-Distributed master (no LockN
Gen, no models: it orchestrates and writes the files) and two workers A and B (LockN Gen, ComfyUI-GGUF,
ComfyUI-Distributed, the tiny models; each its own RAM budget, `--ram-gb`, set with a Residency (LockN) node
before the runs). The queue: `--rounds` x (image, quality video, music, fast video) from the shipped
workflows, then the quality and the fast chain, at the tiny settings of lockn_gen.demo_sets, all submitted at
once. Per strategy, from an empty residency on both workers (POST /free):

- residency:  `lockn-gen run --master` (lockn_gen.client.run_workflow(master=...)): each job to the worker where
              its models cost least to bring in, through POST /distributed/queue with enabled_worker_ids;
- least-busy: each job through POST /distributed/queue with both workers enabled and the collector's
              load_balance on: ComfyUI-Distributed picks the least busy worker (round robin among idle ones);
- single:     every job on worker A (`lockn-gen run --server A`);
- residency at real-file weights: the residency strategy again, with the pool's disk and RAM rates divided by
              how much larger the real files of this queue are than the tiny ones (the catalog's sizes over the
              tiny files'), so that a load weighs against the tiny jobs' times what reading the real files would
              at the default rates: the other end of the trade between a load and a queue's wait.

Before the strategies, every job runs once on each worker (not measured), so that none of them pays a model
family's first run on a worker (imports, first kernels). Recorded: model loads from disk (the workers' residency entries, loads_from_disk), bytes read from model
files (each load x the sizes of its files), prompts per worker, wall seconds from the first submission to the
last output, failures.

    COMFYUI_PATH=~/comfy33/ComfyUI ~/comfy33/ComfyUI/.venv/bin/python -m bench.bench_distributed \\
        [--rounds 2] [--ram-gb 0.4] [--strategies residency,least-busy,single] [--out bench/results/DATE_distributed.json]

The tiny models load in milliseconds, so the wall times here weigh the orchestration and the sampling, not the
loads; the counts of loads and bytes are what carries over to real files (bench/RESULTS.md has the sizes).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench import machine
from lockn_gen import client as C
from lockn_gen import demo_sets
from lockn_gen import distributed as D
from lockn_testing import graphs
from lockn_testing.harness import comfyui_path
from lockn_testing.harness.server import distributed_loopback

REPO = Path(__file__).resolve().parents[1]
KINDS = [("image", "flux2_text_to_image"), ("quality video", "wan22_image_to_video"), ("music", "ace15_text_to_music"),
         ("fast video", "ltx2_image_to_video")]
CHAINS = [("quality chain", "chain_quality"), ("fast chain", "chain_fast")]


def start_servers(models: Path) -> dict:
    try:
        servers = distributed_loopback(models)
    except RuntimeError as e:
        sys.exit(str(e))
    for name in ("A", "B"):
        for f in (REPO / "workflows" / "input").iterdir():
            if f.is_file():
                shutil.copy(f, servers[name].base / "input" / f.name)
    return servers


def queue_of_jobs(a, rounds: int) -> list[tuple[str, dict]]:
    oi = C.Client(a.url).object_info()
    out = []
    kinds = KINDS * rounds + CHAINS
    for i, (label, wf) in enumerate(kinds):
        (job,) = C.prepare([str(REPO / "workflows" / f"{wf}.json")], demo_sets.TINY[wf], oi)
        out.append((f"{i + 1:02d} {label}", job.prompt))
    return out


def loads(srv) -> dict:
    """entry id -> (times loaded from disk, its files), over the server's residency entries."""
    return {e["id"]: (e["loads_from_disk"], tuple(e["files"])) for e in srv.get("/lockn/residency")["entries"]}


def sizes(models: Path) -> dict:
    return {p.name: p.stat().st_size for p in models.rglob("*") if p.is_file()}


def reset(servers):
    for name in ("A", "B"):
        s = servers[name]
        s.post("/free", {"unload_models": True, "free_memory": True})
    time.sleep(1.5)


def run_residency(servers, jobs, out: Path) -> list[dict]:
    files = []
    for label, prompt in jobs:
        p = out / f"{label.replace(' ', '_')}.json"
        p.write_text(json.dumps(prompt))
        files.append(str(p))
    results = C.run_workflow(files, master=servers["master"].url, out_dir=out / "files")
    return [{"job": r.label, "ok": r.ok, "on": r.server.split(" ")[0], "error": r.error} for r in results]


def run_residency_real(servers, jobs, out: Path) -> list[dict]:
    import os
    from lockn_gen import pool
    old = {k: os.environ.get(k) for k in ("LOCKN_POOL_DISK_GBPS", "LOCKN_POOL_RAM_GBPS")}
    os.environ["LOCKN_POOL_DISK_GBPS"] = str(pool.DISK_BPS / pool.GB / SCALE["ratio"])
    os.environ["LOCKN_POOL_RAM_GBPS"] = str(pool.RAM_BPS / pool.GB / SCALE["ratio"])
    try:
        return run_residency(servers, jobs, out)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


SCALE = {"ratio": 1.0}


def real_over_tiny(jobs, models: Path) -> float:
    """The catalog's sizes of the queue's model files over the tiny files' sizes."""
    from lockn_gen import catalog
    cat = catalog.builtin()
    tiny = {p.name: p.stat().st_size for p in models.rglob("*") if p.is_file()}
    names = {v for _, prompt in jobs for n in prompt.values() for v in (n.get("inputs") or {}).values()
             if isinstance(v, str) and v in tiny}
    for _, prompt in jobs:                          # the LockN loaders' presets
        for n in prompt.values():
            preset = (n.get("inputs") or {}).get("preset")
            if isinstance(preset, str) and preset in cat.presets:
                names |= {f for f in cat.presets[preset].components.values() if f in tiny}
    real = sum((cat.file(f).size or 0) for f in names if cat.file(f))
    small = sum(tiny[f] for f in names if cat.file(f) and cat.file(f).size)
    return real / small if small else 1.0


def run_single(servers, jobs, out: Path, on: str = "A") -> list[dict]:
    files = []
    for label, prompt in jobs:
        p = out / f"{label.replace(' ', '_')}.json"
        p.write_text(json.dumps(prompt))
        files.append(str(p))
    results = C.run_workflow(files, servers=[servers[on].url], out_dir=out / "files")
    return [{"job": r.label, "ok": r.ok, "on": on, "error": r.error} for r in results]


def run_least_busy(servers, jobs, out: Path) -> list[dict]:
    master = C.Client(servers["master"].url)
    moi = master.object_info()
    pids = []
    for label, prompt in jobs:
        p = D.with_collectors(prompt, moi)
        for n in p.values():
            if n["class_type"] == D.COLLECTOR:
                n["inputs"]["load_balance"] = True
        status, answer = master.post_json("/distributed/queue", {"prompt": p, "client_id": master.client_id,
                                                                 "enabled_worker_ids": ["A", "B"], "delegate_master": True})
        assert status == 200 and answer.get("prompt_id"), answer
        pids.append((label, str(answer["prompt_id"])))
    rows = []
    for label, pid in pids:
        res = master.follow(pid, timeout=1800)
        items = C.Client.output_items(res)
        rows.append({"job": label, "ok": res.ok and bool(items), "error": None if res.ok else str(res.error)[:300]})
    # which worker ran each: the collector's job id in each worker's history
    for name in ("A", "B"):
        hist = servers[name].get("/history?max_items=200")
        ids = set().union(*(D.collector_job_ids(h["prompt"][2]) for h in hist.values()))
        for (label, pid), row in zip(pids, rows):
            h = master.history(pid) or {}
            if D.collector_job_ids(h.get("prompt", [None] * 3)[2] or {}) & ids:
                row["on"] = name
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ram-gb", type=float, default=0.4, help="each worker's RAM budget (GB; the tiny stacks are "
                                                               "0.05 to 0.2 GB each)")
    ap.add_argument("--strategies", default="residency,least-busy,single,residency-real-weights")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from lockn_testing import tiny
    models = tiny.ensure(python=str(comfyui_path() / ".venv" / "bin" / "python"))
    size_of = sizes(models)
    servers = start_servers(models)
    work = Path(tempfile.mkdtemp(prefix="lockn-bench-dist-"))
    report = {"date": str(date.today()), "machine": machine(), "comfyui": str(comfyui_path()),
              "distributed": D.DISTRIBUTED_COMMIT, "rounds": args.rounds, "ram_gb": args.ram_gb, "runs": {}}
    try:
        for name in ("A", "B"):                         # the budgets, with a Residency node on each worker
            servers[name].run(graphs.with_residency(graphs.flux2_t2i(loader="lockn", prefix="bench/budget"),
                                                    ram_gb=args.ram_gb))
        jobs = queue_of_jobs(servers["A"], args.rounds)
        report["queue"] = [label for label, _ in jobs]
        SCALE["ratio"] = report["real_over_tiny"] = round(real_over_tiny(jobs, models), 1)
        for name in ("A", "B"):                         # warm-up, not measured: every job once on each worker,
            (work / f"warm{name}").mkdir()              # so no strategy pays a family's first run there
            warm = run_single(servers, jobs, work / f"warm{name}", on=name)
            assert all(r["ok"] for r in warm), warm
        for strategy in args.strategies.split(","):
            reset(servers)
            before = {n: loads(servers[n]) for n in ("A", "B")}
            seen = {n: set(servers[n].get("/history?max_items=1000")) for n in ("A", "B", "master")}
            out = work / strategy
            out.mkdir()
            t0, t_epoch = time.monotonic(), time.time()
            rows = {"residency": run_residency, "least-busy": run_least_busy, "single": run_single,
                    "residency-real-weights": run_residency_real}[strategy](
                servers, jobs, out)
            wall = time.monotonic() - t0
            model_loads, per_file = 0, {}
            for n in ("A", "B"):
                for eid, (k, files) in loads(servers[n]).items():
                    d = k - before[n].get(eid, (0, ()))[0]
                    model_loads += max(0, d)
                    for f in files:                  # a file several models share (LTX-2's checkpoint) once per
                        key = (n, f)                 # load of any of them, not once per model
                        per_file[key] = max(per_file.get(key, 0), d)
            reads = {}
            for (n, f), d in per_file.items():
                if d > 0:
                    reads[f] = reads.get(f, 0) + d
            spans = {}
            for n in ("A", "B", "master"):              # when each server computed: its new prompts' first start
                hist = servers[n].get("/history?max_items=1000")          # to last end, from the bench's start
                stamps = [dict((k, (v or {}).get("timestamp")) for k, v in h["status"]["messages"])
                          for pid, h in hist.items() if pid not in seen[n]]
                starts = [st["execution_start"] for st in stamps if st.get("execution_start")]
                ends = [st.get("execution_success") or st.get("execution_error") for st in stamps]
                ends = [e for e in ends if e]
                if starts and ends:
                    spans[n] = {"first_start_s": round(min(starts) / 1000 - t_epoch, 1),
                                "last_end_s": round(max(ends) / 1000 - t_epoch, 1),
                                "busy_s": round(sum(((st.get("execution_success") or st.get("execution_error") or 0)
                                                     - st.get("execution_start", 0)) / 1000 for st in stamps
                                                    if st.get("execution_start")), 1)}
            run = {"wall_s": round(wall, 1), "servers": spans, "model_loads": model_loads, "file_reads": sum(reads.values()),
                   "bytes_read": sum(k * size_of.get(f, 0) for f, k in reads.items()),
                   "files_read_more_than_once": {f: k for f, k in reads.items() if k > 1},
                   "jobs_per_worker": {n: sum(1 for r in rows if r.get("on") == n) for n in ("A", "B")},
                   "failed": [r for r in rows if not r["ok"]], "jobs": rows}
            report["runs"][strategy] = run
            print(f"{strategy}: {run['model_loads']} model loads, {run['file_reads']} file reads, {run['bytes_read'] / 1e6:.0f} MB read, {wall:.1f} s, "
                  f"A/B {run['jobs_per_worker']}, {len(run['failed'])} failed", flush=True)
            print(f"  computing on each server (s from the start): {spans}", flush=True)
            for r in run["failed"]:
                print(f"  FAILED {r['job']}: {str(r.get('error'))[:400]}", flush=True)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    dest = Path(args.out or REPO / "bench" / "results" / f"{date.today()}_distributed.json")
    dest.write_text(json.dumps(report, indent=1))
    print(f"written: {dest}")
    print("\n| strategy | model loads | file reads | bytes read | wall s | jobs on A / B | failed |\n"
          "|---|---|---|---|---|---|---|")
    for k, r in report["runs"].items():
        print(f"| {k} | {r['model_loads']} | {r['file_reads']} | {r['bytes_read'] / 1e6:.0f} MB | {r['wall_s']} | "
              f"{r['jobs_per_worker']['A']} / {r['jobs_per_worker']['B']} | {len(r['failed'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
