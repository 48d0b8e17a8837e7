"""LoRA training on a resident base, with ComfyUI core's trainer: what trains on which ComfyUI, the dataset's
checks, what training adds to memory and whether it fits, and the saved file's name and metadata. Plain Python.

Core's `TrainLoraNode` (comfy_extras/nodes_train.py) is the trainer; nodes/training.py calls it on the model
the LockN loader holds and saves its result where the LoRA nodes look. Measured on the tiny set
(bench/probe_training.py, bench/RESULTS.md) and by the server tests:

- ComfyUI 0.20.1 trains on a clone of the loaded base: nothing is read again. It cannot train ACE-Step 1.5
  as core runs it (its conditioning stays an inference tensor); LockN hands it a copy made for autograd.
- ComfyUI 0.33 rebuilds the base for training through the loader's `cached_patcher_init` (core's loaders
  read the file again; ComfyUI-GGUF's sets none, so core alone cannot train a GGUF base). LockN hands the
  trainer a structural copy of the resident model whose weights are the resident tensors themselves: no
  read, no second copy of the weights, for every base including GGUF.
- Clips of one size and length train on both versions; clips of several sizes (bucketed) only after 0.20.1
  (0.20.1's trainer repeats the first latent with 4-D sizes when the shapes differ).

Nothing here imports ComfyUI.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

GB = 1e9
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv")
CAPTION_EXTENSION = ".txt"
CAPTIONS_PER_FILE = "a .txt beside each file"
CAPTION_FOR_ALL = "one caption for all"
CAPTION_MODES = (CAPTIONS_PER_FILE, CAPTION_FOR_ALL)
SUBFOLDER = "lockn"                         # under models/loras: where trained LoRAs go
OPTIMIZERS = {"AdamW": 2, "Adam": 2, "SGD": 0, "RMSprop": 1}     # optimizer states per trained parameter
ALGORITHMS = ("LoRA",)                      # what the LockN LoRA node reads back (core has LoHa, LoKr, OFT too)
META = "lockn."                             # the metadata keys' prefix in the saved file
LOSS_POINTS = 200                           # the loss curve kept in the file's metadata

# family -> (readable name, dataset media, latent positions per transformer token (the patch), text tokens
# that run through the blocks' linears beside the latent's (joint attention), per ComfyUI version: trains?)
FAMILIES = {
    "flux2": ("Flux.2", "image", 1, True),
    "wan22": ("Wan2.2", "video", 4, False),
    "ace15": ("ACE-Step 1.5", "audio", 2, False),
}
# what core's trainer cannot do on a version, and what it would need (family, version prefix) -> why
CANNOT = {
    ("ltx2", ""): ("LTX-2 is not offered for training: its model takes video and audio latents together (one "
                   "nested latent), which core's trainer does not split into a dataset; it would need core's "
                   "trainer to accept LTX-2's audio-video latents, or LTX's own trainer outside ComfyUI."),
}
# families whose ComfyUI model cannot train without gradient checkpointing (measured: bench/bench_training.py)
NEEDS_CHECKPOINTING = {
    "flux2": ("Flux.2 trains only with gradient checkpointing on: ComfyUI's Flux blocks add their residuals in place "
              "(comfy/ldm/flux/layers.py, `img += ...`), which autograd refuses without checkpointing (\"one of the "
              "variables needed for gradient computation has been modified by an inplace operation\"), on 0.20.1 and "
              "0.33 and with core's own Train LoRA node too. Turn gradient_checkpointing on."),
}
VIDEO_NEEDS = ("clips of several sizes (bucketed) need the trainer of a ComfyUI after 0.20.1: 0.20.1's trainer "
               "repeats the first latent with 4-D sizes when the shapes differ, and a clip's latent is 5-D. Clips of "
               "one size and length train on 0.20.1; resize them to one size, or update ComfyUI (0.33 trains them).")


class TrainingProblem(ValueError):
    """Something that stops a training run before it starts; the message names the value and the fix."""


def version_tuple(version: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", version or "0")[:3])


def check_family(family: str, version: str, video_shapes: int = 0, checkpointing: bool = True) -> None:
    """Refuse what core's trainer cannot do on this ComfyUI, with why and what would be needed. `video_shapes`:
    how many different shapes the dataset's video latents have (0: no clips)."""
    if not checkpointing and family in NEEDS_CHECKPOINTING:
        raise TrainingProblem(NEEDS_CHECKPOINTING[family])
    for (fam, prefix), why in CANNOT.items():
        if fam == family and version.startswith(prefix):
            raise TrainingProblem(why)
    if family not in FAMILIES:
        raise TrainingProblem(f"no LockN training for the family {family!r}; it trains "
                              f"{', '.join(v[0] for v in FAMILIES.values())}")
    if video_shapes > 1 and version_tuple(version) <= (0, 20, 1):
        raise TrainingProblem(f"{FAMILIES[family][0]} on ComfyUI {version}: {VIDEO_NEEDS}")


