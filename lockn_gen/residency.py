"""Residency policy: which loaded models stay on the GPU, which wait in system RAM, which are dropped.

Plain Python. The ComfyUI side (nodes/residency.py) keeps the real objects, reads each entry's tier
from ComfyUI's model management and applies the actions this module decides.

Tiers: "gpu" (loaded on the compute device), "ram" (held in system memory, a host->GPU copy away),
"dropped" (released; the next use reloads from disk, through mmap). Eviction takes the least
important unpinned entry first: lowest mode priority, then least recently used. GPU entries move to
RAM; RAM entries are dropped. Pinned entries are never evicted by the policy.

What counts against the RAM budget is memory the kernel cannot reclaim: an entry's `private` bytes
(weights copied or converted into memory: every safetensors load, a GGUF's copied and dequantized
tensors). The part of its weights that stays in a read-only map of its own file (`mapped`: ComfyUI-GGUF
keeps quantized weights as views into the file) is not counted: the kernel reads those pages in when they
are touched and drops them again under pressure, and no OOM killer is needed for that. The GPU budget
counts whole `bytes`.

While the modes are used in a cycle (image -> video -> music -> image ...: each switch goes to the
mode used longest ago, see ModeCycle), the most recently used go first among equal priority instead:
in a cycle the mode used longest ago is the one needed next, and least-recently-used eviction would
drop exactly that one every time the cycle does not fit (every switch would read from disk).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

GB = 1_000_000_000
TIERS = ("gpu", "ram", "dropped")
MODES = ("image", "video", "music")          # the catalog families' modes, in chain order
DEFAULT_PRIORITY = {m: 1 for m in MODES}


@dataclass
class Entry:
    id: str
    name: str                 # readable: the file name(s)
    family: str
    role: str
    mode: str                 # image | video | music
    bytes: int
    tier: str = "ram"
    pinned: bool = False
    last_used: float = 0.0
    loads: int = 0            # loads from disk
    hits: int = 0             # requests served without touching the disk
    generation: int = 0       # bumped whenever the loaded object is replaced or dropped
    device: str = ""
    files: list = field(default_factory=list)
    host_pinned: int = 0      # bytes of its RAM copy that ComfyUI page-locked (pinned) for fast copies to the GPU
    held: bool = False        # dropped, but its weights are still referenced (ComfyUI's output cache) until released
    loras: list = field(default_factory=list)       # a base: the LoRAs its loaded weights carry [{name, strength}]
    applied_to: list = field(default_factory=list)  # a LoRA: the bases whose loaded weights carry it
    mapped: int = 0           # of `bytes`: weights in a read-only map of its own file (clean pages the kernel can
                              # drop and read again), not counted against the RAM budget

    @property
    def private(self) -> int:
        """What it holds that the kernel cannot reclaim: counted against the RAM budget."""
        return max(0, self.bytes - self.mapped)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "family": self.family, "role": self.role, "mode": self.mode,
                "bytes": self.bytes, "mapped_bytes": self.mapped, "tier": self.tier, "device": self.device,
                "pinned": self.pinned,
                "last_used": self.last_used, "loads_from_disk": self.loads, "hits": self.hits, "files": self.files,
                "host_pinned_bytes": self.host_pinned, "held_after_drop": self.held,
                "loras": list(self.loras), "applied_to": list(self.applied_to)}


@dataclass
class Budgets:
    gpu_bytes: int | None = None      # None: no limit of ours (ComfyUI's own memory management only)
    ram_bytes: int | None = None

    def to_dict(self) -> dict:
        return {"gpu_bytes": self.gpu_bytes, "ram_bytes": self.ram_bytes}


@dataclass(frozen=True)
class Compute:
    """A run's working memory to reserve (not a model): what did not happen when it does not fit, and its fixes."""
    outcome: str                # "Nothing was sampled."
    fixes: list


@dataclass(frozen=True)
class Action:
    entry_id: str
    kind: str                 # "offload" (gpu -> ram) | "drop" (ram or gpu -> dropped)
    reason: str


