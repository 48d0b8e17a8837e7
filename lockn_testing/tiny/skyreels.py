"""Tiny SkyReels V1 I2V (HunyuanVideo 1.0 fine-tune with 32 input channels), as ComfyUI core loads it:

Its text encoder's tokenizer is ComfyUI's bundled Llama 3 tokenizer.json, which the ComfyUI copies of the test machines
lack (../shared/ENVIRONMENT.md: files of 4 MiB and more are not written out); the tiny llava-llama3 file's marker asks
for a stand-in where it is missing (lockn_testing.comfy_patches.video._sky_llama_tokenizer). Users' ComfyUI has it.

supported_models.HunyuanVideoSkyreelsI2V / model_base.HunyuanVideoSkyreelsI2V (concat_keys ("concat_image",): the start
image's latent, given by InstructPixToPixConditioning's concat_latent_image, is concatenated to the 16 noise channels).

Files (the public names):
  diffusion_models/skyreels_hunyuan_i2v_bf16.safetensors (Kijai/SkyReels-V1-Hunyuan_comfy: the original HunyuanVideo
    key layout, e.g. double_blocks.0.img_attn_qkv.weight, which HunyuanVideo.process_unet_state_dict maps to ComfyUI's
    module names), skyreels_hunyuan_i2v_fp8_e4m3fn.safetensors (same content), and the GGUF copies
    skyreels-hunyuan-I2V-Q4_K_S.gguf / -Q8_0.gguf (arch "hyvid"; UnetLoaderGGUF)
  text_encoders/llava_llama3_fp8_scaled.safetensors (ComfyUI's Llama2 class, the llava-llama3 text encoder of
    HunyuanVideo; bf16 content) + text_encoders/clip_l.safetensors (lockn_testing.tiny.encoders), DualCLIPLoader
    type "hunyuan_video"
  vae/hunyuan_video_vae_bf16.safetensors (HunyuanVideo 1.0 VAE: ComfyUI's AutoencoderKL with conv3d, 16 latent channels)

ComfyUI infers the DiT's width, depth, channels, patch size, text width and guidance embedding from the weights; the
head width is fixed at 128 (axes 16+56+56), so the tiny DiT is 128 wide with one head. What ComfyUI hard-codes, the
marker gives (patches in lockn_testing.comfy_patches.video, _sky_*): the pooled CLIP width 768 that model detection
sets whenever vector_in.* exists (sky_vec_in_dim), the VAE's widths (sky_hy_vae), the Llama 3 8B config (model_config
"llama"). The Llama vocabulary (128320: the bundled tokenizer pads with id 128258), the 16 latent channels and the
VAE's 8x/4x compression stay real.
"""
from __future__ import annotations

import os
import re

import torch

from lockn_testing.tiny import encoders
from lockn_testing.tiny.common import init_state, link_or_copy, save_safetensors, with_marker

FAMILY = "skyreels"
HIDDEN, DEPTH, SINGLE = 128, 1, 1          # real 3072 wide (24 heads), 20 double + 40 single blocks
VEC_IN_DIM = encoders.CLIP_L_WIDTH         # hunyuan_video's clip_l returns the unprojected pooled output (real 768)
LLAMA = dict(vocab_size=128320, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=1,
             num_key_value_heads=1)      # real 4096 wide, 32 layers; head_dim stays 128 (class attribute); layer_idx -3
VAE_CFG = dict(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)   # real 128, [1, 2, 4, 4], 2; GroupNorm(32)
DIT_PATCH = {"sky_vec_in_dim": VEC_IN_DIM}

DIT = "skyreels_hunyuan_i2v_bf16.safetensors"
DIT_ALIASES = ("skyreels_hunyuan_i2v_fp8_e4m3fn.safetensors",)
GGUF = "skyreels-hunyuan-I2V-{q}.gguf"
GGUF_QUANTS = ("Q4_K_S", "Q8_0")
TE_LLAMA = "llava_llama3_fp8_scaled.safetensors"
TE_CLIP_L = encoders.CLIP_L
VAE = "hunyuan_video_vae_bf16.safetensors"


def dit_config() -> dict:
    return dict(image_model="hunyuan_video", in_channels=32, out_channels=16, vec_in_dim=VEC_IN_DIM,
                context_in_dim=LLAMA["hidden_size"], hidden_size=HIDDEN, mlp_ratio=4.0, num_heads=HIDDEN // 128,
                depth=DEPTH, depth_single_blocks=SINGLE, axes_dim=[16, 56, 56], theta=256, patch_size=[1, 2, 2],
                qkv_bias=True, guidance_embed=True, byt5=False, meanflow=False, use_cond_type_embedding=False,
                vision_in_dim=None, meanflow_sum=False)


_TO_ORIGINAL = [   # ComfyUI module names -> the original HunyuanVideo names (inverse of process_unet_state_dict)
    (r"^txt_in\.t_embedder\.in_layer\.", "txt_in.t_embedder.mlp.0."), (r"^txt_in\.t_embedder\.out_layer\.", "txt_in.t_embedder.mlp.2."),
    (r"^txt_in\.c_embedder\.in_layer\.", "txt_in.c_embedder.linear_1."), (r"^txt_in\.c_embedder\.out_layer\.", "txt_in.c_embedder.linear_2."),
    (r"^(time_in|guidance_in)\.in_layer\.", r"\1.mlp.0."), (r"^(time_in|guidance_in)\.out_layer\.", r"\1.mlp.2."),
    (r"_mod\.lin\.", "_mod.linear."), (r"\.modulation\.lin\.", ".modulation.linear."),
    (r"_attn\.qkv\.", "_attn_qkv."), (r"_attn\.proj\.", "_attn_proj."),
    (r"_attn\.norm\.query_norm\.", "_attn_q_norm."), (r"_attn\.norm\.key_norm\.", "_attn_k_norm."),
    (r"\.norm\.query_norm\.", ".q_norm."), (r"\.norm\.key_norm\.", ".k_norm."),
    (r"(_mlp|refiner\.blocks\.\d+\.mlp)\.0\.", r"\1.fc1."), (r"(_mlp|refiner\.blocks\.\d+\.mlp)\.2\.", r"\1.fc2."),
]


