"""Test-only ComfyUI patches for LockN Gen's tiny random-weight models.

Loaded as a custom-node folder ONLY in test and demo processes (the test server's extra custom
nodes, the in-process harness, the demo). Product code never depends on it.

ComfyUI 0.20.1 hard-codes the sizes of some components (text encoders, two VAEs, two fields of
the ACE-Step 1.5 DiT) instead of reading them from the weights. Tiny files therefore carry a marker
tensor (``lockn_tiny_marker``: UTF-8 JSON as uint8 bytes, written by lockn_testing.tiny) that says
which sizes to use. Every patch below is keyed on that marker: a load whose state dict has no marker
runs ComfyUI's code unchanged, so real files never take a patched path.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging

import torch

MARKER_KEY = "lockn_tiny_marker"
NODE_CLASS_MAPPINGS: dict = {}          # a custom-node folder must define this (no nodes here)
_active: list[dict] = []                # patch specs of the tiny load in progress (a stack)


def read_marker(sd) -> dict | None:
    """The tiny factory's marker in a state dict (safetensors uint8 or GGUF float), else None."""
    if not isinstance(sd, dict) or MARKER_KEY not in sd:
        return None
    t = sd[MARKER_KEY]
    raw = bytes(torch.as_tensor(t).detach().float().round().to(torch.uint8).flatten().tolist())
    return json.loads(raw.decode("utf-8"))


def _patch_spec(*state_dicts) -> dict:
    spec: dict = {}
    for sd in state_dicts:
        m = read_marker(sd)
        if m:
            for k, v in m.get("patch", {}).items():
                spec[k] = {**spec[k], **v} if isinstance(v, dict) and isinstance(spec.get(k), dict) else v
    return spec


class _Active:
    """Makes a tiny file's patch spec visible to the factories below for the duration of a load."""

    def __init__(self, spec):
        self.spec = spec

    def __enter__(self):
        _active.append(self.spec)

    def __exit__(self, *exc):
        _active.pop()


def _current(key):
    return _active[-1].get(key) if _active else None


def take_tiny_sizes(module, name: str, tag: str, adjust) -> None:
    """Replace `module.<name>`, a ComfyUI class whose constructor is handed full-size widths whatever the weights say,
    by a subclass that passes its arguments through `adjust(*args, **kwargs) -> (args, kwargs)` first: the tiny
    marker's sizes (read with _current) while a marked file loads, else the arguments unchanged. ComfyUI builds it
    by the module's name, so the subclass is found there; `tag` marks it, so a second install changes nothing."""
    Orig = getattr(module, name)
    if getattr(Orig, tag, False):
        return

    class Tiny(Orig):
        def __init__(self, *a, **kw):
            a, kw = adjust(*a, **kw)
            super().__init__(*a, **kw)

    setattr(Tiny, tag, True)
    Tiny.__name__ = Tiny.__qualname__ = Orig.__name__
    setattr(module, name, Tiny)


# ---- 1. text encoders: detection and config --------------------------------------------------------
# Reason: detect_te_model picks the class by exact full-size widths (sd.py ~1282), and the only config
# hook, model_options["<name>_model_config"] (sd1_clip.py ~105), is never set by CLIPLoader.
def _patch_text_encoders():
    import comfy.sd

    orig_detect = comfy.sd.detect_te_model
    orig_load = comfy.sd.load_text_encoder_state_dicts

    @functools.wraps(orig_detect)
    def detect_te_model(sd):
        m = read_marker(sd)
        te = (m or {}).get("patch", {}).get("te_model")
        return comfy.sd.TEModel[te] if te else orig_detect(sd)

    @functools.wraps(orig_load)
    def load_text_encoder_state_dicts(state_dicts=[], embedding_directory=None, clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION, model_options={}, **kw):
        spec = _patch_spec(*state_dicts)
        if not spec:
            return orig_load(state_dicts, embedding_directory=embedding_directory, clip_type=clip_type, model_options=model_options, **kw)
        mo = dict(model_options)
        for name, cfg in spec.get("model_config", {}).items():
            mo[f"{name}_model_config"] = cfg
        with _Active(spec):
            return orig_load(state_dicts, embedding_directory=embedding_directory, clip_type=clip_type, model_options=mo, **kw)

    comfy.sd.detect_te_model = detect_te_model
    comfy.sd.load_text_encoder_state_dicts = load_text_encoder_state_dicts


