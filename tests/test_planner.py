"""The residency planner and `lockn-gen plan`, checked against the real catalog sizes."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lockn_gen import catalog as catalog_mod
from lockn_gen import planner
from lockn_gen.planner import GB, Machine, PlanError, choose_presets, format_plan, plan, preset_plan
from lockn_gen.residency import Budgets, Entry, ModeCycle, refusal
from lockn_gen.residency import plan as residency_plan

QUALITY_STACK = ["flux2-dev-q8_0", "wan22-i2v-a14b-q8_0", "ace15-turbo"]
RTX = Machine(ram_gb=256)                                  # the RTX Pro 6000 defaults: 96 - 74 - 2 = 20 GB
BIG = Machine(gpu_gb=192, used_gb=0, ram_gb=256)           # 190 GB budget, nothing else on the GPU
BW = planner.DEFAULT_BANDWIDTH_GBPS * GB


@pytest.fixture(scope="module")
def cat():
    return catalog_mod.load(include_env=False)


def by_mode(choices):
    return {c.mode: c for c in choices}


def run_cli(capsys, *argv):
    parser = argparse.ArgumentParser()
    planner.add_arguments(parser)
    rc = planner.main(parser.parse_args(list(argv)))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- per preset ---------------------------------------------------------------------------------
def test_preset_bytes_and_fit_use_the_real_file_sizes(cat):
    assert RTX.budget_gb == pytest.approx(20.0)
    flux = preset_plan(cat, "flux2-dev-q8_0", RTX)
    assert flux.weight_bytes == 35_000_000_000 + 18_030_000_000 + 336_000_000
    assert flux.largest_stage_bytes == 35_000_000_000 + 3 * 10**9      # diffusion model + sampling estimate
    assert flux.fit == "streamed" and flux.stream_bytes_per_run > 0
    assert flux.gpu_peak_bytes == RTX.budget_bytes
    wan = preset_plan(cat, "wan22-i2v-a14b-q8_0", RTX)
    assert wan.weight_bytes == 2 * 15_400_000_000 + 6_740_000_000 + 254_000_000
    # the two experts are separate stages: the largest stage holds one expert, not both
    assert wan.largest_stage_bytes == 15_400_000_000 + 5 * 10**9
    fp8 = preset_plan(cat, "wan22-i2v-a14b-fp8", RTX)
    assert fp8.fit == "staged" and fp8.reload_s_per_run == pytest.approx(2 * fp8.weight_bytes / BW)
    big = preset_plan(cat, "flux2-dev-q8_0", BIG)
    assert big.fit == "resident" and big.gpu_peak_bytes == big.weight_bytes + 3 * 10**9
    assert big.stream_bytes_per_run == 0 and big.reload_s_per_run == 0


def test_speed_factor_gguf_half_of_safetensors(cat):
    assert planner.speed_factor("gguf", "Q4_K_M") == 0.5
    assert planner.speed_factor("gguf", "Q8_0") == 0.5
    assert planner.speed_factor("safetensors", "fp8mixed") == 1.0
    assert planner.speed_factor("safetensors", "bf16") == 1.0
    q8, fp8 = preset_plan(cat, "flux2-dev-q8_0", BIG), preset_plan(cat, "flux2-dev-fp8mixed", BIG)
    assert (q8.speed_factor, fp8.speed_factor) == (0.5, 1.0)
    assert fp8.est_run_s < q8.est_run_s * 0.7          # same model size, GGUF about twice as slow


# ---- the plan -----------------------------------------------------------------------------------
def test_quality_stack_does_not_fit_next_to_the_llms_and_swaps(cat):
    p = plan(cat, QUALITY_STACK, RTX)
    assert not p.all_fit and p.gpu_resident == []
    assert set(p.swapped) == set(QUALITY_STACK)
    assert p.all_at_once_bytes > RTX.budget_bytes
    assert [(s.from_preset, s.to_preset) for s in p.switches] == [
        ("flux2-dev-q8_0", "wan22-i2v-a14b-q8_0"), ("wan22-i2v-a14b-q8_0", "ace15-turbo"),
        ("ace15-turbo", "flux2-dev-q8_0")]
    into_flux = p.switches[2]
    assert into_flux.load_bytes == preset_plan(cat, "flux2-dev-q8_0", RTX).weight_bytes
    for s in p.switches:
        assert s.disk_bytes == 0
        assert s.seconds == pytest.approx((s.load_bytes + s.evict_bytes) / BW, abs=1e-3)
        assert s.load_bytes > 0
    assert p.cycle_s == pytest.approx(sum(s.seconds for s in p.switches), abs=1e-3)
    faster = plan(cat, QUALITY_STACK, Machine(ram_gb=256, bandwidth_gbps=50))
    assert faster.cycle_s == pytest.approx(p.cycle_s / 2, rel=1e-3)


def test_everything_fits_on_a_192_gb_gpu(cat):
    p = plan(cat, QUALITY_STACK, BIG)
    assert p.all_fit and p.swapped == [] and sorted(p.gpu_resident) == sorted(QUALITY_STACK)
    assert p.cycle_s == 0 and all(s.load_bytes == s.evict_bytes == 0 for s in p.switches)
    assert all(pp.fit == "resident" for pp in p.presets)


def test_pins_what_saves_swap_time(cat):
    # 96 - 51 - 2 = 43 GB: one stack can stay on the GPU, the others swap beside it. Pinning Wan2.2
    # (26.3 GB) or ACE-Step (9.8 GB) cost within 1% of each other here, so assert the rule, not a pick.
    stack = ["flux2-klein-4b-fp8", "wan22-i2v-a14b-q4_k_m", "ace15-turbo"]
    m = Machine(used_gb=51, ram_gb=256)
    p = plan(cat, stack, m)
    assert len(p.gpu_resident) == 1 and not p.all_fit
    assert sorted(p.swapped + p.gpu_resident) == sorted(stack)
    into_pinned = next(s for s in p.switches if s.to_preset == p.gpu_resident[0])
    assert into_pinned.load_bytes == 0                       # a pinned stack is never loaded again
    unpinned = planner._simulate(p.presets, set(), m)
    assert 0 < p.cycle_s < sum(s.seconds for s in unpinned)  # the pin saves swap time
    assert p.cycle_s < 2 * 26.29 / planner.DEFAULT_BANDWIDTH_GBPS


def test_short_ram_reloads_from_disk(cat):
    p = plan(cat, QUALITY_STACK, Machine(ram_gb=30))
    assert not p.ram_fits and p.disk_files
    distinct = {n: s for pp in p.presets for n, s in pp.files.items()}
    assert p.ram_needed_bytes == sum(distinct.values())
    assert any(s.disk_bytes > 0 for s in p.switches)
    for s in p.switches:
        assert s.seconds == pytest.approx((s.load_bytes + s.evict_bytes) / BW + s.disk_bytes / (3 * GB), abs=1e-3)
    assert p.cycle_s > plan(cat, QUALITY_STACK, RTX).cycle_s
    assert any("reload from disk" in n for n in p.notes)


def test_unknown_preset_names_the_known_ones(cat):
    with pytest.raises(PlanError, match="known presets:.*flux2-dev-q8_0"):
        plan(cat, ["flux3-imaginary"], RTX)


# ---- choosing presets ---------------------------------------------------------------------------
def test_quality_picks_wan_a14b_and_flux_q8_when_they_fit(cat):
    c = by_mode(choose_presets(cat, BIG, "quality"))
    assert c["image"].preset == "flux2-dev-q8_0"
    assert c["video"].preset == "wan22-i2v-a14b-q8_0"
    assert c["music"].preset.startswith("ace15-") and "turbo" in c["music"].preset
    p = plan(cat, machine=BIG, target="quality")
    assert p.all_fit and p.target == "quality" and len(p.choices) == 3


def test_quality_degrades_to_smaller_quants_and_says_why(cat):
    # with streaming off (--max-slowdown 1) only what fits whole or a stage at a time is taken
    never = dict(max_slowdown=1.0)
    c = by_mode(choose_presets(cat, Machine(used_gb=64, ram_gb=256), "quality", **never))      # 30 GB budget
    assert c["image"].preset == "flux2-dev-q5_k_m"
    assert "flux2-dev-q8_0 needs 38.0 GB (streaming x1.3" in c["image"].reason
    assert c["video"].preset == "wan22-i2v-a14b-q8_0"
    c = by_mode(choose_presets(cat, RTX, "quality", **never))                                   # 20 GB budget
    assert c["video"].preset == "wan22-i2v-a14b-fp8"
    assert "wan22-i2v-a14b-q8_0 needs 20.4 GB" in c["video"].reason
    assert c["image"].preset == "flux2-klein-4b"
    c = by_mode(choose_presets(cat, Machine(gpu_gb=24, used_gb=10, ram_gb=64), "quality", **never))  # 12 GB
    # no Wan2.2, HunyuanVideo 1.5, Wan2.1 or LTX-2 preset fits (the reason names the best of each): LTX-Video does
    assert c["video"].preset == "ltxv-2b-0.9.8-distilled-fp8"
    for too_big in ("wan22-i2v-a14b-q8_0 needs 20.4 GB", "hunyuan15-720p-i2v needs", "wan21-i2v-480p-fp16 needs"):
        assert too_big in c["video"].reason


def test_quality_takes_a_streamed_preset_when_streaming_costs_at_most_the_limit(cat):
    # 20 GB next to the LLMs: Flux.2-dev Q8_0 (35 GB) does not fit whole, but streaming its other 18 GB
    # every step adds 0.72 s to 0.95 s of compute (x1.76): a cost within x2, so quality takes it and says so
    q8 = preset_plan(cat, "flux2-dev-q8_0", RTX)
    assert q8.fit == "streamed" and q8.stream_bytes_per_step == 18 * 10**9
    assert q8.stream_s_per_step == pytest.approx(18 / planner.DEFAULT_BANDWIDTH_GBPS)
    assert planner.slowdown(q8) == pytest.approx(1 + q8.stream_s_per_step / q8.step_s)
    assert q8.est_run_s == pytest.approx(planner.FAMILY_ESTIMATES["flux2"].fixed_s + q8.steps * q8.step_s
                                         + q8.reload_s_per_run + q8.stream_bytes_per_run / BW, abs=0.01)
    c = by_mode(choose_presets(cat, RTX, "quality"))
    assert c["image"].preset == "flux2-dev-q8_0"
    for words in ("within the streaming limit (x2)", "copies 18.0 GB from RAM every step", "+0.72 s on 0.95 s",
                  "(x1.76)", "best without streaming: flux2-klein-4b"):
        assert words in c["image"].reason, (words, c["image"].reason)
    # the same GPU behind a slow link (5 GB/s): Q8_0's 3.6 s of copies per step is x4.8 and Q5_K_M's
    # x2.45, over the limit; Q4_K_M streams 3.1 GB per step, within it
    slow = Machine(bandwidth_gbps=5, ram_gb=256)
    c = by_mode(choose_presets(cat, slow, "quality"))
    assert c["image"].preset == "flux2-dev-q4_k_m"
    for words in ("flux2-dev-q8_0 needs 38.0 GB (streaming x4.80)", "flux2-dev-q5_k_m needs 27.1 GB (streaming x2.45)"):
        assert words in c["image"].reason, (words, c["image"].reason)
    # the preset planner node's auto path follows the same rule
    assert planner.pick_paths(cat, RTX)["path"] == "quality"
    assert planner.pick_paths(cat, RTX, max_slowdown=1.0)["path"] == "fast"


def test_cli_max_slowdown(capsys):
    rc, out, _ = run_cli(capsys, "--ram-gb", "256", "--max-slowdown", "1")
    assert rc == 0 and "image: flux2-klein-4b" in out
    rc, out, _ = run_cli(capsys, "--ram-gb", "256")
    assert rc == 0 and "image: flux2-dev-q8_0: highest quality within the streaming limit" in out
    rc, _, err = run_cli(capsys, "--max-slowdown", "0.5")
    assert rc == 2 and "--max-slowdown must be >= 1" in err


@pytest.mark.parametrize("machine", [RTX, Machine(used_gb=0, ram_gb=256), BIG])
def test_speed_picks_the_fastest_family_of_each_mode(cat, machine):
    # the plan's speed order (LTX-Video before LTX-2 before the rest), from the families' step estimates
    c = by_mode(choose_presets(cat, machine, "speed"))
    assert c["video"].preset == "ltxv-2b-0.9.8-distilled-fp8"
    assert c["image"].preset == "sdxl-base"
    assert c["music"].preset == "stable-audio-open-1.0"
    assert "fastest estimate" in c["video"].reason


@pytest.mark.parametrize("machine", [RTX, Machine(used_gb=0, ram_gb=256), BIG])
def test_speed_among_the_first_four_families_picks_ltx2_distilled_and_a_small_flux(cat, machine):
    first = catalog_mod.Catalog({k: v for k, v in cat.families.items() if k in ("flux2", "wan22", "ltx2", "ace15")}, cat.files,
                            {k: p for k, p in cat.presets.items() if p.family in ("flux2", "wan22", "ltx2", "ace15")})
    c = by_mode(choose_presets(first, machine, "speed"))
    assert c["video"].preset == "ltx2-19b-distilled-fp8"
    image = cat.presets[c["image"].preset]
    assert image.family == "flux2" and image.quality <= cat.presets["flux2-dev-q5_k_m"].quality
    assert c["music"].preset == "ace15-turbo"


def test_unknown_target_is_refused(cat):
    with pytest.raises(PlanError, match="quality, speed"):
        choose_presets(cat, RTX, "cheapest")


# ---- rendering and CLI --------------------------------------------------------------------------
def test_format_and_json(cat):
    p = plan(cat, QUALITY_STACK, RTX)
    text = format_plan(p)
    assert "20.0 GB budget" in text and "Swap through RAM: flux2-dev-q8_0" in text
    assert f"cycle total: {p.cycle_s:.2f} s" in text
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert d["machine"]["budget_gb"] == 20.0 and d["all_fit"] is False
    assert [x["id"] for x in d["presets"]] == QUALITY_STACK


def test_cli_default_prints_the_rtx_pro_6000_table(capsys):
    rc, out, _ = run_cli(capsys, "--ram-gb", "256")
    assert rc == 0
    assert "GPU 96.0 GB - 74.0 used by others - 2.0 reserve = 20.0 GB budget" in out
    assert "mode" in out and "largest stage" in out and "Chosen:" in out
    for preset in ("flux2-klein-4b", "wan22-i2v-a14b-fp8", "ace15-xl-turbo"):
        assert preset in out


def test_cli_json_and_options(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "--gpu-gb", "192", "--used-gb", "0", "--json", "--target", "speed")
    d = json.loads(out)
    assert rc == 0 and d["all_fit"] is True and d["cycle_s"] == 0 and d["target"] == "speed"
    if Path("/proc/meminfo").is_file():
        assert d["machine"]["ram_source"] == "/proc/meminfo MemAvailable" and d["machine"]["ram_gb"] > 0
    extra = tmp_path / "mine.toml"
    extra.write_text('[presets."my-klein"]\nfamily = "flux2"\nquality = 1\ncomponents = { diffusion_model = '
                     '"flux-2-klein-4b-fp8.safetensors", text_encoder = "qwen_3_4b.safetensors", '
                     'vae = "flux2-vae.safetensors" }\n')
    rc, out, _ = run_cli(capsys, "--catalog", str(extra), "--preset", "my-klein", "--preset", "ace15-turbo",
                         "--bandwidth-gbps", "10", "--disk-gbps", "1", "--ram-gb", "100", "--json")
    d = json.loads(out)
    assert rc == 0 and [p["id"] for p in d["presets"]] == ["my-klein", "ace15-turbo"]
    assert d["machine"]["bandwidth_gbps"] == 10 and d["target"] is None


def test_cli_errors(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "--preset", "nope")
    assert rc == 2 and out == ""
    assert "unknown preset 'nope'" in err and "known presets:" in err and "ltx2-19b-distilled-fp8" in err
    rc, _, err = run_cli(capsys, "--catalog", str(tmp_path / "missing.toml"))
    assert rc == 2 and "missing.toml not found" in err


def test_planner_imports_neither_torch_nor_comfy():
    code = ("import sys, lockn_gen.planner; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'comfy', 'folder_paths')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_first_cycle_reads_every_file_once_and_says_what_was_measured(cat):
    """The switches are the steady state; from a cold start the first cycle reads every distinct file
    from disk once (the full-size cycle on the CPU box read 1.00-1.26x each stack's files on its first
    visit), and the plan says so with the measurement it is checked against."""
    m = Machine(gpu_gb=96, used_gb=74, ram_gb=16, disk_gbps=2.0)
    ids = ["flux2-klein-4b-fp8", "wan22-ti2v-5b", "ace15-turbo"]
    p = plan(cat, ids, m)
    files = {f.name: f.size for pid in ids for f in cat.preset_files(pid).values()}
    assert p.first_cycle_disk_bytes == sum(files.values())
    assert p.first_cycle_disk_s == pytest.approx(sum(files.values()) / (2.0 * GB), abs=1e-3)
    note = next(n for n in p.notes if n.startswith("the first cycle from a cold start"))
    assert f"{sum(files.values()) / GB:.1f} GB" in note and planner.MEASURED_REF in note
    warm = next(s for s in p.switches if s.to_preset == "flux2-klein-4b-fp8")
    assert warm.disk_bytes == pytest.approx(12.45e9, rel=0.01)      # measured: 12.49 GB read
    assert planner.MEASURED_REF in format_plan(p)


# ---- the plan predicts the registry ---------------------------------------------------------------
class RegistryDriver:
    """LockN's registry as nodes/residency.py (and nodes/lifecycle.py) drives the residency policy, one
    prompt per stage visit, the loaded objects replaced by their sizes: the loaders' fingerprints note the
    mode (ModeCycle.use) and the entries; the prompt's first LockN node settles with them protected
    (_begin -> _settle -> enforce: residency.plan with nothing incoming); each loader asks for its
    components (load: a hit, or room made with residency.plan for the file's bytes, the prompt's entries
    protected, then the file arrives in RAM); after the prompt the idle watcher settles (every entry the
    prompt used stamped with one time, enforce with nothing protected). Between the loads and the settle
    ComfyUI runs the prompt: that part is not the registry's, and is modelled as the planner assumes it
    (planner.cycle_steps: the models moved to the GPU, what does not fit beside them offloaded)."""

    def __init__(self, budgets, priority=None, pinned=()):
        self.budgets, self.priority = budgets, priority
        self.records: dict[str, Entry] = {}            # load order, as the registry's records
        self.cycle = ModeCycle()
        self.now = 0.0
        self.prompt_ids, self.upcoming, self.running = set(), set(), False
        self.actions: list[str] = []
        for name, size, mode in pinned:                # loaded and pinned before the cycle
            self.records[name] = Entry(id=name, name=name, family="", role="", mode=mode, bytes=size, tier="gpu",
                                       pinned=True, last_used=self.tick())

    def tick(self):
        self.now += 1.0
        return self.now

    def entries(self):
        return list(self.records.values())

    def apply(self, actions):
        for a in actions:
            self.records[a.entry_id].tier = "ram" if a.kind == "offload" else "dropped"
            self.actions.append(f"{a.kind} {a.entry_id}")

    def settle(self, protect=frozenset()):                 # PromptLifecycle._settle
        if not (self.running or self.upcoming):
            return
        now = self.tick()
        for rid in self.prompt_ids | self.upcoming:
            if rid in self.records:
                self.records[rid].last_used = now
        self.running, self.prompt_ids, self.upcoming = False, set(), set()
        self.apply(residency_plan(self.entries(), self.budgets, 0, self.priority, protect=set(protect),
                                  cycling=self.cycle.cycling))

    def load(self, name, size, mode):                      # Registry.load
        rec = self.records.get(name)
        if rec is not None and rec.tier != "dropped":
            rec.last_used = self.tick()
            return False
        protect = set(self.prompt_ids)
        actions = residency_plan(self.entries(), self.budgets, size, self.priority, protect=protect,
                                 cycling=self.cycle.cycling)
        assert refusal(self.entries(), self.budgets, actions, size, name, protect=protect) is None
        self.apply(actions)
        if rec is None:
            rec = self.records[name] = Entry(id=name, name=name, family="", role="", mode=mode, bytes=size)
        rec.tier, rec.last_used = "ram", self.tick()
        return True

    def prompt(self, pid, preset, gpu_budget):
        """One prompt of `preset` (a PresetPlan); returns (evictions, load, evict, disk bytes)."""
        self.actions = []
        names = list(preset.files)                          # the loader's component order, not sorted
        self.cycle.use(preset.mode, pid)                    # the loaders' fingerprints (note)
        self.upcoming = set(names)
        self.settle(protect=set(names))                     # its first LockN node: _begin
        self.running, self.prompt_ids = True, set(names)
        self.cycle.use(preset.mode, pid)                    # will_use
        disk = sum(preset.files[n] for n in names if self.load(n, preset.files[n], preset.mode))
        # ComfyUI runs the prompt (the planner's assumption, see planner.cycle_steps)
        mine = [self.records[n] for n in names]
        passed = set()                                      # a staged preset's stages pass through the GPU
        if any(e.pinned for e in mine) or preset.fit == "resident":
            load = sum(e.bytes for e in mine if e.tier != "gpu")
            self.apply(residency_plan(self.entries(), Budgets(gpu_bytes=gpu_budget - preset.working_bytes), load,
                                      self.priority, protect=set(names), cycling=self.cycle.cycling))
            for e in mine:
                e.tier = "gpu"
        else:
            load = sum(e.bytes for e in mine)
            self.apply(residency_plan(self.entries(), Budgets(gpu_bytes=0), 0, self.priority, protect=set(names),
                                      cycling=self.cycle.cycling))
            for e in mine:
                e.tier = "ram"
                passed.add(e.id)
        self.settle()                                       # the idle watcher, after the prompt
        copied = passed | {a.split(" ", 1)[1] for a in self.actions if a.startswith("offload ")}
        evict = sum(self.records[n].bytes for n in copied)
        return list(self.actions), load, evict, disk


def drive_registry(presets, machine, pins=(), priority=None, rounds=6):
    """The planner's cycle (presets[1] -> ... -> presets[0], repeated) through RegistryDriver."""
    pinned = [(n, s, p.mode) for p in presets if p.id in pins for n, s in p.files.items()]
    reg = RegistryDriver(Budgets(gpu_bytes=machine.budget_bytes, ram_bytes=int(round(machine.ram_gb * GB))),
                         priority, pinned)
    out, k = [], 0
    for rnd in range(rounds):
        for i in [*range(1, len(presets)), 0]:
            k += 1
            out.append((rnd, presets[i - 1].id, presets[i].id, *reg.prompt(f"prompt-{k}", presets[i], machine.budget_bytes)))
    return out


