"""Tiny Stable Audio Open 1.0: one checkpoint (Comfy-Org/stable-audio-open-1.0_repackaged layout, as
stable-audio-tools saves it): the audio DiT under `model.model.`, the seconds_start / seconds_total number
conditioners under `conditioner.conditioners.`, the Oobleck VAE under `pretransform.model.` with the old
weight-norm names (`weight_g` / `weight_v`) and the zero `beta` buffers of the DiT's bias-less LayerNorms;
text encoder t5-base (lockn_testing.tiny.encoders) through CLIPLoader type "stable_audio".

ComfyUI detects the DiT by `transformer.rotary_pos_emb.inv_freq` alone and hard-codes every size
(supported_models.StableAudio + ldm/audio/dit.py defaults: 1536 wide, 24 layers, text width 768), the number
conditioners' width (model_base.StableAudio1: 768) and the Oobleck VAE's (sd.py: 128 channels): the marker
gives the tiny sizes (comfy_patches/video.py _vid1_stable_audio, and the existing `oobleck` VAE patch).
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny.common import init_state, save_safetensors, with_marker

CKPT = "stable-audio-open-1.0.safetensors"
TE = "t5-base.safetensors"          # = encoders.T5BASE
OOBLECK = {"channels": 4, "c_mults": [1, 2, 4, 8, 16]}     # 44.1 kHz strides [2, 4, 4, 8, 8] (the default)


def dit_config(text_width: int) -> dict:
    return {"embed_dim": 64, "depth": 1, "num_heads": 2, "cond_token_dim": text_width, "global_cond_dim": 2 * text_width}


def marker_patch(text_width: int) -> dict:
    return {"stable_audio_dit": dit_config(text_width), "sa_number_dim": text_width, "oobleck": OOBLECK}


def _old_weight_norm_names(sd: dict) -> dict:
    """torch's parametrized weight norm (ComfyUI's modules) -> the weight_g / weight_v names of the real file
    (torch's weight_norm load hook converts them back)."""
    out = {}
    for k, v in sd.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g").replace(".parametrizations.weight.original1", ".weight_v")
        out[k] = v
    return out


def make_checkpoint(seed: int, text_width: int) -> dict:
    import comfy.model_detection
    import comfy.ops
    from comfy.ldm.audio.autoencoder import AudioOobleckVAE
    from comfy.ldm.audio.dit import AudioDiffusionTransformer
    from comfy.ldm.audio.embedders import NumberConditioner

    cfg = dit_config(text_width)
    dit = init_state(AudioDiffusionTransformer(**cfg, dtype=torch.float32, device="cpu",
                                               operations=comfy.ops.disable_weight_init), seed)
    sd = {"model.model." + k: v for k, v in dit.state_dict().items()}
    for name, m in dit.named_modules():                 # stable-audio-tools' LayerNorm keeps a zero beta buffer
        if name.endswith(("pre_norm", "cross_attend_norm", "ff_norm")) and getattr(m, "beta", 1) is None:
            sd[f"model.model.{name}.beta"] = torch.zeros_like(m.gamma)
    for i, which in enumerate(("seconds_start", "seconds_total")):
        cond = init_state(NumberConditioner(text_width, min_val=0, max_val=512), seed + 1 + i)
        sd.update({f"conditioner.conditioners.{which}.{k}": v for k, v in cond.state_dict().items()})
    vae = init_state(AudioOobleckVAE(**OOBLECK), seed + 3)
    sd.update({"pretransform.model." + k: v for k, v in _old_weight_norm_names(vae.state_dict()).items()})

    # 0.20.1 detects only {"audio_model": "dit1.0"}; 0.33 also reads embed_dim, depth, global_cond_dim, io_channels, ...
    # (not num_heads, not cond_token_dim): whatever it reads must be what the tiny DiT was built with
    det = comfy.model_detection.detect_unet_config(sd, "model.model.")
    expect = {**cfg, "audio_model": "dit1.0", "project_cond_tokens": False, "timestep_features_type": "learned",
              "io_channels": 64, "input_concat_dim": 0}
    assert {k: expect.get(k) for k in det} == det, f"ComfyUI detects {det} from the tiny Stable Audio DiT, built with {expect}"
    assert comfy.model_detection.unet_prefix_from_state_dict(sd) == "model.model.", "ComfyUI would not find the DiT prefix"
    return with_marker(sd, "stable_audio", "checkpoint", marker_patch(text_width))


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.tiny import encoders

    out = {CKPT: save_safetensors(make_checkpoint(seed + 1, encoders.T5BASE_WIDTH), os.path.join(root, "checkpoints", CKPT),
                                  dtype=torch.float32)}
    # the shared t5-base file, written as lockn_testing.tiny.encoders.build writes it (same seed, same bytes)
    out[TE] = save_safetensors(encoders.make_t5base(seed + 104), os.path.join(root, "text_encoders", TE), dtype=torch.float16)
    return out
