"""The workflows of the families added to the first four (issue 24), and the chains' stage alternatives.

Each family has one workflow (workflows/NAME.json, API and UI), built like the official ComfyUI template of
that model (the template's nodes and settings; the loader is the family's LockN loader), as one stage
subgraph with its face, written with the chains' Graph (lockn_gen/chains.py). The same pieces give the
chains their alternatives: the Image stage runs Flux.2, Flux.1 or SD3.5, the quality chain's Video stage
Wan2.2 or HunyuanVideo 1.5, the fast chain's LTX-2 or LTX-Video, the Music stage ACE-Step 1.5 or Stable
Audio Open. The stage's face has a ``model`` choice (``--set "Image.model=flux1"``); LockN's pick nodes
(nodes/choice.py) are lazy, so only the chosen model's branch runs and only its files are read.

Plain Python: no ComfyUI import.
"""
from __future__ import annotations

from . import catalog as catalog_mod


class _Chains:
    """lockn_gen.chains, imported when first used: chains imports this module at its end (for WORKFLOWS), so this
    module must not need chains while it is being imported itself."""

    def __getattr__(self, name):
        from . import chains
        return getattr(chains, name)


C = _Chains()

# stage -> the families it can run, the first being the stage's default (its face's `model`)
STAGE_CHOICES = {
    "image": ("flux2", "flux1", "sd35"),
    "quality_video": ("wan22", "hunyuan15"),
    "fast_video": ("ltx2", "ltxv"),
    "music": ("ace15", "stable_audio", "heartmula"),
}
# the stages' models that are no catalog family (their own node, not a LockN loader), by the name users know
NOT_CATALOG = {"heartmula": "HeartMuLa"}
# mode -> every family a chain's stage of that mode can run (the Image/Video/Music Model nodes' options)
MODE_CHOICES = {mode: tuple(dict.fromkeys(f for k, fams in STAGE_CHOICES.items() if k.endswith(mode) for f in fams))
                for mode in ("image", "video", "music")}
CHOICE_NODES = {"image": "LockNImageModel", "quality_video": "LockNVideoModel", "fast_video": "LockNVideoModel",
                "music": "LockNMusicModel"}
MODE_OF_CHOICE = {"LockNImageModel": "image", "LockNVideoModel": "video", "LockNMusicModel": "music"}
SD3_NEGATIVE = ""
LTXV_NEGATIVE = ("low quality, worst quality, deformed, distorted, disfigured, motion smear, motion artifacts, "
                 "fused fingers, bad anatomy, weird hand, ugly")
SDXL_NEGATIVE = "text, watermark"


def settings(preset: str) -> dict:
    cat = catalog_mod.builtin()
    return cat.presets[preset].settings(cat)


def _faces(g, prefix: str, items) -> None:
    """Faces of a builder's nodes. An input fed by a link from inside its own stage (a setting the chain's stage
    shares between its models) is no face; a link from outside the stage is a socket on it."""
    for nid, key, name in items:
        link = g.nodes[nid]["inputs"].get(key) if isinstance(key, str) else None
        if isinstance(link, list) and g.stages.get(str(link[0])) == g.stages.get(nid) or (nid, key) in g.faces:
            continue            # (a shared node the stage's first model shows already)
        g.face(nid, key, f"{prefix}{name}")


# ---- image ------------------------------------------------------------------------------------------------
def flux1_image(g, preset="flux1-schnell", width=1024, height=1024, seed=0, prompt=None, batch=1, prefix="",
                title="Flux.1"):
    """Flux.1 text to image as the official templates flux_schnell_full_text_to_image.json (4 steps) and
    flux_dev_full_text_to_image.json (20 steps): UNETLoader + DualCLIPLoader (flux) + VAELoader, the prompt
    with its conditioning zeroed as the negative, EmptySD3LatentImage, KSampler cfg 1 euler/simple."""
    st, prompt = settings(preset), C.IMAGE_PROMPT if prompt is None else prompt
    m = C._loader(g, "flux1", preset, f"{title} models")
    text = g.add("CLIPTextEncode", f"{title} prompt", text=prompt, clip=[m, 1])
    neg = g.add("ConditioningZeroOut", None, conditioning=[text, 0])
    lat = g.add("EmptySD3LatentImage", f"{title} size", width=width, height=height, batch_size=batch)
    ks = g.add("KSampler", f"{title} seed and steps", model=[m, 0], seed=seed, steps=int(st["steps"]), cfg=float(st["cfg"]),
               sampler_name=st["sampler"], scheduler=st["scheduler"], positive=[text, 0], negative=[neg, 0],
               latent_image=[lat, 0], denoise=1.0)
    image = g.add("VAEDecode", None, samples=[ks, 0], vae=[m, 2])
    _faces(g, prefix, [(text, "text", "prompt"), (lat, "width", "width"), (lat, "height", "height"),
                       (lat, "batch_size", "batch"), (ks, "steps", "steps"), (ks, "seed", "seed"), (m, "preset", "preset"),
                       (image, 0, "image")])
    return image


