"""The process-wide residency registry: the loaders' one load seam (`load`).

The same model (same files by resolved path, size and mtime, same load options) asked for by any
workflow returns the same loaded object without touching the disk, also after other workflows ran
under ComfyUI's default cache, which keeps only the last prompt's outputs. The registry holds strong
references; which tier an entry is in is read live from ComfyUI's model management.

ComfyUI functions and APIs relied on (no device function is patched):
- comfy.model_management.current_loaded_models (LoadedModel.model, .device, loaded_size()) to read tiers;
- comfy.model_management.free_memory(memory, device, keep_loaded=[...]) to move one entry GPU -> RAM
  while every other loaded model (pinned ones included) is kept through keep_loaded;
- ModelPatcher.model_size(), .load_device; CLIP.patcher, VAE.patcher;
- to report the pinned part of the RAM tier (the page-locking itself is ComfyUI's: NVIDIA and AMD,
  unless --disable-pinned-memory): comfy.model_management.TOTAL_PINNED_MEMORY, kept by its pin
  functions; module._pin, which comfy.pinned_memory.pin_memory sets and get_pin reads (dynamic VRAM);
  ModelPatcher.pinned, the keys comfy.model_management.pin_memory pinned on offload (classic loading);
- comfy_execution.utils.get_executing_context() in a loader's fingerprint_inputs and execute (the
  prompt's id: ComfyUI asks for every fingerprint before a prompt's first node runs);
- PromptServer.instance.prompt_queue: currently_running (a prompt is in progress, from the worker's
  get() to its task_done(); its values are queue items) read under its mutex, which get() needs to
  start the next prompt; queue, the heap of waiting items (number, prompt id, prompt, ...), whose [0]
  runs next;
  PromptServer.instance.loop for the idle watcher;
- PromptServer.instance.add_on_prompt_handler: ComfyUI calls the handler with the body of every
  POST /prompt (its only way into the queue) before the prompt is validated and queued;
- comfy_api.latest Caching.CacheProvider on_prompt_start / on_prompt_end, registered with
  comfy_execution.cache_provider.register_cache_provider / unregister_cache_provider (what
  Caching.register_provider / unregister_provider call, but synchronous) only while an eviction waits
  for a running prompt's end or a prompt without LockN loaders is next after one with them: see
  "prompt life cycle" below for why not always;
- server.PromptServer.instance.send_sync for the "lockn.residency" websocket event;
- PromptServer.instance.prompt_queue (its RLock mutex, get_flags, set_flag) to ask for what
  POST /free {"free_memory": true, "unload_models": false} does: after the prompt, the prompt worker
  (main.py) resets the executor's output cache, which may still hold a dropped model's weights.
A request to free everything (POST /free with free_memory, or ComfyUI's out-of-memory recovery,
which calls unload_all_models) is never blocked: ComfyUI unloads pinned models too, and the tiers
read afterwards say so.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..lockn_gen import residency as policy
from ..lockn_gen.residency import Budgets, Entry

log = logging.getLogger("lockn_gen.residency")
MODE_OF_FAMILY = {"flux2": "image", "wan22": "video", "ltx2": "video", "ace15": "music"}
EVENT = "lockn.residency"


def _queue():
    """ComfyUI's prompt queue, or None in-process (no server)."""
    try:
        from server import PromptServer
        return PromptServer.instance.prompt_queue
    except Exception:
        return None


def _executing():
    """The node ComfyUI executes (or fingerprints) in this thread, with its prompt's id; else None."""
    from comfy_execution.utils import get_executing_context
    return get_executing_context()


def _holds_lockn_loader(prompt) -> bool:
    return any(isinstance(n, dict) and str(n.get("class_type", "")).startswith("LockN")
               and str(n.get("class_type", "")).endswith("Loader") for n in prompt.values())


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


