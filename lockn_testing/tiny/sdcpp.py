"""Tiny files for stable-diffusion.cpp (issue 27), next to the tiny set ComfyUI uses.

stable-diffusion.cpp reads most sizes from the weights, as ComfyUI does: the Flux.2 diffusion model's hidden
size, block counts and heads (the pack's tiny klein and dev files load as they are), the VAE's decoder width
(the tiny flux2-vae loads), the text encoder's layers, width and vocabulary. Its LLM text encoders keep the
real attention layout fixed, though (llm.hpp: 32 query heads and 8 key/value heads of 128 for Qwen3 and
Mistral; a 28-layer Qwen3 is taken for the 2B, with 16 heads), while the pack's tiny Qwen3 has one head of 128.
So the klein text encoder here is ComfyUI's own Qwen3_4B class at the real head layout and layer count (36)
with a tiny width: a file both engines read. Measured (2026-12-07, sd.cpp 0.4.7 CPU): with the pack's tiny
Qwen3 sd.cpp logs "process tensor failed: ...k_proj.weight", its Python binding does not raise, and the next
generate_image dereferences a null result and the process dies (SIGSEGV).
"""
from __future__ import annotations

import torch

from lockn_testing.tiny.common import init_state, save_safetensors, with_marker

KLEIN_TE_SDCPP = "qwen_3_4b_sdcpp_layout.safetensors"
HIDDEN = 32
LAYERS = 36                 # Qwen3-4B's; sd.cpp reads 28 layers as Qwen3 2B (16 heads)
HEADS, KV_HEADS = 32, 8     # Qwen3-4B's, fixed in sd.cpp


def make_klein_te(seed: int = 0) -> dict:
    import comfy.ops
    import comfy.text_encoders.llama
    cfg = dict(vocab_size=151936, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS,
               num_attention_heads=HEADS, num_key_value_heads=KV_HEADS)
    te = init_state(comfy.text_encoders.llama.Qwen3_4B(cfg, torch.float32, "cpu", comfy.ops.disable_weight_init), seed)
    sd = te.state_dict()
    del te
    return with_marker(sd, "flux2", "text_encoder", {"te_model": "QWEN3_4B", "model_config": {"qwen3_4b": cfg}})


def write_klein_te(path: str, seed: int = 0) -> str:
    return save_safetensors(make_klein_te(seed), path, dtype=torch.bfloat16)
