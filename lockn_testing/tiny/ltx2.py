"""Tiny LTX-2 (19B layout): one checkpoint with the audio+video model, video VAE, audio VAE and
vocoder (sizes in the safetensors `config` metadata, as in the official files), the Gemma 3 12B text
encoder (48 tiny layers), the spatial upscaler, and the split files of the GGUF preset (transformer
GGUF, video VAE, audio VAE, text projection).

Tiny LTX-2.3 (22B layout): the same checkpoint shape with the 2.3 transformer's switches in its
`config` metadata, as Lightricks' 2.3 files carry them: gated attention (`to_gate_logits`),
cross-attention AdaLN (`prompt_adaln_single`, `prompt_scale_shift_table`), the caption projection
moved before the connectors with no first linear, and the text projection split in two
(`text_embedding_projection.{video,audio}_aggregate_embed`, ComfyUI's `dual_linear`), which feeds the
video and audio connectors at the transformer's own widths. Its x2 spatial upscaler 1.1 has the 1.0
layout. The 2.3 checkpoint reuses the 19B tiny VAEs: LTX-2.3's redesigned VAE configuration is not
public here, so the tiny 2.3 set tests the transformer, text encoder and LoRA layout, not the VAE.
"""
from __future__ import annotations

import inspect
import json
import os

import torch

from lockn_testing.tiny.common import init_state, link_or_copy, save_safetensors, sentencepiece_model, with_marker

CKPT = "ltx-2-19b-dev-fp8.safetensors"
CKPT_ALIASES = ("ltx-2-19b-distilled-fp8.safetensors",)
TE = "gemma_3_12B_it_fp4_mixed.safetensors"
TE_ALIASES = ("gemma_3_12B_it_fp8_scaled.safetensors",)
UPSCALER = "ltx-2-spatial-upscaler-x2-1.0.safetensors"
SPLIT_DIT = "ltx-2-19b-dev-Q4_K_M.gguf"
SPLIT_VAE = "LTX2_video_vae_bf16.safetensors"
SPLIT_AUDIO_VAE = "LTX2_audio_vae_bf16.safetensors"
SPLIT_PROJ = "ltx-2-19b-embeddings_connector_dev_bf16.safetensors"
CKPT23 = "ltx-2.3-22b-dev-fp8.safetensors"
CKPT23_ALIASES = ("ltx-2.3-22b-distilled-fp8.safetensors",)
UPSCALER23 = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"

CAPTION = 32
GEMMA_FIELDS = dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=48,
                    num_attention_heads=2, num_key_value_heads=1)
GEMMA_ATTRS = dict(head_dim=16, mm_tokens_per_image=4,
                   vision_config={"num_channels": 3, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 16,
                                  "image_size": 56, "intermediate_size": 32, "model_type": "siglip_vision_model",
                                  "num_attention_heads": 2, "num_hidden_layers": 1, "patch_size": 14})
TE_PATCH = {"configs": {"Gemma3_12B_Config": {"fields": GEMMA_FIELDS, "attrs": GEMMA_ATTRS}},
            "ltx_projection": {"in_dim": GEMMA_FIELDS["hidden_size"] * (GEMMA_FIELDS["num_hidden_layers"] + 1),
                               "out_dim": CAPTION,
                               # LTX-2.3's dual projection: the video and audio connectors' widths
                               "video_dim": 2 * 16, "audio_dim": 2 * 8}}