def _pinned_bytes(patchers) -> int:
    """Bytes of these models' weights that ComfyUI holds page-locked in system RAM. One pass over the
    modules (ModelPatcher.pinned_memory_size() builds the whole load list, too slow for every report)."""
    import comfy.model_patcher
    total = 0
    for p in patchers:
        try:
            for m in p.model.modules():
                # dynamic VRAM: comfy.pinned_memory.pin_memory sets module._pin (read by its get_pin);
                # a plain attribute lives in the module's __dict__, and looking there skips
                # nn.Module.__getattr__'s slow miss on the thousands of modules that have none
                pin = m.__dict__.get("_pin")
                if pin is not None:
                    total += pin.numel() * pin.element_size()
            for key in list(getattr(p, "pinned", ()) or ()):  # classic loading: the weights it pinned on offload
                total += comfy.model_patcher.get_key_weight(p.model, key)[0].nbytes
        except Exception:                                     # a reading, never a reason to fail a report
            log.debug("LockN residency: pinned size unreadable", exc_info=True)
    return total


@dataclass
class Record:
    entry: Entry
    key: tuple
    paths: tuple
    obj: object = None
    drops: int = 0            # bumped when the object is dropped: part of the loader nodes' fingerprint
    held: list = field(default_factory=list)   # weak references to the weights of the dropped object
    release_asked: bool = False                 # ComfyUI was asked once to let go of them


