"""Tiny Flux.1 [schnell] and [dev]: diffusion models (safetensors + GGUF Q4_K_S / Q8_0), the 16-channel VAE
(ae.safetensors); text encoders CLIP-L + T5-XXL from lockn_testing.tiny.encoders (DualCLIPLoader type flux).

Sizes ComfyUI infers from the Flux.1 weights (model_detection.py ~196-290): hidden (img_in / txt_in), in
channels, context width (txt_in), pooled width (vector_in), block counts, guidance embedding (dev has
guidance_in, schnell not: ComfyUI then picks FluxSchnell). Fixed: axes_dim [16, 56, 56] (head dim 128, so
heads = hidden / 128), mlp ratio 4, theta 10000, patch 2, 16 latent channels, qkv bias. The hidden size is 256
so that the K-quants (256-wide blocks) really apply to the attention and MLP weights of the GGUF files.
The VAE is ComfyUI's AutoencodingEngine (BFL key names: encoder.*, decoder.*, no quant convs) at width 32;
its encoder width is fixed at 128 by sd.py, so the marker gives the tiny one (comfy_patches/images.py).
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny import encoders
from lockn_testing.tiny.common import init_state, save_safetensors, with_marker

HIDDEN = 256
GGUF_QUANTS = ("Q4_K_S", "Q8_0")
VARIANTS = {"schnell": "flux1-schnell", "dev": "flux1-dev"}     # file stems; dev has the guidance embedding
VAE = "ae.safetensors"
VAE_CH = 32             # the smallest width ComfyUI's GroupNorm(32) takes
VAE_PATCH = {"vae_encoder": {"ch": VAE_CH}}


def dit_config(guidance: bool, hidden: int = HIDDEN, depth: int = 1, single: int = 1) -> dict:
    # Mirrors the flux branch of comfy/model_detection.py.
    return dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=encoders.CLIP_L_WIDTH,
                context_in_dim=encoders.T5XXL_WIDTH, hidden_size=hidden, mlp_ratio=4.0, num_heads=hidden // 128,
                depth=depth, depth_single_blocks=single, axes_dim=[16, 56, 56], theta=10000, patch_size=2,
                qkv_bias=True, guidance_embed=guidance, txt_ids_dims=[], yak_mlp=False, txt_norm=False)


def make_dit(seed: int, guidance: bool) -> tuple[dict, set]:
    """A Flux.1 diffusion model state dict (bf16, BFL key names) and its Linear weight names."""
    from lockn_testing.tiny.flux2 import flux_dit
    return flux_dit(dit_config(guidance), seed, "Flux.1 DiT")


def make_vae(seed: int, z_channels: int = 16, ch: int = VAE_CH) -> dict:
    """A KL VAE state dict as the BFL ae.safetensors (no quant convs; SD3.5's is the same layout)."""
    from comfy.ldm.models.autoencoder import AutoencodingEngine
    dd = {"double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": ch,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    vae = AutoencodingEngine(regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
                             encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": dd},
                             decoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Decoder", "params": dd})
    return init_state(vae, seed).state_dict()


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.gguf_writer import write_gguf
    out = encoders.build(root, seed)
    for i, (variant, stem) in enumerate(VARIANTS.items()):
        sd, linear = make_dit(seed + 201 + i, guidance=variant == "dev")
        name = f"{stem}.safetensors"
        out[name] = save_safetensors(with_marker(sd, "flux1", "diffusion_model"), os.path.join(root, "diffusion_models", name))
        for q in GGUF_QUANTS:
            gname = f"{stem}-{q}.gguf"
            out[gname] = os.path.join(root, "diffusion_models", gname)
            write_gguf(out[gname], {k: v.float() for k, v in sd.items()}, arch="flux", ftype=q, quantizable=linear)
    out[VAE] = save_safetensors(with_marker(make_vae(seed + 210), "flux1", "vae", VAE_PATCH),
                                os.path.join(root, "vae", VAE), dtype=torch.bfloat16)
    return out
