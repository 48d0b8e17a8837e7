"""Tiny SDXL base: checkpoints/sd_xl_base_1.0.safetensors (CheckpointLoaderSimple), in the real file's key layout:
model.diffusion_model.* (ComfyUI's openaimodel UNetModel), first_stage_model.* (4-channel KL VAE with quant convs),
conditioner.embedders.0.transformer.text_model.* (CLIP-L, HF names, no projection), conditioner.embedders.1.model.*
(CLIP-G in OpenCLIP names: transformer.resblocks.N.attn.in_proj_weight, token_embedding, positional_embedding,
ln_final, text_projection as a bare [in, out] matrix, logit_scale).

ComfyUI infers the UNet's sizes from the weights (model_detection.py ~780-900) but supported_models.SDXL matches
only the full-size config (model_channels 320, context_dim 2048, transformer_depth [0,0,2,2,10,10],
adm_in_channels 2816), so the marker names the class (comfy_patches/images.py); the embedded CLIPs get their
tiny configs and the VAE encoder its tiny width the same way. Context width = CLIP_L_WIDTH + CLIP_G_WIDTH;
adm = CLIP_G_PROJ + 6 * 256 (ComfyUI's size embeddings).
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny import encoders
from lockn_testing.tiny.common import assert_detected, init_state, save_safetensors, with_marker
from lockn_testing.tiny.flux1 import VAE_CH, VAE_PATCH

CKPT = "sd_xl_base_1.0.safetensors"
PATCH = {"model_config": {**encoders.CLIP_L_PATCH["model_config"], **encoders.CLIP_G_PATCH["model_config"]},
         "model_class": "SDXL", **VAE_PATCH}


def unet_config() -> dict:
    # Mirrors what comfy/model_detection.py detects (+ BASE.unet_extra_config's head settings).
    return dict(use_checkpoint=False, image_size=32, use_spatial_transformer=True, legacy=False,
                num_classes="sequential", adm_in_channels=encoders.CLIP_G_PROJ + 6 * 256, in_channels=4,
                out_channels=4, model_channels=32, num_res_blocks=[1, 1, 1], transformer_depth=[0, 1, 1],
                transformer_depth_output=[0, 0, 1, 1, 1, 1], channel_mult=[1, 2, 2], transformer_depth_middle=1,
                use_linear_in_transformer=True, context_dim=encoders.CLIP_L_WIDTH + encoders.CLIP_G_WIDTH,
                use_temporal_resblock=False, use_temporal_attention=False)


def make_unet(seed: int) -> dict:
    import comfy.ldm.modules.diffusionmodules.openaimodel as oai
    import comfy.ops
    cfg = unet_config()
    m = init_state(oai.UNetModel(**cfg, num_heads=-1, num_head_channels=64, dtype=torch.float32, device="cpu",
                                 operations=comfy.ops.disable_weight_init), seed)
    sd = m.state_dict()
    del m
    assert_detected(sd, cfg, "SDXL UNet")
    return sd


def make_vae(seed: int) -> dict:
    from comfy.ldm.models.autoencoder import AutoencoderKL
    dd = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": VAE_CH,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    return init_state(AutoencoderKL(ddconfig=dd, embed_dim=4), seed).state_dict()


def openclip_g(hf: dict, layers: int) -> dict:
    """ComfyUI's (HF-named) CLIP-G state dict in the OpenCLIP names of SDXL's conditioner.embedders.1.model.
    (the inverse of comfy.utils.clip_text_transformers_convert)."""
    sd = {"positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
          "token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
          "ln_final.weight": hf["text_model.final_layer_norm.weight"],
          "ln_final.bias": hf["text_model.final_layer_norm.bias"],
          "text_projection": hf["text_projection.weight"].t().contiguous(),
          "logit_scale": torch.tensor(4.6052)}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    for i in range(layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for a, b in names.items():
            for y in ("weight", "bias"):
                sd[f"{dst}{b}.{y}"] = hf[f"{src}{a}.{y}"]
        for y in ("weight", "bias"):
            sd[f"{dst}attn.in_proj_{y}"] = torch.cat([hf[f"{src}self_attn.{p}_proj.{y}"] for p in "qkv"])
    assert len(sd) == len([k for k in hf if k != "lockn_tiny_marker"]) - 3 * 2 * layers + 2 * layers + 1
    return sd


def make_checkpoint(seed: int) -> dict:
    sd = {f"model.diffusion_model.{k}": v for k, v in make_unet(seed).items()}
    sd.update({f"first_stage_model.{k}": v for k, v in make_vae(seed + 1).items()})
    clip_l = encoders.make_clip_l(seed + 2)
    sd.update({f"conditioner.embedders.0.transformer.{k}": v for k, v in clip_l.items() if k.startswith("text_model.")})
    g = openclip_g(encoders.make_clip_g(seed + 3), encoders.CLIP_G_CONFIG["num_hidden_layers"])
    sd.update({f"conditioner.embedders.1.model.{k}": v for k, v in g.items()})
    return with_marker(sd, "sdxl", "checkpoint", PATCH)


def build(root: str, seed: int = 0) -> dict:
    return {CKPT: save_safetensors(make_checkpoint(seed + 401), os.path.join(root, "checkpoints", CKPT),
                                   dtype=torch.float16, keep_fp32=("logit_scale",))}
