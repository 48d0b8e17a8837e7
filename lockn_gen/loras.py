"""LoRAs: which file a LoRA slot may take, and whether a LoRA file fits a model. Plain Python.

A LoRA in ComfyUI is a set of patches on a clone of the base model's ModelPatcher; the base's weights
stay where they are (nodes/loras.py does that through ComfyUI). This module decides, before anything
is sampled, whether a chosen file may patch a model of a family (and, for Wan2.2 A14B, an expert):

- a catalog LoRA declares its family and expert: a mismatch is refused by name;
- any LoRA's keys are matched against the model's LoRA key map (ComfyUI's, see `fit`): a file of
  which no key fits is another model's LoRA, and is refused with a guess of whose it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .catalog import Catalog, FileEntry

NONE = "None"
EXPERTS = {"high_noise": "high-noise", "low_noise": "low-noise"}
LORA_EXTENSIONS = (".safetensors", ".sft")
# what a LoRA key ends with after its module name: the longest is 3 parts (lora_linear_layer.up.weight)
_MAX_SUFFIX_PARTS = 3
# prefixes trainers put before the module name, stripped when guessing the family
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "lora_unet_", "lycoris_")


class LoraProblem(ValueError):
    """A LoRA that cannot be used where it was given; the message names the file and the fix."""


@dataclass(frozen=True)
class Fit:
    keys: int                 # LoRA tensors
    fitting: int              # tensors whose module the model has
    modules: int              # distinct modules patched
    misses: tuple[str, ...]   # a few keys that fit nothing (for the message)
    targets: frozenset = frozenset()   # the model's weight keys it patches

    @property
    def none_fit(self) -> bool:
        return self.keys > 0 and self.fitting == 0


def module_of(key: str, key_map) -> str | None:
    """The module a LoRA tensor patches, if the model has it: the longest prefix of the key (dropping
    1-3 trailing parts: `.lora_up.weight`, `.alpha`, `.diff_b`, `.lora_linear_layer.up.weight`) that the
    key map knows."""
    parts = key.split(".")
    for drop in range(1, min(_MAX_SUFFIX_PARTS, len(parts) - 1) + 1):
        if drop == 3 and parts[-3] not in ("lora", "lora_linear_layer"):     # the only 3-part suffixes
            break
        prefix = ".".join(parts[:-drop])
        if prefix in key_map:
            return prefix
    return None


def fit(keys, key_map) -> Fit:
    """How many of a LoRA's tensors fit a model whose LoRA key map (LoRA module name -> weight key) is
    `key_map`. ComfyUI logs "lora key not loaded" for each that does not."""
    keys = list(keys)
    modules, misses, fitting = set(), [], 0
    for k in keys:
        m = module_of(k, key_map)
        if m is None:
            misses.append(k)
        else:
            fitting += 1
            modules.add(key_map[m])
    return Fit(len(keys), fitting, len(modules), tuple(misses[:5]), frozenset(modules))


_FAMILY_SIGNS = (
    # (family, display name, regex on a key with the trainer prefix stripped)
    ("ltx2", "LTX-2", re.compile(r"(^|[._])(audio_attn|audio_ff|audio_to_video|video_to_audio|audio_)")),
    ("ltx2", "LTX-2 or LTX-Video", re.compile(r"^transformer_blocks[._]\d+[._](attn1|attn2|ff)[._]")),
    ("flux2", "Flux", re.compile(r"^(double_blocks|single_blocks)[._]\d+")),
    ("wan22", "Wan", re.compile(r"^blocks[._]\d+[._](self_attn|cross_attn|ffn)[._]")),
    ("ace15", "ACE-Step 1.5", re.compile(r"^(decoder[._])?layers[._]\d+[._](self_attn|cross_attn|mlp)[._]")),
)


def guess_family(keys) -> tuple[str, str]:
    """(family id, readable name) that a LoRA's key names suggest, or ("", "") when they say nothing."""
    for raw in list(keys)[:400]:
        k = raw
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        for fam, name, sign in _FAMILY_SIGNS:
            if sign.search(k):
                return fam, name
    return "", ""


def choices(catalog: Catalog, family: str, on_disk: list[str]) -> list[str]:
    """A LoRA slot's options: None, the family's catalog LoRAs (downloaded or not: a missing one says how
    to get it), then every LoRA file in ComfyUI's loras folder(s)."""
    cat = sorted(f.name for f in catalog.files.values() if f.kind == "lora" and f.family == family)
    rest = sorted(n for n in on_disk if n.lower().endswith(LORA_EXTENSIONS) and n not in cat)
    return [NONE, *cat, *rest]


def check_choice(catalog: Catalog, name: str, family: str, expert: str | None = None) -> FileEntry | None:
    """Refuse a catalog LoRA of another family, or a Wan2.2 expert LoRA given to the other expert. Returns
    the catalog entry (None for a user's own file, checked later by its keys)."""
    entry = catalog.file(name)
    if entry is None or entry.kind != "lora":
        return None
    fam = catalog.families.get(family)
    fam_name = fam.display_name if fam else family
    if entry.family != family:
        other = catalog.families.get(entry.family)
        raise LoraProblem(f"{name} is a {other.display_name if other else entry.family} LoRA (LockN catalog), and "
                          f"this node patches a {fam_name} model. Use it on a {other.display_name if other else entry.family} "
                          f"LoRA node, or choose a {fam_name} LoRA.")
    if expert and entry.expert and entry.expert != expert:
        raise LoraProblem(f"{name} is the {EXPERTS[entry.expert]} expert's half of a {fam_name} LoRA pair (LockN "
                          f"catalog), and it was given to the {EXPERTS.get(expert, expert)} expert. Put it in a "
                          f"{entry.expert.split('_')[0]}_lora slot; its other half goes to the other expert.")
    return entry


def no_fit_message(name: str, family_name: str, f: Fit, keys) -> str:
    fam, guess = guess_family(keys)
    looks = f" Its key names look like a LoRA for {guess}." if guess else ""
    return (f"{name}: none of its {f.keys} tensors fits this {family_name} model (for example {f.misses[0]!r}).{looks} "
            f"It is a LoRA for another model; choose a {family_name} LoRA.")


_UP = (".lora_up.weight", ".lora_B.weight", ".lora.up.weight")
_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")


def shape_mismatches(lora_shapes: dict, key_map, weight_shapes: dict) -> list[str]:
    """LoRA matrices whose sizes do not fit the weight they patch (a LoRA of the same family for another
    model size: Wan2.2 5B against A14B, say). ComfyUI would skip each with an error in the log."""
    out = []
    for k, shape in lora_shapes.items():
        end = next((e for e in _UP + _DOWN if k.endswith(e)), None)
        if end is None or len(shape) != 2:
            continue
        w = weight_shapes.get(key_map.get(k[:-len(end)], ""))
        if not w or len(w) < 2:
            continue
        # a convolution's LoRA may come flattened ([rank, in * kernel], as core's trainer writes it): ComfyUI
        # multiplies the flattened matrices and reshapes to the weight, so what must match is the product
        inner = 1
        for d in w[1:]:
            inner *= d
        dim, want = (shape[0], w[0]) if end in _UP else (shape[1], w[1] if shape[1] == w[1] else inner)
        if dim != want:
            out.append(f"{k} {list(shape)} against the weight {list(w)}")
    return out
