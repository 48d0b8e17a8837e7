"""The stable-diffusion.cpp presets and settings (issue 27), pure logic: which presets each engine sees, that the sd.cpp
presets load the same diffusion model and VAE files as the ComfyUI ones, a preset given to the wrong engine's node,
a bad engine in a user catalog, and the node's 0 = the preset's settings."""
from __future__ import annotations

import pytest

from lockn_gen import catalog, planner
from lockn_gen.preflight import LockNError, resolve
from lockn_gen.sdcpp_engine import settings

SDCPP = {"flux2-klein-4b-sdcpp", "flux2-dev-q4_k_m-sdcpp", "flux2-dev-q5_k_m-sdcpp", "flux2-dev-q8_0-sdcpp"}


def test_each_engine_sees_its_own_presets_and_they_share_the_files():
    cat = catalog.builtin()
    comfy = {p.id for p in cat.presets_for("flux2")}
    sdcpp = {p.id for p in cat.presets_for("flux2", "sdcpp")}
    assert sdcpp == SDCPP and not comfy & sdcpp and "flux2-dev-q5_k_m" in comfy
    for pid in SDCPP:
        p = cat.presets[pid]
        twin = cat.presets[pid.removesuffix("-sdcpp")]            # the ComfyUI preset of the same files
        assert p.components["diffusion_model"] == twin.components["diffusion_model"]
        assert p.components["vae"] == twin.components["vae"] == "flux2-vae.safetensors"
        te = cat.files[p.components["text_encoder"]]
        assert te.repo and te.size > 0                            # every file pullable, with its size
        if "dev" in pid:                                          # sd.cpp reads dev's Mistral as a llama.cpp GGUF
            assert te.format == "gguf" and te.name.startswith("Mistral-Small-3.2-24B")
        else:
            assert te.name == twin.components["text_encoder"] == "qwen_3_4b.safetensors"
    assert cat.presets["flux2-klein-4b-sdcpp"].settings(cat)["steps"] == 4


def test_a_preset_given_to_the_other_engine_names_the_node_to_use():
    cat = catalog.builtin()
    find = lambda folder, name: f"/m/{folder}/{name}"
    with pytest.raises(LockNError, match=r"stable-diffusion\.cpp \(use it in the Flux\.2 Image, stable-diffusion\.cpp"):
        resolve(cat, "flux2", "flux2-klein-4b-sdcpp", {}, find, lambda f: [f"/m/{f}"])
    with pytest.raises(LockNError, match=r"ComfyUI's own loaders \(use it in the Flux\.2 Loader \(LockN\) node\).*"
                                         r"flux2-klein-4b-sdcpp"):
        resolve(cat, "flux2", "flux2-klein-4b", {}, find, lambda f: [f"/m/{f}"], engine="sdcpp")
    res = resolve(cat, "flux2", "flux2-dev-q4_k_m-sdcpp", {}, find, lambda f: [f"/m/{f}"], engine="sdcpp")
    assert not res.missing and {c.name for c in res.components} >= {"flux2-dev-Q4_K_M.gguf", "flux2-vae.safetensors"}


def test_a_user_catalog_with_an_unknown_engine_says_so(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[presets."x"]\nfamily = "flux2"\nengine = "onnx"\n'
                    'components = { diffusion_model = "a.gguf", text_encoder = "b.gguf", vae = "flux2-vae.safetensors" }\n')
    with pytest.raises(catalog.CatalogError, match=r"engine 'onnx' is not one of comfy, sdcpp"):
        catalog.load([user], include_env=False)


def test_the_planner_keeps_to_comfyui_presets():
    cat = catalog.builtin()
    for target in ("quality", "speed"):
        chosen = planner.choose_presets(cat, target=target)
        assert chosen and all(cat.presets[c.preset].engine == "comfy" for c in chosen if c.preset)
    assert all(cat.presets[p.id].engine == "comfy" for p in planner.plan(cat).presets)


def test_zero_takes_the_presets_settings():
    klein = {"steps": 4, "guidance": 1.0}
    assert settings(klein) == {"steps": 4, "guidance": 1.0}
    assert settings({"steps": 20, "guidance": 4.0}, steps=8, guidance=2.5) == {"steps": 8, "guidance": 2.5}