class Registry:
    def __init__(self):
        self.records: dict[str, Record] = {}
        self.lock = threading.RLock()
        self.budgets = Budgets()
        self.budgets_set = {"gpu": False, "ram": False}
        self.priority: dict[str, int] = dict(policy.DEFAULT_PRIORITY)
        self.prompt_running = False
        self.prompt_ids: set[str] = set()      # entries used by the prompt in progress
        self.pending: list = []                # evictions asked for while a prompt runs
        self.overhead_s = 0.0                  # time spent in the registry itself (bookkeeping only)
        self.calls = 0
        self.warnings: list[str] = []
        self._pins_seen = None                 # (ComfyUI's pinned total, objects held) at the last pin scan
        self.hook = None                       # the prompt life-cycle provider (set up by the extension)
        self.armed = False                     # the hook is registered with ComfyUI now
        self.prompt_id = None                  # the last prompt a LockN loader was part of
        self.watching = False                  # the idle watcher runs

    # ---- tiers, read from ComfyUI --------------------------------------------------------------
    def _loaded(self) -> dict[int, object]:
        import comfy.model_management as mm
        return {id(lm.model): lm for lm in mm.current_loaded_models if lm.model is not None}

    def refresh(self):
        import comfy.model_management as mm
        loaded = self._loaded()
        sizes = policy.env_sizes()
        # The per-entry pin scan walks every module: redo it only when ComfyUI's pinned total (which
        # its pin_memory functions keep) or the set of held objects changed. No pins: no scan at all.
        pinned_total = int(getattr(mm, "TOTAL_PINNED_MEMORY", 0) or 0)
        seen = (pinned_total, tuple(id(r.obj) for r in self.records.values()))
        rescan, self._pins_seen = seen != self._pins_seen, seen
        for rec in self.records.values():
            e = rec.entry
            ps = _patchers(rec.obj)
            on = [loaded[id(p)] for p in ps if id(p) in loaded and loaded[id(p)].model_loaded_memory() > 0]
            if rec.obj is None:
                e.tier, e.device = "dropped", ""
            elif on:
                e.tier, e.device = "gpu", str(on[0].device)
            else:
                e.tier, e.device = "ram", "cpu"
            injected = [sizes[os.path.basename(p)] for p in rec.paths if os.path.basename(p) in sizes]
            if injected:
                e.bytes = sum(injected)
            elif ps:
                e.bytes = int(sum(p.model_size() for p in ps))
            e.held = rec.obj is None and any(w() is not None for w in rec.held)
            if rec.obj is None or not pinned_total:
                e.host_pinned = 0
            elif rescan:
                e.host_pinned = _pinned_bytes(ps)

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
            incoming = self._estimate(spec)
            self._apply(policy.plan(self._entries(), self.budgets, incoming, self.priority, protect=set(self.prompt_ids)))
            self.overhead_s += time.perf_counter() - t0
        obj = loader()                                   # disk read: not counted as registry overhead
        t1 = time.perf_counter()
        with self.lock:
            if rec is None:
                e = Entry(id=rid, name=spec.display_name, family=spec.family, role=spec.role,
                          mode=MODE_OF_FAMILY.get(spec.family, "image"), bytes=0,
                          files=[os.path.basename(p) for p in spec.paths])
                rec = Record(entry=e, key=key, paths=tuple(spec.paths))
                self.records[rid] = rec
            rec.obj = obj
            rec.entry.loads += 1
            rec.entry.last_used = time.time()
            self.prompt_ids.add(rid)
            self.refresh()
            self._changed()
            self.overhead_s += time.perf_counter() - t1
        return obj

    def will_use(self, specs):
        """A loader is about to ask for these: protect the ones already held while it loads the rest,
        so making room for one component never evicts another the same node needs."""
        with self.lock:
            self.in_prompt()
            for spec in specs:
                try:
                    self.prompt_ids.add(self._rid(spec.identity()))
                except OSError:
                    continue

    @staticmethod
    def _rid(key) -> str:
        return hashlib.sha1(repr(key).encode()).hexdigest()[:12]

    def token(self, spec) -> str:
        """Changes when the entry for `spec` is dropped or evicted: loader nodes fold it into their
        fingerprint so ComfyUI's cache never serves an evicted model's old outputs."""
        try:
            rid = self._rid(spec.identity())
        except OSError:
            return "missing"
        rec = self.records.get(rid)
        return f"{rid}:{rec.drops if rec else 0}"

    def _estimate(self, spec) -> int:
        sizes = policy.env_sizes()
        return sum(sizes.get(os.path.basename(p), os.path.getsize(p)) for p in spec.paths)

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
        import comfy.model_management as mm
        if not self.budgets_set["gpu"]:
            dev = mm.get_torch_device()
            free = mm.get_free_memory(dev)
            held = sum(r.entry.bytes for r in self.records.values() if r.entry.tier == "gpu")
            self.budgets.gpu_bytes = int(max(0, free + held - mm.extra_reserved_memory() - mm.minimum_inference_memory()))
            self.budgets_set["gpu"] = True
        if not self.budgets_set["ram"]:
            self.budgets.ram_bytes = policy.default_ram_budget(
                held_bytes=sum(r.entry.bytes for r in self.records.values() if r.entry.tier == "ram"))
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
            self._apply(policy.plan(self._entries(), self.budgets, 0, self.priority, protect=set(protect)))
            self.refresh()
            self.warnings = policy.over_budget(self._entries(), self.budgets)

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
        """GPU -> RAM for one entry, every other loaded model kept through keep_loaded."""
        import comfy.model_management as mm
        mine = {id(p) for p in _patchers(rec.obj)}
        victims = [lm for lm in mm.current_loaded_models if lm.model is not None and id(lm.model) in mine]
        for lm in victims:
            keep = [x for x in mm.current_loaded_models if x is not lm]
            mm.free_memory(1e30, lm.device, keep_loaded=keep)

    def _drop(self, rec, reason=""):
        if rec.obj is None:
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
        import gc
        gc.collect()
        held = [r for r in self._still_held() if not r.release_asked]
        if not held:
            return
        for r in held:                                  # once per drop: whatever else holds them (another
            r.release_asked = True                      # pack's node, say) is reported, not chased
        q = _queue()
        if q is None:                                   # no server (in-process use): nothing to ask
            return
        with q.mutex:                                   # an RLock: no /free can slip in between
            if "unload_models" not in q.get_flags(reset=False):
                q.set_flag("unload_models", False)      # clear outputs only, unload nothing
            q.set_flag("free_memory", True)
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
                    r.obj = None
                    r.drops += 1
            self.refresh()
            self._changed()
        log.info("LockN residency: released every model (%s)", reason)

    def object_records(self, objs) -> list[Record]:
        """Registry entries whose loaded object contains one of `objs` (passed-through models)."""
        want = {id(p) for o in objs for p in _patchers(o)}
        return [r for r in self.records.values() if r.obj is not None and want & {id(p) for p in _patchers(r.obj)}]

    # ---- prompt life cycle ------------------------------------------------------------------------
    # After a prompt that used LockN's models the registry settles: it marks what the prompt used as
    # recently used, runs the evictions that waited for the prompt, applies the budgets and lets go of
    # dropped models' memory. ComfyUI's only prompt-end signal for a custom node is the cache-provider
    # hook, and while any provider is registered its executor serialises and hashes every node's cache
    # key two or three times per node (comfy_execution/caching.py, _build_context): 34-78 ms per prompt
    # of the template graphs on a 2-core CPU, 283 ms for the 37-node chain (bench/RESULTS.md), growing
    # faster than the graph. So the registry settles without it, at whichever comes first:
    # - the start of the next prompt that holds a LockN loader: ComfyUI asks for every node's
    #   fingerprint before any node runs, with the prompt's id in comfy_execution.utils'
    #   get_executing_context(), and a new id means the last prompt has ended (one runs at a time);
    # - an idle queue: a watcher on the server's event loop looks four times a second, and every
    #   report looks first. Both hold the queue's mutex while they settle, so no prompt starts meanwhile.
    # The hook is registered only where those come too late: while evictions asked for during a prompt
    # wait for it (see `evict`), and when a prompt without a LockN loader is next after a LockN prompt:
    # looked at when the LockN prompt starts (`_begin`: the waiting prompt that runs next) and when a
    # prompt is submitted (`prompt_queued`, ComfyUI's on_prompt handler), so the registry settles
    # before such a prompt runs, also when it is submitted the moment a LockN prompt ends.
    def arm(self):
        """Register the life-cycle hook: every prompt that starts from now on calls prompt_start and
        every prompt that ends calls prompt_end, until one has."""
        with self.lock:
            if self.hook is not None and not self.armed:
                from comfy_execution.cache_provider import register_cache_provider
                register_cache_provider(self.hook)
                self.armed = True

    def _disarm(self):
        if self.armed:
            from comfy_execution.cache_provider import unregister_cache_provider
            unregister_cache_provider(self.hook)
            self.armed = False

    def in_prompt(self):
        """A LockN loader's fingerprint or execution: note the prompt it belongs to."""
        ctx = _executing()
        if ctx is None:                        # a direct call, outside ComfyUI's executor
            return
        with self.lock:
            self._begin(ctx.prompt_id)

    def _begin(self, prompt_id):
        if prompt_id == self.prompt_id:
            return
        self._settle()                         # a new prompt: the last one has ended
        self.prompt_id, self.prompt_running, self.prompt_ids = prompt_id, True, set()
        self._watch()
        q = _queue()                           # the worker's thread: self.lock, then the mutex
        if q is not None:
            with q.mutex:
                nxt = q.queue[0] if q.queue else None          # a heap: [0] runs next
            if nxt is not None and not _holds_lockn_loader(nxt[2]):
                self.arm()                     # hear this prompt's end before that one starts

    def busy(self) -> bool:
        """A prompt is in progress: one the registry saw start and has not settled, or any that
        ComfyUI's queue runs."""
        q = _queue()
        return self.prompt_running or bool(q is not None and q.currently_running)

    def _run_pending(self):
        pending, self.pending = self.pending, []
        for ids, to in pending:
            self._evict_now([self.records[i] for i in ids if i in self.records], to)

    def _settle(self):
        """The prompt the registry saw has ended, or evictions wait for a prompt that has."""
        if not (self.prompt_running or self.pending):
            return
        now = time.time()
        for rid in self.prompt_ids:            # everything the prompt used was in use until its end
            if rid in self.records:
                self.records[rid].entry.last_used = now
        self.prompt_running, self.prompt_ids = False, set()
        try:
            self._run_pending()
            self.enforce()
            self.release_dropped()
        except Exception:                      # never break a prompt (this may run in its fingerprints)
            log.exception("LockN residency: settling after a prompt failed")
        self._changed()

    @contextmanager
    def _when_idle(self):
        """True, holding the queue's mutex and then the registry's lock, when no prompt runs; else
        False, holding neither. While the mutex is held ComfyUI's worker cannot start a prompt, and with
        none running it holds no registry lock: the only order in which both locks are taken (a
        prompt's own thread takes the registry's lock, then the mutex in release_dropped)."""
        q = _queue()
        if q is None:                          # in-process: a call from outside any node is between prompts
            if _executing() is None:
                with self.lock:
                    yield True
            else:
                yield False
            return
        with q.mutex:
            if not q.currently_running:
                with self.lock:
                    yield True
                return
        yield False

    def settle_if_idle(self):
        with self._when_idle() as idle:
            if idle:
                self._settle()
                self._disarm()

    def _watch(self):
        """Settle once the queue is idle: a task on the server's event loop looks four times a second
        while anything waits, each look in a thread of the loop's executor (settling may move models)."""
        if self.watching:
            return
        try:
            from server import PromptServer
            loop = PromptServer.instance.loop
        except Exception:                      # in-process: the next call from outside a node settles
            return
        self.watching = True

        async def watch():
            try:
                while await loop.run_in_executor(None, self._watch_step):
                    await asyncio.sleep(0.25)
            except Exception:                  # the next prompt or report settles instead
                log.exception("LockN residency: the idle watcher failed")
                with self.lock:
                    self.watching = False
        loop.call_soon_threadsafe(lambda: loop.create_task(watch()))

    def _watch_step(self) -> bool:
        self.settle_if_idle()
        with self.lock:                        # decided under the lock that _watch is called under
            self.watching = self.prompt_running or bool(self.pending)
            return self.watching

    def prompt_queued(self, json_data):
        """ComfyUI's on_prompt handler (POST /prompt, on the server's loop, before the prompt is
        validated and queued). A prompt without a LockN loader that will run next, right after a
        LockN prompt (running, or ended and not settled yet), would start before any settle but the
        hook's: register the hook now, so the registry hears that prompt's end or the next start
        (prompt_start). A prompt queued behind others is looked at when the LockN prompt before it
        starts (`_begin`). Returns json_data unchanged."""
        try:
            prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
            q = _queue()
            if self.armed or self.hook is None or q is None or not isinstance(prompt, dict) \
                    or _holds_lockn_loader(prompt):
                return json_data
            with q.mutex:                      # not nested with self.lock (see _when_idle)
                lockn_running = any(_holds_lockn_loader(item[2]) for item in q.currently_running.values())
                runs_next = not q.queue or bool(json_data.get("front")) or "number" in json_data
            if runs_next and (lockn_running or self.prompt_running or self.pending):
                self.arm()
        except Exception:                      # never refuse a prompt over this
            log.exception("LockN residency: looking at a queued prompt failed")
        return json_data

    # called by the CacheProvider below while the hook is registered
    def prompt_start(self, prompt_id):
        with self.lock:
            if self.armed:                     # else disarmed while this call waited for the lock
                self._begin(prompt_id)

    def prompt_end(self, prompt_id):
        with self.lock:
            self._settle()
            self._disarm()

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
            return {"entries": [e.to_dict() for e in entries],
                    "budgets": self.budgets.to_dict(),
                    "totals": {"gpu_bytes": t["gpu"], "ram_bytes": t["ram"], "dropped_bytes": t["dropped"],
                               "host_pinned_bytes": sum(e.host_pinned for e in entries),
                               "held_after_drop_bytes": sum(e.bytes for e in entries if e.held), "entries": len(entries)},
                    "priority": dict(self.priority), "prompt_running": self.busy(), "hook_armed": self.armed,
                    "pending_evictions": len(self.pending), "warnings": list(self.warnings),
                    "overhead_ms_per_call": 1000 * self.overhead_s / max(1, self.calls),
                    "overhead_s_total": self.overhead_s, "calls": self.calls}

    def _changed(self):
        try:
            from server import PromptServer
            inst = getattr(PromptServer, "instance", None)
        except ImportError:
            inst = None
        if inst is not None:
            inst.send_sync(EVENT, self._report())


REGISTRY = Registry()


def load(spec, loader):
    """THE load seam: every component the loader nodes need comes through here."""
    return REGISTRY.load(spec, loader)


def lifecycle_provider():
    """A ComfyUI cache provider that never caches anything: it is how the pack hears when a prompt
    starts and ends (comfy_api.latest Caching API)."""
    from comfy_api.latest import Caching

    class ResidencyLifecycle(Caching.CacheProvider):
        async def on_lookup(self, context):
            return None

        async def on_store(self, context, value):
            return None

        def should_cache(self, context, value=None):
            return False

        def on_prompt_start(self, prompt_id):
            REGISTRY.prompt_start(prompt_id)

        def on_prompt_end(self, prompt_id):
            REGISTRY.prompt_end(prompt_id)

    return ResidencyLifecycle()