def totals(entries) -> dict:
    out = {t: 0 for t in TIERS}
    for e in entries:
        out[e.tier] += e.bytes
    return out


def ram_cost(e: Entry, tier: str, shared: bool = False) -> int:
    """Bytes `e` counts against the RAM budget in `tier`: its private part in RAM, and on the compute device
    too where that is system RAM (`shared`). On a discrete GPU an entry moved from the GPU to RAM comes back
    as private copies of its weights (nothing of it stays mapped): its whole size."""
    if tier == "ram":
        return e.bytes if (e.tier == "gpu" and not shared) else e.private
    if tier == "gpu" and shared:
        return e.private
    return 0


def ram_used(entries, shared: bool = False) -> int:
    """What the entries hold against the RAM budget now."""
    return sum(ram_cost(e, e.tier, shared) for e in entries)


def eviction_order(entries, priority: dict | None = None, protect: set = frozenset(),
                   cycling: bool = False) -> list[Entry]:
    """Unpinned, unprotected entries, least important first (see the module's docstring). Entries used
    at the same time (one prompt's models: the registry stamps them together when it settles) go in
    the order of their names, so the order never depends on the order they were loaded in, and the
    planner (lockn_gen/planner.py), which simulates this policy with file names, predicts it."""
    prio = {**DEFAULT_PRIORITY, **(priority or {})}
    cands = [e for e in entries if not e.pinned and e.id not in protect and e.tier != "dropped"]
    return sorted(cands, key=lambda e: (prio.get(e.mode, 1), -e.last_used if cycling else e.last_used, e.name, e.id))


class ModeCycle:
    """Tells whether the modes are being used in a cycle. Each switch to another mode counts for it
    when the new mode is the one used longest ago (of those used so far), against it otherwise; the
    last two switches decide."""

    def __init__(self):
        self.last: dict[str, int] = {}      # mode -> when it was last used (a switch counter)
        self.current: str | None = None
        self.prompt = None                  # the prompt that used the current mode last
        self.score = 0
        self.switches = 0

    @property
    def cycling(self) -> bool:
        return self.score > 0

    def use(self, mode: str, prompt=None) -> None:
        """`mode` is used (by `prompt`, when known). A second prompt in a row in the same mode (a LoRA or a
        prompt changed, run again) says the modes are not being cycled now."""
        if mode == self.current:
            if prompt is not None and self.prompt is not None and prompt != self.prompt:
                self.score = min(self.score, 0)
            self.prompt = prompt if prompt is not None else self.prompt
            return
        self.prompt = prompt
        if self.current is not None and mode in self.last:
            longest_ago = min(self.last, key=self.last.get)
            self.score = min(2, self.score + 1) if mode == longest_ago else max(-2, self.score - 1)
        self.switches += 1
        self.current, self.last[mode] = mode, self.switches


