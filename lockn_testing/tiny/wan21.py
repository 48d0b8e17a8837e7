"""Tiny Wan2.1 I2V 14B 480P and Wan2.1 T2V: the diffusion model as Comfy-Org repackages it (wan2.1_i2v_480p_14B_fp8_scaled.safetensors,
and the fp16 name the official image_to_video_wan template loads) and as city96 quantizes it
(wan2.1-i2v-14b-480p-Q4_K_M.gguf / -Q8_0.gguf, arch "wan"), the CLIP vision encoder clip_vision_h.safetensors
(tiny ViT-H, lockn_testing.tiny.vision), and umt5-xxl + the Wan 2.1 VAE from lockn_testing.tiny.wan22.

ComfyUI infers dim, heads (dim/128), ffn, layers and in_dim 36 from the weights and, from the image-embedding keys
img_emb.*, detects model_type "i2v" -> supported_models.WAN21_I2V. The image embedding's input width is
hard-coded at 1280 (ViT-H): the marker's {"wan_clip_dim": 64} makes the test patch build it at the tiny
CLIP vision width.

Wan2.1 T2V (the 14B files Comfy-Org and city96 publish and the official text_to_video_wan template's 1.3B) is the
same transformer without img_emb.* and with in_dim 16 (the video latent alone): ComfyUI detects model_type "t2v"
-> supported_models.WAN21_T2V. One tiny model under all the T2V names (the 1.3B differs only in its widths).
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny import vision, wan22
from lockn_testing.tiny.common import init_state, link_or_copy, save_safetensors, with_marker
from lockn_testing.tiny.flux2 import linear_weight_names

DIM, FFN, LAYERS = wan22.DIM, wan22.FFN, wan22.LAYERS
CLIP_DIM = vision.CLIP_H_TINY["hidden_size"]
PATCH = {"wan_clip_dim": CLIP_DIM}
DIT = "wan2.1_i2v_480p_14B_fp8_scaled.safetensors"
DIT_FP16 = "wan2.1_i2v_480p_14B_fp16.safetensors"           # the name the official template loads
GGUF = "wan2.1-i2v-14b-480p-{q}.gguf"
CLIP_VISION = "clip_vision_h.safetensors"
T2V = ("wan2.1_t2v_14B_fp8_scaled.safetensors", "wan2.1_t2v_14B_fp16.safetensors", "wan2.1_t2v_1.3B_fp16.safetensors")
T2V_GGUF = "wan2.1-t2v-14b-{q}.gguf"
TE, VAE = wan22.TE, wan22.VAE


def make_dit(seed: int, dim: int = DIM, ffn: int = FFN, layers: int = LAYERS, t2v: bool = False) -> tuple[dict, set]:
    """A Wan2.1 I2V 14B state dict (fp16, with img_emb.*), or with `t2v` a Wan2.1 T2V one, and its Linear weight
    names."""
    import comfy.ldm.wan.model
    import comfy.model_detection
    import comfy.ops
    import comfy.supported_models
    from lockn_testing.comfy_patches import _Active
    cfg = dict(model_type="t2v" if t2v else "i2v", patch_size=(1, 2, 2), text_len=512, in_dim=16 if t2v else 36, dim=dim, ffn_dim=ffn, freq_dim=256,
               text_dim=wan22.TEXT_DIM, out_dim=16, num_heads=dim // 128, num_layers=layers, window_size=(-1, -1),
               qk_norm=True, cross_attn_norm=True, eps=1e-6)
    with _Active(PATCH):        # MLPProj(1280, dim) at the tiny CLIP width (comfy_patches.video._vid2_wan_clip_dim)
        m = comfy.ldm.wan.model.WanModel(**cfg, operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="cpu")
    assert t2v or m.img_emb.proj[1].in_features == CLIP_DIM, "the Wan image-embedding patch is not installed"
    init_state(m, seed)
    linear = linear_weight_names(m)
    sd = {k: v.to(torch.float16) for k, v in m.state_dict().items()}
    det = comfy.model_detection.detect_unet_config(sd, "")
    for k in ("dim", "ffn_dim", "num_layers", "in_dim", "out_dim", "num_heads", "model_type"):
        assert det[k] == cfg[k], f"ComfyUI detects {k}={det[k]!r} from the tiny Wan2.1 I2V model, built with {cfg[k]!r}"
    mc = comfy.model_detection.model_config_from_unet(sd, "")
    want = comfy.supported_models.WAN21_T2V if t2v else comfy.supported_models.WAN21_I2V
    assert type(mc) is want, f"ComfyUI detects {type(mc).__name__}, not {want.__name__}"
    return sd, linear


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.gguf_writer import write_gguf

    out = {}
    dm = os.path.join(root, "diffusion_models")
    sd, linear = make_dit(seed + 60)
    out[DIT] = save_safetensors(with_marker(sd, "wan21", "diffusion_model", PATCH), os.path.join(dm, DIT))
    out[DIT_FP16] = link_or_copy(out[DIT], os.path.join(dm, DIT_FP16))
    for q in wan22.GGUF_QUANTS:
        name = GGUF.format(q=q)
        tensors = {k: v.float() for k, v in with_marker(sd, "wan21", "diffusion_model", PATCH).items()}
        write_gguf(os.path.join(dm, name), tensors, arch="wan", ftype=q, quantizable=linear)
        out[name] = os.path.join(dm, name)

    sd, linear = make_dit(seed + 62, t2v=True)
    marked = with_marker(sd, "wan21_t2v", "diffusion_model")
    out[T2V[0]] = save_safetensors(marked, os.path.join(dm, T2V[0]))
    for name in T2V[1:]:
        out[name] = link_or_copy(out[T2V[0]], os.path.join(dm, name))
    for q in wan22.GGUF_QUANTS:
        name = T2V_GGUF.format(q=q)
        write_gguf(os.path.join(dm, name), {k: v.float() for k, v in marked.items()}, arch="wan", ftype=q,
                   quantizable=linear)
        out[name] = os.path.join(dm, name)

    out[CLIP_VISION] = save_safetensors(vision.clip_vision_h(seed + 61), os.path.join(root, "clip_vision", CLIP_VISION),
                                        dtype=torch.float16)

    # umt5-xxl and the Wan 2.1 VAE: the same tiny files as Wan 2.2's (lockn_testing.tiny.wan22)
    te_path, vae_path = os.path.join(root, "text_encoders", TE), os.path.join(root, "vae", VAE)
    if not os.path.exists(te_path):
        save_safetensors(wan22.make_te(seed + 11), te_path, dtype=torch.bfloat16)
    if not os.path.exists(vae_path):
        _save_vae21(vae_path, seed + 30)
    out[TE], out[VAE] = te_path, vae_path
    return out


def _save_vae21(path: str, seed: int) -> str:
    """The Wan 2.1 VAE exactly as wan22.build writes it (same config and seed; wan22 has no function for it alone)."""
    import comfy.ldm.wan.vae
    vae = init_state(comfy.ldm.wan.vae.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                              temperal_downsample=[False, True, True], image_channels=3,
                                              conv_out_channels=3, dropout=0.0), seed)
    return save_safetensors(with_marker(vae.state_dict(), "wan22", "vae"), path, dtype=torch.bfloat16)