def sd_image(g, family, preset, width=1024, height=1024, seed=0, prompt=None, batch=1, prefix="",
             title=None, negative=None):
    """SD3.5 (sd3.5_simple_example.json: one checkpoint with its text encoders, EmptySD3LatentImage, KSampler
    20 steps cfg 4.01 euler/sgm_uniform) and SDXL (sdxl_simple_example.json's base pass: EmptyLatentImage,
    KSampler 25 steps cfg 8 euler/normal; the template hands the last 5 steps to the refiner, which LockN
    leaves out: the base runs all 25)."""
    st, prompt = settings(preset), C.IMAGE_PROMPT if prompt is None else prompt
    title = title or catalog_mod.builtin().families[family].display_name
    m = C._loader(g, family, preset, f"{title} models")
    pos = g.add("CLIPTextEncode", f"{title} prompt", text=prompt, clip=[m, 1])
    neg = g.add("CLIPTextEncode", f"{title} negative prompt",
                text=negative if negative is not None else (SDXL_NEGATIVE if family == "sdxl" else SD3_NEGATIVE), clip=[m, 1])
    lat = g.add("EmptySD3LatentImage" if family == "sd35" else "EmptyLatentImage", f"{title} size", width=width,
                height=height, batch_size=batch)
    ks = g.add("KSampler", f"{title} seed and steps", model=[m, 0], seed=seed, steps=int(st["steps"]), cfg=float(st["cfg"]),
               sampler_name=st["sampler"], scheduler=st["scheduler"], positive=[pos, 0], negative=[neg, 0],
               latent_image=[lat, 0], denoise=1.0)
    image = g.add("VAEDecode", None, samples=[ks, 0], vae=[m, 2])
    _faces(g, prefix, [(pos, "text", "prompt"), (neg, "text", "negative_prompt"), (lat, "width", "width"),
                       (lat, "height", "height"), (lat, "batch_size", "batch"), (ks, "steps", "steps"), (ks, "seed", "seed"),
                       (m, "preset", "preset"), (image, 0, "image")])
    return image


# ---- video ------------------------------------------------------------------------------------------------
def _video_start(g, family, preset, title, prompt, negative, length, fps, n_len=None, n_fps=None):
    """What every video builder starts with: the family's LockN loader, the clip's length and frame rate (the
    chain's own when it passes them) and the prompt pair: (loader, length, fps, positive, negative) node ids."""
    m = C._loader(g, family, preset, f"{title} models")
    n_len = n_len or g.add("PrimitiveInt", f"{title} length (frames)", value=length)
    n_fps = n_fps or g.add("PrimitiveFloat", f"{title} FPS", value=fps)
    pos = g.add("CLIPTextEncode", f"{title} prompt", text=prompt, clip=[m, 1])
    neg = g.add("CLIPTextEncode", f"{title} negative prompt", text=negative, clip=[m, 1])
    return m, n_len, n_fps, pos, neg