SWITCH_STACKS = [
    # (presets, machine): LTX-2 beside the image and music stacks, 50 GB of GPU budget, 16 GB of RAM: the
    # stacks fit the GPU one at a time, the cycle order keeps 3.5 s per cycle where least-recently-used
    # eviction would spend 16.9 s
    (["flux2-klein-4b-fp8", "ltx2-19b-distilled-fp8", "ace15-turbo"], Machine(used_gb=44, ram_gb=16)),
    # a staged video preset in 20 GB next to the LLMs (the full-size cycle bench's presets)
    (["flux2-klein-4b-fp8", "wan22-ti2v-5b", "ace15-turbo"], Machine(ram_gb=16)),
    # Wan2.2 A14B Q4_K_M with one preset pinned by the plan, 8 GB of RAM
    (["flux2-klein-4b-fp8", "wan22-i2v-a14b-q4_k_m", "ace15-turbo"], Machine(used_gb=51, ram_gb=8)),
]


@pytest.mark.parametrize("ids,machine", SWITCH_STACKS)
def test_the_plans_switches_are_what_the_registry_does(cat, ids, machine):
    """The same cycle of mode switches through the planner and through the registry's policy as
    nodes/residency.py calls it (same files and sizes, budgets, pins): the plan's steady-state switches
    (what moves to the GPU, back to RAM, from disk, and which models the policy evicts in which order)
    are the registry's, switch by switch."""
    p = plan(cat, ids, machine)
    steady = drive_registry(p.presets, machine, pins=set(p.gpu_resident))[-len(p.switches):]
    assert len(p.switches) == len(ids)
    for s, (_, frm, to, evictions, load, evict, disk) in zip(p.switches, steady):
        assert (s.from_preset, s.to_preset) == (frm, to)
        assert (s.load_bytes, s.evict_bytes, s.disk_bytes) == (load, evict, disk), (to, s, (load, evict, disk))
        assert getattr(s, "evictions", None) == evictions, to


