"""The official template graphs of the four families run to completion in a real ComfyUI server on
the tiny models, with core loaders and with ComfyUI-GGUF's loaders; what they wrote is decoded and
checked (image size; video frames, fps and audio stream; audio rate and duration; finite values)."""
from __future__ import annotations

import pytest

from lockn_testing import graphs
from lockn_testing.media import probe_image, probe_media

pytestmark = pytest.mark.comfy


@pytest.mark.parametrize("loader,quant", [("core", None), ("gguf", "Q4_K_M"), ("gguf", "Q5_K_M"), ("gguf", "Q8_0")])
def test_flux2_text_to_image(comfy_server, loader, quant):
    res = comfy_server.run(graphs.flux2_t2i(loader=loader, quant=quant, width=64, height=48, prefix=f"t/flux2_{loader}"))
    assert "12" in res.executed and "13" in res.executed           # loader and sampler really ran
    (png,) = comfy_server.output_files(res, "9")
    info = probe_image(png)
    assert (info["width"], info["height"]) == (64, 48)
    assert info["finite"] and info["std"] > 0.0                     # random weights give noise, not a flat image


@pytest.mark.parametrize("loader,quant", [("core", None), ("gguf", "Q4_K_M"), ("gguf", "Q8_0")])
def test_wan22_i2v_two_experts(comfy_server, loader, quant):
    res = comfy_server.run(graphs.wan22_i2v(loader=loader, quant=quant, width=32, height=32, length=5, fps=16.0,
                                            prefix=f"t/wan22_{loader}"))
    assert {"95", "96", "86", "85"} <= set(res.executed)           # both experts loaded, both samplers ran
    (mp4,) = comfy_server.output_files(res, "108")
    info = probe_media(mp4)
    v = info["video"]
    assert v["frames"] == 5 and v["fps"] == pytest.approx(16.0)
    assert (v["width"], v["height"]) == (32, 32)
    assert v["finite"] and v["std"] > 0.0
    assert info["n_audio_streams"] == 0


@pytest.mark.parametrize("loader,image", [("core", None), ("core", "start.png"), ("gguf", None)])
def test_ltx2_video_with_its_own_audio(comfy_server, loader, image):
    res = comfy_server.run(graphs.ltx2_av(loader=loader, image=image, width=64, height=64, length=9, fps=25,
                                          prefix=f"t/ltx2_{loader}"))
    # the loaders may come from ComfyUI's cache when the previous graph loaded the same files
    assert {"1", "60", "48"} <= set(res.executed) | set(res.cached)
    assert {"41", "96"} <= set(res.executed)
    (mp4,) = comfy_server.output_files(res, "75")
    info = probe_media(mp4)
    v, a = info["video"], info["audio"]
    assert v["frames"] == 9 and v["fps"] == pytest.approx(25.0)
    assert v["finite"]
    assert info["n_audio_streams"] == 1
    assert a["sample_rate"] > 0 and a["finite"]
    assert a["duration"] == pytest.approx(9 / 25, abs=0.1)          # the model's audio covers the clip


def test_ace15_text_to_music(comfy_server):
    res = comfy_server.run(graphs.ace15_t2m(seconds=2.0, steps=4, prefix="t/ace15"))
    assert {"104", "105", "106", "94", "3", "18"} <= set(res.executed)
    (mp3,) = comfy_server.output_files(res, "107")
    a = probe_media(mp3)["audio"]
    assert a["sample_rate"] == 48000 and a["channels"] == 2
    assert a["duration"] == pytest.approx(2.0, abs=0.15)
    assert a["finite"] and a["peak"] > 0.0