def ltxv_video(g, image, preset="ltxv-2b-0.9.8-distilled-fp8", width=768, height=512, length=97, fps=24.0, seed=0,
               prompt=None, prefix="", title="LTX-Video", n_len=None, n_fps=None):
    """LTX-Video 0.9.x image to video as ltxv_image_to_video.json: CheckpointLoaderSimple (model + VAE) and
    CLIPLoader (t5xxl, ltxv), LTXVImgToVideo (strength 0.15), LTXVConditioning at the clip's frame rate,
    LTXVScheduler (30 steps, shift 2.05 / 0.95, stretched, terminal 0.1), SamplerCustom cfg 3, euler.
    The distilled 0.9.8 presets sample 8 steps at cfg 1 (their `defaults`)."""
    st, prompt = settings(preset), C.VIDEO_PROMPT if prompt is None else prompt
    m, n_len, n_fps, pos, neg = _video_start(g, "ltxv", preset, title, prompt, LTXV_NEGATIVE, length, fps, n_len, n_fps)
    i2v = g.add("LTXVImgToVideo", f"{title} size", positive=[pos, 0], negative=[neg, 0], vae=[m, 2], image=image,
                width=width, height=height, length=[n_len, 0], batch_size=1, strength=float(st["image_strength"]))
    cond = g.add("LTXVConditioning", None, positive=[i2v, 0], negative=[i2v, 1], frame_rate=[n_fps, 0])
    sched = g.add("LTXVScheduler", f"{title} steps", steps=int(st["steps"]), max_shift=float(st["max_shift"]),
                  base_shift=float(st["base_shift"]), stretch=True, terminal=float(st["terminal"]), latent=[i2v, 2])
    sampler = g.add("KSamplerSelect", None, sampler_name=st["sampler"])
    out = g.add("SamplerCustom", f"{title} seed", model=[m, 0], add_noise=True, noise_seed=seed, cfg=float(st["cfg"]),
                positive=[cond, 0], negative=[cond, 1], sampler=[sampler, 0], sigmas=[sched, 0], latent_image=[i2v, 2])
    frames = g.add("VAEDecode", None, samples=[out, 0], vae=[m, 2])
    _faces(g, prefix, [(i2v, "image", "start_image"), (pos, "text", "prompt"), (i2v, "width", "width"),
                       (i2v, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                       (sched, "steps", "steps"), (out, "noise_seed", "seed"), (m, "preset", "preset"),
                       (frames, 0, "frames"), (n_fps, 0, "fps")])
    return frames, n_len, n_fps


def _wan_sampling(g, title, m, st, seed, positive, negative, latent):
    """Wan2.1's sampling as its templates: ModelSamplingSD3 (shift), KSampler (steps, cfg, sampler, scheduler of the
    preset's settings), VAEDecode: (the KSampler, the decoded frames)."""
    ms = g.add("ModelSamplingSD3", None, model=[m, 0], shift=float(st["shift"]))
    ks = g.add("KSampler", f"{title} seed and steps", model=[ms, 0], seed=seed, steps=int(st["steps"]), cfg=float(st["cfg"]),
               sampler_name=st["sampler"], scheduler=st["scheduler"], positive=positive, negative=negative,
               latent_image=latent, denoise=1.0)
    return ks, g.add("VAEDecode", None, samples=[ks, 0], vae=[m, 2])


def wan21_video(g, image, preset="wan21-i2v-480p-q4_k_m", width=512, height=512, length=33, fps=16.0, seed=0,
                prompt=None, prefix="", title="Wan2.1", n_len=None, n_fps=None):
    """Wan2.1 I2V 14B as image_to_video_wan.json: UNETLoader, CLIPLoader (umt5, wan), VAELoader and
    CLIPVisionLoader (clip_vision_h); CLIPVisionEncode (crop none) of the start image into WanImageToVideo,
    ModelSamplingSD3 shift 8, KSampler 20 steps cfg 6 uni_pc/simple, 16 fps."""
    st, prompt = settings(preset), C.VIDEO_PROMPT if prompt is None else prompt
    m, n_len, n_fps, pos, neg = _video_start(g, "wan21", preset, title, prompt, C.WAN_NEGATIVE, length, fps, n_len, n_fps)
    cv = g.add("CLIPVisionEncode", None, clip_vision=[m, 3], image=image, crop="none")
    i2v = g.add("WanImageToVideo", f"{title} size", positive=[pos, 0], negative=[neg, 0], vae=[m, 2], width=width,
                height=height, length=[n_len, 0], batch_size=1, clip_vision_output=[cv, 0], start_image=image)
    ks, frames = _wan_sampling(g, title, m, st, seed, [i2v, 0], [i2v, 1], [i2v, 2])
    _faces(g, prefix, [(i2v, "start_image", "start_image"), (pos, "text", "prompt"), (i2v, "width", "width"),
                       (i2v, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                       (ks, "steps", "steps"), (ks, "seed", "seed"), (m, "preset", "preset"), (frames, 0, "frames"),
                       (n_fps, 0, "fps")])
    return frames, n_len, n_fps


# the official text_to_video_wan template's prompt (the chains' video prompt describes their start image)
T2V_PROMPT = "a fox moving quickly in a beautiful winter scenery nature trees mountains daytime tracking camera"


def wan21_t2v_video(g, preset="wan21-t2v-14b-q4_k_m", width=832, height=480, length=33, fps=16.0, seed=0, prompt=None,
                    prefix="", title="Wan2.1 T2V"):
    """Wan2.1 text to video as text_to_video_wan.json: UNETLoader, CLIPLoader (umt5, wan), VAELoader;
    EmptyHunyuanLatentVideo 832 x 480 x 33, ModelSamplingSD3 shift 8, KSampler 30 steps cfg 6 uni_pc/simple, 16 fps.
    No start image: the clip comes from the prompt alone."""
    st, prompt = settings(preset), T2V_PROMPT if prompt is None else prompt
    m, n_len, n_fps, pos, neg = _video_start(g, "wan21_t2v", preset, title, prompt, C.WAN_NEGATIVE, length, fps)
    lat = g.add("EmptyHunyuanLatentVideo", f"{title} size", width=width, height=height, length=[n_len, 0], batch_size=1)
    ks, frames = _wan_sampling(g, title, m, st, seed, [pos, 0], [neg, 0], [lat, 0])
    _faces(g, prefix, [(pos, "text", "prompt"), (lat, "width", "width"), (lat, "height", "height"),
                       (n_len, "value", "length"), (n_fps, "value", "fps"), (ks, "steps", "steps"), (ks, "seed", "seed"),
                       (m, "preset", "preset"), (frames, 0, "frames"), (n_fps, 0, "fps")])
    return frames, n_len, n_fps


SKYREELS_NEGATIVE = ("Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, "
                     "bad teeth, bad eyes, bad limbs, distortion")


def skyreels_video(g, image, preset="skyreels-i2v-q4_k_s", width=960, height=544, length=97, fps=24.0, seed=0,
                   prompt=None, prefix="", title="SkyReels", n_len=None, n_fps=None):
    """SkyReels V1 I2V (HunyuanVideo 1.0 architecture, 32 input channels) on ComfyUI's native HunyuanVideo nodes, as
    Kijai's native example runs it: UNETLoader/UnetLoaderGGUF, DualCLIPLoader (clip_l + llava-llama3, hunyuan_video),
    VAELoader; FluxGuidance 1.0 (the embedded guidance; SkyReels samples with real CFG), the start image's latent
    through InstructPixToPixConditioning (ComfyUI scales it to the video's latent and pads it with zeros after the
    first frame: model_base.concat_cond), EmptyHunyuanLatentVideo, ModelSamplingSD3 shift 7, KSampler 30 steps
    cfg 6 euler/simple, VAEDecodeTiled as HunyuanVideo's template, 24 fps; SkyReels' own negative prompt."""
    st, prompt = settings(preset), C.VIDEO_PROMPT if prompt is None else prompt
    m, n_len, n_fps, pos, neg = _video_start(g, "skyreels", preset, title, prompt, SKYREELS_NEGATIVE, length, fps,
                                             n_len, n_fps)
    gpos = g.add("FluxGuidance", None, conditioning=[pos, 0], guidance=float(st["guidance"]))
    gneg = g.add("FluxGuidance", None, conditioning=[neg, 0], guidance=float(st["guidance"]))
    ip2p = g.add("InstructPixToPixConditioning", f"{title} start image", positive=[gpos, 0], negative=[gneg, 0],
                 vae=[m, 2], pixels=image)
    lat = g.add("EmptyHunyuanLatentVideo", f"{title} size", width=width, height=height, length=[n_len, 0], batch_size=1)
    ms = g.add("ModelSamplingSD3", None, model=[m, 0], shift=float(st["shift"]))
    ks = g.add("KSampler", f"{title} seed and steps", model=[ms, 0], seed=seed, steps=int(st["steps"]), cfg=float(st["cfg"]),
               sampler_name=st["sampler"], scheduler=st["scheduler"], positive=[ip2p, 0], negative=[ip2p, 1],
               latent_image=[lat, 0], denoise=1.0)
    frames = g.add("VAEDecodeTiled", None, samples=[ks, 0], vae=[m, 2], tile_size=256, overlap=64, temporal_size=64,
                   temporal_overlap=8)
    _faces(g, prefix, [(ip2p, "pixels", "start_image"), (pos, "text", "prompt"), (lat, "width", "width"),
                       (lat, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                       (ks, "steps", "steps"), (ks, "seed", "seed"), (m, "preset", "preset"), (frames, 0, "frames"),
                       (n_fps, 0, "fps")])
    return frames, n_len, n_fps


def hunyuan15_video(g, image, preset="hunyuan15-720p-i2v", width=1280, height=720, length=121, fps=24.0, seed=0,
                    prompt=None, prefix="", title="HunyuanVideo 1.5", n_len=None, n_fps=None,
                    sr_preset="hunyuan15-1080p-sr"):
    """HunyuanVideo 1.5 I2V 720p as video_hunyuan_video_1.5_720p_i2v.json: UNETLoader, DualCLIPLoader
    (Qwen2.5-VL 7B + byT5, hunyuan_video_15), VAELoader, CLIPVisionLoader (SigCLIP 384); CLIPVisionEncode
    (center), HunyuanVideo15ImageToVideo, ModelSamplingSD3 shift 7, CFGGuider cfg 6, BasicScheduler simple 20
    steps, euler, SamplerCustomAdvanced, VAEDecode, 24 fps.

    The face's "super_resolution" (off, as the template's bypassed 1080p group): the template's second pass,
    the latent upsampler to 1920 x 1080 (HunyuanVideo15LatentUpscaleWithModel), HunyuanVideo15SuperResolution
    (noise augmentation 0.7) and the 1080p SR distilled model (shift 2, 8 steps split at 4: the first 4 with
    noise, the rest without), decoded tiled. Lazy switches: with it off, no SR file is read. The SR model comes
    from a second loader of the family (preset `sr_preset`: the same text encoders, VAE and vision model,
    which the residency registry shares)."""
    st, prompt = settings(preset), C.VIDEO_PROMPT if prompt is None else prompt
    m, n_len, n_fps, pos, neg = _video_start(g, "hunyuan15", preset, title, prompt, "", length, fps, n_len, n_fps)
    cv = g.add("CLIPVisionEncode", None, clip_vision=[m, 3], image=image, crop="center")
    i2v = g.add("HunyuanVideo15ImageToVideo", f"{title} size", positive=[pos, 0], negative=[neg, 0], vae=[m, 2],
                width=width, height=height, length=[n_len, 0], batch_size=1, start_image=image,
                clip_vision_output=[cv, 0])
    ms = g.add("ModelSamplingSD3", None, model=[m, 0], shift=float(st["shift"]))
    guider = g.add("CFGGuider", f"{title} CFG", model=[ms, 0], positive=[i2v, 0], negative=[i2v, 1], cfg=float(st["cfg"]))
    sched = g.add("BasicScheduler", f"{title} steps", model=[ms, 0], scheduler=st["scheduler"], steps=int(st["steps"]),
                  denoise=1.0)
    sampler = g.add("KSamplerSelect", None, sampler_name=st["sampler"])
    noise = g.add("RandomNoise", f"{title} seed", noise_seed=seed)
    out = g.add("SamplerCustomAdvanced", None, noise=[noise, 0], guider=[guider, 0], sampler=[sampler, 0],
                sigmas=[sched, 0], latent_image=[i2v, 2])
    frames = g.add("VAEDecode", None, samples=[out, 1], vae=[m, 2])
    # the 1080p super-resolution pass (template nodes 108-141)
    sr_on = g.add("PrimitiveBoolean", f"{title} super-resolution (1080p)", value=False)
    srm = C._loader(g, "hunyuan15", sr_preset, f"{title} SR models")
    g.alternatives.add(srm)                    # read only when super_resolution is on (the notes say so)
    up_model = g.add("LockNLatentUpscaleModelLoader", f"{title} SR upsampler", model_name=SR_UPSAMPLER)
    up = g.add("HunyuanVideo15LatentUpscaleWithModel", None, model=[up_model, 0], samples=[out, 1],
               upscale_method="bilinear", width=1920, height=1080, crop="disabled")
    sr = g.add("HunyuanVideo15SuperResolution", None, positive=[i2v, 0], negative=[i2v, 1], latent=[up, 0], vae=[m, 2],
               start_image=image, clip_vision_output=[cv, 0], noise_augmentation=0.7)
    sr_ms = g.add("ModelSamplingSD3", None, model=[srm, 0], shift=2.0)
    sr_sched = g.add("BasicScheduler", None, model=[sr_ms, 0], scheduler="simple", steps=8, denoise=1.0)
    split = g.add("SplitSigmas", None, sigmas=[sr_sched, 0], step=4)
    sr_g1 = g.add("CFGGuider", None, model=[sr_ms, 0], positive=[sr, 0], negative=[sr, 1], cfg=1.0)
    sr_noise = g.add("RandomNoise", None, noise_seed=889)
    sr_sampler = g.add("KSamplerSelect", None, sampler_name="euler")
    s1 = g.add("SamplerCustomAdvanced", None, noise=[sr_noise, 0], guider=[sr_g1, 0], sampler=[sr_sampler, 0],
               sigmas=[split, 0], latent_image=[sr, 2])
    s2 = g.add("SamplerCustomAdvanced", None, noise=[g.add("DisableNoise", None), 0], guider=[sr_g1, 0],
               sampler=[sr_sampler, 0], sigmas=[split, 1], latent_image=[s1, 0])
    sr_frames = g.add("VAEDecodeTiled", None, samples=[s2, 0], vae=[m, 2], tile_size=512, overlap=64,
                      temporal_size=64, temporal_overlap=4)
    final = g.add("ComfySwitchNode", f"{title} super-resolution: frames", switch=[sr_on, 0], on_false=[frames, 0],
                  on_true=[sr_frames, 0])
    _faces(g, prefix, [(i2v, "start_image", "start_image"), (pos, "text", "prompt"), (i2v, "width", "width"),
                       (i2v, "height", "height"), (n_len, "value", "length"), (n_fps, "value", "fps"),
                       (sched, "steps", "steps"), (noise, "noise_seed", "seed"), (sr_on, "value", "super_resolution"),
                       (m, "preset", "preset"), (final, 0, "frames"), (n_fps, 0, "fps")])
    return final, n_len, n_fps


SR_UPSAMPLER = "hunyuanvideo15_latent_upsampler_1080p.safetensors"


# ---- music ------------------------------------------------------------------------------------------------
def stable_audio_music(g, seconds, preset="stable-audio-open-1.0", seed=0, prompt=None, prefix="",
                       title="Stable Audio"):
    """Stable Audio Open 1.0 as audio_stable_audio_example.json: one checkpoint (DiT, VAE, conditioners) and
    CLIPLoader (t5-base, stable_audio), EmptyLatentAudio, KSampler 50 steps cfg 4.98 dpmpp_3m_sde_gpu /
    exponential, VAEDecodeAudio; 44.1 kHz stereo, up to 47 s. `seconds`: a number or a link."""
    st, prompt = settings(preset), C.MUSIC_TAGS if prompt is None else prompt
    m = C._loader(g, "stable_audio", preset, f"{title} models")
    pos = g.add("CLIPTextEncode", f"{title} prompt", text=prompt, clip=[m, 1])
    neg = g.add("CLIPTextEncode", f"{title} negative prompt", text="", clip=[m, 1])
    lat = g.add("EmptyLatentAudio", f"{title} length", seconds=seconds, batch_size=1)
    ks = g.add("KSampler", f"{title} seed and steps", model=[m, 0], seed=seed, steps=int(st["steps"]), cfg=float(st["cfg"]),
               sampler_name=st["sampler"], scheduler=st["scheduler"], positive=[pos, 0], negative=[neg, 0],
               latent_image=[lat, 0], denoise=1.0)
    audio = g.add("VAEDecodeAudio", None, samples=[ks, 0], vae=[m, 2])
    _faces(g, prefix, [(pos, "text", "prompt"), (ks, "steps", "steps"), (ks, "seed", "seed"), (m, "preset", "preset"),
                       (audio, 0, "music")])
    return audio


def heartmula_song(g, seconds, tags="pop,piano,happy,calm", lyrics=None, seed=0, prefix="", title="HeartMuLa"):
    """HeartMuLa as heartlib's example runs it (issue 24): the LockN HeartMuLa node (its own Python, a worker) with
    heartlib's defaults: cfg 1.5, temperature 1.0, top-k 50, HeartCodec 10 steps; 48 kHz stereo."""
    lyrics = HEARTMULA_LYRICS if lyrics is None else lyrics
    n = g.add("LockNHeartMuLa", f"{title} song", model="HeartMuLa-oss-3B", tags=tags, lyrics=lyrics, seconds=seconds,
              seed=seed, cfg_scale=1.5, temperature=1.0, topk=50, codec_steps=10, dtype="auto")
    _faces(g, prefix, [(n, "tags", "tags"), (n, "lyrics", "lyrics"), (n, "seed", "seed"), (n, "codec_steps", "codec_steps"),
                       (n, 0, "music")])
    return n


HEARTMULA_LYRICS = ("[Verse]\nThe tide comes in across the sand\nA lantern swinging in my hand\n\n"
                    "[Chorus]\nHold the light until the morning\nHold the light for me")


def heartmula_notes(g) -> list[tuple[str, str]]:
    """HeartMuLa's notes: its files are whole Hugging Face repositories (not catalog presets), and it needs its own
    Python (lockn_gen/heartmula.py)."""
    from . import heartmula as hm
    root = "ComfyUI/models/HeartMuLa"
    start = C._start_note("heartmula_text_to_music", g) + (
        "\n\nOnce, before the first run: HeartMuLa runs in a Python of its own (heartlib would change ComfyUI's numpy "
        "and transformers): `LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh` in the LockN Gen folder, then restart "
        "ComfyUI.")
    files = ["## Model files", "", f"Three Hugging Face repositories, as heartlib's README downloads them into {root} "
             "(the node reads every file before it loads and names a missing or cut one). One command downloads them "
             "(resumable, size and SHA-256 checked):", "", "    lockn-gen models pull heartmula-3b", "",
             "or by hand, with Hugging Face's own tool:", ""]
    files += [f"    {c}" for c in hm.download_commands(root)]
    files += ["", "| folder | repository | size |", "|---|---|---|",
              f"| {root}/ (tokenizer.json, gen_config.json) | [{hm.REPOS['']}](https://huggingface.co/{hm.REPOS['']}) | ~9 MB |",
              f"| {root}/HeartMuLa-oss-3B | [{hm.REPOS['HeartMuLa-oss-3B']}](https://huggingface.co/{hm.REPOS['HeartMuLa-oss-3B']}) | ~{hm.PARAMS['HeartMuLa-oss-3B'] * 4 / 1e9:.2f} GB |",
              f"| {root}/HeartCodec-oss | [{hm.REPOS[hm.CODEC]}](https://huggingface.co/{hm.REPOS[hm.CODEC]}) | ~{hm.PARAMS[hm.CODEC] * 4 / 1e9:.1f} GB |",
              "", "Sizes: float32 weights of the parameters heartlib's own configurations build (not confirmed on the "
              "hub; the model's matches a public conversion, 15.75 GB)."]
    gpu = (hm.GPU_BYTES + hm.WORKING_BYTES) / 1e9
    time = ["## Time and memory", "", "| stage | model files | GPU memory (estimate) | time on one H100 (estimate) |",
            "|---|---|---|---|", f"| Music | ~{(hm.PARAMS['HeartMuLa-oss-3B'] + hm.PARAMS[hm.CODEC]) * 4 / 1e9:.1f} GB | "
            f"~{gpu:.0f} GB (model bfloat16, codec float32, both loaded) | {TIME_ESTIMATES['heartmula']} |",
            "", "The model stays loaded in its worker between runs and counts against LockN's budgets like any model; "
            "`/free` or an eviction ends the worker. No step cache: HeartMuLa samples frame by frame, not by steps."]
    return [("Start here", start), ("Model files", "\n".join(files)), ("Time and memory", "\n".join(time))]


# ---- the chains' stage alternatives -------------------------------------------------------------------------
CHAIN_FACES = ("preset", "steps", "seed", "width", "height", "super_resolution")   # what an alternative shows on the face


def _by_title(g, title: str) -> str:
    return next(nid for nid, n in g.nodes.items() if (n.get("_meta") or {}).get("title") == title)


def _keep_faces(g, before: set, prefix: str) -> None:
    """Of the faces an alternative's builder added, keep the few CHAIN_FACES (the stage's face stays readable);
    its loaders are noted as alternatives (the notes list their files apart)."""
    g.alternatives.update(nid for (nid, key), name in g.faces.items() if name == f"{prefix}preset" and key == "preset")
    for key in [k for k in g.faces if k not in before]:
        name = g.faces[key]
        if not any(name == f"{prefix}{f}" for f in CHAIN_FACES):
            del g.faces[key]


def choice(g, stage: str, title: str) -> str:
    """The top-level node that holds a stage's model (its default: the stage's first family)."""
    node = CHOICE_NODES[stage]
    return g.add(node, title, model=STAGE_CHOICES[stage][0])


def pick(g, model: str, title: str, branches: dict, kind: str = "Image") -> str:
    """The chosen branch's output (a typed lazy pick: IMAGE or AUDIO)."""
    return g.add(f"LockNPick{kind}", title, model=[model, 0], **branches)


def image_alternatives(g, model: str, flux2_batch: str, prompt) -> str:
    """Flux.1 and SD3.5 beside the chain's Flux.2 (same prompt, width and height): the picked batch's id."""
    w, h = [_by_title(g, "Image width"), 0], [_by_title(g, "Image height"), 0]
    before = set(g.faces)
    f1 = flux1_image(g, width=w, height=h, prompt=prompt, prefix="flux1_")
    _keep_faces(g, before, "flux1_")
    before = set(g.faces)
    sd = sd_image(g, "sd35", "sd35-large-fp8", width=w, height=h, prompt=prompt, prefix="sd35_")
    _keep_faces(g, before, "sd35_")
    return pick(g, model, "Image: the chosen model's images", {"flux2": [flux2_batch, 0], "flux1": [f1, 0], "sd35": [sd, 0]})


def video_alternative(g, model: str, family: str, default_frames: str, image, prompt, n_len, n_fps) -> str:
    """HunyuanVideo 1.5 (quality chain) or LTX-Video (fast chain) beside the stage's own model, on the same
    length and frame rate (so the music follows whichever runs): the picked frames' id."""
    before = set(g.faces)
    build = {"hunyuan15": hunyuan15_video, "ltxv": ltxv_video}[family]
    frames, _, _ = build(g, image, prompt=prompt, prefix=f"{family}_", n_len=n_len, n_fps=n_fps)
    _keep_faces(g, before, f"{family}_")
    default = STAGE_CHOICES["quality_video" if family == "hunyuan15" else "fast_video"][0]
    return pick(g, model, "Video: the chosen model's frames", {default: [default_frames, 0], family: [frames, 0]})


def music_alternative(g, model: str, ace_audio: str, seconds, brief: str) -> str:
    """Stable Audio Open (the Brief's tags as its prompt) and HeartMuLa (the Brief's tags and lyrics: songs in many
    languages) beside ACE-Step 1.5, for the clip's length: the picked audio."""
    before = set(g.faces)
    sa = stable_audio_music(g, seconds, prompt=[brief, C.BRIEF_OUT["tags"]], prefix="stable_audio_")
    _keep_faces(g, before, "stable_audio_")
    before = set(g.faces)
    hm = heartmula_song(g, seconds, tags=[brief, C.BRIEF_OUT["tags"]], lyrics=[brief, C.BRIEF_OUT["lyrics"]],
                        prefix="heartmula_")
    _keep_faces(g, before, "heartmula_")
    return pick(g, model, "Music: the chosen model's audio",
                {"ace15": [ace_audio, 0], "stable_audio": [sa, 0], "heartmula": [hm, 0]}, "Audio")


# ---- one workflow per family ------------------------------------------------------------------------------------
STAGE_TITLES = {"flux1": "Image (Flux.1)", "sd35": "Image (SD3.5)", "sdxl": "Image (SDXL)", "ltxv": "Video (LTX-Video)",
                "wan21": "Video (Wan2.1)", "hunyuan15": "Video (HunyuanVideo 1.5)", "skyreels": "Video (SkyReels V1)",
                "wan21_t2v": "Video (Wan2.1 T2V)",
                "stable_audio": "Music (Stable Audio Open)", "heartmula": "Music (HeartMuLa)"}


def _image_workflow(family: str, build):
    def make():
        g = C.Graph()
        with g.stage(C.IMAGE, STAGE_TITLES[family]):
            img = build(g)
        g.add("SaveImage", "Save image", images=[img, 0], filename_prefix=f"LockN/{family}")
        return g
    return make


def _video_workflow(family: str, build, start_image: bool = True):
    """A video family's workflow: its stage (from the start image, or with `start_image` False from the prompt alone:
    text to video) to an MP4."""
    def make():
        g = C.Graph()
        start = [[g.add("LoadImage", "Start image", image="lockn_start.png"), 0]] if start_image else []
        with g.stage(C.VIDEO, STAGE_TITLES[family]):
            frames, _, n_fps = build(g, *start)
            vid = g.add("CreateVideo", None, images=[frames, 0], fps=[n_fps, 0])
        g.add("SaveVideo", "Save MP4", video=[vid, 0], filename_prefix=f"LockN/{family}", format="mp4", codec="h264")
        return g
    return make


def _music_workflow(family: str, build):
    def make():
        g = C.Graph()
        with g.stage(C.MUSIC, STAGE_TITLES[family]):
            dur = g.add("PrimitiveFloat", "Duration (s)", value=30.0)
            g.face(dur, "value", "duration")
            audio = build(g, [dur, 0])
        g.add("SaveAudioMP3", "Save MP3", audio=[audio, 0], filename_prefix=f"LockN/{family}", quality="V0")
        return g
    return make


WORKFLOWS = {
    "flux1_text_to_image": _image_workflow("flux1", flux1_image),
    "sd35_text_to_image": _image_workflow("sd35", lambda g: sd_image(g, "sd35", "sd35-large-fp8")),
    "sdxl_text_to_image": _image_workflow("sdxl", lambda g: sd_image(g, "sdxl", "sdxl-base")),
    "ltxv_image_to_video": _video_workflow("ltxv", ltxv_video),
    "wan21_image_to_video": _video_workflow("wan21", wan21_video),
    "hunyuan15_image_to_video": _video_workflow("hunyuan15", hunyuan15_video),
    "skyreels_image_to_video": _video_workflow("skyreels", skyreels_video),
    "wan21_text_to_video": _video_workflow("wan21_t2v", wan21_t2v_video, start_image=False),
    "stable_audio_text_to_music": _music_workflow("stable_audio", stable_audio_music),
    "heartmula_text_to_music": _music_workflow("heartmula", heartmula_song),
}
NOTES = {"heartmula_text_to_music": heartmula_notes}      # workflows whose models are not catalog presets
# the families' template times on one H100 (public figures where known; else scaled, and said so)
TIME_ESTIMATES = {
    "flux1": "~2-10 s: 1024 x 1024, schnell 4 steps / dev 20 steps (estimate)",
    "sd35": "~10 s: 1024 x 1024, 20 steps (estimate)",
    "sdxl": "~4 s: 1024 x 1024, 25 steps (estimate)",
    "ltxv": "~5-20 s: 768 x 512 x 97 (estimate)",
    "wan21": "~2-5 min: 512 x 512 x 33, 20 steps (estimate from Wan2.2's public 480p figure)",
    "wan21_t2v": "~3-6 min: 832 x 480 x 33, 30 steps (14B; the 1.3B ~10x faster; estimate from Wan2.2's public 480p figure)",
    "hunyuan15": "~3-6 min: 1280 x 720 x 121, 20 steps (estimate)",
    "skyreels": "~6-8 min: 960 x 544 x 97, 30 steps with CFG (estimate from Wan2.2's public 480p figure)",
    "stable_audio": "~10 s: 47 s of audio, 50 steps (estimate)",
    "heartmula": "about the song's own length (heartlib's README: real-time factor ~1; not measured here)",
}