def plan(entries, budgets: Budgets, incoming_bytes: int = 0, priority: dict | None = None,
         protect: set = frozenset(), cycling: bool = False, incoming_ram_only: bool = False,
         shared: bool = False, incoming_mapped: int = 0, incoming_gpu_only: bool = False) -> list[Action]:
    """Actions that bring the GPU and RAM tiers within budget, making room for `incoming_bytes`
    (a model about to be loaded: it arrives in RAM and will move to the GPU when used; with
    `incoming_ram_only`, memory that stays in system RAM, such as ComfyUI's backups of LoRA-patched weights).
    `incoming_mapped` of its bytes arrive mapped from its file: the RAM budget counts the rest (see ram_cost).
    With `incoming_gpu_only`, memory that only ever sits on the compute device (a sampler's step cache): the
    GPU budget counts it, the RAM budget only where the device's memory is system RAM.

    Offloading moves bytes from the GPU tier to the RAM tier, so RAM is settled after the GPU.
    `shared`: the compute device's memory is system RAM (ComfyUI on the CPU, or unified memory), so the
    "gpu" tier lives in RAM too and both tiers together must fit the RAM budget."""
    state = {e.id: e.tier for e in entries}
    by_id = {e.id: e for e in entries}
    order = eviction_order(entries, priority, protect, cycling)
    actions: list[Action] = []
    incoming_private = max(0, incoming_bytes - incoming_mapped)
    ram_incoming = 0 if incoming_gpu_only else incoming_private

    def used(tier):
        return sum(by_id[i].bytes for i, t in state.items() if t == tier)

    def ram(tiers):
        return sum(ram_cost(by_id[i], t, shared) for i, t in state.items() if t in tiers)

    if budgets.gpu_bytes is not None:
        gpu_incoming = 0 if incoming_ram_only else incoming_bytes
        for e in order:
            if used("gpu") + gpu_incoming <= budgets.gpu_bytes:
                break
            if state[e.id] == "gpu":
                state[e.id] = "ram"
                actions.append(Action(e.id, "offload", f"GPU budget {budgets.gpu_bytes / GB:.2f} GB"))
    if budgets.ram_bytes is not None:
        for e in order:
            if ram(("ram",)) + ram_incoming <= budgets.ram_bytes:
                break
            if state[e.id] == "ram":
                prev = next((a for a in actions if a.entry_id == e.id), None)
                if prev:
                    actions.remove(prev)
                state[e.id] = "dropped"
                actions.append(Action(e.id, "drop", f"RAM budget {budgets.ram_bytes / GB:.2f} GB"))
        if shared:
            for e in order:
                if ram(("gpu", "ram")) + incoming_private <= budgets.ram_bytes:
                    break
                if state[e.id] in ("gpu", "ram"):
                    prev = next((a for a in actions if a.entry_id == e.id), None)
                    if prev:
                        actions.remove(prev)
                    state[e.id] = "dropped"
                    actions.append(Action(e.id, "drop", f"RAM budget {budgets.ram_bytes / GB:.2f} GB "
                                                        "(the compute device's memory is system RAM)"))
    return actions


def size_text(n: int) -> str:
    """Bytes for people: GB, or MB below a tenth of a GB (small files: VAEs, LoRAs, the test models)."""
    return f"{n / GB:.2f} GB" if n >= GB // 10 else f"{n / 1e6:.1f} MB"


