"""The step cache node: ComfyUI core's EasyCache on a stage's model, switched from the stage's face.

Off (the default), the node hands the model through as it is: the sampler gets the same object as without
the node, so the output is the same. On, it checks first (lockn_gen.step_cache.check: the threshold's range,
a family whose model does not call the hook EasyCache needs, the Wan2.2 turbo path that leaves nothing to
skip) and then puts core's EasyCache on a clone of the model's ModelPatcher, as a LoRA node does: the base is
not read again nor moved. Each sampling run then reserves the cache's memory within the budgets before it
starts, and at its end says what it skipped: in the log, in the websocket event ``lockn.step_cache`` (the
client's progress line) and in GET /lockn/residency (``step_cache``).
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from comfy_api.latest import io

from ..lockn_gen import step_cache as SC
from ..lockn_gen.preflight import LockNError
from . import comfy_seam as seam
from .residency import REGISTRY

CATEGORY = "LockN Gen/speed"
EVENT = "lockn.step_cache"
log = logging.getLogger("lockn_gen.step_cache")


class Runs:
    """The latest sampling runs with the cache on, and the ones sampling now (their reserved bytes)."""

    def __init__(self, keep: int = 32):
        self.lock = threading.Lock()
        self.done = collections.deque(maxlen=keep)
        self.active: dict[int, SC.Run] = {}

    def report(self) -> dict:
        with self.lock:
            return {"active": [r.to_dict() for r in self.active.values()],
                    "active_bytes": sum(r.cache_bytes for r in self.active.values()),
                    "runs": [r.to_dict() for r in self.done]}


RUNS = Runs()
REGISTRY.report_parts["step_cache"] = RUNS.report


def _title(prompt_id, node) -> str | None:
    with seam.locked_queue() as q:
        graph = q.running_prompt(prompt_id) if q is not None and prompt_id is not None else None
    n = (graph or {}).get(str(node)) or {}
    return (n.get("_meta") or {}).get("title") or n.get("class_type")


def _family(model) -> str | None:
    recs = REGISTRY.object_records([model])
    if recs:
        return recs[0].entry.family
    return SC.family_of(seam.model_class_name(model))


def cached_model(model, settings: SC.Settings, family: str | None, note: str | None):
    """`model` with the step cache (a clone; `model` stays as it is)."""

    def before(noise, guider, steps):
        pid, node = seam.executing_prompt_id(), seam.executing_node_id()
        nbytes = SC.cache_bytes(int(noise.numel()), seam.guider_conds(guider))
        run = SC.Run(pid, node, _title(pid, node), family, settings.threshold, steps, 0, nbytes, note=note)
        REGISTRY.uses_objects([model])            # the sampler's model stays where ComfyUI just loaded it
        REGISTRY.reserve_compute(nbytes, f"the step cache of {run.title or 'a sampler'} (node {node}: its residuals "
                                         f"while it samples)")
        run.seconds = time.perf_counter()
        with RUNS.lock:
            RUNS.active[threading.get_ident()] = run

    def after(skipped, steps):
        with RUNS.lock:
            run = RUNS.active.pop(threading.get_ident(), None)
        if run is None:
            return
        run.skipped, run.steps = (skipped if skipped is not None else 0), steps
        run.seconds = time.perf_counter() - run.seconds
        with RUNS.lock:
            RUNS.done.append(run)
        log.info("LockN %s", run.line())
        if seam.server() is not None:
            seam.send_event(EVENT, run.to_dict())

    try:
        return seam.add_step_cache(model, settings.threshold, settings.start_percent, settings.end_percent, before, after)
    except seam.Missing as e:
        raise LockNError(str(e)) from None


class LockNStepCache(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LockNStepCache", display_name="Step Cache (LockN)", category=CATEGORY,
            description="Skips diffusion steps whose result barely changes, with ComfyUI's own EasyCache, on a clone "
                        "of the model (the loaded base is not read again nor moved). Off: the model passes through "
                        "unchanged. Works on Flux.2, Wan2.2 and LTX-2; not on ACE-Step 1.5 (its model does not call the "
                        "hook the cache needs). Each sampler run reports how many steps it skipped.",
            inputs=[
                io.Model.Input("model", tooltip="The model a sampler will use (after LoRAs and model sampling)."),
                io.Boolean.Input("cache_steps", default=False,
                                 tooltip="On: reuse a cached step where the model's output barely changes (faster, "
                                         "slightly different output). Off: exactly the uncached result."),
                io.Float.Input("reuse_threshold", default=SC.THRESHOLD_DEFAULT, min=SC.THRESHOLD_MIN,
                               max=SC.THRESHOLD_MAX, step=SC.THRESHOLD_STEP, advanced=True,
                               tooltip="How much change to accumulate before a step runs again: higher skips more "
                                       "steps and drifts further from the uncached output (0.1 close, 0.2 core's "
                                       "default, 0.3 faster)."),
                io.Float.Input("start_percent", default=SC.START_PERCENT, min=0.0, max=1.0, step=0.01, advanced=True,
                               tooltip="Where in the whole schedule skipping may begin (core's default 0.15)."),
                io.Float.Input("end_percent", default=SC.END_PERCENT, min=0.0, max=1.0, step=0.01, advanced=True,
                               tooltip="Where in the whole schedule skipping stops (core's default 0.95)."),
                io.Boolean.Input("turbo", default=False, advanced=True,
                                 tooltip="Connect the stage's turbo switch: a turbo path has few steps to skip (Wan2.2's "
                                         "2 per expert: refused, it would skip nothing)."),
            ],
            outputs=[io.Model.Output(tooltip="The model with the step cache (or the same model when off).")])

    @classmethod
    def execute(cls, model, cache_steps, reuse_threshold=SC.THRESHOLD_DEFAULT, start_percent=SC.START_PERCENT,
                end_percent=SC.END_PERCENT, turbo=False) -> io.NodeOutput:
        if not cache_steps:
            return io.NodeOutput(model)
        if model is None:
            raise LockNError("Step cache: no model; connect the MODEL a sampler uses")
        REGISTRY.uses_objects([model])
        family = _family(model)
        settings = SC.Settings(float(reuse_threshold), float(start_percent), float(end_percent))
        try:
            note = SC.check(family, settings, bool(turbo), where="Step cache")
        except SC.StepCacheProblem as e:
            raise LockNError(str(e)) from None
        if note:
            log.info("LockN %s", note)
        return io.NodeOutput(cached_model(model, settings, family, note))


STEP_CACHE_NODES = [LockNStepCache]
