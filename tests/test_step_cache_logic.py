"""The step cache's plain logic (lockn_gen.step_cache) and the residency policy's GPU-only reservation, without
ComfyUI. The server tests (test_step_cache.py, test_residency_server.py) run the same through real ComfyUI."""
from __future__ import annotations

import pytest

from lockn_gen import residency as P
from lockn_gen import step_cache as SC


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, 3.0])
def test_a_threshold_out_of_range_is_refused_with_the_range(threshold):
    with pytest.raises(SC.StepCacheProblem) as e:
        SC.check("flux2", SC.Settings(threshold=threshold))
    assert f"{threshold:g}" in str(e.value) and "0.01 to 1" in str(e.value) and "turn the step cache off" in str(e.value)


def test_start_must_come_before_end():
    with pytest.raises(SC.StepCacheProblem, match="start_percent 0.9 and end_percent 0.5"):
        SC.check("wan22", SC.Settings(start_percent=0.9, end_percent=0.5))


def test_ace_step_15_has_no_step_cache_and_says_why():
    with pytest.raises(SC.StepCacheProblem) as e:
        SC.check("ace15", SC.Settings())
    assert "ace_step15.py" in str(e.value) and "does not call" in str(e.value)
    assert "ACE-Step 1.5" in SC.no_switch_here("cache_steps") and SC.no_switch_here("steps") == ""


def test_turbo_paths():
    with pytest.raises(SC.StepCacheProblem, match="2 steps on each expert"):
        SC.check("wan22", SC.Settings(), turbo=True)                     # nothing left to skip: refused
    for family in ("flux2", "ltx2"):                                     # a few steps left: runs, with a note
        note = SC.check(family, SC.Settings(), turbo=True)
        assert note and "turbo" in note
    assert SC.check("flux2", SC.Settings()) is None


def test_what_a_run_can_skip_and_what_it_holds():
    assert [SC.most_skippable(n) for n in (1, 2, 3, 10)] == [0, 0, 1, 8]
    # Wan2.2 A14B at 640 x 640 x 81 frames: latent 16 x 21 x 80 x 80, cfg 3.5 (two conditions), float32
    numel = 16 * 21 * 80 * 80
    assert SC.cache_bytes(numel, 2) == numel * 4 * 2 + 2 * numel * 4 // 64
    assert SC.cache_bytes(numel, 0) == SC.cache_bytes(numel, 1)
    run = SC.Run("p", "57", "Video seed", "wan22", 0.2, steps=10, skipped=4)
    assert run.speedup == pytest.approx(10 / 6) and "skipped 4/10 steps" in run.line()
    assert SC.Run("p", "1", None, None, 0.2, steps=2, skipped=2).speedup == 1.0


def test_the_model_classes_map_to_families():
    assert SC.family_of("Flux2") == "flux2" and SC.family_of("WAN21") == "wan22" and SC.family_of("LTXAV") == "ltx2"
    assert SC.family_of("ACEStep15") == "ace15" and SC.family_of("SD3") is None and SC.family_of(None) is None


GB = P.GB


def _entry(i, tier, size, pinned=False):
    return P.Entry(id=i, name=f"{i}.gguf", family="wan22", role="diffusion_model", mode="video", bytes=size, tier=tier,
                   pinned=pinned)


def test_gpu_only_memory_offloads_others_and_never_counts_against_ram():
    es = [_entry("expert", "gpu", 10 * GB), _entry("other", "gpu", 10 * GB)]
    b = P.Budgets(gpu_bytes=21 * GB, ram_bytes=10 * GB)
    acts = P.plan(es, b, 2 * GB, protect={"expert"}, incoming_gpu_only=True)
    assert [(a.entry_id, a.kind) for a in acts] == [("other", "offload")]    # room on the GPU ...
    assert P.refusal(es, b, acts, 2 * GB, "the cache", protect={"expert"}, incoming_gpu_only=True) is None
    # ... while a model of that size arrives in RAM first and needs room there: the policy tells them apart
    parked = [*es, _entry("parked", "ram", 4 * GB)]
    roomy_gpu = P.Budgets(gpu_bytes=100 * GB, ram_bytes=5 * GB)
    assert [(a.entry_id, a.kind) for a in P.plan(parked, roomy_gpu, 2 * GB, protect={"expert"})] == [("parked", "drop")]
    assert P.plan(parked, roomy_gpu, 2 * GB, protect={"expert"}, incoming_gpu_only=True) == []


def test_gpu_only_memory_that_does_not_fit_is_refused_with_the_figures():
    es = [_entry("expert", "gpu", 10 * GB), _entry("pinned", "gpu", 10 * GB, pinned=True)]
    b = P.Budgets(gpu_bytes=21 * GB, ram_bytes=500 * GB)
    acts = P.plan(es, b, 2 * GB, protect={"expert"}, incoming_gpu_only=True)
    msg = P.refusal(es, b, acts, 2 * GB, "the step cache of Video seed", protect={"expert"}, incoming_gpu_only=True)
    for words in ("the step cache of Video seed (2.00 GB)", "GPU budget of 21.00 GB", "20.00 GB stay on the GPU",
                  "pinned: pinned.gguf", "used by the running prompt: expert.gguf", "Nothing was sampled",
                  "raise gpu_budget_gb", "turn 'cache steps' off", "unpin pinned.gguf"):
        assert words in msg, (words, msg)
