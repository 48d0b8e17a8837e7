"""Residency readings against ComfyUI's real objects, in-process: the pinned part of the RAM tier is read
from the ModelPatcher the way ComfyUI records it (on this CPU box ComfyUI pins nothing, so the pin is
recorded by hand exactly as ModelPatcher.pin_weight_to_device would after a successful pin)."""
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

    import comfy.model_patcher
    keys = [k for k, _ in model.model.named_parameters()][:3]
    expected = sum(comfy.model_patcher.get_key_weight(model.model, k)[0].nbytes for k in keys)
    assert expected > 0
    model.pinned.update(keys)                      # what pin_weight_to_device records after cudaHostRegister
    try:
        e, rep = entry()
        assert e["host_pinned_bytes"] == expected
        assert rep["totals"]["host_pinned_bytes"] >= expected
    finally:
        model.pinned.difference_update(keys)
    assert entry()[0]["host_pinned_bytes"] == 0
