"""Tiny LTX-Video 0.9.x (2B): one checkpoint with the LTXV transformer and its video VAE, sizes in the
safetensors `config` metadata as Lightricks' files carry them (ComfyUI reads `config.transformer` in
model_detection and `config.vae` in sd.VAE), loaded with CheckpointLoaderSimple; text encoder t5xxl
(lockn_testing.tiny.encoders) through CLIPLoader type "ltxv".

ltx-video-2b-v0.9.5.safetensors: bf16 transformer + the 0.9.5 VAE layout (ComfyUI's VideoVAE version 2
block list: compress_space_res / compress_time_res / compress_all_res encoder, residual compress_all
decoder, timestep conditioning), at 1 layer per block and 4 base channels.
ltxv-2b-0.9.8-distilled-fp8.safetensors: the 0.9.8 distilled 2B has the same transformer and VAE
classes; its file stores the transformer blocks' Linear weights as float8_e4m3fn (the rest bf16), as
Lightricks' fp8 file does, so ComfyUI's fp8-weight path is exercised. Own seed.
No patch: every size comes from the weights or the metadata.
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny.common import init_state, save_safetensors, with_marker

CKPT = "ltx-video-2b-v0.9.5.safetensors"
CKPT_098 = "ltxv-2b-0.9.8-distilled-fp8.safetensors"
TE = "t5xxl_fp16.safetensors"          # = encoders.T5XXL


def transformer_config(text_width: int) -> dict:
    """The `transformer` section of the metadata: Lightricks' Transformer3DModel keys, tiny sizes."""
    return {
        "_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
        "attention_type": "default", "norm_elementwise_affine": False, "norm_eps": 1e-06, "num_embeds_ada_norm": 1000,
        "out_channels": 128, "patch_size": 1, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
        "in_channels": 128, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
        "caption_channels": text_width, "num_layers": 1,
    }


def _res(n, **kw):
    return ["res_x", {"num_layers": n, **kw}]


# ComfyUI's VideoVAE version-2 (0.9.5) block list at 1 layer per block, 4 base channels
VIDEO_VAE = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "encoder_blocks": [_res(1), ["compress_space_res", {"multiplier": 2}], _res(1),
                       ["compress_time_res", {"multiplier": 2}], _res(1), ["compress_all_res", {"multiplier": 2}],
                       _res(1), ["compress_all_res", {"multiplier": 2}], _res(1)],
    "decoder_blocks": [_res(1, inject_noise=False), ["compress_all", {"residual": True, "multiplier": 2}],
                       _res(1, inject_noise=False), ["compress_all", {"residual": True, "multiplier": 2}],
                       _res(1, inject_noise=False), ["compress_all", {"residual": True, "multiplier": 2}],
                       _res(1, inject_noise=False)],
    "encoder_base_channels": 4, "decoder_base_channels": 4,
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False, "timestep_conditioning": True,
}
SCHEDULER = {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000, "shifting": "SD3",
             "base_resolution": None, "target_shift_terminal": 0.1}


def make_checkpoint(seed: int, text_width: int, fp8: bool = False) -> tuple[dict, dict]:
    """(state dict, metadata) of a tiny LTXV 2B checkpoint; asserts ComfyUI's detection."""
    import comfy.model_detection
    import comfy.ops
    from comfy.ldm.lightricks.model import LTXVModel
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE

    cfg = transformer_config(text_width)
    meta = {"config": {"transformer": cfg, "vae": VIDEO_VAE, "scheduler": SCHEDULER}}
    dit = init_state(LTXVModel(**cfg, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init), seed)
    dit_sd = dit.state_dict()
    linear = {n + ".weight" for n, m in dit.named_modules() if isinstance(m, torch.nn.Linear)}
    vae_sd = init_state(VideoVAE(config=VIDEO_VAE), seed + 1).state_dict()
    sd = {}
    for k, v in dit_sd.items():
        v = v.to(torch.bfloat16)
        if fp8 and k in linear and k.startswith("transformer_blocks."):
            v = v.float().to(torch.float8_e4m3fn)
        sd["model.diffusion_model." + k] = v
    sd.update({"vae." + k: v for k, v in vae_sd.items()})

    import json
    det = comfy.model_detection.detect_unet_config(sd, "model.diffusion_model.",
                                                   metadata={"config": json.dumps(meta["config"])})
    for k in ("num_attention_heads", "attention_head_dim", "cross_attention_dim", "caption_channels", "num_layers",
              "in_channels"):
        assert det[k] == cfg[k], f"ComfyUI detects {k}={det.get(k)!r} from the tiny LTXV, built with {cfg[k]!r}"
    assert det["image_model"] == "ltxv", det
    return sd, meta


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.tiny import encoders

    out = {}
    keep = ("std-of-means", "mean-of-means")
    for name, s, fp8 in ((CKPT, seed + 1, False), (CKPT_098, seed + 3, True)):
        sd, meta = make_checkpoint(s, encoders.T5XXL_WIDTH, fp8=fp8)
        # dtype None: the tensors already carry the file's dtypes (bf16 / fp8 blocks, fp32 VAE statistics)
        sd = {k: (v if (v.dtype == torch.float8_e4m3fn or any(x in k for x in keep)) else v.to(torch.bfloat16))
              for k, v in sd.items()}
        out[name] = save_safetensors(with_marker(sd, "ltxv", "checkpoint"), os.path.join(root, "checkpoints", name),
                                     metadata=meta)
    # the shared t5xxl file, written as lockn_testing.tiny.encoders.build writes it (same seed, same bytes)
    out[TE] = save_safetensors(encoders.make_t5xxl(seed + 103), os.path.join(root, "text_encoders", TE),
                               dtype=torch.float16)
    return out
