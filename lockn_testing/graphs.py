"""The official ComfyUI template graphs (../shared/MODELS.md) as API prompts, at tiny sizes.

Node lists and settings follow the templates shipped with ComfyUI 0.20.1 (comfyui-workflow-templates
0.9.73: image_flux2_text_to_image, video_wan2_2_14B_i2v, video_wan2_2_5B_ti2v, video_ltx2_t2v / _i2v first stage,
audio_ace_step_1_5_split); only sizes, lengths and step counts are shrunk so they run on a CPU.
`loader="gguf"` swaps the diffusion-model loader for ComfyUI-GGUF's UnetLoaderGGUF; `loader="lockn"`
replaces the family's loaders by LockN Gen's one loader node with a preset (`preset=...`, `overrides=`).
"""
from __future__ import annotations

from lockn_gen import catalog

P = "(preset)"


def lockn_loader(family: str, preset: str, overrides: dict | None = None, weight_dtype: str = "default") -> dict:
    fam = catalog.builtin().families[family]
    inputs = {"preset": preset, **{r: (overrides or {}).get(r, P) for r in fam.inputs}, "weight_dtype": weight_dtype}
    return {"class_type": fam.node, "inputs": inputs, "_meta": {"title": f"{family} models"}}


WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部")


SDCPP_TE = "qwen_3_4b_sdcpp_layout.safetensors"     # the tiny klein text encoder sd.cpp reads (tiny/sdcpp.py)


def sdcpp_t2i(prompt="a red fox in the snow", width=80, height=64, steps=2, seed=7, batch=1, preset="flux2-klein-4b-sdcpp",
              prefix="sdcpp", threads=1, **overrides) -> dict:
    """The LockN stable-diffusion.cpp node into Save Image; the text encoder is the tiny one at sd.cpp's head layout
    unless `overrides` say otherwise."""
    files = {"diffusion_model": P, "text_encoder": SDCPP_TE, "vae": P, **overrides}
    return {"1": {"class_type": "LockNFlux2SdCpp",
                  "inputs": {"preset": preset, "prompt": prompt, "width": width, "height": height, "steps": steps,
                             "guidance": 0.0, "seed": seed, "sampler": "euler", "batch_size": batch, "threads": threads,
                             **files}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def heartmula_song(model="HeartMuLa-oss-3B", tags="pop,piano,happy", lyrics="[Verse]\nhold the light", seconds=2.0,
                   seed=3, cfg=1.5, codec_steps=2, prefix="heartmula") -> dict:
    """The LockN HeartMuLa node into Save Audio (FLAC)."""
    return {"1": {"class_type": "LockNHeartMuLa",
                  "inputs": {"model": model, "tags": tags, "lyrics": lyrics, "seconds": seconds, "seed": seed,
                             "cfg_scale": cfg, "temperature": 1.0, "topk": 50, "codec_steps": codec_steps,
                             "dtype": "auto"}},
            "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": prefix}}}


