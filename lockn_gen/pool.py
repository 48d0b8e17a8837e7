"""Which server of a pool runs a job: the one where the job's models cost least to bring in.

Plain Python, no HTTP and nothing of ComfyUI: the caller (lockn_gen.distributed) reads each server's
state (GET /lockn/residency, POST /lockn/preflight with the job, its queue and recent history) into a
`Member`, and `Pool` chooses. ComfyUI-Distributed picks the least busy worker and knows nothing of what a
worker holds; our old dispatcher picked the shortest queue. Here a job costs, on each member:

    load_s = sum over the job's files of: 0 on the member's GPU, bytes / ram_bps in its RAM, bytes / disk_bps
             otherwise (on its disk, not loaded)
    wait_s = the member's prompts queued or running x the pool's mean prompt time (the members' recent
             /history: one figure for all, as the queues hold the same kinds of jobs; per-server means
             differ by which jobs each happened to run, and that noise would decide ties)

and goes to the member with the least load_s + wait_s; a member that lacks a file (its preflight says
missing) or does not answer is never chosen for it. Ties go to the shorter queue, then to the first listed.
A batch is planned job by job on a copy of the states: a job's files count as on that member's GPU for the
jobs after it (within the member's budgets: past its GPU budget the least recently used files go to its
RAM, past its RAM budget they are dropped, as the residency registry does), and its queue grows by one.

The transfer rates only order the tiers (GPU < RAM < disk) and weigh a load against a queue; they are
defaults, not measurements of your machine: `disk_bps` 0.6 GB/s is what the full-size klein load measured
here (16.1 GB in 26 s, bench/RESULTS.md), `ram_bps` 12 GB/s a PCIe 4.0 x16 host-to-device copy, and
`job_s` 60 s the expected time of a prompt on a member with no history yet.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

GB = 1e9
DISK_BPS = 0.6 * GB
RAM_BPS = 12 * GB
JOB_S = 60.0


@dataclass
class Member:
    """One server of the pool as the chooser sees it."""
    id: str                                      # ComfyUI-Distributed's worker id, "master", or the server URL
    url: str
    name: str = ""
    tiers: dict = field(default_factory=dict)    # file name -> "gpu" | "ram" (what its registry holds)
    sizes: dict = field(default_factory=dict)    # file name -> bytes (resident files, for the budgets)
    order: list = field(default_factory=list)    # resident file names, least recently used first
    gpu_budget: int | None = None
    ram_budget: int | None = None
    queue: int = 0                               # prompts running or pending
    job_s: float = JOB_S                         # its mean prompt time (recent history), else the pool's
    measured: bool = False                       # job_s comes from its own history
    down: str | None = None                      # why it cannot be used (unreachable, no LockN routes)

    @property
    def label(self) -> str:
        return f"{self.name or self.id} ({self.url})" if self.url not in (self.name, self.id) else self.url


@dataclass
class Needs:
    """What one job needs on each member: file name -> bytes, and what the member lacks."""
    files: dict                                  # name -> bytes on disk (0 when unknown)
    missing: dict = field(default_factory=dict)  # member id -> [file names its preflight lacks]


@dataclass
class Cost:
    member: Member
    load_s: float = 0.0
    wait_s: float = 0.0
    gpu: list = field(default_factory=list)
    ram: list = field(default_factory=list)
    disk: list = field(default_factory=list)
    excluded: str | None = None                  # why this member cannot take the job
    queue: int = 0                               # its queue when the cost was taken

    @property
    def total(self) -> float:
        return self.load_s + self.wait_s

    def describe(self) -> str:
        if self.excluded:
            return f"{self.member.label}: not used ({self.excluded})"
        parts = []
        for what, names in (("on its GPU", self.gpu), ("in its RAM", self.ram), ("read from disk", self.disk)):
            if names:
                parts.append(f"{len(names)} {what}")
        files = ", ".join(parts) or "no model files"
        return (f"{self.member.label}: {files}; load ~{self.load_s:.1f} s + queue {self.queue} x "
                f"{self.member.job_s:.1f} s = {self.total:.1f} s")


@dataclass
class Choice:
    member: Member | None
    costs: list                                  # every member's Cost, cheapest first (excluded last)

    def why(self) -> str:
        return "; ".join(c.describe() for c in self.costs)

    def refusal(self, label: str) -> str:
        lines = [c.describe() for c in self.costs]
        return (f"{label}: no server of the pool can run it: " + "; ".join(lines)
                + ". Put the missing files on one of them (lockn-gen models pull, or a shared models folder) "
                  "or start the one that is down.")


class Pool:
    def __init__(self, members: list[Member], disk_bps: float = DISK_BPS, ram_bps: float = RAM_BPS):
        if not members:
            raise ValueError("a pool needs at least one server")
        self.members = members
        self.disk_bps, self.ram_bps = disk_bps, ram_bps
        known = [m.job_s for m in members if m.measured]
        if known:                          # one expected prompt time for the whole pool (see the module's doc)
            for m in members:
                m.job_s = sum(known) / len(known)

    def cost(self, m: Member, needs: Needs) -> Cost:
        c = Cost(m)
        if m.down:
            c.excluded = m.down
            return c
        lacks = needs.missing.get(m.id)
        if lacks:
            c.excluded = f"lacks {', '.join(lacks)}"
            return c
        for name, size in needs.files.items():
            tier = m.tiers.get(name)
            if tier == "gpu":
                c.gpu.append(name)
            elif tier == "ram":
                c.ram.append(name)
                c.load_s += size / self.ram_bps
            else:
                c.disk.append(name)
                c.load_s += size / self.disk_bps
        c.queue = m.queue
        c.wait_s = m.queue * m.job_s
        return c

    def choose(self, needs: Needs, exclude: tuple = ()) -> Choice:
        costs = [self.cost(m, needs) for m in self.members]
        for c in costs:
            if c.member.id in exclude and not c.excluded:
                c.excluded = "failed this job already"
        order = {m.id: i for i, m in enumerate(self.members)}
        costs.sort(key=lambda c: (c.excluded is not None, c.total, c.queue, order[c.member.id]))
        best = costs[0] if costs and costs[0].excluded is None else None
        return Choice(best.member if best else None, costs)

    def assign(self, member: Member, needs: Needs) -> None:
        """Count a job as sent to `member`: its files on the member's GPU (within its budgets), its queue +1."""
        for name, size in needs.files.items():
            if name in member.order:
                member.order.remove(name)
            member.order.append(name)
            member.tiers[name] = "gpu"
            member.sizes[name] = size
        self._fit(member, "gpu", member.gpu_budget, "ram")
        self._fit(member, "ram", member.ram_budget, None)
        member.queue += 1

    @staticmethod
    def _fit(m: Member, tier: str, budget: int | None, to: str | None) -> None:
        if budget is None:
            return
        used = sum(m.sizes.get(n, 0) for n in m.order if m.tiers.get(n) == tier)
        for name in list(m.order):
            if used <= budget:
                break
            if m.tiers.get(name) != tier:
                continue
            used -= m.sizes.get(name, 0)
            if to is None:
                m.order.remove(name)
                m.tiers.pop(name, None)
            else:
                m.tiers[name] = to

    def plan(self, jobs: list[Needs]) -> list[Choice]:
        """Choose for each job in turn on a copy of the members (the real ones are left as read)."""
        sim = Pool(copy.deepcopy(self.members), self.disk_bps, self.ram_bps)
        out = []
        for needs in jobs:
            ch = sim.choose(needs)
            if ch.member is not None:
                sim.assign(ch.member, needs)
                ch = Choice(next(m for m in self.members if m.id == ch.member.id), ch.costs)
            out.append(ch)
        return out


