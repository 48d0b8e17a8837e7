"""Pure residency policy: LRU with pins and per-mode priority, GPU -> RAM -> dropped, budgets."""
from __future__ import annotations

from lockn_gen.residency import GB, Budgets, Entry, default_ram_budget, over_budget, plan, totals


def E(i, mode, gb, tier="gpu", used=0.0, pinned=False):
    return Entry(id=i, name=i, family="", role="", mode=mode, bytes=int(gb * GB), tier=tier, last_used=used, pinned=pinned)


def apply(entries, actions):
    tier = {"offload": "ram", "drop": "dropped"}
    by = {e.id: e for e in entries}
    for a in actions:
        by[a.entry_id].tier = tier[a.kind]
    return totals(entries)


def test_lru_offloads_to_ram_then_drops_to_stay_within_budgets():
    es = [E("img", "image", 20, used=1), E("vid", "video", 26, used=2), E("mus", "music", 10, used=3)]
    acts = plan(es, Budgets(gpu_bytes=40 * GB, ram_bytes=25 * GB))
    assert [(a.entry_id, a.kind) for a in acts] == [("img", "offload")]       # the least recently used goes to RAM
    t = apply(es, acts)
    assert t["gpu"] <= 40 * GB and t["ram"] <= 25 * GB
    assert {e.id: e.tier for e in es} == {"img": "ram", "vid": "gpu", "mus": "gpu"}
    # a smaller GPU budget pushes the video model to RAM too, and RAM then drops the oldest
    acts = plan(es, Budgets(gpu_bytes=12 * GB, ram_bytes=30 * GB))
    apply(es, acts)
    assert {e.id: e.tier for e in es} == {"img": "dropped", "vid": "ram", "mus": "gpu"}


def test_pins_are_never_evicted_and_priority_protects_a_mode():
    es = [E("vid", "video", 26, used=1, pinned=True), E("img", "image", 20, used=2), E("mus", "music", 10, used=3)]
    t = apply(es, plan(es, Budgets(gpu_bytes=30 * GB)))
    assert es[0].tier == "gpu" and t["gpu"] <= 30 * GB
    # without the pin, a higher video priority keeps the (older) video model over image and music
    es = [E("vid", "video", 15, used=1), E("img", "image", 10, used=2), E("mus", "music", 10, used=3)]
    apply(es, plan(es, Budgets(gpu_bytes=25 * GB), priority={"video": 5}))
    assert es[0].tier == "gpu" and {es[1].tier, es[2].tier} == {"ram", "gpu"} and es[1].tier == "ram"


def test_room_is_made_for_an_incoming_model_and_protected_entries_stay():
    es = [E("a", "image", 10, used=1), E("b", "image", 10, used=2)]
    acts = plan(es, Budgets(gpu_bytes=25 * GB), incoming_bytes=10 * GB, protect={"a"})
    assert [(a.entry_id, a.kind) for a in acts] == [("b", "offload")]


def test_a_mode_used_by_two_prompts_in_a_row_ends_the_cycle():
    from lockn_gen.residency import ModeCycle
    c = ModeCycle()
    for i, mode in enumerate(["image", "video", "music", "image", "video"]):
        c.use(mode, f"p{i}")
        c.use(mode, f"p{i}")                 # several loaders of one prompt: no repeat
    assert c.cycling
    c.use("video", "p5")                     # the same mode again, in the next prompt (a LoRA changed, say)
    assert not c.cycling
    c.use("music", "p6")
    c.use("image", "p7")                     # back to switching to the mode used longest ago
    assert c.cycling


def test_memory_that_stays_in_ram_makes_room_in_ram_only():
    # LoRA patch backups: ComfyUI keeps them in system RAM, so the GPU tier is left as it is
    es = [E("base", "video", 14, tier="gpu", used=3), E("img", "image", 20, tier="ram", used=1), E("mus", "music", 5, tier="ram", used=2)]
    acts = plan(es, Budgets(gpu_bytes=16 * GB, ram_bytes=30 * GB), incoming_bytes=10 * GB, incoming_ram_only=True)
    assert [(a.entry_id, a.kind) for a in acts] == [("img", "drop")]
    # the same bytes as an incoming model would push the GPU entry out as well
    acts = plan(es, Budgets(gpu_bytes=16 * GB, ram_bytes=30 * GB), incoming_bytes=10 * GB)
    assert ("base", "offload") in [(a.entry_id, a.kind) for a in acts]


