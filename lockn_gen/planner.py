"""Residency planner: what fits on the GPU next to the local LLMs, what swaps through system RAM,
how long a mode switch takes, and which presets to use (`lockn-gen plan`).

Plain Python (no ComfyUI, no torch). Sizes are GB = 1e9 bytes, as in the catalog.

How a run uses the GPU (ComfyUI's behaviour when memory is short): a preset's files work in stages,
prompt encoding (text encoder, LM), sampling (the diffusion model; Wan2.2's two experts one after
the other) and decoding (VAE). Against the GPU budget (total - used by others - reserve) a preset is
  resident  all its files plus the largest working memory fit: it loads once per mode switch;
  staged    only one stage at a time fits: every run loads and evicts its stages;
  streamed  even the largest stage does not fit: ComfyUI loads it partly and copies the rest from
            RAM on every step (estimated with no overlap of copy and compute, so pessimistic); a cost,
            not a wall: the quality target takes a streamed preset when its copies make sampling at
            most MAX_SLOWDOWN times slower than with every weight on the GPU, and says what it costs;
  no        the working memory alone exceeds the budget.
Across modes the planner pins on the GPU the presets that save the most swap time without pushing
another preset into a worse class above; the rest swap through system RAM (from disk if RAM is short).
The swaps are simulated with LockN's own residency policy (lockn_gen/residency.py: ModeCycle, plan,
refusal), called as the registry (nodes/residency.py) calls it, so the plan predicts the registry's
evictions: while the modes are used in a cycle the most recently used models go first, not the least
recently used (see cycle_steps).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import catalog as catalog_mod
from . import residency
from .residency import MODES

GB = 1e9
TARGETS = ("quality", "speed")

# The RTX Pro 6000 workstation this pack is built for.
DEFAULT_GPU_GB = 96.0       # RTX Pro 6000 Blackwell
DEFAULT_USED_GB = 74.0      # the local LLMs kept on the GPU
DEFAULT_RESERVE_GB = 2.0    # CUDA context, allocator slack, display
# Assumption: PCIe 5.0 x16 is ~63 GB/s per direction in theory and pinned cudaMemcpy reaches ~50 GB/s;
# model loads copy tensor by tensor, often from pageable memory, so plan with about half of that.
DEFAULT_BANDWIDTH_GBPS = 25.0
DEFAULT_DISK_GBPS = 3.0     # assumption: one PCIe 4.0 NVMe drive, sequential read
DEFAULT_RAM_GB = 128.0      # used only when /proc/meminfo cannot be read and --ram-gb is not given
# The quality target accepts a streamed preset (weights copied from RAM every step) while sampling
# takes at most this many times as long as with all its weights on the GPU: 2.0 = the copies may
# cost as much time as the compute. A choice, not a measurement (--max-slowdown; 1 = never stream).
MAX_SLOWDOWN = 2.0


# ---- estimates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyEstimate:
    """ESTIMATES for one family at its template settings (catalog `defaults`), not measurements."""
    text_gb: float       # working memory while encoding the prompt (activations, LM cache)
    denoise_gb: float    # while sampling: latents, activations, attention
    decode_gb: float     # VAE decode of the whole image / clip / song, untiled
    step_s: float        # seconds per sampling step of the reference model on the anchor GPU
    ref_params_b: float  # parameters (billions) of that reference model
    fixed_s: float       # per run, besides sampling: prompt encoding, decode (ACE: LM planning)
    quality_rank: int    # preference between families of one mode when target = quality
    anchor: str          # the public figure step_s comes from (shared/MODELS.md)


# quality_rank: the plan's order within a mode, as its prior (the plan we build from: video quality "Wan2.2 >
# HunyuanVideo-1.5 > SkyReels > LTX-2 > CogVideoX > LTX", speed the other way; Wan2.1, which it does not rank,
# goes under HunyuanVideo 1.5 as Wan2.2's predecessor, above SkyReels; image: Flux.2, then Flux.1, SD3.5, SDXL; music: ACE-Step 1.5,
# then Stable Audio Open, its alternative). Speed comes from step_s, not from the rank.
FAMILY_ESTIMATES = {
    "flux2": FamilyEstimate(1.0, 3.0, 2.5, 0.46, 32.0, 3.0, 4,
                            "Flux.2-dev BF16 1024x1024, 50 steps: 23.4 s on an H100 80 GB"),
    "flux1": FamilyEstimate(0.5, 2.0, 1.5, 0.17, 12.0, 2.0, 3,
                            "none of its own: Flux.2's public 0.46 s/step scaled by parameters (12B of 32B)"),
    "sd35": FamilyEstimate(0.8, 2.0, 1.5, 0.12, 8.1, 2.0, 2,
                           "none of its own: Flux.2's public 0.46 s/step scaled by parameters (8.1B of 32B)"),
    "sdxl": FamilyEstimate(0.3, 1.5, 1.5, 0.04, 2.6, 1.0, 1,
                           "none of its own: Flux.2's public 0.46 s/step scaled by parameters (2.6B of 32B)"),
    "wan22": FamilyEstimate(1.0, 5.0, 6.0, 10.0, 14.0, 15.0, 7,
                            "Wan2.2 14B I2V 480p, 30 steps: ~5 min on an H100 PCIe"),
    "hunyuan15": FamilyEstimate(1.5, 8.0, 8.0, 12.0, 8.3, 20.0, 6,
                                "none of its own: Wan2.2's public figure scaled by parameters and tokens "
                                "(8.3B at 1280x720x121 against 14B at 480p x 81)"),
    "skyreels": FamilyEstimate(2.0, 6.0, 6.0, 15.0, 13.0, 15.0, 4,
                               "none of its own: Wan2.2's public figure scaled by parameters and tokens "
                               "(13B at 960x544x97 against 14B at 480p x 81)"),
    "wan21": FamilyEstimate(1.0, 4.0, 4.0, 3.0, 14.0, 10.0, 5,
                            "Wan2.1/2.2 14B I2V 480p, 30 steps: ~5 min on an H100 PCIe, scaled to 512x512x33"),
    # text to video: ranked apart from the chains' image-to-video families (choose_others)
    "wan21_t2v": FamilyEstimate(1.0, 5.0, 5.0, 4.6, 14.0, 10.0, 5,
                                "Wan2.1/2.2 14B I2V 480p, 30 steps: ~5 min on an H100 PCIe, scaled to 832x480x33"),
    "ltx2": FamilyEstimate(1.5, 4.0, 4.0, 1.63, 19.0, 6.0, 3,
                           "LTX-2 I2V one stage 768x512x121, 40 steps: 65.1 s on an H100 NVL"),
    "ltxv": FamilyEstimate(0.5, 2.0, 2.0, 0.14, 2.0, 2.0, 1,
                           "none of its own: LTX-2's public 1.63 s/step scaled by parameters and frames "
                           "(2B at 768x512x97 against 19B at 768x512x121)"),
    "ace15": FamilyEstimate(1.5, 1.0, 2.0, 0.2, 2.0, 30.0, 2,
                            "ACE-Step 1.5 turbo 8 steps: <2 s per song on an A100 (official); "
                            "~100 s per song reported in ComfyUI with the LM on (fixed_s)"),
    "stable_audio": FamilyEstimate(0.3, 1.0, 1.0, 0.03, 1.1, 2.0, 1,
                                   "none of its own: ACE-Step 1.5's DiT figure scaled by parameters (1.1B of 2B)"),
}
DEFAULT_ESTIMATE = FamilyEstimate(1.0, 4.0, 4.0, 1.0, 10.0, 5.0, 0, "none (family not in the table)")

# quant name prefix -> (bits per weight, relative speed on Blackwell). ESTIMATES: fp8/bf16 safetensors
# run at 1.0; GGUF dequantizes every layer on every step: fp8mixed 44.3 s vs Q4_K_M 88.4 s for the same
# Flux.2 image (MODELS.md), so 0.5 for all GGUF quants (Q8_0's cheaper dequant is unmeasured).
QUANTS = [("q8_0", 8.5, 0.5), ("q6_k", 6.56, 0.5), ("q5_k", 5.69, 0.5), ("q4_k", 4.85, 0.5),
          ("q3_k", 3.91, 0.5), ("q2_k", 3.35, 0.5), ("fp8", 8.0, 1.0), ("fp4", 4.5, 1.0),
          ("bf16", 16.0, 1.0), ("fp16", 16.0, 1.0), ("fp32", 32.0, 1.0)]
FORMAT_DEFAULTS = {"gguf": (8.0, 0.5), "safetensors": (16.0, 1.0)}

STAGE_OF_ROLE = {"text_encoder": "text", "lm": "text", "text_projection": "text", "clip_l": "text", "clip_g": "text",
                 "t5xxl": "text", "byt5": "text", "clip_vision": "text",
                 "diffusion_model": "denoise", "checkpoint": "denoise", "upscaler": "denoise",
                 "high_noise": "denoise_high", "low_noise": "denoise_low",
                 "vae": "decode", "audio_vae": "decode"}
TRANSFORMER_KINDS = ("diffusion_model", "checkpoint", "high_noise", "low_noise")


def quant_info(fmt: str, quant: str) -> tuple[float, float]:
    """(bits per weight, relative speed) of a file format and quant (estimates, see QUANTS)."""
    q = quant.lower()
    for prefix, bits, speed in QUANTS:
        if q.startswith(prefix):
            return bits, (0.5 if fmt == "gguf" else speed)
    return FORMAT_DEFAULTS.get(fmt, (16.0, 1.0))


def speed_factor(fmt: str, quant: str) -> float:
    return quant_info(fmt, quant)[1]


def _working_gb(est: FamilyEstimate, stage: str) -> float:
    return {"text": est.text_gb, "decode": est.decode_gb}.get(stage, est.denoise_gb)


# ---- data ---------------------------------------------------------------------------------------
class PlanError(ValueError):
    """Bad planner input (unknown preset, impossible machine figures); the message says what to fix."""


@dataclass(frozen=True)
class Machine:
    gpu_gb: float = DEFAULT_GPU_GB
    used_gb: float = DEFAULT_USED_GB
    reserve_gb: float = DEFAULT_RESERVE_GB
    bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS
    disk_gbps: float = DEFAULT_DISK_GBPS
    ram_gb: float = DEFAULT_RAM_GB
    ram_source: str = "given"

    @property
    def budget_gb(self) -> float:
        return self.gpu_gb - self.used_gb - self.reserve_gb

    @property
    def budget_bytes(self) -> int:
        return int(round(self.budget_gb * GB))


@dataclass
class PresetPlan:
    id: str
    family: str
    mode: str
    label: str
    quality: int
    files: dict[str, int]                # distinct file name -> bytes
    stages: dict[str, list[str]]         # stage -> file names
    stage_bytes: dict[str, int]          # stage -> its files + its working memory
    weight_bytes: int
    working_bytes: int                   # the largest stage working memory (estimate)
    all_loaded_bytes: int                # weights + working: everything on the GPU at once
    largest_stage_bytes: int
    fit: str                             # resident | staged | streamed | no
    gpu_peak_bytes: int                  # what the GPU holds at the peak while this mode runs
    steps: int
    speed_factor: float
    stream_bytes_per_run: int            # copied from RAM during sampling when streamed
    step_s: float                        # compute per sampling step, all weights on the GPU (estimate)
    stream_bytes_per_step: int           # copied from RAM per sampling step when streamed
    stream_s_per_step: float             # those copies at the host->GPU bandwidth
    reload_s_per_run: float              # staged/streamed: stages loaded and evicted every run
    est_run_s: float | None              # estimate, anchor-GPU seconds; None when it cannot run
    unconfirmed: list[str] = field(default_factory=list)


@dataclass
class Choice:
    mode: str
    preset: str | None
    reason: str


@dataclass
class Switch:
    from_preset: str
    to_preset: str
    load_bytes: int                      # host -> GPU
    evict_bytes: int                     # GPU -> host (copied back to RAM)
    disk_bytes: int                      # read from disk first (not held in RAM)
    seconds: float
    evictions: list[str] = field(default_factory=list)   # "offload FILE" | "drop FILE", in the policy's order


@dataclass
class Plan:
    machine: Machine
    target: str | None
    presets: list[PresetPlan]
    choices: list[Choice]
    gpu_resident: list[str]              # pinned on the GPU for the whole cycle
    swapped: list[str]                   # swap through system RAM
    all_fit: bool
    all_at_once_bytes: int               # distinct weights of every preset + the largest working memory
    ram_needed_bytes: int                # the swapped (unpinned) files
    ram_fits: bool                       # nothing reloads from disk in the steady cycle
    disk_files: list[str]                # dropped by the residency policy: they reload from disk every cycle
    switches: list[Switch]               # one cycle image -> video -> music -> image, steady state
    cycle_s: float
    notes: list[str]
    first_cycle_disk_bytes: int = 0      # from a cold start every file is read from disk once
    first_cycle_disk_s: float = 0.0
    others: list[Choice] = field(default_factory=list)   # families with a task of their own (not a chain stage)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["machine"]["budget_gb"] = round(self.machine.budget_gb, 3)
        return d


# ---- per preset ---------------------------------------------------------------------------------
def preset_plan(catalog, preset_id: str, machine: Machine) -> PresetPlan:
    try:
        p = catalog.preset(preset_id)
    except KeyError as e:
        raise PlanError(e.args[0]) from None
    est = FAMILY_ESTIMATES.get(p.family, DEFAULT_ESTIMATE)
    role_files = catalog.preset_files(preset_id)
    files = {f.name: f for f in role_files.values()}
    stages: dict[str, list[str]] = {}
    for role, f in role_files.items():
        names = stages.setdefault(STAGE_OF_ROLE.get(role, "denoise"), [])
        if f.name not in names:
            names.append(f.name)
    work = {s: int(_working_gb(est, s) * GB) for s in stages}
    stage_bytes = {s: sum(files[n].size for n in names) + work[s] for s, names in stages.items()}
    weight = catalog.preset_bytes(preset_id)
    working = max(work.values())
    all_loaded, largest = weight + working, max(stage_bytes.values())
    budget = machine.budget_bytes
    fit = ("resident" if all_loaded <= budget else "staged" if largest <= budget
           else "streamed" if working < budget else "no")

    steps = int(p.settings(catalog).get("steps", 20))
    denoise = [s for s in stages if s.startswith("denoise")] or ["denoise"]
    stream = stream_denoise = 0
    if fit == "streamed":
        for s, need in stage_bytes.items():
            times = steps / len(denoise) if s in denoise else 1
            stream += int(max(0, need - budget) * times)
            if s in denoise:
                stream_denoise += int(max(0, need - budget) * times)
    params, speed = 0.0, 1.0
    for s in denoise:
        ts = [files[n] for n in stages.get(s, []) if files[n].kind in TRANSFORMER_KINDS]
        params = max(params, sum(f.size * 8 / quant_info(f.format, f.quant)[0] for f in ts) / GB)
        speed = min([speed] + [speed_factor(f.format, f.quant) for f in ts])
    ratio = params / est.ref_params_b if params else 1.0
    bw = machine.bandwidth_gbps * GB
    reload_s = 2 * weight / bw if fit in ("staged", "streamed") else 0.0
    step_s = est.step_s * ratio / speed
    per_step = int(stream_denoise / steps) if steps else 0
    run_s = est.fixed_s + steps * step_s + reload_s + stream / bw
    peak = {"resident": all_loaded, "staged": largest, "streamed": budget, "no": largest}[fit]
    return PresetPlan(
        id=p.id, family=p.family, mode=catalog.families[p.family].mode, label=p.label, quality=p.quality,
        files={n: f.size for n, f in files.items()}, stages=stages, stage_bytes=stage_bytes,
        weight_bytes=weight, working_bytes=working, all_loaded_bytes=all_loaded, largest_stage_bytes=largest,
        fit=fit, gpu_peak_bytes=peak, steps=steps, speed_factor=speed, stream_bytes_per_run=stream,
        step_s=round(step_s, 4), stream_bytes_per_step=per_step, stream_s_per_step=round(per_step / bw, 4),
        reload_s_per_run=reload_s, est_run_s=None if fit == "no" else round(run_s, 2),
        unconfirmed=sorted(n for n, f in files.items() if not f.confirmed))


# ---- selection ----------------------------------------------------------------------------------
def _gb(b: float) -> str:
    return f"{b / GB:.1f}"


def slowdown(c: PresetPlan) -> float:
    """How many times longer sampling takes with the per-step copies than with all weights on the GPU."""
    return (c.step_s + c.stream_s_per_step) / c.step_s if c.step_s else 1.0


def affordable(c: PresetPlan, max_slowdown: float = MAX_SLOWDOWN) -> bool:
    """Runs with its weights on the GPU (whole or a stage at a time), or streams within the limit."""
    return c.fit in ("resident", "staged") or (c.fit == "streamed" and slowdown(c) <= max_slowdown + 1e-9)


def stream_cost(c: PresetPlan) -> str:
    return (f"streamed: its largest stage needs {_gb(c.largest_stage_bytes)} GB, so ComfyUI copies "
            f"{_gb(c.stream_bytes_per_step)} GB from RAM every step, +{c.stream_s_per_step:.2f} s on "
            f"{c.step_s:.2f} s of compute per step (x{slowdown(c):.2f})")


def choose_presets(catalog, machine: Machine | None = None, target: str = "quality",
                   modes=MODES, max_slowdown: float = MAX_SLOWDOWN) -> list[Choice]:
    """Per mode, the preset that meets the target within the GPU budget, with the reason.

    quality: the best family of the mode (Wan2.2 before LTX-2 for video), then the highest `quality`
    rank that fits the budget whole or a stage at a time, or that streams with sampling at most
    `max_slowdown` times slower (the reason says what the streaming costs); smaller quants as it shrinks.
    speed: the lowest estimated time per run, streaming and reloads included; ties go to the smaller.
    Presets with a file that has no public download are left out. When nothing fits, the fastest
    preset that can run at all (streamed) is taken and the reason says so.
    """
    machine = machine or Machine()
    if target not in TARGETS:
        raise PlanError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    _check_machine(machine)
    budget, out = machine.budget_gb, []
    for mode in modes:
        cands = [preset_plan(catalog, p.id, machine) for p in sorted(catalog.presets.values(), key=lambda p: p.id)
                 if catalog.families[p.family].mode == mode and not catalog.families[p.family].task
                 and p.engine == "comfy" and p.standalone and all(f.repo for f in catalog.preset_files(p.id).values())]
        fits = [c for c in cands if affordable(c, max_slowdown)]
        runnable = [c for c in cands if c.est_run_s is not None]
        if not runnable:
            out.append(Choice(mode, None, f"no {mode} preset can run in a {budget:.1f} GB budget"))
            continue
        fast = sorted(runnable, key=lambda c: (c.est_run_s, c.weight_bytes, -c.quality))
        if target == "quality" and fits:
            rank = lambda c: (FAMILY_ESTIMATES.get(c.family, DEFAULT_ESTIMATE).quality_rank, c.quality)
            best = max(fits, key=lambda c: (*rank(c), -c.est_run_s))
            if best.fit == "streamed":
                reason = (f"highest quality within the streaming limit (x{max_slowdown:g}): rank {best.quality}, "
                          f"{stream_cost(best)}, est {best.est_run_s:.0f} s/run")
                whole = [c for c in cands if c.fit in ("resident", "staged")]
                if whole:
                    alt = max(whole, key=lambda c: (*rank(c), -c.est_run_s))
                    reason += f"; best without streaming: {alt.id} (rank {alt.quality}, est {alt.est_run_s:.0f} s/run)"
            else:
                reason = (f"highest quality that fits: rank {best.quality}, largest stage "
                          f"{_gb(best.largest_stage_bytes)} GB of {budget:.1f} GB ({best.fit})")
            better = sorted((c for c in cands if rank(c) > rank(best)), key=rank, reverse=True)
            # the best preset of each better family, and the better presets of the chosen one (up to 3), best first
            better = [c for i, c in enumerate(better) if c.family == best.family or c.family not in
                      {b.family for b in better[:i]}]
            better = [c for c in better if c.family != best.family] + [c for c in better if c.family == best.family][:3]
            if better:
                reason += "; too big: " + ", ".join(
                    f"{c.id} needs {_gb(c.largest_stage_bytes)} GB" + (
                        f" (streaming x{slowdown(c):.2f})" if c.fit == "streamed" else "")
                    for c in better)
        elif target == "speed":
            best = fast[0]
            reason = f"fastest estimate: {best.est_run_s:.0f} s/run ({best.fit}"
            reason += f", copies {_gb(best.stream_bytes_per_run)} GB per run)" if best.stream_bytes_per_run else ")"
            if len(fast) > 1:
                reason += f"; next {fast[1].id} {fast[1].est_run_s:.0f} s"
        else:
            best = fast[0]
            reason = (f"no {mode} preset fits {budget:.1f} GB even one stage at a time; fastest that can run: "
                      f"{best.est_run_s:.0f} s/run, copying {_gb(best.stream_bytes_per_run)} GB from RAM per run")
        out.append(Choice(mode, best.id, reason))
    return out



OTHER_TASKS = {"text_to_video": "text to video", "songs_in_many_languages": "songs in many languages (HeartMuLa)"}


def heartmula_choice(machine: Machine, song_s: float = 30.0) -> Choice:
    """HeartMuLa 3B, the plan's music model "only if multilingual lyrics are critical": not a catalog preset (its own
    node and Python), one stage (LockN's worker holds the model and its codec together). ESTIMATES from its parameter
    counts (lockn_gen/heartmula.py) and heartlib's real-time factor."""
    from . import heartmula as hm
    need = hm.GPU_BYTES + hm.WORKING_BYTES
    sizes = (f"model {_gb(hm.PARAMS['HeartMuLa-oss-3B'] * 2)} GB (bfloat16) + codec {_gb(hm.PARAMS[hm.CODEC] * 4)} GB "
             f"(float32) + ~{_gb(hm.WORKING_BYTES)} GB working = {_gb(need)} GB")
    if need > machine.budget_bytes:
        return Choice("songs_in_many_languages", None, f"needs {sizes} on the GPU, the budget is "
                      f"{machine.budget_gb:.1f} GB (its worker holds model and codec together; on the CPU it runs, slowly)")
    return Choice("songs_in_many_languages", "heartmula-3b",
                  f"fits: {sizes} of {machine.budget_gb:.1f} GB; est {song_s * hm.REAL_TIME_FACTOR:.0f} s for a "
                  f"{song_s:.0f} s song (heartlib's README: about real time); the HeartMuLa Music node, not a catalog preset")


def choose_others(catalog, machine: Machine | None = None, target: str = "quality",
                  max_slowdown: float = MAX_SLOWDOWN) -> list[Choice]:
    """For each task that no chain stage takes, what fits: the preset choose_presets would take among the families
    of a catalog task (Family.task: text to video), and HeartMuLa for songs in many languages. Choice.mode names the
    task (OTHER_TASKS)."""
    out = []
    for task in sorted({f.task for f in catalog.families.values() if f.task}):
        fams = {k: f for k, f in catalog.families.items() if f.task == task}
        sub = catalog_mod.Catalog({k: dataclasses.replace(f, task="") for k, f in fams.items()}, catalog.files,
                                  {k: p for k, p in catalog.presets.items() if p.family in fams}, catalog.loras)
        for mode in dict.fromkeys(f.mode for f in fams.values()):
            (c,) = choose_presets(sub, machine, target, (mode,), max_slowdown)
            out.append(Choice(task, c.preset, c.reason.replace(f"no {mode} preset", f"no {OTHER_TASKS[task]} preset")))
    return out + [heartmula_choice(machine or Machine())]


def stage_models(catalog, machine: Machine, stages: dict, target: str = "quality",
                 max_slowdown: float = MAX_SLOWDOWN) -> dict:
    """For each mode of `stages` (mode -> the families a chain's stage can run), the family and preset that meet
    the target within the budget, chosen among those families only: {mode: (family, preset id, reason)}."""
    out = {}
    for mode, families in stages.items():
        families = [f for f in families if f in catalog.families]     # (HeartMuLa: no catalog preset; ranked apart)
        sub = catalog_mod.Catalog({f: catalog.families[f] for f in families}, catalog.files,
                                  {k: p for k, p in catalog.presets.items() if p.family in families}, catalog.loras)
        (c,) = choose_presets(sub, machine, "speed" if target == "speed" else "quality", (mode,), max_slowdown)
        out[mode] = (catalog.presets[c.preset].family if c.preset else families[0], c.preset, c.reason)
    return out


def pick_paths(catalog, machine: Machine, target: str = "auto", max_slowdown: float = MAX_SLOWDOWN) -> dict:
    """One preset per family for the preset-planner node, and which path to take.

    target "quality" or "speed" picks per family as choose_presets does per mode; "auto" takes the
    quality path (Wan2.2 A14B, the best Flux.2 that fits) when its image and video choices fit the
    GPU budget, whole, a stage at a time or streaming within `max_slowdown`, and the fast path
    (LTX-2, a smaller Flux.2) otherwise. Returns {"path", "flux2", "wan22", "ltx2", "ace15", "text"}."""
    if target not in ("auto", *TARGETS):
        raise PlanError(f"unknown target {target!r}; use auto, {', '.join(TARGETS)}")

    def best(family, tgt):
        fam = [p for p in catalog.presets_for(family) if all(f.repo for f in catalog.preset_files(p.id).values())]
        plans = [preset_plan(catalog, p.id, machine) for p in fam]
        runnable = [c for c in plans if c.est_run_s is not None] or plans
        fits = [c for c in runnable if affordable(c, max_slowdown)]
        if tgt == "quality" and fits:
            return max(fits, key=lambda c: (c.quality, -c.est_run_s))
        return min(runnable, key=lambda c: (c.est_run_s if c.est_run_s is not None else 1e12, c.weight_bytes, -c.quality))

    q = {f: best(f, "quality") for f in ("flux2", "wan22")}
    quality_fits = all(affordable(c, max_slowdown) for c in q.values()) and q["flux2"].quality >= 4
    path = {"quality": "quality", "speed": "fast"}.get(target) or ("quality" if quality_fits else "fast")
    tgt = "quality" if path == "quality" else "speed"
    picks = {f: best(f, tgt if f != "ltx2" else "speed") for f in ("flux2", "wan22", "ltx2", "ace15")}
    if path == "fast":
        picks["wan22"] = best("wan22", "quality")
    lines = [f"path: {path} (target {target}); GPU budget {machine.budget_gb:.1f} GB = {machine.gpu_gb:.1f} - "
             f"{machine.used_gb:.1f} used by others - {machine.reserve_gb:.1f} reserve"]
    if target == "auto":
        lines.append(f"quality path fits (streaming at most x{max_slowdown:g}): " + ("yes" if quality_fits else
                     f"no ({q['flux2'].id}: {q['flux2'].fit}, {q['wan22'].id}: {q['wan22'].fit})"))
    for f, c in picks.items():
        lines.append(f"{f}: {c.id} ({c.fit}, weights {_gb(c.weight_bytes)} GB, est {c.est_run_s} s/run)"
                     + (f"; {stream_cost(c)}" if c.fit == "streamed" else ""))
    return {"path": path, **{f: c.id for f, c in picks.items()}, "text": "\n".join(lines)}

# ---- the plan -----------------------------------------------------------------------------------
def _check_machine(m: Machine) -> None:
    for name in ("gpu_gb", "bandwidth_gbps", "disk_gbps"):
        if getattr(m, name) <= 0:
            raise PlanError(f"{name} must be > 0 (got {getattr(m, name)})")
    for name in ("used_gb", "reserve_gb", "ram_gb"):
        if getattr(m, name) < 0:
            raise PlanError(f"{name} must be >= 0 (got {getattr(m, name)})")


def _mode_key(mode: str) -> tuple:
    return (MODES.index(mode), "") if mode in MODES else (len(MODES), mode)


def _valid_pins(pins: list[PresetPlan], others: list[PresetPlan], budget: int) -> bool:
    """Pinned presets stay whole on the GPU without pushing any other preset into a worse class."""
    pinned = {n: s for p in pins for n, s in p.files.items()}
    base = sum(pinned.values())
    if any(base + p.working_bytes > budget for p in pins):
        return False
    for p in others:
        if p.fit == "resident":
            extra = sum(s for n, s in p.files.items() if n not in pinned) + p.working_bytes
            if base + extra > budget:
                return False
        elif p.fit == "staged":
            if base + p.largest_stage_bytes > budget:
                return False
        elif pins:
            return False
    return True


def _apply(entries: dict, actions, evicted: list[str], copied: set) -> None:
    """Apply the policy's actions to the simulated entries; note each eviction and the bytes an offload copies
    back to RAM (a model dropped without passing through RAM copies nothing)."""
    for a in actions:
        e = entries[a.entry_id]
        if a.kind == "offload":
            copied.add(a.entry_id)
        evicted.append(f"{a.kind} {a.entry_id}")
        e.tier = "ram" if a.kind == "offload" else "dropped"


@dataclass
class Step:
    """One prompt of the simulated cycle, as the registry (nodes/residency.py) runs it."""
    round: int
    switch: Switch
    cycling: bool                        # the eviction order in force (residency.ModeCycle)
    disk_files: list[str]                # read from disk (dropped before)
    refused: list[str]                   # loads the registry would refuse (residency.refusal)


def cycle_steps(order: list[PresetPlan], pins: set, m: Machine, priority: dict | None = None,
                max_rounds: int = 6) -> list[Step]:
    """The cycle order[1] -> ... -> order[0], one prompt per preset, repeated from a cold start until the
    tiers at the end of a round repeat (at least two rounds), through LockN's residency policy as the
    registry calls it (lockn_gen/residency.py: ModeCycle, plan, refusal; each file an entry):

    1. the prompt's mode is used (ModeCycle.use, one prompt id per step);
    2. each of its files that is dropped is read from disk (in the order of the preset's components), after
       the room for it is made (plan with the file's bytes incoming, the prompt's files protected), and
       arrives in RAM;
    3. ComfyUI runs it: a preset that fits whole (or a pinned one) moves its files to the GPU, the
       models that do not fit beside them (less the preset's working memory) offloaded to RAM in the
       policy's order (an assumption: ComfyUI frees GPU memory in its own order); a staged or streamed
       preset needs the whole GPU (every other unpinned model goes to RAM), its stages pass through
       it and end in RAM;
    4. the registry settles after the prompt (plan with nothing incoming, nothing protected).

    Budgets: the GPU budget (total - used by others - reserve) and the RAM (machine.ram_gb). Pinned
    presets' files are pinned entries, on the GPU from the start."""
    if len(order) < 2:
        return []
    size = {n: s for p in order for n, s in p.files.items()}
    mode_of: dict[str, str] = {}
    for p in order:
        for n in p.files:
            mode_of.setdefault(n, p.mode)
    pinned = {n for p in order if p.id in pins for n in p.files}
    entries = {n: residency.Entry(id=n, name=n, family="", role="", mode=mode_of[n], bytes=size[n],
                                  tier="gpu" if n in pinned else "dropped", pinned=n in pinned)
               for n in sorted(size)}
    es = list(entries.values())
    budgets = residency.Budgets(gpu_bytes=m.budget_bytes, ram_bytes=int(round(m.ram_gb * GB)))
    cycle = residency.ModeCycle()
    bw, disk_bw = m.bandwidth_gbps * GB, m.disk_gbps * GB
    out: list[Step] = []
    clock, last_tiers = 0, None
    for rnd in range(max_rounds):
        for i in [*range(1, len(order)), 0]:      # order[0] is the first mode: the cycle ends back there
            p = order[i]
            clock += 1
            mine = list(p.files)                  # the loader's order: the preset's components
            protect = set(mine)
            cycle.use(p.mode, clock)
            cycling = cycle.cycling
            evicted: list[str] = []
            copied: set[str] = set()
            disk_files, refused = [], []
            # 2. loads from disk, room made first
            for n in mine:
                e = entries[n]
                if e.tier != "dropped":
                    continue
                actions = residency.plan(es, budgets, e.bytes, priority, protect=protect, cycling=cycling)
                why = residency.refusal(es, budgets, actions, e.bytes, n, protect=protect)
                if why:
                    refused.append(why)
                _apply(entries, actions, evicted, copied)
                e.tier = "ram"
                disk_files.append(n)
            # 3. the run
            if p.id in pins or p.fit == "resident":
                load = sum(size[n] for n in mine if entries[n].tier != "gpu")
                room = residency.Budgets(gpu_bytes=m.budget_bytes - p.working_bytes)
                _apply(entries, residency.plan(es, room, load, priority, protect=protect, cycling=cycling),
                       evicted, copied)
                for n in mine:
                    entries[n].tier = "gpu"
            else:
                load = sum(size[n] for n in mine)
                _apply(entries, residency.plan(es, residency.Budgets(gpu_bytes=0), 0, priority, protect=protect,
                                               cycling=cycling), evicted, copied)
                for n in mine:
                    entries[n].tier = "ram"
                    copied.add(n)
            for n in mine:
                entries[n].last_used = clock
            # 4. the registry settles after the prompt
            _apply(entries, residency.plan(es, budgets, 0, priority, cycling=cycling), evicted, copied)
            evict = sum(size[n] for n in copied)
            disk = sum(size[n] for n in disk_files)
            out.append(Step(rnd, Switch(order[i - 1].id, p.id, load, evict, disk,
                                        round((load + evict) / bw + disk / disk_bw, 3), evicted),
                            cycling, disk_files, refused))
        tiers = {n: e.tier for n, e in entries.items()}
        if rnd >= 1 and tiers == last_tiers:
            break
        last_tiers = tiers
    return out


def _simulate(order: list[PresetPlan], pins: set, m: Machine, priority: dict | None = None) -> list[Switch]:
    """The steady state of the cycle: the last round of cycle_steps."""
    steps = cycle_steps(order, pins, m, priority)
    return [s.switch for s in steps if s.round == steps[-1].round] if steps else []


MEASURED_REF = "bench/RESULTS.md, 2026-12-02"


def plan(catalog, preset_ids: list[str] | None = None, machine: Machine | None = None,
         target: str | None = "quality", modes=MODES, max_slowdown: float = MAX_SLOWDOWN,
         priority: dict | None = None) -> Plan:
    """Plan the given presets (or, with none, the ones `choose_presets` picks for the target). The mode
    switches are simulated through LockN's residency policy (cycle_steps), with the registry's per-mode
    `priority` (the Residency node's; default: all equal)."""
    machine = machine or Machine()
    _check_machine(machine)
    choices: list[Choice] = []
    also: list[Choice] = []
    if not preset_ids:
        choices = choose_presets(catalog, machine, target or "quality", modes, max_slowdown)
        also = choose_others(catalog, machine, target or "quality", max_slowdown)
        preset_ids = [c.preset for c in choices if c.preset]
    else:
        target = None
    pps = sorted((preset_plan(catalog, pid, machine) for pid in dict.fromkeys(preset_ids)),
                 key=lambda p: _mode_key(p.mode))
    budget = machine.budget_bytes
    sizes = {n: s for p in pps for n, s in p.files.items()}
    all_at_once = sum(sizes.values()) + max((p.working_bytes for p in pps), default=0)

    best = None
    subsets = (itertools.chain.from_iterable(itertools.combinations(pps, k) for k in range(len(pps), -1, -1))
               if len(pps) <= 10 else [tuple(pps), ()])
    for pins in subsets:
        others = [p for p in pps if p not in pins]
        if not _valid_pins(list(pins), others, budget):
            continue
        pinned_files = {n for p in pins for n in p.files}
        steps = cycle_steps(pps, {p.id for p in pins}, machine, priority)
        last = [s for s in steps if s.round == steps[-1].round] if steps else []
        switches = [s.switch for s in last]
        cost = round(sum(s.seconds for s in switches), 6)
        key = (cost, -sum(sizes[n] for n in pinned_files))
        if best is None or key < best[0]:
            best = (key, pins, last)
    _, pins, last = best
    switches = [s.switch for s in last]
    pinned_ids = [p.id for p in pins]
    pinned_files = {n for p in pins for n in p.files}
    ram_needed = sum(s for n, s in sizes.items() if n not in pinned_files)
    disk = {n for s in last for n in s.disk_files}

    notes = []
    if pps and len(pins) < len(pps):
        notes.append(f"everything on the GPU at once needs {_gb(all_at_once)} GB, the budget is "
                     f"{machine.budget_gb:.1f} GB: free {_gb(all_at_once - budget)} GB more to stop swapping")
    for p in pps:
        if p.fit == "staged":
            notes.append(f"{p.id}: only one stage at a time fits; every run moves its "
                         f"{_gb(p.weight_bytes)} GB in and out ({p.reload_s_per_run:.1f} s)")
        elif p.fit == "streamed":
            notes.append(f"{p.id}: {stream_cost(p)}; {_gb(p.stream_bytes_per_run)} GB per run")
        elif p.fit == "no":
            notes.append(f"{p.id}: cannot run: its working memory alone exceeds the budget")
    if disk:
        notes.append(f"RAM holds {machine.ram_gb:.1f} of the {_gb(ram_needed)} GB to swap; in every cycle LockN's "
                     f"residency policy drops these and they reload from disk: {', '.join(sorted(disk))}")
    refused = sorted({w for s in last for w in s.refused})
    if refused:
        notes.append("LockN's registry would refuse a load in this cycle: " + " | ".join(refused))
    if switches:
        order = "most recently used first: the modes are used in a cycle" if any(s.cycling for s in last) else \
            "least recently used first"
        notes.append(f"the switches are LockN's registry at work (its residency policy, simulated): evictions "
                     f"{order}; each switch's models, in order, in --json (switches[].evictions)")
    first_disk = sum(sizes.values())
    if pps:
        notes.append(f"the first cycle from a cold start reads every file from disk once: {_gb(first_disk)} GB "
                     f"({first_disk / (machine.disk_gbps * GB):.1f} s at {machine.disk_gbps:.1f} GB/s); the switches "
                     f"above are the cycles after it. Measured with full-size files on a CPU box "
                     f"({MEASURED_REF}): first visits read 1.00-1.26x their files, the warm return to the "
                     f"image stack 12.49 GB where the plan of those presets (flux2-klein-4b-fp8, wan22-ti2v-5b, "
                     f"ace15-turbo, 16 GB of RAM) says 12.5 GB")
    unconfirmed = sorted({n for p in pps for n in p.unconfirmed})
    if unconfirmed:
        notes.append("sizes not confirmed on the hub: " + ", ".join(unconfirmed))
    return Plan(machine=machine, target=target, presets=pps, choices=choices, gpu_resident=pinned_ids,
                swapped=[p.id for p in pps if p.id not in pinned_ids], all_fit=bool(pps) and len(pins) == len(pps),
                all_at_once_bytes=all_at_once, ram_needed_bytes=ram_needed, ram_fits=not disk,
                disk_files=sorted(disk), switches=switches, cycle_s=round(sum(s.seconds for s in switches), 3),
                notes=notes, first_cycle_disk_bytes=first_disk,
                first_cycle_disk_s=round(first_disk / (machine.disk_gbps * GB), 3), others=also)


# ---- rendering ----------------------------------------------------------------------------------
def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def format_plan(p: Plan) -> str:
    m = p.machine
    lines = ["LockN Gen residency plan" + (f" (target: {p.target})" if p.target else ""),
             f"GPU {m.gpu_gb:.1f} GB - {m.used_gb:.1f} used by others - {m.reserve_gb:.1f} reserve = "
             f"{m.budget_gb:.1f} GB budget; host->GPU {m.bandwidth_gbps:.1f} GB/s; disk {m.disk_gbps:.1f} GB/s; "
             f"RAM {m.ram_gb:.1f} GB ({m.ram_source})", ""]
    rows = [["mode", "preset", "weights GB", "all loaded", "largest stage", "GPU peak", "fit", "speed", "est s/run"]]
    for pp in p.presets:
        rows.append([pp.mode, pp.id, _gb(pp.weight_bytes), _gb(pp.all_loaded_bytes), _gb(pp.largest_stage_bytes),
                     _gb(pp.gpu_peak_bytes), pp.fit, f"{pp.speed_factor:.2f}",
                     "-" if pp.est_run_s is None else f"{pp.est_run_s:.0f}"])
    lines += _table(rows)
    if p.choices:
        lines += ["", "Chosen:"] + [f"  {c.mode}: {c.preset or '(none)'}: {c.reason}" for c in p.choices]
    if p.others:
        lines += ["", "Also ranked, not a chain stage (the modes' cycle above leaves them out):"] + [
            f"  {OTHER_TASKS.get(c.mode, c.mode)}: {c.preset or '(none)'}: {c.reason}" for c in p.others]
    lines += ["", "On the GPU all cycle: " + (", ".join(p.gpu_resident) or "(nothing)"),
              "Swap through RAM: " + (", ".join(p.swapped) or "(nothing)")
              + ("  -- everything fits at once" if p.all_fit else ""),
              f"RAM: {_gb(p.ram_needed_bytes)} GB to hold of {m.ram_gb:.1f} GB: "
              + ("fits" if p.ram_fits else f"short, {len(p.disk_files)} file(s) reload from disk")]
    if p.switches:
        lines += ["", "Mode switches (cycle " + " -> ".join([s.from_preset for s in p.switches]
                                                            + [p.switches[-1].to_preset]) + "):"]
        rows = [["from", "to", "load GB", "evict GB", "disk GB", "seconds"]]
        rows += [[s.from_preset, s.to_preset, _gb(s.load_bytes), _gb(s.evict_bytes), _gb(s.disk_bytes),
                  f"{s.seconds:.2f}"] for s in p.switches]
        lines += ["  " + r for r in _table(rows)] + [f"  cycle total: {p.cycle_s:.2f} s"]
    if p.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in p.notes]
    lines += ["", "Working memory, speed factors and s/run are estimates (planner.FAMILY_ESTIMATES, QUANTS); "
              "s/run is anchor-GPU (H100-class) seconds, for comparing presets. File sizes and disk reloads are "
              f"checked against full-size files ({MEASURED_REF}: written files 0.988-1.022 of the catalog's sizes)."]
    return "\n".join(lines)