def flux2_t2i(loader="core", quant="Q4_K_M", width=64, height=64, steps=4, seed=1027111520328378, prefix="flux2",
              preset="flux2-dev-q4_k_m", overrides=None):
    if loader == "lockn":
        g = flux2_t2i("core", width=width, height=height, steps=steps, seed=seed, prefix=prefix)
        del g["38"], g["10"]
        g["12"] = lockn_loader("flux2", preset, overrides)
        g["6"]["inputs"]["clip"] = ["12", 1]
        g["8"]["inputs"]["vae"] = ["12", 2]
        return g
    if loader == "gguf":
        unet = {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": f"flux2-dev-{quant}.gguf"}}
    else:
        unet = {"class_type": "UNETLoader", "inputs": {"unet_name": "flux2_dev_fp8mixed.safetensors", "weight_dtype": "default"}}
    return {
        "12": unet,
        "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "mistral_3_small_flux2_fp8.safetensors", "type": "flux2", "device": "default"}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "flux2-vae.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "high fashion, vintage couture, street photography, luxury fashion shoot, neo brutalist architecture, pastel paints"}},
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["6", 0], "guidance": 4.0}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["26", 0]}},
        "47": {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "48": {"class_type": "Flux2Scheduler", "inputs": {"steps": steps, "width": width, "height": height}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["48", 0], "latent_image": ["47", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def wan22_i2v(image="start.png", loader="core", quant="Q4_K_M", width=32, height=32, length=5, steps=4, split=2,
              fps=16.0, prefix="video/wan22", preset="wan22-i2v-a14b-q4_k_m", overrides=None):
    if loader == "lockn":
        g = wan22_i2v(image, "core", width=width, height=height, length=length, steps=steps, split=split, fps=fps, prefix=prefix)
        del g["96"], g["84"], g["90"]
        g["95"] = lockn_loader("wan22", preset, overrides)
        g["103"]["inputs"]["model"] = ["95", 1]
        for n in ("93", "89"):
            g[n]["inputs"]["clip"] = ["95", 2]
        for n in ("98", "87"):
            g[n]["inputs"]["vae"] = ["95", 3]
        return g
    if loader == "gguf":
        hi = {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": f"Wan2.2-I2V-A14B-HighNoise-{quant}.gguf"}}
        lo = {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": f"Wan2.2-I2V-A14B-LowNoise-{quant}.gguf"}}
    else:
        hi = {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}}
        lo = {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"}}
    return {
        "95": hi, "96": lo,
        "104": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["95", 0], "shift": 5.0}},
        "103": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["96", 0], "shift": 5.0}},
        "84": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}},
        "93": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["84", 0], "text": "The white dragon warrior stands still, eyes full of determination and strength."}},
        "89": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["84", 0], "text": WAN_NEGATIVE}},
        "90": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "97": {"class_type": "LoadImage", "inputs": {"image": image}},
        "98": {"class_type": "WanImageToVideo", "inputs": {"positive": ["93", 0], "negative": ["89", 0], "vae": ["90", 0], "width": width, "height": height, "length": length, "batch_size": 1, "start_image": ["97", 0]}},
        "86": {"class_type": "KSamplerAdvanced", "inputs": {"model": ["104", 0], "add_noise": "enable", "noise_seed": 264244520398999, "steps": steps, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple", "positive": ["98", 0], "negative": ["98", 1], "latent_image": ["98", 2], "start_at_step": 0, "end_at_step": split, "return_with_leftover_noise": "enable"}},
        "85": {"class_type": "KSamplerAdvanced", "inputs": {"model": ["103", 0], "add_noise": "disable", "noise_seed": 0, "steps": steps, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple", "positive": ["98", 0], "negative": ["98", 1], "latent_image": ["86", 0], "start_at_step": split, "end_at_step": 10000, "return_with_leftover_noise": "disable"}},
        "87": {"class_type": "VAEDecode", "inputs": {"samples": ["85", 0], "vae": ["90", 0]}},
        "94": {"class_type": "CreateVideo", "inputs": {"images": ["87", 0], "fps": fps}},
        "108": {"class_type": "SaveVideo", "inputs": {"video": ["94", 0], "filename_prefix": prefix, "format": "auto", "codec": "auto"}},
    }


def wan22_ti2v(image="start.png", loader="core", width=32, height=32, length=5, steps=2, fps=24.0,
               prefix="video/wan22_ti2v", preset="wan22-ti2v-5b", overrides=None):
    """Wan2.2 TI2V 5B image to video: one model, the Wan 2.2 VAE (template: shift 8, uni_pc, cfg 5, 24 fps)."""
    if loader == "lockn":
        g = wan22_ti2v(image, "core", width=width, height=height, length=length, steps=steps, fps=fps, prefix=prefix)
        del g["37"], g["38"], g["39"]
        g["37"] = lockn_loader("wan22", preset, overrides)    # a single-model preset: the same MODEL on both outputs
        for n, key, out in (("48", "model", 0), ("6", "clip", 2), ("7", "clip", 2), ("55", "vae", 3), ("8", "vae", 3)):
            g[n]["inputs"][key] = ["37", out]
        return g
    return {
        "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.2_ti2v_5B_fp16.safetensors", "weight_dtype": "default"}},
        "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}},
        "39": {"class_type": "VAELoader", "inputs": {"vae_name": "wan2.2_vae.safetensors"}},
        "48": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["37", 0], "shift": 8.0}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "A small boat drifts on a calm lake at sunrise."}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": WAN_NEGATIVE}},
        "56": {"class_type": "LoadImage", "inputs": {"image": image}},
        "55": {"class_type": "Wan22ImageToVideoLatent", "inputs": {"vae": ["39", 0], "width": width, "height": height, "length": length, "batch_size": 1, "start_image": ["56", 0]}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["48", 0], "seed": 898471028164125, "steps": steps, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["55", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["39", 0]}},
        "57": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": fps}},
        "58": {"class_type": "SaveVideo", "inputs": {"video": ["57", 0], "filename_prefix": prefix, "format": "auto", "codec": "auto"}},
    }


