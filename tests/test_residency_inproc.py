"""Residency readings against ComfyUI's real objects, in-process: the pinned part of the RAM tier is read
from the ModelPatcher the way ComfyUI records it. On this CPU box ComfyUI pins nothing, so the pins are
recorded by hand exactly as ComfyUI records a successful one: ModelPatcher.pin_weight_to_device adds
the key to patcher.pinned (classic loading), comfy.pinned_memory.pin_memory sets module._pin to the
page-locked host buffer (dynamic VRAM)."""
from __future__ import annotations

import os
import re
import sys

import pytest

pytestmark = pytest.mark.comfy


def _registry():
    mods = [m for n, m in sys.modules.items() if n.endswith("nodes.residency") and hasattr(m, "REGISTRY")]
    assert len(mods) == 1, [n for n in sys.modules if n.endswith("nodes.residency")]
    return mods[0].REGISTRY


def test_report_counts_weights_comfyui_pinned(comfy_inproc):
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNFlux2Loader"]
    kw = {i.id: "(preset)" for i in cls.GET_SCHEMA().inputs}
    kw.update(preset="flux2-dev-q8_0", weight_dtype="default")
    model = cls.execute(**kw).args[0]
    reg = _registry()

    def entry():
        rep = reg.report()
        [e] = [e for e in rep["entries"] if e["name"] == "flux2-dev-Q8_0.gguf"]
        return e, rep

    e, rep = entry()
    assert e["host_pinned_bytes"] == 0 and e["tier"] in ("ram", "gpu")

    import comfy.model_management as mm
    import comfy.model_patcher
    import torch

    def pinned(nbytes):                            # ComfyUI's pin functions keep this total
        mm.TOTAL_PINNED_MEMORY += nbytes

    keys = [k for k, _ in model.model.named_parameters()][:3]
    expected = sum(comfy.model_patcher.get_key_weight(model.model, k)[0].nbytes for k in keys)
    assert expected > 0
    model.pinned.update(keys)                      # what pin_weight_to_device records after cudaHostRegister
    pinned(expected)
    try:
        e, rep = entry()
        assert e["host_pinned_bytes"] == expected
        assert rep["totals"]["host_pinned_bytes"] >= expected
    finally:
        model.pinned.difference_update(keys)
        pinned(-expected)
    assert entry()[0]["host_pinned_bytes"] == 0

    # dynamic VRAM, recorded the way the installed ComfyUI does: 0.33 keeps, per device and subset, a
    # tuple whose fourth item counts the pinned bytes (model.dynamic_pins, laid out by
    # ModelPatcherDynamic.register_load_device, bumped by comfy.pinned_memory.pin_memory; on a CPU
    # box comfy_aimdo is never started, so the layout is written here as that function writes it);
    # 0.20.1 leaves module._pin behind
    dynamic = getattr(comfy.model_patcher, "ModelPatcherDynamic", None)
    if dynamic is not None and hasattr(dynamic, "register_load_device"):
        subset = lambda: (None, [], [-1], [0], [0], {})          # (hostbuf, stack, split, pinned_size, counter, buckets)
        model.model.dynamic_pins = {model.load_device: {
            "weights": subset(), "patches": subset(), "weights-loaded": subset(), "patches-loaded": subset(),
            "hostbufs_initialized": False, "failed": False, "active": False, "current_prompt": False}}
        model.model.dynamic_pins[model.load_device]["weights"][3][0] += 4096

        def unpin():
            del model.model.dynamic_pins
    else:
        mod = next(m for m in model.model.modules() if getattr(m, "weight", None) is not None)
        mod._pin = torch.empty(4096, dtype=torch.uint8)

        def unpin():
            del mod._pin
    pinned(4096)
    try:
        assert entry()[0]["host_pinned_bytes"] == 4096
    finally:
        unpin()
        pinned(-4096)
    assert entry()[0]["host_pinned_bytes"] == 0


