"""The plan's other models (issue 24) in a real ComfyUI server: each family's LockN loader loads its tiny
real-architecture files and its shipped workflow runs to an output of the right kind and shape; residency holds
for it as for the first four (loaded once, kept, evicted, reloaded, /free); a missing or broken file says which
and how to get it; the chains run with each alternative chosen on its stage, and nothing of the others runs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from lockn_gen import catalog as catalog_mod
from lockn_gen import chains, client
from lockn_gen.demo_sets import TINY
from lockn_gen.family_workflows import STAGE_CHOICES
from lockn_testing.harness.server import PromptError
from lockn_testing.media import probe_image, probe_media

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"
# family -> (its workflow, the output kind, the loader's preset there)
FAMILIES = {
    "flux1": ("flux1_text_to_image", "image"),
    "sd35": ("sd35_text_to_image", "image"),
    "sdxl": ("sdxl_text_to_image", "image"),
    "ltxv": ("ltxv_image_to_video", "video"),
    "wan21": ("wan21_image_to_video", "video"),
    "hunyuan15": ("hunyuan15_image_to_video", "video"),
    "skyreels": ("skyreels_image_to_video", "video"),
    "wan21_t2v": ("wan21_text_to_video", "video"),
    "stable_audio": ("stable_audio_text_to_music", "audio"),
}


def _sets(name):
    return dict(x.split("=", 1) for x in TINY[name])


def _run(server, tmp_path, name, extra=()):
    (res,) = client.run_workflow(str(WF / "api" / f"{name}.json"), [*TINY[name], *extra], [server.url],
                                 out_dir=tmp_path, timeout=600)
    assert res.ok, f"{res.error}\n{server.log_tail(3000)}"
    return res


def _report(server) -> dict:
    deadline = time.time() + 20
    while True:
        rep = server.get("/lockn/residency")
        if not rep["prompt_running"] and not rep["pending_evictions"] or time.time() > deadline:
            return rep


def _entries(server, family):
    return {e["name"]: e for e in _report(server)["entries"] if e["family"] == family}


def hunyuan15_frames(length: int) -> int:
    """HunyuanVideo 1.5's VAE in ComfyUI (vae_refiner.Decoder, refiner_vae False) doubles every latent frame at each
    temporal upsampling, the first too: `length` frames are (length - 1) // 4 + 1 latent frames, decoded to 4 each."""
    return 4 * ((length - 1) // 4 + 1)


def _check_output(kind, files, sets, family=""):
    if kind == "image":
        (png,) = files
        info = probe_image(png)
        assert (info["width"], info["height"]) == (64, 64) and info["std"] > 0
    elif kind == "video":
        (mp4,) = files
        frames = int(next(v for k, v in sets.items() if k.endswith("length (frames).value")))
        frames = hunyuan15_frames(frames) if family == "hunyuan15" else frames
        info = probe_media(mp4)
        assert info["n_video_streams"] == 1 and info["video"]["frames"] == frames and info["video"]["std"] > 0
        assert (info["video"]["width"], info["video"]["height"]) == (64, 64)
    else:
        (mp3,) = files
        a = probe_media(mp3)["audio"]
        assert a["sample_rate"] == 44100 and a["duration"] == pytest.approx(2.0, abs=0.1) and a["finite"] and a["peak"] > 0


SEEDS = {"flux1": "Flux.1 seed and steps.seed", "sd35": "SD3.5 seed and steps.seed", "sdxl": "SDXL seed and steps.seed",
         "ltxv": "LTX-Video seed.noise_seed", "wan21": "Wan2.1 seed and steps.seed",
         "hunyuan15": "HunyuanVideo 1.5 seed.noise_seed", "skyreels": "SkyReels seed and steps.seed",
         "wan21_t2v": "Wan2.1 T2V seed and steps.seed",
         "stable_audio": "Stable Audio seed and steps.seed"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_loads_runs_and_stays_resident(comfy_server, tmp_path, family):
    name, kind = FAMILIES[family]
    fam = catalog_mod.builtin().families[family]
    res = _run(comfy_server, tmp_path / "a", name)
    _check_output(kind, [Path(f) for f in res.files], _sets(name), family)
    prompt = comfy_server.get(f"/history/{res.prompt_id}")[res.prompt_id]["prompt"][2]
    assert any(prompt[n]["class_type"] == fam.node for n in res.result.executed)          # its LockN loader ran
    first = _entries(comfy_server, family)
    assert first and all(e["loads_from_disk"] >= 1 and e["tier"] != "dropped" for e in first.values()), first
    # evicted, its models are dropped; the next run's loader runs again (not ComfyUI's cache) and reads them once more
    status, body = comfy_server.post("/lockn/residency/evict", {"family": family})
    assert status == 200 and len(body["evicted"]) == len(first)
    assert {e["tier"] for e in _entries(comfy_server, family).values()} == {"dropped"}
    _run(comfy_server, tmp_path / "b", name)
    again = _entries(comfy_server, family)
    assert {n: e["loads_from_disk"] for n, e in again.items()} == {n: e["loads_from_disk"] + 1 for n, e in first.items()}
    # /free (unload): everything leaves the compute device and stays in RAM; the next run (another seed) reads nothing
    status, _ = comfy_server.post("/free", {"unload_models": True})
    assert status == 200
    deadline = time.time() + 20
    while any(e["tier"] == "gpu" for e in _entries(comfy_server, family).values()) and time.time() < deadline:
        time.sleep(0.1)
    assert all(e["tier"] != "gpu" for e in _entries(comfy_server, family).values())
    res = _run(comfy_server, tmp_path / "c", name, [f"{SEEDS[family]}=7"])
    _check_output(kind, [Path(f) for f in res.files], _sets(name), family)
    assert {n: e["loads_from_disk"] for n, e in _entries(comfy_server, family).items()} == \
        {n: e["loads_from_disk"] for n, e in again.items()}


# ---- the chains with another model on a stage ---------------------------------------------------------------
@pytest.mark.parametrize("chain,choices", [
    ("chain_quality", {"Image": "flux1", "Video": "hunyuan15", "Music": "stable_audio"}),
    ("chain_fast", {"Image": "sd35", "Video": "ltxv"}),
])
def test_chain_runs_the_chosen_models_and_nothing_of_the_others(comfy_server, tmp_path, chain, choices):
    for stage, fam in choices.items():
        assert fam in {f for k, fams in STAGE_CHOICES.items() if k.endswith(stage.lower()) for f in fams}
    sets = TINY[chain] + [f"{stage} model.model={fam}" for stage, fam in choices.items()]
    (res,) = client.run_workflow(str(WF / f"{chain}.json"), sets, [comfy_server.url], out_dir=tmp_path, timeout=600)
    assert res.ok, f"{res.error}\n{comfy_server.log_tail(3000)}"
    prompt = comfy_server.get(f"/history/{res.prompt_id}")[res.prompt_id]["prompt"][2]
    ran = {prompt[n]["class_type"] for n in res.result.executed}
    used = ran | {prompt[n]["class_type"] for n in res.result.cached}     # (a loader an earlier test ran is cached)
    cat = catalog_mod.builtin()
    for fam in choices.values():
        assert cat.families[fam].node in used
    # the stages' own models did not run: their loaders and the nodes that sample with them
    if "Image" in choices:
        assert not {"LockNFlux2Loader", "EmptyFlux2LatentImage"} & ran
    if chain == "chain_quality":
        assert not {"LockNWan22Loader", "WanImageToVideo"} & ran
    else:                              # LTX-2's loader still feeds the Brief; its video sampling did not run
        assert not {"LTXVConcatAVLatent", "LTXVEmptyLatentAudio"} & ran
    if "Music" in choices:
        assert not {"LockNAceStep15Loader", "TextEncodeAceStepAudio1.5"} & ran
    s = _sets(chain)
    frames = int(s["Length (frames).value"])
    if choices["Video"] == "hunyuan15":
        frames = hunyuan15_frames(frames)
    fps = 16.0 if chain == "chain_quality" else 25.0
    info = probe_media(res.files[0])
    assert info["n_video_streams"] == 1 and info["video"]["frames"] == frames and info["video"]["fps"] == pytest.approx(fps)
    assert info["n_audio_streams"] == 1 and info["audio"]["duration"] == pytest.approx(frames / fps, abs=1 / fps)
    assert info["audio"]["finite"] and info["audio"]["peak"] > 0


def test_a_model_the_stage_has_no_branch_for_is_named(comfy_server, tmp_path):
    sets = TINY["chain_quality"] + ["Video model.model=ltxv"]
    (res,) = client.run_workflow(str(WF / "chain_quality.json"), sets, [comfy_server.url], out_dir=tmp_path, timeout=600)
    assert not res.ok
    assert "no LTX-Video branch" in res.error and "wan22" in res.error and "hunyuan15" in res.error


# ---- missing and broken files ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_missing_and_broken_files_are_named_with_the_pull_command(comfy_server, family):
    """The session server's extra catalog (tests/conftest.py) gives each family a preset whose main file was never
    downloaded and one whose main file is an interrupted download: both stop before anything is loaded, naming
    the file and the command that (re)downloads it."""
    name, _ = FAMILIES[family]
    prompt = chains.prompt(name)
    loader = next(n for n in prompt.values() if n["class_type"] == catalog_mod.builtin().families[family].node)
    for what, words in (("missing", ("not-downloaded", "is missing 1 of its", "looked in")),
                        ("broken", ("interrupted", "Download it again"))):
        loader["inputs"]["preset"] = f"{what}-{family}"
        with pytest.raises(PromptError) as exc:
            comfy_server.run(prompt)
        msg = exc.value.detail["exception_message"]
        assert all(w in msg for w in words), msg
        pulled = msg.split("models pull", 1)[1]
        assert words[0] in pulled.split("\n")[0], msg           # the command names the file


# ---- the planner picks the stages' models from the budget --------------------------------------------------------
@pytest.mark.parametrize("budget,models,others", [
    (40, ("flux2", "wan22", "ace15"), "text to video: wan21-t2v-14b-fp16 (highest quality that fits"),
    (3, ("flux1", "ltxv", "ace15"), "text to video: (none) (no text to video preset can run in a 3.0 GB budget)")])
def test_the_preset_planner_node_picks_the_stages_models_from_the_budget(comfy_server, budget, models, others):
    """Preset Planner (LockN) in a real server: its image/video/music_model outputs (for the chains' model nodes)
    follow the GPU budget as lockn_gen.planner.stage_models does (quality, streaming up to x2)."""
    prompt = {"1": {"class_type": "LockNPresetPlanner", "inputs": {"target": "quality", "gpu_gb": budget + 2.0,
                                                                   "used_by_others_gb": 0.0, "reserve_gb": 2.0,
                                                                   "bandwidth_gbps": 25.0}}}
    for i, out in enumerate((6, 7, 8)):
        prompt[str(10 + i)] = {"class_type": "PreviewAny", "inputs": {"source": ["1", out]}}
    res = comfy_server.run(prompt)
    shown = tuple(res.outputs[str(10 + i)]["text"][0] for i in range(3))
    assert shown == models
    plan = res.outputs["1"]["text"][0]
    assert f"video: {models[1]}" in plan
    also = plan.split("also ranked, not a chain stage: ")[1]        # text to video and HeartMuLa, each with its reason
    assert also.startswith(others) and "songs in many languages (HeartMuLa): " in also