def ltx2_av(loader="core", image=None, width=64, height=64, length=9, fps=25, steps=2, prefix="video/ltx2",
            preset="ltx2-19b-distilled-fp8", overrides=None):
    """LTX-2 text (or image) to video with its own audio: the first stage of the official templates."""
    if loader == "lockn":
        models = {"1": lockn_loader("ltx2", preset, overrides)}
        model, vae = ["1", 0], ["1", 2]
        clip, audio_vae = ["1", 1], ["1", 3]
    elif loader == "gguf":
        models = {
            "1": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "ltx-2-19b-dev-Q4_K_M.gguf"}},
            "2": {"class_type": "VAELoader", "inputs": {"vae_name": "LTX2_video_vae_bf16.safetensors"}},
            "60": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "gemma_3_12B_it_fp4_mixed.safetensors", "clip_name2": "ltx-2-19b-embeddings_connector_dev_bf16.safetensors", "type": "ltxv", "device": "default"}},
            "48": {"class_type": "LTXVAudioVAELoader", "inputs": {"ckpt_name": "LTX2_audio_vae_bf16.safetensors"}},
        }
        model, vae = ["1", 0], ["2", 0]
    else:
        ck = "ltx-2-19b-dev-fp8.safetensors"
        models = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ck}},
            "60": {"class_type": "LTXAVTextEncoderLoader", "inputs": {"text_encoder": "gemma_3_12B_it_fp4_mixed.safetensors", "ckpt_name": ck, "device": "default"}},
            "48": {"class_type": "LTXVAudioVAELoader", "inputs": {"ckpt_name": ck}},
        }
        model, vae = ["1", 0], ["1", 2]
    if loader != "lockn":
        clip, audio_vae = ["60", 0], ["48", 0]
    g = {
        **models,
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "A close-up shot of a puppet that sings in the rain, the camera pans slowly."}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "blurry, low quality, still frame, frames, watermark, overlay, titles, has blurbox, has subtitles"}},
        "22": {"class_type": "LTXVConditioning", "inputs": {"positive": ["3", 0], "negative": ["4", 0], "frame_rate": float(fps)}},
        "43": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": width, "height": height, "length": length, "batch_size": 1}},
        "51": {"class_type": "LTXVEmptyLatentAudio", "inputs": {"frames_number": length, "frame_rate": fps, "batch_size": 1, "audio_vae": audio_vae}},
        "56": {"class_type": "LTXVConcatAVLatent", "inputs": {"video_latent": ["43", 0], "audio_latent": ["51", 0]}},
        "9": {"class_type": "LTXVScheduler", "inputs": {"steps": steps, "max_shift": 2.05, "base_shift": 0.95, "stretch": True, "terminal": 0.1, "latent": ["56", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "11": {"class_type": "RandomNoise", "inputs": {"noise_seed": 10}},
        "47": {"class_type": "CFGGuider", "inputs": {"model": model, "positive": ["22", 0], "negative": ["22", 1], "cfg": 4.0}},
        "41": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["11", 0], "guider": ["47", 0], "sampler": ["8", 0], "sigmas": ["9", 0], "latent_image": ["56", 0]}},
        "94": {"class_type": "LTXVSeparateAVLatent", "inputs": {"av_latent": ["41", 0]}},
        "95": {"class_type": "VAEDecode", "inputs": {"samples": ["94", 0], "vae": vae}},
        "96": {"class_type": "LTXVAudioVAEDecode", "inputs": {"samples": ["94", 1], "audio_vae": audio_vae}},
        "97": {"class_type": "CreateVideo", "inputs": {"images": ["95", 0], "audio": ["96", 0], "fps": float(fps)}},
        "75": {"class_type": "SaveVideo", "inputs": {"video": ["97", 0], "filename_prefix": prefix, "format": "auto", "codec": "auto"}},
    }
    if image:   # image to video: LTXVPreprocess + LTXVImgToVideoInplace on the empty latent
        g["98"] = {"class_type": "LoadImage", "inputs": {"image": image}}
        g["99"] = {"class_type": "LTXVPreprocess", "inputs": {"image": ["98", 0], "img_compression": 33}}
        g["107"] = {"class_type": "LTXVImgToVideoInplace", "inputs": {"vae": vae, "image": ["99", 0], "latent": ["43", 0], "strength": 1.0, "bypass": False}}
        g["56"]["inputs"]["video_latent"] = ["107", 0]
    return g


