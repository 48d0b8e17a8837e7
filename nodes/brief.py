"""Brief nodes: one line in, every prompt of the chain out (lockn_gen/brief.py has the logic).

Backends: `resident` generates with a text encoder that is already loaded (the CLIP input, else one
the LockN registry holds that ComfyUI can generate with: LTX-2's Gemma 3, Flux.2 klein's Qwen3);
`server` asks an OpenAI-compatible chat server (LOCKN_BRIEF_URL / _MODEL / _API_KEY in ComfyUI's
environment, so a workflow file carries no address); `rules` derives everything from the brief's own
words. When the backend cannot answer, `fallback` says what happens: an error naming the server or
the encoder, the resident backend, or the rules. Whatever a model writes is repaired field by field
(lockn_gen.brief.repair); the report output and the log say what was replaced.
"""
from __future__ import annotations

import logging

import numpy as np
from comfy_api.latest import io, ui

from ..lockn_gen import brief as B
from . import comfy_seam as seam
from .residency import REGISTRY

log = logging.getLogger("lockn_gen.brief")
CATEGORY = "LockN Gen/prompt"
SOURCES = ["the brief", "my prompts"]
BACKENDS = ["resident", "server", "rules"]
FALLBACKS = ["error", "resident", "rules"]
BriefType = io.Custom("LOCKN_BRIEF")

