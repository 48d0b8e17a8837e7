"""Residency nodes: set budgets, pins and mode priorities (passing models through), evict, report;
and the preset planner that picks the quality or the fast path from the GPU budget."""
from __future__ import annotations

import json
import time

from comfy_api.latest import io, ui

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import planner
from ..lockn_gen.family_workflows import MODE_CHOICES as STAGE_MODELS
from ..lockn_gen.residency import GB, MODES
from . import comfy_seam as seam
from .loaders import get_catalog, schema_catalog
from .residency import REGISTRY

CATEGORY = "LockN Gen/residency"


def format_report(rep: dict) -> str:
    def gb(b):
        return "-" if b is None else f"{b / GB:.2f}"
    lines = [f"{'tier':7} {'pin':3} {'GB':>7} {'loads':>5} {'hits':>5}  {'family':6} {'role':15} name"]
    for e in rep["entries"]:
        lines.append(f"{e['tier']:7} {'yes' if e['pinned'] else '':3} {gb(e['bytes']):>7} {e['loads_from_disk']:>5} "
                     f"{e['hits']:>5}  {e['family']:6} {e['role']:15} {e['name']}")
        if e.get("loras"):
            lines.append(" " * 44 + "LoRA: " + ", ".join(f"{x['name']} x {x['strength']}" for x in e["loras"]))
    b, t = rep["budgets"], rep["totals"]
    lines.append(f"GPU {gb(t['gpu_bytes'])} of {gb(b['gpu_bytes'])} GB budget; RAM {gb(t['ram_bytes'])} of "
                 f"{gb(b['ram_bytes'])} GB budget; {t['entries']} entries")
    lines += [f"warning: {w}" for w in rep.get("warnings", [])]
    return "\n".join(lines)


class LockNResidency(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNResidency", display_name="Residency (LockN)", category=CATEGORY,
            description="Keeps models loaded across workflows within GPU and RAM budgets. Set the budgets (0 = "
                        "automatic: what ComfyUI sees free minus a reserve; RAM from the container limit and "
                        "MemAvailable), pin the models passed through (never evicted by LockN), and the priority "
                        "of each mode when something must go. Models pass through unchanged.",
            inputs=[
                io.Float.Input("gpu_budget_gb", default=0.0, min=0.0, max=4096.0, step=0.5,
                               tooltip="GB of GPU memory LockN may keep models in between prompts; 0 = automatic."),
                io.Float.Input("ram_budget_gb", default=0.0, min=0.0, max=65536.0, step=1.0,
                               tooltip="GB of system RAM LockN may keep offloaded models in; 0 = automatic."),
                io.Boolean.Input("pin", default=False, tooltip="Pin the models passed through this node."),
                io.Int.Input("image_priority", default=1, min=0, max=9, advanced=True,
                             tooltip="Higher stays longer: Flux.2 models."),
                io.Int.Input("video_priority", default=1, min=0, max=9, advanced=True,
                             tooltip="Higher stays longer: Wan2.2 and LTX-2 models."),
                io.Int.Input("music_priority", default=1, min=0, max=9, advanced=True,
                             tooltip="Higher stays longer: ACE-Step models."),
                io.Model.Input("model", optional=True), io.Model.Input("model_2", optional=True),
                io.Clip.Input("clip", optional=True), io.Vae.Input("vae", optional=True),
                io.Vae.Input("vae_2", optional=True, tooltip="e.g. LTX-2's audio VAE"),
            ],
            outputs=[io.Model.Output("model_out", display_name="model"), io.Model.Output("model_2_out", display_name="model_2"),
                     io.Clip.Output("clip_out", display_name="clip"), io.Vae.Output("vae_out", display_name="vae"),
                     io.Vae.Output("vae_2_out", display_name="vae_2"), io.String.Output("report")])

    @classmethod
    def execute(cls, gpu_budget_gb, ram_budget_gb, pin, image_priority=1, video_priority=1, music_priority=1,
                model=None, model_2=None, clip=None, vae=None, vae_2=None):
        REGISTRY.in_prompt()                    # (plain values were applied at the prompt's start, before its loaders)
        REGISTRY.set_budgets(gpu_gb=gpu_budget_gb, ram_gb=ram_budget_gb)
        REGISTRY.set_priority({"image": image_priority, "video": video_priority, "music": music_priority})
        passed = [x for x in (model, model_2, clip, vae, vae_2) if x is not None]
        recs = REGISTRY.object_records(passed)
        REGISTRY.pin(recs, pin)
        return io.NodeOutput(model, model_2, clip, vae, vae_2, format_report(REGISTRY.report()))


class LockNEvict(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNEvict", display_name="Evict Models (LockN)", category=CATEGORY, is_output_node=True,
            description="Evicts models from LockN's residency: a family, or the models whose file name contains the "
                        "given text. 'dropped' frees them (the next use reloads from disk); 'ram' only moves them "
                        "off the GPU. Evicted models' cached node outputs are not reused afterwards.",
            inputs=[io.Combo.Input("family", options=["all", *catalog_mod.builtin().families], default="all", tooltip="Which family to evict."),
                    io.String.Input("file_name", default="", tooltip="Only models whose file name contains this (optional)."),
                    io.Combo.Input("to", options=["dropped", "ram"], default="dropped", tooltip="Free completely, or move to system RAM."),
                    io.Boolean.Input("include_pinned", default=False, tooltip="Also evict pinned models."),
                    io.AnyType.Input("trigger", optional=True, tooltip="Connect anything to run this after it (e.g. a saved video).")],
            outputs=[io.AnyType.Output("trigger_out", display_name="trigger"), io.String.Output("report")])

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time()          # an action: runs every time

    @classmethod
    def execute(cls, family, file_name, to, include_pinned=False, trigger=None):
        recs = [r for r in REGISTRY.find(family=family, name=file_name or None) if include_pinned or not r.entry.pinned]
        REGISTRY.evict(recs, to=to, defer_if_busy=False)
        text = f"evicted {len(recs)} model(s) to {to}\n" + format_report(REGISTRY.report())
        return io.NodeOutput(trigger, text, ui=ui.PreviewText(text))