def test_the_cycle_step_by_step_with_pins_and_priorities_is_the_registrys(cat):
    """Every step from a cold start (not only the steady state), with a pin and mode priorities: the
    evictions of planner.cycle_steps are the registry's, in the same order; and once the cycle is seen,
    the order is the cycle's (most recently used first), which least-recently-used eviction is not."""
    machine = Machine(used_gb=44, ram_gb=16)
    pps = sorted((preset_plan(cat, i, machine) for i in ("flux2-klein-4b-fp8", "ltx2-19b-distilled-fp8", "ace15-turbo")),
                 key=lambda pp: planner._mode_key(pp.mode))
    for pins, priority in ((set(), None), ({"ace15-turbo"}, None), (set(), {"video": 2}), ({"ace15-turbo"}, {"image": 0})):
        steps = planner.cycle_steps(pps, pins, machine, priority)
        reg = drive_registry(pps, machine, pins=pins, priority=priority, rounds=steps[-1].round + 1)
        assert len(steps) == len(reg)
        for st, (rnd, frm, to, evictions, load, evict, disk) in zip(steps, reg):
            assert (st.round, st.switch.from_preset, st.switch.to_preset) == (rnd, frm, to)
            assert st.switch.evictions == evictions, (pins, priority, rnd, to)
            assert (st.switch.load_bytes, st.switch.evict_bytes, st.switch.disk_bytes) == (load, evict, disk)
        assert any(st.cycling for st in steps) and any(st.switch.evictions for st in steps if st.cycling)