def refusal(entries, budgets: Budgets, actions, incoming_bytes: int, name: str, protect: set = frozenset(),
            shared: bool = False, available: int | None = None, incoming_ram_only: bool = False,
            incoming_mapped: int = 0, incoming_gpu_only: bool = False, compute: Compute | None = None) -> str | None:
    """None when a load of `incoming_bytes` fits once `actions` (plan's) are applied; else the reason it
    does not, for a message that stops the load before anything is read: what stays and why it cannot go
    (pinned, or used by the running prompt), and what to change.

    Where the compute device's memory is system RAM (`shared`), both tiers and the incoming model must fit
    the RAM budget: past it the kernel's OOM killer ends ComfyUI. With a discrete GPU the model passes
    through RAM, and ComfyUI runs a model partly loaded (the rest streamed from RAM each step), so it is
    refused only when it does not fit the two budgets together (with `incoming_ram_only`, memory that stays
    in RAM: the RAM budget alone). The RAM budget counts private bytes (ram_cost): `incoming_mapped` of the
    incoming bytes arrive mapped from the model's file and are not counted there. `compute`: the memory is a
    run's working memory (a step cache, training), not a model: the message says what did not happen and
    that run's own fixes."""
    if incoming_bytes <= 0:
        return None
    state = {e.id: e.tier for e in entries}
    for a in actions:
        state[a.entry_id] = "ram" if a.kind == "offload" else "dropped"
    if incoming_gpu_only and not shared:
        return _gpu_refusal(entries, state, budgets, incoming_bytes, name, protect, compute)
    if budgets.ram_bytes is None:
        return None

    def held(tiers):
        return [e for e in entries if state[e.id] in tiers]

    def counted(e):                      # what it holds against the budget(s) the message names
        return ram_cost(e, state[e.id], shared) if (shared or state[e.id] == "ram") else e.bytes

    incoming_private = max(0, incoming_bytes - incoming_mapped)
    staying = held(("gpu", "ram") if shared else ("ram",))
    ram_held = sum(counted(e) for e in staying)
    if ram_held + incoming_private <= budgets.ram_bytes:
        return None
    together = not shared and not incoming_ram_only
    if together:
        on_gpu = held(("gpu",))
        if (budgets.gpu_bytes is None
                or ram_held + sum(e.bytes for e in on_gpu) + incoming_bytes <= budgets.ram_bytes + budgets.gpu_bytes):
            return None
        staying = staying + on_gpu
    pinned = [e for e in staying if e.pinned]
    in_use = [e for e in staying if not e.pinned and e.id in protect]

    def names(es):
        return ", ".join(f"{e.name} ({counted(e) / GB:.2f} GB)" for e in es)

    if shared:
        where = (f"LockN's RAM budget of {budgets.ram_bytes / GB:.2f} GB (ComfyUI computes in system RAM here, so "
                 f"models on the compute device count too): {ram_held / GB:.2f} GB stay")
    elif incoming_ram_only:
        where = f"LockN's RAM budget of {budgets.ram_bytes / GB:.2f} GB: {ram_held / GB:.2f} GB stay in RAM"
    else:
        where = (f"LockN's RAM and GPU budgets together, RAM {budgets.ram_bytes / GB:.2f} GB ({ram_held / GB:.2f} GB "
                 f"stay there) and GPU {budgets.gpu_bytes / GB:.2f} GB ({sum(e.bytes for e in held(('gpu',))) / GB:.2f} "
                 "GB stay there)")
    shown = incoming_bytes if together else incoming_private
    subject = name if compute else f"loading {name}"
    why = [f"{subject} ({shown / GB:.2f} GB) would exceed {where} after every eviction the policy allows"]
    counts = ("the RAM budget counts private memory, which the kernel cannot reclaim (weights copied or converted "
              f"out of their files): {size_text(incoming_private)} of {name}")
    mapped_staying = sum(e.mapped for e in staying if shared or state[e.id] == "ram" and e.tier == "ram")
    if incoming_mapped > 0 or mapped_staying > 0:
        counts += (f"; not counted: {size_text(incoming_mapped)} of it and {size_text(mapped_staying)} of the models "
                   "that stay, mapped read-only from their files, which the kernel drops under pressure and reads again")
    why.append(counts)
    if pinned:
        why.append(f"pinned: {names(pinned)}")
    if in_use:
        why.append(f"used by the running prompt: {names(in_use)}")
    fixes = ["raise ram_budget_gb" + ("" if shared or incoming_ram_only else " or gpu_budget_gb")
             + " on the Residency (LockN) node"
             + (f" (about {available / GB:.1f} GB of RAM is available now)" if available else "")]
    if pinned:
        fixes.append("unpin " + ", ".join(e.name for e in pinned) + " (LockN sidebar tab, or POST /lockn/residency/pin)")
    if in_use:
        fixes.append("run the stages as separate prompts, so each stage's models can be evicted for the next")
    if compute:
        fixes += compute.fixes
        return "; ".join(why) + f". {compute.outcome} To fix: " + "; ".join(fixes) + "."
    fixes.append("or choose a smaller preset of this family (a lower GGUF quant, whose file stays mapped)")
    return "; ".join(why) + ". Nothing was loaded. To fix: " + "; ".join(fixes) + "."


