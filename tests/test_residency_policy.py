"""Pure residency policy: LRU with pins and per-mode priority, GPU -> RAM -> dropped, budgets."""
from __future__ import annotations

from lockn_gen.residency import GB, Budgets, Entry, default_ram_budget, over_budget, plan, refusal, totals


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


def test_where_the_compute_device_is_system_ram_both_tiers_share_the_ram_budget():
    """ComfyUI on the CPU (or unified memory): a "gpu" entry is in RAM too, so a 20 GB budget holds 20 GB
    in both tiers together, not 20 + 20 (the LoRA benchmark's out-of-memory on the 24 GB box)."""
    es = [E("img", "image", 8, tier="gpu", used=1), E("vid", "video", 8, tier="ram", used=2), E("mus", "music", 4, used=3)]
    budgets = Budgets(gpu_bytes=20 * GB, ram_bytes=20 * GB)
    assert plan(es, budgets, incoming_bytes=6 * GB) == []                     # apart: each tier fits
    acts = plan(es, budgets, incoming_bytes=6 * GB, shared=True)
    assert [(a.entry_id, a.kind) for a in acts] == [("img", "drop")]           # together: 26 > 20, the oldest goes
    assert refusal(es, budgets, acts, 6 * GB, "new.gguf", shared=True) is None


def test_a_load_that_cannot_fit_is_refused_with_the_budget_the_model_and_the_fix():
    es = [E("vid", "video", 14, tier="ram", used=1, pinned=True), E("img", "image", 5, tier="ram", used=2),
          E("mus", "music", 4, tier="gpu", used=3)]
    budgets = Budgets(gpu_bytes=10 * GB, ram_bytes=16 * GB)
    # the unpinned image model can go, the pinned video experts and the prompt's music model cannot:
    # 14 + 4 + 9 > 16 + 10 (a discrete GPU: the two budgets together, as ComfyUI runs models partly loaded)
    acts = plan(es, budgets, incoming_bytes=9 * GB, protect={"mus"})
    why = refusal(es, budgets, acts, 9 * GB, "flux2-dev-Q4_K_M.gguf", protect={"mus"}, available=22 * GB)
    assert why is not None
    for words in ("flux2-dev-Q4_K_M.gguf (9.00 GB)", "RAM 16.00 GB", "GPU 10.00 GB", "pinned: vid (14.00 GB)",
                  "used by the running prompt: mus (4.00 GB)", "Nothing was loaded", "raise ram_budget_gb or gpu_budget_gb",
                  "unpin vid", "separate prompts", "about 22.0 GB of RAM is available"):
        assert words in why, (words, why)
    assert "img" not in why                                                   # it would have been evicted
    # fits the two budgets together: a discrete GPU takes it, partly or whole
    assert refusal(es, Budgets(gpu_bytes=10 * GB, ram_bytes=16 * GB), acts, 9 * GB - 1 * GB, "x") is None
    assert refusal(es, Budgets(gpu_bytes=40 * GB, ram_bytes=16 * GB), acts, 9 * GB, "x") is None
    # memory that stays in RAM (LoRA patch backups) must fit the RAM budget itself
    assert "RAM budget of 16.00 GB" in refusal(es, Budgets(gpu_bytes=40 * GB, ram_bytes=16 * GB), acts, 9 * GB, "x",
                                               incoming_ram_only=True)
    # shared memory: both tiers count
    shared = refusal(es, Budgets(gpu_bytes=40 * GB, ram_bytes=20 * GB), [], 5 * GB, "y", shared=True)
    assert "ComfyUI computes in system RAM" in shared and "23.00 GB stay" in shared
    assert refusal(es, Budgets(gpu_bytes=None, ram_bytes=None), [], 100 * GB, "z") is None   # no budgets: no refusal


def test_a_residency_nodes_plain_budgets_are_read_from_its_prompt():
    from lockn_gen.residency import budgets_in_prompt
    prompt = {"1": {"class_type": "LockNFlux2Loader", "inputs": {"preset": "x"}},
              "2": {"class_type": "LockNResidency", "inputs": {"gpu_budget_gb": 12, "ram_budget_gb": 0.0, "model": ["1", 0]}},
              "3": {"class_type": "LockNResidency", "inputs": {"gpu_budget_gb": ["9", 0], "ram_budget_gb": 24.5}}}
    assert budgets_in_prompt(prompt) == (None, 24.5)          # the last node wins; a linked value is not known yet
    del prompt["3"]
    assert budgets_in_prompt(prompt) == (12.0, 0.0)
    assert budgets_in_prompt({"1": prompt["1"]}) is None and budgets_in_prompt(None) is None


