"""The turbo switch on the stage faces (Image: Flux.2, Video: Wan2.2, Video: LTX-2), as the official
templates build it: a PrimitiveBoolean driving lazy ComfySwitchNodes between the base path and the
turbo path (a LoRA, fewer steps; for LTX-2 the second stage with the x2 spatial upscaler). In a real
ComfyUI server on the tiny models, each stage's workflow runs with turbo off and on: both finish, the
output changes, the turbo path really ran (its LoRA node and its switched steps, from the websocket)
while turbo off never touched it, and ComfyUI logged no "lora key not loaded"."""
from __future__ import annotations

from pathlib import Path

import pytest

from lockn_gen import chains, client
from lockn_gen.demo_sets import TINY
from lockn_testing.media import assert_different_media, probe_image, probe_media
from lockn_testing.tiny import loras as tiny_loras
from tests.test_workflows import server  # noqa: F401  (the session server, with the start image in input/)

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"


class Run:
    """One run of a shipped UI workflow with the tiny sets plus `sets`: its files, the titles of the
    nodes that executed, the sampler steps each sampler reported (title -> [max, ...]) and the server's
    log of the run."""

    def __init__(self, srv, tmp_path, name, sets):
        start = srv.log_path.stat().st_size
        steps = []
        (res,) = client.run_workflow(str(WF / f"{name}.json"), TINY[name] + sets, [srv.url], out_dir=tmp_path,
                                     timeout=600, on_progress=lambda _, p: steps.append(p))
        assert res.ok, res.error
        prompt = srv.get(f"/history/{res.prompt_id}")[res.prompt_id]["prompt"][2]
        title = lambda nid: (prompt[nid].get("_meta") or {}).get("title") or prompt[nid]["class_type"]  # noqa: E731
        self.files = [Path(f) for f in res.files]
        self.executed = [title(n) for n in res.result.executed]
        self.classes = [prompt[n]["class_type"] for n in res.result.executed]
        self.samplers = {}
        for p in steps:
            if p.kind == "step" and p.node in prompt and prompt[p.node]["class_type"].startswith(("SamplerCustom", "KSampler")):
                self.samplers.setdefault(p.node, p.max)
        with open(srv.log_path, "rb") as f:
            f.seek(start)
            self.log = f.read().decode(errors="replace")

    def turbo_path(self) -> list[str]:
        """What ran of the turbo path: the nodes titled for turbo, less the switch and its boolean."""
        return [t for t, c in zip(self.executed, self.classes)
                if "turbo" in t.lower() and c not in ("ComfySwitchNode", "PrimitiveBoolean")]


def _no_lora_misses(*runs):
    for r in runs:
        assert "lora key not loaded" not in r.log and "NOT LOADED" not in r.log and "ERROR lora" not in r.log, r.log[-3000:]


# a seed of this module's own: a run never comes whole from the cache of another test's run
SEED = 4242


def test_flux2_turbo_applies_the_turbo_lora_and_its_steps(server, tmp_path):
    seed = [f"Image.seed={SEED}"]
    off = Run(server, tmp_path / "off", "flux2_text_to_image", seed)
    on = Run(server, tmp_path / "on", "flux2_text_to_image", seed + ["Image.turbo=true", "Image turbo steps.steps=2"])
    assert off.turbo_path() == [] and "LockNFlux2LoRA" not in off.classes          # lazy: the LoRA is never read
    assert "LockNFlux2LoRA" in on.classes and "Image turbo steps" in on.executed
    assert list(off.samplers.values()) == [3] and list(on.samplers.values()) == [2]  # the switched steps ran
    for r in (off, on):
        info = probe_image(r.files[0])
        assert (info["width"], info["height"]) == (128, 128) and info["std"] > 0
    assert_different_media(on.files[0], off.files[0], "turbo on and off")
    _no_lora_misses(off, on)


def test_wan22_turbo_applies_the_lightx2v_pair_steps_split_and_cfg(server, tmp_path):
    seed = [f"Video.seed={SEED}"]
    off = Run(server, tmp_path / "off", "wan22_image_to_video", seed)
    # the template's turbo is 4 steps, 2 of them high-noise, cfg 1; the tiny base runs 4 / 2 already, so
    # turbo runs 3 / 1 here to show the steps and the split come through their switches
    on = Run(server, tmp_path / "on", "wan22_image_to_video",
             seed + ["Video.turbo=true", "Video turbo steps.value=3", "Video turbo high-noise steps.value=1"])
    assert off.turbo_path() == [] and "LockNWan22LoRA" not in off.classes
    assert "LockNWan22LoRA" in on.classes
    assert {"Video turbo steps", "Video turbo high-noise steps", "Video turbo CFG"} <= set(on.executed)
    assert sorted(off.samplers.values()) == [2, 2]            # 4 steps: 2 high-noise, 2 low-noise
    assert sorted(on.samplers.values()) == [1, 2]             # 3 steps: 1 high-noise, 2 low-noise
    for r in (off, on):
        v = probe_media(r.files[0])["video"]
        assert v["frames"] == 17 and (v["width"], v["height"]) == (96, 96) and v["finite"]
    assert_different_media(on.files[0], off.files[0], "turbo on and off")
    _no_lora_misses(off, on)


