"""Several ComfyUI servers through ComfyUI-Distributed (robertvoy/ComfyUI-Distributed @ a91f9fb0), on loopback.

Three real ComfyUI processes, each with its own base directory and its own copy of ComfyUI-Distributed (its
gpu_config.json lives in its own folder): a master with ComfyUI-Distributed only (no LockN Gen, no models of
its own to load: it orchestrates, gathers through the collector and writes the files) and two workers A and B
with the pack, ComfyUI-GGUF, ComfyUI-Distributed and the tiny models, listed in the master's config through
its own route (POST /distributed/config/update_worker). Jobs are submitted the user's way, lockn_gen.client's
run_workflow with `master=` (what `lockn-gen run --master URL` calls).

The tests share the three servers, in this order: a job goes to the worker that holds its models (B); copies
of one workflow go as one collector round over both workers; a mixed queue reads each model on one worker
only; a worker killed mid-job (A, for good) sends the job once more to B, and the master keeps serving.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lockn_gen import cli
from lockn_gen.client import run_workflow
from lockn_testing import graphs
from lockn_testing.harness import distributed_node_dir

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def pool3(tiny_models):
    from lockn_testing.harness.server import distributed_loopback
    if not (distributed_node_dir() / "__init__.py").is_file():
        pytest.skip(f"no ComfyUI-Distributed at {distributed_node_dir()}: scripts/setup.sh brings it "
                    "(LOCKN_SETUP_DISTRIBUTED=1, which scripts/test.sh sets), or set LOCKN_DISTRIBUTED_PATH")
    servers = distributed_loopback(tiny_models)
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()
            shutil.rmtree(s.base, ignore_errors=True)


def api_file(tmp_path: Path, prompt: dict, name: str) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(prompt))
    return p


def loads(srv) -> dict:
    """file name -> times read from disk, over the server's residency entries."""
    out: dict = {}
    for e in srv.get("/lockn/residency")["entries"]:
        for f in e["files"]:
            out[f] = out.get(f, 0) + e["loads_from_disk"]
    return out


def free(*servers, timeout: float = 60.0):
    """POST /free on each, then wait until its registry holds nothing (ComfyUI applies the flags when its queue
    next wakes, later on a busy machine)."""
    for s in servers:
        s.post("/free", {"unload_models": True, "free_memory": True})
    deadline = time.time() + timeout
    for s in servers:
        while any(e["tier"] != "dropped" for e in s.get("/lockn/residency")["entries"]):
            assert time.time() < deadline, s.get("/lockn/residency")["entries"]
            time.sleep(0.2)


def flux(seed=5, prefix="dist/flux", steps=2, size=64):
    return graphs.flux2_t2i(loader="lockn", width=size, height=size, steps=steps, seed=seed, prefix=prefix)


def test_a_job_goes_to_the_worker_that_holds_its_models(pool3, tmp_path):
    master, a, b = pool3["master"], pool3["A"], pool3["B"]
    b.run(flux(seed=1, prefix="dist/warm"))                   # B holds the Flux.2 models now
    before = loads(b)
    assert before and all(n == 1 for n in before.values())
    a_hist = set(a.get("/history"))
    said = []
    (r,) = run_workflow(api_file(tmp_path, flux(), "flux.json"), master=master.url, out_dir=tmp_path / "out",
                        log=said.append)
    assert r.ok, r.error
    assert r.server.startswith("B ("), r.server
    assert loads(b) == before                                  # nothing read from disk again on B
    assert set(a.get("/history")) == a_hist and not a.get("/lockn/residency")["entries"]
    plan = next(s for s in said if s.startswith("flux -> "))
    assert plan.startswith("flux -> B (") and "read from disk" not in plan, said
    (png,) = r.files                                           # written by the master, downloaded from it
    assert Image.open(png).size == (64, 64)
    assert r.prompt_id in master.get("/history")
    sent = master.get("/history")[r.prompt_id]["prompt"][2]
    assert any(n["class_type"] == "DistributedCollector" for n in sent.values())
    assert not any(n["class_type"].startswith("LockN") for n in sent.values())   # the master loads no model


def test_copies_go_as_one_collector_round_and_every_image_comes_back(pool3, tmp_path):
    master, a, b = pool3["master"], pool3["A"], pool3["B"]
    hist = {s: set(s.get("/history")) for s in (a, b)}
    said = []
    results = run_workflow(api_file(tmp_path, flux(seed=40, prefix="dist/round"), "flux.json"), master=master.url,
                           out_dir=tmp_path / "out", jobs=2, log=said.append)
    assert [r.label for r in results] == ["flux#1", "flux#2"]
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[0].prompt_id == results[1].prompt_id          # one prompt on the master for both copies
    files = [f for r in results for f in r.files]
    assert len(files) == 2 and len(set(files)) == 2
    pics = [np.asarray(Image.open(f), dtype=np.int16) for f in files]
    assert np.abs(pics[0] - pics[1]).mean() > 1                  # two seeds, two pictures
    seeds = []
    for s in (a, b):                                             # each worker ran its share once
        (new,) = set(s.get("/history")) - hist[s]
        p = s.get("/history")[new]["prompt"][2]
        seeds.append(next(n["inputs"]["seed"] for n in p.values() if n["class_type"] == "DistributedSeed"))
        assert next(n for n in p.values() if n["class_type"] == "RandomNoise")["inputs"]["noise_seed"][0].startswith("lockn.seed")
    assert seeds[0] == seeds[1] == 39                            # DistributedSeed adds 1 and 2: seeds 40 and 41
    out = master.get("/history")[results[0].prompt_id]["outputs"]
    assert sum(len(o.get("images", [])) for o in out.values()) == 2


