"""Test-only patches for the tiny models of issue 24's images families (see __init__.py: keyed on the tiny marker).

Shared text encoders (lockn_testing.tiny.encoders), Flux.1, SD3.5 and SDXL. Every patch below runs ComfyUI's
code unchanged for a state dict without the marker.
"""
from __future__ import annotations

import functools

from . import MARKER_KEY, _Active, _active, _current, _patch_spec, take_tiny_sizes


def _enclosing(key):
    """`key` of the innermost enclosing tiny load that sets it (a VAE built inside a tiny checkpoint's load
    runs under the VAE patch's own, empty, spec)."""
    for spec in reversed(_active):
        if spec.get(key) is not None:
            return spec[key]
    return None


# ---- 1. CLIP-L / CLIP-G config -----------------------------------------------------------------------------
# Reason: comfy/text_encoders/long_clipl.py:25 (model_options_long_clip, called for every text-encoder file at
# sd.py:1616; 0.33: :2046) OVERWRITES model_options["clip_l_model_config"] / ["clip_g_model_config"] with
# {"max_position_embeddings": N}, dropping the tiny sizes the generic text-encoder patch put there.
def _patch_long_clip():
    import comfy.text_encoders.long_clipl as long_clipl

    orig = long_clipl.model_options_long_clip
    if getattr(orig, "_lockn", False):
        return

    @functools.wraps(orig)
    def model_options_long_clip(sd, tokenizer_data, model_options):
        tokenizer_data, mo = orig(sd, tokenizer_data, model_options)
        cfgs = _patch_spec(sd).get("model_config", {})
        for name, cfg in cfgs.items():
            key = f"{name}_model_config"
            if key in mo:
                mo = {**mo, key: {**cfg, **mo[key]}}
        return tokenizer_data, mo

    model_options_long_clip._lockn = True
    long_clipl.model_options_long_clip = model_options_long_clip


# ---- 2. SD3 text encoder: CLIP output padded to 4096 --------------------------------------------------------
# Reason: comfy/text_encoders/sd3_clip.py:129 pads the CLIP-L+G hidden states to a hard-coded 4096 before
# joining them to T5-XXL's along the token axis (and :142/:145 use 4096 / 768+1280 for empty outputs); the
# tiny T5-XXL is T5XXL_WIDTH wide. A tiny SD3 text encoder (built while a marked file loads) pads T5's output to
# 4096 for ComfyUI's code, then cuts the joined result back to the tiny width.
def _patch_sd3_clip():
    import torch

    import comfy.text_encoders.sd3_clip as sd3_clip

    cls = sd3_clip.SD3ClipModel
    if getattr(cls, "_lockn", False):
        return
    orig_init, orig_encode = cls.__init__, cls.encode_token_weights

    @functools.wraps(orig_init)
    def __init__(self, *a, **kw):
        orig_init(self, *a, **kw)
        self._lockn_width = _current("sd3_te_width")

    @functools.wraps(orig_encode)
    def encode_token_weights(self, token_weight_pairs):
        width = getattr(self, "_lockn_width", None)
        if not width or self.t5xxl is None:
            return orig_encode(self, token_weight_pairs)
        t5 = self.t5xxl
        t5_encode = t5.encode_token_weights

        def padded(*a, **kw):
            out = t5_encode(*a, **kw)
            return (torch.nn.functional.pad(out[0], (0, 4096 - out[0].shape[-1])), *out[1:])

        t5.encode_token_weights = padded
        try:
            out, pooled, extra = orig_encode(self, token_weight_pairs)
        finally:
            del t5.encode_token_weights
        return out[..., :width], pooled, extra

    cls.__init__ = __init__
    cls.encode_token_weights = encode_token_weights
    cls._lockn = True


# ---- 3. KL VAE encoder width ----------------------------------------------------------------------------
# Reason: comfy/sd.py:548 (0.20.1; 0.33: :663) builds the SD/SDXL/SD3/Flux.1 VAE encoder with ch 128 whatever the
# weights say (only the decoder's width is read, sd.py:567), 34M parameters; the marker gives the tiny width.
def _patch_vae_encoder():
    import comfy.ldm.modules.diffusionmodules.model as ddm
    # autoencoder.py instantiates "comfy.ldm.modules.diffusionmodules.model.Encoder" by name
    take_tiny_sizes(ddm, "Encoder", "_lockn", lambda **kw: ((), {**kw, **(_enclosing("vae_encoder") or {})}))


# ---- 4. checkpoints (CheckpointLoaderSimple): model detection and embedded text encoder config ----------------
# Reason: comfy/sd.py:1770 (0.33: :2242; load_state_dict_guess_config) builds the checkpoint's CLIP with te_model_options from
# the caller only (load_checkpoint_guess_config passes none), so the embedded CLIP-L/G and T5 get the hard-coded
# JSON configs; and supported_models.SDXL (supported_models.py:191) matches only the full-size UNet config
# (model_channels 320, context_dim 2048, transformer_depth [0,0,2,2,10,10], adm_in_channels 2816), so the
# marker names the model class and (for SDXL) the sizes to match.
def _patch_checkpoints():
    import comfy.model_detection
    import comfy.sd

    orig = comfy.sd.load_state_dict_guess_config
    if getattr(orig, "_lockn", False):
        return

    @functools.wraps(orig)
    def load_state_dict_guess_config(sd, *a, te_model_options={}, **kw):
        spec = _patch_spec(sd)
        if not spec:
            return orig(sd, *a, te_model_options=te_model_options, **kw)
        sd = {k: v for k, v in sd.items() if k != MARKER_KEY}
        mo = dict(te_model_options)
        for name, cfg in spec.get("model_config", {}).items():
            mo[f"{name}_model_config"] = cfg
        with _Active(spec):
            return orig(sd, *a, te_model_options=mo, **kw)

    load_state_dict_guess_config._lockn = True
    comfy.sd.load_state_dict_guess_config = load_state_dict_guess_config

    orig_match = comfy.model_detection.model_config_from_unet_config

    @functools.wraps(orig_match)
    def model_config_from_unet_config(unet_config, *a, **kw):
        forced = _current("model_class")
        if forced:
            import comfy.supported_models as sm
            return getattr(sm, forced)(unet_config)
        return orig_match(unet_config, *a, **kw)

    model_config_from_unet_config._lockn = True
    comfy.model_detection.model_config_from_unet_config = model_config_from_unet_config


def install():
    _patch_long_clip()
    _patch_sd3_clip()
    _patch_vae_encoder()
    _patch_checkpoints()