# ---- command line -------------------------------------------------------------------------------
def available_ram_gb() -> tuple[float, str]:
    """MemAvailable from /proc/meminfo in GB, or the documented default when it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GB, "/proc/meminfo MemAvailable"
    except (OSError, ValueError, IndexError):
        pass
    return DEFAULT_RAM_GB, "default"


def add_arguments(parser) -> None:
    a = parser.add_argument
    a("--gpu-gb", type=float, default=DEFAULT_GPU_GB, help="GPU memory, GB (default: %(default)s, RTX Pro 6000)")
    a("--used-gb", type=float, default=DEFAULT_USED_GB, help="GPU memory other processes use, e.g. the LLMs (default: %(default)s)")
    a("--reserve-gb", type=float, default=DEFAULT_RESERVE_GB, help="GPU memory to leave free (default: %(default)s)")
    a("--bandwidth-gbps", type=float, default=DEFAULT_BANDWIDTH_GBPS, help="host->GPU copy speed, GB/s (default: %(default)s, practical PCIe 5.0 x16)")
    a("--disk-gbps", type=float, default=DEFAULT_DISK_GBPS, help="disk read speed, GB/s (default: %(default)s, NVMe)")
    a("--ram-gb", type=float, default=None, help="system RAM free for model copies, GB (default: MemAvailable)")
    a("--preset", action="append", default=[], metavar="P", help="a preset to plan (repeatable); none: choose for --target")
    a("--target", choices=TARGETS, default="quality", help="what to choose presets for (default: %(default)s)")
    a("--max-slowdown", type=float, default=MAX_SLOWDOWN, metavar="X",
      help="quality target: accept a preset that streams weights from RAM every step while sampling takes at "
           "most X times as long as with all weights on the GPU (default: %(default)s; 1 = never stream)")
    a("--json", action="store_true", help="print the plan as JSON")
    a("--catalog", action="append", default=[], metavar="FILE", help="extra catalog TOML file (repeatable)")


def main(args) -> int:
    try:
        for path in args.catalog:
            if not Path(path).is_file():
                raise PlanError(f"catalog file {path} not found")
        cat = catalog_mod.load(args.catalog)
        ram, source = (args.ram_gb, "given") if args.ram_gb is not None else available_ram_gb()
        machine = Machine(args.gpu_gb, args.used_gb, args.reserve_gb, args.bandwidth_gbps, args.disk_gbps,
                          ram, source)
        if args.max_slowdown < 1:
            raise PlanError(f"--max-slowdown must be >= 1 (got {args.max_slowdown}); 1 never streams")
        result = plan(cat, args.preset or None, machine, target=args.target, max_slowdown=args.max_slowdown)
    except (PlanError, catalog_mod.CatalogError) as e:
        print(f"lockn-gen plan: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_plan(result))
    return 0