def _gpu_refusal(entries, state, budgets: Budgets, incoming_bytes: int, name: str, protect,
                 compute: Compute | None = None) -> str | None:
    """Memory that must sit on the GPU (a step cache): refused when what stays there after the evictions and
    it exceed the GPU budget; nothing is offloaded to make it fit a RAM budget."""
    if budgets.gpu_bytes is None:
        return None
    staying = [e for e in entries if state[e.id] == "gpu"]
    held = sum(e.bytes for e in staying)
    if held + incoming_bytes <= budgets.gpu_bytes:
        return None
    pinned = [e for e in staying if e.pinned]
    in_use = [e for e in staying if not e.pinned and e.id in protect]

    def names(es):
        return ", ".join(f"{e.name} ({size_text(e.bytes)})" for e in es)
    why = [f"{name} ({size_text(incoming_bytes)}) would exceed LockN's GPU budget of {budgets.gpu_bytes / GB:.2f} GB: "
           f"{held / GB:.2f} GB stay on the GPU after every eviction the policy allows"]
    if pinned:
        why.append(f"pinned: {names(pinned)}")
    if in_use:
        why.append(f"used by the running prompt: {names(in_use)}")
    compute = compute or Compute("Nothing was sampled.", ["turn 'cache steps' off, or lower the size or length"])
    fixes = ["raise gpu_budget_gb on the Residency (LockN) node", *compute.fixes]
    if pinned:
        fixes.append("unpin " + ", ".join(e.name for e in pinned))
    return "; ".join(why) + f". {compute.outcome} To fix: " + "; ".join(fixes) + "."


def budgets_in_prompt(prompt: dict) -> tuple[float | None, float | None] | None:
    """The budgets (GB; 0 = automatic) that the prompt's Residency (LockN) nodes set as plain values, the
    last node's winning; None when it has none. They apply from the prompt's start, before its loaders
    run, so that a budget changed to fix a refused load takes effect in the same workflow."""
    found = None
    for node in (prompt or {}).values():
        if not isinstance(node, dict) or node.get("class_type") != "LockNResidency":
            continue
        inputs = node.get("inputs") or {}
        vals = [inputs.get(k) for k in ("gpu_budget_gb", "ram_budget_gb")]
        found = tuple(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in vals)
    return found


def over_budget(entries, budgets: Budgets, shared: bool = False) -> list[str]:
    """Readable warnings when pinned entries alone exceed a budget (pins win over budgets). The RAM tier
    counts private bytes (and the compute device's, where that is system RAM), as plan does."""
    out = []
    gpu_used = sum(e.bytes for e in entries if e.tier == "gpu")
    ram_counted = ram_used(entries, shared)
    for label, used, limit, pinned in (
            ("GPU tier holds", gpu_used, budgets.gpu_bytes, sum(e.bytes for e in entries if e.pinned and e.tier == "gpu")),
            ("RAM tier holds" if not shared else "RAM (both tiers, ComfyUI computes in it) holds",
             ram_counted, budgets.ram_bytes, ram_used([e for e in entries if e.pinned], shared))):
        if limit is not None and used > limit:
            out.append(f"{label} {used / GB:.2f} GB" + (" private" if label.startswith("RAM") else "")
                       + f", over its {limit / GB:.2f} GB budget"
                       + (f" ({pinned / GB:.2f} GB of it pinned: unpin something or raise the budget)" if pinned else ""))
    return out


