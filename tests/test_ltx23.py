"""LTX-2.3 22B (issue 12): the tiny 2.3 checkpoint is the 2.3 architecture as ComfyUI builds it from the
file's metadata, its presets load and run through the LockN loader, and they are the fast chain's and
the LTX workflow's video stage with the 2.3 template's turbo files. (Both 2.3 presets run to video and
audio through the LockN loader in tests/test_loaders_server.py; the turbo path in tests/test_turbo.py.)

The 19B checkpoint is the control: a test that passed on it as well would not be testing 2.3."""
from __future__ import annotations

import logging
from pathlib import Path

from lockn_gen import catalog as catalog_mod
from lockn_gen import chains
from lockn_testing.tiny import loras as tiny_loras

# the tiny factory's names (lockn_testing/tiny/ltx2.py, which imports ComfyUI: not at collection)
CK23, CK19 = "ltx-2.3-22b-dev-fp8.safetensors", "ltx-2-19b-dev-fp8.safetensors"
TE = "gemma_3_12B_it_fp4_mixed.safetensors"
UPSCALER23, UPSCALER19 = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors", "ltx-2-spatial-upscaler-x2-1.0.safetensors"


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _load(models, ckpt):
    import comfy.sd
    h = _Warnings()
    logging.getLogger().addHandler(h)
    try:
        model, _, vae, _ = comfy.sd.load_checkpoint_guess_config(str(models / "checkpoints" / ckpt),
                                                                 output_vae=True, output_clip=False)
        clip = comfy.sd.load_clip([str(models / "text_encoders" / TE), str(models / "checkpoints" / ckpt)],
                                  clip_type=comfy.sd.CLIPType.LTXV)
    finally:
        logging.getLogger().removeHandler(h)
    return model, clip, h.lines


def test_tiny_ltx23_is_the_23_architecture_and_loads_without_missing_keys(comfy_inproc, tiny_models):
    """ComfyUI reads the 2.3 switches from the checkpoint's metadata: gated attention in every attention,
    cross-attention AdaLN (prompt_adaln_single), the caption projection before the connectors, and the
    text encoder's split video/audio projection (dual_linear). Nothing missing or left over."""
    m23, c23, warn23 = _load(tiny_models, CK23)
    m19, c19, warn19 = _load(tiny_models, CK19)
    assert not [w for w in warn23 + warn19 if "missing" in w or "unexpected" in w], warn23 + warn19
    d23, d19 = m23.model.diffusion_model, m19.model.diffusion_model
    assert type(d23).__name__ == "LTXAVModel" == type(d19).__name__
    b23, b19 = d23.transformer_blocks[0], d19.transformer_blocks[0]
    assert b23.attn1.to_gate_logits is not None and b23.audio_attn2.to_gate_logits is not None
    assert b19.attn1.to_gate_logits is None
    assert d23.cross_attention_adaln and d23.caption_proj_before_connector
    assert not d19.cross_attention_adaln
    assert getattr(d23, "prompt_adaln_single", None) is not None and getattr(d19, "prompt_adaln_single", None) is None
    te23, te19 = c23.cond_stage_model, c19.cond_stage_model
    assert te23.text_projection_type == "dual_linear" and te19.text_projection_type == "single_linear"


def test_catalog_has_the_23_template_files_and_presets():
    cat = catalog_mod.builtin()
    dev, dist = cat.presets["ltx23-22b-dev-fp8"], cat.presets["ltx23-22b-distilled-fp8"]
    assert dev.components["checkpoint"] == "ltx-2.3-22b-dev-fp8.safetensors"
    f = cat.files["ltx-2.3-22b-dev-fp8.safetensors"]
    assert (f.repo, f.folder) == ("Lightricks/LTX-2.3-fp8", "checkpoints")
    lora = cat.files[tiny_loras.LTX23_DISTILLED]
    assert (lora.repo, lora.path) == ("Comfy-Org/ltx-2.3", f"split_files/loras/{tiny_loras.LTX23_DISTILLED}")
    up = cat.files[UPSCALER23]
    assert (up.repo, up.folder) == ("Lightricks/LTX-2.3", "latent_upscale_models")
    assert dev.optional["upscaler"] == dist.optional["upscaler"] == UPSCALER23
    # the 2.3 template's second stage and LoRA strength; the 19B presets keep theirs
    r = chains.ltx_recipe("ltx23-22b-dev-fp8")
    assert (r["turbo_lora"], r["turbo_lora_strength"]) == (tiny_loras.LTX23_DISTILLED, 0.5)
    assert (r["refine_sigmas"], r["refine_sampler"], r["image_strength"]) == ("0.85, 0.7250, 0.4219, 0.0", "euler", 0.7)
    assert chains.ltx_recipe("ltx23-22b-distilled-fp8")["turbo_lora"] == "None"
    r19 = chains.ltx_recipe("ltx2-19b-dev-fp8")
    assert (r19["turbo_lora"], r19["upscaler"], r19["refine_sampler"]) == (
        tiny_loras.LTX_DISTILLED, UPSCALER19, "gradient_estimation")


def test_fast_chain_and_ltx_workflow_default_to_ltx23():
    import json
    for name in ("chain_fast", "ltx2_image_to_video"):
        api = json.loads((Path(__file__).resolve().parent.parent / "workflows" / "api" / f"{name}.json").read_text())
        loaders = [n for n in api.values() if n["class_type"] == "LockNLTX2Loader"]
        assert [n["inputs"]["preset"] for n in loaders] == ["ltx23-22b-distilled-fp8"], name
        ups = [n for n in api.values() if n["class_type"] == "LockNLatentUpscaleModelLoader"]
        assert [n["inputs"]["model_name"] for n in ups] == [UPSCALER23], name
