"""The process-wide residency registry: the loaders' one load seam (`load`).

The same model (same files by resolved path, size and mtime, same load options) asked for by any
workflow returns the same loaded object without touching the disk, also after other workflows ran
under ComfyUI's own cache. The registry holds strong references; an entry's tier (gpu, ram, dropped)
is read live from ComfyUI's model management, through nodes/comfy_seam.py like every ComfyUI internal.
A model ComfyUI loaded as a clone of an entry's patcher (a LoRA, a ModelSamplingSD3 patch) counts as
that entry: they share the weights. When the registry settles after a prompt: nodes/lifecycle.py.
A request to free everything (POST /free with free_memory, or ComfyUI's out-of-memory recovery) is
never blocked: ComfyUI unloads pinned models too, and the tiers read afterwards say so.

Each entry's `mapped` part is measured, not assumed: the bytes of the tensors behind its patchers (or of
its state dict, a LoRA) that lie in a mapping of one of its own files (/proc/self/maps), less that
mapping's dirty pages. ComfyUI-GGUF keeps quantized weights as views into the file's read-only map;
ComfyUI's safetensors loads copy into private memory; a model moved from a discrete GPU back to RAM is a
private copy. The RAM budget counts the rest (lockn_gen/residency.py: ram_cost).
"""
from __future__ import annotations

import gc
import hashlib
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field

from ..lockn_gen import residency as policy
from ..lockn_gen.residency import Budgets, Entry
from ..lockn_gen.preflight import LockNError
from . import comfy_seam as seam
from .lifecycle import PromptLifecycle, lifecycle_provider

log = logging.getLogger("lockn_gen.residency")
EVENT = "lockn.residency"


def _external(obj):
    """An object the registry holds that ComfyUI does not manage, or None: the stable-diffusion.cpp engine
    (lockn_gen/sdcpp_engine.py), whose context lives in a worker process. It says what it holds
    (`lockn_resident()`: bytes, device, alive) and lets go of it (`lockn_release()`); it cannot move to RAM and
    back, so an offload drops it."""
    return obj if hasattr(obj, "lockn_resident") and hasattr(obj, "lockn_release") else None


def _patchers(obj) -> list:
    """The ModelPatchers inside a loaded object (MODEL, CLIP, VAE or a tuple of them)."""
    if obj is None:
        return []
    if isinstance(obj, (tuple, list)):
        return [p for o in obj for p in _patchers(o)]
    if hasattr(obj, "model_size") and hasattr(obj, "load_device"):
        return [obj]
    p = getattr(obj, "patcher", None)
    return [p] if p is not None else []


def _tensors(obj) -> list:
    """The tensors of a loaded object that is a state dict (a LoRA file)."""
    if isinstance(obj, dict):
        return [t for t in obj.values() if hasattr(t, "nbytes") and hasattr(t, "device")]
    return []


def _tensor_ranges(tensors) -> list[tuple[int, int]]:
    out = []
    for t in tensors:
        n = t.numel() * t.element_size() if t.device.type == "cpu" else 0
        if n:
            out.append((t.data_ptr(), t.data_ptr() + n))
    return out


def _weights(obj) -> set[int]:
    """Ids of the modules behind an object's patchers: a clone of a patcher shares its module."""
    return {id(m) for m in (seam.inner_model(p) for p in _patchers(obj)) if m is not None}


@dataclass
class Record:
    entry: Entry
    key: tuple
    paths: tuple
    obj: object = None
    drops: int = 0            # bumped when the object is dropped: part of the loader nodes' fingerprint
    held: list = field(default_factory=list)   # weak references to the weights of the dropped object
    release_asked: bool = False                 # ComfyUI was asked once to let go of them
    file_ids: set = field(default_factory=set)  # how its files show in /proc/self/maps (policy.file_ids)
    mapped_key: tuple | None = None             # what `entry.mapped` was measured for (object, tier, device, loaded)
    ranges: list | None = None                  # [start, end) of its CPU tensors then (None: unreadable)
    writable: bool = False                      # a writable mapping of its files: dirty pages can change any time


