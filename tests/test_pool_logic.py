"""lockn_gen.pool (which server takes a job) and the pure parts of lockn_gen.distributed (the collector and
seed rewiring, reading the servers' reports). The same choice on real servers: tests/test_distributed_server.py."""
from __future__ import annotations

import pytest

from lockn_gen import distributed as D
from lockn_gen import pool as P
from lockn_gen.workflow import WorkflowError
from lockn_testing import graphs

GB = 10 ** 9
FLUX = {"flux.gguf": 12 * GB, "te.safetensors": 6 * GB, "vae.safetensors": GB // 3}
MUSIC = {"ace.safetensors": 5 * GB}


def member(mid, gpu=(), ram=(), queue=0, down=None, gpu_budget=None, ram_budget=None, sizes=None):
    m = P.Member(mid, f"http://{mid}:8188", name=mid, queue=queue, down=down, gpu_budget=gpu_budget,
                 ram_budget=ram_budget, job_s=30.0)
    for f in gpu:
        m.tiers[f] = "gpu"
    for f in ram:
        m.tiers[f] = "ram"
    m.order = [*ram, *gpu]
    m.sizes = dict(sizes or {f: {**FLUX, **MUSIC}.get(f, 0) for f in m.order})
    return m


def test_gpu_beats_ram_beats_disk():
    pool = P.Pool([member("disk"), member("ram", ram=FLUX), member("gpu", gpu=FLUX)])
    ch = pool.choose(P.Needs(FLUX))
    assert ch.member.id == "gpu"
    assert [c.member.id for c in ch.costs] == ["gpu", "ram", "disk"]
    assert ch.costs[1].load_s == pytest.approx(sum(FLUX.values()) / P.RAM_BPS)
    assert ch.costs[2].load_s == pytest.approx(sum(FLUX.values()) / P.DISK_BPS)
    assert "3 on its GPU" in ch.costs[0].describe() and "3 read from disk" in ch.costs[2].describe()


def test_a_busy_queue_costs_its_wait():
    # the holder has 2 prompts of 30 s ahead (60 s); reading 18.3 GB elsewhere takes ~31 s: elsewhere wins
    pool = P.Pool([member("holder", gpu=FLUX, queue=2), member("free")])
    assert pool.choose(P.Needs(FLUX)).member.id == "free"
    pool = P.Pool([member("holder", gpu=FLUX, queue=1), member("free")])   # 30 s wait < 31 s read
    assert pool.choose(P.Needs(FLUX)).member.id == "holder"


def test_a_member_that_lacks_a_file_or_is_down_is_never_chosen():
    pool = P.Pool([member("lacks", gpu=FLUX), member("down", gpu=FLUX, down="does not answer"), member("far", queue=9)])
    ch = pool.choose(P.Needs(FLUX, missing={"lacks": ["vae.safetensors"]}))
    assert ch.member.id == "far"
    assert "lacks vae.safetensors" in ch.why() and "does not answer" in ch.why()
    none = pool.choose(P.Needs(FLUX, missing={"lacks": ["x"], "far": ["y"]}))
    assert none.member is None
    msg = none.refusal("flux#1")
    assert "flux#1: no server of the pool can run it" in msg and "lacks x" in msg and "lacks y" in msg
    assert "lockn-gen models pull" in msg
    again = pool.choose(P.Needs(FLUX, missing={"lacks": ["x"]}), exclude=("far",))
    assert again.member is None and "failed this job already" in again.why()


def test_ties_go_to_the_shorter_queue_then_the_first_listed():
    pool = P.Pool([member("a", queue=1), member("b", queue=1), member("c")])
    pool.members[2].job_s = pool.members[0].job_s = pool.members[1].job_s = 0.0
    assert pool.choose(P.Needs({})).member.id == "c"
    pool = P.Pool([member("a"), member("b")])
    assert pool.choose(P.Needs(FLUX)).member.id == "a"


def test_a_mixed_queue_is_planned_so_each_model_is_read_once():
    pool = P.Pool([member("A"), member("B")])
    plan = pool.plan([P.Needs(FLUX), P.Needs(MUSIC), P.Needs(FLUX), P.Needs(MUSIC), P.Needs(FLUX)])
    assert [c.member.id for c in plan] == ["A", "B", "A", "B", "A"]
    reads = [c.costs[0].disk for c in plan]
    assert reads[0] == list(FLUX) and reads[1] == list(MUSIC) and reads[2:] == [[], [], []]
    assert pool.members[0].queue == 0 and not pool.members[0].tiers      # the plan ran on a copy


def test_the_plan_follows_the_budgets():
    # A's GPU holds 19 GB: when the music comes, the least recently used file (the Flux.2 GGUF) goes to its RAM
    # (13 GB); the next music job's text encoder past both budgets drops what is oldest there
    a = member("A", gpu_budget=19 * GB, ram_budget=13 * GB)
    sim = P.Pool([a])
    sim.assign(a, P.Needs(FLUX))
    assert set(a.tiers.values()) == {"gpu"} and a.queue == 1
    sim.assign(a, P.Needs(MUSIC))
    assert a.tiers == {"flux.gguf": "ram", "te.safetensors": "gpu", "vae.safetensors": "gpu", "ace.safetensors": "gpu"}
    ch = sim.choose(P.Needs(FLUX))
    assert (ch.costs[0].ram, ch.costs[0].gpu) == (["flux.gguf"], ["te.safetensors", "vae.safetensors"])
    sim.assign(a, P.Needs({"big.safetensors": 14 * GB}))
    assert "flux.gguf" not in a.tiers and a.tiers["big.safetensors"] == "gpu"


def test_member_and_needs_from_the_servers_reports():
    rep = {"budgets": {"gpu_bytes": 10, "ram_bytes": None},
           "entries": [{"files": ["a.gguf"], "tier": "gpu", "bytes": 100, "last_used": 2},
                       {"files": ["t.safetensors", "v.safetensors"], "tier": "ram", "bytes": 60, "last_used": 1},
                       {"files": ["old.gguf"], "tier": "dropped", "bytes": 0, "last_used": 0}]}
    m = P.member_from_reports("A", "http://a", rep, queue=2, durations=[4.0, 6.0])
    assert m.tiers == {"a.gguf": "gpu", "t.safetensors": "ram", "v.safetensors": "ram"}
    assert m.order == ["t.safetensors", "v.safetensors", "a.gguf"] and m.sizes["t.safetensors"] == 30
    assert (m.gpu_budget, m.queue, m.job_s, m.measured) == (10, 2, 5.0, True)
    pool = P.Pool([m, P.member_from_reports("B", "http://b", rep)])
    assert pool.members[1].job_s == 5.0                  # one expected prompt time for the pool
    pre = {"nodes": [{"components": [{"name": "sub/a.gguf", "present": True, "bytes_on_disk": 7, "size": 9},
                                     {"name": "opt.safetensors", "optional": True, "present": False}]},
                     {"components": [{"name": "v.safetensors", "present": True, "bytes_on_disk": 3}]}],
           "missing": []}
    needs = P.needs_from_preflight({"A": pre, "B": {"nodes": [], "missing": ["v.safetensors"]}, "C": None})
    assert needs.files == {"a.gguf": 7, "v.safetensors": 3} and needs.missing == {"B": ["v.safetensors"]}


def test_history_durations():
    h = {"p1": {"status": {"messages": [["execution_start", {"timestamp": 1000}], ["execution_success", {"timestamp": 3500}]]}},
         "p2": {"status": {"messages": [["execution_start", {"timestamp": 0}], ["execution_error", {"timestamp": 500}]]}},
         "p3": {"status": {"messages": []}}}
    assert sorted(D.durations(h)) == [0.5, 2.5]


OI = {c: {"output_node": True} for c in ("SaveImage", "SaveAudioMP3", "SaveVideo", "PreviewImage", "SaveLatent")}


def test_collectors_go_in_front_of_every_output():
    img = D.with_collectors(graphs.flux2_t2i(loader="lockn"), OI)
    (cid,) = [k for k, n in img.items() if n["class_type"] == D.COLLECTOR]
    assert img["9"]["inputs"]["images"] == [cid, 0] and img[cid]["inputs"]["images"] == ["8", 0]
    music = D.with_collectors(graphs.ace15_t2m(loader="lockn"), OI)
    (cid,) = [k for k, n in music.items() if n["class_type"] == D.COLLECTOR]
    assert music["107"]["inputs"]["audio"] == [cid, 1] and music[cid]["inputs"]["audio"] == ["18", 0]
    pixel = music[cid]["inputs"]["images"][0]
    assert music[pixel]["class_type"] == "EmptyImage"            # the collector needs an image to send the sound
    video = {"1": {"class_type": "VAEDecode", "inputs": {}}, "2": {"class_type": "VAEDecodeAudio", "inputs": {}},
             "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "audio": ["2", 0], "fps": ["6", 0]}},
             "6": {"class_type": "PrimitiveFloat", "inputs": {"value": 16.0}},
             "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0]}},
             "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    v = D.with_collectors(video, OI)
    (cid,) = [k for k, n in v.items() if n["class_type"] == D.COLLECTOR]
    assert v["3"]["inputs"]["images"] == [cid, 0] and v["3"]["inputs"]["audio"] == [cid, 1]
    assert v["5"] == video["5"] and video["3"]["inputs"]["images"] == ["1", 0]      # previews left, input unchanged
    assert v["3"]["inputs"]["fps"] == 16.0          # the master runs CreateVideo: the constant goes in as a value
    video["6"] = {"class_type": "LockNFitFps", "inputs": {"images": ["1", 0]}}
    with pytest.raises(WorkflowError, match=r"node 3 \(CreateVideo\) takes 'fps' from node 6 \(LockNFitFps\)"):
        D.with_collectors(video, OI)
    with pytest.raises(WorkflowError, match=r"node 9 \(SaveLatent\).*--server"):
        D.with_collectors({"9": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0]}}}, OI)
    with pytest.raises(WorkflowError, match="saves nothing the collector can carry"):
        D.with_collectors({"5": video["5"]}, OI)


