"""Faults on a real ComfyUI server with the pack, on the tiny models: the quality chain interrupted in
each stage, the editor's free button mid-sampling, route calls and websocket clients that come and go
while a queue of chains runs, and a load past the RAM budget. Each ends with the same check: nothing
partial under a final name, the registry consistent, and the next chain run succeeds with the same
output for the same seed.

The server computes on the CPU (--cpu), so "gpu" entries live in system RAM: LockN budgets the two
tiers together there (the refusal test relies on it)."""
from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from lockn_gen import client
from lockn_gen.demo_sets import TINY
from lockn_testing.harness.server import PromptError, serving
from lockn_testing.media import assert_same_media, probe_media

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"
STAGES = {   # stage: (the class of a sampler that runs in it, --set values that make it last a while on the tiny models)
    "image": ("SamplerCustomAdvanced", ["Image steps.steps=150"]),
    "video": ("KSamplerAdvanced", ["Video steps.value=120", "Video high-noise steps.value=60"]),
    "music": ("KSampler|Music seed and steps", ["Music seed and steps.steps=200"]),
}


def node_of(prompt: dict, class_type: str) -> str:
    """The id of the first node of that class in the (flattened) chain prompt: ids are the converter's,
    so the tests look nodes up by what they are. "Class|title" picks by title too (the stages' other models
    have samplers of the same classes: issue 24)."""
    cls, _, title = class_type.partition("|")
    return next(k for k, n in prompt.items() if n["class_type"] == cls
                and (not title or (n.get("_meta") or {}).get("title") == title))


@pytest.fixture(scope="module")
def srv(tiny_models, start_image):
    with serving(tiny_models, {"lockn_start.png": start_image}) as s:
        yield s


@pytest.fixture(scope="module")
def object_info(srv):
    return srv.get("/object_info")


def chain(object_info, *extra, name="chain_quality") -> dict:
    (job,) = client.prepare([str(WF / f"{name}.json")], TINY[name] + list(extra), object_info)
    return job.prompt


def mp4s(srv) -> dict[str, int]:
    return {str(p.relative_to(srv.base)): p.stat().st_size for p in (srv.base / "output").rglob("*")
            if p.is_file() and p.suffix.lower() in (".mp4", ".webm", ".mov", ".tmp", ".part")}


def run_chain(srv, prompt) -> Path:
    res = srv.run(prompt, timeout=600)
    (mp4,) = srv.output_files(res)
    info = probe_media(mp4)
    assert info["n_video_streams"] == 1 and info["n_audio_streams"] == 1, info
    return mp4


def registry_settled(srv, timeout=20.0) -> dict:
    """The registry after the prompt's end: nothing running or pending, every entry in a known tier."""
    deadline = time.time() + timeout
    while True:
        rep = srv.get("/lockn/residency")
        q = srv.get("/queue")
        if not rep["prompt_running"] and not rep["pending_evictions"] and not q["queue_running"] and not q["queue_pending"]:
            break
        assert time.time() < deadline, (rep["prompt_running"], rep["pending_evictions"], q)
        time.sleep(0.2)
    assert all(e["tier"] in ("gpu", "ram", "dropped") for e in rep["entries"]), rep["entries"]
    ids = [e["id"] for e in rep["entries"]]
    assert len(ids) == len(set(ids)), ids
    assert rep["totals"]["entries"] == len(ids)
    return rep


def loads(rep) -> dict[str, int]:
    return {e["name"]: e["loads_from_disk"] for e in rep["entries"]}


@pytest.fixture(scope="module")
def reference(srv, object_info):
    """The quality chain's output for its seeds, before any fault (compared with later runs by
    lockn_testing.media.assert_same_media: the same frames and samples up to the H.264 encoder's noise, a
    mean difference of at most 1 level of 255)."""
    return run_chain(srv, chain(object_info))


def at_first_progress(node: str, action):
    """An on_message callback that runs `action` once, at `node`'s first sampling step."""
    done = threading.Event()

    def on_message(m):
        if not done.is_set() and m.get("type") == "progress" and str(m.get("data", {}).get("node")) == node:
            done.set()
            action()
    on_message.done = done
    return on_message


