"""Tiny Flux.2 [dev]: diffusion model (safetensors + GGUF Q4_K_M/Q5_K_M/Q8_0), Mistral text encoder, VAE;
and Flux.2 [klein] 4B: its diffusion model (no guidance embedding: 4-step distilled) and its Qwen3-4B
text encoder (the tokenizer is ComfyUI's bundled Qwen one; the VAE is the same flux2-vae).

Sizes ComfyUI 0.20.1 infers from the Flux.2 weights: hidden (img_in), context width (txt_in), block
counts, guidance embedding; head_dim 128, mlp ratio 3, theta 2000 and 128 latent channels are fixed.
The hidden size is 256 so that the K-quants (256-wide blocks) really apply to the attention and MLP
weights of the GGUF files. The VAE's decoder is tiny (width 32, read from the weights); its encoder has
ComfyUI's fixed full width (128), which sd.py builds whatever the file holds, so the file carries it
(about 75 MB in all): every key ComfyUI's VAE has is in the file, nothing is left uninitialised.
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny.common import (assert_detected, init_state, link_or_copy, save_safetensors, tekken_json,
                                       with_marker)


HIDDEN = 256
TE_HIDDEN = 64
TE_LAYERS = 30          # Flux2 TE reads the hidden states of layers 10, 20 and 30
GGUF_QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0")

DIT = "flux2_dev_fp8mixed.safetensors"
GGUF = "flux2-dev-{q}.gguf"
TE = "mistral_3_small_flux2_fp8.safetensors"
TE_ALIASES = ("mistral_3_small_flux2_fp4_mixed.safetensors",)
VAE = "flux2-vae.safetensors"
KLEIN_DIT = "flux-2-klein-4b.safetensors"
KLEIN_DIT_FP8 = "flux-2-klein-4b-fp8.safetensors"   # BFL's fp8 of the same model (the tiny one: the same weights)
KLEIN_TE = "qwen_3_4b.safetensors"
KLEIN_TE_HIDDEN = 32
KLEIN_TE_LAYERS = 28    # the klein TE reads the hidden states of layers 9, 18 and 27
VAE_ENCODER_CH = 128    # fixed by ComfyUI (sd.py builds the encoder at this width whatever the weights say)
VAE_DECODER_CH = 32     # read from the weights (decoder.conv_in)


def dit_config(context_in_dim: int, hidden: int = HIDDEN, depth: int = 1, single: int = 1, guidance: bool = True) -> dict:
    # Mirrors the hard-coded flux2 branch of comfy/model_detection.py.
    return dict(image_model="flux2", in_channels=128, out_channels=128, vec_in_dim=None,
                context_in_dim=context_in_dim, hidden_size=hidden, mlp_ratio=3.0, num_heads=hidden // 128,
                depth=depth, depth_single_blocks=single, axes_dim=[32, 32, 32, 32], theta=2000, patch_size=1,
                qkv_bias=False, guidance_embed=guidance, txt_ids_dims=[3], global_modulation=True,
                mlp_silu_act=True, ops_bias=False, default_ref_method="index", ref_index_scale=10.0)


def linear_weight_names(module: torch.nn.Module) -> set[str]:
    return {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


def make_dit(seed: int, hidden: int = HIDDEN, depth: int = 1, single: int = 1, te_hidden: int = TE_HIDDEN,
             guidance: bool = True) -> tuple[dict, set]:
    """A Flux.2 diffusion model state dict (bf16, BFL key names) and its Linear weight names, for a
    text encoder of width `te_hidden`; klein has no guidance embedding."""
    return flux_dit(dit_config(3 * te_hidden, hidden, depth, single, guidance), seed, "Flux.2 DiT")


def flux_dit(cfg: dict, seed: int, what: str) -> tuple[dict, set]:
    """ComfyUI's Flux class (Flux.1 and Flux.2) built from `cfg`: its state dict in bf16 with BFL's key names, and
    its Linear weight names (what the GGUF files may quantize); ComfyUI's detection must read `cfg` back."""
    import comfy.ldm.flux.model
    import comfy.ops
    dit = init_state(comfy.ldm.flux.model.Flux(dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **cfg), seed)
    linear = linear_weight_names(dit)
    sd = dit.state_dict()
    del dit
    # BFL checkpoints name QK-norm weights "*_norm.scale"; Flux.process_unet_state_dict maps them back.
    sd = {(k[:-len(".weight")] + ".scale" if k.endswith("_norm.weight") else k): v for k, v in sd.items()}
    assert_detected(sd, cfg, what)
    return {k: v.to(torch.bfloat16) for k, v in sd.items()}, linear


