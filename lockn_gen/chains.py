"""The shipped workflows, defined once here and written to workflows/ in API and UI format.

    python -m lockn_gen.chains [--out workflows]                 # API + UI, from the pinned /object_info
    python -m lockn_gen.chains --pin --server http://127.0.0.1:8188   # re-capture the pin (a 0.20.1 server)

Settings are the official templates' (../shared/MODELS.md); everything a user would change sits in
a node with a clear title (prompts, seeds, sizes, lengths, fps, steps, presets), which is also what
`lockn-gen run --set TITLE.INPUT=VALUE` addresses. The API format needs nothing else: it stays flat.

The UI files read like the official templates (lockn_gen/workflow_ui.py): each stage (Image: Flux.2,
Video: Wan2.2 or LTX-2, Music: ACE-Step 1.5, Assemble: the music fitted to the clip and one MP4) is one
subgraph on the top level, beside the Start image, the Brief, the Save node and Markdown notes written
from the catalog (model files with sizes and links, the pull command, what to change first, time and
memory). The pieces below tag their nodes with ``g.stage`` and name what a stage shows on its face with
``g.face``; both live beside the prompt in the Graph, never in it. On a UI file `--set` reaches a
promoted widget by the stage's title and the face's name (``--set "Video.length=49"``) and, as on the
API file, by the inner node's title (``--set "Length (frames).value=49"``, what lockn_gen.demo_sets uses).

Each of the Image (Flux.2) and Video (Wan2.2, LTX-2) stages has a ``turbo`` switch on its face (off, as in
the templates): a PrimitiveBoolean driving lazy ComfySwitchNodes between the base path and the templates'
fast path (a LoRA and fewer steps; for LTX-2 a half-size first stage and the x2 upscaler). The two chains
are also written as apps (NAME.app.json: the same graph with extra.linearMode/linearData, so the editor's
App Mode shows a form; see APPS below).

The UI format needs an /object_info to lay out sockets and widgets, and that differs between ComfyUI
versions (0.33's SaveImage has an output, its SaveVideo a dynamic ``format`` combo). The shipped UI
files are generated against ONE pinned capture, ``lockn_gen/pinned_object_info.json`` (inside the package:
``lockn-gen run --print-api`` converts with it when no server is given):
``GET /object_info`` of ComfyUI ``PIN_COMFYUI`` (the oldest supported version; newer editors open
older files, the way they open the official templates) with LockN Gen, trimmed to the node classes
the workflows use. So the files are the same whichever ComfyUI generated them; the tests check them
against the pin (in sync) and against the running server (every node, socket, link and widget
exists there, and the file converts to a prompt that validates). ``--pin --server URL`` refreshes
the pin from a running server of that version (needed when a workflow starts using another node
class or a node's inputs change).
"""
from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

from . import catalog as catalog_mod
from . import step_cache

if __name__ == "__main__":     # python -m lockn_gen.chains: run the package's module (family_workflows imports it)
    import sys

    from lockn_gen import chains as _package_module
    sys.exit(_package_module.main())

P = "(preset)"
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
                "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
IMAGE_PROMPT = ("A lighthouse keeper's cat on a windowsill at dawn, warm light, film photography, shallow depth of field")
VIDEO_PROMPT = ("The cat turns its head towards the sea as the light slowly rises; gentle camera push-in, "
                "soft waves in the background.")
MUSIC_TAGS = "Lo-fi, warm, acoustic guitar, soft piano, slow tempo, calm morning by the sea"
LYRICS = "[Instrumental]"
BRIEF = "a lighthouse keeper's cat at dawn, lo-fi, calm"


class Graph:
    """An API-format prompt under construction: add(class, title, **inputs) -> node id.

    Beside the prompt (``nodes``, exactly what the API file holds) it keeps what only the UI file uses:
    ``stages``, node id -> the stage it belongs to (set with ``with g.stage(...)``; nodes outside any
    stage stay on the top level), ``stage_names``, a stage's title -> its subgraph's name, and
    ``faces``, (node id, input name or output index) -> the name it has on its stage's face (a
    promoted widget, or a socket when a link feeds it from outside the stage)."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.stages: dict[str, str] = {}
        self.stage_names: dict[str, str] = {}
        self.faces: dict[tuple[str, str | int], str] = {}
        self.alternatives: set[str] = set()     # loaders of a stage's other models (run only when chosen)
        self._stage: str | None = None

    def add(self, class_type: str, title: str | None = None, **inputs) -> str:
        nid = str(len(self.nodes) + 1)
        node = {"class_type": class_type, "inputs": inputs}
        if title:
            node["_meta"] = {"title": title}
        self.nodes[nid] = node
        if self._stage:
            self.stages[nid] = self._stage
        return nid

    @contextmanager
    def stage(self, title: str, name: str | None = None):
        """Nodes added inside belong to the stage ``title`` (its subgraph is called ``name``)."""
        self.stage_names[title] = name or title
        self._stage, outer = title, self._stage
        try:
            yield
        finally:
            self._stage = outer

    def face(self, nid: str, key: str | int, name: str) -> None:
        """Show input ``key`` (or output index ``key``) of node ``nid`` on its stage's face as ``name``."""
        self.faces[(nid, key)] = name


def _loader(g: Graph, family: str, preset: str, title: str) -> str:
    fam = catalog_mod.builtin().families[family]
    return g.add(fam.node, title, preset=preset, **{r: P for r in fam.inputs}, weight_dtype="default")


def _step_cache(g: Graph, stage: str, turbo: int) -> tuple[int, int, callable]:
    """The stage's "cache steps" switch and threshold (face: cache_steps, cache_threshold), and a function
    that puts a LockN Step Cache node (core's EasyCache; off: the model passes through) on a model link."""
    on = g.add("PrimitiveBoolean", f"{stage} cache steps (EasyCache)", value=False)
    thr = g.add("PrimitiveFloat", f"{stage} cache threshold", value=step_cache.THRESHOLD_DEFAULT)

    def cache(model, which=""):
        return g.add("LockNStepCache", f"{stage} step cache{which}", model=model, cache_steps=[on, 0],
                     reuse_threshold=[thr, 0], start_percent=step_cache.START_PERCENT,
                     end_percent=step_cache.END_PERCENT, turbo=[turbo, 0])
    return on, thr, cache


