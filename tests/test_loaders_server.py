"""The four family loader nodes in a real ComfyUI server: every preset whose tiny files exist loads and
its graph runs to completion; bad input gets a clear error and the server keeps serving."""
from __future__ import annotations

import json
import shutil
import urllib.parse

import pytest

from lockn_testing import graphs
from lockn_testing.harness.server import ComfyServer, PromptError
from lockn_testing.media import probe_image, probe_media

pytestmark = pytest.mark.comfy


@pytest.mark.parametrize("preset", ["flux2-dev-q4_k_m", "flux2-dev-q5_k_m", "flux2-dev-q8_0", "flux2-dev-fp8mixed", "flux2-klein-4b"])
def test_flux2_loader(comfy_server, preset):
    res = comfy_server.run(graphs.flux2_t2i(loader="lockn", preset=preset, width=48, height=32, steps=2,
                                            prefix=f"l/{preset}"))
    assert "12" in res.executed
    info = probe_image(comfy_server.output_files(res, "9")[0])
    assert (info["width"], info["height"]) == (48, 32) and info["std"] > 0


@pytest.mark.parametrize("preset", ["wan22-i2v-a14b-q4_k_m", "wan22-i2v-a14b-q8_0", "wan22-i2v-a14b-fp8"])
def test_wan22_loader_two_experts(comfy_server, preset):
    res = comfy_server.run(graphs.wan22_i2v(loader="lockn", preset=preset, length=5, steps=2, split=1,
                                            prefix=f"l/{preset}"))     # a step on each expert
    assert {"95", "86", "85"} <= set(res.executed)
    v = probe_media(comfy_server.output_files(res, "108")[0])["video"]
    assert v["frames"] == 5 and v["fps"] == pytest.approx(16.0)


def test_wan22_single_model_preset_matches_the_core_loaders(comfy_server):
    # TI2V 5B: one model (given on both MODEL outputs) and the Wan 2.2 VAE; the same video as the
    # official template with ComfyUI's own loaders
    videos = {}
    for loader in ("core", "lockn"):
        res = comfy_server.run(graphs.wan22_ti2v(loader=loader, length=5, prefix=f"l/ti2v-{loader}"))
        videos[loader] = probe_media(comfy_server.output_files(res, "58")[0])["video"]
    assert videos["lockn"]["frames"] == 5 and videos["lockn"]["fps"] == pytest.approx(24.0)
    assert videos["lockn"]["std"] > 0 and videos["lockn"] == videos["core"]


@pytest.mark.parametrize("preset", ["ltx2-19b-distilled-fp8", "ltx2-19b-dev-q4_k_m",
                                    "ltx23-22b-distilled-fp8", "ltx23-22b-dev-fp8"])     # LTX-2.3: tests/test_ltx23.py
def test_ltx2_loader_video_and_audio(comfy_server, preset):
    res = comfy_server.run(graphs.ltx2_av(loader="lockn", preset=preset, length=9, prefix=f"l/{preset}"))
    assert "1" in res.executed
    info = probe_media(comfy_server.output_files(res, "75")[0])
    assert info["video"]["frames"] == 9 and info["n_audio_streams"] == 1 and info["audio"]["finite"]


@pytest.mark.parametrize("preset", ["ace15-turbo", "ace15-turbo-q8_0"])
def test_ace15_loader_including_gguf(comfy_server, preset):
    # ACE-Step 1.5 GGUF: ComfyUI-GGUF does not list the architecture; the loader handles it
    res = comfy_server.run(graphs.ace15_t2m(loader="lockn", preset=preset, seconds=1.0, steps=2, top_p=1.0,
                                            prefix=f"l/{preset}"))
    a = probe_media(comfy_server.output_files(res, "107")[0])["audio"]
    assert a["sample_rate"] == 48000 and a["duration"] == pytest.approx(1.0, abs=0.15)


# ---- errors ---------------------------------------------------------------------------------------------
def _error(server, prompt) -> dict:
    with pytest.raises(PromptError) as exc:
        server.run(prompt)
    return exc.value.detail


def test_missing_files_listed_in_one_error_with_download_command(comfy_server):
    # a user's preset (tests/fixtures/user_catalog.toml): its klein 9B model and Qwen3-8B text encoder
    # are not in the tiny set, its VAE is
    err = _error(comfy_server, graphs.flux2_t2i(loader="lockn", preset="my-flux2-klein-9b"))
    msg = err["exception_message"]
    assert "missing 2 of its 3 files" in msg
    assert "flux-2-klein-9b-fp8.safetensors" in msg and "qwen_3_8b.safetensors" in msg
    assert "flux2-vae.safetensors" not in msg.split("Download")[0].split("missing")[1]   # the present one is not listed
    assert "9.43 GB" in msg and "16.40 GB" in msg                                          # sizes
    assert str(comfy_server.base / "models" / "diffusion_models") in msg                   # where it looked
    assert "lockn-gen models pull" in msg and "--file flux-2-klein-9b-fp8.safetensors" in msg
    assert "--file qwen_3_8b.safetensors" in msg and "user_catalog.toml" in msg          # the user's catalog too
    assert err["node_type"] == "LockNFlux2Loader"