# ---- what counts against the RAM budget: private bytes, not the pages a GGUF file maps ---------------------
def M(i, mode, gb, mapped_gb, tier="gpu", used=0.0, pinned=False):
    e = E(i, mode, gb, tier=tier, used=used, pinned=pinned)
    e.mapped = int(mapped_gb * GB)
    return e


def test_mapped_file_pages_do_not_count_against_the_ram_budget():
    from lockn_gen.residency import ram_used
    # a 20 GB GGUF of which 19.3 GB stay mapped from its file, an 8 GB safetensors text encoder (private)
    dit, te = M("dit", "image", 20, 19.3, tier="gpu", used=1), M("te", "image", 8, 0, tier="ram", used=2)
    assert dit.private == int(0.7 * GB) and dit.to_dict()["mapped_bytes"] == int(19.3 * GB)
    # ComfyUI computes in RAM (shared): both tiers count, privately: 0.7 + 8
    assert ram_used([dit, te], shared=True) == int(0.7 * GB) + 8 * GB
    # a discrete GPU: the RAM budget counts the RAM tier only
    assert ram_used([dit, te], shared=False) == 8 * GB
    budgets = Budgets(gpu_bytes=None, ram_bytes=10 * GB)
    assert plan([dit, te], budgets, shared=True) == []                  # 8.7 GB <= 10: nothing goes (28 GB before)
    # a second GGUF arriving mapped fits beside them; the same bytes as a safetensors file do not
    assert plan([dit, te], budgets, 9 * GB, shared=True, incoming_mapped=8.5 * GB) == []
    assert refusal([dit, te], budgets, [], 9 * GB, "wan.gguf", shared=True, incoming_mapped=int(8.5 * GB)) is None
    acts = plan([dit, te], budgets, 9 * GB, shared=True)
    # the RAM tier makes room first (as before): 8 + 9 > 10, then 0.7 + 9 <= 10 with both tiers
    assert [(a.entry_id, a.kind) for a in acts] == [("te", "drop")]
    # unchanged without mapped bytes (the planner's entries): whole sizes, as before
    assert plan([E("a", "image", 20, tier="gpu")], budgets, shared=True)[0].kind == "drop"


def test_an_entry_offloaded_from_a_discrete_gpu_comes_back_as_private_copies():
    # on a discrete GPU a model moved to RAM is copied there: nothing of it stays mapped from its file
    dit = M("dit", "image", 12, 0, tier="gpu", used=1)
    gguf_in_ram = M("ram", "video", 10, 9.5, tier="ram", used=2)          # never on the GPU: still mapped
    acts = plan([dit, gguf_in_ram], Budgets(gpu_bytes=5 * GB, ram_bytes=11 * GB))
    # offloading dit brings 12 GB into RAM: 12 + 0.5 > 11, so the least recently used in RAM goes: dit itself
    assert [(a.entry_id, a.kind) for a in acts] == [("dit", "drop")]
    acts = plan([dit, gguf_in_ram], Budgets(gpu_bytes=5 * GB, ram_bytes=13 * GB))
    assert [(a.entry_id, a.kind) for a in acts] == [("dit", "offload")]  # 12 + 0.5 <= 13