def test_copies_of_a_round_get_the_seeds_of_a_plain_batch():
    g = graphs.flux2_t2i(loader="lockn", seed=100)
    g1 = graphs.flux2_t2i(loader="lockn", seed=101)
    seeds = D.seed_inputs(g, g1)
    assert seeds == [("25", "noise_seed")]
    r = D.with_distributed_seeds(g, seeds, 0)
    sid = r["25"]["inputs"]["noise_seed"][0]
    assert r[sid] == {"class_type": D.SEED, "inputs": {"seed": 99}, "_meta": {"title": "Distributed Seed (lockn-gen)"}}
    assert D.with_distributed_seeds(graphs.flux2_t2i(loader="lockn", seed=0), seeds, 0) is None       # below its range
    assert D.with_distributed_seeds(graphs.flux2_t2i(loader="lockn", seed=2 ** 60), seeds, 0) is None  # above it


def test_only_picture_workflows_go_as_rounds():
    # the collector stacks the workers' outputs: pictures stay pictures, frames would become one longer clip
    assert D.pictures_only(graphs.flux2_t2i(loader="lockn"))
    assert not D.pictures_only(graphs.ace15_t2m(loader="lockn"))
    assert not D.pictures_only(graphs.wan22_i2v(loader="lockn"))


def test_worker_urls():
    assert D.worker_url({"host": "127.0.0.1", "port": 8190}) == "http://127.0.0.1:8190"
    assert D.worker_url({"host": "https://x.proxy.runpod.net/", "port": 443}) == "https://x.proxy.runpod.net"
    assert D.worker_url({"host": "box", "port": 443}) == "https://box:443"