# ---- 2. Gemma 3 12B (LTX-2) and Qwen3 0.6B / 1.7B (ACE-Step 1.5) config classes ------------------------
# Reason: their dataclasses hard-code class attributes (head_dim, the SigLIP vision tower) that no
# config dict can change; the tiny file's marker names a smaller variant.
def _tiny_config_class(orig, fields: dict, attrs: dict):
    annotated = {f.name: f.type for f in dataclasses.fields(orig)}
    ns = {"__annotations__": {k: annotated[k] for k in fields if k in annotated}}
    ns.update({k: v for k, v in fields.items() if k in annotated})
    cls = dataclasses.dataclass(type("Tiny" + orig.__name__, (orig,), ns))
    for k, v in {**{k: v for k, v in fields.items() if k not in annotated}, **attrs}.items():
        setattr(cls, k, v)
    return cls


def _patch_config_classes():
    import comfy.text_encoders.llama as llama

    for name in ("Gemma3_12B_Config", "Qwen3_06B_ACE15_Config", "Qwen3_2B_ACE15_lm_Config"):
        orig = getattr(llama, name)

        def factory(*a, _orig=orig, _name=name, **kw):
            cfg = (_current("configs") or {}).get(_name)
            if not cfg:
                return _orig(*a, **kw)
            cls = _tiny_config_class(_orig, cfg.get("fields", {}), cfg.get("attrs", {}))
            kw = {k: v for k, v in kw.items() if k not in cfg.get("fields", {})}
            return cls(*a, **kw)

        factory.__wrapped__ = orig
        setattr(llama, name, factory)


# ---- 3. LTX-2 text projection ------------------------------------------------------------------------
# Reason: lt.py builds the Gemma->LTX projection as Linear(3840 * 49, 3840) regardless of the weights
# (0.20.1); later versions take the input width from the Gemma config but default the output widths.
def _patch_ltx_projection():
    import inspect

    import comfy.text_encoders.lt as lt

    Orig = lt.LTXAVTEModel
    sig = inspect.signature(Orig.__init__)
    sizes_from_args = "video_projection_dim" in sig.parameters   # ComfyUI 0.33+

    class LTXAVTEModel(Orig):
        def __init__(self, *args, **kwargs):
            proj = _current("ltx_projection")
            if not proj:
                return super().__init__(*args, **kwargs)
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            a = {k: v for k, v in bound.arguments.items() if k != "self"}
            dual = a["text_projection_type"] != "single_linear"
            if sizes_from_args:      # the input width follows the (patched) Gemma config; give the output widths
                a["video_projection_dim"] = proj["video_dim"] if dual else proj["out_dim"]
                if dual:
                    a["audio_projection_dim"] = proj["audio_dim"]
                return super().__init__(**a)
            dtype, dtype_llama, device = a["dtype"], a["dtype_llama"], a["device"]
            torch.nn.Module.__init__(self)
            self.dtypes = {dtype, dtype_llama}
            self.compat_mode = False
            self.text_projection_type = a["text_projection_type"]
            self.gemma3_12b = lt.Gemma3_12BModel(device=device, dtype=dtype_llama, model_options=a["model_options"], layer="all", layer_idx=None)
            ops = self.gemma3_12b.operations
            if not dual:
                self.text_embedding_projection = ops.Linear(proj["in_dim"], proj["out_dim"], bias=False, dtype=dtype, device=device)
            else:
                self.text_embedding_projection = lt.DualLinearProjection(proj["in_dim"], proj["video_dim"], proj["audio_dim"], dtype=dtype, device=device, operations=ops)

    lt.LTXAVTEModel = LTXAVTEModel