def test_a_refusal_names_what_counts_private_bytes_and_the_mapped_part_apart():
    staying = M("te", "image", 3, 0, tier="ram", used=1, pinned=True)
    budgets = Budgets(gpu_bytes=None, ram_bytes=4 * GB)
    why = refusal([staying], budgets, [], 20 * GB, "flux2-dev-Q4_K_M.gguf", shared=True, incoming_mapped=int(18.5 * GB))
    assert why is not None
    for words in ("loading flux2-dev-Q4_K_M.gguf (1.50 GB) would exceed LockN's RAM budget of 4.00 GB",
                  "3.00 GB stay", "the RAM budget counts private memory, which the kernel cannot reclaim",
                  "1.50 GB of flux2-dev-Q4_K_M.gguf", "not counted: 18.50 GB of it and 0.0 MB of the models that stay, "
                  "mapped read-only from their files", "pinned: te (3.00 GB)", "Nothing was loaded"):
        assert words in why, (words, why)
    # with 1 GB less private it fits
    assert refusal([staying], budgets, [], 20 * GB, "x.gguf", shared=True, incoming_mapped=int(19.5 * GB)) is None
    # a safetensors file (nothing mapped): no word of mapped pages
    why = refusal([staying], budgets, [], 2 * GB, "vae.safetensors", shared=True)
    assert "2.00 GB of vae.safetensors" in why and "not counted" not in why


def test_pinned_entries_over_the_ram_budget_count_their_private_part():
    es = [M("p", "video", 50, 45, tier="ram", pinned=True)]
    assert over_budget(es, Budgets(ram_bytes=10 * GB)) == []               # 5 GB private: within 10
    [warn] = over_budget(es, Budgets(ram_bytes=4 * GB))
    assert "RAM tier holds 5.00 GB private, over its 4.00 GB budget" in warn and "5.00 GB of it pinned" in warn
    es[0].tier = "gpu"
    assert over_budget(es, Budgets(ram_bytes=4 * GB)) == []                 # a discrete GPU's tier: not RAM
    assert "both tiers" in over_budget(es, Budgets(ram_bytes=4 * GB), shared=True)[0]


def test_file_mappings_are_read_from_the_kernels_maps_and_count_only_where_tensors_lie(tmp_path):
    import mmap
    import os
    from lockn_gen.residency import dirty_bytes, file_ids, file_mappings, mapped_bytes, maps_of, merge_ranges
    assert merge_ranges([(10, 20), (15, 30), (40, 50), (5, 5)]) == [(10, 30), (40, 50)]
    f = tmp_path / "model.gguf"
    f.write_bytes(b"\0" * (1 << 20))
    fd = open(f, "rb")
    m = mmap.mmap(fd.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        mine = maps_of(file_mappings(file_ids([str(f)])), file_ids([str(f)]))
        assert len(mine) == 1 and mine[0].perms.startswith("r--") and mine[0].end - mine[0].start == 1 << 20
        start = mine[0].start
        # tensors: one inside the map, one half inside, one elsewhere; views of one tensor count once
        ranges = [(start, start + 1000), (start + 500, start + 1000), (start + (1 << 20) - 100, start + (1 << 20) + 100),
                  (1, 2)]
        assert mapped_bytes(ranges, mine) == 1000 + 100
        assert dirty_bytes(mine) == {}                      # read-only: smaps not even read
        assert mapped_bytes(ranges, mine, {(mine[0].start, mine[0].end): 600}) == 500   # dirty pages are not reclaimable
        assert file_mappings(path=str(tmp_path / "no-such-proc-file")) is None          # no /proc (macOS)
        assert maps_of(file_mappings(), file_ids([str(tmp_path / "other")])) == []
        assert os.path.realpath(str(f)) in {x.path for x in file_mappings()}
    finally:
        m.close()
        fd.close()


def test_dirty_pages_of_a_writable_file_map_are_read_from_smaps(tmp_path):
    import mmap
    from lockn_gen.residency import dirty_bytes, file_ids, file_mappings, mapped_bytes, maps_of
    f = tmp_path / "rw.bin"
    f.write_bytes(b"\0" * (1 << 20))
    fd = open(f, "r+b")
    m = mmap.mmap(fd.fileno(), 0, access=mmap.ACCESS_COPY)          # copy-on-write: written pages are private
    try:
        m[: 3 * 4096] = b"\1" * (3 * 4096)
        mine = maps_of(file_mappings(file_ids([str(f)])), file_ids([str(f)]))
        assert len(mine) == 1 and "w" in mine[0].perms
        dirty = dirty_bytes(mine)
        assert dirty[(mine[0].start, mine[0].end)] == 3 * 4096
        assert mapped_bytes([(mine[0].start, mine[0].end)], mine, dirty) == (1 << 20) - 3 * 4096
    finally:
        m.close()
        fd.close()