def ace15_t2m(seconds=2.0, steps=8, loader="core", top_p=0.9, prefix="audio/ace15", preset="ace15-turbo", overrides=None):
    if loader == "lockn":
        g = ace15_t2m(seconds, steps, "core", top_p, prefix)
        del g["105"], g["106"]
        g["104"] = lockn_loader("ace15", preset, overrides)
        g["94"]["inputs"]["clip"] = ["104", 1]
        g["18"]["inputs"]["vae"] = ["104", 2]
        return g
    unet = ({"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "acestep_v1.5_turbo-Q8_0.gguf"}} if loader == "gguf"
            else {"class_type": "UNETLoader", "inputs": {"unet_name": "acestep_v1.5_turbo.safetensors", "weight_dtype": "default"}})
    return {
        "104": unet,
        "105": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "qwen_0.6b_ace15.safetensors", "clip_name2": "qwen_1.7b_ace15.safetensors", "type": "ace", "device": "default"}},
        "106": {"class_type": "VAELoader", "inputs": {"vae_name": "ace_1.5_vae.safetensors"}},
        "78": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["104", 0], "shift": 3.0}},
        "94": {"class_type": "TextEncodeAceStepAudio1.5", "inputs": {
            "clip": ["105", 0], "tags": "K-Pop: a slick, maximalist K-pop track", "lyrics": "[Verse]\nla la la\nlet it breathe",
            "seed": 31, "bpm": 190, "duration": seconds, "timesignature": "4", "language": "en", "keyscale": "E minor",
            "generate_audio_codes": True, "cfg_scale": 2.0, "temperature": 0.85, "top_p": top_p, "top_k": 0, "min_p": 0.0}},
        "47": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["94", 0]}},
        "98": {"class_type": "EmptyAceStep1.5LatentAudio", "inputs": {"seconds": seconds, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["78", 0], "seed": 31, "steps": steps, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "positive": ["94", 0], "negative": ["47", 0], "latent_image": ["98", 0], "denoise": 1.0}},
        "18": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["3", 0], "vae": ["106", 0]}},
        "107": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["18", 0], "filename_prefix": prefix, "quality": "V0"}},
    }


def with_residency(g: dict, gpu_gb: float = 0.0, ram_gb: float = 0.0, pin: bool = False) -> dict:
    """The same graph with LockN's Residency node between its LockN loader and the rest: budgets in GB
    (0: the default) and pin for the loader's models. Loader outputs the node has no socket for (LTX-2's
    audio VAE) stay linked to the loader."""
    lid = next(k for k, n in g.items() if n["class_type"].startswith("LockN") and n["class_type"].endswith("Loader"))
    names = (["model", "model_2", "clip", "vae"] if g[lid]["class_type"] == "LockNWan22Loader"
             else ["model", "clip", "vae"])
    r_out = {"model": 0, "model_2": 1, "clip": 2, "vae": 3}          # LockNResidency's outputs
    g = {k: {**n, "inputs": dict(n["inputs"])} for k, n in g.items()}
    for n in g.values():
        for k, v in n["inputs"].items():
            if isinstance(v, list) and v[0] == lid and v[1] < len(names):
                n["inputs"][k] = ["R", r_out[names[v[1]]]]
    g["R"] = {"class_type": "LockNResidency", "inputs": {
        "gpu_budget_gb": gpu_gb, "ram_budget_gb": ram_gb, "pin": pin,
        "image_priority": 1, "video_priority": 1, "music_priority": 1,
        **{name: [lid, i] for i, name in enumerate(names)}}}
    return g


