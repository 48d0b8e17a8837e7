"""The tiny model files are complete: ComfyUI's own loaders build exactly the parameters a tiny file holds
(nothing built at a full size beside it, nothing left uninitialised), without a "missing" key warning, and
LockN's registry counts the tiny Flux.2 VAE as what its file holds, not as a full-size encoder.

ComfyUI 0.20.1 and 0.33 build the Flux.2 VAE's encoder at its full width whatever the weights say (only
z_channels and the decoder's width are read from them): a decode-only tiny file left ComfyUI's 34M-parameter
encoder uninitialised ("Missing VAE keys") and made the VAE 12 times the file (0.15 GB counted for 6 MB).
"""
from __future__ import annotations

import logging
import math
import os
import sys

import pytest

pytestmark = pytest.mark.comfy

NOT_WEIGHTS = {"lockn_tiny_marker", "tekken_model", "spiece_model"}     # marker and tokenizer blobs
IN_MEMORY_PER_FILE_BYTE = 2.05      # on the CPU ComfyUI holds bf16 files in fp32: twice the file, never more


def _elements(path, prefix: str = "") -> int:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()
                   if k.startswith(prefix) and k not in NOT_WEIGHTS)


def _run(comfy, node: str, **kw):
    cls = comfy.nodes.NODE_CLASS_MAPPINGS[node]
    if hasattr(cls, "FUNCTION"):
        return getattr(cls(), cls.FUNCTION)(**kw)
    out = cls.execute(**kw)
    return out.args if hasattr(out, "args") else out


# (what, loader node and inputs, files [(folder, name)], key prefix of the part in the file, output -> patcher)
CASES = [
    ("Flux.2 VAE", "VAELoader", {"vae_name": "flux2-vae.safetensors"}, [("vae", "flux2-vae.safetensors")], "",
     lambda o: o[0].patcher),
    ("Wan 2.1 VAE", "VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, [("vae", "wan_2.1_vae.safetensors")], "",
     lambda o: o[0].patcher),
    ("Wan 2.2 VAE", "VAELoader", {"vae_name": "wan2.2_vae.safetensors"}, [("vae", "wan2.2_vae.safetensors")], "",
     lambda o: o[0].patcher),
    ("LTX-2 video VAE", "VAELoader", {"vae_name": "LTX2_video_vae_bf16.safetensors"},
     [("vae", "LTX2_video_vae_bf16.safetensors")], "", lambda o: o[0].patcher),
    ("ACE-Step 1.5 VAE", "VAELoader", {"vae_name": "ace_1.5_vae.safetensors"}, [("vae", "ace_1.5_vae.safetensors")], "",
     lambda o: o[0].patcher),
    ("LTX-2 audio VAE", "LTXVAudioVAELoader", {"ckpt_name": "LTX2_audio_vae_bf16.safetensors"},
     [("checkpoints", "LTX2_audio_vae_bf16.safetensors")], "", lambda o: o[0].patcher),
    ("LTX-2 checkpoint's VAE", "CheckpointLoaderSimple", {"ckpt_name": "ltx-2-19b-dev-fp8.safetensors"},
     [("checkpoints", "ltx-2-19b-dev-fp8.safetensors")], "vae.", lambda o: o[2].patcher),
    ("Flux.2 Mistral text encoder", "CLIPLoader", {"clip_name": "mistral_3_small_flux2_fp8.safetensors", "type": "flux2"},
     [("text_encoders", "mistral_3_small_flux2_fp8.safetensors")], "", lambda o: o[0].patcher),
    ("Flux.2 klein Qwen3 text encoder", "CLIPLoader", {"clip_name": "qwen_3_4b.safetensors", "type": "flux2"},
     [("text_encoders", "qwen_3_4b.safetensors")], "", lambda o: o[0].patcher),
    ("umt5-xxl text encoder", "CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"},
     [("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors")], "", lambda o: o[0].patcher),
    ("LTX-2 Gemma 3 text encoder", "CLIPLoader", {"clip_name": "gemma_3_12B_it_fp8_scaled.safetensors", "type": "ltxv"},
     [("text_encoders", "gemma_3_12B_it_fp8_scaled.safetensors")], "", lambda o: o[0].patcher),
    ("ACE-Step 1.5 Qwen3 text encoder + LM", "DualCLIPLoader",
     {"clip_name1": "qwen_0.6b_ace15.safetensors", "clip_name2": "qwen_1.7b_ace15.safetensors", "type": "ace"},
     [("text_encoders", "qwen_0.6b_ace15.safetensors"), ("text_encoders", "qwen_1.7b_ace15.safetensors")], "",
     lambda o: o[0].patcher),
]


@pytest.mark.parametrize("what,node,inputs,files,prefix,patcher", CASES, ids=[c[0] for c in CASES])
def test_comfyui_builds_exactly_what_the_tiny_file_holds(comfy_inproc, tiny_models, caplog, what, node, inputs,
                                                         files, prefix, patcher):
    with caplog.at_level(logging.WARNING):
        out = _run(comfy_inproc, node, **inputs)
    missing = [r.getMessage()[:300] for r in caplog.records if "missing" in r.getMessage().lower()]
    assert not missing, f"{what}: ComfyUI warned {missing}"
    p = patcher(out)
    built = sum(t.numel() for t in p.model.parameters())
    held = sum(_elements(tiny_models / folder / name, prefix) for folder, name in files)
    assert built == pytest.approx(held, rel=0.01), f"{what}: ComfyUI built {built:,} parameters, the file holds {held:,}"
    file_bytes = sum(os.path.getsize(tiny_models / folder / name) for folder, name in files)
    assert p.model_size() <= IN_MEMORY_PER_FILE_BYTE * file_bytes, (what, p.model_size(), file_bytes)


def _registry():
    mods = [m for n, m in sys.modules.items() if n.endswith("nodes.residency") and hasattr(m, "REGISTRY")]
    assert len(mods) == 1, [n for n in sys.modules if n.endswith("nodes.residency")]
    return mods[0].REGISTRY


def test_the_registry_counts_the_tiny_flux2_vae_as_its_file(comfy_inproc, tiny_models, caplog):
    """The pack's registry (the LockN Flux.2 loader, as a workflow loads it) counts the tiny VAE near its
    file's size (fp32 in memory for a bf16 file), and ComfyUI loads it without a missing-key warning."""
    cls = comfy_inproc.nodes.NODE_CLASS_MAPPINGS["LockNFlux2Loader"]
    kw = {i.id: "(preset)" for i in cls.GET_SCHEMA().inputs}
    kw.update(preset="flux2-klein-4b", weight_dtype="default")
    with caplog.at_level(logging.WARNING):
        cls.execute(**kw)
    [e] = [e for e in _registry().report()["entries"] if e["name"] == "flux2-vae.safetensors"]
    size = os.path.getsize(tiny_models / "vae" / "flux2-vae.safetensors")
    assert 0.9 * size <= e["bytes"] <= IN_MEMORY_PER_FILE_BYTE * size, f"registry {e['bytes']:,} bytes, file {size:,}"
    assert not [r.getMessage()[:300] for r in caplog.records if "missing" in r.getMessage().lower()]
