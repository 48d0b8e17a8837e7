"""Test-only patches for the tiny models of issue 24's video families (see __init__.py: keyed on the tiny marker)."""
from __future__ import annotations

import functools
import json
import os
import tempfile


# ---- vid2 (Wan 2.1 I2V, HunyuanVideo 1.5 I2V, SkyReels V1 I2V) ------------------------------------------
# Reason: comfy/clip_vision.py load_clipvision_from_sd (~line 108-135 in 0.20.1) picks a fixed JSON config (ViT-H
# 32x1280, SigLIP 384 27x1152, ...) by whether layer 30/47/22 keys exist; a tiny file's marker gives its config.
def _vid2_clip_vision():
    import comfy.clip_vision as cv
    from . import MARKER_KEY, _patch_spec

    orig = cv.load_clipvision_from_sd
    if getattr(orig, "_lockn_vid2", False):
        return

    @functools.wraps(orig)
    def load_clipvision_from_sd(sd, prefix="", convert_keys=False):
        cfg = _patch_spec(sd).get("clip_vision")
        if not cfg:
            return orig(sd, prefix=prefix, convert_keys=convert_keys)
        sd = {k: v for k, v in sd.items() if k != MARKER_KEY}
        if convert_keys:
            sd = cv.convert_to_transformers(sd, prefix)
        fd, path = tempfile.mkstemp(suffix=".json", prefix="lockn_tiny_clip_vision_")
        try:                                   # 0.20.1's ClipVisionModel takes a JSON path only (0.33 also a dict)
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f)
            clip = cv.ClipVisionModel(path)
        finally:
            os.remove(path)
        missing, _ = clip.load_sd(sd)
        if missing:
            raise RuntimeError(f"tiny clip vision: missing keys {missing}")
        return clip

    load_clipvision_from_sd._lockn_vid2 = True
    cv.load_clipvision_from_sd = load_clipvision_from_sd


# Makes a tiny diffusion model's marker spec visible (_current) while ComfyUI builds the model, for the
# factories below (the generic loader patch in __init__.py activates only ACE-Step's spec).
_VID2_DIT_KEYS = ("wan_clip_dim", "hy_byt5_mapper", "hy15_vision_in_dim")


class _vid2_hy15_detection:
    """Reason: supported_models.HunyuanVideo15 / HunyuanVideo15_SR_Distilled (0.20.1 ~1616-1645, 0.33 ~2088-2115) match
    only vision_in_dim == 1152 (the SigLIP width, which model_detection.py reads from vision_in.proj.0.weight); for
    a tiny file they match its marker's width instead, for the duration of the load."""

    def __init__(self, dim):
        self.dim = dim

    def __enter__(self):
        import comfy.supported_models as sm
        self.saved = [(c, c.unet_config) for c in (sm.HunyuanVideo15, sm.HunyuanVideo15_SR_Distilled)]
        if self.dim:
            for c, cfg in self.saved:
                c.unet_config = {**cfg, "vision_in_dim": self.dim}

    def __exit__(self, *exc):
        for c, cfg in self.saved:
            c.unet_config = cfg


def _vid2_diffusion_loader():
    import comfy.sd
    from . import _Active, _patch_spec

    orig = comfy.sd.load_diffusion_model_state_dict
    if getattr(orig, "_lockn_vid2", False):
        return

    @functools.wraps(orig)
    def load_diffusion_model_state_dict(sd, model_options={}, *a, **kw):
        spec = _patch_spec(sd)
        if not any(k in spec for k in _VID2_DIT_KEYS):
            return orig(sd, model_options, *a, **kw)
        with _Active(spec), _vid2_hy15_detection(spec.get("hy15_vision_in_dim")):
            return orig(sd, model_options, *a, **kw)

    load_diffusion_model_state_dict._lockn_vid2 = True
    comfy.sd.load_diffusion_model_state_dict = load_diffusion_model_state_dict


