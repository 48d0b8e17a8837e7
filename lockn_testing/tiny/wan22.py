"""Tiny Wan2.2 I2V A14B: high- and low-noise experts (safetensors + GGUF Q4_K_M/Q8_0), umt5-xxl, Wan 2.1 VAE;
and Wan2.2 TI2V 5B: its single model (in/out 48 channels, detected as WAN22_T2V) and the Wan 2.2 VAE
(48 latent channels; ComfyUI hard-codes its widths, so the marker gives the tiny ones).

ComfyUI infers dim, heads (dim/128), ffn, layers and in_dim 36 from the weights and detects the
experts as WAN21_T2V (I2V works through concat_cond). text_dim stays at the real 4096, so the
tiny umt5 has d_model 4096 (its other sizes are tiny). The experts differ only by their seed.
"""
from __future__ import annotations

import json
import os

import torch

from lockn_testing.tiny.common import init_state, save_safetensors, sentencepiece_model, bytes_tensor, with_marker
from lockn_testing.tiny.flux2 import linear_weight_names

DIM, FFN, LAYERS, TEXT_DIM = 256, 512, 1, 4096
GGUF_QUANTS = ("Q4_K_M", "Q8_0")
EXPERTS = {
    "high_noise": ("wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "Wan2.2-I2V-A14B-HighNoise-{q}.gguf"),
    "low_noise": ("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "Wan2.2-I2V-A14B-LowNoise-{q}.gguf"),
}
TE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
VAE = "wan_2.1_vae.safetensors"
TI2V = "wan2.2_ti2v_5B_fp16.safetensors"
VAE22 = "wan2.2_vae.safetensors"
VAE22_PATCH = {"wan22_vae": {"dim": 16, "dec_dim": 16}}


def make_expert(seed: int, dim: int = DIM, ffn: int = FFN, layers: int = LAYERS, in_dim: int = 36,
                out_dim: int = 16) -> tuple[dict, set]:
    """A Wan2.2 I2V A14B expert state dict (fp16) and its Linear weight names (in_dim = out_dim = 48:
    the TI2V 5B model)."""
    import comfy.ldm.wan.model
    import comfy.model_detection
    import comfy.ops
    cfg = dict(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=in_dim, dim=dim, ffn_dim=ffn, freq_dim=256,
               text_dim=TEXT_DIM, out_dim=out_dim, num_heads=dim // 128, num_layers=layers, window_size=(-1, -1),
               qk_norm=True, cross_attn_norm=True, eps=1e-6)
    m = init_state(comfy.ldm.wan.model.WanModel(**cfg, operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="cpu"), seed)
    linear = linear_weight_names(m)
    sd = {k: v.to(torch.float16) for k, v in m.state_dict().items()}
    det = comfy.model_detection.detect_unet_config(sd, "")
    for k in ("dim", "ffn_dim", "num_layers", "in_dim", "out_dim", "num_heads", "model_type"):
        assert det[k] == cfg[k], f"ComfyUI detects {k}={det[k]!r} from the tiny Wan2.2 expert, built with {cfg[k]!r}"
    return sd, linear


def make_te(seed: int, vocab: int | None = None) -> dict:
    """The umt5-xxl state dict: ComfyUI's T5 class with the umt5 config at tiny depth and width but
    d_model 4096 (the DiT's text_dim), sentencepiece tokenizer embedded, marked with its sizes. `vocab`
    may exceed the tokenizer's (embedding rows never looked up; the real umt5 has 256384)."""
    import comfy.ops
    import comfy.text_encoders.t5
    import sentencepiece
    spm = sentencepiece_model(320, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    tok_vocab = sentencepiece.SentencePieceProcessor(model_proto=spm).get_piece_size()
    base_cfg_path = os.path.join(os.path.dirname(comfy.text_encoders.t5.__file__), "umt5_config_xxl.json")
    with open(base_cfg_path) as f:
        base = json.load(f)
    over = dict(d_model=TEXT_DIM, d_ff=32, d_kv=16, num_heads=2, num_layers=2, vocab_size=max(vocab or 0, tok_vocab))
    t5 = init_state(comfy.text_encoders.t5.T5(dict(base, **over), torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    with torch.no_grad():
        t5.shared.weight.mul_(TEXT_DIM ** 0.5 * 0.05)      # fan-in init leaves an embedding near zero
    sd = t5.state_dict()
    del t5
    sd["spiece_model"] = bytes_tensor(spm)
    return with_marker(sd, "wan22", "text_encoder", {"te_model": "T5_XXL", "model_config": {"umt5xxl": over}})


def build(root: str, seed: int = 0) -> dict:
    import comfy.ldm.wan.vae
    import comfy.ldm.wan.vae2_2

    from lockn_testing.gguf_writer import write_gguf

    out = {}

    # umt5-xxl: ComfyUI's T5 class with the umt5 config at tiny depth/width (d_model = the DiT's text_dim)
    sd = make_te(seed + 11)
    out[TE] = save_safetensors(sd, os.path.join(root, "text_encoders", TE), dtype=torch.bfloat16)

    # the two experts (same architecture, different seeds)
    for i, (role, (st_name, gguf_name)) in enumerate(EXPERTS.items()):
        sd, linear = make_expert(seed + 20 + i)
        out[st_name] = save_safetensors(with_marker(sd, "wan22", role), os.path.join(root, "diffusion_models", st_name))
        for q in GGUF_QUANTS:
            name = gguf_name.format(q=q)
            write_gguf(os.path.join(root, "diffusion_models", name), {k: v.float() for k, v in sd.items()},
                       arch="wan", ftype=q, quantizable=linear)
            out[name] = os.path.join(root, "diffusion_models", name)

    # Wan 2.1 VAE (dim inferred from decoder.head.0.gamma)
    vae = init_state(comfy.ldm.wan.vae.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                              temperal_downsample=[False, True, True], image_channels=3,
                                              conv_out_channels=3, dropout=0.0), seed + 30)
    out[VAE] = save_safetensors(with_marker(vae.state_dict(), "wan22", "vae"), os.path.join(root, "vae", VAE),
                                dtype=torch.bfloat16)

    # TI2V 5B: one model, 48 latent channels, and its own VAE
    sd, _ = make_expert(seed + 40, in_dim=48, out_dim=48)
    out[TI2V] = save_safetensors(with_marker(sd, "wan22", "diffusion_model"), os.path.join(root, "diffusion_models", TI2V))
    vae = init_state(comfy.ldm.wan.vae2_2.WanVAE(z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                                  temperal_downsample=[False, True, True], dropout=0.0,
                                                  **VAE22_PATCH["wan22_vae"]), seed + 41)
    out[VAE22] = save_safetensors(with_marker(vae.state_dict(), "wan22", "vae", VAE22_PATCH),
                                  os.path.join(root, "vae", VAE22), dtype=torch.bfloat16)
    return out
