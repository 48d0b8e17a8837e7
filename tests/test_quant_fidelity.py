"""Quantization fidelity through the loader nodes, in ComfyUI in-process: the diffusion model's output
from the GGUF files against the safetensors original on the same input (Q8_0 within 2%, Q5_K_M and
Q4_K_M within 10%), for Flux.2 and for a Wan2.2 expert."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy


def _load(comfy_inproc, node: str, preset: str):
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS[node]
    kw = {i.id: "(preset)" for i in cls.GET_SCHEMA().inputs}
    kw.update(preset=preset, weight_dtype="default")
    return cls.execute(**kw).args[0]


def _forward(model, *args, **kw):
    import comfy.model_management as mm
    mm.load_models_gpu([model])
    with torch.inference_mode():
        return model.model.diffusion_model(*args, **kw).float()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_flux2_gguf_output_close_to_safetensors(comfy_inproc):
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 128, 8, 8, generator=g), torch.randn(1, 16, 192, generator=g)
    t, guidance = torch.tensor([0.7]), torch.tensor([4.0])
    ref = _forward(_load(comfy_inproc, "LockNFlux2Loader", "flux2-dev-fp8mixed"), x, t, ctx, guidance=guidance)
    errs = {q: _rel(_forward(_load(comfy_inproc, "LockNFlux2Loader", f"flux2-dev-{q}"), x, t, ctx, guidance=guidance), ref)
            for q in ("q8_0", "q5_k_m", "q4_k_m")}
    print("Flux.2 relative output error vs safetensors:", errs)
    assert errs["q8_0"] < 0.02
    assert errs["q5_k_m"] < 0.10 and errs["q4_k_m"] < 0.10
    assert 0 < errs["q8_0"] < errs["q5_k_m"] < errs["q4_k_m"]       # really quantized, and ordered as expected


def test_wan22_expert_gguf_output_close_to_safetensors(comfy_inproc):
    g = torch.Generator().manual_seed(1)
    x, ctx, t = torch.randn(1, 36, 2, 8, 8, generator=g), torch.randn(1, 16, 4096, generator=g), torch.tensor([700.0])
    ref = _forward(_load(comfy_inproc, "LockNWan22Loader", "wan22-i2v-a14b-fp8"), x, t, ctx)
    e8 = _rel(_forward(_load(comfy_inproc, "LockNWan22Loader", "wan22-i2v-a14b-q8_0"), x, t, ctx), ref)
    e4 = _rel(_forward(_load(comfy_inproc, "LockNWan22Loader", "wan22-i2v-a14b-q4_k_m"), x, t, ctx), ref)
    print("Wan2.2 high-noise expert relative output error vs safetensors: Q8_0", e8, "Q4_K_M", e4)
    assert 0 < e8 < 0.02 and e8 < e4 < 0.10