class LockNResidencyReport(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNResidencyReport", display_name="Residency Report (LockN)", category=CATEGORY, is_output_node=True,
            description="What LockN keeps loaded: each model's tier (gpu / ram / dropped), size, pins, loads from disk "
                        "and hits, against the budgets. Also at GET /lockn/residency and in the LockN sidebar tab.",
            inputs=[io.AnyType.Input("trigger", optional=True, tooltip="Connect anything to report after it ran.")],
            outputs=[io.String.Output("table"), io.String.Output("json")])

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time()

    @classmethod
    def execute(cls, trigger=None):
        rep = REGISTRY.report()
        text = format_report(rep)
        return io.NodeOutput(text, json.dumps(rep), ui=ui.PreviewText(text))


def _detect_gpu_gb():
    """(total GB, GB used by other processes) of the compute device as ComfyUI sees it."""
    mem = seam.gpu_memory()
    if mem is None:
        return 0.0, 0.0
    total, free = mem
    mine = sum(lm.loaded_bytes for lm in seam.loaded_models())
    return total / GB, max(0.0, (total - free - mine) / GB)


class LockNPresetPlanner(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        cat = schema_catalog()
        fam_opts = {f: [p.id for p in cat.presets_for(f)] for f in catalog_mod.builtin().families}
        return io.Schema(
            node_id="LockNPresetPlanner", display_name="Preset Planner (LockN)", category=CATEGORY,
            description="Picks presets that fit the GPU: the quality path (Wan2.2 A14B, the best Flux.2 quant that "
                        "fits) or the fast path (LTX-2, Flux.2 Q5_K_M or lower), from the GPU size, what other "
                        "processes (local LLMs) already use, and the host-to-GPU bandwidth. Connect its outputs to "
                        "the loaders' preset inputs; its image/video/music_model outputs to a chain's Image/Video/"
                        "Music Model nodes (the model each stage runs, chosen across the families it offers).",
            inputs=[io.Combo.Input("target", options=["auto", "quality", "speed"], default="auto",
                                   tooltip="auto: the quality path when it fits the GPU budget, else the fast path."),
                    io.Float.Input("gpu_gb", default=0.0, min=0.0, max=4096.0, step=1.0, tooltip="GPU memory; 0 = detect."),
                    io.Float.Input("used_by_others_gb", default=-1.0, min=-1.0, max=4096.0, step=1.0,
                                   tooltip="Memory other processes hold on the GPU; -1 = detect."),
                    io.Float.Input("reserve_gb", default=2.0, min=0.0, max=64.0, step=0.5),
                    io.Float.Input("bandwidth_gbps", default=25.0, min=0.1, max=1000.0, step=1.0, advanced=True,
                                   tooltip="Host-to-GPU copy speed (pinned memory), GB/s.")],
            outputs=[io.String.Output("path"),
                     io.Combo.Output("flux2_preset", options=fam_opts["flux2"]),
                     io.Combo.Output("wan22_preset", options=fam_opts["wan22"]),
                     io.Combo.Output("ltx2_preset", options=fam_opts["ltx2"]),
                     io.Combo.Output("ace15_preset", options=fam_opts["ace15"]),
                     io.String.Output("plan"),
                     *(io.Combo.Output(f"{mode}_model", options=list(fams),
                                       tooltip=f"The {mode} model a chain's stage should run (its {mode.capitalize()} "
                                               f"Model node), chosen among {', '.join(fams)} for the target")
                       for mode, fams in STAGE_MODELS.items())])

    @classmethod
    def execute(cls, target, gpu_gb, used_by_others_gb, reserve_gb, bandwidth_gbps=25.0):
        if gpu_gb <= 0 or used_by_others_gb < 0:
            total, others = _detect_gpu_gb()
            gpu_gb = gpu_gb if gpu_gb > 0 else total
            used_by_others_gb = used_by_others_gb if used_by_others_gb >= 0 else others
        machine = planner.Machine(gpu_gb=gpu_gb, used_gb=used_by_others_gb, reserve_gb=reserve_gb,
                                  bandwidth_gbps=bandwidth_gbps, ram_gb=planner.available_ram_gb()[0])
        cat = get_catalog()
        picks = planner.pick_paths(cat, machine, target)
        models = planner.stage_models(cat, machine, STAGE_MODELS, target)
        others = planner.choose_others(cat, machine, "speed" if target == "speed" else "quality")
        text = picks["text"] + "\nthe chains' stages: " + "; ".join(
            f"{mode}: {fam} ({pid}: {why})" for mode, (fam, pid, why) in models.items())
        text += "\nalso ranked, not a chain stage: " + "; ".join(
            f"{planner.OTHER_TASKS[c.mode]}: {c.preset or '(none)'} ({c.reason})" for c in others)
        return io.NodeOutput(picks["path"], picks["flux2"], picks["wan22"], picks["ltx2"], picks["ace15"], text,
                             *(models[mode][0] for mode in STAGE_MODELS), ui=ui.PreviewText(text))


RESIDENCY_NODES = [LockNResidency, LockNEvict, LockNResidencyReport, LockNPresetPlanner]
__all__ = ["RESIDENCY_NODES", "MODES"]