# Reason: comfy/ldm/wan/model.py (WanModel.__init__, ~line 514 in 0.20.1, 523 in 0.33) builds the I2V image
# embedding as MLPProj(1280, dim): the CLIP ViT-H width, not read from the weights.
def _vid2_wan_clip_dim():
    import comfy.ldm.wan.model as wan
    from . import _current, take_tiny_sizes

    def adjust(in_dim, out_dim, *a, **kw):
        tiny = _current("wan_clip_dim")
        return (tiny if tiny and in_dim == 1280 else in_dim, out_dim, *a), kw
    take_tiny_sizes(wan, "MLPProj", "_lockn_vid2", adjust)


# Reason: comfy/ldm/hunyuan_video/model.py (HunyuanVideo.__init__, ~line 258) builds the byT5 mapper as
# ByT5Mapper(in_dim=1472, out_dim=2048, hidden_dim=2048, ...) (7.3M parameters), whatever the weights say.
def _vid2_hy_byt5_mapper():
    import comfy.ldm.hunyuan_video.model as hy
    from . import _current, take_tiny_sizes

    def adjust(in_dim, out_dim, hidden_dim, out_dim1, *a, **kw):
        tiny = _current("hy_byt5_mapper") or {}
        return (tiny.get("in_dim", in_dim), tiny.get("out_dim", out_dim), tiny.get("hidden_dim", hidden_dim), out_dim1,
                *a), kw
    take_tiny_sizes(hy, "ByT5Mapper", "_lockn_vid2", adjust)


# Reason: comfy/text_encoders/llama.py (Qwen25_7BVLI.__init__, 0.20.1 ~1061, 0.33 ~1257) builds the Qwen2.5-VL vision
# tower at its full default size (32 layers of width 1280, 670M parameters) whatever the weights say.
def _vid2_qwen25_visual():
    import comfy.text_encoders.qwen_vl as qwen_vl
    from . import _current, take_tiny_sizes
    take_tiny_sizes(qwen_vl, "Qwen2VLVisionTransformer", "_lockn_vid2",
                    lambda *a, **kw: (a, {**kw, **(_current("qwen25_visual") or {})}))


# Reason: comfy/sd.py (VAE.__init__, 0.20.1 ~528, 0.33 ~646) builds the HunyuanVideo 1.5 VAE with block_out_channels
# [128, 256, 512, 1024, 1024] and 2 res blocks whatever the weights say; the marker gives the tiny ones (the VAE
# patch in __init__.py makes the marker's spec current while the VAE is built).
def _vid2_hy15_vae():
    import comfy.ldm.hunyuan_video.vae_refiner as vr
    from . import _current, take_tiny_sizes

    def adjust(*a, **kw):
        over = _current("hy15_vae") if not kw.get("refiner_vae", True) else None
        return a, {**kw, **(over or {})}
    take_tiny_sizes(vr, "Encoder", "_lockn_vid2", adjust)
    take_tiny_sizes(vr, "Decoder", "_lockn_vid2", adjust)


def _vid2_install():
    _vid2_clip_vision()
    _vid2_diffusion_loader()
    _vid2_wan_clip_dim()
    _vid2_hy_byt5_mapper()
    _vid2_qwen25_visual()
    _vid2_hy15_vae()


