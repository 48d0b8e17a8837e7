"""The stages' "cache steps" switch (ComfyUI core's EasyCache through the LockN Step Cache node), in a real
ComfyUI server on the tiny models, through the shipped workflows as a user runs them (the client, --set):

- Image (Flux.2), Video (Wan2.2: each expert's sampler its own segment and its own cache state), LTX-2 (both
  passes of the turbo path): on at a threshold that skips, each sampler reports skipped > 0 out of its own
  steps (the client's progress, the residency report, the log), the output differs from the uncached one,
  nothing is read from disk again and the base stays in its tier; off again gives the uncached output, and
  off is the workflow without the node.
- What cannot work is refused before sampling, with the reason, and the server keeps serving: a threshold out
  of range (the client's range check; a linked value past the node's), the Wan2.2 turbo path (2 steps per
  expert: nothing to skip), a cache on ACE-Step 1.5 (its model does not call the hook) and the music stage's
  missing switch.

Outputs are compared by decoded content (lockn_testing.media: same = mean difference within 1 level of 255,
1e-5 per audio sample)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lockn_gen import client, step_cache
from lockn_gen.demo_sets import TINY
from lockn_testing import graphs
from lockn_testing.harness.server import PromptError
from lockn_testing.media import assert_different_media, assert_same_media, probe_media
from tests.test_workflows import server  # noqa: F401  (the session server, with the start image in input/)

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"
SEED = 5151                     # this module's own: no run comes whole from another test's cache
SKIPS = "1.0"                   # the highest threshold: on the tiny random models it skips what it can


def _loads(srv) -> dict:
    return {e["id"]: (e["loads_from_disk"], e["tier"]) for e in srv.get("/lockn/residency")["entries"]
            if e["role"] != "lora"}


class Run:
    """A shipped workflow run through the client with the tiny sets plus `sets`."""

    def __init__(self, srv, out, name, sets, source=None):
        start = srv.log_path.stat().st_size
        self.progress = []
        (res,) = client.run_workflow(str(source or WF / f"{name}.json"), TINY[name] + sets, [srv.url], out_dir=out,
                                     timeout=600, on_progress=lambda _, p: self.progress.append(p))
        self.res = res
        self.ok, self.error = res.ok, res.error
        self.files = [Path(f) for f in res.files]
        self.cache = res.result.step_cache if res.result else []
        with open(srv.log_path, "rb") as f:
            f.seek(start)
            self.log = f.read().decode(errors="replace")

    def skipped(self) -> dict:
        """sampler node -> (skipped, steps), from the lockn.step_cache events (what the progress line shows)."""
        return {d["node"]: (d["skipped"], d["steps"]) for d in self.cache}


def _without_cache_nodes(name: str, out: Path) -> Path:
    """The shipped API workflow with its LockN Step Cache nodes taken out (each sampler's model linked to what
    the node took): the workflow as it was before the switch existed."""
    api = json.loads((WF / "api" / f"{name}.json").read_text())
    caches = {k: n["inputs"]["model"] for k, n in api.items() if n["class_type"] == "LockNStepCache"}
    assert caches
    g = {k: copy.deepcopy(n) for k, n in api.items() if k not in caches}
    for n in g.values():
        for key, v in n["inputs"].items():
            if isinstance(v, list) and v and v[0] in caches:
                n["inputs"][key] = caches[v[0]]
    path = out / f"{name}.nocache.json"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(g))
    return path


def _check_on(on: Run, off: Run, loads_before: dict, srv, samplers: int):
    assert on.ok and off.ok, (on.error, off.error)
    per = on.skipped()
    assert len(per) == samplers, on.cache                                  # one report per sampler run
    assert all(0 <= s <= step_cache.most_skippable(n) for s, n in per.values()), per
    assert sum(s for s, _ in per.values()) > 0, per                       # the threshold skips
    assert [p for p in on.progress if p.kind == "cache"], "the client's progress saw no step cache line"
    assert "EasyCache - skipped" in on.log                                 # core's own line
    assert_different_media(on.files[0], off.files[0], "step cache on and off")
    after = _loads(srv)
    assert {k: v for k, v in after.items() if k in loads_before} == loads_before   # not read again, not moved
    runs = srv.get("/lockn/residency")["step_cache"]["runs"]
    assert {r["node"] for r in runs[-samplers:]} == set(per)


def test_image_step_cache_skips_and_off_is_the_uncached_image(server, tmp_path):
    sets = [f"Image seed.noise_seed={SEED}", "Image steps.steps=10"]     # inner titles: the API file has them too
    off = Run(server, tmp_path / "off", "flux2_text_to_image", sets)
    loads = _loads(server)
    on = Run(server, tmp_path / "on", "flux2_text_to_image", sets + ["Image.cache_steps=true", f"Image.cache_threshold={SKIPS}"])
    _check_on(on, off, loads, server, samplers=1)
    [(skipped, steps)] = on.skipped().values()
    assert steps == 10
    lower = Run(server, tmp_path / "lower", "flux2_text_to_image", sets + ["Image.cache_steps=true", "Image.cache_threshold=0.05"])
    assert lower.ok and [n for _, n in lower.skipped().values()] == [10]   # another threshold: another clone of
                                                                           # the same base (not read again: below)
    again = Run(server, tmp_path / "again", "flux2_text_to_image", sets)                 # off after on
    plain = Run(server, tmp_path / "plain", "flux2_text_to_image", sets,
                source=_without_cache_nodes("flux2_text_to_image", tmp_path))             # no node at all
    assert again.cache == [] and plain.cache == []
    assert_same_media(again.files[0], off.files[0], "off after on and off")
    assert_same_media(plain.files[0], off.files[0], "the workflow without the node and the switch off")
    now = _loads(server)
    assert all(now[k] == v for k, v in loads.items())                     # nothing read again by on or off


def test_video_step_cache_runs_per_expert_segment(server, tmp_path):
    """Wan2.2: the high-noise sampler runs steps 0-5 of 12, the low-noise one 6-11; each has its own cache state
    (a fresh one per sampling run: its first two steps always run) and reports its own segment's count."""
    sets = [f"Video.seed={SEED}", "Video steps.value=12", "Video high-noise steps.value=6"]
    off = Run(server, tmp_path / "off", "wan22_image_to_video", sets)
    loads = _loads(server)
    on = Run(server, tmp_path / "on", "wan22_image_to_video",
             sets + ["Video.cache_steps=true", f"Video.cache_threshold={SKIPS}"])
    _check_on(on, off, loads, server, samplers=2)
    assert sorted(n for _, n in on.skipped().values()) == [6, 6]           # each its own segment's steps
    again = Run(server, tmp_path / "again", "wan22_image_to_video", sets)
    assert_same_media(again.files[0], off.files[0], "off after on and off")
    # the turbo path leaves nothing to skip: refused before sampling, naming the reason; the server still runs
    turbo = Run(server, tmp_path / "turbo", "wan22_image_to_video", sets + ["Video.turbo=true", "Video.cache_steps=true"])
    assert not turbo.ok and "2 steps on each expert" in turbo.error and "LockNStepCache" in turbo.error, turbo.error
    assert not turbo.files and not turbo.cache