UPSCALER = chains.ltx_recipe(chains.LTX_PRESET)["upscaler"]     # LTX-2.3's x2 upscaler 1.1
LTX_SIZE = ["Video.width=128", "Video.height=128"]    # turbo: the first stage at half size, multiples of 64


def test_ltx2_turbo_runs_the_second_stage_with_the_x2_upscaler(server, tmp_path):
    sets = LTX_SIZE + [f"Video.seed={SEED}"]
    off = Run(server, tmp_path / "off", "ltx2_image_to_video", sets)
    on = Run(server, tmp_path / "on", "ltx2_image_to_video", sets + ["Video.turbo=true"])
    # the dev presets' turbo (the LTX-2.3 template's path): the distilled LoRA on the model of both stages
    lora = Run(server, tmp_path / "lora", "ltx2_image_to_video",
               sets + ["Video.turbo=true", "Video.preset=ltx23-22b-dev-fp8",
                       f"Video.turbo_lora={tiny_loras.LTX23_DISTILLED}"])
    assert off.turbo_path() == []
    assert not {"LockNLTX2LoRA", "LockNLatentUpscaleModelLoader", "LTXVLatentUpsampler"} & set(off.classes)
    assert list(off.samplers.values()) == [3]                 # one stage, the tiny 3 sigmas
    assert {"LockNLTX2LoRA", "LockNLatentUpscaleModelLoader", "LTXVLatentUpsampler", "LTXVCropGuides"} <= set(on.classes)
    assert list(on.samplers.values()) == [3, 3]               # the first stage, then the 3 refine sigmas
    assert "LockNLTX2LoRA" in lora.classes and len(lora.samplers) == 2
    for r in (off, on, lora):
        info = probe_media(r.files[0])
        v = info["video"]
        assert v["frames"] == 25 and (v["width"], v["height"]) == (128, 128) and v["finite"]
        assert info["n_audio_streams"] == 1 and info["audio"]["finite"]
    for a, b, what in ((off, on, "the second stage"), (on, lora, "the LoRA"), (off, lora, "the turbo path")):
        assert_different_media(a.files[0], b.files[0], f"{what} changes the clip")
    _no_lora_misses(off, on, lora)


def test_ltx2_workflows_queue_without_the_upscaler_and_turbo_says_how_to_get_it(tiny_models, start_image, tmp_path):
    """ComfyUI validates the nodes behind a switch that is off too, and its own Load Latent Upscale Model
    lists only installed files: with it, a user who has not downloaded the x2 upscaler could not run the LTX-2
    workflows at all. LockN's loader lists the catalog's upscaler: turbo off runs, turbo on stops at that
    node, naming the file, where it looked and the download command."""
    from lockn_testing.harness.server import serving
    root = tmp_path / "models"
    root.mkdir()
    for d in Path(tiny_models).iterdir():
        if d.name != "latent_upscale_models":
            (root / d.name).symlink_to(d)
    (root / "latent_upscale_models").mkdir()
    with serving(root, {"lockn_start.png": start_image}) as srv:
        info = srv.get("/object_info")
        assert UPSCALER not in info["LatentUpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"]
        for name in ("ltx2_image_to_video", "chain_fast"):
            (res,) = client.run_workflow(str(WF / f"{name}.json"), TINY[name], [srv.url], out_dir=tmp_path / name,
                                         timeout=600)
            assert res.ok and res.files, (name, res.error)
        (res,) = client.run_workflow(str(WF / "ltx2_image_to_video.json"),
                                     TINY["ltx2_image_to_video"] + LTX_SIZE + ["Video.turbo=true"], [srv.url],
                                     out_dir=tmp_path / "turbo", timeout=600)
        assert not res.ok and not res.files
        for words in (UPSCALER, "not found in", str(srv.base / "models" / "latent_upscale_models"), "models pull",
                      f"--file {UPSCALER}"):
            assert words in res.error, (words, res.error)


def test_turbo_is_off_in_the_shipped_files_and_on_the_faces_of_the_chains():
    """Off by default, as in the templates; on a chain's UI file "Image.turbo" and "Video.turbo" reach the
    switches, and the prompt with both on validates."""
    import json

    from lockn_gen import chains
    from lockn_gen import workflow as W
    info = chains.pinned_object_info()
    for name in ("flux2_text_to_image", "wan22_image_to_video", "ltx2_image_to_video", "chain_quality", "chain_fast"):
        api = json.loads((WF / "api" / f"{name}.json").read_text())
        turbos = {k: n for k, n in api.items() if n["class_type"] == "PrimitiveBoolean"
                  and "turbo" in n["_meta"]["title"].lower()}
        assert turbos and all(n["inputs"]["value"] is False for n in turbos.values()), name
        if name.startswith("chain"):
            wf = W.to_api(json.loads((WF / f"{name}.json").read_text()), info)
            W.apply_sets(wf, TINY[name] + ["Image.turbo=true", "Video.turbo=true"], info)
            on = [n for k, n in wf.prompt.items() if k.rsplit(":", 1)[-1] in turbos]
            assert len(on) == 2 and all(n["inputs"]["value"] is True for n in on), name
            assert W.validate(wf.prompt, info) == []