def test_pinned_entries_over_budget_are_reported_not_evicted():
    es = [E("p", "video", 50, pinned=True)]
    assert plan(es, Budgets(gpu_bytes=30 * GB)) == []
    assert "50.00 GB of it pinned" in over_budget(es, Budgets(gpu_bytes=30 * GB))[0]


def test_default_ram_budget_respects_container_limit(monkeypatch):
    import lockn_gen.residency as r
    monkeypatch.setattr(r, "mem_available", lambda: 100 * GB)
    monkeypatch.setattr(r, "cgroup_memory_limit", lambda: 40 * GB)
    monkeypatch.setattr(r, "cgroup_memory_used", lambda: 10 * GB)
    assert default_ram_budget(held_bytes=0, headroom=0.25) == int(30 * GB * 0.75)
    monkeypatch.setattr(r, "cgroup_memory_limit", lambda: None)
    assert default_ram_budget(held_bytes=10 * GB, headroom=0.0) == 110 * GB


def test_mode_cycle_is_seen_from_switches_to_the_mode_used_longest_ago():
    from lockn_gen.residency import ModeCycle
    c = ModeCycle()
    for m in ("image", "video", "music", "image", "video"):
        c.use(m)
    assert c.cycling
    c = ModeCycle()
    for m in ("image", "video", "video", "image", "image", "music", "image"):
        c.use(m)                         # back and forth between image and the others: no cycle
    assert not c.cycling


def _cycle_rereads(budgets: Budgets, cycles: int = 4, detect: bool = True) -> list[float]:
    """GB read from disk per image -> video -> music cycle (stacks of the benchmark's sizes), with the
    policy applied as the registry does: room made before each load, budgets after each prompt."""
    from lockn_gen.residency import ModeCycle
    sizes = {"image": (1.82, 1.56), "video": (1.99, 1.99, 2.10), "music": (1.92, 0.62, 1.78)}
    entries = {f"{m}{i}": Entry(id=f"{m}{i}", name="", family=m, role="", mode=m, bytes=int(b * GB), tier="dropped")
               for m, bs in sizes.items() for i, b in enumerate(bs)}
    cycle, clock, out = ModeCycle(), 0, []

    def apply(actions):
        for a in actions:
            entries[a.entry_id].tier = "ram" if a.kind == "offload" else "dropped"
    for _ in range(cycles):
        read = 0
        for mode in ("image", "video", "music"):
            clock += 1
            cycle.use(mode)
            cycling = cycle.cycling and detect
            mine = [e for e in entries.values() if e.mode == mode]
            for e in mine:
                if e.tier == "dropped":
                    apply(plan(list(entries.values()), budgets, e.bytes, protect={x.id for x in mine}, cycling=cycling))
                    read += e.bytes
                e.tier, e.last_used = "gpu", clock
            apply(plan(list(entries.values()), budgets, 0, cycling=cycling))
        out.append(read / GB)
    return out


def test_a_cycle_that_does_not_fit_does_not_reread_everything():
    """13.8 GB of stacks used in turn under 6.5 GB (GPU) + 6 GB (RAM): least-recently-used eviction
    drops the stack needed next at every switch; seen as a cycle, the policy keeps the older ones."""
    budgets = Budgets(gpu_bytes=int(6.5 * GB), ram_bytes=6 * GB)
    lru = _cycle_rereads(budgets, detect=False)
    seen = _cycle_rereads(budgets)
    assert lru[-1] > 11                              # almost every stack again, every cycle
    assert sum(seen[1:]) < 0.65 * sum(lru[1:]), (seen, lru)
