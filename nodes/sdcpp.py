"""Flux.2 pictures on stable-diffusion.cpp inside the graph (issue 27): one node, the engine in a worker process
(lockn_gen/sdcpp_engine.py), its context a residency entry like any model the loaders hold.

The files come from the catalog's sd.cpp presets (the Flux.2 diffusion model and VAE the ComfyUI presets load;
dev's text encoder as the Mistral GGUF sd.cpp reads) and are checked before anything is loaded, as the loaders
check theirs. The context goes through the registry's load seam: counted against the same budgets (the worker's
resident memory), evicted, pinned and freed (`/free`) like the rest, one per set of files. Progress reaches
ComfyUI's bar (its ProgressBar, through the seam); Cancel stops the run between steps (the worker is killed; the next
run loads again).
"""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..lockn_gen import catalog as catalog_mod
from ..lockn_gen import sdcpp_engine as sde
from ..lockn_gen.preflight import PRESET_CHOICE, LockNError
from . import comfy_models as cm
from . import comfy_seam as seam
from .loaders import preflight, resolve_preset, schema_catalog
from .residency import REGISTRY, load

log = logging.getLogger("lockn_gen.sdcpp")
CATEGORY = "LockN Gen/image"
FAMILY = "flux2"
DEFAULT_PRESET = "flux2-klein-4b-sdcpp"
ROLES = {"diffusion_model": ("diffusion_models", "Use this Flux.2 diffusion model instead."),
         "text_encoder": ("text_encoders", "Use this text encoder instead (klein: Qwen3-4B; dev: the Mistral GGUF)."),
         "vae": ("vae", "Use this Flux.2 VAE instead.")}


def spec_for(res) -> cm.LoadSpec:
    """The registry's unit: the three files together (the context sd.cpp builds from them). Options are left
    out on purpose: two contexts for the same files are never held at once."""
    c = {x.role: x for x in res.components if x.path}
    return cm.LoadSpec(kind="sdcpp_context", family=FAMILY, role="sdcpp_context",
                       files=tuple((c[r].folder, c[r].path) for r in ("diffusion_model", "text_encoder", "vae")),
                       mode=catalog_mod.builtin().families[FAMILY].mode)


def _engine(res, threads: int) -> sde.Engine:
    spec = spec_for(res)
    files = sde.Files(*spec.paths)
    REGISTRY.will_use([spec])

    def start():
        eng = sde.Engine(files, threads=threads)
        eng.start()
        log.info("LockN sd.cpp: loaded %s in %.1f s on %s", files.names(), eng.load_seconds, eng.device)
        return eng
    return load(spec, start)


class _Progress:
    """sd.cpp's steps (per picture of a batch) as one bar for the node."""

    def __init__(self, steps: int, batch: int):
        self.steps, self.total, self.picture, self.last = steps, max(1, steps * batch), 0, 0
        self.bar = seam.progress_bar(self.total)

    def __call__(self, step: int, steps: int):
        if steps != self.steps:                 # sd.cpp's other counters (its VAE's tiles, say)
            return
        if step < self.last:                    # the next picture of the batch
            self.picture += 1
        self.last = step
        self.bar.update_absolute(min(self.total, self.picture * steps + step), self.total)


