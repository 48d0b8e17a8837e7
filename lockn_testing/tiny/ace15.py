"""Tiny ACE-Step 1.5: DiT (safetensors + GGUF Q8_0), Qwen3 0.6B text encoder, Qwen3 1.7B LM, Oobleck VAE.

ComfyUI re-detects every DiT size from the weights except fsq_dim and the text width (patched through
the marker), and hard-codes the text encoders' and the VAE's sizes (patched the same way). The LM
vocabulary keeps the Qwen special ids and the audio-code ids 151669-215669 the sampler relies on.
"""
from __future__ import annotations

import os

import torch

from lockn_testing.tiny.common import init_state, save_safetensors, with_marker
from lockn_testing.tiny.flux2 import linear_weight_names

DIT = "acestep_v1.5_turbo.safetensors"
DIT_GGUF = "acestep_v1.5_turbo-Q8_0.gguf"
TE = "qwen_0.6b_ace15.safetensors"
LM = "qwen_1.7b_ace15.safetensors"
VAE = "ace_1.5_vae.safetensors"

QWEN06 = dict(fields=dict(vocab_size=151669, hidden_size=32, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=1, num_key_value_heads=1), attrs=dict(head_dim=16))
QWEN_LM = dict(fields=dict(vocab_size=217204, hidden_size=48, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=1, num_key_value_heads=1), attrs=dict(head_dim=16))
ENC_HIDDEN = 64
DIT_PATCH = {"ace_dit": {"fsq_dim": ENC_HIDDEN, "text_hidden_dim": QWEN06["fields"]["hidden_size"]}}
TE_PATCH = {"configs": {"Qwen3_06B_ACE15_Config": QWEN06, "Qwen3_2B_ACE15_lm_Config": QWEN_LM},
            "ace_te_hidden": QWEN06["fields"]["hidden_size"]}
OOBLECK = {"channels": 4, "c_mults": [1, 2, 4, 8, 16]}
VAE_PATCH = {"oobleck": OOBLECK}


def make_dit(seed: int, hidden: int = 64, intermediate: int = 64, layers: int = 2,
             text_hidden: int = QWEN06["fields"]["hidden_size"]) -> tuple[dict, set, dict]:
    """An ACE-Step 1.5 DiT state dict (bf16), its Linear weight names, and the marker patch it needs,
    for a 0.6B text encoder of width `text_hidden`."""
    import comfy.ops
    from comfy.ldm.ace.ace_step15 import AceStepConditionGenerationModel
    dit = init_state(AceStepConditionGenerationModel(
        hidden_size=hidden, intermediate_size=intermediate, num_heads=8, encoder_hidden_size=ENC_HIDDEN,
        encoder_num_heads=8, encoder_intermediate_size=64, num_dit_layers=layers, fsq_dim=ENC_HIDDEN,
        text_hidden_dim=text_hidden, dtype=torch.float32, device="cpu",
        operations=comfy.ops.disable_weight_init), seed)
    linear = linear_weight_names(dit)
    patch = {"ace_dit": {**DIT_PATCH["ace_dit"], "text_hidden_dim": text_hidden}}
    return {k: v.to(torch.bfloat16) for k, v in dit.state_dict().items()}, linear, patch


def te_patch(te_hidden: int | None = None, lm_hidden: int | None = None, te_vocab: int | None = None,
             lm_vocab: int | None = None) -> dict:
    """The marker patch of the two text encoder files, at the tiny sizes unless widths or vocabularies
    are given (the real ones: 0.6B 1024 wide, 151669 tokens; 1.7B LM 2048 wide, 217204 tokens)."""
    q06 = {"fields": {**QWEN06["fields"], **({"hidden_size": te_hidden} if te_hidden else {}),
                      **({"vocab_size": te_vocab} if te_vocab else {})}, "attrs": QWEN06["attrs"]}
    lm = {"fields": {**QWEN_LM["fields"], **({"hidden_size": lm_hidden} if lm_hidden else {}),
                     **({"vocab_size": lm_vocab} if lm_vocab else {})}, "attrs": QWEN_LM["attrs"]}
    return {"configs": {"Qwen3_06B_ACE15_Config": q06, "Qwen3_2B_ACE15_lm_Config": lm},
            "ace_te_hidden": q06["fields"]["hidden_size"]}


def make_te(seed: int, patch: dict = TE_PATCH) -> tuple[dict, dict]:
    """The 0.6B text encoder and the 1.7B LM state dicts (marked), built through ComfyUI's ACE-Step 1.5
    text encoder class at the sizes `patch` gives."""
    import comfy.text_encoders.ace15 as ace15

    from lockn_testing.comfy_patches import _Active
    with _Active(patch):
        te = init_state(ace15.te(lm_model="qwen3_2b")(device="cpu", dtype=torch.float32), seed)
    te_sd = te.state_dict()
    del te
    q06 = {k[len("qwen3_06b.transformer."):]: v for k, v in te_sd.items() if k.startswith("qwen3_06b.transformer.")}
    lm = {k[len("qwen3_2b.transformer."):]: v for k, v in te_sd.items() if k.startswith("qwen3_2b.transformer.")}
    return with_marker(q06, "ace15", "text_encoder", patch), with_marker(lm, "ace15", "lm", patch)


def build(root: str, seed: int = 0) -> dict:
    from comfy.ldm.audio.autoencoder import AudioOobleckVAE

    from lockn_testing.comfy_patches import MARKER_KEY
    from lockn_testing.gguf_writer import write_gguf
    out = {}

    sd, linear, _ = make_dit(seed + 11)
    marked = with_marker(sd, "ace15", "diffusion_model", DIT_PATCH)
    out[DIT] = save_safetensors(marked, os.path.join(root, "diffusion_models", DIT))
    # GGUF: ComfyUI-GGUF does not know ACE-Step 1.5; the architecture name is ours ("ace").
    # The marker goes in as float32 bytes (GGUF readers keep 1-D float tensors as they are).
    tensors = {k: v.float() for k, v in sd.items()}
    tensors[MARKER_KEY] = marked[MARKER_KEY].float()
    write_gguf(os.path.join(root, "diffusion_models", DIT_GGUF), tensors, arch="ace", ftype="Q8_0",
               quantizable=linear)
    out[DIT_GGUF] = os.path.join(root, "diffusion_models", DIT_GGUF)

    q06, lm = make_te(seed + 12)
    # fp32: a bf16 text encoder runs in bf16 on CPU, several times slower
    out[TE] = save_safetensors(q06, os.path.join(root, "text_encoders", TE), dtype=torch.float32)
    out[LM] = save_safetensors(lm, os.path.join(root, "text_encoders", LM), dtype=torch.float32)

    # Oobleck VAE with the 48 kHz strides (detected from decoder.layers.2.layers.1 kernel size 12)
    vae = init_state(AudioOobleckVAE(strides=[2, 4, 4, 6, 10], **OOBLECK), seed + 13)
    out[VAE] = save_safetensors(with_marker(vae.state_dict(), "ace15", "vae", VAE_PATCH),
                                os.path.join(root, "vae", VAE), dtype=torch.float32)
    return out