TRANSFORMER = {
    "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
    "audio_num_attention_heads": 2, "audio_attention_head_dim": 8, "audio_cross_attention_dim": 16,
    "in_channels": 128, "audio_in_channels": 128,            # 128 latent channels; audio 8 ch x 16 bins
    "caption_channels": CAPTION, "connector_num_attention_heads": 2, "connector_attention_head_dim": CAPTION // 2,
    "connector_num_layers": 1, "num_layers": 1,
}
# LTX-2.3: the switches of Lightricks' 2.3 transformer config (the 22B files' metadata)
TRANSFORMER23 = {**TRANSFORMER, "apply_gated_attention": True, "cross_attention_adaln": True,
                 "caption_proj_before_connector": True, "caption_projection_first_linear": False,
                 "connector_apply_gated_attention": True,
                 "connector_num_attention_heads": 2, "connector_attention_head_dim": 16,
                 "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 8}
VIDEO_VAE = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}],
                       ["compress_time_res", {"multiplier": 2}], ["compress_all_res", {"multiplier": 2}],
                       ["compress_all_res", {"multiplier": 2}], ["res_x", {"num_layers": 1}]],
    "decoder_blocks": [["res_x", {"num_layers": 1, "inject_noise": False}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["res_x", {"num_layers": 1, "inject_noise": False}]],
    "encoder_base_channels": 8, "decoder_base_channels": 8, "scaling_factor": 1.0, "norm_layer": "pixel_norm",
    "patch_size": 4, "latent_log_var": "uniform", "use_quant_conv": False, "causal_decoder": False,
    "timestep_conditioning": True, "spatial_padding_mode": "zeros",
}
AUDIO_VAE = {
    "model": {"params": {"ddconfig": {
        "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "downsample_time": False,
        "in_channels": 2, "out_ch": 2, "ch": 8, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "attn_resolutions": [],
        "dropout": 0.0, "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"},
        "sampling_rate": 16000}},
    "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160}},
}
VOCODER = {"resblock_kernel_sizes": [3], "upsample_rates": [5, 4, 2, 2, 2], "upsample_kernel_sizes": [16, 16, 8, 4, 4],
           "resblock_dilation_sizes": [[1, 3, 5]], "upsample_initial_channel": 32, "stereo": True, "resblock": "1",
           "activation": "snake", "use_bias_at_final": True, "use_tanh_at_final": True}
UPSCALER_CFG = {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1,
                "dims": 3, "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0,
                "rational_resampler": False}


