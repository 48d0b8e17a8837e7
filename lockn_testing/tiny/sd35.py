"""Tiny Stable Diffusion 3.5: the all-in-one checkpoints of the official template (sd3.5_simple_example.json:
CheckpointLoaderSimple) sd3.5_large_fp8_scaled.safetensors (MMDiT + VAE + CLIP-L + CLIP-G + T5-XXL) and
sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors (MMDiT-X: dual attention in the first x blocks), and the
split form: diffusion_models/sd3.5_large.safetensors + TripleCLIPLoader(clip_l, clip_g, t5xxl) + vae/sd3.5_vae.safetensors.

Key layout of the Comfy-Org checkpoints: model.diffusion_model.* (MMDiT), first_stage_model.* (16-channel KL
VAE, no quant convs), text_encoders.clip_l.transformer.*, text_encoders.clip_g.transformer.*,
text_encoders.t5xxl.transformer.*. ComfyUI infers the MMDiT's sizes from the weights (model_detection.py ~47-86:
depth = hidden / 64, heads = depth, pos_embed size, adm and context widths, qk norm, x-block self-attention
layers) and picks supported_models.SD3 by in_channels 16. The tiny files are fp16/bf16, not fp8-scaled.
Patches (comfy_patches/images.py): the checkpoint's embedded text encoders get the tiny configs (sd.py never
passes model options to them), SD3's text encoder pads CLIP to a hard-coded 4096, the VAE encoder width.
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny import encoders
from lockn_testing.tiny.common import assert_detected, save_safetensors, with_marker, init_state
from lockn_testing.tiny.flux1 import VAE_PATCH, make_vae

DEPTH = 2                   # hidden = 64 * depth (ComfyUI: depth = x_embedder width // 64)
POS_EMBED_MAX = 8           # 64x64 images: 8x8 latents, 4x4 patches
LARGE = "sd3.5_large_fp8_scaled.safetensors"
MEDIUM = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
SPLIT_DIT = "sd3.5_large.safetensors"
SPLIT_VAE = "sd3.5_vae.safetensors"
TE_PATCH = {"model_config": {**encoders.CLIP_L_PATCH["model_config"], **encoders.CLIP_G_PATCH["model_config"],
                             **encoders.T5XXL_PATCH["model_config"]},
            "sd3_te_width": encoders.T5XXL_WIDTH}


def mmdit_config(medium: bool = False) -> dict:
    # Mirrors the mmdit branch of comfy/model_detection.py.
    hidden = 64 * DEPTH
    return dict(in_channels=16, patch_size=2, out_channels=16, depth=DEPTH, input_size=None,
                adm_in_channels=encoders.CLIP_L_WIDTH + encoders.CLIP_G_PROJ,
                context_embedder_config={"target": "torch.nn.Linear",
                                         "params": {"in_features": encoders.T5XXL_WIDTH, "out_features": hidden}},
                num_patches=POS_EMBED_MAX ** 2, pos_embed_max_size=POS_EMBED_MAX, qk_norm="rms",
                pos_embed_scaling_factor=None, x_block_self_attn_layers=[0] if medium else [])


def make_mmdit(seed: int, medium: bool = False) -> dict:
    """The MMDiT state dict (SAI key names, no prefix), checked against ComfyUI's detection."""
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    import comfy.ops
    cfg = mmdit_config(medium)
    m = init_state(mmdit.OpenAISignatureMMDITWrapper(**cfg, dtype=torch.float32, device="cpu",
                                                      operations=comfy.ops.disable_weight_init), seed)
    sd = m.state_dict()
    del m
    assert_detected(sd, cfg, "SD3.5 MMDiT")
    return sd


def _strip(sd: dict) -> dict:
    from lockn_testing.comfy_patches import MARKER_KEY
    return {k: v for k, v in sd.items() if k != MARKER_KEY}


def make_checkpoint(seed: int, medium: bool = False) -> dict:
    sd = {f"model.diffusion_model.{k}": v for k, v in make_mmdit(seed, medium).items()}
    sd.update({f"first_stage_model.{k}": v for k, v in make_vae(seed + 1).items()})
    for name, te in (("clip_l", encoders.make_clip_l(seed + 2)), ("clip_g", encoders.make_clip_g(seed + 3)),
                     ("t5xxl", encoders.make_t5xxl(seed + 4))):
        sd.update({f"text_encoders.{name}.transformer.{k}": v for k, v in _strip(te).items()})
    return with_marker(sd, "sd35", "checkpoint", {**TE_PATCH, **VAE_PATCH})


def build(root: str, seed: int = 0) -> dict:
    out = encoders.build(root, seed)
    ck = os.path.join(root, "checkpoints")
    out[LARGE] = save_safetensors(make_checkpoint(seed + 301), os.path.join(ck, LARGE), dtype=torch.float16)
    out[MEDIUM] = save_safetensors(make_checkpoint(seed + 311, medium=True), os.path.join(ck, MEDIUM), dtype=torch.float16)
    out[SPLIT_DIT] = save_safetensors(with_marker(make_mmdit(seed + 321), "sd35", "diffusion_model"),
                                      os.path.join(root, "diffusion_models", SPLIT_DIT), dtype=torch.float16)
    out[SPLIT_VAE] = save_safetensors(with_marker(make_vae(seed + 322), "sd35", "vae", VAE_PATCH),
                                      os.path.join(root, "vae", SPLIT_VAE), dtype=torch.float16)
    return out
