"""Tiny LoRAs in the key layouts of the public files, for the tiny models of each family.

Each LoRA covers the modules its public counterpart covers, named as in that file, with small random
low-rank matrices sized for the tiny model (read from the tiny base file written before it):

| file (catalog name)                             | layout (public file)                                                    |
|-------------------------------------------------|-------------------------------------------------------------------------|
| wan2.2_i2v_lightx2v_4steps_lora_v1_{high,low}_noise | `diffusion_model.blocks.N.{self,cross}_attn.{q,k,v,o}` and `ffn.{0,2}`: |
|                                                 | `.lora_down.weight`, `.lora_up.weight`, `.alpha` (fp32; lightx2v Seko V1)|
| ltx-2-19b-distilled-lora-384, camera control    | `diffusion_model.transformer_blocks.N.<attn or ff>.lora_A/.lora_B.weight`, |
|                                                 | no alpha (bf16; Lightricks' trainer: video, audio and cross attention, ff)|
| ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_... | the same layout on the 2.3 transformer (Comfy-Org's split_files/loras;  |
|                                                 | the gates' `to_gate_logits` are not LoRA targets of Lightricks' trainer)|
| Flux2TurboComfyv2                               | `diffusion_model.{double_blocks.N.*, single_blocks.N.linear1/2}`         |
|                                                 | `.lora_A/.lora_B.weight` (bf16; fal's LoRA converted for ComfyUI)        |
| ace15 (PEFT, the official trainer)              | `base_model.model.layers.N.{self,cross}_attn.{q,k,v,o}_proj.lora_A/B`    |

Each family also gets a "style" LoRA of the user's own kind (not in the catalog, another seed), so a
test can switch between two LoRAs on one base.
"""
from __future__ import annotations

import os
import re

import torch

RANK = 4

WAN_HIGH = "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
WAN_LOW = "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
LTX_DISTILLED = "ltx-2-19b-distilled-lora-384.safetensors"
LTX_CAMERA = "ltx-2-19b-lora-camera-control-dolly-left.safetensors"
LTX23_DISTILLED = "ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors"
FLUX_TURBO = "Flux2TurboComfyv2.safetensors"
ACE = "ace15_lofi_v1_lora.safetensors"
STYLE = "lockn_test_style_{family}.safetensors"        # a user's own LoRA (not in the catalog)

# family -> (base file, prefix of its module keys in that file, module regex, LoRA key prefix, layout, dtype)
_LAYOUTS = {
    "wan22": ("diffusion_models/wan2.2_i2v_{expert}_noise_14B_fp8_scaled.safetensors", "",
              r"^blocks\.\d+\.((self|cross)_attn\.[qkvo]|ffn\.[02])$", "diffusion_model.", "down_up_alpha", torch.float32),
    "ltx2": ("checkpoints/ltx-2-19b-dev-fp8.safetensors", "model.diffusion_model.",
             r"^transformer_blocks\.\d+\.((audio_)?attn[12]|audio_to_video_attn|video_to_audio_attn)\.(to_[qkv]|to_out\.0)$"
             r"|^transformer_blocks\.\d+\.(audio_)?ff\.net\.(0\.proj|2)$", "diffusion_model.", "A_B", torch.bfloat16),
    "ltx23": ("checkpoints/ltx-2.3-22b-dev-fp8.safetensors", "model.diffusion_model.",
              r"^transformer_blocks\.\d+\.((audio_)?attn[12]|audio_to_video_attn|video_to_audio_attn)\.(to_[qkv]|to_out\.0|to_gate_logits)$"
              r"|^transformer_blocks\.\d+\.(audio_)?ff\.net\.(0\.proj|2)$", "diffusion_model.", "A_B", torch.bfloat16),
    "flux2": ("diffusion_models/flux2_dev_fp8mixed.safetensors", "",
              r"^double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.[02])$|^single_blocks\.\d+\.linear[12]$",
              "diffusion_model.", "A_B", torch.bfloat16),
    "ace15": ("diffusion_models/acestep_v1.5_turbo.safetensors", "decoder.",
              r"^layers\.\d+\.(self|cross)_attn\.[qkvo]_proj$", "base_model.model.", "A_B", torch.bfloat16),
}


def _modules(path: str, key_prefix: str, pattern: str) -> dict[str, tuple[int, int]]:
    """Module name (without the file's prefix) -> (out, in) of the 2-D weights the pattern selects."""
    from safetensors import safe_open
    out = {}
    with safe_open(path, "pt") as f:
        for k in f.keys():
            if not (k.startswith(key_prefix) and k.endswith(".weight")):
                continue
            mod = k[len(key_prefix):-len(".weight")]
            shape = f.get_slice(k).get_shape()
            if len(shape) == 2 and re.search(pattern, mod):
                out[mod] = (shape[0], shape[1])
    return out


def make_lora(modules: dict, prefix: str, layout: str, seed: int, rank: int = RANK, strength: float = 0.5) -> dict:
    """Random low-rank pairs for these modules in a public layout. The product up @ down has entries
    about `strength` times the size of the tiny weights' (N(0, 1/in)), so a LoRA visibly changes the output."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for mod, (n_out, n_in) in sorted(modules.items()):
        down = torch.randn(rank, n_in, generator=g) / n_in ** 0.5
        up = torch.randn(n_out, rank, generator=g) * (strength / rank ** 0.5)
        if layout == "down_up_alpha":
            sd[f"{prefix}{mod}.lora_down.weight"] = down
            sd[f"{prefix}{mod}.lora_up.weight"] = up
            sd[f"{prefix}{mod}.alpha"] = torch.tensor(float(rank))      # alpha / rank = 1
        else:
            sd[f"{prefix}{mod}.lora_A.weight"] = down
            sd[f"{prefix}{mod}.lora_B.weight"] = up
    return sd


def build(root: str, seed: int = 0) -> dict:
    from lockn_testing.tiny.common import save_safetensors   # (imports the test patches: ComfyUI must be booted)
    out = {}

    def write(name, family, seed_, expert="high"):
        base, key_prefix, pattern, prefix, layout, dtype = _LAYOUTS[family]
        path = os.path.join(root, base.format(expert=expert))
        mods = _modules(path, key_prefix, pattern)
        assert mods, f"no {family} modules found in {path} for the LoRA layout"
        out[name] = save_safetensors(make_lora(mods, prefix, layout, seed_), os.path.join(root, "loras", name),
                                     dtype=dtype, metadata={"lockn_tiny": f"{family} LoRA, {layout}"})

    write(WAN_HIGH, "wan22", seed + 31, "high")
    write(WAN_LOW, "wan22", seed + 32, "low")
    write(LTX_DISTILLED, "ltx2", seed + 33)
    write(LTX_CAMERA, "ltx2", seed + 34)
    write(LTX23_DISTILLED, "ltx23", seed + 37)
    write(FLUX_TURBO, "flux2", seed + 35)
    write(ACE, "ace15", seed + 36)
    for i, fam in enumerate(f for f in _LAYOUTS if f != "ltx23"):
        write(STYLE.format(family=fam), fam, seed + 40 + i)
    return out