def report_sinks(g: dict) -> dict:
    """The same graph ending in LockN's Residency Report instead of saving files (for machines without
    PyAV, e.g. a bare GPU box): every Save* node becomes a report triggered by what it would save, and
    a LoadImage becomes a plain grey EmptyImage."""
    out = {}
    for nid, n in g.items():
        if n["class_type"] == "LoadImage":
            out[nid] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 8421504}}
        elif n["class_type"] in ("SaveImage", "SaveVideo", "SaveAudioMP3", "SaveAudio"):
            link = next(v for v in n["inputs"].values() if isinstance(v, list))
            if g[link[0]]["class_type"] == "CreateVideo":          # report on the frames, not on a VIDEO
                link = g[link[0]]["inputs"]["images"]
            out[nid] = {"class_type": "LockNResidencyReport", "inputs": {"trigger": link}}
        else:
            out[nid] = n
    return {k: v for k, v in out.items() if v["class_type"] != "CreateVideo"}


LORA_NODES = {"flux2": "LockNFlux2LoRA", "wan22": "LockNWan22LoRA", "ltx2": "LockNLTX2LoRA", "ace15": "LockNAceStep15LoRA"}


def with_lora(g: dict, family: str, loras=(), high=(), low=(), node_id: str = "L") -> dict:
    """The same graph (with a LockN loader) with LockN's LoRA node on the loader's MODEL output(s):
    `loras` [(file, strength)] for one-model families, `high` / `low` for Wan2.2's experts."""
    lid = next(k for k, n in g.items() if n["class_type"] == catalog.builtin().families[family].node)
    outs = {0: 0, 1: 1} if family == "wan22" else {0: 0}          # loader MODEL output -> LoRA node output
    g = {k: {**n, "inputs": dict(n["inputs"])} for k, n in g.items()}
    for n in g.values():
        for k, v in n["inputs"].items():
            if isinstance(v, list) and v[0] == lid and v[1] in outs:
                n["inputs"][k] = [node_id, outs[v[1]]]
    inputs = {}
    slots = [("high_", high), ("low_", low)] if family == "wan22" else [("", loras)]
    for prefix, items in slots:
        for i in range(1, 4):
            name, strength = items[i - 1] if i <= len(items) else ("None", 1.0)
            inputs[f"{prefix}lora_{i}"], inputs[f"{prefix}strength_{i}"] = name, strength
    if family == "wan22":
        inputs.update(high_noise_model=[lid, 0], low_noise_model=[lid, 1])
    else:
        inputs["model"] = [lid, 0]
    g[node_id] = {"class_type": LORA_NODES[family], "inputs": inputs, "_meta": {"title": f"{family} LoRAs"}}
    return g


def with_step_cache(g: dict, threshold: float = 0.2, linked: bool = False, node_id: str = "SC") -> dict:
    """The same graph with LockN's Step Cache on (ComfyUI's EasyCache) on the model of its one sampler or guider;
    with `linked`, the threshold comes from a PrimitiveFloat (ComfyUI checks no range on a linked value)."""
    g = {k: {**n, "inputs": dict(n["inputs"])} for k, n in g.items()}
    [sid] = [k for k, n in g.items() if n["class_type"] in ("BasicGuider", "CFGGuider", "KSampler")
             and isinstance(n["inputs"].get("model"), list)]
    thr = threshold
    if linked:
        g[f"{node_id}T"] = {"class_type": "PrimitiveFloat", "inputs": {"value": threshold}}
        thr = [f"{node_id}T", 0]
    g[node_id] = {"class_type": "LockNStepCache", "inputs": {
        "model": g[sid]["inputs"]["model"], "cache_steps": True, "reuse_threshold": thr, "start_percent": 0.15,
        "end_percent": 0.95, "turbo": False}, "_meta": {"title": "Step cache"}}
    g[sid]["inputs"]["model"] = [node_id, 0]
    return g