CHAT = {
    "gemma": ("<start_of_turn>system\n{system}<end_of_turn>\n<start_of_turn>user\n{image}{user}<end_of_turn>\n"
              "<start_of_turn>model\n"),
    "chatml": ("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{image}{user}<|im_end|>\n"
               "<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    "mistral": "[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT][INST]{image}{user}[/INST]",
}
IMAGE_TOKEN = {"gemma": "\n<image_soft_token>\n\n", "chatml": "", "mistral": ""}


def _resident_clip(clip):
    """(clip, name): the connected CLIP, else a text encoder the registry holds that can generate
    (one on the GPU first); (None, why) when there is none."""
    if clip is not None:
        if seam.clip_can_generate(clip):
            rec = REGISTRY.object_records([clip])
            return clip, (rec[0].entry.name if rec else "the connected text encoder")
        return None, (f"the connected text encoder ({type(getattr(clip, 'cond_stage_model', clip)).__name__.rstrip('_')}) cannot "
                      f"generate text in ComfyUI {seam.comfyui_version()}; ComfyUI writes with LTX-2's Gemma 3 or "
                      "Flux.2 klein's Qwen3, not with Flux.2-dev's Mistral, umt5 or ACE-Step's Qwen3")
    held = []
    for r in list(REGISTRY.records.values()):
        if r.obj is not None and seam.clip_can_generate(r.obj):
            held.append(r)
    if not held:
        return None, ("no CLIP is connected and LockN holds no text encoder that can generate (LTX-2's Gemma 3, "
                      "Flux.2 klein's Qwen3); connect one to the clip input")
    held.sort(key=lambda r: (r.entry.tier != "gpu", -r.entry.last_used))
    return held[0].obj, held[0].entry.name


def _png(image) -> bytes | None:
    if image is None:
        return None
    arr = (image[0].detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return B.png_bytes(np.ascontiguousarray(arr[..., :3]))


def _ask(cfg: dict, system: str, user: str, schema: dict, seed: int, backend: str, clip=None, image=None):
    """(reply text, who wrote it, notes) from one backend; BackendUnavailable when it cannot answer."""
    if backend == "server":
        s = B.ServerSettings.resolve(cfg["server_url"], cfg["model"], cfg["timeout_s"])
        reply = B.chat(s, system, user, schema, seed, cfg["max_tokens"], image_png=_png(image))
        return (reply.content, f"server {B.chat_endpoint(s.url)} ({reply.model or s.model or 'its default model'})",
                list(reply.notes))
    clip, name = _resident_clip(clip if clip is not None else cfg.get("clip"))
    if clip is None:
        raise B.BackendUnavailable(name)
    kind = seam.clip_kind(clip)
    text = CHAT[kind].format(system=system, user=user, image=IMAGE_TOKEN[kind] if image is not None else "")
    try:
        out, n = seam.clip_generate(clip, text, image=image if kind == "gemma" else None,
                                    max_tokens=cfg["max_tokens"], seed=seed)
    except seam.CannotWrite as e:
        raise B.BackendUnavailable(str(e)) from e
    notes = [] if image is None or kind == "gemma" else [f"{name} does not read images: wrote from the brief alone"]
    return out, f"resident text encoder {name} ({n} tokens)", notes


def _write(cfg: dict, system: str, user: str, schema: dict, seed: int, clip=None, image=None):
    """(parsed JSON or None, who, notes, the reply's text or None): the backend, then the fallback the
    node asks for."""
    backend, fallback = cfg["backend"], cfg["fallback"]
    if backend == "rules":
        return None, "rules (no model)", [], None
    try:
        text, who, notes = _ask(cfg, system, user, schema, seed, backend, clip, image)
    except B.BackendUnavailable as e:
        if fallback == "error" or fallback == backend:
            raise RuntimeError(f"Brief ({backend}): {e}. Fix that, or set the node's fallback to 'rules' "
                               f"(or 'resident') to keep the chain going without it.") from e
        first = f"{backend} could not answer: {e}"
        log.warning("LockN Brief: %s; falling back to %s", first, fallback)
        if fallback == "rules":
            return None, "rules (no model)", [first], None
        try:
            text, who, notes = _ask(cfg, system, user, schema, seed, "resident", clip, image)
        except B.BackendUnavailable as e2:
            raise RuntimeError(f"Brief: {first}; and the resident fallback could not either: {e2}") from e2
        notes = [first] + notes
    return B.extract_json(text), who, notes, text


class LockNBrief(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNBrief", display_name="Brief (LockN)", category=CATEGORY,
            description="One brief in; the image prompt and the music's tags, lyrics, bpm, key and time signature out, "
                        "written by a text encoder that is already loaded, by your LLM server, or by rules. Feed its "
                        "`brief` output to Motion Prompt (LockN) for the video. Set source to 'my prompts' to use "
                        "the fields below as they are.",
            inputs=[
                io.String.Input("text", multiline=True, default="a lighthouse keeper's cat at dawn, lo-fi, calm",
                                tooltip="The brief: one line is enough. What it shows, how it moves, how it sounds."),
                io.Combo.Input("source", options=SOURCES, default="the brief",
                               tooltip="'the brief': write every prompt from it. 'my prompts': pass the fields below "
                                       "through unchanged (no model runs)."),
                io.Combo.Input("backend", options=BACKENDS, default="resident",
                               tooltip="resident: a loaded text encoder that can write (the clip input, else one LockN "
                                       "holds: LTX-2's Gemma 3, Flux.2 klein's Qwen3). server: an OpenAI-compatible "
                                       f"chat server ({B.ENV_URL}, {B.ENV_MODEL}, {B.ENV_KEY} in ComfyUI's environment, "
                                       "or server_url). rules: no model, the brief's own words."),
                io.Combo.Input("fallback", options=FALLBACKS, default="error",
                               tooltip="When the backend cannot answer (server down or slow, no encoder that can "
                                       "write): stop with the reason, use the resident backend, or use the rules."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=False,
                             tooltip="Same brief and seed, same prompts."),
                io.Clip.Input("clip", optional=True,
                              tooltip="A loaded text encoder that can write (LTX-2's Gemma 3 reads images too)."),
                io.String.Input("image_prompt", multiline=True, default="", tooltip="Used when source is 'my prompts'."),
                io.String.Input("tags", multiline=True, default="", tooltip="Music tags, used when source is 'my prompts'."),
                io.String.Input("lyrics", multiline=True, default=B.INSTRUMENTAL, tooltip="Used when source is 'my prompts'."),
                io.Int.Input("bpm", default=90, min=10, max=300, tooltip="Used when source is 'my prompts'."),
                io.Combo.Input("keyscale", options=B.KEYSCALES, default="C major", tooltip="Used when source is 'my prompts'."),
                io.Combo.Input("timesignature", options=B.TIMESIGNATURES, default="4", tooltip="Used when source is 'my prompts'."),
                io.Combo.Input("language", options=B.LANGUAGES, default="en", tooltip="The lyrics' language, used when source is 'my prompts'."),
                io.String.Input("server_url", default="", advanced=True,
                                tooltip=f"Empty: {B.ENV_URL} from ComfyUI's environment (e.g. http://127.0.0.1:8080/v1)."),
                io.String.Input("model", default="", advanced=True, tooltip=f"Empty: {B.ENV_MODEL}, else the server's default."),
                io.Float.Input("timeout_s", default=60.0, min=1.0, max=600.0, step=1.0, advanced=True,
                               tooltip="How long to wait for the server; it is asked once (no retries hold the queue)."),
                io.Int.Input("max_tokens", default=512, min=8, max=4096, advanced=True,
                             tooltip="The most tokens a model may write."),
            ],
            outputs=[io.String.Output("image_prompt", display_name="image_prompt"),
                     io.String.Output("tags", display_name="tags"),
                     io.String.Output("lyrics", display_name="lyrics"),
                     io.Int.Output("bpm", display_name="bpm"),
                     io.Combo.Output("keyscale", display_name="keyscale", options=B.KEYSCALES),
                     io.Combo.Output("timesignature", display_name="timesignature", options=B.TIMESIGNATURES),
                     io.Combo.Output("language", display_name="language", options=B.LANGUAGES),
                     BriefType.Output("brief", display_name="brief"),
                     io.String.Output("report", display_name="report")])

    @classmethod
    def execute(cls, text, source, backend, fallback, seed, image_prompt, tags, lyrics, bpm, keyscale, timesignature,
                language, server_url="", model="", timeout_s=60.0, max_tokens=512, clip=None):
        cfg = dict(text=text, source=source, backend=backend, fallback=fallback, seed=seed, server_url=server_url,
                   model=model, timeout_s=timeout_s, max_tokens=max_tokens, clip=clip)
        if source == "my prompts":
            f = {"image_prompt": image_prompt, "tags": tags, "lyrics": lyrics, "bpm": bpm, "keyscale": keyscale,
                 "timesignature": timesignature, "language": language}
            written = B.Written(f, "my prompts (no model)", [])
            cfg["image_prompt"] = image_prompt
        else:
            shown, notes = B.prepare(text)
            raw, who, more, reply = _write(cfg, B.BRIEF_SYSTEM, B.brief_user(shown), B.brief_schema(),
                                           B.seed_for(shown, seed), clip=clip)
            if reply is None:
                f, fix = B.rules(shown), []
            else:
                f, fix = B.repair(raw, shown)
            written = B.Written(f, who, notes + more + fix, reply)
            cfg["image_prompt"] = f["image_prompt"]
        report = written.report()
        log.info("LockN Brief\n%s", report)
        f = written.fields
        return io.NodeOutput(f["image_prompt"], f["tags"], f["lyrics"], int(f["bpm"]), f["keyscale"],
                             f["timesignature"], f["language"], cfg, report, ui=ui.PreviewText(report))


class LockNMotionPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNMotionPrompt", display_name="Motion Prompt (LockN)", category=CATEGORY,
            description="Writes the image-to-video prompt from the brief AND the picture that was generated, in the "
                        "prompt style of the video family. Reads the picture with a model that sees images (LTX-2's "
                        "Gemma 3 through ComfyUI, or a vision model on the server); other backends write from the "
                        "brief alone and say so in the report.",
            inputs=[
                BriefType.Input("brief", tooltip="The Brief (LockN) node's brief output: text, source and backend."),
                io.Image.Input("image", tooltip="The first frame of the video (the first image of a batch is read)."),
                io.Combo.Input("style", options=B.STYLES, default="wan22",
                               tooltip="The video family whose I2V prompt style to follow."),
                io.String.Input("own_prompt", multiline=True, default="",
                                tooltip="Used as it is when the Brief's source is 'my prompts'."),
                io.Clip.Input("clip", optional=True,
                              tooltip="A text encoder that can write (default: the Brief's). LTX-2's Gemma 3 reads the image."),
            ],
            outputs=[io.String.Output("motion_prompt", display_name="motion_prompt"),
                     io.String.Output("report", display_name="report")])

    @classmethod
    def execute(cls, brief, image, style, own_prompt, clip=None):
        if brief.get("source") == "my prompts":
            report = B.Written({"motion_prompt": own_prompt}, "my prompts (no model)", []).report()
            return io.NodeOutput(own_prompt, report, ui=ui.PreviewText(report))
        shown, notes = B.prepare(brief["text"])
        raw, who, more, reply = _write(brief, B.MOTION_SYSTEM[style], B.motion_user(shown, brief.get("image_prompt", "")),
                                       B.motion_schema(), B.seed_for(shown + style, brief["seed"]), clip=clip,
                                       image=image[:1])
        if reply is None:
            motion, fix = B.motion_rules(shown, style), []
        else:
            motion, fix = B.repair_motion(raw, shown, style)
        report = B.Written({"motion_prompt": motion}, who, notes + more + fix, reply).report()
        log.info("LockN Motion prompt\n%s", report)
        return io.NodeOutput(motion, report, ui=ui.PreviewText(report))


BRIEF_NODES = [LockNBrief, LockNMotionPrompt]