# ---- 4. ACE-Step 1.5 text encoder routing -------------------------------------------------------------
# Reason: ACE15TEModel.load_sd sends a file to the 0.6B encoder only if its width is exactly 1024.
def _patch_ace_routing():
    import comfy.text_encoders.ace15 as ace15

    orig = ace15.ACE15TEModel.load_sd

    @functools.wraps(orig)
    def load_sd(self, sd):
        hidden = _current("ace_te_hidden")
        w = sd.get("model.layers.0.post_attention_layernorm.weight")
        if hidden and w is not None and w.shape[0] == hidden:
            return self.qwen3_06b.load_sd(sd)
        return orig(self, sd)

    ace15.ACE15TEModel.load_sd = load_sd


# ---- 5. ACE-Step 1.5 DiT: fsq_dim and text_hidden_dim ------------------------------------------------
# Reason: supported_models.ACEStep15 fixes fsq_dim 2048 and text width 1024; model_detection infers
# neither, so the smallest unpatched DiT has 321M parameters.
def _patch_diffusion_loader():
    import comfy.sd
    import comfy.supported_models as sm

    orig = comfy.sd.load_diffusion_model_state_dict

    @functools.wraps(orig)
    def load_diffusion_model_state_dict(sd, model_options={}, *a, **kw):
        spec = _patch_spec(sd)
        if MARKER_KEY in sd:
            sd.pop(MARKER_KEY)
        extra = spec.get("ace_dit")
        if not extra:
            return orig(sd, model_options, *a, **kw)
        saved = sm.ACEStep15.unet_extra_config
        sm.ACEStep15.unet_extra_config = {**saved, **extra}
        try:
            return orig(sd, model_options, *a, **kw)
        finally:
            sm.ACEStep15.unet_extra_config = saved

    comfy.sd.load_diffusion_model_state_dict = load_diffusion_model_state_dict


# ---- 6. ACE-Step 1.5 VAE and Wan 2.2 VAE ---------------------------------------------------------------
# Reason: sd.py builds the Oobleck audio VAE with 128 channels (169M parameters) whatever the weights say.
def _patch_vae():
    import comfy.sd

    OrigOobleck = comfy.sd.AudioOobleckVAE

    def AudioOobleckVAE(**config):
        return OrigOobleck(**{**config, **(_current("oobleck") or {})})

    comfy.sd.AudioOobleckVAE = AudioOobleckVAE

    # Reason: sd.py builds the Wan 2.2 VAE (TI2V 5B) with dim 160 and decoder dim 256 (705M parameters)
    # whatever the weights say.
    import comfy.ldm.wan.vae2_2 as vae2_2
    OrigWan22VAE = vae2_2.WanVAE

    def WanVAE(**config):
        return OrigWan22VAE(**{**config, **(_current("wan22_vae") or {})})

    vae2_2.WanVAE = WanVAE
    orig_init = comfy.sd.VAE.__init__

    @functools.wraps(orig_init)
    def __init__(self, sd=None, *a, **kw):
        spec = _patch_spec(sd) if sd is not None else {}
        if sd is not None and MARKER_KEY in sd:
            sd = {k: v for k, v in sd.items() if k != MARKER_KEY}
        with _Active(spec):
            orig_init(self, sd, *a, **kw)

    comfy.sd.VAE.__init__ = __init__


def _patch_h264():
    """H.264 encoded the same way every run, in test and demo processes only (the one patch here not keyed on
    the tiny marker). ComfyUI's SaveVideo encodes with the libx264 that PyAV's wheel bundles, and on a CPU
    with AVX-512 its AVX-512 code encodes the B-frames of the SAME frames a little differently from run to
    run: seen on this 2-core AMD EPYC box (2026-12-06) with identical RGB and YUV frames going in, the MP4s
    of the tiny chains decoded up to 0.2 levels of 255 apart on average, and a 9-frame 64x64 LTX-2 clip 1.26
    apart (x264-params asm=AVX2: one result in six runs; asm=AVX512: two in five). x264's plain C code
    (asm=0) gives one result everywhere, so the tests' comparisons (lockn_testing.media) see the frames
    ComfyUI made, not the encoder's noise. Users' files are ComfyUI's and x264's business: not patched."""
    try:
        from comfy_api.latest._input_impl import video_types
    except ImportError:
        logging.warning("LockN Gen test patches: comfy_api.latest._input_impl.video_types not found; H.264 "
                        "encoding left as it is (media comparisons may see libx264's run-to-run noise)")
        return
    import av
    if isinstance(video_types.av, _AVForTests):
        return

    class _Container:
        def __init__(self, c):
            self._c = c

        def __getattr__(self, name):
            return getattr(self._c, name)

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, *exc):
            return self._c.__exit__(*exc)

        def add_stream(self, *a, **kw):
            stream = self._c.add_stream(*a, **kw)
            if stream.type == "video" and stream.codec_context.name in ("libx264", "h264"):
                stream.codec_context.options = {**stream.codec_context.options, "x264-params": "asm=0"}
            return stream

    def open_(*a, **kw):
        c = av.open(*a, **kw)
        return _Container(c) if kw.get("mode", a[1] if len(a) > 1 else "r") == "w" else c

    video_types.av = _AVForTests(av, open_)


