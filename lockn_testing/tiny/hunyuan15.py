"""Tiny HunyuanVideo 1.5 720p I2V, as the official template video_hunyuan_video_1.5_720p_i2v.json loads it:
the diffusion model (hunyuanvideo1.5_720p_i2v_fp16.safetensors, UNETLoader), the text encoders
qwen_2.5_vl_7b_fp8_scaled.safetensors + byt5_small_glyphxl_fp16.safetensors (DualCLIPLoader type hunyuan_video_15),
the VAE hunyuanvideo15_vae_fp16.safetensors, the CLIP vision encoder sigclip_vision_patch14_384.safetensors, and
the optional 1080p super-resolution step: hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors (UNETLoader) and
latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p.safetensors (LatentUpscaleModelLoader).

ComfyUI infers the DiT's width, depth, in/out channels, text width, byT5/vision/cond-type modules from the
weights; the head width is fixed at 128 (axes 16+56+56), so the tiny DiT is 128 wide with one head. What
ComfyUI hard-codes, the marker gives (patches in lockn_testing.comfy_patches.video): the detection's SigLIP
width 1152 (hy15_vision_in_dim), the byT5 mapper's 1472/2048 widths (hy_byt5_mapper), the Qwen2.5-VL config
(model_config qwen25_7b) and vision tower (qwen25_visual), the byT5 config (model_config "": ComfyUI looks the
byT5 encoder's config up under an empty model name), the VAE's channels (hy15_vae) and the CLIP vision config.
Latent channels (32), the VAE's 16x/4x compression and the vocabularies stay real. The latent upsampler's sizes
are all read from the weights, and its loader loads strictly: it carries no marker.
"""
from __future__ import annotations

import json
import os

import torch

from lockn_testing.tiny import vision
from lockn_testing.tiny.common import init_state, save_safetensors, with_marker

FAMILY = "hunyuan15"
HIDDEN, DEPTH, SINGLE = 128, 1, 1             # real 2048, 54 double blocks, 0 single
QWEN = dict(vocab_size=152064, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
            num_key_value_heads=1)             # real 3584 wide, 28 layers; head_dim stays 128 (class attribute); layer_idx -3 needs 4 layers
QWEN_VISUAL = dict(hidden_size=32, intermediate_size=64, num_heads=2, num_layers=2)   # real 1280 wide, 32 layers
BYT5 = dict(d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=2)                  # real 1472 wide, 12 layers
BYT5_MAPPER = dict(in_dim=BYT5["d_model"], out_dim=64, hidden_dim=64)                 # real 1472 -> 2048 -> 2048
VAE_CFG = dict(block_out_channels=[32, 32, 32, 32, 64], num_res_blocks=0)   # real [128..1024], 2; GroupNorm(32), last = 2 * z
SIGLIP_DIM = vision.SIGCLIP_384_TINY["hidden_size"]
DIT_PATCH = {"hy15_vision_in_dim": SIGLIP_DIM, "hy_byt5_mapper": BYT5_MAPPER}

DIT = "hunyuanvideo1.5_720p_i2v_fp16.safetensors"
SR_DIT = "hunyuanvideo1.5_1080p_sr_distilled_fp16.safetensors"
TE_QWEN = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
TE_BYT5 = "byt5_small_glyphxl_fp16.safetensors"
VAE = "hunyuanvideo15_vae_fp16.safetensors"
CLIP_VISION = "sigclip_vision_patch14_384.safetensors"
UPSAMPLER = "hunyuanvideo15_latent_upsampler_1080p.safetensors"


def make_dit(seed: int, in_channels: int, expect: str) -> dict:
    """ComfyUI's HunyuanVideo class as version 1.5 uses it (byT5 mapper, SigLIP vision_in, cond-type embedding),
    fp16; asserts that ComfyUI detects `expect` (a supported_models class name) with the same config."""
    import comfy.ldm.hunyuan_video.model as hy
    import comfy.model_detection
    import comfy.ops
    from lockn_testing.comfy_patches import _Active
    from lockn_testing.comfy_patches.video import _vid2_hy15_detection
    cfg = dict(in_channels=in_channels, out_channels=32, vec_in_dim=None, context_in_dim=QWEN["hidden_size"],
               hidden_size=HIDDEN, mlp_ratio=4.0, num_heads=HIDDEN // 128, depth=DEPTH, depth_single_blocks=SINGLE,
               axes_dim=[16, 56, 56], theta=256, patch_size=[1, 1, 1], qkv_bias=True, guidance_embed=False, byt5=True,
               meanflow=False, use_cond_type_embedding=True, vision_in_dim=SIGLIP_DIM, meanflow_sum=True)
    with _Active(DIT_PATCH):
        m = hy.HunyuanVideo(image_model="hunyuan_video", operations=comfy.ops.disable_weight_init, dtype=torch.float32,
                            device="cpu", **cfg)
    assert m.byt5_in.fc1.in_features == BYT5_MAPPER["in_dim"], "the byT5 mapper patch is not installed"
    init_state(m, seed)
    sd = {k: v.to(torch.float16) for k, v in m.state_dict().items()}
    with _vid2_hy15_detection(SIGLIP_DIM):
        det = comfy.model_detection.detect_unet_config(sd, "")
        mc = comfy.model_detection.model_config_from_unet(sd, "")
    for k, v in cfg.items():
        assert det[k] == v, f"ComfyUI detects {k}={det[k]!r} from the tiny HunyuanVideo 1.5 DiT, built with {v!r}"
    assert type(mc).__name__ == expect, f"ComfyUI detects {type(mc).__name__}, not {expect}"
    return with_marker(sd, FAMILY, "diffusion_model", DIT_PATCH)


