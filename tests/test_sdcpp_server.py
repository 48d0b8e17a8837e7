"""The stable-diffusion.cpp image node (nodes/sdcpp.py, issue 27) in a real ComfyUI server on the tiny Flux.2 klein
files: the diffusion model and VAE the ComfyUI path loads, and the tiny Qwen3 at sd.cpp's head layout
(lockn_testing/tiny/sdcpp.py) as its text encoder.

- Pictures of the asked size and batch reach Save Image; the node's progress goes to the last step; the context is a
  registry entry (bytes = the worker's resident memory, one load for two runs); `/free` ends the worker and drops the
  entry, and the next run loads again.
- Cancel stops the run between steps: the worker is gone, the entry dropped, and the next run works.
- Pin and evict through the residency routes, and the policy dropping the context to make room within the RAM
  budget for a model ComfyUI loads: the worker goes with the entry.
- Bad input is a clear error and the server keeps serving: a size sd.cpp refuses, a text encoder it cannot load
  (named, with sd.cpp's own line), a model of another family and a truncated GGUF (both refused from their headers
  before anything is loaded), a run past the budgets.
- Without the binding (in-process: LOCKN_SDCPP_PYTHON pointing at a Python that lacks it) the node says how to install.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
from PIL import Image

from lockn_testing import graphs
from lockn_testing.harness.server import PromptError

pytestmark = pytest.mark.comfy


def _entries(srv) -> list[dict]:
    return [e for e in srv.get("/lockn/residency")["entries"] if e["role"] == "sdcpp_context"]


def _workers(srv) -> list[int]:
    return srv.children(b"lockn_gen.sdcpp_worker")


def _progress(res, node="1") -> list[tuple[int, int]]:
    return [(m["data"]["value"], m["data"]["max"]) for m in res.messages
            if m.get("type") == "progress" and str(m["data"].get("node")) == node]


def _free(srv):
    status, _ = srv.post("/free", {"free_memory": True, "unload_models": True})
    assert status == 200
    deadline = time.time() + 30
    while time.time() < deadline and (_workers(srv) or any(e["tier"] != "dropped" for e in _entries(srv))):
        time.sleep(0.2)


def test_pictures_a_resident_context_and_free(comfy_server):
    srv = comfy_server
    _free(srv)
    res = srv.run(graphs.sdcpp_t2i(width=80, height=64, steps=2, seed=11, batch=2, prefix="sdcpp/a"), timeout=300)
    files = srv.output_files(res, "2")
    assert len(files) == 2
    pics = [Image.open(f) for f in files]
    assert all(p.size == (80, 64) for p in pics)
    assert pics[0].tobytes() != pics[1].tobytes()              # a batch: two pictures, not one twice
    prog = _progress(res)
    assert prog and prog[-1] == (4, 4)                         # 2 steps x 2 pictures, to the last
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 1 and e["tier"] in ("gpu", "ram") and e["device"] == "cpu"
    assert e["bytes"] > 20 * 2**20 and e["family"] == "flux2" and e["mode"] == "image"
    assert e["files"] == ["flux-2-klein-4b.safetensors", graphs.SDCPP_TE, "flux2-vae.safetensors"]
    [worker] = _workers(srv)

    res2 = srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=2, seed=12, prefix="sdcpp/b"), timeout=300)
    [f2] = srv.output_files(res2, "2")
    assert Image.open(f2).size == (64, 64)
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 1 and e["hits"] >= 1        # the same context: nothing loaded again
    assert _workers(srv) == [worker]

    _free(srv)                                                 # the editor's Free button
    [e] = _entries(srv)
    assert e["tier"] == "dropped" and not _workers(srv)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=1, seed=13, prefix="sdcpp/c"), timeout=300)
    [e] = _entries(srv)
    assert e["loads_from_disk"] == 2 and e["tier"] != "dropped" and len(_workers(srv)) == 1


def test_cancel_stops_between_steps_and_the_next_run_loads_again(comfy_server):
    srv = comfy_server
    asked = threading.Event()

    def on_message(m):
        if m.get("type") == "progress" and str(m["data"].get("node")) == "1" and not asked.is_set():
            asked.set()
            threading.Thread(target=srv.post, args=("/interrupt", {})).start()
    res = srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=200, seed=21, prefix="sdcpp/int"), timeout=300,
                  on_message=on_message)
    assert asked.is_set() and res.interrupted
    assert max(v for v, _ in _progress(res)) < 200             # stopped between steps, long before the end
    assert not _workers(srv)
    [e] = _entries(srv)
    assert e["tier"] == "dropped"
    loads = e["loads_from_disk"]
    res = srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=1, seed=22, prefix="sdcpp/after"), timeout=300)
    assert len(srv.output_files(res, "2")) == 1
    assert _entries(srv)[0]["loads_from_disk"] == loads + 1


def _resident(srv):
    """The tiny context loaded: the one the tests before left, else loaded now."""
    if not [e for e in _entries(srv) if e["tier"] != "dropped"]:
        srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=1, seed=51, prefix="sdcpp/pin"), timeout=300)


def test_pin_evict_and_eviction_for_a_comfyui_model_within_the_budget(comfy_server, tiny_models):
    """The context is an entry like the others: pinned and evicted through the residency routes (the sidebar's),
    and dropped by the policy to make room within the RAM budget for a model ComfyUI loads; the worker goes with it."""
    srv = comfy_server
    _resident(srv)
    [e] = _entries(srv)
    assert srv.post("/lockn/residency/pin", {"id": e["id"], "pinned": True})[0] == 200
    assert _entries(srv)[0]["pinned"]
    srv.post("/lockn/residency/evict", {"family": "flux2"})                  # the family, pinned ones left: kept
    assert _entries(srv)[0]["tier"] != "dropped" and _workers(srv)
    srv.post("/lockn/residency/evict", {"id": e["id"]})                      # by its id: pinned or not
    assert _entries(srv)[0]["tier"] == "dropped" and not _workers(srv)
    srv.post("/lockn/residency/pin", {"id": e["id"], "pinned": False})

    srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=1, seed=52, prefix="sdcpp/budget"), timeout=300)
    [e] = _entries(srv)
    klein = sum((tiny_models / folder / name).stat().st_size for folder, name in (
        ("diffusion_models", "flux-2-klein-4b.safetensors"), ("text_encoders", "qwen_3_4b.safetensors"),
        ("vae", "flux2-vae.safetensors")))
    _budgets(srv, (e["bytes"] + klein // 2) / 1e9)          # room for the context, not for it and ComfyUI's klein
    try:
        assert _entries(srv)[0]["tier"] != "dropped"          # within the budget: kept
        srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-klein-4b", width=32, height=32, steps=1,
                                 prefix="sdcpp/comfy-klein"), timeout=300)
        assert _entries(srv)[0]["tier"] == "dropped" and not _workers(srv)
    finally:
        _budgets(srv, 0.0)


def _refused(srv, graph, *needles):
    with pytest.raises(PromptError) as e:
        srv.run(graph, timeout=300)
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    assert srv.get("/system_stats")["system"]                  # the server keeps serving
    return msg


def _budgets(srv, ram_gb: float):
    """Set the RAM budget the way a user does: a Residency (LockN) node (0: automatic)."""
    srv.run({"R": {"class_type": "LockNResidency", "inputs": {
        "gpu_budget_gb": 0.0, "ram_budget_gb": ram_gb, "pin": False, "image_priority": 1, "video_priority": 1,
        "music_priority": 1}}, "P": {"class_type": "LockNResidencyReport", "inputs": {"trigger": ["R", 5]}}})


def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(comfy_server):
    srv = comfy_server
    _refused(srv, graphs.sdcpp_t2i(width=100, height=64), "width 100", "multiple of 16", "e.g. 96")
    # ComfyUI's own tiny Qwen3 (one head): sd.cpp fixes Qwen3-4B's 32 heads and cannot read it
    msg = _refused(srv, graphs.sdcpp_t2i(text_encoder="qwen_3_4b.safetensors", seed=31), "could not load",
                   "qwen_3_4b.safetensors", "k_proj", "ComfyUI keeps running")
    assert "Traceback" not in msg.split("failed:", 1)[1][:200]
    assert not [e for e in _entries(srv) if "qwen_3_4b.safetensors" in e["files"] and e["tier"] != "dropped"]
    # a model of a family sd.cpp's Flux.2 presets do not take: recognised from its header, before anything is loaded
    _refused(srv, graphs.sdcpp_t2i(diffusion_model="Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"),
             "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", "Flux.2")
    # a GGUF cut short (an interrupted download): refused from its header, before anything is loaded
    _refused(srv, graphs.sdcpp_t2i(diffusion_model="flux2-dev-Q8_0-interrupted.gguf"), "flux2-dev-Q8_0-interrupted.gguf")
    # a run past the budgets: refused before the load, with the figures
    _free(srv)
    _budgets(srv, 0.001)
    try:
        _refused(srv, graphs.sdcpp_t2i(seed=32), "flux-2-klein-4b.safetensors", "RAM budget", "Nothing was loaded")
        assert not _workers(srv)
    finally:
        _budgets(srv, 0.0)                                     # back to automatic
    srv.run(graphs.sdcpp_t2i(width=64, height=64, steps=1, seed=33, prefix="sdcpp/ok"), timeout=300)


def test_without_the_binding_the_node_says_how_to_install(comfy_inproc, monkeypatch):
    plain = shutil.which("python3")
    if not plain or subprocess.run([plain, "-c", "import stable_diffusion_cpp"], capture_output=True).returncode == 0:
        pytest.skip("no Python without the binding on this machine")
    monkeypatch.setenv("LOCKN_SDCPP_PYTHON", plain)
    from lockn_testing.harness.inprocess import ExecutionFailed
    with pytest.raises(ExecutionFailed) as e:
        comfy_inproc.run(graphs.sdcpp_t2i(seed=41))
    assert "LOCKN_SETUP_SDCPP=1 bash scripts/setup.sh" in str(e.value) and plain in str(e.value)