def test_preflight_route_before_queueing(comfy_server):
    q = urllib.parse.urlencode([("preset", "my-flux2-klein-9b"), ("preset", "ace15-turbo")])
    status, body = comfy_server.request("GET", f"/lockn/preflight?{q}")
    assert status == 200 and body["ok"] is False
    mine, ace = body["presets"]
    assert sorted(mine["missing"]) == ["flux-2-klein-9b-fp8.safetensors", "qwen_3_8b.safetensors"]
    assert "models pull" in mine["download_command"]
    assert ace["ok"] is True and ace["missing"] == []
    # a whole workflow (API format), loader nodes of ours and of ComfyUI
    wf = graphs.flux2_t2i(loader="lockn", preset="my-flux2-klein-9b")
    wf["99"] = {"class_type": "VAELoader", "inputs": {"vae_name": "nowhere_vae.safetensors"}}
    status, body = comfy_server.request("POST", "/lockn/preflight", wf)
    assert status == 200 and body["ok"] is False
    assert set(body["missing"]) == {"flux-2-klein-9b-fp8.safetensors", "qwen_3_8b.safetensors", "nowhere_vae.safetensors"}
    status, body = comfy_server.request("GET", "/lockn/preflight?preset=no-such-preset")
    assert status == 400 and "unknown preset" in body["error"]


def test_wrong_family_is_named_from_the_header(comfy_server):
    # a Flux.2 diffusion model given to the Wan2.2 loader as its high-noise expert
    err = _error(comfy_server, graphs.wan22_i2v(loader="lockn", overrides={"high_noise": "flux2_dev_fp8mixed.safetensors"}))
    msg = err["exception_message"]
    assert msg.startswith("flux2_dev_fp8mixed.safetensors is a Flux.2 diffusion model (found from its safetensors header)")
    assert "high noise of a Wan2.2 model" in msg


def test_vae_given_as_diffusion_model_is_refused(comfy_server):
    err = _error(comfy_server, graphs.flux2_t2i(loader="lockn", overrides={"diffusion_model": "flux2-vae-in-the-wrong-folder.safetensors"}))
    assert "is a Flux.2 VAE" in err["exception_message"] and "diffusion model of a Flux.2 model" in err["exception_message"]
    err = _error(comfy_server, graphs.flux2_t2i(loader="lockn", overrides={"vae": "flux2-dit-as-vae.safetensors"}))
    assert "is a Flux.2 diffusion model" in err["exception_message"] and "vae of a Flux.2 model" in err["exception_message"]


@pytest.mark.parametrize("name,expect", [
    ("flux2-dev-Q8_0-interrupted.gguf", "is truncated: its header describes"),
    ("flux2_dev_interrupted.safetensors", "is truncated: its header describes"),
    ("flux2_dev_corrupt.safetensors", "corrupt safetensors header"),
])
def test_truncated_or_corrupt_file_clear_error_and_server_keeps_serving(comfy_server, name, expect):
    err = _error(comfy_server, graphs.flux2_t2i(loader="lockn", overrides={"diffusion_model": name}))
    msg = err["exception_message"]
    assert msg.startswith(name) and expect in msg
    assert "Traceback" not in msg and "download it again" in msg
    # the server is still serving, and a good graph still runs
    assert comfy_server.get("/system_stats")["system"]
    comfy_server.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q8_0", width=32, height=32, steps=2,
                                      prefix="l/after-error"))


def test_names_that_leave_the_model_folders_are_refused(comfy_server, tmp_path):
    # in an API request: the override is not one of the files ComfyUI lists
    status, body = comfy_server.post("/prompt", {"prompt": graphs.flux2_t2i(loader="lockn", overrides={"vae": "../../etc/passwd"})})
    assert status == 400 and "value_not_in_list" in json.dumps(body)
    # through the preflight routes
    status, body = comfy_server.request("GET", "/lockn/preflight?workflow=../../../etc/passwd")
    assert status == 400 and "leaves the pack's workflows folder" in body["error"]
    wf = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "/etc/passwd", "weight_dtype": "default"}}}
    status, body = comfy_server.request("POST", "/lockn/preflight", wf)
    assert status == 400 and "absolute path" in body["error"]
    # in a user's preset file
    from lockn_gen import catalog
    bad = tmp_path / "mine.toml"
    bad.write_text('[presets.evil]\nfamily = "flux2"\ncomponents = { vae = "../../secrets.safetensors", '
                   'diffusion_model = "flux2-dev-Q8_0.gguf", text_encoder = "mistral_3_small_flux2_fp8.safetensors" }\n')
    with pytest.raises(catalog.CatalogError, match="leaves the model folder"):
        catalog.load([bad], include_env=False)


def test_gguf_preset_without_comfyui_gguf_names_the_missing_pack(tiny_models, start_image):
    with ComfyServer(tiny_models, with_gguf=False) as srv:
        shutil.copy(start_image, srv.base / "input" / "start.png")
        srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-fp8mixed", prefix="nogguf/ok"))   # safetensors still fine
        err = _error(srv, graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m"))
        msg = err["exception_message"]
        assert "ComfyUI-GGUF is not installed" in msg and "github.com/city96/ComfyUI-GGUF" in msg
