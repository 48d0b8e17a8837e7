"""Residency readings against ComfyUI's real objects, in-process: the pinned part of the RAM tier is read
from the ModelPatcher the way ComfyUI records it. On this CPU box ComfyUI pins nothing, so the pins are
recorded by hand exactly as ComfyUI records a successful one: ModelPatcher.pin_weight_to_device adds
the key to patcher.pinned (classic loading), comfy.pinned_memory.pin_memory sets module._pin to the
page-locked host buffer (dynamic VRAM)."""
from __future__ import annotations

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