def test_dropping_a_model_changes_its_loader_fingerprint(comfy_inproc):
    """Cached outputs of a dropped model are never served: the loader's fingerprint (what ComfyUI's
    cache keys on) changes when its model is dropped, and not when it only moves to RAM."""
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNAceStep15Loader"]
    kw = {i.id: "(preset)" for i in cls.GET_SCHEMA().inputs}
    kw.update(preset="ace15-turbo")
    if "weight_dtype" in kw:
        kw["weight_dtype"] = "default"
    cls.execute(**kw)

    def fp():
        return cls.fingerprint_inputs(**kw)
    reg = _registry()
    recs = reg.find(family="ace15")
    assert recs and all(r.obj is not None for r in recs)
    f1 = fp()
    assert fp() == f1
    reg.evict(recs, to="ram", defer_if_busy=False)
    assert fp() == f1
    reg.evict(recs, to="dropped", defer_if_busy=False)
    assert fp() != f1
    cls.execute(**kw)                                   # reloads; the new fingerprint is stable again
    f2 = fp()
    assert f2 != f1 and fp() == f2


def test_no_prompt_pays_for_hearing_prompt_ends(comfy_inproc):
    """ComfyUI's one prompt-end hook for custom nodes is a cache provider, and while any is registered
    ComfyUI serialises and hashes every node's cache key. The registry settles after a prompt without
    it: the loader's fingerprint notes which entries the prompt uses (ComfyUI asks for it before any node
    runs, also when the loader's outputs come from its cache) and settles nothing; the prompt is settled
    when the next one starts or, between prompts, before a report."""
    import comfy_execution.cache_provider as cp
    from lockn_testing import graphs

    reg = _registry()
    hashed = []
    serialize = cp._serialize_cache_key
    cp._serialize_cache_key = lambda key: hashed.append(key) or serialize(key)   # counts ComfyUI's work

    def flux():
        reg.report()
        return [r.entry for r in reg.find(family="flux2") if r.obj is not None]
    try:
        comfy_inproc.run(graphs.flux2_t2i(loader="lockn", steps=1, width=32, height=32, prefix="hook/lockn"))
        assert reg.prompt_running or reg.upcoming  # noted, not settled yet: no node of ours ran after it
        assert "gpu" in {e.tier for e in flux()} and not reg.prompt_running

        # The same graph with a new seed: the loader's outputs come from ComfyUI's cache, and the prompt
        # is still noted: a GPU budget of 1 kB sends the image models to RAM when it is settled.
        reg.set_budgets(gpu_gb=1e-6)
        out = comfy_inproc.run(graphs.flux2_t2i(loader="lockn", steps=1, width=32, height=32, seed=7, prefix="hook/lockn"))
        assert "12" in out["cached"] and "12" not in out["executed"]
        assert reg.upcoming and not reg.prompt_running     # noted by the fingerprint, nothing settled
        assert {e.tier for e in flux()} == {"ram"}

        comfy_inproc.run(graphs.flux2_t2i(loader="core", steps=1, width=32, height=32, prefix="hook/core"))
        assert hashed == [] and not reg.armed      # ComfyUI hashed no cache key for LockN in all three
    finally:
        cp._serialize_cache_key = serialize
        reg.set_budgets(gpu_gb=0)                    # back to the default budget


# ---- what counts against the RAM budget: private memory, not the pages a GGUF file maps ------------------
def _residency_module():
    return next(m for n, m in sys.modules.items() if n.endswith("nodes.residency") and hasattr(m, "REGISTRY"))


def _set_ram_budget(comfy_inproc, gb: float):
    """A prompt whose Residency (LockN) node sets the RAM budget, as a user sets it (0 = automatic)."""
    comfy_inproc.run({"R": {"class_type": "LockNResidency", "inputs": {
        "gpu_budget_gb": 0.0, "ram_budget_gb": gb, "pin": False, "image_priority": 1, "video_priority": 1,
        "music_priority": 1}}, "P": {"class_type": "LockNResidencyReport", "inputs": {"trigger": ["R", 5]}}})