def member_from_reports(id: str, url: str, residency: dict | None, queue: int = 0, durations: list | None = None,
                        name: str = "", down: str | None = None) -> Member:
    """A Member from a server's GET /lockn/residency report, its queue length and recent prompt times (s)."""
    m = Member(id=id, url=url, name=name, queue=queue, down=down)
    if durations:
        m.job_s, m.measured = sum(durations) / len(durations), True
    if not residency:
        return m
    budgets = residency.get("budgets") or {}
    m.gpu_budget, m.ram_budget = budgets.get("gpu_bytes"), budgets.get("ram_bytes")
    entries = sorted(residency.get("entries") or [], key=lambda e: e.get("last_used") or 0)
    for e in entries:
        tier = e.get("tier")
        if tier not in ("gpu", "ram"):
            continue
        files = e.get("files") or []
        for f in files:
            m.tiers[f] = "gpu" if tier == "gpu" or m.tiers.get(f) == "gpu" else "ram"
            m.sizes[f] = int(e.get("bytes") or 0) // max(1, len(files))
            if f in m.order:
                m.order.remove(f)
            m.order.append(f)
    return m


def needs_from_preflight(reports: dict) -> Needs:
    """Needs from each member's POST /lockn/preflight answer (member id -> report or None): the files of the
    job's loaders (by file name), their bytes on disk where a member has them, and what each member lacks."""
    files: dict = {}
    missing: dict = {}
    for mid, rep in reports.items():
        if not rep:
            continue
        for node in rep.get("nodes") or []:
            for comp in node.get("components") or []:
                if comp.get("optional") and not comp.get("present"):
                    continue
                name = comp.get("name", "").replace("\\", "/").rsplit("/", 1)[-1]
                size = comp.get("bytes_on_disk") or comp.get("size") or 0
                files[name] = max(files.get(name, 0), int(size))
        lacks = list(dict.fromkeys(rep.get("missing") or []))
        if lacks:
            missing[mid] = lacks
    return Needs(files=files, missing=missing)