# ---- default budgets --------------------------------------------------------------------------------
def cgroup_memory_limit() -> int | None:
    """The container's memory limit (cgroup v2 or v1), None when unlimited or unknown."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = open(path).read().strip()
        except OSError:
            continue
        if raw and raw != "max":
            try:
                v = int(raw)
            except ValueError:
                continue
            if v < 1 << 60:
                return v
    return None


def cgroup_memory_used() -> int | None:
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            return int(open(path).read().strip())
        except (OSError, ValueError):
            continue
    return None


def mem_available() -> int | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_ram_budget(held_bytes: int = 0, headroom: float = 0.25) -> int | None:
    """What LockN Gen may keep in system RAM: the room left under the container's limit (if any)
    and MemAvailable, plus what it already holds, minus a headroom for everything else."""
    avail = [v for v in (mem_available(),) if v is not None]
    limit, used = cgroup_memory_limit(), cgroup_memory_used()
    if limit is not None and used is not None:
        avail.append(max(0, limit - used))
    if not avail:
        return None
    room = min(avail) + held_bytes
    return int(room * (1.0 - headroom))


# ---- file-backed memory: what of a model the kernel can reclaim ---------------------------------------
@dataclass(frozen=True)
class Mapping:
    """One range of /proc/self/maps that maps a file."""
    start: int
    end: int
    perms: str                # "r--s": read-only (never dirty); a writable map can hold dirty pages
    dev: tuple                # (major, minor)
    inode: int
    path: str


def _mapping(line: str) -> Mapping | None:
    parts = line.split(None, 5)
    if len(parts) < 6 or not parts[5].startswith("/") or parts[4] == "0":
        return None
    try:
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        major, minor = (int(x, 16) for x in parts[3].split(":"))
        inode = int(parts[4])
    except ValueError:
        return None
    name = parts[5].rstrip("\n")
    if name.endswith(" (deleted)"):
        name = name[:-len(" (deleted)")]
    return Mapping(lo, hi, parts[1], (major, minor), inode, name)


def file_mappings(ids=None, path: str = "/proc/self/maps") -> list[Mapping] | None:
    """The process's file-backed mappings (of the files `ids` names, file_ids: only their lines are
    parsed, a process with CUDA libraries has thousands); None where the kernel does not show them
    (no /proc: macOS)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if ids is None:
        return [m for m in map(_mapping, text.splitlines()) if m is not None]
    needles = {f" {i[3]} " if i[0] == "dev" else i[1] for i in ids}
    found: dict[int, Mapping] = {}
    for needle in needles:
        at = text.find(needle)
        while at != -1:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end == -1 else end
            m = _mapping(text[start:end])
            if m is not None:
                found[m.start] = m
            at = text.find(needle, end)
    return sorted(found.values(), key=lambda m: m.start)


def file_ids(paths) -> set:
    """What a mapping of one of these files shows: ("dev", major, minor, inode), or ("path", real path)
    where the two differ (an overlay file system may show its lower file's device and inode)."""
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.add(("dev", os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
        ids.add(("path", os.path.realpath(p)))
    return ids


def maps_of(mappings, ids) -> list[Mapping]:
    return [m for m in mappings if ("dev", *m.dev, m.inode) in ids or ("path", m.path) in ids]


def dirty_bytes(mappings, path: str = "/proc/self/smaps") -> dict[tuple, int]:
    """Dirty bytes (Private_Dirty + Shared_Dirty) of these mappings, by (start, end). Only writable maps
    can hold dirty pages, and reading smaps walks every page table, so the others are not asked for."""
    want = {(m.start, m.end) for m in mappings if "w" in m.perms}
    out: dict[tuple, int] = {}
    if not want:
        return out
    try:
        with open(path) as f:
            cur = None
            for line in f:
                head = line.split(None, 1)[0] if line.strip() else ""
                if "-" in head and not head.endswith(":"):
                    try:
                        lo, hi = (int(x, 16) for x in head.split("-"))
                    except ValueError:
                        continue
                    cur = (lo, hi) if (lo, hi) in want else None
                elif cur is not None and head in ("Private_Dirty:", "Shared_Dirty:"):
                    out[cur] = out.get(cur, 0) + int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return out


def merge_ranges(ranges) -> list[tuple[int, int]]:
    """[start, end) ranges, overlaps merged (views and tied weights share memory: counted once)."""
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[1] > r[0]):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def mapped_bytes(ranges, mappings, dirty: dict | None = None) -> int:
    """Bytes of these memory ranges (a model's tensors) that lie in these file mappings, less the
    mappings' dirty pages (which the kernel must write back or keep: not reclaimable)."""
    ranges = merge_ranges(ranges)
    total = 0
    for m in mappings:
        inside = sum(max(0, min(hi, m.end) - max(lo, m.start)) for lo, hi in ranges)
        total += max(0, inside - (dirty or {}).get((m.start, m.end), 0))
    return total


def env_sizes() -> dict[str, int]:
    """Byte sizes injected for tests (LOCKN_RESIDENCY_SIZES='{"file name": bytes}'): on a CPU-only
    machine nothing is really on a GPU, so budget tests state the sizes instead."""
    import json
    raw = os.environ.get("LOCKN_RESIDENCY_SIZES", "")
    return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}