def build(root: str, seed: int = 0) -> dict:
    import comfy.ops
    import comfy.text_encoders.lt as lt
    from comfy.ldm.lightricks.av_model import LTXAVModel
    from comfy.ldm.lightricks.latent_upsampler import LatentUpsampler
    from comfy.ldm.lightricks.vae.causal_audio_autoencoder import CausalAudioAutoencoder
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE
    from comfy.ldm.lightricks.vocoders.vocoder import Vocoder

    from lockn_testing.comfy_patches import _Active
    from lockn_testing.gguf_writer import write_gguf
    from lockn_testing.tiny.flux2 import linear_weight_names

    ops = comfy.ops.disable_weight_init
    out = {}
    meta = {"config": {"transformer": TRANSFORMER, "vae": VIDEO_VAE, "audio_vae": AUDIO_VAE, "vocoder": VOCODER}}

    dit = init_state(LTXAVModel(**TRANSFORMER, dtype=torch.float32, device="cpu", operations=ops), seed + 1)
    dit_sd = {k: v.to(torch.bfloat16) for k, v in dit.state_dict().items()}
    vae_sd = init_state(VideoVAE(config=VIDEO_VAE), seed + 2).state_dict()
    avae_sd = init_state(CausalAudioAutoencoder(config=AUDIO_VAE), seed + 3).state_dict()
    voc_sd = init_state(Vocoder(config=VOCODER), seed + 4).state_dict()
    with _Active(TE_PATCH):     # build ComfyUI's LTX-2 text encoder class at the tiny sizes the marker names
        te = init_state(lt.LTXAVTEModel(dtype_llama=torch.float32, device="cpu", dtype=torch.float32,
                                        text_projection_type="single_linear"), seed + 5)
    te_sd = te.state_dict()
    proj = {"text_embedding_projection.aggregate_embed.weight": te_sd["text_embedding_projection.weight"]}

    sd = {"model.diffusion_model." + k: v for k, v in dit_sd.items()}
    sd.update({"vae." + k: v for k, v in vae_sd.items()})
    sd.update({"audio_vae." + k: v for k, v in avae_sd.items()})
    sd.update({"vocoder." + k: v for k, v in voc_sd.items()})
    sd.update(proj)
    keep = ("std-of-means", "mean-of-means")
    ck = save_safetensors(with_marker(sd, "ltx2", "checkpoint"), os.path.join(root, "checkpoints", CKPT),
                          dtype=torch.bfloat16, metadata=meta, keep_fp32=keep)
    out[CKPT] = ck
    for alias in CKPT_ALIASES:
        out[alias] = link_or_copy(ck, os.path.join(root, "checkpoints", alias))

    # Gemma file: keys like Comfy-Org's gemma_3_12B_it*.safetensors + the sentencepiece proto
    gemma = {k[len("gemma3_12b.transformer."):]: v for k, v in te_sd.items() if k.startswith("gemma3_12b.transformer.")}
    gemma["spiece_model"] = torch.frombuffer(bytearray(sentencepiece_model(
        GEMMA_FIELDS["vocab_size"] - 8, model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3)), dtype=torch.uint8).clone()
    # fp32: ComfyUI runs a bf16 text encoder in bf16 on CPU, 3-5x slower
    p = save_safetensors(with_marker(gemma, "ltx2", "text_encoder", TE_PATCH), os.path.join(root, "text_encoders", TE),
                         dtype=torch.float32)
    out[TE] = p
    for alias in TE_ALIASES:
        out[alias] = link_or_copy(p, os.path.join(root, "text_encoders", alias))

    # ComfyUI 0.33+ builds the upsampler from `operations`; 0.20.1 takes the config only
    takes_ops = "operations" in inspect.signature(LatentUpsampler.from_config).parameters
    up = init_state(LatentUpsampler.from_config(UPSCALER_CFG, **({"operations": ops} if takes_ops else {})), seed + 6)
    out[UPSCALER] = save_safetensors(up.state_dict(), os.path.join(root, "latent_upscale_models", UPSCALER),
                                     dtype=torch.bfloat16, metadata={"config": UPSCALER_CFG})

    # LTX-2.3 22B layout: its own transformer switches, the dual text projection, the 19B tiny VAEs
    meta23 = {"config": {**meta["config"], "transformer": TRANSFORMER23}}
    dit23 = init_state(LTXAVModel(**TRANSFORMER23, dtype=torch.float32, device="cpu", operations=ops), seed + 7)
    with _Active(TE_PATCH):
        te23 = init_state(lt.LTXAVTEModel(dtype_llama=torch.float32, device="cpu", dtype=torch.float32,
                                          text_projection_type="dual_linear"), seed + 8)
    proj23 = {k: v for k, v in te23.state_dict().items() if k.startswith("text_embedding_projection.")}
    sd23 = {"model.diffusion_model." + k: v.to(torch.bfloat16) for k, v in dit23.state_dict().items()}
    sd23.update({k: v for k, v in sd.items() if not k.startswith(("model.diffusion_model.", "text_embedding_projection."))})
    sd23.update(proj23)
    ck23 = save_safetensors(with_marker(sd23, "ltx2", "checkpoint"), os.path.join(root, "checkpoints", CKPT23),
                            dtype=torch.bfloat16, metadata=meta23, keep_fp32=keep)
    out[CKPT23] = ck23
    for alias in CKPT23_ALIASES:
        out[alias] = link_or_copy(ck23, os.path.join(root, "checkpoints", alias))
    up23 = init_state(LatentUpsampler.from_config(UPSCALER_CFG, **({"operations": ops} if takes_ops else {})), seed + 9)
    out[UPSCALER23] = save_safetensors(up23.state_dict(), os.path.join(root, "latent_upscale_models", UPSCALER23),
                                       dtype=torch.bfloat16, metadata={"config": UPSCALER_CFG})

    # split files of the GGUF preset: transformer GGUF (config in its metadata), video VAE,
    # audio VAE + vocoder (in checkpoints/, which ComfyUI's audio VAE loader lists), text projection
    write_gguf(os.path.join(root, "diffusion_models", SPLIT_DIT), {k: v.float() for k, v in dit_sd.items()},
               arch="ltxv", ftype="Q4_K_M", quantizable=linear_weight_names(dit),
               metadata={"config": json.dumps(meta["config"])})
    out[SPLIT_DIT] = os.path.join(root, "diffusion_models", SPLIT_DIT)
    out[SPLIT_VAE] = save_safetensors(with_marker(vae_sd, "ltx2", "vae"), os.path.join(root, "vae", SPLIT_VAE),
                                      dtype=torch.bfloat16, metadata=meta, keep_fp32=keep)
    audio = {"audio_vae." + k: v for k, v in avae_sd.items()}
    audio.update({"vocoder." + k: v for k, v in voc_sd.items()})
    out[SPLIT_AUDIO_VAE] = save_safetensors(with_marker(audio, "ltx2", "audio_vae"),
                                            os.path.join(root, "checkpoints", SPLIT_AUDIO_VAE),
                                            dtype=torch.bfloat16, metadata=meta)
    out[SPLIT_PROJ] = save_safetensors(with_marker(proj, "ltx2", "text_projection"),
                                       os.path.join(root, "text_encoders", SPLIT_PROJ), dtype=torch.float32)
    return out
