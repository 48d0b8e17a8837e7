"""When the residency registry settles: after a prompt that used LockN's models.

Settling marks what the prompt used as recently used, runs the evictions that waited for it, applies
the budgets and lets go of dropped models' memory. ComfyUI's only prompt-end signal for a custom node
is a cache provider, and while one is registered ComfyUI serialises and hashes every node's cache key
(bench/RESULTS.md). So the registry settles without it, at whichever comes first:
- the first LockN node that executes in the next prompt (a new prompt id means the last one ended);
- an idle queue: a watcher on the server's event loop looks four times a second, and every report
  looks first. Both hold the queue's mutex while they settle, so no prompt starts meanwhile.
The hook is registered only where those come too late: while evictions asked for during a prompt
wait for it, and when a prompt without a LockN loader is next after a LockN prompt (seen when the
LockN prompt starts, or when such a prompt is submitted: ComfyUI's on_prompt handler).

Loader fingerprints only note which entries the coming prompt will use (`note`): they never settle.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import contextmanager

from ..lockn_gen import residency as policy
from . import comfy_seam as seam

log = logging.getLogger("lockn_gen.residency")


def holds_lockn_loader(prompt) -> bool:
    return isinstance(prompt, dict) and any(
        isinstance(n, dict) and str(n.get("class_type", "")).startswith("LockN")
        and str(n.get("class_type", "")).endswith("Loader") for n in prompt.values())


class PromptLifecycle:
    """Mixed into the Registry: needs its lock, records, pending evictions, enforce() and
    release_dropped()."""

    def _init_lifecycle(self):
        self.prompt_running = False
        self.prompt_id = None                  # the last prompt a LockN node executed in
        self.prompt_ids: set[str] = set()      # entries that prompt uses (protected from eviction)
        self.upcoming_id = None                # a prompt whose loader fingerprints were taken ...
        self.upcoming: set[str] = set()        # ... and the entries they name
        self.pending: list = []                # evictions asked for while a prompt runs
        self.hook = None                       # the prompt life-cycle provider (set up by the extension)
        self.armed = False                     # the hook is registered with ComfyUI now
        self.watching = False                  # the idle watcher runs

    @property
    def unsettled(self) -> bool:
        return self.prompt_running or bool(self.pending) or bool(self.upcoming)

    # ---- the hook ---------------------------------------------------------------------------------
    def arm(self):
        """Register the life-cycle hook: the next prompt to start calls prompt_start, the next to end
        prompt_end, which unregisters it."""
        with self.lock:
            if self.hook is not None and not self.armed:
                self.armed = seam.register_prompt_hook(self.hook)

    def _disarm(self):
        if self.armed:
            seam.unregister_prompt_hook(self.hook)
            self.armed = False

    def prompt_start(self, prompt_id):          # called by the hook
        with self.lock:
            if self.armed:                     # else disarmed while this call waited for the lock
                self._begin(prompt_id)

    def prompt_end(self, prompt_id):            # called by the hook
        with self.lock:
            self._settle()
            self._disarm()

    # ---- a prompt begins ------------------------------------------------------------------------------
    def note(self, rids, mode: str):
        """A loader's fingerprint: remember the entries (of one mode) the prompt being prepared will
        use, so the settle before its nodes run protects them, and that the mode is used. Settles
        nothing; starts the idle watcher."""
        pid = seam.executing_prompt_id()
        if pid is None or pid == self.prompt_id:
            return
        with self.lock:
            if self.upcoming_id != pid:
                self.upcoming_id, self.upcoming = pid, set()
            self.upcoming |= set(rids)
            self.cycle.use(mode, pid)
            self._watch()

    def in_prompt(self):
        """A LockN node executes: the prompt it belongs to has begun."""
        pid = seam.executing_prompt_id()
        if pid is None:                        # a direct call, outside ComfyUI's executor
            return
        with self.lock:
            self._begin(pid)

    def _begin(self, prompt_id):
        if prompt_id == self.prompt_id:
            return
        coming = self.upcoming if self.upcoming_id == prompt_id else set()
        self.upcoming_id, self.upcoming = None, set()
        if self.unsettled:
            self._settle(protect=coming)       # a new prompt: the last one has ended
        else:
            self.enforce_if_over(protect=coming)
        self.prompt_id, self.prompt_running, self.prompt_ids = prompt_id, True, set(coming)
        self._watch()
        with seam.locked_queue() as q:         # the worker's thread: self.lock, then the mutex
            nxt = q.next_prompt() if q is not None else None
            graph = q.running_prompt(prompt_id) if q is not None else None
        budgets = policy.budgets_in_prompt(graph)
        if budgets is not None:                # a Residency node's budgets hold for its own prompt's loads
            self.set_budgets(gpu_gb=budgets[0], ram_gb=budgets[1])
        if nxt is not None and not holds_lockn_loader(nxt):
            self.arm()                         # hear this prompt's end before that one starts

    def busy(self) -> bool:
        """A prompt is in progress: one the registry saw begin and has not settled, or any that
        ComfyUI's queue runs."""
        return self.prompt_running or seam.prompt_running()

    # ---- settling ----------------------------------------------------------------------------------------
    def _settle(self, protect=frozenset()):
        """The prompt the registry saw has ended, or evictions wait for a prompt that has."""
        if not self.unsettled:
            return
        now = time.time()
        for rid in self.prompt_ids | self.upcoming:       # in use until the prompt's end
            if rid in self.records:
                self.records[rid].entry.last_used = now
        self.prompt_running, self.prompt_ids = False, set()
        self.upcoming_id, self.upcoming = None, set()
        try:
            pending, self.pending = self.pending, []
            for ids, to in pending:
                self._evict_now([self.records[i] for i in ids if i in self.records], to)
            self.enforce(protect)
            self.release_dropped()
        except Exception:                      # never break a prompt (this runs inside its first LockN node)
            log.exception("LockN residency: settling after a prompt failed")
        self._changed()

    @contextmanager
    def _when_idle(self):
        """True, holding the queue's mutex and then the registry's lock, when no prompt runs; else
        False, holding neither. While the mutex is held ComfyUI's worker cannot start a prompt, and with
        none running it holds no registry lock: the only order in which both locks are taken (a
        prompt's own thread takes the registry's lock, then the mutex)."""
        with seam.locked_queue() as q:
            if q is None:                      # in-process: between prompts unless called from a node
                idle = seam.executing_prompt_id() is None
            else:
                idle = not q.running_prompts()
            if idle:
                with self.lock:
                    yield True
                return
        yield False

    def settle_if_idle(self):
        """Settle the last prompt when no prompt runs; with nothing to settle, still hold the budgets (ComfyUI
        loads models outside LockN's prompts too: a prompt without a LockN loader, a /free in between)."""
        with self._when_idle() as idle:
            if idle:
                if self.unsettled:
                    self._settle()
                else:
                    self.enforce_if_over()
                self._disarm()

    def _watch(self):
        """Settle once the queue is idle: a task on the server's event loop looks four times a second
        while anything waits, each look in a thread of the loop's executor (settling may move models)."""
        loop = seam.event_loop()
        if self.watching or loop is None:      # in-process: the next call from outside a node settles
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
            self.watching = self.unsettled
            return self.watching

    def prompt_queued(self, json_data):
        """ComfyUI's on_prompt handler (POST /prompt, on the server's loop, before the prompt is
        validated and queued). A prompt without a LockN loader that will run next, right after a
        LockN prompt (running, or ended and not settled yet), would start before any settle but the
        hook's: register the hook now. Returns json_data unchanged."""
        try:
            prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
            if self.armed or self.hook is None or not isinstance(prompt, dict) or holds_lockn_loader(prompt):
                return json_data
            with seam.locked_queue() as q:     # not nested with self.lock (see _when_idle)
                if q is None:
                    return json_data
                lockn_running = any(holds_lockn_loader(p) for p in q.running_prompts())
                runs_next = not q.waiting() or bool(json_data.get("front")) or "number" in json_data
            if runs_next and (lockn_running or self.unsettled):
                self.arm()
        except Exception:                      # never refuse a prompt over this
            log.exception("LockN residency: looking at a queued prompt failed")
        return json_data


def lifecycle_provider(registry):
    """A cache provider that never caches anything (comfy_api.latest's Caching API): how the registry
    hears a prompt start and end while it needs to."""
    from comfy_api.latest import Caching

    class ResidencyLifecycle(Caching.CacheProvider):
        async def on_lookup(self, context):
            return None

        async def on_store(self, context, value):
            return None

        def should_cache(self, context, value=None):
            return False

        def on_prompt_start(self, prompt_id):
            registry.prompt_start(prompt_id)

        def on_prompt_end(self, prompt_id):
            registry.prompt_end(prompt_id)

    return ResidencyLifecycle()
