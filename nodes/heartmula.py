"""HeartMuLa songs inside the graph (issue 24): one node, the model in a worker process in HeartMuLa's own Python
(lockn_gen/heartmula.py), held as a residency entry like the models the loaders hold.

Its files (ComfyUI's models/HeartMuLa, heartlib's layout) are read before anything loads; the loaded model goes
through the registry's load seam: counted against the budgets (the worker's resident memory, or what it put on the
GPU), evicted, pinned and freed (`/free`) like the rest. Progress (one step per generated frame) reaches ComfyUI's
bar; Cancel stops the run between frames (the worker is killed; the next run loads again).
"""
from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from ..lockn_gen import heartmula as hm
from . import comfy_models as cm
from . import comfy_seam as seam
from .residency import REGISTRY, load

log = logging.getLogger("lockn_gen.heartmula")
CATEGORY = "LockN Gen/music"
TAGS = "pop,piano,happy,upbeat"
LYRICS = ("[Verse]\nThe sun creeps in across the floor\nA lighthouse hums a quiet tune\n\n"
          "[Chorus]\nHold the light until the morning\nHold the light for me")


def register_folder() -> None:
    """models/HeartMuLa as ComfyUI's `heartmula` model folder (extra_model_paths.yaml may add more)."""
    import folder_paths
    default = os.path.join(folder_paths.models_dir, hm.FOLDER)
    if default not in cm.folder_dirs(hm.FOLDER_KEY):
        folder_paths.add_model_folder_path(hm.FOLDER_KEY, default)


def roots() -> list[str]:
    return cm.folder_dirs(hm.FOLDER_KEY)


def model_choices() -> list[str]:
    found = [m for r in roots() for m in hm.models_in(r)]
    return list(dict.fromkeys([*found, *hm.MODELS]))


def layout(model: str) -> hm.Layout:
    """The set the model's folder belongs to, checked; the first HeartMuLa folder is where a missing one is asked."""
    dirs = roots()
    root = next((r for r in dirs if os.path.isdir(os.path.join(r, model))), dirs[0] if dirs else hm.FOLDER)
    return hm.check(root, model)


def spec_for(lay: hm.Layout, dtype: str) -> cm.LoadSpec:
    """The registry's unit: the model's and the codec's weight files together (what the worker holds)."""
    return cm.LoadSpec(kind="heartmula_worker", family="heartmula", role="heartmula",
                       files=tuple((hm.FOLDER_KEY, p) for p in lay.weights), options=(("dtype", dtype),), mode="music",
                       label=f"{os.path.basename(lay.model)} + {os.path.basename(lay.codec)}")


def _engine(lay: hm.Layout, dtype: str) -> hm.Engine:
    spec = spec_for(lay, dtype)
    REGISTRY.will_use([spec])

    def start():
        eng = hm.Engine(lay, dtype=dtype)
        eng.start()
        log.info("LockN HeartMuLa: loaded %s in %.1f s on %s", lay.names(), eng.load_seconds, eng.device)
        return eng
    return load(spec, start)


class LockNHeartMuLa(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        models = model_choices()
        return io.Schema(
            node_id="LockNHeartMuLa", display_name="HeartMuLa Music (LockN)", category=CATEGORY,
            description="Makes a song from lyrics and style tags with HeartMuLa (heartlib), the plan's second music "
                        "model (for lyrics in many languages). It runs in HeartMuLa's own Python environment "
                        "(LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh), from the files in ComfyUI's models/HeartMuLa "
                        "(HeartMuLaGen, HeartMuLa-oss-3B, HeartCodec-oss, as heartlib's README downloads them). The "
                        "loaded model stays resident between runs and counts against LockN's budgets like any model.",
            inputs=[
                io.Combo.Input("model", options=models, default=models[0],
                               tooltip="The HeartMuLa model folder in models/HeartMuLa (any folder whose config.json "
                                       "is a HeartMuLa model), used with the HeartCodec-oss and tokenizer beside it."),
                io.String.Input("tags", multiline=True, default=TAGS,
                                tooltip="Style tags, comma-separated without spaces (heartlib's format): genre, "
                                        "instruments, mood."),
                io.String.Input("lyrics", multiline=True, default=LYRICS,
                                tooltip="The lyrics with section markers ([Verse], [Chorus], ...); any language. "
                                        "Empty makes an instrumental."),
                io.Float.Input("seconds", default=30.0, min=1.0, max=240.0, step=0.08,
                               tooltip="Length of the song (at most; the model may end it sooner). 80 ms per frame."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="The sampling seed."),
                io.Float.Input("cfg_scale", default=1.5, min=1.0, max=10.0, step=0.1,
                               tooltip="Classifier-free guidance (heartlib's default 1.5; 1.0 turns it off and "
                                       "halves the work)."),
                io.Float.Input("temperature", default=1.0, min=0.05, max=2.0, step=0.05,
                               tooltip="Sampling temperature (heartlib's default 1.0)."),
                io.Int.Input("topk", default=50, min=1, max=1000, tooltip="Top-k sampling (heartlib's default 50)."),
                io.Int.Input("codec_steps", default=10, min=1, max=100, advanced=True,
                             tooltip="HeartCodec's flow-matching steps when it decodes the song (heartlib's default 10)."),
                io.Combo.Input("dtype", options=list(hm.DTYPES), default="auto", advanced=True,
                               tooltip="The model's precision: auto is bfloat16 on a GPU (heartlib's example), float32 "
                                       "on a CPU. The codec runs in float32."),
            ],
            outputs=[io.Audio.Output(display_name="AUDIO")])

    @classmethod
    def fingerprint_inputs(cls, model, dtype="auto", **_kw):
        """The files' identity beside the inputs ComfyUI compares: files replaced on disk make the song again."""
        try:
            return repr(spec_for(layout(model), dtype).identity())
        except Exception as e:          # noqa: BLE001  (errors surface when the node runs)
            return f"error:{e}"

    @classmethod
    def execute(cls, model, tags, lyrics, seconds, seed, cfg_scale, temperature, topk, codec_steps=10,
                dtype="auto") -> io.NodeOutput:
        import torch
        lay = layout(model)                       # before anything loads: every file there and whole
        eng = _engine(lay, dtype)                 # (a Python without heartlib is said by its worker, at once)
        bar = seam.progress_bar(max(1, int(round(seconds / hm.FRAME_SECONDS)) + 2))
        try:
            wav, rate = eng.generate(tags, lyrics.strip() or "[Instrumental]", seconds, seed, cfg=cfg_scale,
                                     temperature=temperature, topk=topk, codec_steps=codec_steps,
                                     on_step=lambda step, steps: bar.update_absolute(step, steps),
                                     should_stop=seam.interrupted)
        except hm.Interrupted:
            REGISTRY.refresh_now()              # the worker is gone: its entry reads dropped at once
            seam.raise_interrupted()
        except BaseException:
            REGISTRY.refresh_now()
            raise
        wav = torch.from_numpy(wav).float()
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        wav = wav[:, : int(round(seconds * rate))]          # the song, at most as long as asked
        return io.NodeOutput({"waveform": wav.unsqueeze(0).contiguous(), "sample_rate": rate})


HEARTMULA_NODES = [LockNHeartMuLa]