# ---- the pieces, shared by the single-family workflows and the chains -----------------------------
# Each piece names what a user changes (g.face): on the UI file's stage subgraph those become the
# widgets on its face (or its sockets, where a link from another stage feeds them).
def flux2_image(g: Graph, preset="flux2-dev-q5_k_m", width=1024, height=1024, steps=20, seed=1027111520328378,
                prompt=IMAGE_PROMPT, batch=1, turbo_steps=8, turbo_lora="Flux2TurboComfyv2.safetensors"):
    """Flux.2 text to image; `batch` images in one run (the face's "batch", 1-6 is sensible).

    The face's "turbo" (off by default, as in the official templates image_flux2*.json, "Enable Turbo
    LoRA"): the Flux.2 Turbo LoRA (Comfy-Org's Flux2TurboComfyv2, strength 1) on the model and 8 steps
    instead of the face's "steps"; guidance 4 and euler stay. Switches (lazy) choose the model and the
    sigmas, so with turbo off the LoRA is never read and the image is what it was without the switch.
    The LoRA is made for Flux.2 dev (the dev presets); the klein presets are step-distilled already."""
    m = _loader(g, "flux2", preset, "Image models")
    w = g.add("PrimitiveInt", "Image width", value=width)
    h = g.add("PrimitiveInt", "Image height", value=height)
    text = g.add("CLIPTextEncode", "Image prompt", text=prompt, clip=[m, 1])
    guid = g.add("FluxGuidance", "Image guidance", conditioning=[text, 0], guidance=4.0)
    turbo = g.add("PrimitiveBoolean", "Image turbo (8-step LoRA, dev presets)", value=False)
    lora = g.add("LockNFlux2LoRA", "Image turbo LoRA", model=[m, 0], lora_1=turbo_lora, strength_1=1.0,
                 lora_2="None", strength_2=1.0, lora_3="None", strength_3=1.0)
    model = g.add("ComfySwitchNode", "Image turbo: model", switch=[turbo, 0], on_false=[m, 0], on_true=[lora, 0])
    cache_on, cache_thr, cache = _step_cache(g, "Image", turbo)
    guider = g.add("BasicGuider", None, model=[cache([model, 0]), 0], conditioning=[guid, 0])
    latent = g.add("EmptyFlux2LatentImage", "Image batch", width=[w, 0], height=[h, 0], batch_size=batch)
    sched = g.add("Flux2Scheduler", "Image steps", steps=steps, width=[w, 0], height=[h, 0])
    # the template switches the scheduler's steps (20 / 8); two schedulers and a switch on their sigmas do
    # the same and keep "Image steps.steps" (--set, the face's "steps") where it was
    turbo_sched = g.add("Flux2Scheduler", "Image turbo steps", steps=turbo_steps, width=[w, 0], height=[h, 0])
    sigmas = g.add("ComfySwitchNode", "Image turbo: steps", switch=[turbo, 0], on_false=[sched, 0],
                   on_true=[turbo_sched, 0])
    sampler = g.add("KSamplerSelect", None, sampler_name="euler")
    noise = g.add("RandomNoise", "Image seed", noise_seed=seed)
    out = g.add("SamplerCustomAdvanced", None, noise=[noise, 0], guider=[guider, 0], sampler=[sampler, 0],
                sigmas=[sigmas, 0], latent_image=[latent, 0])
    image = g.add("VAEDecode", None, samples=[out, 0], vae=[m, 2])
    for nid, key, name in ((text, "text", "prompt"), (w, "value", "width"), (h, "value", "height"),
                           (sched, "steps", "steps"), (turbo, "value", "turbo"), (cache_on, "value", "cache_steps"),
                           (cache_thr, "value", "cache_threshold"), (noise, "noise_seed", "seed"),
                           (m, "preset", "preset"), (latent, "batch_size", "batch"), (image, 0, "image")):
        g.face(nid, key, name)
    return image


