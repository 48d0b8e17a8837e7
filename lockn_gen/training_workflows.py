"""The shipped LoRA training workflows (issue 25), built with the chains' Graph and written with them.

One per modality, on the base that trains next to the LLMs (bench/RESULTS.md, the README's training table):

- train_flux2_lora: Flux.2 klein 4B (bf16, 7.75 GB) from a folder of pictures;
- train_wan22_lora: Wan2.2 TI2V 5B from a folder of pictures (each a one-frame clip) or of clips (their first
  `frames` frames); the A14B experts train one at a time: choose an I2V preset and connect the expert's MODEL;
- train_ace15_lora: ACE-Step 1.5 turbo from a folder of audio with tags.

Each has the base's loader on the top level, a "Data" stage (the folder and its captions: Training Data
(LockN) and core's Make Training Dataset, or Training Audio (LockN)), a "Train" stage (Train LoRA (LockN):
core's trainer on the resident base) and core's Plot Loss Graph. The example datasets
(workflows/input/lockn_train_pictures, lockn_train_music) are copied into ComfyUI's input folder at start-up,
so a workflow runs as shipped; `python -m lockn_gen.training_workflows` rewrites them.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import catalog as catalog_mod
from . import training as T

EXAMPLES = Path(__file__).resolve().parents[1] / "workflows" / "input"
PICTURES, MUSIC = "lockn_train_pictures", "lockn_train_music"
EXAMPLE_FOLDERS = (PICTURES, MUSIC)
DATA, TRAIN = "Data", "Train"
PRESETS = {"flux2": "flux2-klein-4b", "wan22": "wan22-ti2v-5b", "ace15": "ace15-turbo"}
# (steps, rank, learning rate): the common style-LoRA settings of the trainers users leave ComfyUI for
SETTINGS = {"flux2": (500, 16, 1e-4), "wan22": (500, 16, 1e-4), "ace15": (500, 16, 1e-4)}
STAGE_NAMES = {DATA: "Training data (folder and captions)", TRAIN: "Train LoRA (ComfyUI's trainer, resident base)"}


def _train(g, m, model_out: int, family: str, latents, conditioning) -> str:
    steps, rank, lr = SETTINGS[family]
    with g.stage(TRAIN, STAGE_NAMES[TRAIN]):
        t = g.add("LockNTrainLoRA", "Train LoRA", model=[m, model_out], latents=latents, conditioning=conditioning,
                  lora_name=f"my-{family}-style", steps=steps, rank=rank, learning_rate=lr, batch_size=1,
                  gradient_checkpointing=True, overwrite=False, seed=0, optimizer="AdamW", training_dtype="bf16",
                  lora_dtype="bf16")
        for key in ("lora_name", "steps", "rank", "learning_rate", "overwrite", "seed", "gradient_checkpointing"):
            g.face(t, key, key)
        g.face(t, 0, "lora")
        g.face(t, 1, "loss")
    g.add("LossGraphNode", "Loss curve", loss=[t, 1], filename_prefix=f"LockN/train_{family}_loss")
    return t


def _pictures_data(g, m, clip_out: int, vae_out: int, clips: bool = False):
    """The Data stage of a picture family; `clips`: the folder may hold clips instead (its face shows frames)."""
    with g.stage(DATA, STAGE_NAMES[DATA]):
        d = g.add("LockNTrainingData", "Training pictures", folder=PICTURES, captions=T.CAPTIONS_PER_FILE, caption="",
                  bucket_by_size=False, frames=33)
        ds = g.add("MakeTrainingDataset", None, images=[d, 0], vae=[m, vae_out], clip=[m, clip_out], texts=[d, 1])
        for key in ("folder", "captions", "caption", "bucket_by_size", *(("frames",) if clips else ())):
            g.face(d, key, key)
        g.face(ds, 0, "latents")
        g.face(ds, 1, "conditioning")
    return [ds, 0], [ds, 1]


def _loader(g, family: str):
    from .chains import _loader as loader
    m = loader(g, family, PRESETS[family], "Base model")
    return m


def train_flux2_lora():
    from .chains import Graph
    g = Graph()
    m = _loader(g, "flux2")
    lat, cond = _pictures_data(g, m, 1, 2)
    _train(g, m, 0, "flux2", lat, cond)
    return g


def train_wan22_lora():
    from .chains import Graph
    g = Graph()
    m = _loader(g, "wan22")
    lat, cond = _pictures_data(g, m, 2, 3, clips=True)
    _train(g, m, 0, "wan22", lat, cond)
    return g


def train_ace15_lora():
    from .chains import Graph
    g = Graph()
    m = _loader(g, "ace15")
    with g.stage(DATA, STAGE_NAMES[DATA]):
        d = g.add("LockNTrainingAudio", "Training audio", folder=MUSIC, vae=[m, 2], clip=[m, 1],
                  captions=T.CAPTIONS_PER_FILE, caption="", seconds=30.0, bpm=90)
        for key in ("folder", "captions", "caption", "seconds", "bpm"):
            g.face(d, key, key)
        g.face(d, 0, "latents")
        g.face(d, 1, "conditioning")
    _train(g, m, 0, "ace15", [d, 0], [d, 1])
    return g


WORKFLOWS = {"train_flux2_lora": train_flux2_lora, "train_wan22_lora": train_wan22_lora,
             "train_ace15_lora": train_ace15_lora}
FAMILY_OF = {"train_flux2_lora": "flux2", "train_wan22_lora": "wan22", "train_ace15_lora": "ace15"}


# ---- the notes beside the stages ---------------------------------------------------------------------------
WHY_BASE = {
    "flux2": ("Flux.2 klein 4B (bf16, 7.75 GB) is the base that trains beside the LLMs: what training adds to it is "
              "estimated before it starts (the log line) and reserved within LockN's budgets. Flux.2 dev (32B) trains "
              "too, fp8 or GGUF (its quantized weights stay frozen and are dequantized each step, slower), but its "
              "33-35 GB before any training memory crowd the LLMs. A klein LoRA does not fit dev, nor the other way."),
    "wan22": ("Wan2.2 TI2V 5B (10 GB) is the video base that trains beside the LLMs. The I2V A14B experts train one "
              "at a time (choose an A14B preset and connect the expert's MODEL: the LoRA is marked with its expert, "
              "and the LoRA node refuses it on the other)."),
    "ace15": ("ACE-Step 1.5 turbo trains from audio and tags. ComfyUI 0.20.1's own trainer cannot (its rotary tables "
              "are inference tensors): Train LoRA (LockN) hands it ordinary copies of them."),
}


def _start_note(name: str, g) -> str:
    family = FAMILY_OF[name]
    steps, rank, lr = SETTINGS[family]
    media = "audio files (.wav .flac .mp3 .ogg)" if family == "ace15" else "pictures (.png .jpg .webp)"
    folder = MUSIC if family == "ace15" else PICTURES
    lines = ["## Start here", "",
             f"1. Put your {media} into a folder under ComfyUI's **input** folder, each with its caption in a .txt of "
             f"the same name (or choose *one caption for all* on the **Data** stage). The example `{folder}` is "
             "there already.",
             "2. On the **Data** stage choose the folder; on the **Train** stage give the LoRA a *lora_name*.",
             f"3. **Run**. Core's trainer runs on the base the loader holds (nothing is read again). Defaults: {steps} "
             f"steps, rank {rank}, learning rate {lr:g}.",
             f"4. The LoRA is saved as `models/loras/lockn/<lora_name>.safetensors` and is in the "
             f"{catalog_mod.builtin().families[family].display_name} LoRA (LockN) node's list at once. Running again "
             "under the same name is refused unless *overwrite* is on.", "",
             "Refused before training, with the fix: an empty folder, a file without a caption, pictures of several "
             "sizes without *bucket_by_size*, a run past LockN's memory budgets (with the figures: rank, batch, "
             "checkpointing, resolution).", "",
             "From a terminal (the same workflow through ComfyUI's API, with progress):", "",
             f"    lockn-gen train --family {family} --data {folder} --name my-style --steps {steps}", "",
             "or any setting of this file by its stage and face name:", "",
             f"    lockn-gen run workflows/{name}.json --set \"Data.folder={folder}\" --set \"Train.lora_name=my-style\"", "",
             WHY_BASE[family]]
    return "\n".join(lines)


def _time_note(name: str) -> str:
    return ("## Time and memory\n\nWhat training adds to the base (adapters, gradients, optimizer state, activations) "
            "is estimated before it starts and reserved within LockN's budgets; the log and a refusal give the "
            "figures. Measured steps per second and peak memory: bench/RESULTS.md (training).")


def notes(name: str, g) -> list[tuple[str, str]]:
    from .chains import _files_note
    return [("Start here", _start_note(name, g)), ("Model files", _files_note(g)), ("Time and memory", _time_note(name))]


# ---- the example datasets -------------------------------------------------------------------------------------
CAPTIONS = ["lockn poster style, a pale sun over wavy peach and blue bands",
            "lockn poster style, a pale sun over wavy blue and green bands",
            "lockn poster style, a pale sun over wavy green and yellow bands",
            "lockn poster style, a pale sun over wavy yellow and peach bands"]
TAGS = ["lockn style, calm lo-fi, warm pad chords, slow tempo", "lockn style, calm lo-fi, soft bells, slow tempo"]


def _poster(i: int, size: int = 256):
    """A flat, banded pastel picture (the example style): deterministic, a few kB as PNG."""
    import numpy as np
    y, x = np.mgrid[0:size, 0:size] / size
    hues = [(0.98, 0.80, 0.70), (0.70, 0.85, 0.95), (0.85, 0.95, 0.80), (0.95, 0.90, 0.70)]
    a, b = np.array(hues[i % 4]), np.array(hues[(i + 1) % 4])
    t = np.floor((y + 0.15 * np.sin(6 * x + i)) * 6) / 6
    img = a * (1 - t[..., None]) + b * t[..., None]
    cx, cy, r = 0.3 + 0.1 * i, 0.35, 0.12 + 0.02 * i
    disc = (x - cx) ** 2 + (y - cy) ** 2 < r * r
    img[disc] = (0.99, 0.97, 0.92)
    return (np.clip(img, 0, 1) * 255).astype("uint8")


def _pad(i: int, seconds: float = 6.0, rate: int = 48000):
    """A soft chord with a slow swell, stereo float32 (the example music)."""
    import numpy as np
    t = np.arange(int(seconds * rate)) / rate
    root = 220.0 * (2 ** (i * 5 / 12))
    chord = sum(np.sin(2 * math.pi * root * r * t) for r in (1.0, 1.26, 1.5))
    env = 0.2 * (1 - np.cos(2 * math.pi * t / seconds)) / 2
    left = chord * env / 3
    right = np.roll(left, rate // 100)
    return np.stack([left, right]).astype("float32"), rate


def write_examples(root: Path = EXAMPLES) -> list[Path]:
    import av
    from PIL import Image
    out = []
    pics = root / PICTURES
    pics.mkdir(parents=True, exist_ok=True)
    for i, caption in enumerate(CAPTIONS):
        Image.fromarray(_poster(i)).save(pics / f"poster{i}.png", optimize=True)
        (pics / f"poster{i}.txt").write_text(caption + "\n")
        out += [pics / f"poster{i}.png", pics / f"poster{i}.txt"]
    music = root / MUSIC
    music.mkdir(parents=True, exist_ok=True)
    for i, tags in enumerate(TAGS):
        wave, rate = _pad(i)
        path = music / f"pad{i}.flac"
        with av.open(str(path), "w") as c:
            s = c.add_stream("flac", rate=rate, layout="stereo")
            frame = av.AudioFrame.from_ndarray((wave * 32767).astype("int16").T.reshape(1, -1), format="s16",
                                               layout="stereo")
            frame.sample_rate = rate
            for p in s.encode(frame):
                c.mux(p)
            for p in s.encode(None):
                c.mux(p)
        (music / f"pad{i}.txt").write_text(tags + "\n")
        out += [path, music / f"pad{i}.txt"]
    return out


if __name__ == "__main__":
    for p in write_examples():
        print(p)