# ---- Stable Audio Open 1.0 ---------------------------------------------------------------
# Reason: supported_models.StableAudio (unet_config {"audio_model": "dit1.0"}, model_detection.py ~116) gives the
# audio DiT no size, so comfy/ldm/audio/dit.py's defaults (1536 wide, 24 layers, text width 768) apply; the
# checkpoint's marker gives the tiny sizes. Its VAE part is split off by prefix (sd.py load_state_dict_guess_config,
# vae_key_prefix "pretransform.model."), so the marker is copied there for the Oobleck patch in __init__.py.
def _vid1_stable_audio():
    import comfy.sd
    import comfy.supported_models as sm
    from . import MARKER_KEY, _Active, _patch_spec

    orig = comfy.sd.load_state_dict_guess_config
    if getattr(orig, "_lockn_vid1", False):
        return

    @functools.wraps(orig)
    def load_state_dict_guess_config(sd, *a, **kw):
        spec = _patch_spec(sd)
        dit = spec.get("stable_audio_dit")
        if not dit:
            return orig(sd, *a, **kw)
        sd = dict(sd)
        sd[sm.StableAudio.vae_key_prefix[0] + MARKER_KEY] = sd.pop(MARKER_KEY)
        saved = sm.StableAudio.unet_extra_config
        sm.StableAudio.unet_extra_config = {**saved, **dit}
        try:
            with _Active(spec):
                return orig(sd, *a, **kw)
        finally:
            sm.StableAudio.unet_extra_config = saved

    load_state_dict_guess_config._lockn_vid1 = True
    comfy.sd.load_state_dict_guess_config = load_state_dict_guess_config


# Reason: comfy/model_base.py StableAudio1.__init__ (~line 779 in 0.20.1) builds the seconds_start/seconds_total
# conditioners as NumberConditioner(768): T5-base's width, not read from the weights.
def _vid1_number_conditioner():
    import comfy.ldm.audio.embedders as emb
    from . import _current, take_tiny_sizes
    take_tiny_sizes(emb, "NumberConditioner", "_lockn_vid1",
                    lambda output_dim, *a, **kw: ((_current("sa_number_dim") or output_dim, *a), kw))


def _vid1_install():
    _vid1_stable_audio()
    _vid1_number_conditioner()


# ---- SkyReels V1 I2V (HunyuanVideo 1.0 architecture) -------------------------------------------------------
class _sky_vec_in_detection:
    """Reason: comfy/model_detection.py (detect_unet_config, ~line 152-153 in 0.20.1 and 0.33) sets vec_in_dim = 768
    (CLIP-L's pooled width) whenever vector_in.* keys exist, not read from vector_in.in_layer.weight; for a tiny
    HunyuanVideo file it returns the marker's width instead, for the duration of the load."""

    def __init__(self, dim):
        self.dim = dim

    def __enter__(self):
        import comfy.model_detection as md
        self.orig = orig = md.detect_unet_config
        dim = self.dim

        @functools.wraps(orig)
        def detect_unet_config(state_dict, key_prefix, *a, **kw):
            cfg = orig(state_dict, key_prefix, *a, **kw)
            if dim and isinstance(cfg, dict) and cfg.get("image_model") == "hunyuan_video" and cfg.get("vec_in_dim") == 768:
                cfg["vec_in_dim"] = dim
            return cfg

        md.detect_unet_config = detect_unet_config

    def __exit__(self, *exc):
        import comfy.model_detection as md
        md.detect_unet_config = self.orig


def _sky_diffusion_loader():
    import comfy.sd
    from . import _Active, _patch_spec

    orig = comfy.sd.load_diffusion_model_state_dict
    if getattr(orig, "_lockn_sky", False):
        return

    @functools.wraps(orig)
    def load_diffusion_model_state_dict(sd, model_options={}, *a, **kw):
        spec = _patch_spec(sd)
        if "sky_vec_in_dim" not in spec:
            return orig(sd, model_options, *a, **kw)
        with _Active(spec), _sky_vec_in_detection(spec["sky_vec_in_dim"]):
            return orig(sd, model_options, *a, **kw)

    load_diffusion_model_state_dict._lockn_sky = True
    comfy.sd.load_diffusion_model_state_dict = load_diffusion_model_state_dict