def _patch_ltx_decode_noise():
    """LTX video decoded the same way every run, in test and demo processes only (not keyed on the marker either).
    ComfyUI's LTX video VAE adds noise as it decodes (timestep conditioning: torch.randn_like at
    decode_noise_scale, and the decoder's spatial noise), drawn from torch's global generator without a seed of
    its own ("#TODO: seed" in comfy/ldm/lightricks/vae/causal_video_autoencoder.py, 0.20.1 and 0.33). So the
    same latents decode a little differently whenever something else drew from that generator since the
    sampler seeded it: seen in CI on 0.33 (2026-12-07), an LTX-2 clip whose soundtrack was identical decoded
    2.07 levels of 255 apart on a 9-frame 64x64 clip. Here each decode draws from a generator seeded with 0, in
    a fork, so the global state is left as it was. Users' decodes are ComfyUI's business: not patched."""
    try:
        from comfy.ldm.lightricks.vae import causal_video_autoencoder as cva
        cls = cva.VideoVAE
    except (ImportError, AttributeError):
        logging.warning("LockN Gen test patches: ComfyUI's LTX VideoVAE not found; its decode noise left unseeded")
        return
    if getattr(cls.decode, "_lockn_seeded", False):
        return
    orig = cls.decode

    @functools.wraps(orig)
    def decode(self, x, *a, **kw):
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            return orig(self, x, *a, **kw)
    decode._lockn_seeded = True
    cls.decode = decode


class _AVForTests:
    """The `av` module as ComfyUI's video_types sees it in test processes: av itself, but `open` for writing
    gives containers whose H.264 streams use x264's C code (_patch_h264)."""

    def __init__(self, av, open_):
        self._av, self.open = av, open_

    def __getattr__(self, name):
        return getattr(self._av, name)


def _route_malloc_trim():
    """POST /lockn-test/malloc-trim: glibc's malloc_trim(0), which hands every wholly free page of the heaps back
    to the kernel, then the process's resident memory. The memory soak reads RSS through it, so RSS follows
    what is alive rather than the heaps' high-water marks (tests/test_memory_flat.py). Servers only."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is None:
        return
    import ctypes

    libc = ctypes.CDLL(None)

    @PromptServer.instance.routes.post("/lockn-test/malloc-trim")
    async def malloc_trim(request):
        libc.malloc_trim(0)
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        return web.json_response({"rss": rss})


def install():
    import comfy.sd

    if getattr(comfy.sd, "_lockn_tiny_patches", False):
        return
    _patch_text_encoders()
    _patch_config_classes()
    _patch_ltx_projection()
    _patch_ace_routing()
    _patch_diffusion_loader()
    _patch_vae()
    _patch_h264()
    _patch_ltx_decode_noise()
    _route_malloc_trim()
    from . import images, video           # issue 24's families (each patch keyed on the tiny marker)
    images.install()
    video.install()
    comfy.sd._lockn_tiny_patches = True
    logging.info("LockN Gen test patches installed (active only for files with the tiny-model marker; H.264 with "
                 "x264's C code; LTX video decode noise seeded; POST /lockn-test/malloc-trim on servers)")


install()