def to_original(name: str) -> str:
    for pat, rep in _TO_ORIGINAL:
        name = re.sub(pat, rep, name)
    return name


def make_dit(seed: int) -> tuple[dict, set]:
    """ComfyUI's HunyuanVideo class at SkyReels I2V's layout (32 input channels, vector_in, guidance_in), in the original
    key names; asserts that ComfyUI detects HunyuanVideoSkyreelsI2V with the config built from. Returns (state dict
    without marker, Linear weight names in the file's naming)."""
    import comfy.ldm.hunyuan_video.model as hy
    import comfy.model_detection
    import comfy.ops
    import comfy.supported_models as sm
    from lockn_testing.comfy_patches.video import _sky_vec_in_detection
    from lockn_testing.tiny.flux2 import linear_weight_names
    cfg = dit_config()
    m = hy.HunyuanVideo(operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="cpu", **cfg)
    init_state(m, seed)
    comfy_sd = m.state_dict()
    sd = {to_original(k): v.to(torch.bfloat16) for k, v in comfy_sd.items()}
    linear = {to_original(k) for k in linear_weight_names(m)}
    with _sky_vec_in_detection(VEC_IN_DIM):
        det = comfy.model_detection.detect_unet_config(sd, "")
        mc = comfy.model_detection.model_config_from_unet(sd, "")
    for k, v in cfg.items():
        assert det[k] == v, f"ComfyUI detects {k}={det[k]!r} from the tiny SkyReels DiT, built with {v!r}"
    assert type(mc) is sm.HunyuanVideoSkyreelsI2V, f"ComfyUI detects {type(mc).__name__}, not HunyuanVideoSkyreelsI2V"
    assert set(mc.process_unet_state_dict(dict(sd))) == set(comfy_sd), "original key names do not map back"
    return sd, linear


def make_llama(seed: int) -> dict:
    """llava_llama3_fp8_scaled.safetensors: ComfyUI's Llama2 (model.* key names) at a tiny width, marked."""
    import comfy.ops
    import comfy.text_encoders.llama as llama
    m = init_state(llama.Llama2(dict(LLAMA), torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    with torch.no_grad():
        m.model.embed_tokens.weight.mul_(LLAMA["hidden_size"] ** 0.5)    # fan-in init leaves an embedding near zero
    return with_marker(m.state_dict(), FAMILY, "text_encoder", {"model_config": {"llama": LLAMA},
                                                                  "llama_standin_tokenizer": True})


def make_vae(seed: int) -> dict:
    """hunyuan_video_vae_bf16.safetensors: ComfyUI's AutoencoderKL as sd.py builds it for HunyuanVideo 1.0 (conv3d,
    time_compress 4, z 16), at the tiny widths, marked."""
    from comfy.ldm.models.autoencoder import AutoencoderKL
    ddconfig = {'double_z': True, 'z_channels': 16, 'resolution': 256, 'in_channels': 3, 'out_ch': 3, 'ch': 128,
                'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0,
                'conv3d': True, 'time_compress': 4, **VAE_CFG}
    m = init_state(AutoencoderKL(ddconfig=ddconfig, embed_dim=16), seed)
    sd = m.state_dict()
    assert sd["decoder.conv_in.conv.weight"].shape[1] == 16 and sd["post_quant_conv.weight"].shape[1] == 16
    return with_marker(sd, FAMILY, "vae", {"sky_hy_vae": VAE_CFG})


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.gguf_writer import write_gguf

    out = {}
    dm = os.path.join(root, "diffusion_models")
    sd, linear = make_dit(seed + 80)
    marked = with_marker(sd, FAMILY, "diffusion_model", DIT_PATCH)
    out[DIT] = save_safetensors(marked, os.path.join(dm, DIT), dtype=torch.bfloat16)
    for alias in DIT_ALIASES:
        out[alias] = link_or_copy(out[DIT], os.path.join(dm, alias))
    for q in GGUF_QUANTS:
        name = GGUF.format(q=q)
        write_gguf(os.path.join(dm, name), {k: v.float() for k, v in marked.items()}, arch="hyvid", ftype=q,
                   quantizable=linear)
        out[name] = os.path.join(dm, name)
    te = os.path.join(root, "text_encoders")
    out[TE_LLAMA] = save_safetensors(make_llama(seed + 81), os.path.join(te, TE_LLAMA), dtype=torch.bfloat16)
    clip_l = os.path.join(te, TE_CLIP_L)
    if not os.path.exists(clip_l):      # the same bytes as lockn_testing.tiny.encoders.build writes
        save_safetensors(encoders.make_clip_l(seed + 101), clip_l, dtype=torch.float16)
    out[TE_CLIP_L] = clip_l
    out[VAE] = save_safetensors(make_vae(seed + 82), os.path.join(root, "vae", VAE), dtype=torch.bfloat16)
    return out