def make_qwen(seed: int) -> dict:
    import comfy.ops
    import comfy.text_encoders.llama as llama
    from lockn_testing.comfy_patches import _Active
    with _Active({"qwen25_visual": QWEN_VISUAL}):
        m = llama.Qwen25_7BVLI(dict(QWEN), torch.float32, "cpu", comfy.ops.disable_weight_init)
    init_state(m, seed)
    with torch.no_grad():
        m.model.embed_tokens.weight.mul_(QWEN["hidden_size"] ** 0.5)    # fan-in init leaves an embedding near zero
    sd = m.state_dict()
    return with_marker(sd, FAMILY, "text_encoder", {"model_config": {"qwen25_7b": QWEN}, "qwen25_visual": QWEN_VISUAL})


def make_byt5(seed: int) -> dict:
    import comfy.ops
    import comfy.text_encoders.t5 as t5
    path = os.path.join(os.path.dirname(t5.__file__), "byt5_config_small_glyph.json")
    with open(path) as f:
        cfg = {**json.load(f), **BYT5}
    m = init_state(t5.T5(cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    with torch.no_grad():
        m.shared.weight.mul_(BYT5["d_model"] ** 0.5 * 0.2)
    # ComfyUI builds the byT5 encoder with no model name, so its config override is model_options["_model_config"]
    return with_marker(m.state_dict(), FAMILY, "text_encoder", {"model_config": {"": BYT5}})


def make_vae(seed: int) -> dict:
    import comfy.ldm.hunyuan_video.vae_refiner as vr
    ddconfig = {"block_out_channels": [128, 256, 512, 1024, 1024], "in_channels": 3, "out_channels": 3, "num_res_blocks": 2,
                "ffactor_spatial": 16, "ffactor_temporal": 4, "downsample_match_channel": True,
                "upsample_match_channel": True, "refiner_vae": False, "z_channels": 32, **VAE_CFG}
    sd = {}
    for prefix, cls in (("encoder.", vr.Encoder), ("decoder.", vr.Decoder)):
        m = init_state(cls(**ddconfig), seed + len(sd))
        sd.update({prefix + k: v for k, v in m.state_dict().items()})
    assert sd["decoder.conv_in.weight"].shape[1] == 32 and sd["decoder.conv_in.weight"].ndim == 5
    return with_marker(sd, FAMILY, "vae", {"hy15_vae": VAE_CFG})


def make_upsampler(seed: int) -> dict:
    from comfy.ldm.hunyuan_video.upsampler import UPSAMPLERS
    m = init_state(UPSAMPLERS["1080p"](z_channels=32, out_channels=32, block_out_channels=(32,)), seed)
    return m.state_dict()


def build(root: str, seed: int = 0) -> dict:
    out = {}
    dm = os.path.join(root, "diffusion_models")
    out[DIT] = save_safetensors(make_dit(seed + 70, 65, "HunyuanVideo15"), os.path.join(dm, DIT))
    out[SR_DIT] = save_safetensors(make_dit(seed + 71, 98, "HunyuanVideo15_SR_Distilled"), os.path.join(dm, SR_DIT))
    te = os.path.join(root, "text_encoders")
    out[TE_QWEN] = save_safetensors(make_qwen(seed + 72), os.path.join(te, TE_QWEN), dtype=torch.bfloat16)
    out[TE_BYT5] = save_safetensors(make_byt5(seed + 73), os.path.join(te, TE_BYT5), dtype=torch.float16)
    out[VAE] = save_safetensors(make_vae(seed + 74), os.path.join(root, "vae", VAE), dtype=torch.float16)
    out[CLIP_VISION] = save_safetensors(vision.sigclip_vision_384(seed + 76, FAMILY),
                                        os.path.join(root, "clip_vision", CLIP_VISION), dtype=torch.float16)
    out[UPSAMPLER] = save_safetensors(make_upsampler(seed + 77), os.path.join(root, "latent_upscale_models", UPSAMPLER),
                                      dtype=torch.float16)
    return out