# Reason: comfy/sd.py (VAE.__init__, 0.20.1 ~673, 0.33 ~788) builds the HunyuanVideo 1.0 VAE as AutoencoderKL with
# ch 128, ch_mult [1, 2, 4, 4] and 2 res blocks whatever the weights say; the marker gives the tiny ones (the VAE
# patch in __init__.py makes the marker's spec current while the VAE is built).
def _sky_hy_vae():
    import comfy.sd
    from . import _current, take_tiny_sizes

    def adjust(**kw):
        over = _current("sky_hy_vae")
        if over and kw.get("ddconfig", {}).get("conv3d"):
            kw = {**kw, "ddconfig": {**kw["ddconfig"], **over}}
        return (), kw
    take_tiny_sizes(comfy.sd, "AutoencoderKL", "_lockn_sky", adjust)


# Reason: comfy/text_encoders/hunyuan_video.py (LLAMA3Tokenizer, 0.20.1 and 0.33 ~line 28) reads ComfyUI's bundled
# Llama 3 tokenizer from comfy/text_encoders/llama_tokenizer/tokenizer.json, a 9 MB file the ComfyUI copies of the test
# machines lack (written out without the blobs of 4 MiB and more: ../shared/ENVIRONMENT.md); 0.33 stops there and
# 0.20.1's transformers builds a tokenizer without a vocabulary. While a tiny llava-llama3 file loads (its marker says
# llama_standin_tokenizer), a MISSING tokenizer.json is replaced by a stand-in: byte-level, every UTF-8 byte a token,
# with Llama 3's special tokens at their real ids (from the bundled tokenizer_config.json) and <|begin_of_text|> first.
# A ComfyUI that has the file uses it; real files never take this path.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                r"\s+(?!\S)|\s+")


def _standin_llama3_tokenizer(real_dir: str) -> str:
    import hashlib
    import json
    import os
    import shutil
    import tempfile

    from tokenizers import pre_tokenizers
    cfg_path = os.path.join(real_dir, "tokenizer_config.json")
    with open(cfg_path, "rb") as f:
        raw = f.read()
    out = os.path.join(tempfile.gettempdir(), "lockn-llama3-standin-" + hashlib.sha256(b"3" + raw).hexdigest()[:12])
    if os.path.isfile(os.path.join(out, "tokenizer.json")):
        return out
    cfg = json.loads(raw)
    bos = cfg.get("bos_token") or "<|begin_of_text|>"
    added = [{"id": int(i), "content": t["content"], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, t in sorted(cfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))]
    bos_id = next(t["id"] for t in added if t["content"] == bos)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    # Llama 3's own pre-tokenizer: its split pattern, then bytes (0.33's own BPE reader, bpe_tokenizer.py, needs it)
    split = {"type": "Split", "behavior": "Isolated", "invert": False, "pattern": {"Regex": LLAMA3_SPLIT}}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, byte_level]}, "decoder": byte_level,
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": {**{ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))},
                               **{t["content"]: t["id"] for t in added}},   # (else transformers renumbers them)
                     "merges": []}}
    tmp = f"{out}.partial-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    shutil.copy(cfg_path, os.path.join(tmp, "tokenizer_config.json"))
    try:
        os.replace(tmp, out)
    except OSError:                 # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _sky_llama_tokenizer():
    import os

    import comfy.text_encoders.hunyuan_video as hv
    from . import _current

    Orig = hv.LlamaTokenizerFast
    if getattr(Orig, "_lockn_sky", False):
        return

    class LlamaTokenizerFast(Orig):
        _lockn_sky = True

        @classmethod
        def from_pretrained(cls, path, *a, **kw):
            if _current("llama_standin_tokenizer") and not os.path.isfile(os.path.join(str(path), "tokenizer.json")):
                path = _standin_llama3_tokenizer(str(path))
            return Orig.from_pretrained(path, *a, **kw)

    LlamaTokenizerFast.__name__ = LlamaTokenizerFast.__qualname__ = Orig.__name__
    hv.LlamaTokenizerFast = LlamaTokenizerFast


def _sky_install():
    _sky_diffusion_loader()
    _sky_hy_vae()
    _sky_llama_tokenizer()


def install():
    _vid2_install()
    _vid1_install()
    _sky_install()