def _drop_everything(reg):
    reg.evict(list(reg.records.values()), to="dropped", defer_if_busy=False)
    assert all(e["tier"] == "dropped" for e in reg.report()["entries"])


def _wan(entries, preset_files):
    return {e["name"]: e for e in entries if e["name"] in preset_files}


WAN_GGUF = ("Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf",
            "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors")


def test_a_gguf_files_mapped_pages_are_measured_apart_from_private_memory(comfy_inproc):
    """ComfyUI-GGUF keeps the quantized weights as views into the file's read-only map; ComfyUI's safetensors
    loads copy into private memory. The report shows each entry's mapped part (measured from where its
    tensors lie, /proc/self/maps) next to its bytes, and the totals count the private part against the RAM
    budget (here both tiers: ComfyUI computes in system RAM). The estimate made before a load predicts the
    measured split."""
    from lockn_testing import graphs
    reg = _registry()
    seam = next(m for n, m in sys.modules.items() if n.endswith("nodes.comfy_seam"))
    _drop_everything(reg)
    comfy_inproc.run(graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", prefix="mapped/measure"))
    rep = reg.report()
    wan = _wan(rep["entries"], WAN_GGUF)
    assert set(wan) == set(WAN_GGUF) and all(e["tier"] in ("gpu", "ram") for e in wan.values())
    models = comfy_inproc.folder_paths.get_folder_paths("diffusion_models")
    for name in WAN_GGUF[:2]:
        e = wan[name]
        path = next(os.path.join(d, name) for d in models if os.path.isfile(os.path.join(d, name)))
        size = os.path.getsize(path)
        # most of the file stays mapped; the rest of the model (copied norms and convolutions, ComfyUI-GGUF's
        # dequantization buffer in the model size) is private
        assert 0.9 * size < e["mapped_bytes"] < e["bytes"], (name, size, e)
        est_bytes, est_mapped = seam.gguf_load_split(path)
        assert abs(est_mapped - e["mapped_bytes"]) <= 0.02 * e["mapped_bytes"], (est_mapped, e)
        assert abs((est_bytes - est_mapped) - (e["bytes"] - e["mapped_bytes"])) <= 0.1 * (e["bytes"] - e["mapped_bytes"])
    for name in WAN_GGUF[2:]:
        assert wan[name]["mapped_bytes"] == 0 and wan[name]["bytes"] > 0, wan[name]      # copied: private
    t = rep["totals"]
    everything = [e for e in rep["entries"] if e["tier"] != "dropped"]
    assert t["mapped_bytes"] == sum(e["mapped_bytes"] for e in everything) >= sum(wan[n]["mapped_bytes"] for n in WAN_GGUF)
    assert t["ram_budget_counts_gpu"] is True
    assert t["ram_budget_used_bytes"] == sum(e["bytes"] - e["mapped_bytes"] for e in everything)
    print({n: (e["bytes"], e["mapped_bytes"]) for n, e in wan.items()})


def test_a_run_that_fits_in_private_memory_is_no_longer_refused_and_one_that_does_not_still_is(comfy_inproc):
    """A RAM budget between the Wan2.2 GGUF stack's private bytes and its whole size: the run is no longer
    refused (all of it was counted before, and its load stopped) and completes, within the budget. A run
    whose private bytes exceed the budget is still refused before its model is read, with a message that
    says what counts: the fp8 safetensors stack under the same budget, and the GGUF stack under a budget
    below its first model's private part (nothing of it read)."""
    from lockn_testing import graphs
    from lockn_testing.harness.inprocess import ExecutionFailed
    reg = _registry()
    _drop_everything(reg)
    gguf = graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", prefix="mapped/fits")
    comfy_inproc.run(gguf)
    wan = _wan(reg.report()["entries"], WAN_GGUF)
    whole = sum(e["bytes"] for e in wan.values())
    private = sum(e["bytes"] - e["mapped_bytes"] for e in wan.values())
    budget = (whole + private) // 2
    assert private < budget < whole, (private, budget, whole)
    try:
        _drop_everything(reg)
        _set_ram_budget(comfy_inproc, budget / 1e9)
        assert reg.report()["budgets"]["ram_bytes"] == budget
        out = comfy_inproc.run(graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", prefix="mapped/fits", steps=3))
        assert out["outputs"], out
        rep = reg.report()
        wan = _wan(rep["entries"], WAN_GGUF)
        assert all(e["tier"] != "dropped" for e in wan.values()), {n: e["tier"] for n, e in wan.items()}
        assert rep["totals"]["ram_budget_used_bytes"] <= budget < rep["totals"]["gpu_bytes"] + rep["totals"]["ram_bytes"]

        # the fp8 safetensors stack under the same budget: private, it does not fit; stopped before the read
        fp8 = graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-fp8", prefix="mapped/fp8")
        before = {e["name"]: e["loads_from_disk"] for e in reg.report()["entries"]}     # other tests' loads count too
        with pytest.raises(ExecutionFailed) as err:
            comfy_inproc.run(fp8)
        msg = str(err.value)
        refused = re.search(r"loading (\S+\.safetensors) \(\d+\.\d\d GB\) would exceed LockN's RAM budget", msg)
        assert refused, msg
        for words in ("ComfyUI computes in system RAM here", "the RAM budget counts private memory, which the "
                      f"kernel cannot reclaim (weights copied or converted out of their files): ", f"MB of {refused.group(1)}",
                      "Nothing was loaded"):
            assert words in msg, (words, msg)
        assert not [e for e in reg.report()["entries"] if e["name"] == refused.group(1)
                    and e["loads_from_disk"] != before.get(e["name"], 0)]

        # the GGUF stack under a budget below its first model's private part: refused, nothing read
        _drop_everything(reg)
        loads = {e["name"]: e["loads_from_disk"] for e in reg.report()["entries"]}
        first = min(e["bytes"] - e["mapped_bytes"] for n, e in wan.items() if n.endswith(".gguf"))
        _set_ram_budget(comfy_inproc, first / 2 / 1e9)
        with pytest.raises(ExecutionFailed) as err:
            comfy_inproc.run(graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", prefix="mapped/small"))
        msg = str(err.value)
        assert re.search(r"loading Wan2\.2-I2V-A14B-\w+-Q4_K_M\.gguf \(\d+\.\d\d GB\) would exceed", msg), msg
        assert "MB of it and" in msg and "Nothing was loaded" in msg, msg
        assert {e["name"]: e["loads_from_disk"] for e in reg.report()["entries"]} == loads      # nothing read
    finally:
        _set_ram_budget(comfy_inproc, 0.0)
    assert reg.report()["budgets"]["ram_bytes"] > 1e9


def test_without_proc_maps_every_model_counts_whole_and_the_report_says_so(comfy_inproc, monkeypatch):
    """Where the kernel shows no memory maps (macOS), nothing is counted as mapped, and a warning says that
    whole models count against the RAM budget."""
    from lockn_testing import graphs
    reg = _registry()
    comfy_inproc.run(graphs.wan22_i2v(loader="lockn", preset="wan22-i2v-a14b-q4_k_m", prefix="mapped/noproc"))
    assert any(e["mapped_bytes"] for e in reg.report()["entries"] if e["tier"] != "dropped")
    monkeypatch.setattr(_residency_module().policy, "file_mappings", lambda ids=None: None)
    for r in reg.records.values():
        r.mapped_key = None                                # as after a load: measured again
    rep = reg.report()
    assert all(e["mapped_bytes"] == 0 for e in rep["entries"] if e["tier"] != "dropped")
    assert any("/proc/self/maps" in w and "counts whole" in w for w in rep["warnings"]), rep["warnings"]
    monkeypatch.undo()
    for r in reg.records.values():
        r.mapped_key = None
    rep = reg.report()
    assert any(e["mapped_bytes"] for e in rep["entries"] if e["tier"] != "dropped")
    assert not any("/proc/self/maps" in w for w in rep["warnings"])