# ---- the dataset ------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    folder: str
    files: list[str]                        # full paths, sorted
    captions: list[str]
    media: str                              # image | video | audio

    def __len__(self):
        return len(self.files)


def media_extensions(media: str) -> tuple:
    return {"image": IMAGE_EXTENSIONS, "video": VIDEO_EXTENSIONS, "visual": IMAGE_EXTENSIONS + VIDEO_EXTENSIONS}.get(
        media, AUDIO_EXTENSIONS)


def scan(folder: str, media: str, caption_mode: str = CAPTIONS_PER_FILE, caption: str = "",
         shown: str | None = None) -> Dataset:
    """The files of `folder` (not its subfolders) with their captions, or TrainingProblem: a missing or empty
    folder, a file with no caption when each needs one (all of them named), no caption at all. `media` "visual"
    takes pictures or clips (not both in one folder) and says which it found."""
    shown = shown or folder
    exts = media_extensions(media)
    what, plural = {"visual": ("picture or clip", "pictures or clips"), "image": ("picture", "pictures"),
                    "video": ("clip", "clips")}.get(media, ("audio", "audio files"))
    if not os.path.isdir(folder):
        raise TrainingProblem(f"training data folder {shown!r} not found (looked for {folder}). Make it (under "
                              f"ComfyUI's input folder) and put the {media} files there, each with its caption in a "
                              f".txt of the same name.")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if n.lower().endswith(exts) and os.path.isfile(os.path.join(folder, n)))
    if not files:
        raise TrainingProblem(f"training data folder {shown!r} ({folder}) has no {what} files ({', '.join(exts)}). "
                              f"Put the {plural} to learn from there.")
    if media == "visual":
        clips = [f for f in files if f.lower().endswith(VIDEO_EXTENSIONS)]
        if clips and len(clips) < len(files):
            raise TrainingProblem(f"training data folder {shown!r} mixes {len(files) - len(clips)} pictures and "
                                  f"{len(clips)} clips ({os.path.basename(clips[0])}); a run trains on one kind: put "
                                  f"them in two folders")
        media = "video" if clips else "image"
    if caption_mode not in CAPTION_MODES:
        raise TrainingProblem(f"captions {caption_mode!r}: choose {' or '.join(repr(m) for m in CAPTION_MODES)}")
    if caption_mode == CAPTION_FOR_ALL:
        if not caption.strip():
            raise TrainingProblem(f"captions are {CAPTION_FOR_ALL!r} but the caption is empty: write the caption "
                                  f"(the words that will call the style up), or use {CAPTIONS_PER_FILE!r}.")
        return Dataset(folder, files, [caption.strip()] * len(files), media)
    captions, missing = [], []
    for f in files:
        txt = os.path.splitext(f)[0] + CAPTION_EXTENSION
        text = ""
        if os.path.isfile(txt):
            with open(txt, encoding="utf-8", errors="replace") as fh:
                text = fh.read().strip()
        if not text:
            missing.append(os.path.basename(f))
        captions.append(text)
    if missing:
        some = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise TrainingProblem(f"training data folder {shown!r}: {len(missing)} of {len(files)} files have no caption "
                              f"({some}). Write each caption into a .txt of the same name ({os.path.splitext(missing[0])[0]}"
                              f"{CAPTION_EXTENSION}), or choose {CAPTION_FOR_ALL!r} and write one caption.")
    return Dataset(folder, files, captions, media)


def check_sizes(sizes: dict[str, tuple[int, int]], bucket: bool, shown: str) -> None:
    """Pictures of different sizes train only in buckets (core's ResolutionBucket): refuse them otherwise."""
    kinds = sorted(set(sizes.values()))
    if len(kinds) <= 1 or bucket:
        return
    first = {}
    for name, s in sizes.items():
        first.setdefault(s, name)
    listed = "; ".join(f"{w}x{h} ({first[(w, h)]})" for w, h in kinds[:4])
    raise TrainingProblem(f"training data folder {shown!r} has pictures of {len(kinds)} sizes: {listed}. Turn on "
                          f"'bucket by size' (each size trains in its own batches), or resize them to one size.")