class LockNFlux2SdCpp(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        ids = [p.id for p in schema_catalog().presets_for(FAMILY, "sdcpp")]
        return io.Schema(
            node_id="LockNFlux2SdCpp", display_name="Flux.2 Image, stable-diffusion.cpp (LockN)", category=CATEGORY,
            description="Makes Flux.2 pictures with stable-diffusion.cpp instead of ComfyUI's sampler, from the same "
                        "diffusion model and VAE files (dev's text encoder is the Mistral GGUF sd.cpp reads). The "
                        "loaded context stays resident between runs and counts against LockN's budgets like any "
                        "model. Needs the optional binding: LOCKN_SETUP_SDCPP=1 bash scripts/setup.sh.",
            inputs=[
                io.Combo.Input("preset", options=ids, default=DEFAULT_PRESET if DEFAULT_PRESET in ids else (ids[0] if ids else None),
                               tooltip="Which Flux.2 files sd.cpp loads (the LockN catalog's sd.cpp presets)."),
                io.String.Input("prompt", multiline=True, default="", tooltip="What to draw."),
                io.Int.Input("width", default=1024, min=64, max=4096, step=16,
                             tooltip="Picture width: a multiple of 16 (Flux.2's latent patches)."),
                io.Int.Input("height", default=1024, min=64, max=4096, step=16,
                             tooltip="Picture height: a multiple of 16."),
                io.Int.Input("steps", default=0, min=0, max=200,
                             tooltip="Sampling steps; 0 takes the preset's (klein 4, dev 20, as the official templates)."),
                io.Float.Input("guidance", default=0.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Flux.2 dev's distilled guidance; 0 takes the preset's (dev 4.0; klein has none)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="The noise seed (sd.cpp's noise: the same seed is not the same picture as in ComfyUI)."),
                io.Combo.Input("sampler", options=list(sde.SAMPLERS), default="euler",
                               tooltip="sd.cpp's sampler (the official Flux.2 templates use euler)."),
                io.Int.Input("batch_size", default=1, min=1, max=16, tooltip="Pictures per run, one after the other."),
                io.Int.Input("threads", default=0, min=0, max=256, advanced=True,
                             tooltip="CPU threads of a CPU build; 0: sd.cpp's choice (the physical cores). Used when "
                                     "the context loads."),
                *[io.Combo.Input(role, options=[PRESET_CHOICE] + cm.list_files(folder), default=PRESET_CHOICE,
                                 advanced=True, tooltip=tip + " Leave at (preset) to use the preset's file.")
                  for role, (folder, tip) in ROLES.items()],
            ],
            outputs=[io.Image.Output(display_name="IMAGE")])

    @classmethod
    def fingerprint_inputs(cls, preset, **kwargs):
        """The files' identity beside the inputs ComfyUI compares: a file replaced on disk under the same name makes
        the picture again. (Evicting the context does not: the cached picture is still the picture.)"""
        try:
            _, res = resolve_preset(FAMILY, preset, {r: kwargs.get(r, PRESET_CHOICE) for r in ROLES}, "sdcpp")
            if res.missing:
                return "missing:" + ",".join(c.name for c in res.missing)
            return repr(spec_for(res).identity())
        except Exception as e:          # noqa: BLE001  (errors surface when the node runs)
            return f"error:{e}"

    @classmethod
    def execute(cls, preset, prompt, width, height, steps, guidance, seed, sampler, batch_size, threads=0,
                **overrides):
        import numpy as np
        import torch
        python = sde.worker_python()
        if not sde.installed(python):
            raise LockNError(sde.INSTALL.format(python=python))
        sde.check_size(width, height)
        cat, res = preflight(FAMILY, preset, {r: overrides.get(r, PRESET_CHOICE) for r in ROLES}, engine="sdcpp")
        s = sde.settings(cat.preset(preset).settings(cat), steps, guidance)
        eng = _engine(res, threads)
        try:
            pictures = eng.generate(prompt, width, height, steps=s["steps"], seed=seed, guidance=s["guidance"],
                                    sampler=sampler, batch=batch_size, on_step=_Progress(s["steps"], batch_size),
                                    should_stop=seam.interrupted)
        except sde.Interrupted:
            REGISTRY.refresh_now()              # the worker is gone: its entry reads dropped at once
            seam.raise_interrupted()
        except BaseException:                   # a dead worker, or ComfyUI's interrupt raised by its progress hook
            REGISTRY.refresh_now()              # (the engine killed the run): the sidebar hears it at once
            raise
        return io.NodeOutput(torch.from_numpy(np.stack(pictures)).float() / 255.0)


SDCPP_NODES = [LockNFlux2SdCpp]