@pytest.mark.parametrize("stage", ["image", "video", "music", "assemble"])
def test_chain_interrupted_in_each_stage_loses_nothing(srv, object_info, reference, stage):
    before_files = mp4s(srv)
    before = registry_settled(srv)
    if stage == "assemble":
        # /interrupt is honoured at sampling steps and before each node starts; the assemble stage has no
        # steps, so the request is made at the music sampler's last step and lands before the decode,
        # fit, CreateVideo and SaveVideo nodes start
        fired = threading.Event()

        def on_message(m):
            d = m.get("data", {})
            if (not fired.is_set() and m.get("type") == "progress" and str(d.get("node")) == music_sampler
                    and d.get("value") == d.get("max")):
                fired.set()
                srv.post("/interrupt", {})
        prompt = chain(object_info, "Music seed and steps.steps=6")
        music_sampler = node_of(prompt, "KSampler|Music seed and steps")
        assemble = {node_of(prompt, c) for c in ("LockNFitAudioToVideo", "CreateVideo", "SaveVideo")}
        res = srv.run(prompt, timeout=600, on_message=on_message)
        assert fired.is_set() and res.interrupted, "the chain was not interrupted before its assemble stage"
        assert not assemble & set(res.executed), res.executed
    else:
        cls, stretch = STAGES[stage]
        prompt = chain(object_info, *stretch)
        node = node_of(prompt, cls)
        cb = at_first_progress(node, lambda: srv.post("/interrupt", {}))
        res = srv.run(prompt, timeout=600, on_message=cb)
        assert cb.done.is_set(), f"the {stage} stage's sampler ({node}) never reported progress"
        assert res.interrupted, f"the chain was not interrupted in the {stage} stage"
    save = node_of(prompt, "SaveVideo")
    assert save not in res.executed and not res.outputs.get(save), (res.executed, res.outputs)
    assert mp4s(srv) == before_files, "an interrupted chain left a file in output/"
    after = registry_settled(srv)
    assert loads(after) == {**loads(before), **{n: v for n, v in loads(after).items() if n not in loads(before)}}
    # the next run: complete, the same output for the same seed, and nothing read from disk again
    assert_same_media(run_chain(srv, chain(object_info)), reference, "the chain after the fault and before it")
    assert {n: v for n, v in loads(registry_settled(srv)).items() if n in loads(after)} == loads(after)


@pytest.mark.parametrize("route,body", [
    ("/api/free", {"unload_models": True, "free_memory": True}),     # "Unload Models and Execution Cache"
    ("/api/free", {"unload_models": True, "free_memory": False}),    # "Unload Models"
    ("/free", {"free_memory": True}),
    ("/free", {}),
])
def test_the_free_button_while_a_lockn_prompt_samples(srv, object_info, reference, route, body):
    """ComfyUI applies /free after the running prompt: the chain finishes with the same output. With
    free_memory LockN lets go of its entries and the next run reads them again; with unload_models alone
    they leave the compute device and wait in RAM, as ComfyUI's own cached models do; either way the next
    run gives the same output."""
    registry_settled(srv)
    statuses = []
    # other video steps than the reference's, so that ComfyUI's cache does not answer for the video stage
    prompt = chain(object_info, "Video steps.value=6", "Video high-noise steps.value=3")
    cb = at_first_progress(node_of(prompt, "KSamplerAdvanced"), lambda: statuses.append(srv.post(route, body)[0]))
    res = srv.run(prompt, timeout=600, on_message=cb)
    assert cb.done.is_set() and statuses == [200], statuses
    assert not res.interrupted and probe_media(srv.output_files(res)[0])["video"]["frames"] == 17
    rep = registry_settled(srv)
    want = "dropped" if body.get("free_memory") else "ram" if body.get("unload_models") else None
    if want:       # free_memory: LockN lets go too; unload_models alone: off the compute device, kept in RAM
        deadline = time.time() + 20
        while any(e["tier"] != want for e in rep["entries"]) and time.time() < deadline:
            time.sleep(0.2)
            rep = srv.get("/lockn/residency")
        assert all(e["tier"] == want for e in rep["entries"]), [(e["name"], e["tier"]) for e in rep["entries"]]
    assert_same_media(run_chain(srv, chain(object_info)), reference, "the chain after the fault and before it")
    after = registry_settled(srv)
    grew = {n: v - loads(rep).get(n, 0) for n, v in loads(after).items()}
    if want == "dropped":
        assert all(v == 1 for v in grew.values()), grew          # read again, once each
    else:
        assert not any(grew.values()), grew                     # kept: nothing read again