def wan22_video(g: Graph, image, preset="wan22-i2v-a14b-q4_k_m", width=640, height=640, length=81, fps=16.0,
                steps=20, split=10, cfg=3.5, seed=264244520398999, prompt=VIDEO_PROMPT,
                turbo_steps=4, turbo_split=2, turbo_cfg=1.0,
                turbo_loras=("wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                             "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors")):
    """Wan2.2 image to video, two experts. The face's "turbo" (off by default, as the official template
    video_wan2_2_14B_i2v.json, "Enable 4steps LoRA?"): lightx2v's 4-step LoRA pair (its high-noise file on
    the high-noise expert, its low-noise file on the low, strength 1), 4 steps, 2 of them on the high-noise
    expert, cfg 1, instead of the face's steps / high_noise_steps and 3.5. Switches (lazy) choose the
    models, steps, split and cfg, as the template's do. The pair is made for the I2V A14B presets."""
    m = _loader(g, "wan22", preset, "Video models")
    n_len = g.add("PrimitiveInt", "Length (frames)", value=length)
    n_fps = g.add("PrimitiveFloat", "FPS", value=fps)
    n_steps = g.add("PrimitiveInt", "Video steps", value=steps)
    n_split = g.add("PrimitiveInt", "Video high-noise steps", value=split)
    n_cfg = g.add("PrimitiveFloat", "Video CFG", value=cfg)
    turbo = g.add("PrimitiveBoolean", "Video turbo (4-step LoRA, I2V A14B presets)", value=False)
    lora = g.add("LockNWan22LoRA", "Video turbo LoRA (lightx2v 4-step pair)", high_noise_model=[m, 0],
                 low_noise_model=[m, 1], high_lora_1=turbo_loras[0], high_strength_1=1.0, high_lora_2="None",
                 high_strength_2=1.0, high_lora_3="None", high_strength_3=1.0, low_lora_1=turbo_loras[1],
                 low_strength_1=1.0, low_lora_2="None", low_strength_2=1.0, low_lora_3="None", low_strength_3=1.0)
    t_steps = g.add("PrimitiveInt", "Video turbo steps", value=turbo_steps)
    t_split = g.add("PrimitiveInt", "Video turbo high-noise steps", value=turbo_split)
    t_cfg = g.add("PrimitiveFloat", "Video turbo CFG", value=turbo_cfg)
    pick = {}
    for key, title, off, on in (("high", "high-noise model", [m, 0], [lora, 0]), ("low", "low-noise model", [m, 1], [lora, 1]),
                                ("steps", "steps", [n_steps, 0], [t_steps, 0]),
                                ("split", "high-noise steps", [n_split, 0], [t_split, 0]),
                                ("cfg", "CFG", [n_cfg, 0], [t_cfg, 0])):
        pick[key] = [g.add("ComfySwitchNode", f"Video turbo: {title}", switch=[turbo, 0], on_false=off, on_true=on), 0]
    hi = g.add("ModelSamplingSD3", None, model=pick["high"], shift=5.0)
    lo = g.add("ModelSamplingSD3", None, model=pick["low"], shift=5.0)
    # one cache per expert: each sampler runs its own segment of the schedule with its own cache state
    cache_on, cache_thr, cache = _step_cache(g, "Video", turbo)
    hi, lo = cache([hi, 0], " (high-noise expert)"), cache([lo, 0], " (low-noise expert)")
    pos = g.add("CLIPTextEncode", "Video prompt", text=prompt, clip=[m, 2])
    neg = g.add("CLIPTextEncode", "Video negative prompt", text=WAN_NEGATIVE, clip=[m, 2])
    i2v = g.add("WanImageToVideo", "Video size", positive=[pos, 0], negative=[neg, 0], vae=[m, 3], width=width,
                height=height, length=[n_len, 0], batch_size=1, start_image=image)
    s1 = g.add("KSamplerAdvanced", "Video seed", model=[hi, 0], add_noise="enable", noise_seed=seed, steps=pick["steps"],
               cfg=pick["cfg"], sampler_name="euler", scheduler="simple", positive=[i2v, 0], negative=[i2v, 1],
               latent_image=[i2v, 2], start_at_step=0, end_at_step=pick["split"], return_with_leftover_noise="enable")
    s2 = g.add("KSamplerAdvanced", None, model=[lo, 0], add_noise="disable", noise_seed=0, steps=pick["steps"],
               cfg=pick["cfg"], sampler_name="euler", scheduler="simple", positive=[i2v, 0], negative=[i2v, 1],
               latent_image=[s1, 0], start_at_step=pick["split"], end_at_step=10000, return_with_leftover_noise="disable")
    frames = g.add("VAEDecode", None, samples=[s2, 0], vae=[m, 3])
    for nid, key, name in ((i2v, "start_image", "start_image"), (pos, "text", "prompt"), (i2v, "width", "width"),
                           (i2v, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                           (n_steps, "value", "steps"), (n_split, "value", "high_noise_steps"), (turbo, "value", "turbo"),
                           (cache_on, "value", "cache_steps"), (cache_thr, "value", "cache_threshold"),
                           (s1, "noise_seed", "seed"), (m, "preset", "preset"), (frames, 0, "frames"),
                           (n_fps, 0, "fps")):
        g.face(nid, key, name)
    return frames, n_len, n_fps


LTX_PRESET = "ltx23-22b-distilled-fp8"      # the fast chain's and the LTX workflow's video stage: LTX-2.3 22B
LTX2_19B_LORA = "ltx-2-19b-distilled-lora-384.safetensors"
LTX2_19B_UPSCALER = "ltx-2-spatial-upscaler-x2-1.0.safetensors"


def ltx_recipe(preset: str) -> dict:
    """What the LTX stage takes from the preset: the turbo LoRA (dev presets: the distilled LoRA the
    official templates use with that model; distilled presets: None) and its strength, the x2 upscaler
    of the model's latent space, the second stage's sigmas and sampler, the first stage's image strength.
    LTX-2.3 (video_ltx2_3_i2v.json): LoRA 1.1 at 0.5, upscaler 1.1, sigmas 0.85/0.725/0.4219/0 with
    euler, start image at 0.7 in the first stage. LTX-2 19B (video_ltx2_i2v*.json): LoRA 384 at 1,
    upscaler 1.0, 0.909375/0.725/0.421875/0 with gradient_estimation, image at 1."""
    cat = catalog_mod.builtin()
    p = cat.presets[preset]
    st = p.settings(cat)
    dev = "-dev" in preset
    return {"turbo_lora": st.get("turbo_lora", LTX2_19B_LORA) if dev else "None",
            "turbo_lora_strength": float(st.get("turbo_lora_strength", 1.0)),
            "upscaler": p.optional.get("upscaler", LTX2_19B_UPSCALER),
            "refine_sigmas": st.get("refine_sigmas", "0.909375, 0.725, 0.421875, 0.0"),
            "refine_sampler": st.get("refine_sampler", "gradient_estimation"),
            "image_strength": float(st.get("first_stage_image_strength", 1.0))}


def ltx2_video(g: Graph, image, preset=LTX_PRESET, width=768, height=512, length=121, fps=25.0,
               seed=10, sigmas="1., 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0",
               prompt=VIDEO_PROMPT, models=None):
    """LTX-2 image to video with its own audio: the distilled template's first stage (cfg 1, 8 sigmas).
    `models`: the id of an LTX-2 loader already in the graph. Built for LTX-2.3 22B by default (the
    official LTX-2.3 template's model generation); the LTX-2 19B presets work the same way, with
    their own LoRA, upscaler and refine settings (``ltx_recipe``, chosen from the preset the workflow
    is built with).

    The face's "turbo" (off by default) adds the official templates' second stage (video_ltx2_3_i2v.json,
    video_ltx2_i2v.json, video_ltx2_i2v_distilled.json): the first stage runs at half the width and
    height, the x2 spatial upscaler of the model's latent space (LTXVLatentUpsampler; from
    models/latent_upscale_models) doubles its video latent, the start image goes in again, and 3 sigmas
    refine video and audio at cfg 1 with noise seed 0. Width and height: multiples of 64 then (the
    half-size latent is rounded). The distilled LoRA makes a dev model sample like the distilled one,
    so under turbo it patches the model of both stages on the dev presets (ltx23-22b-dev-fp8 with turbo
    on is the LTX-2.3 template's own path); a distilled preset is distilled already and gets None
    ("turbo_lora" on the face)."""
    m = models or _loader(g, "ltx2", preset, "Video models")
    rec = ltx_recipe(g.nodes[m]["inputs"]["preset"])
    n_len = g.add("PrimitiveInt", "Length (frames)", value=length)
    n_fps = g.add("PrimitiveFloat", "FPS", value=fps)
    pos = g.add("CLIPTextEncode", "Video prompt", text=prompt, clip=[m, 1])
    neg = g.add("CLIPTextEncode", "Video negative prompt",
                text="blurry, low quality, still frame, frames, watermark, overlay, titles, has blurbox, has subtitles", clip=[m, 1])
    cond = g.add("LTXVConditioning", None, positive=[pos, 0], negative=[neg, 0], frame_rate=[n_fps, 0])
    vlat = g.add("EmptyLTXVLatentVideo", "Video size", width=width, height=height, length=[n_len, 0], batch_size=1)
    turbo = g.add("PrimitiveBoolean", "Video turbo (half size + x2 upscaler)", value=False)
    lora = g.add("LockNLTX2LoRA", "Video turbo LoRA (dev presets: the distilled LoRA; distilled presets: None)",
                 model=[m, 0], lora_1=rec["turbo_lora"], strength_1=rec["turbo_lora_strength"], lora_2="None", strength_2=1.0,
                 lora_3="None", strength_3=1.0)
    model = g.add("ComfySwitchNode", "Video turbo: model", switch=[turbo, 0], on_false=[m, 0], on_true=[lora, 0])
    half = g.add("LatentUpscaleBy", "Video turbo: first stage at half size", samples=[vlat, 0],
                 upscale_method="nearest-exact", scale_by=0.5)
    lat1 = g.add("ComfySwitchNode", "Video turbo: first-stage size", switch=[turbo, 0], on_false=[vlat, 0],
                 on_true=[half, 0])
    pre = g.add("LTXVPreprocess", None, image=image, img_compression=33)
    inplace = g.add("LTXVImgToVideoInplace", None, vae=[m, 2], image=[pre, 0], latent=[lat1, 0],
                    strength=rec["image_strength"], bypass=False)
    fps_int = g.add("ComfyMathExpression", None, expression="round(a)", **{"values.a": [n_fps, 0]})
    alat = g.add("LTXVEmptyLatentAudio", None, frames_number=[n_len, 0], frame_rate=[fps_int, 1], batch_size=1, audio_vae=[m, 3])
    av = g.add("LTXVConcatAVLatent", None, video_latent=[inplace, 0], audio_latent=[alat, 0])
    sig = g.add("ManualSigmas", "Video sigmas", sigmas=sigmas)
    sampler = g.add("KSamplerSelect", None, sampler_name="euler")
    noise = g.add("RandomNoise", "Video seed", noise_seed=seed)
    cache_on, cache_thr, cache = _step_cache(g, "Video", turbo)       # both passes: one cache node each
    guider = g.add("CFGGuider", "Video CFG", model=[cache([model, 0]), 0], positive=[cond, 0], negative=[cond, 1],
                   cfg=1.0)
    out = g.add("SamplerCustomAdvanced", None, noise=[noise, 0], guider=[guider, 0], sampler=[sampler, 0],
                sigmas=[sig, 0], latent_image=[av, 0])
    # the second stage (turbo only), as the templates' nodes 80-84, 108, 66-73 and 105
    sep1 = g.add("LTXVSeparateAVLatent", None, av_latent=[out, 0])
    crop = g.add("LTXVCropGuides", None, positive=[cond, 0], negative=[cond, 1], latent=[sep1, 0])
    up_model = g.add("LockNLatentUpscaleModelLoader", "Video turbo upscaler", model_name=rec["upscaler"])
    up = g.add("LTXVLatentUpsampler", "Video turbo: x2 upscale", samples=[crop, 2], upscale_model=[up_model, 0], vae=[m, 2])
    inplace2 = g.add("LTXVImgToVideoInplace", None, vae=[m, 2], image=[pre, 0], latent=[up, 0], strength=1.0, bypass=False)
    av2 = g.add("LTXVConcatAVLatent", None, video_latent=[inplace2, 0], audio_latent=[sep1, 1])
    sig2 = g.add("ManualSigmas", "Video turbo refine sigmas", sigmas=rec["refine_sigmas"])
    sampler2 = g.add("KSamplerSelect", None, sampler_name=rec["refine_sampler"])
    noise2 = g.add("RandomNoise", "Video turbo refine seed", noise_seed=0)
    guider2 = g.add("CFGGuider", None, model=[cache([lora, 0], " (turbo refine pass)"), 0], positive=[crop, 0],
                    negative=[crop, 1], cfg=1.0)
    out2 = g.add("SamplerCustomAdvanced", None, noise=[noise2, 0], guider=[guider2, 0], sampler=[sampler2, 0],
                 sigmas=[sig2, 0], latent_image=[av2, 0])
    final = g.add("ComfySwitchNode", "Video turbo: result", switch=[turbo, 0], on_false=[out, 0], on_true=[out2, 1])
    sep = g.add("LTXVSeparateAVLatent", None, av_latent=[final, 0])
    frames = g.add("VAEDecode", None, samples=[sep, 0], vae=[m, 2])
    audio = g.add("LTXVAudioVAEDecode", None, samples=[sep, 1], audio_vae=[m, 3])
    for nid, key, name in ((pre, "image", "start_image"), (pos, "text", "prompt"), (vlat, "width", "width"),
                           (vlat, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                           (sig, "sigmas", "sigmas"), (turbo, "value", "turbo"), (lora, "lora_1", "turbo_lora"),
                           (cache_on, "value", "cache_steps"), (cache_thr, "value", "cache_threshold"),
                           (noise, "noise_seed", "seed"), (m, "preset", "preset"), (frames, 0, "frames"),
                           (audio, 0, "audio"), (n_fps, 0, "fps")):
        g.face(nid, key, name)
    return frames, audio, n_len, n_fps


def ace15_music(g: Graph, seconds, preset="ace15-turbo", seed=31, bpm=190, keyscale="E minor", steps=8, brief=None,
                candidates=None):
    """`seconds`: a number, or a link to the clip's duration. `brief`: a Brief node's id, whose outputs
    then give the tags, lyrics, bpm, key, time signature and language. `candidates`: songs made in one run
    (ACE-Step 1.5 takes up to 8), shown on the face; None keeps one and no such widget (the chains fit
    one song to the clip)."""
    m = _loader(g, "ace15", preset, "Music models")
    ms = g.add("ModelSamplingAuraFlow", None, model=[m, 0], shift=3.0)
    words = dict(tags=MUSIC_TAGS, lyrics=LYRICS, bpm=bpm, timesignature="4", language="en", keyscale=keyscale)
    if brief is not None:
        words = {k: [brief, BRIEF_OUT[k]] for k in words}
    enc = g.add("TextEncodeAceStepAudio1.5", "Music (tags, lyrics, bpm, key)", clip=[m, 1], tags=words["tags"],
                lyrics=words["lyrics"], seed=seed, bpm=words["bpm"], duration=seconds,
                timesignature=words["timesignature"], language=words["language"], keyscale=words["keyscale"],
                generate_audio_codes=True, cfg_scale=2.0, temperature=0.85, top_p=0.9, top_k=0, min_p=0.0)
    neg = g.add("ConditioningZeroOut", None, conditioning=[enc, 0])
    lat = g.add("EmptyAceStep1.5LatentAudio", "Music candidates" if candidates else None, seconds=seconds,
                batch_size=candidates or 1)
    if candidates:
        g.face(lat, "batch_size", "candidates")
    ks = g.add("KSampler", "Music seed and steps", model=[ms, 0], seed=seed, steps=steps, cfg=1.0, sampler_name="euler",
               scheduler="simple", positive=[enc, 0], negative=[neg, 0], latent_image=[lat, 0], denoise=1.0)
    audio = g.add("VAEDecodeAudio", None, samples=[ks, 0], vae=[m, 2])
    for key in ("tags", "lyrics", "bpm", "keyscale", "timesignature", "language", "duration"):
        g.face(enc, key, key)
    for nid, key, name in ((ks, "seed", "seed"), (ks, "steps", "steps"), (m, "preset", "preset"), (audio, 0, "music")):
        g.face(nid, key, name)
    return audio


BRIEF_OUT = {"image_prompt": 0, "tags": 1, "lyrics": 2, "bpm": 3, "keyscale": 4, "timesignature": 5, "language": 6,
             "brief": 7, "report": 8}


def brief(g: Graph, backend: str, fallback: str, clip=None) -> str:
    """The chain's Brief node: one line that writes the image prompt and the music's words. Its own
    fields hold the chain's hand-written prompts, used as they are when source is 'my prompts'."""
    inputs = dict(text=BRIEF, source="the brief", backend=backend, fallback=fallback, seed=0, image_prompt=IMAGE_PROMPT,
                  tags=MUSIC_TAGS, lyrics=LYRICS, bpm=190, keyscale="E minor", timesignature="4", language="en",
                  server_url="", model="", timeout_s=60.0, max_tokens=512)
    if clip is not None:
        inputs["clip"] = clip
    return g.add("LockNBrief", "Brief", **inputs)


def motion(g: Graph, b: str, image, style: str) -> str:
    mot = g.add("LockNMotionPrompt", "Motion prompt", brief=[b, BRIEF_OUT["brief"]], image=image, style=style,
                own_prompt=VIDEO_PROMPT)
    g.face(mot, "image", "start_image")
    return mot


def _clip_seconds(g: Graph, n_len, n_fps) -> str:
    secs = g.add("ComfyMathExpression", "Clip duration (s)", expression="a / b",
                 **{"values.a": [n_len, 0], "values.b": [n_fps, 0]})
    g.face(secs, 0, "duration")
    return secs


# ---- the workflows: each stage is one subgraph in the UI file ---------------------------------------------
IMAGE, VIDEO, MUSIC, ASSEMBLE = "Image", "Video", "Music", "Assemble"
FLUX2, WAN22, LTX2, ACE15 = "Image (Flux.2)", "Video (Wan2.2)", "Video (LTX-2)", "Music (ACE-Step 1.5)"
ASSEMBLE_NAME = "Assemble (music fitted to the clip, one MP4)"


def flux2_text_to_image() -> Graph:
    g = Graph()
    with g.stage(IMAGE, FLUX2):
        img = flux2_image(g)
    g.add("SaveImage", "Save image", images=[img, 0], filename_prefix="LockN/flux2")
    return g


def wan22_image_to_video() -> Graph:
    g = Graph()
    start = g.add("LoadImage", "Start image", image="lockn_start.png")
    with g.stage(VIDEO, WAN22):
        frames, _, n_fps = wan22_video(g, [start, 0])
        vid = g.add("CreateVideo", None, images=[frames, 0], fps=[n_fps, 0])
    g.add("SaveVideo", "Save MP4", video=[vid, 0], filename_prefix="LockN/wan22", format="mp4", codec="h264")
    return g


def ltx2_image_to_video() -> Graph:
    g = Graph()
    start = g.add("LoadImage", "Start image", image="lockn_start.png")
    with g.stage(VIDEO, LTX2):
        frames, audio, _, n_fps = ltx2_video(g, [start, 0])
        vid = g.add("CreateVideo", None, images=[frames, 0], audio=[audio, 0], fps=[n_fps, 0])
    g.add("SaveVideo", "Save MP4", video=[vid, 0], filename_prefix="LockN/ltx2", format="mp4", codec="h264")
    return g


def ace15_text_to_music() -> Graph:
    g = Graph()
    with g.stage(MUSIC, ACE15):
        dur = g.add("PrimitiveFloat", "Duration (s)", value=120.0)
        g.face(dur, "value", "duration")
        audio = ace15_music(g, [dur, 0], candidates=2)
    g.add("SaveAudioMP3", "Save MP3", audio=[audio, 0], filename_prefix="LockN/ace15", quality="V0")
    return g


def _pick(g: Graph, images: str) -> str:
    """The image of the batch that goes on to the video (the Image stage's face: "pick", 0 = the first)."""
    chosen = g.add("ImageFromBatch", "Image pick", image=[images, 0], batch_index=0, length=1)
    g.face(chosen, "batch_index", "pick")
    g.face(images, 0, "images")
    g.face(chosen, 0, "image")
    return chosen


def _assemble_faces(g: Graph, fit: str) -> None:
    for key, name in (("audio", "music"), ("images", "frames"), ("fps", "fps"), ("fade_out_seconds", "fade_out_seconds")):
        g.face(fit, key, name)


def _image_stage(g: Graph, b: str) -> str:
    """The chains' Image stage: Flux.2 from the Brief's image prompt, the picked image of the batch (its id),
    and the batch's candidates previewed on the top level."""
    model = FW.choice(g, "image", "Image model")
    with g.stage(IMAGE, FLUX2):
        batch = flux2_image(g, prompt=[b, BRIEF_OUT["image_prompt"]])
        batch = FW.image_alternatives(g, model, batch, [b, BRIEF_OUT["image_prompt"]])
        img = _pick(g, batch)
    g.add("PreviewImage", "Image candidates", images=[batch, 0])
    return img


def _music_stage(g: Graph, b: str, secs: str) -> str:
    """The chains' Music stage: ACE-Step 1.5 from the Brief's words, Stable Audio Open from its tags, or HeartMuLa
    from its tags and lyrics."""
    model = FW.choice(g, "music", "Music model")
    with g.stage(MUSIC, ACE15):
        music = ace15_music(g, [secs, 0], brief=b)
        return FW.music_alternative(g, model, music, [secs, 0], b)


def chain_quality() -> Graph:
    """Flux.2 image -> Wan2.2 A14B video -> ACE-Step music as long as the clip, faded out, one MP4.
    One Brief writes the prompts: none of this stack's text encoders can generate text in ComfyUI, so it
    asks the workstation's LLM server (LOCKN_BRIEF_URL) and, without one, the rules."""
    g = Graph()
    b = brief(g, backend="server", fallback="rules")
    img = _image_stage(g, b)
    vmodel = FW.choice(g, "quality_video", "Video model")
    with g.stage(VIDEO, WAN22):
        mot = motion(g, b, [img, 0], "wan22")
        frames, n_len, n_fps = wan22_video(g, [img, 0], prompt=[mot, 0])
        frames = FW.video_alternative(g, vmodel, "hunyuan15", frames, [img, 0], [mot, 0], n_len, n_fps)
        secs = _clip_seconds(g, n_len, n_fps)
    music = _music_stage(g, b, secs)
    with g.stage(ASSEMBLE, ASSEMBLE_NAME):
        fit = g.add("LockNFitAudioToVideo", "Music fade-out", audio=[music, 0], images=[frames, 0], fps=[n_fps, 0],
                    fade_out_seconds=1.5)
        vid = g.add("CreateVideo", None, images=[frames, 0], audio=[fit, 0], fps=[n_fps, 0])
        _assemble_faces(g, fit)
    g.add("SaveVideo", "Save MP4", video=[vid, 0], filename_prefix="LockN/chain_quality", format="mp4", codec="h264")
    return g


def chain_fast() -> Graph:
    """Flux.2 image -> LTX-2 video with its own audio -> ACE-Step music, replacing or mixed with
    LTX-2's audio, one MP4. One Brief writes the prompts with LTX-2's own Gemma 3 (loaded for the video
    anyway, and it reads the picture for the motion). The LTX-2 loader stays on the top level: it
    feeds the Brief and the video stage."""
    g = Graph()
    ltx = _loader(g, "ltx2", LTX_PRESET, "Video models")
    b = brief(g, backend="resident", fallback="rules", clip=[ltx, 1])
    img = _image_stage(g, b)
    vmodel = FW.choice(g, "fast_video", "Video model")
    with g.stage(VIDEO, LTX2):
        mot = motion(g, b, [img, 0], "ltx2")
        frames, ltx_audio, n_len, n_fps = ltx2_video(g, [img, 0], prompt=[mot, 0], models=ltx)
        frames = FW.video_alternative(g, vmodel, "ltxv", frames, [img, 0], [mot, 0], n_len, n_fps)
        secs = _clip_seconds(g, n_len, n_fps)
    music = _music_stage(g, b, secs)
    with g.stage(ASSEMBLE, ASSEMBLE_NAME):
        mix = g.add("PrimitiveBoolean", "Mix LTX-2 audio under the music", value=False)
        vol = g.add("AudioAdjustVolume", "LTX-2 audio level (dB)", audio=[ltx_audio, 0], volume=-6)
        merged = g.add("AudioMerge", None, audio1=[music, 0], audio2=[vol, 0], merge_method="add")
        choice = g.add("ComfySwitchNode", None, switch=[mix, 0], on_false=[music, 0], on_true=[merged, 0])
        fit = g.add("LockNFitAudioToVideo", "Music fade-out", audio=[choice, 0], images=[frames, 0], fps=[n_fps, 0],
                    fade_out_seconds=1.0)
        vid = g.add("CreateVideo", None, images=[frames, 0], audio=[fit, 0], fps=[n_fps, 0])
        for nid, key, name in ((vol, "audio", "ltx2_audio"), (merged, "audio1", "music"),
                               (mix, "value", "mix_ltx2_audio"), (vol, "volume", "ltx2_audio_db")):
            g.face(nid, key, name)
        _assemble_faces(g, fit)
    g.add("SaveVideo", "Save MP4", video=[vid, 0], filename_prefix="LockN/chain_fast", format="mp4", codec="h264")
    return g


WORKFLOWS = {
    "flux2_text_to_image": flux2_text_to_image,
    "wan22_image_to_video": wan22_image_to_video,
    "ltx2_image_to_video": ltx2_image_to_video,
    "ace15_text_to_music": ace15_text_to_music,
    "chain_quality": chain_quality,
    "chain_fast": chain_fast,
}
from . import training_workflows  # noqa: E402  (the LoRA training workflows, built from the pieces above)
from . import family_workflows as FW  # noqa: E402  (the other families' workflows and the stages' alternatives)

WORKFLOWS.update(training_workflows.WORKFLOWS)
WORKFLOWS.update(FW.WORKFLOWS)


def prompt(name: str) -> dict:
    """The API-format prompt of a shipped workflow (what workflows/api/NAME.json holds)."""
    return WORKFLOWS[name]().nodes


def editor_models(prompt: dict) -> dict[str, list]:
    """properties.models of each loader node: name, resolve URL, folder (and SHA-256 where known),
    so the editor's missing-models dialog offers the downloads."""
    cat = catalog_mod.load(include_env=False)
    out = {}
    for nid, n in prompt.items():
        if n["class_type"].startswith("LockN") and "preset" in n["inputs"]:
            out[nid] = cat.editor_models(n["inputs"]["preset"])
    return out


# ---- the notes beside the stages (MarkdownNote), written from the catalog so they never drift -------------
# Seconds on one H100, from public figures (../shared/MODELS.md): estimates until bench/RESULTS.md has our own.
TIME_ESTIMATES = {
    "flux2": "~20 s: 1024 x 1024, 20 steps (public: BF16 0.46 s/step; GGUF ~2x slower)",
    "wan22": "~4-5 min: 640 x 640 x 81, 20 steps (public: ~5 min at 480p, 30 steps)",
    "ltx2": "~20 s: LTX-2.3 22B, 768 x 512 x 121, 8 sigmas (scaled from LTX-2 19B's public 65 s at 40 steps)",
    "ace15": "< 10 s a song, 8 steps (official: < 2 s on an A100)",
}
MEASURED = ("Measured (bench/RESULTS.md, one H100, synthetic models of the real sizes, 13.8 GB swapped a cycle, "
            "1-2 steps on small latents): a warm image -> video -> music cycle takes **1.02 s** with LockN's loaders "
            "against 4.88 s with ComfyUI's core loaders; a GGUF loader call adds about 3 ms.")


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


MODES = ("image", "video", "music")


def _loaders(g: Graph) -> list[tuple[str, str, str]]:
    """(loader node id, its stage, preset) of every LockN loader of the workflow, image -> video -> music."""
    cat = catalog_mod.builtin()
    out = []
    for nid, n in g.nodes.items():
        if n["class_type"].startswith("LockN") and "preset" in n["inputs"] and nid not in g.alternatives:
            mode = cat.families[cat.preset(n["inputs"]["preset"]).family].mode
            out.append((MODES.index(mode), nid, mode.capitalize(), n["inputs"]["preset"]))
    return [x[1:] for x in sorted(out)]


def _files_note(g: Graph) -> str:
    """Every file of the workflow's presets, with its size and download link, and the command that pulls them."""
    cat = catalog_mod.builtin()
    loaders = _loaders(g)
    total = sum(f.size for f in {f.name: f for _, _, pid in loaders for f in cat.preset_files(pid).values()}.values())
    lines = ["## Model files", "", f"{_gb(total)} in all. One command downloads them into ComfyUI's model "
             "folders (resumable, size and SHA-256 checked):", "",
             f"    lockn-gen models pull {' '.join(pid for _, _, pid in loaders)}", "",
             "| stage, preset | file | folder | size |", "|---|---|---|---|"]
    for _, stage, pid in loaders:
        files = list({f.name: f for f in cat.preset_files(pid).values()}.values())
        for i, f in enumerate(files):
            link = f"[{f.name}]({f.url('https://huggingface.co')})" if f.repo else f.name
            head = f"**{stage}** `{pid}`" if i == 0 else ""
            lines.append(f"| {head} | {link} | {f.folder} | {'' if f.size_exact else '~'}{_gb(f.size)} |")
    turbo = _turbo_files(g)
    if turbo:
        lines += ["", "Only for a stage's *turbo* switch (off by default; nothing is read while it is off):", "",
                  f"    lockn-gen models pull {' '.join('--file ' + f.name for _, f in turbo)}", "",
                  "| stage | file | folder | size |", "|---|---|---|---|"]
        for stage, f in turbo:
            link = f"[{f.name}]({f.url('https://huggingface.co')})" if f.repo else f.name
            lines.append(f"| **{stage}** turbo | {link} | {f.folder} | {'' if f.size_exact else '~'}{_gb(f.size)} |")
    alts = [(g.stages.get(nid, ""), g.nodes[nid]["inputs"]["preset"]) for nid in sorted(g.alternatives, key=int)]
    if alts:
        lines += ["", "Only when chosen: another model on a stage's model node, or a switch such as super_resolution "
                  "(nothing of it is read otherwise):", "",
                  f"    lockn-gen models pull {' '.join(pid for _, pid in alts)}", "",
                  "| stage, preset | file | folder | size |", "|---|---|---|---|"]
        for stage, pid in alts:
            for i, f in enumerate({f.name: f for f in cat.preset_files(pid).values()}.values()):
                link = f"[{f.name}]({f.url('https://huggingface.co')})" if f.repo else f.name
                head = f"**{stage}** `{pid}`" if i == 0 else ""
                lines.append(f"| {head} | {link} | {f.folder} | {'' if f.size_exact else '~'}{_gb(f.size)} |")
    if any(n["class_type"] == "LockNHeartMuLa" for n in g.nodes.values()):
        from . import heartmula as hm
        gb = sum(hm.PARAMS.values()) * 4 / 1e9
        lines += ["", f"HeartMuLa on the Music stage (only when chosen): three whole repositories, ~{gb:.0f} GB, and a "
                  "Python of its own, made once by `LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh`:", "",
                  "    lockn-gen models pull heartmula-3b"]
    lines += ["", "~: the catalog's size, rounded. Other presets: `lockn-gen models list --family wan22` "
              "(flux2, ltx2, ace15, ...); choose one in the stage's *preset*."]
    return "\n".join(lines)


TURBO_FILE_INPUTS = ("lora_1", "lora_2", "lora_3", "high_lora_1", "high_lora_2", "high_lora_3", "low_lora_1",
                     "low_lora_2", "low_lora_3", "model_name")


def _turbo_files(g: Graph) -> list[tuple[str, object]]:
    """(stage, catalog file) of the files the turbo paths name (the LoRA nodes' LoRAs, the upscaler)."""
    cat = catalog_mod.builtin()
    out, seen = [], set()
    for nid, n in g.nodes.items():
        if not (n["class_type"].startswith("LockN") and (n["class_type"].endswith("LoRA")
                                                         or n["class_type"] == "LockNLatentUpscaleModelLoader")):
            continue
        for key in TURBO_FILE_INPUTS:
            name = n["inputs"].get(key)
            if isinstance(name, str) and name in cat.files and name not in seen:
                seen.add(name)
                out.append((g.stages.get(nid, ""), cat.files[name]))
    return out


def _face_values(g: Graph) -> dict[str, list[tuple[str, object]]]:
    """stage -> [(face name, value)] of the widgets shown on each stage's face."""
    out: dict[str, list] = {}
    for (nid, key), name in g.faces.items():
        stage = g.stages.get(nid)
        value = g.nodes[nid]["inputs"].get(key) if isinstance(key, str) else None
        if stage and value is not None and not isinstance(value, list):
            out.setdefault(stage, []).append((name, value))
    return out


TEXT_FACES = ("prompt", "tags", "lyrics")


def _first_changes(g: Graph, faces: dict) -> list[str]:
    titles = {(n.get("_meta") or {}).get("title") for n in g.nodes.values()}
    first = []
    if "Brief" in titles:
        first.append("**Brief**: one line: what it shows, how it moves, how it sounds. It writes the image prompt, "
                     "the motion and the music's words (its *source* \"my prompts\" uses its own fields instead).")
    if "Start image" in titles:
        first.append("**Start image**: your picture.")
    for st, v in faces.items():
        d = dict(v)
        texts = [k for k in TEXT_FACES if k in d]
        if texts:
            first.append(f"**{st}**: the {' and the '.join(texts)}.")
        if "width" in d:
            first.append(f"**{st}** size: width {d['width']} x height {d['height']}.")
        if "length" in d:
            follows = " The music follows the clip." if MUSIC in faces else ""
            first.append(f"**{st}** length: {d['length']} frames at {d['fps']:g} fps = "
                         f"{d['length'] / d['fps']:.1f} s.{follows}")
        elif "duration" in d:
            first.append(f"**{st}** duration: {d['duration']:g} s.")
    return first


def _example_sets(g: Graph, faces: dict) -> list[str]:
    sets = []
    if any((n.get("_meta") or {}).get("title") == "Brief" for n in g.nodes.values()):
        sets.append('--set "Brief.text=a red fox in deep snow, jazz piano"')
    for st, v in faces.items():
        d = dict(v)
        if "prompt" in d or "tags" in d:
            sets.append(f'--set "{st}.{"prompt" if "prompt" in d else "tags"}=a red fox in deep snow"')
        if "length" in d:
            sets.append(f'--set "{st}.length=49"')
        elif "duration" in d:
            sets.append(f'--set "{st}.duration=30"')
    return sets[:2]


def _start_note(name: str, g: Graph) -> str:
    faces = _face_values(g)
    lines = ["## Start here", "", "Change these first, then **Run** (the file lands in ComfyUI's output/LockN/):", ""]
    lines += [f"- {x}" for x in _first_changes(g, faces)]
    lines += ["", "Each stage is a subgraph: its face holds these settings; double-click it to see every node.", "",
              "| stage | on its face |", "|---|---|"]
    for st, v in faces.items():
        shown = ", ".join(k if k in TEXT_FACES else f"{k} {str(val)[:24]}" for k, val in v)
        lines.append(f"| {st} | {shown} |")
    lines += ["", "From a terminal (`--set STAGE.SETTING=VALUE`):", "", f"    lockn-gen run workflows/{name}.json \\"]
    sets = _example_sets(g, faces)
    lines += [f"        {x}" + (" \\" if i < len(sets) - 1 else "") for i, x in enumerate(sets)]
    return "\n".join(lines)


def _time_note(g: Graph) -> str:
    cat = catalog_mod.builtin()
    lines = ["## Time and memory", "", "| stage | model files | GPU memory (estimate) | time on one H100 (estimate) |",
             "|---|---|---|---|"]
    for _, stage, pid in _loaders(g):
        family = cat.preset(pid).family
        size = cat.preset_bytes(pid)
        lines.append(f"| {stage} | {_gb(size)} | ~{size * 1.2 / 1e9:.0f} GB | {TIME_ESTIMATES.get(family) or FW.TIME_ESTIMATES[family]} |")
    lines += ["", "GPU memory: the files plus ~20 % for activations (estimate). LockN's loaders keep the stage that "
              "runs on the GPU and park the others in RAM, so the peak is the largest stage, not the sum.", "",
              MEASURED, "", _cache_note(g)]
    return "\n".join(lines)


def _cache_note(g: Graph) -> str:
    """What the stages' "cache steps" switch does, and why the music stage has none."""
    modes = {stage for _, stage, _ in _loaders(g)}
    cached = [m for m in ("Image", "Video") if m in modes]
    text = ("**Cache steps** (off by default) on the " + " and ".join(cached) + (" stages" if len(cached) > 1 else " stage")
            + ": ComfyUI's own EasyCache reuses a step whose result barely changes instead of running the "
              "model. Faster at 20+ steps, slightly different output; *cache_threshold* (0.2) trades speed for "
              "closeness. Each sampler's skipped steps are in the log, the residency report and the client's "
              "progress. Little to skip on a turbo path (Wan2.2 turbo refuses it). Measured: bench/RESULTS.md.")
    if "Music" in modes:
        text += " The Music stage has no such switch: " + step_cache.CANNOT_CACHE["ace15"]
    return text if modes & {"Image", "Video"} else "No step cache here: " + step_cache.CANNOT_CACHE["ace15"]


def notes(name: str, g: Graph) -> list[tuple[str, str]]:
    """(title, markdown) of the notes beside a workflow's stages."""
    if name in training_workflows.WORKFLOWS:
        return training_workflows.notes(name, g)
    if name in FW.NOTES:
        return FW.NOTES[name](g)
    return [("Start here", _start_note(name, g)), ("Model files", _files_note(g)),
            ("Time and memory", _time_note(g))]


REPO = Path(__file__).resolve().parents[1]
PINNED_OBJECT_INFO = Path(__file__).resolve().parent / "pinned_object_info.json"    # package data (pyproject)
PIN_COMFYUI = "0.20.1"


def node_classes() -> set[str]:
    """Every node class the shipped workflows use."""
    return {n["class_type"] for make in WORKFLOWS.values() for n in make().nodes.values()}


def pinned_object_info() -> dict:
    """The /object_info the shipped UI files are generated against (see the module docstring)."""
    return json.loads(PINNED_OBJECT_INFO.read_text())


def trim_object_info(object_info: dict) -> dict:
    """The entries of the workflows' node classes (what the pin keeps); ValueError names any the
    server lacks."""
    missing = sorted(node_classes() - set(object_info))
    if missing:
        raise ValueError(f"the server does not have these node classes of the workflows: {missing}")
    return {c: object_info[c] for c in sorted(node_classes())}


# ---- the apps: a chain as a form (the editor's App Mode, ComfyUI frontend 1.43 and later) ---------------
# A UI file whose extra.linearMode is true opens as a form with the graph hidden (the editor's toolbar
# switches back to the graph). extra.linearData = {"inputs": [[node id, widget name], ...], "outputs":
# [node id, ...]}: the form's fields, in order, and the nodes whose files it shows. A promoted widget on a
# stage's face is listed by its INNER node's id and widget name (the proxyWidgets entry), as the 1.43
# editor stores it and the official templates ship it (template_qwen_image_illustration_lora.json);
# 1.49 turns such entries into its own widget ids when it loads the file. Ids are strings, as there.
# The files are named NAME.app.json, as the editor saves apps (its Apps tab lists those); the API file
# of an app is its chain's (workflows/api/CHAIN.json).
APPS = {"chain_quality.app": "chain_quality", "chain_fast.app": "chain_fast"}
# the form's fields, in order: (stage title, name on its face, or top-level node title, input name) ->
# the field's label. The form shows a widget's label (its input's, on a face the subgraph input's), which
# the app's file sets; the chains' own files keep the plain names.
_APP_COMMON = {("Brief", "text"): "brief",
               ("Video", "width"): "video width", ("Video", "height"): "video height",
               ("Video", "length"): "length (frames)", ("Video", "fps"): "frames per second",
               ("Image", "seed"): "image seed", ("Video", "seed"): "video seed", ("Music", "seed"): "music seed"}
_APP_CACHE = {("Image", "cache_steps"): "image step cache", ("Video", "cache_steps"): "video step cache"}
APP_FIELDS = {"chain_quality.app": {**_APP_COMMON, ("Image", "turbo"): "image turbo (8-step LoRA)",
                                    ("Video", "turbo"): "video turbo (4-step LoRAs)", **_APP_CACHE},
              "chain_fast.app": {**_APP_COMMON, ("Image", "turbo"): "image turbo (8-step LoRA)",
                                 ("Video", "turbo"): "video turbo (half size, x2 upscaler)", **_APP_CACHE,
                                 ("Assemble", "mix_ltx2_audio"): "mix LTX-2's audio under the music"}}
APP_OUTPUTS = ("SaveVideo",)                   # the form shows the MP4
UI_NAMES = [*WORKFLOWS, *APPS]                 # every UI file of workflows/ (NAME.json)


def chain_of(name: str) -> str:
    """The workflow whose graph (and API file) a UI file holds: an app's chain, else the name itself."""
    return APPS.get(name, name)


def app_form(name: str, g: Graph) -> dict:
    """extra.linearData of app ``name`` on its chain's graph ``g``; ValueError names a field that is not a
    widget there (a face renamed, or fed by a link)."""
    faces = {(g.stages[nid], face): (nid, key) for (nid, key), face in g.faces.items()
             if isinstance(key, str) and nid in g.stages}
    top = {(n.get("_meta") or {}).get("title"): nid for nid, n in g.nodes.items() if nid not in g.stages}
    inputs = []
    for where, field in APP_FIELDS[name]:
        nid, key = faces.get((where, field)) or (top.get(where), field)
        value = g.nodes[nid]["inputs"].get(key) if nid else None
        if value is None or isinstance(value, list):
            raise ValueError(f"{name}: {where}.{field} is no widget on a stage's face or a top-level node")
        inputs.append([nid, key])
    outputs = [nid for nid, n in g.nodes.items() if n["class_type"] in APP_OUTPUTS and nid not in g.stages]
    if not outputs:
        raise ValueError(f"{name}: no top-level {' or '.join(APP_OUTPUTS)} node to show")
    return {"inputs": inputs, "outputs": outputs}


def ui_workflow(name: str, object_info: dict) -> dict:
    """The UI file of a shipped workflow (or of an app, APPS): one subgraph per stage, the notes beside them."""
    from .workflow_ui import api_to_ui
    g = WORKFLOWS[chain_of(name)]()
    ui = api_to_ui(g.nodes, object_info, models=editor_models(g.nodes), name=name, stages=g.stages,
                   stage_names=g.stage_names, faces=g.faces, notes=notes(name, g))
    if name in APPS:
        ui["extra"].update(linearMode=True, linearData=app_form(name, g))
        _label_app_fields(ui, name, g, object_info)
    return ui


def _label_app_fields(ui: dict, name: str, g: Graph, object_info: dict) -> None:
    """Give each field of the app its label: on the stage's face (the instance's input and its subgraph's
    input), or on the top-level node's widget input (added when the file lists none for it)."""
    from .workflow import input_spec, spec_type
    defs = {sg["id"]: sg for sg in ui["definitions"]["subgraphs"]}
    top = {str(n["id"]): n for n in ui["nodes"]}
    for (where, field), label in APP_FIELDS[name].items():
        inst = next((n for n in ui["nodes"] if n["type"] in defs and n.get("title") == where), None)
        if inst is not None:
            slots = [i for i in inst["inputs"] if i["name"] == field] + \
                    [i for i in defs[inst["type"]]["inputs"] if i["name"] == field]
        else:
            nid = next(k for k, n in g.nodes.items() if k not in g.stages and (n.get("_meta") or {}).get("title") == where)
            node = top[nid]
            slots = [i for i in node["inputs"] if i["name"] == field]
            if not slots:
                spec = input_spec(object_info[node["type"]], field, g.nodes[nid]["inputs"])
                slots = [{"localized_name": field, "name": field, "type": spec_type(spec), "widget": {"name": field},
                          "link": None}]
                node["inputs"].append(slots[0])
        for slot in slots:
            slot["label"] = label


def write_all(out_dir: Path, object_info: dict | None) -> list[Path]:
    written = []
    (out_dir / "api").mkdir(parents=True, exist_ok=True)
    for name in WORKFLOWS:
        p = out_dir / "api" / f"{name}.json"
        p.write_text(json.dumps(prompt(name), indent=1, ensure_ascii=False) + "\n")
        written.append(p)
        if object_info is not None:
            p = out_dir / f"{name}.json"
            p.write_text(json.dumps(ui_workflow(name, object_info), indent=1, ensure_ascii=False) + "\n")
            written.append(p)
    for name in APPS if object_info is not None else ():     # an app's API file is its chain's
        p = out_dir / f"{name}.json"
        p.write_text(json.dumps(ui_workflow(name, object_info), indent=1, ensure_ascii=False) + "\n")
        written.append(p)
    return written


def _get(server: str, path: str):
    import urllib.request
    with urllib.request.urlopen(server.rstrip("/") + path, timeout=60) as r:
        return json.load(r)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="a running ComfyUI with LockN Gen: use its /object_info (with --pin: store it)")
    ap.add_argument("--object-info", help="or a saved /object_info JSON file")
    ap.add_argument("--pin", action="store_true",
                    help=f"store the server's /object_info (trimmed) as the pin, {PINNED_OBJECT_INFO.relative_to(REPO)}; "
                         f"the server must run ComfyUI {PIN_COMFYUI}")
    ap.add_argument("--out", default=str(REPO / "workflows"))
    a = ap.parse_args(argv)
    if a.server:
        info = _get(a.server, "/object_info")
    elif a.object_info:
        info = json.loads(Path(a.object_info).read_text())
    else:
        info = pinned_object_info() if PINNED_OBJECT_INFO.is_file() else None
    if a.pin:
        if not a.server:
            ap.error("--pin needs --server")
        version = (_get(a.server, "/system_stats").get("system") or {}).get("comfyui_version")
        if version != PIN_COMFYUI:
            ap.error(f"the pin is taken from ComfyUI {PIN_COMFYUI}; {a.server} runs {version} "
                     "(change PIN_COMFYUI in lockn_gen/chains.py to move the pin)")
        info = trim_object_info(info)
        PINNED_OBJECT_INFO.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
        print(PINNED_OBJECT_INFO)
    elif info is not None and (a.server or a.object_info):
        print("note: UI files from an /object_info other than the pin; the sync test compares them with the pin")
    for p in write_all(Path(a.out), info):
        print(p)