class Registry(PromptLifecycle):
    def __init__(self):
        self.records: dict[str, Record] = {}
        self.lock = threading.RLock()
        self.budgets = Budgets()
        self.budgets_set = {"gpu": False, "ram": False}
        self.priority: dict[str, int] = dict(policy.DEFAULT_PRIORITY)
        self.cycle = policy.ModeCycle()        # are the modes used in a cycle? (eviction order)
        self.overhead_s = 0.0                  # time spent in the registry itself (bookkeeping only)
        self.calls = 0
        self.warnings: list[str] = []
        self._pins_seen = None                 # (ComfyUI's pinned total, objects held) at the last pin scan
        self.maps_note: str | None = None      # why mapped files cannot be told apart here (no /proc), for the report
        self.lora_uses: dict = {}              # patches uuid of a LoRA clone -> its LoRAs [(entry id, name, strength,
                                               # weights patched)] (the latest 64)
        self.report_parts: dict = {}           # name -> callable: a JSON-able part of the report of another room
                                               # (the step cache's runs)
        self._init_lifecycle()

    # ---- tiers, read from ComfyUI --------------------------------------------------------------
    def refresh(self):
        on_device: dict[int, object] = {}
        loaded: dict[int, int] = {}            # module -> bytes ComfyUI loaded of it (a partial load changes them)
        patched: dict[int, list] = {}          # module -> the LoRAs its loaded weights carry (a clone's patches)
        for lm in seam.loaded_models():
            if lm.loaded_bytes > 0:
                on_device.setdefault(id(seam.inner_model(lm.patcher)), lm.device)
                loaded[id(seam.inner_model(lm.patcher))] = lm.loaded_bytes
                use = self.lora_uses.get(seam.patches_uuid(lm.patcher))
                if use is not None:
                    patched[id(seam.inner_model(lm.patcher))] = use
        for rec in self.records.values():
            rec.entry.loras, rec.entry.applied_to = [], []
        sizes = policy.env_sizes()
        # The per-entry pin scan walks every module: redo it only when ComfyUI's pinned total or the
        # set of held objects changed. No pins: no scan at all.
        pinned_total = seam.pinned_total()
        seen = (pinned_total, tuple(id(r.obj) for r in self.records.values()))
        rescan, self._pins_seen = seen != self._pins_seen, seen
        maps: dict = {}                        # /proc/self/maps (and smaps' dirty bytes), read at most once per
                                               # refresh, when an entry needs them
        for rec in self.records.values():
            e = rec.entry
            if _external(rec.obj) is not None:
                self._refresh_external(rec, sizes)
                continue
            ps = _patchers(rec.obj)
            weights = _weights(rec.obj)
            devices = [on_device[w] for w in weights if w in on_device]
            tensors = _tensors(rec.obj)
            if rec.obj is None:
                e.tier, e.device = "dropped", ""
            elif devices:
                e.tier, e.device = "gpu", str(devices[0])
            elif tensors and tensors[0].device.type != "cpu":
                e.tier, e.device = "gpu", str(tensors[0].device)
            else:
                e.tier, e.device = "ram", "cpu"
            injected = [sizes[os.path.basename(p)] for p in rec.paths if os.path.basename(p) in sizes]
            if injected:
                e.bytes = sum(injected)
            elif ps:
                e.bytes = int(sum(p.model_size() for p in ps))
            elif tensors:
                e.bytes = int(sum(t.nbytes for t in tensors))
            if injected:
                e.mapped = 0                   # stated sizes (a simulated discrete GPU): counted whole
            elif rec.obj is not None:
                e.mapped = self._mapped(rec, ps, tensors, weights, loaded, maps)
            use = next((patched[w] for w in weights if w in patched), None)
            if use is not None:
                e.loras = [{"id": lid, "name": name, "strength": strength, "weights_patched": n}
                           for lid, name, strength, n in use]
                for lid, *_ in use:
                    lora = self.records.get(lid)
                    if lora is not None and e.name not in lora.entry.applied_to:
                        lora.entry.applied_to.append(e.name)
            e.held = rec.obj is None and any(w() is not None for w in rec.held)
            if rec.obj is None or not pinned_total:
                e.host_pinned = 0
            elif rescan:
                e.host_pinned = seam.pinned_bytes(ps)

    def _refresh_external(self, rec, sizes):
        """An engine's entry: its bytes and device as it states them (the worker's RSS; stated sizes where the
        tests simulate a discrete GPU). Its tier is "gpu" while it computes on a GPU, or on the CPU where that is
        ComfyUI's compute device too (no discrete GPU), else "ram"; a worker that is gone (an interrupt killed
        it) makes the entry dropped, as a dropped model: the next use loads again."""
        e = rec.entry
        state = rec.obj.lockn_resident()
        if not state.get("alive"):
            rec.obj = None
            rec.drops += 1
            e.tier, e.device, e.held = "dropped", "", False
            return
        injected = [sizes[os.path.basename(p)] for p in rec.paths if os.path.basename(p) in sizes]
        e.bytes = sum(injected) if injected else int(state.get("bytes") or 0)
        e.device = str(state.get("device") or "")
        e.tier = "gpu" if e.device not in ("cpu", "") or self._shared() else "ram"
        e.mapped, e.host_pinned, e.held, e.loras = 0, 0, False, []

    def _mapped(self, rec, ps, tensors, weights, loaded, maps) -> int:
        """The reclaimable part of the entry's bytes: its CPU tensors that lie in a mapping of its own files,
        less the mapping's dirty pages. Measured again only when its object, tier, device or loaded bytes
        changed (or a mapping of its files is writable); the maps are then read once for the refresh (`maps`
        caches them) and only the lines of the registry's files are parsed; so is smaps, for the dirty pages of
        every writable mapping of those files at once (reading it walks every page table of the process: once
        per entry made a suite's LoRA test, with a few dozen entries, five times slower)."""
        e = rec.entry
        key = (id(rec.obj), e.tier, e.device, sum(loaded.get(w, 0) for w in weights))
        if key == rec.mapped_key and not rec.writable:
            return e.mapped
        if "mappings" not in maps:
            maps["ids"] = set().union(*(r.file_ids for r in self.records.values() if r.obj is not None))
            maps["mappings"] = policy.file_mappings(maps["ids"])
            self.maps_note = None if maps["mappings"] is not None else (
                "this system does not show LockN its memory maps (/proc/self/maps): every model counts whole "
                "against the RAM budget, also the parts of GGUF files that stay mapped, which the kernel could reclaim")
        mappings = maps["mappings"]
        if mappings is None:
            rec.mapped_key, rec.ranges, rec.writable = key, None, False
            return 0
        if key != rec.mapped_key:
            ranges = seam.weight_ranges(ps) if ps else []
            rec.ranges = None if ranges is None else ranges + _tensor_ranges(tensors)
            rec.mapped_key = key
        mine = policy.maps_of(mappings, rec.file_ids)
        rec.writable = any("w" in m.perms for m in mine)
        if not rec.ranges or not mine:
            return 0
        if rec.writable and "dirty" not in maps:
            maps["dirty"] = policy.dirty_bytes(policy.maps_of(mappings, maps["ids"]))
        return min(e.bytes, policy.mapped_bytes(rec.ranges, mine, maps["dirty"] if rec.writable else None))

    def refresh_now(self):
        """Read the tiers again and tell the sidebar (an engine's worker went away in the middle of a node)."""
        with self.lock:
            self.refresh()
            self._changed()

    # ---- the load seam ---------------------------------------------------------------------------
    def load(self, spec, loader):
        """Return the loaded object for `spec`, from the registry when it holds it, else by calling
        `loader()` (which reads from disk) after making room within the budgets."""
        t0 = time.perf_counter()
        key = spec.identity()
        rid = self._rid(key)
        with self.lock:
            self.calls += 1
            rec = self.records.get(rid)
            if rec is not None and rec.obj is not None:
                rec.entry.hits += 1              # reported (websocket event) at the prompt's end
                rec.entry.last_used = time.time()
                self.prompt_ids.add(rid)
                self.overhead_s += time.perf_counter() - t0
                return rec.obj
            self._forget_stale(spec, rid)
            self._ensure_defaults()
            self.refresh()
            nbytes, mapped = self._estimate(spec)
            actions = self._room_for(nbytes, spec.display_name, mapped=mapped)
            self._apply(actions)
            if any(a.kind == "drop" for a in actions):
                self.release_dropped()           # collect what the drops freed before the disk read
            self.overhead_s += time.perf_counter() - t0
        obj = loader()                                   # disk read: not counted as registry overhead
        t1 = time.perf_counter()
        with self.lock:
            if rec is None:
                e = Entry(id=rid, name=spec.display_name, family=spec.family, role=spec.role, mode=spec.mode, bytes=0,
                          files=[os.path.basename(p) for p in spec.paths])
                rec = Record(entry=e, key=key, paths=tuple(spec.paths))
                self.records[rid] = rec
            rec.obj = obj
            rec.file_ids, rec.mapped_key = policy.file_ids(rec.paths), None     # measured afresh (ids are reused)
            rec.entry.loads += 1
            rec.entry.last_used = time.time()
            self.prompt_ids.add(rid)
            self.refresh()
            self._changed()
            self.overhead_s += time.perf_counter() - t1
        return obj

    def reserve_ram(self, nbytes: int, why: str):
        """Make room within the RAM budget for `nbytes` that ComfyUI is about to use in system RAM outside
        any entry (the backups of LoRA-patched weights), evicting as the policy allows; the prompt's own
        entries stay."""
        self._reserve(nbytes, why, ram_only=True)

    def reserve_compute(self, nbytes: int, why: str, compute: policy.Compute | None = None):
        """The same for `nbytes` that a run is about to hold on the compute device (the step cache's residuals,
        training's adapters and activations): room within the GPU budget (and the RAM budget where the device's
        memory is system RAM), or LockNError with the figures (and `compute`'s outcome and fixes) and nothing
        evicted."""
        self._reserve(nbytes, why, gpu_only=True, compute=compute)

    def _reserve(self, nbytes: int, why: str, ram_only: bool = False, gpu_only: bool = False, compute=None):
        if nbytes <= 0:
            return
        with self.lock:
            self._ensure_defaults()
            self.refresh()
            actions = self._room_for(nbytes, why, ram_only=ram_only, gpu_only=gpu_only, compute=compute)
            if actions:
                log.info("LockN residency: making room for %.2f GB (%s)", nbytes / policy.GB, why)
            self._apply(actions)
            if any(a.kind == "drop" for a in actions):
                self.release_dropped()
            self.refresh()

    def note_loras(self, clone, base, items):
        """A LockN LoRA node made `clone` from `base` (an entry's object, or a clone of one) with these
        LoRAs: [(LoRA entry id, name, strength, weights patched)]. The report shows them on the base
        while ComfyUI's loaded weights carry the clone's patches."""
        uuid = seam.patches_uuid(clone)
        if uuid is None or not self.object_records([base]):
            return
        with self.lock:
            prior = self.lora_uses.get(seam.patches_uuid(base))      # LoRA nodes in a row: the stack grows
            self.lora_uses[uuid] = [*(prior or []), *items]
            while len(self.lora_uses) > 64:
                self.lora_uses.pop(next(iter(self.lora_uses)))

    def will_use(self, specs):
        """A loader is about to ask for these: protect the ones already held while it loads the rest,
        so making room for one component never evicts another the same node needs."""
        with self.lock:
            self.in_prompt()
            self.prompt_ids.update(i for i in self.ids(specs) if i)
            pid = seam.executing_prompt_id()
            for spec in specs:
                self.cycle.use(spec.mode, pid)

    def uses_objects(self, objs):
        """A LockN node of the running prompt uses these loaded models (a sampler's model, passed through other
        nodes): their entries are the prompt's, protected from eviction until it ends."""
        with self.lock:
            self.in_prompt()
            self.prompt_ids.update(r.entry.id for r in self.object_records(objs))

    @staticmethod
    def _rid(key) -> str:
        return hashlib.sha1(repr(key).encode()).hexdigest()[:12]

    def ids(self, specs) -> list[str | None]:
        """Entry ids of these specs; None for a file that is gone."""
        out = []
        for spec in specs:
            try:
                out.append(self._rid(spec.identity()))
            except OSError:
                out.append(None)
        return out

    def token(self, rid: str | None) -> str:
        """Changes when the entry is dropped or evicted: loader nodes fold it into their fingerprint so
        ComfyUI's cache never serves an evicted model's old outputs."""
        if rid is None:
            return "missing"
        rec = self.records.get(rid)
        return f"{rid}:{rec.drops if rec else 0}"

    def _room_for(self, nbytes: int, name: str, ram_only: bool = False, mapped: int = 0, gpu_only: bool = False,
                  compute=None) -> list:
        """The evictions that make room for `nbytes` (a model to load, `mapped` of them from its file; with
        `ram_only`, memory that stays in RAM), the running prompt's entries kept; LockNError, with nothing
        evicted, when even they do not make enough: stopped here rather than by the kernel's out-of-memory
        killer."""
        shared, protect = self._shared(), set(self.prompt_ids)
        actions = policy.plan(self._entries(), self.budgets, nbytes, self.priority, protect=protect,
                              cycling=self.cycle.cycling, incoming_ram_only=ram_only, shared=shared,
                              incoming_mapped=mapped, incoming_gpu_only=gpu_only)
        why = policy.refusal(self._entries(), self.budgets, actions, nbytes, name, protect=protect, shared=shared,
                             available=policy.mem_available(), incoming_ram_only=ram_only, incoming_mapped=mapped,
                             incoming_gpu_only=gpu_only, compute=compute)
        if why:
            log.error("LockN residency: %s", why)
            raise LockNError(why)
        return actions

    @staticmethod
    def _shared() -> bool:
        """The "gpu" tier is system RAM (ComfyUI on the CPU or unified memory), unless the tests simulate a
        discrete GPU with injected sizes (LOCKN_RESIDENCY_SIZES)."""
        return not policy.env_sizes() and seam.compute_memory_is_ram()

    def _estimate(self, spec) -> tuple[int, int]:
        """(bytes, mapped bytes) the model will hold once loaded, before anything is read: a GGUF diffusion
        model loaded by ComfyUI-GGUF stays mostly mapped from its file (comfy_seam.gguf_load_split); a
        safetensors file, a GGUF text encoder (which ComfyUI-GGUF partly dequantizes and permutes) and stated
        sizes (LOCKN_RESIDENCY_SIZES) count as private, their file's size."""
        sizes = policy.env_sizes()
        total = mapped = 0
        for p in spec.paths:
            name = os.path.basename(p)
            if name in sizes:
                total += sizes[name]
                continue
            if spec.kind == "diffusion_model" and p.lower().endswith(".gguf"):
                try:
                    b, m = seam.gguf_load_split(p)
                except (OSError, ValueError) as e:       # the loader reports a bad file; count it whole
                    log.debug("LockN residency: no GGUF estimate for %s (%s)", name, e)
                else:
                    total, mapped = total + b, mapped + m
                    continue
            total += os.path.getsize(p)
        return total, mapped

    def _forget_stale(self, spec, rid):
        """A file replaced on disk (new size or mtime) makes its old entry stale: drop it."""
        for other in list(self.records.values()):
            if other.entry.id != rid and other.entry.role == spec.role and set(other.paths) == set(spec.paths):
                self._drop(other, "the file changed on disk")
                del self.records[other.entry.id]

    def _entries(self) -> list[Entry]:
        return [r.entry for r in self.records.values()]

    # ---- budgets and eviction --------------------------------------------------------------------
    def _ensure_defaults(self):
        if not self.budgets_set["gpu"]:
            held = sum(r.entry.bytes for r in self.records.values() if r.entry.tier == "gpu")
            self.budgets.gpu_bytes = seam.default_gpu_budget(held)
            self.budgets_set["gpu"] = True
        if not self.budgets_set["ram"]:
            self.budgets.ram_bytes = policy.default_ram_budget(     # (mapped pages count in MemAvailable)
                held_bytes=sum(r.entry.private for r in self.records.values() if r.entry.tier == "ram"))
            self.budgets_set["ram"] = True

    def set_budgets(self, gpu_gb: float | None = None, ram_gb: float | None = None):
        with self.lock:
            if gpu_gb is not None:
                self.budgets.gpu_bytes = int(gpu_gb * policy.GB) if gpu_gb > 0 else None
                self.budgets_set["gpu"] = gpu_gb > 0
            if ram_gb is not None:
                self.budgets.ram_bytes = int(ram_gb * policy.GB) if ram_gb > 0 else None
                self.budgets_set["ram"] = ram_gb > 0

    def enforce(self, protect=frozenset()):
        with self.lock:
            self._ensure_defaults()
            self.refresh()
            self._apply(self._plan(protect))
            self.refresh()
            self.warnings = policy.over_budget(self._entries(), self.budgets, shared=self._shared())

    def enforce_if_over(self, protect=frozenset()):
        """Between prompts: enforce the budgets if the tiers, read now, exceed them."""
        with self.lock:
            self._ensure_defaults()
            self.refresh()
            if not policy.over_budget(self._entries(), self.budgets, shared=self._shared()):
                return
            actions = self._plan(protect)
            if actions:                        # (pinned entries alone over a budget: nothing to do, no event)
                self._apply(actions)
                self.release_dropped()
                self.refresh()
                self._changed()

    def _plan(self, protect) -> list:
        """What brings the tiers, as read last, within the budgets (nothing incoming)."""
        return policy.plan(self._entries(), self.budgets, 0, self.priority, protect=set(protect),
                           cycling=self.cycle.cycling, shared=self._shared())

    def _apply(self, actions):
        for a in actions:
            rec = self.records.get(a.entry_id)
            if rec is None:
                continue
            if a.kind == "offload":
                self._offload(rec)
            else:
                self._drop(rec, a.reason)
            log.info("LockN residency: %s %s (%s)", a.kind, rec.entry.name, a.reason)

    def _offload(self, rec):
        """GPU -> RAM for one entry (and ComfyUI's clones of it), every other loaded model kept. An engine's
        context cannot wait in RAM: it is dropped."""
        if _external(rec.obj) is not None:
            self._drop(rec, "an engine's context cannot move to RAM")
            return
        mine = _weights(rec.obj)
        seam.offload([lm for lm in seam.loaded_models() if id(seam.inner_model(lm.patcher)) in mine])

    def _drop(self, rec, reason=""):
        if rec.obj is None:
            return
        ext = _external(rec.obj)
        if ext is not None:                    # its memory is another process's: gone when that process is
            ext.lockn_release()
            rec.held, rec.release_asked, rec.obj = [], False, None
            rec.drops += 1
            rec.entry.tier = "dropped"
            return
        self._offload(rec)
        # The weights (each ModelPatcher's module, shared with its clones) stay in memory while anything
        # else refers to them, ComfyUI's output cache above all: watch them until they are gone.
        rec.held = [weakref.ref(p.model) for p in _patchers(rec.obj) if getattr(p, "model", None) is not None]
        rec.release_asked = False
        rec.obj = None
        rec.drops += 1
        rec.entry.tier = "dropped"

    def _still_held(self) -> list[Record]:
        out = []
        for r in self.records.values():
            r.held = [w for w in r.held if w() is not None]
            if r.held and r.obj is None:
                out.append(r)
        return out

    def release_dropped(self):
        """Make dropping a model free its memory now. Weights still referenced after a garbage
        collection are held by ComfyUI's output cache (the outputs of the prompt that used them): ask
        ComfyUI to clear that cache after the current prompt, keeping every model loaded, the way
        POST /free {"free_memory": true, "unload_models": false} does."""
        if not [r for r in self._still_held() if not r.release_asked]:
            return
        gc.collect()
        held = [r for r in self._still_held() if not r.release_asked]
        if not held:
            return
        for r in held:                                  # once per drop: whatever else holds them (another
            r.release_asked = True                      # pack's node, say) is reported, not chased
        with seam.locked_queue() as q:                  # an RLock: no /free can slip in between
            if q is None:                               # no server (in-process use): nothing to ask
                return
            q.request_output_cache_clear()
        log.info("LockN residency: asked ComfyUI to clear its output cache, which still holds %s",
                 ", ".join(r.entry.name for r in held))

    # ---- user actions ----------------------------------------------------------------------------
    def find(self, ident: str | None = None, family: str | None = None, name: str | None = None) -> list[Record]:
        out = []
        for r in self.records.values():
            if ident and r.entry.id != ident:
                continue
            if family and family != "all" and r.entry.family != family:
                continue
            if name and name not in r.entry.name:
                continue
            out.append(r)
        return out

    def evict(self, records, to: str = "dropped", defer_if_busy: bool = True) -> list[str]:
        """Evict entries (to "ram" or "dropped"). A request from outside the prompts (defer_if_busy)
        waits while one runs, so no model is pulled from under it: the registry's hook is registered
        to hear that prompt's end, and the watcher settles it should the end have passed already."""
        ids = [r.entry.id for r in records]
        if defer_if_busy:
            with self._when_idle() as idle:
                if idle:
                    self._settle()             # the last prompt's end first
                    self._disarm()
                    self._evict_now(records, to)
                    return ids
            with self.lock:
                self.pending.append((ids, to))
                self.arm()
                self._watch()
            return ids
        with self.lock:
            self._evict_now(records, to)
        return ids

    def _evict_now(self, records, to):
        for r in records:
            if to == "ram":
                self._offload(r)
            else:
                self._drop(r, "evicted by request")
        if to != "ram":
            self.release_dropped()
        self.refresh()
        self._changed()

    def pin(self, records, pinned: bool = True):
        with self.lock:
            for r in records:
                r.entry.pinned = bool(pinned)
            self._changed()

    def set_priority(self, priority: dict[str, int]):
        with self.lock:
            self.priority.update({k: int(v) for k, v in priority.items() if k in policy.MODES})

    def drop_all(self, reason: str):
        """Release every entry (ComfyUI was asked to free its memory and reset its cache)."""
        with self.lock:
            for r in self.records.values():
                if r.obj is not None:
                    if _external(r.obj) is not None:
                        r.obj.lockn_release()      # ComfyUI frees only its own: an engine's worker goes here
                    r.obj = None
                    r.drops += 1
            self.refresh()
            self._changed()
        log.info("LockN residency: released every model (%s)", reason)

    def object_records(self, objs) -> list[Record]:
        """Registry entries whose loaded object contains one of `objs` (passed-through models)."""
        want = set().union(*(_weights(o) for o in objs)) if objs else set()
        return [r for r in self.records.values() if r.obj is not None and want & _weights(r.obj)]

    # ---- reporting ---------------------------------------------------------------------------------
    def report(self) -> dict:
        """The report, settled first when no prompt runs (so a reader after a prompt sees its end)."""
        self.settle_if_idle()
        return self._report()

    def _report(self) -> dict:
        with self.lock:
            self.refresh()
            entries = sorted(self._entries(), key=lambda e: (-e.last_used))
            t = policy.totals(entries)
            shared = self._shared()
            mapped = {tier: sum(e.mapped for e in entries if e.tier == tier) for tier in ("gpu", "ram")}
            return {"entries": [e.to_dict() for e in entries],
                    "budgets": self.budgets.to_dict(),
                    "totals": {"gpu_bytes": t["gpu"], "ram_bytes": t["ram"], "dropped_bytes": t["dropped"],
                               "gpu_mapped_bytes": mapped["gpu"], "ram_mapped_bytes": mapped["ram"],
                               "mapped_bytes": mapped["gpu"] + mapped["ram"],
                               # what the RAM budget counts: private bytes of the RAM tier, and of the compute
                               # device's where that is system RAM (ram_budget_counts_gpu)
                               "ram_budget_used_bytes": policy.ram_used(entries, shared),
                               "ram_budget_counts_gpu": shared,
                               "host_pinned_bytes": sum(e.host_pinned for e in entries),
                               "held_after_drop_bytes": sum(e.bytes for e in entries if e.held), "entries": len(entries)},
                    "priority": dict(self.priority), "eviction": "cycle" if self.cycle.cycling else "lru",
                    "prompt_running": self.busy(), "hook_armed": self.armed,
                    "pending_evictions": len(self.pending),
                    "warnings": [*self.warnings, *([self.maps_note] if self.maps_note else []), *seam.warnings()],
                    "overhead_ms_per_call": 1000 * self.overhead_s / max(1, self.calls),
                    "overhead_s_total": self.overhead_s, "calls": self.calls,
                    **{name: part() for name, part in self.report_parts.items()}}

    def _changed(self):
        if seam.server() is not None:
            seam.send_event(EVENT, self._report())


REGISTRY = Registry()
REGISTRY.hook = lifecycle_provider(REGISTRY)     # registered with ComfyUI only while needed (arm)


def load(spec, loader):
    """THE load seam: every component the loader nodes need comes through here."""
    return REGISTRY.load(spec, loader)