@pytest.mark.parametrize("budget,image,video,music,t2v,songs", [
    (40, "flux2-dev-q8_0", "wan22-i2v-a14b-q8_0", "ace15-xl-turbo", "wan21-t2v-14b-fp16", "heartmula-3b"),
    (19, "flux2-klein-4b", "wan22-i2v-a14b-q4_k_m", "ace15-xl-turbo", "wan21-t2v-14b-q4_k_m", "heartmula-3b"),
    (14, "flux2-klein-4b", "skyreels-i2v-q4_k_s", "ace15-xl-turbo", "wan21-t2v-1.3b-fp16", None),   # no 14B, HunyuanVideo or LTX-2 fits; staged
    (5, "flux2-klein-4b-fp8", "ltxv-2b-0.9.8-distilled-fp8", "stable-audio-open-1.0", None, None),
    (3, "flux1-schnell-q4_k_s", "ltxv-2b-0.9.8-distilled-fp8", "stable-audio-open-1.0", None, None),
])
def test_quality_across_all_families_follows_the_budget(cat, budget, image, video, music, t2v, songs):
    """The README's table of what the planner takes per GPU budget (quality, no streaming): the best family that
    fits, the plan's order as the prior (Wan2.2 > HunyuanVideo 1.5 > Wan2.1 > SkyReels > LTX-2 > LTX-Video; Flux.2 > Flux.1 >
    SD3.5 > SDXL; ACE-Step 1.5 > Stable Audio Open), the smaller files of a family as the budget shrinks. Text to video
    (Wan2.1 T2V) is ranked apart: the chains' video stage starts from their image, so it never takes it; so is
    HeartMuLa, for songs in many languages (its own node; model and codec on the GPU together, ~16 GB)."""
    m = Machine(gpu_gb=budget + 2, used_gb=0, reserve_gb=2, ram_gb=256)
    c = by_mode(choose_presets(cat, m, "quality", max_slowdown=1.0))
    assert (c["image"].preset, c["video"].preset, c["music"].preset) == (image, video, music)
    other = by_mode(planner.choose_others(cat, m, "quality", max_slowdown=1.0))
    assert (other["text_to_video"].preset, other["songs_in_many_languages"].preset) == (t2v, songs)
    if t2v is None:
        assert other["text_to_video"].reason == f"no text to video preset can run in a {budget:.1f} GB budget"
    if songs is None:
        assert f"= 16.0 GB on the GPU, the budget is {budget:.1f} GB" in other["songs_in_many_languages"].reason


def test_text_to_video_is_listed_apart_and_left_out_of_the_cycle(cat):
    m = Machine(gpu_gb=100, used_gb=0, reserve_gb=2, ram_gb=256)
    for target in ("quality", "speed"):
        p = plan(cat, machine=m, target=target)
        assert not any(pp.family == "wan21_t2v" for pp in p.presets)           # not in the modes' cycle
        assert [c.mode for c in p.others] == ["text_to_video", "songs_in_many_languages"]
        assert p.others[0].preset.startswith("wan21-t2v-") and p.others[1].preset == "heartmula-3b"
        text = format_plan(p).split("Also ranked, not a chain stage")[1]
        assert f"text to video: {p.others[0].preset}: " in text and "songs in many languages (HeartMuLa): heartmula-3b: fits" in text
        assert p.to_dict()["others"][0]["preset"] == p.others[0].preset
    assert plan(cat, machine=m, target="speed").others[0].preset == "wan21-t2v-1.3b-fp16"   # 1.3B: the fastest
    assert plan(cat, ["wan21-t2v-14b-q4_k_m"], machine=m).others == []        # asked presets: planned as given