def make_te(seed: int, hidden: int = TE_HIDDEN, vocab: int | None = None, intermediate: int | None = None) -> dict:
    """The Mistral text encoder state dict (ComfyUI's Mistral3Small24B class, 30 layers, one attention
    head), tekken tokenizer embedded, marked with its sizes. `vocab` may exceed the tokenizer's (rows
    never looked up); the DiT's context width must be 3 * hidden."""
    import comfy.ops
    import comfy.text_encoders.llama
    tekken, tok_vocab = tekken_json()
    te_cfg = dict(vocab_size=max(vocab or 0, tok_vocab), hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                  num_hidden_layers=TE_LAYERS, num_attention_heads=1, num_key_value_heads=1,
                  max_position_embeddings=8192, final_norm=False)
    te = init_state(comfy.text_encoders.llama.Mistral3Small24B(te_cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    sd = te.state_dict()
    del te
    sd["tekken_model"] = torch.frombuffer(bytearray(tekken), dtype=torch.uint8).clone()
    return with_marker(sd, "flux2", "text_encoder",
                       {"te_model": "MISTRAL3_24B_PRUNED_FLUX2", "model_config": {"mistral3_24b": te_cfg}})


def make_klein_te(seed: int) -> dict:
    """The klein text encoder: ComfyUI's Qwen3_4B class at a tiny width, with the Qwen vocabulary (its
    bundled tokenizer emits ids up to 151645), marked with its sizes."""
    import comfy.ops
    import comfy.text_encoders.llama
    cfg = dict(vocab_size=151936, hidden_size=KLEIN_TE_HIDDEN, intermediate_size=2 * KLEIN_TE_HIDDEN,
               num_hidden_layers=KLEIN_TE_LAYERS, num_attention_heads=1, num_key_value_heads=1)
    te = init_state(comfy.text_encoders.llama.Qwen3_4B(cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    sd = te.state_dict()
    del te
    return with_marker(sd, "flux2", "text_encoder", {"te_model": "QWEN3_4B", "model_config": {"qwen3_4b": cfg}})


def build(root: str, seed: int = 0) -> dict:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    from lockn_testing.gguf_writer import write_gguf

    out = {}

    # text encoder: ComfyUI's Mistral3Small24B class at a tiny width, tekken tokenizer embedded
    sd = make_te(seed + 1)
    p = save_safetensors(sd, os.path.join(root, "text_encoders", TE), dtype=torch.bfloat16)
    out[TE] = p
    for alias in TE_ALIASES:
        out[alias] = link_or_copy(p, os.path.join(root, "text_encoders", alias))

    # diffusion model (the GGUF files quantize the same bf16 values)
    sd, linear = make_dit(seed + 2)
    out[DIT] = save_safetensors(with_marker(sd, "flux2", "diffusion_model"), os.path.join(root, "diffusion_models", DIT))
    for q in GGUF_QUANTS:
        name = GGUF.format(q=q)
        write_gguf(os.path.join(root, "diffusion_models", name), {k: v.float() for k, v in sd.items()},
                   arch="flux", ftype=q, quantizable=linear)
        out[name] = os.path.join(root, "diffusion_models", name)

    # klein 4B: its own diffusion model and Qwen3-4B text encoder, the same VAE
    sd, _ = make_dit(seed + 4, te_hidden=KLEIN_TE_HIDDEN, guidance=False)
    out[KLEIN_DIT] = save_safetensors(with_marker(sd, "flux2", "diffusion_model"),
                                      os.path.join(root, "diffusion_models", KLEIN_DIT))
    out[KLEIN_DIT_FP8] = link_or_copy(out[KLEIN_DIT], os.path.join(root, "diffusion_models", KLEIN_DIT_FP8))
    out[KLEIN_TE] = save_safetensors(make_klein_te(seed + 5), os.path.join(root, "text_encoders", KLEIN_TE),
                                     dtype=torch.bfloat16)

    # VAE: every key ComfyUI's Flux.2 VAE has. sd.py reads only z_channels and the decoder's width from the
    # weights and builds the encoder at the full width whatever the file says (ch 128, mults [1,2,4,4]: 34M
    # parameters), so the encoder is written at that width. A decode-only file (6 MB) left ComfyUI's encoder
    # uninitialised ("Missing VAE keys"), its VAE 12x the file's parameters (0.15 GB counted in memory).
    dd = {"double_z": True, "z_channels": 32, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": VAE_ENCODER_CH,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
          "batch_norm_latent": True}
    vae = init_state(AutoencoderKL(ddconfig=dd, embed_dim=32, decoder_ddconfig=dict(dd, ch=VAE_DECODER_CH)), seed + 3)
    out[VAE] = save_safetensors(with_marker(vae.state_dict(), "flux2", "vae"), os.path.join(root, "vae", VAE),
                                dtype=torch.bfloat16, keep_fp32=("bn.",))
    return out