# ---- the saved file ---------------------------------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,95}$")


def lora_file_name(name: str) -> str:
    """`name` -> lockn/<name>.safetensors (the LoRA lists' name), or TrainingProblem for an unsafe name."""
    stem = name.strip()
    if stem.lower().endswith(".safetensors"):
        stem = stem[:-len(".safetensors")]
    if not _NAME.match(stem) or ".." in stem:
        raise TrainingProblem(f"LoRA name {name!r}: use letters, digits, spaces, '.', '_' and '-' (up to 96), no "
                              f"folders; it is saved as models/loras/{SUBFOLDER}/<name>.safetensors")
    return f"{SUBFOLDER}/{stem}.safetensors"


def check_target(path: str, rel: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise TrainingProblem(f"a LoRA named {rel} already exists ({path}). Choose another name, or turn 'overwrite' on "
                              f"to replace it.")


def metadata(family: str, expert: str | None, base_file: str, base_hash: str, rank: int, steps: int,
             dataset_size: int, learning_rate: float, algorithm: str, comfyui: str, losses=()) -> dict[str, str]:
    """The saved file's metadata (strings, as safetensors keeps them)."""
    out = {"family": family, "expert": expert or "", "base_file": base_file, "base_hash": base_hash,
           "rank": str(int(rank)), "steps": str(int(steps)), "dataset_size": str(int(dataset_size)),
           "learning_rate": f"{learning_rate:g}", "algorithm": algorithm, "comfyui": comfyui,
           "trainer": "ComfyUI TrainLoraNode"}
    if losses:
        out["loss_first"], out["loss_last"] = f"{losses[0]:.6g}", f"{losses[-1]:.6g}"
        out["losses"] = json.dumps(loss_curve(losses))
    return {META + k: v for k, v in out.items()}


def loss_curve(losses, points: int = LOSS_POINTS) -> list[float]:
    """The loss per step, or the means of `points` equal runs of steps when there are more steps than that."""
    losses = [float(x) for x in losses]
    if len(losses) <= points:
        return [round(x, 6) for x in losses]
    per = len(losses) / points
    return [round(sum(c) / len(c), 6) for c in (losses[int(i * per):int((i + 1) * per)] for i in range(points)) if c]


def read_metadata(meta: dict) -> dict[str, str]:
    """A file's LockN training metadata (without the prefix); {} for a LoRA LockN did not train."""
    return {k[len(META):]: str(v) for k, v in (meta or {}).items() if k.startswith(META)}


def check_lora_use(meta: dict, name: str, family: str, family_name: str, expert: str | None) -> None:
    """Refuse a LockN-trained LoRA on another family, or on the other Wan2.2 expert (its metadata says)."""
    m = read_metadata(meta)
    if not m:
        return
    fam = m.get("family", "")
    if fam and fam != family:
        other = FAMILIES.get(fam, (fam,))[0]
        raise TrainingProblem(f"{name} was trained on {other} ({m.get('base_file', '?')}), and this node patches a "
                              f"{family_name} model. Use it on the {other} LoRA node.")
    trained_on = m.get("expert", "")
    if expert and trained_on and trained_on != expert:
        readable = {"high_noise": "high-noise", "low_noise": "low-noise"}
        raise TrainingProblem(f"{name} was trained on the {readable.get(trained_on, trained_on)} expert "
                              f"({m.get('base_file', '?')}), and it was given to the {readable.get(expert, expert)} "
                              f"expert. Put it in the {trained_on.split('_')[0]}_lora slots.")


# ---- what training adds to memory -------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    rank: int = 16
    batch: int = 1
    optimizer: str = "AdamW"
    checkpointing: bool = True
    lora_bytes: int = 4                     # fp32 adapters (core's default lora_dtype is bf16: 2)
    compute_bytes: int = 2                  # bf16 activations (fp32 training: 4)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from the base: its 2-D weights' (out, in) and how its blocks go."""
    linears: tuple                          # ((out, in), ...) of every weight the trainer adapts
    hidden: int                             # the blocks' width
    blocks: int                             # transformer blocks
    block_outputs: int                      # sum of the linears' output widths in the widest block
    weights: int = 0                        # elements of all adapted weights (sum of out x in)
    unit_weights: int = 0                   # elements of the adapted weights alive at once with checkpointing: the
                                            # largest checkpointed unit's, plus those outside every unit


@dataclass(frozen=True)
class Cost:
    adapter_params: int
    adapters: int                           # bytes: the LoRA matrices
    gradients: int
    optimizer: int
    activations: int
    tokens: int
    settings: Settings
    shape: ModelShape = field(repr=False)
    family: str = ""
    weights: int = 0                        # bytes: adapted weights (W + BA) kept for backward, and their gradients

    @property
    def total(self) -> int:
        return self.adapters + self.gradients + self.optimizer + self.activations + self.weights

    def line(self) -> str:
        s = self.settings
        return (f"{self.total / GB:.2f} GB (LoRA rank {s.rank}: {self.adapter_params / 1e6:.1f} M parameters, "
                f"{self.adapters / GB:.2f} GB; gradients {self.gradients / GB:.2f} GB; {s.optimizer} state "
                f"{self.optimizer / GB:.2f} GB; activations of batch {s.batch} x {self.tokens} tokens "
                f"{'with' if s.checkpointing else 'without'} gradient checkpointing {self.activations / GB:.2f} GB; "
                f"adapted weights kept for backward {self.weights / GB:.2f} GB)")


# Per token, a transformer block keeps for backward each linear's output and about as much again (norms,
# activations, residuals, attention's softmax statistics): ACTIVATION_FACTOR x the block's linear outputs.
# Gradient checkpointing keeps one input per block (hidden wide) and recomputes one block at a time.
ACTIVATION_FACTOR = 2
# Core's LoRA adapts a weight by making W + BA in the compute dtype at each forward (comfy/weight_adapter/lora.py),
# and autograd keeps it for the input's gradient; backward makes its gradient as large. Without checkpointing (or
# with core's default depth, which checkpoints the whole model as one unit) every adapted weight is alive at once;
# with the blocks checkpointed one at a time, one unit's. Measured on ACE-Step 1.5 at full size (2.4 B, bf16, CPU,
# bench/RESULTS.md): +9.0 GB without checkpointing or at core's depth 1, about +2 GB with the blocks checkpointed.
WEIGHT_COPIES = 2


def estimate(shape: ModelShape, tokens: int, settings: Settings, family: str = "") -> Cost:
    params = sum(settings.rank * (o + i) for o, i in shape.linears)
    adapters = params * settings.lora_bytes
    grads = adapters
    opt = params * 4 * OPTIMIZERS.get(settings.optimizer, 2)
    per_block = tokens * shape.block_outputs * ACTIVATION_FACTOR * settings.compute_bytes
    if settings.checkpointing:
        act = tokens * shape.hidden * settings.compute_bytes * shape.blocks + per_block
    else:
        act = per_block * shape.blocks
    act *= settings.batch
    kept = (shape.unit_weights if settings.checkpointing else shape.weights) * WEIGHT_COPIES * settings.compute_bytes
    return Cost(params, adapters, grads, opt, int(act), tokens, settings, shape, family, int(kept))


def tokens_of(family: str, latent_shape: tuple, text_tokens: int = 0) -> int:
    """Transformer tokens per sample of a latent (batch first, channels second) for a family."""
    positions = 1
    for d in latent_shape[2:]:
        positions *= int(d)
    _, _, patch, joint = FAMILIES.get(family, ("", "", 1, False))
    return max(1, positions // patch) + (text_tokens if joint else 0)


def fixes(cost: Cost) -> list[str]:
    """What would make a run that does not fit smaller, with the figures."""
    s = cost.settings
    out = []
    family = cost.family

    def alt(**change) -> str:
        tokens = change.pop("tokens", cost.tokens)
        return f"{estimate(cost.shape, tokens, Settings(**{**s.__dict__, **change}), family).total / GB:.2f} GB"
    if not s.checkpointing and family not in NEEDS_CHECKPOINTING:
        out.append(f"turn gradient checkpointing on ({alt(checkpointing=True)})")
    if s.batch > 1:
        out.append(f"batch 1 ({alt(batch=1)})")
    if s.rank > 4:
        out.append(f"rank {max(4, s.rank // 2)} ({alt(rank=max(4, s.rank // 2))})")
    out.append(f"half the resolution ({alt(tokens=max(1, cost.tokens // 4))})")
    out.append("a smaller base (Flux.2 klein 4B instead of dev; one Wan2.2 expert at a time)")
    return out