def test_ltx2_step_cache_on_both_passes_of_the_turbo_path(server, tmp_path):
    sets = ["Video.width=128", "Video.height=128", f"Video.seed={SEED}", "Video.turbo=true",
            "Video sigmas.sigmas=1.0, 0.97, 0.94, 0.9, 0.85, 0.75, 0.6, 0.4, 0.2, 0.0",
            "Video turbo refine sigmas.sigmas=0.9, 0.7, 0.5, 0.3, 0.1, 0.0"]
    off = Run(server, tmp_path / "off", "ltx2_image_to_video", sets)
    loads = _loads(server)
    on = Run(server, tmp_path / "on", "ltx2_image_to_video", sets + ["Video.cache_steps=true", f"Video.cache_threshold={SKIPS}"])
    _check_on(on, off, loads, server, samplers=2)
    assert sorted(n for _, n in on.skipped().values()) == [5, 9]           # the refine pass, the first pass
    assert all(d["note"] and "turbo" in d["note"] for d in on.cache)      # the turbo path says what it leaves
    v = probe_media(on.files[0])
    assert v["video"]["frames"] == 25 and v["n_audio_streams"] == 1 and v["audio"]["finite"]


def test_what_cannot_work_is_refused_before_sampling(server, tmp_path):
    # a threshold out of range: the client refuses before queueing, with the range (the face carries the node's)
    with pytest.raises(Exception) as exc:
        Run(server, tmp_path / "range", "flux2_text_to_image", ["Image.cache_steps=true", "Image.cache_threshold=5"])
    assert "5" in str(exc.value) and str(step_cache.THRESHOLD_MAX) in str(exc.value), exc.value
    # the music stage has no switch, and says why
    with pytest.raises(Exception) as exc:
        Run(server, tmp_path / "music", "ace15_text_to_music", ["Music.cache_steps=true"])
    assert "does not call ComfyUI's diffusion-model wrapper" in str(exc.value), exc.value
    # straight to the API: a cache on ACE-Step 1.5, and a linked threshold past the range (links skip ComfyUI's check)
    ace = graphs.with_step_cache(graphs.ace15_t2m(loader="lockn", prefix="cache/ace"))
    with pytest.raises(PromptError) as exc:
        server.run(ace)
    assert exc.value.detail["node_type"] == "LockNStepCache" and "ACE-Step 1.5" in exc.value.detail["exception_message"]
    flux = graphs.with_step_cache(graphs.flux2_t2i(loader="lockn", width=32, height=32, steps=2, prefix="cache/range"),
                                  threshold=5.0, linked=True)
    with pytest.raises(PromptError) as exc:
        server.run(flux)
    assert "reuse_threshold 5 is out of range" in exc.value.detail["exception_message"]
    assert server.get("/system_stats")                                    # still serving

