"""Tiny shared text encoders: CLIP-L, CLIP-G (OpenCLIP bigG), T5-XXL (Flux.1, SD3.5, LTX-Video)
and T5-base (Stable Audio Open), each ComfyUI's own class at a tiny width, with the key names of the real
public files (clip_l.safetensors / clip_g.safetensors: HF CLIPTextModel names with `text_model.` and
`text_projection.weight`; t5xxl_fp16.safetensors / t5-base.safetensors: HF T5EncoderModel names, `shared.weight`,
`encoder.block.N.layer.M...`).

ComfyUI builds all four from hard-coded JSON configs (sd1_clip_config.json, clip_config_bigg.json,
t5_config_xxl.json, t5_config_base.json), so each file carries the tiny-model marker with
`model_config` = {"<model_name>": sizes}; the generic text-encoder patch (comfy_patches/__init__.py) turns it
into model_options["<model_name>_model_config"] (sd1_clip.py ~105). The layer counts are the real ones
(12 / 32 / 24 / 12), because ComfyUI routes by layer keys (CLIP-G: layer 30 exists; CLIP-L: layer 1 exists;
T5-XXL dtype detection: block 23), and the vocabularies are the real ones (the bundled CLIP and T5
tokenizers emit ids up to 49407 / 32099).

The widths below are FIXED: other families' diffusion models are sized from them (Flux.1 context =
T5XXL_WIDTH, pooled = CLIP_L_WIDTH; SD3.5 context = T5XXL_WIDTH = CLIP_L_WIDTH + CLIP_G_WIDTH, pooled =
CLIP_L_WIDTH + CLIP_G_PROJ; SDXL context = CLIP_L_WIDTH + CLIP_G_WIDTH, pooled = CLIP_G_PROJ; LTX-Video /
Stable Audio Open text width = T5BASE_WIDTH).
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny.common import init_state, link_or_copy, save_safetensors, with_marker

T5XXL_WIDTH = 64        # real 4096
T5BASE_WIDTH = 48       # real 768
CLIP_L_WIDTH = 32       # real 768
CLIP_L_PROJ = 32        # real 768 (ComfyUI's CLIPTextModel projects hidden -> hidden: always == CLIP_L_WIDTH)
CLIP_G_WIDTH = 32       # real 1280
CLIP_G_PROJ = 32        # real 1280 (always == CLIP_G_WIDTH, as above)

CLIP_VOCAB = 49408
T5_VOCAB = 32128

CLIP_L = "clip_l.safetensors"
CLIP_G = "clip_g.safetensors"
T5XXL = "t5xxl_fp16.safetensors"
T5XXL_ALIASES = ("t5xxl_fp8_e4m3fn_scaled.safetensors",)
T5BASE = "t5-base.safetensors"

# the sizes that replace ComfyUI's JSON configs (keys of those JSON files)
CLIP_L_CONFIG = dict(hidden_size=CLIP_L_WIDTH, intermediate_size=4 * CLIP_L_WIDTH, num_attention_heads=2,
                     num_hidden_layers=12, projection_dim=CLIP_L_PROJ, vocab_size=CLIP_VOCAB)
CLIP_G_CONFIG = dict(hidden_size=CLIP_G_WIDTH, intermediate_size=4 * CLIP_G_WIDTH, num_attention_heads=2,
                     num_hidden_layers=32, projection_dim=CLIP_G_PROJ, vocab_size=CLIP_VOCAB)
T5XXL_CONFIG = dict(d_model=T5XXL_WIDTH, d_ff=2 * T5XXL_WIDTH, d_kv=16, num_heads=2, num_layers=24, vocab_size=T5_VOCAB)
T5BASE_CONFIG = dict(d_model=T5BASE_WIDTH, d_ff=2 * T5BASE_WIDTH, d_kv=16, num_heads=2, num_layers=12, vocab_size=T5_VOCAB)

# marker patch specs: te_model for the detection patch, model_config for ComfyUI's model_options hook
CLIP_L_PATCH = {"model_config": {"clip_l": CLIP_L_CONFIG}}
CLIP_G_PATCH = {"model_config": {"clip_g": CLIP_G_CONFIG}}
T5XXL_PATCH = {"te_model": "T5_XXL", "model_config": {"t5xxl": T5XXL_CONFIG},
               "sd3_te_width": T5XXL_WIDTH}      # comfy_patches/images.py: SD3 pads CLIP to 4096
T5BASE_PATCH = {"te_model": "T5_BASE", "model_config": {"t5base": T5BASE_CONFIG}}


def _json_config(name: str) -> dict:
    import json

    import comfy.sd1_clip
    base = os.path.dirname(comfy.sd1_clip.__file__)
    path = os.path.join(base, name) if os.path.exists(os.path.join(base, name)) else os.path.join(base, "text_encoders", name)
    with open(path) as f:
        return json.load(f)


def _clip(seed: int, json_name: str, over: dict) -> dict:
    import comfy.clip_model
    import comfy.ops
    cfg = {**_json_config(json_name), **over}
    m = init_state(comfy.clip_model.CLIPTextModel(cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    sd = m.state_dict()
    del m
    return sd


def _t5(seed: int, json_name: str, over: dict) -> dict:
    import comfy.ops
    import comfy.text_encoders.t5
    cfg = {**_json_config(json_name), **over}
    m = init_state(comfy.text_encoders.t5.T5(cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    with torch.no_grad():
        m.shared.weight.mul_(cfg["d_model"] ** 0.5 * 0.5)     # fan-in init leaves an embedding near zero
    sd = m.state_dict()
    del m
    return sd


def make_clip_l(seed: int, family: str = "encoders") -> dict:
    """clip_l.safetensors (HF CLIPTextModel key names), 12 layers at width CLIP_L_WIDTH, marked (fp32 values)."""
    return with_marker(_clip(seed, "sd1_clip_config.json", CLIP_L_CONFIG), family, "clip_l", CLIP_L_PATCH)


def make_clip_g(seed: int, family: str = "encoders") -> dict:
    """clip_g.safetensors (HF CLIPTextModelWithProjection key names), 32 layers at width CLIP_G_WIDTH, marked."""
    return with_marker(_clip(seed, "clip_config_bigg.json", CLIP_G_CONFIG), family, "clip_g", CLIP_G_PATCH)


def make_t5xxl(seed: int, family: str = "encoders") -> dict:
    """t5xxl_fp16.safetensors (HF T5EncoderModel key names), 24 gated-gelu blocks at width T5XXL_WIDTH, marked."""
    return with_marker(_t5(seed, "t5_config_xxl.json", T5XXL_CONFIG), family, "t5xxl", T5XXL_PATCH)


def make_t5base(seed: int, family: str = "encoders") -> dict:
    """t5-base.safetensors (ComfyUI-Wiki/t5-base: HF T5EncoderModel key names), 12 relu blocks at width
    T5BASE_WIDTH, marked."""
    return with_marker(_t5(seed, "t5_config_base.json", T5BASE_CONFIG), family, "t5base", T5BASE_PATCH)


def build(root: str, seed: int = 0) -> dict:
    te = os.path.join(root, "text_encoders")
    out = {
        CLIP_L: save_safetensors(make_clip_l(seed + 101), os.path.join(te, CLIP_L), dtype=torch.float16),
        CLIP_G: save_safetensors(make_clip_g(seed + 102), os.path.join(te, CLIP_G), dtype=torch.float16),
        T5XXL: save_safetensors(make_t5xxl(seed + 103), os.path.join(te, T5XXL), dtype=torch.float16),
        T5BASE: save_safetensors(make_t5base(seed + 104), os.path.join(te, T5BASE), dtype=torch.float16),
    }
    for alias in T5XXL_ALIASES:
        out[alias] = link_or_copy(out[T5XXL], os.path.join(te, alias))
    return out
