"""Tiny CLIP-vision encoders with the real architectures and key names (HF transformers layout, as ComfyUI's
CLIPVisionLoader reads them): clip_vision_h.safetensors (OpenCLIP ViT-H/14, used by Wan 2.1 I2V) and
sigclip_vision_patch14_384.safetensors (SigLIP so400m patch14 384, used by HunyuanVideo 1.5 I2V).

ComfyUI's clip_vision.load_clipvision_from_sd picks a fixed JSON config by which layer keys exist (layer 30
-> ViT-H, 32 layers of width 1280; layer 22 at width 1152 with 729 positions -> SigLIP 384), so a tiny file
cannot load unpatched: the marker carries the tiny config ({"clip_vision": {...}}) and the test patch in
lockn_testing.comfy_patches.video (_vid2_clip_vision) builds ComfyUI's own model from it. Image size and patch
size stay real (224/14 -> 257 tokens, 384/14 -> 729 tokens), so the outputs have the real token counts.
"""
from __future__ import annotations

import torch

from lockn_testing.tiny.common import init_state, with_marker

# OpenCLIP ViT-H/14 (clip_vision_config_h.json) at tiny width and depth
CLIP_H_TINY = {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 64, "image_size": 224,
               "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 128, "layer_norm_eps": 1e-05,
               "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3, "num_hidden_layers": 2,
               "patch_size": 14, "projection_dim": 32}
# SigLIP so400m patch14 384 (clip_vision_siglip_384.json) at tiny width and depth
SIGCLIP_384_TINY = {"num_channels": 3, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 64, "image_size": 384,
                    "intermediate_size": 128, "model_type": "siglip_vision_model", "num_attention_heads": 2,
                    "num_hidden_layers": 2, "patch_size": 14, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def make_clip_vision(config: dict, seed: int, family: str) -> dict:
    """ComfyUI's CLIPVisionModelProjection at `config`, state dict in fp32 with the marker holding the config."""
    import comfy.clip_model
    import comfy.ops
    m = comfy.clip_model.CLIPVisionModelProjection(config, torch.float32, "cpu", comfy.ops.disable_weight_init)
    init_state(m, seed)
    sd = {k: v for k, v in m.state_dict().items()}
    assert any(k.startswith("vision_model.encoder.layers.") for k in sd), sorted(sd)[:5]
    return with_marker(sd, family, "clip_vision", {"clip_vision": config})


def clip_vision_h(seed: int, family: str = "wan21") -> dict:
    return make_clip_vision(CLIP_H_TINY, seed, family)


def sigclip_vision_384(seed: int, family: str = "hunyuan15") -> dict:
    return make_clip_vision(SIGCLIP_384_TINY, seed, family)