def test_a_mixed_queue_reads_each_model_once(pool3, tmp_path):
    master, a, b = pool3["master"], pool3["A"], pool3["B"]
    free(a, b)
    wfs = [api_file(tmp_path, flux(seed=70 + k, prefix=f"dist/mix_f{k}"), f"image{k}.json") for k in (1, 2)]
    music = [api_file(tmp_path, graphs.ace15_t2m(seconds=1.0, steps=2, loader="lockn", prefix=f"dist/mix_m{k}"),
                      f"music{k}.json") for k in (1, 2)]
    before = {s: loads(s) for s in (a, b)}
    said = []
    results = run_workflow([wfs[0], music[0], wfs[1], music[1]], master=master.url, out_dir=tmp_path / "out",
                           log=said.append)
    assert all(r.ok for r in results), [r.error for r in results]
    read: dict = {}                                            # file -> the workers that read it
    for name, s in (("A", a), ("B", b)):
        for f, n in loads(s).items():
            if n > before[s].get(f, 0):
                read.setdefault(f, set()).add(name)
    # each model file read on one worker of the pool only (a second read there would be ComfyUI's own memory
    # management on a crowded test box, not the choice: the pool sent every job for it to that worker)
    assert read and all(len(w) == 1 for w in read.values()), f"files read on both workers: {read}\n" + "\n".join(said)
    where = {r.label: r.server.split(" ")[0] for r in results}
    assert where["image1"] == where["image2"] != where["music1"] == where["music2"], where
    assert all(len(r.files) == 1 for r in results)
    assert [f.suffix for r in results for f in r.files] == [".png", ".mp3", ".png", ".mp3"]


def test_a_worker_killed_mid_job_sends_it_once_more_and_the_master_keeps_serving(pool3, tmp_path):
    master, a, b = pool3["master"], pool3["A"], pool3["B"]
    free(a, b)
    a.run(flux(seed=2, prefix="dist/warm_a"))                   # A holds Flux.2: the job will go there
    said, out = [], {}
    wf = api_file(tmp_path, flux(seed=9, prefix="dist/killed", steps=40, size=192), "long.json")

    def submit():
        out["results"] = run_workflow(wf, master=master.url, out_dir=tmp_path / "out", log=said.append)

    t = threading.Thread(target=submit)
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not a.get("/queue")["queue_running"]:
        time.sleep(0.1)
    assert a.get("/queue")["queue_running"], "the job did not start on A"
    time.sleep(0.5)
    a.kill()                                                   # the worker dies mid-job
    t.join(timeout=240)
    assert not t.is_alive()
    (r,) = out["results"]
    assert r.ok, r.error
    assert r.server.startswith("B ("), r.server
    assert any("worker A" in s and "vanished" in s and "sending it once more, to B" in s for s in said), said
    assert len(r.files) == 1 and list((tmp_path / "out").rglob("*.png")) == r.files   # nothing else written
    hist = master.get("/history")
    first = [pid for pid, h in hist.items() if pid != r.prompt_id and
             any(n.get("class_type") == "SaveImage" and n["inputs"]["filename_prefix"] == "dist/killed"
                 for n in h["prompt"][2].values())]
    assert first and all(hist[p]["status"]["status_str"] != "success" or not hist[p]["outputs"] for p in first)
    # a job that fails on the worker, with no other worker left: the message names the worker and why it stops
    bad = flux(seed=4, prefix="dist/bad")
    bad["A1"] = graphs.lockn_loader("ace15", "ace15-turbo")
    bad["8"]["inputs"]["vae"] = ["A1", 2]                     # ACE-Step's audio VAE on a picture: fails at run time
    (r3,) = run_workflow(api_file(tmp_path, bad, "bad.json"), master=master.url, out_dir=tmp_path / "out3")
    assert not r3.ok and r3.error.startswith("worker B (") and "failed the job" in r3.error, r3.error
    assert "VAEDecode" in r3.error and "no other server can take it" in r3.error and "worker A" not in r3.error[:40]
    assert not (tmp_path / "out3").exists()
    assert master.get("/system_stats")                           # and the master serves the next job (the CLI)
    code = cli.main(["run", str(api_file(tmp_path, flux(seed=3, prefix="dist/after"), "after.json")),
                     "--master", master.url, "--out", str(tmp_path / "out2"), "--no-progress"])
    assert code == 0 and len(list((tmp_path / "out2").rglob("*.png"))) == 1