def _vanishing_websockets(srv, stop: threading.Event, counter: list):
    """Connect a websocket, read a little, and drop the TCP connection without a close frame."""
    while not stop.is_set():
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            s.sendall((f"GET /ws?clientId=vanish{counter[0]} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            s.recv(512)
            counter[0] += 1
        except OSError:
            pass
        finally:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST, no FIN
            s.close()
        time.sleep(0.05)


def test_route_storm_and_vanishing_websockets_during_a_queue_of_chains(srv, object_info, reference):
    """A queue of mixed prompts (the quality chain, then the fast chain) while another client pins,
    unpins and evicts many times a second and websocket clients connect and vanish mid-prompt: every
    prompt ends without error, the chains give their outputs for their seeds, the registry ends settled."""
    registry_settled(srv)
    # steps that differ from the reference's and from each other, so ComfyUI's cache does not answer
    prompts = [chain(object_info, "Music seed and steps.steps=5"), chain(object_info, name="chain_fast")]
    stop, errors, calls, vanished = threading.Event(), [], [0], [0]

    def storm():
        rnd = random.Random(7)
        while not stop.is_set():
            try:
                ids = [e["id"] for e in srv.get("/lockn/residency", timeout=10)["entries"]]
                if ids:
                    pick = rnd.sample(ids, min(len(ids), 2))
                    kind = rnd.choice(["pin", "unpin", "evict", "ram"])
                    if kind in ("pin", "unpin"):
                        status, body = srv.post("/lockn/residency/pin", {"id": pick, "pinned": kind == "pin"}, timeout=10)
                    else:
                        status, body = srv.post("/lockn/residency/evict",
                                                {"id": pick, "to": "dropped" if kind == "evict" else "ram"}, timeout=10)
                    if status != 200:
                        errors.append((kind, status, body))
                calls[0] += 1
            except Exception as e:                      # a route that hangs or fails is what this looks for
                errors.append(repr(e))
            time.sleep(0.05)

    threads = [threading.Thread(target=storm), threading.Thread(target=_vanishing_websockets, args=(srv, stop, vanished))]
    for t in threads:
        t.start()
    try:
        results = [srv.run(p, timeout=600) for p in prompts]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[:5]
    assert calls[0] >= 10 and vanished[0] >= 5, (calls, vanished)
    for r in results:
        info = probe_media(srv.output_files(r)[0])
        assert info["n_video_streams"] == 1 and info["n_audio_streams"] == 1 and info["audio"]["finite"], info
    assert_same_media(run_chain(srv, chain(object_info)), reference, "the chain after the storm")   # the music stage runs again
    rep = registry_settled(srv)
    srv.post("/lockn/residency/pin", {"id": [e["id"] for e in rep["entries"]], "pinned": False})
    assert srv.get("/system_stats")


def test_a_load_past_the_ram_budget_stops_with_a_message_instead_of_the_oom_killer(srv, object_info, reference):
    """ComfyUI computes in RAM here, so both tiers count against the RAM budget. With a budget smaller
    than a model, its load stops before the read with the budget, the model and the fix; the server keeps
    serving; with the budget back to automatic the chain runs and gives its output."""
    music = json.loads(json.dumps(chain(object_info)))
    # a prompt whose Residency node sets a 1 MB RAM budget (applies at its end): the tiny music models
    ace = node_of(music, "LockNAceStep15Loader")
    music = {ace: music[ace], "R": {"class_type": "LockNResidency", "inputs": {
        "gpu_budget_gb": 0.0, "ram_budget_gb": 0.001, "pin": False, "image_priority": 1, "video_priority": 1,
        "music_priority": 1, "model": [ace, 0]}}, "P": {"class_type": "LockNResidencyReport", "inputs": {"trigger": ["R", 5]}}}
    srv.run(music)
    before = registry_settled(srv)
    assert before["budgets"]["ram_bytes"] == 1_000_000
    files = mp4s(srv)
    with pytest.raises(PromptError) as err:
        srv.run(chain(object_info))
    msg = err.value.args[0]
    for words in ("would exceed LockN's RAM budget of 0.00 GB", "ComfyUI computes in system RAM here",
                  "Nothing was loaded", "raise ram_budget_gb on the Residency (LockN) node", "of RAM is available now"):
        assert words in msg, (words, msg)
    assert re.search(r"loading \S+\.(gguf|safetensors) \(\d+\.\d\d GB\)", msg), msg     # the model, by file name
    assert mp4s(srv) == files
    after = registry_settled(srv)
    assert {n: v for n, v in loads(after).items() if n in loads(before)} == loads(before)    # nothing read
    # the fix, in the same workflow: its Residency node's budget back to automatic (0); it holds from the
    # prompt's start, so the loader before it loads
    music["R"]["inputs"]["ram_budget_gb"] = 0.0
    srv.run(music)
    assert srv.get("/lockn/residency")["budgets"]["ram_bytes"] > 1_000_000_000
    assert_same_media(run_chain(srv, chain(object_info)), reference, "the chain after the fault and before it")
