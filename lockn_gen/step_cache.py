"""Step caching (ComfyUI core's EasyCache) on the stages that can use it: which families, which settings, what
a turbo path leaves to skip, what the cache holds in memory, and the line that says what it skipped.

EasyCache (comfy_extras/nodes_easycache.py, ComfyUI 0.20.1 and 0.33.0) wraps the diffusion model's forward
through the DIFFUSION_MODEL wrapper: a step whose input changed little since the last computed step reuses
that step's output residual instead of running the transformer. It lives in the sampling run (one
KSampler / SamplerCustomAdvanced call): each run clones a fresh state and clears it at the end. So each
expert of Wan2.2 (the high-noise sampler runs the first segment of the schedule, the low-noise one the
rest) has its own state: the first step of a segment always runs, and so does the second (EasyCache needs
two computed steps to know how fast the output moves); from the third on a step may be skipped. Its
start and end are fractions of the whole schedule (the model's sigmas), not of the segment.

Nothing here imports ComfyUI: nodes/step_cache.py is the node, nodes/comfy_seam.py holds the hook.
"""
from __future__ import annotations

from dataclasses import dataclass

# core's EasyCache defaults (its node's inputs) and the range we accept for the threshold. Core allows 0..3;
# 0 skips nothing (turn the switch off instead) and above 1 a step's output may drift by more than its own size
THRESHOLD_DEFAULT, THRESHOLD_MIN, THRESHOLD_MAX, THRESHOLD_STEP = 0.2, 0.01, 1.0, 0.01
START_PERCENT, END_PERCENT = 0.15, 0.95
SUBSAMPLE = 8                    # core's subsample factor (the input change is measured on every 8th pixel)
FIRST_SKIPPABLE = 2              # steps 0 and 1 of a sampling run are always computed (see above)

# the families whose ComfyUI model calls the DIFFUSION_MODEL wrapper (checked in both versions' comfy/ldm)
CAN_CACHE = {"flux2": "Flux.2", "wan22": "Wan2.2", "ltx2": "LTX-2"}
CANNOT_CACHE = {
    "ace15": ("ACE-Step 1.5's model (comfy/ldm/ace/ace_step15.py) does not call ComfyUI's diffusion-model "
              "wrapper, the hook EasyCache works through, so a step cache on it would skip nothing. "
              "(ACE-Step 1.0 does; 1.5 runs 8 turbo steps anyway.)"),
}
# ComfyUI model classes (comfy.model_base) -> family, for a model that no LockN loader made
MODEL_CLASSES = {"Flux2": "flux2", "WAN21": "wan22", "WAN22": "wan22", "LTXAV": "ltx2", "LTXV": "ltx2",
                 "ACEStep15": "ace15"}


class StepCacheProblem(ValueError):
    """A step cache that cannot do what was asked: the message says why and what to change."""


@dataclass(frozen=True)
class Settings:
    threshold: float = THRESHOLD_DEFAULT
    start_percent: float = START_PERCENT
    end_percent: float = END_PERCENT


def check(family: str | None, settings: Settings, turbo: bool = False, where: str = "step cache") -> str | None:
    """Refuse what cannot work, before anything samples (StepCacheProblem); else a note for the log and the
    report (turbo paths), or None."""
    t = settings.threshold
    if not (THRESHOLD_MIN <= t <= THRESHOLD_MAX):
        raise StepCacheProblem(
            f"{where}: reuse_threshold {t:g} is out of range; use {THRESHOLD_MIN:g} to {THRESHOLD_MAX:g} (0.1 skips "
            f"few steps and keeps the output closest, 0.2 is core's default, 0.3 skips more). To skip nothing, turn "
            f"the step cache off.")
    if not (0.0 <= settings.start_percent < settings.end_percent <= 1.0):
        raise StepCacheProblem(
            f"{where}: start_percent {settings.start_percent:g} and end_percent {settings.end_percent:g} must satisfy "
            f"0 <= start < end <= 1 (core's defaults: {START_PERCENT:g} and {END_PERCENT:g}).")
    if family in CANNOT_CACHE:
        raise StepCacheProblem(f"{where}: {CANNOT_CACHE[family]} Turn the step cache off for this model.")
    if family == "wan22" and turbo:
        raise StepCacheProblem(
            f"{where}: the Wan2.2 turbo path runs 2 steps on each expert, and a step cache computes the first 2 steps "
            f"of each sampler before it can skip one: it would skip nothing. Turn off either 'cache steps' or "
            f"'turbo' (turbo alone is the faster of the two).")
    if turbo:
        name = CAN_CACHE.get(family or "", "this model")
        return (f"{name} turbo path with a step cache: the turbo path has few steps and the cache computes the first "
                f"{FIRST_SKIPPABLE} of each sampling run, so it can skip at most a few; the report says how many it did.")
    return None


def family_of(model_class: str | None) -> str | None:
    return MODEL_CLASSES.get(model_class or "")


def most_skippable(steps: int) -> int:
    """The most steps a sampling run of `steps` can skip (the first FIRST_SKIPPABLE always run)."""
    return max(0, steps - FIRST_SKIPPABLE)


def cache_bytes(latent_numel: int, conds: int, element_bytes: int = 4) -> int:
    """What EasyCache holds while it samples: one output residual per condition (positive, and negative
    when cfg > 1) the size of the latent batch, plus the subsampled previous input and output of the first
    condition (every SUBSAMPLE-th pixel of the last two dimensions)."""
    full = latent_numel * max(1, conds) * element_bytes
    sub = 2 * latent_numel * element_bytes // (SUBSAMPLE * SUBSAMPLE)
    return full + sub


@dataclass
class Run:
    """One sampling run with the cache on: which sampler node, how many steps it ran and skipped."""
    prompt_id: str | None
    node: str | None
    title: str | None
    family: str | None
    threshold: float
    steps: int
    skipped: int
    cache_bytes: int = 0
    seconds: float = 0.0
    note: str | None = None

    @property
    def speedup(self) -> float:
        done = self.steps - self.skipped
        return self.steps / done if done > 0 else 1.0

    def line(self) -> str:
        who = f"{self.title or 'sampler'} (node {self.node})" if self.node else (self.title or "sampler")
        return (f"step cache on {who}: skipped {self.skipped}/{self.steps} steps at threshold {self.threshold:g} "
                f"(x{self.speedup:.2f} fewer model calls)")

    def to_dict(self) -> dict:
        return {"prompt_id": self.prompt_id, "node": self.node, "title": self.title, "family": self.family,
                "threshold": self.threshold, "steps": self.steps, "skipped": self.skipped,
                "cache_bytes": self.cache_bytes, "seconds": round(self.seconds, 3), "note": self.note,
                "line": self.line()}


def progress_text(d: dict) -> str:
    """The client's line for a lockn.step_cache event."""
    return f"skipped {d.get('skipped', 0)}/{d.get('steps', 0)} steps (step cache, threshold {d.get('threshold', 0):g})"


def no_switch_here(input_name: str) -> str:
    """What to add to a "has no input" answer when the input asked for is a step cache switch: where there
    is none (the Music stage), why."""
    if "cache" not in input_name.lower():
        return ""
    return (". A stage without 'cache_steps' has no step cache: only the Image (Flux.2) and Video (Wan2.2, LTX-2) "
            "stages have one; " + CANNOT_CACHE["ace15"])
