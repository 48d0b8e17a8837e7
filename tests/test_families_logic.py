"""Pure logic of the plan's other models (issue 24): the catalog's files and presets of each new family checked
against the catalog's own data, their header identities (shared text encoders and VAEs pass, a look-alike of
another family does not), the models not offered answered with their reason, and the chains' stage alternatives."""
from __future__ import annotations

import re

import pytest

from lockn_gen import catalog, chains, cli, fileinfo
from lockn_gen.demo_sets import TINY
from lockn_gen.family_workflows import STAGE_CHOICES, WORKFLOWS
from tests.test_catalog_fileinfo import _safetensors

NEW = ("flux1", "sd35", "sdxl", "ltxv", "wan21", "wan21_t2v", "hunyuan15", "skyreels", "stable_audio")


@pytest.fixture(scope="module")
def cat():
    return catalog.builtin()


@pytest.mark.parametrize("family", NEW)
def test_each_family_is_complete_in_the_catalog(cat, family):
    fam = cat.families[family]
    assert fam.node.startswith("LockN") and fam.node.endswith("Loader") and fam.outputs and fam.template
    assert set(fam.inputs) == set(fam.roles) and set(fam.text_encoders) <= set(fam.roles)
    assert fam.default_preset in cat.presets and cat.presets[fam.default_preset].family == family
    presets = cat.presets_for(family)
    assert presets and all(p.quality >= 0 for p in presets)
    for p in presets:
        for role, name in {**p.components, **p.optional}.items():
            f = cat.files[name]                                           # every file has its entry
            assert role in fam.roles and f.size > 10**7 and f.repo and f.path and f.license
            assert f.format in name and (not f.sha256 or re.fullmatch(r"[0-9a-f]{64}", f.sha256))
            assert f.url().startswith("https://huggingface.co/") and "/resolve/" in f.url()
            # where its size came from: the note names the page, or the entry says it is not confirmed (the
            # first four families' files, shared here, come from ../shared/MODELS.md)
            assert "http" in f.note or not f.confirmed or f.family in ("flux2", "wan22", "ltx2", "ace15"), f.name


def test_sizes_of_files_named_by_public_pages(cat):
    # exact byte counts from the LFS pointers the pages show (the catalog research, 2026-12-07)
    exact = {"ae.safetensors": 335_304_388, "t5xxl_fp8_e4m3fn_scaled.safetensors": 5_157_348_688,
             "sd3.5_large_fp8_scaled.safetensors": 14_934_922_866, "t5-base.safetensors": 891_646_390,
             "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors": 11_638_004_202}
    for name, size in exact.items():
        assert cat.files[name].size == size and cat.files[name].size_exact


@pytest.mark.parametrize("tensors,family,role", [
    ({"txt_in.individual_token_refiner.blocks.0.norm1.weight": ("F16", (2,)), "byt5_in.fc1.weight": ("F16", (2, 2)),
      "double_blocks.0.img_attn.qkv.weight": ("F16", (3, 3))}, "hunyuan15", "diffusion_model"),
    ({"txt_in.individual_token_refiner.blocks.0.norm1.weight": ("F16", (2,)),
      "double_blocks.0.img_attn_qkv.weight": ("F16", (3, 3))}, "skyreels", "diffusion_model"),
    ({"patch_embedding.weight": ("F16", (8, 36, 1, 2, 2)), "blocks.0.self_attn.q.weight": ("F16", (8, 8)),
      "img_emb.proj.0.weight": ("F16", (2,))}, "wan21", "diffusion_model"),
    ({"model.diffusion_model.adaln_single.linear.weight": ("BF16", (2, 2)), "vae.decoder.conv_in.conv.weight": ("BF16", (2, 2))},
     "ltxv", "checkpoint"),
    ({"decoder.conv_in.weight": ("F16", (32, 32, 3, 3, 3)), "decoder.up.0.block.0.conv1.weight": ("F16", (2, 2))}, "", "vae"),
])
def test_identity_of_the_new_families(tmp_path, tensors, family, role):
    ident = fileinfo.identify(fileinfo.read_header(str(_safetensors(tmp_path / "f.safetensors", tensors))))
    assert (ident.family, ident.role) == (family, role)


def test_shared_files_pass_for_every_family_that_uses_them_and_look_alikes_do_not(tmp_path):
    t5 = fileinfo.read_header(str(_safetensors(tmp_path / "t5.safetensors", {"encoder.block.0.layer.0.SelfAttention.q.weight": ("F16", (2, 2))})))
    for fam in ("wan22", "wan21", "wan21_t2v", "flux1", "sd35", "ltxv", "stable_audio", "hunyuan15"):
        fileinfo.check_identity(t5, fam, "text_encoder")
    with pytest.raises(fileinfo.FileProblem, match="umt5/T5"):
        fileinfo.check_identity(t5, "ace15", "text_encoder")
    ae = fileinfo.read_header(str(_safetensors(tmp_path / "ae.safetensors", {
        "decoder.conv_in.weight": ("F32", (2, 2, 3, 3)), "decoder.up.0.block.0.conv1.weight": ("F32", (2, 2))})))
    for fam in ("flux1", "sd35", "sdxl"):
        fileinfo.check_identity(ae, fam, "vae")
    with pytest.raises(fileinfo.FileProblem, match="Flux.2 needs flux2-vae"):
        fileinfo.check_identity(ae, "flux2", "vae")
    hy = fileinfo.read_header(str(_safetensors(tmp_path / "hy.safetensors", {
        "txt_in.individual_token_refiner.blocks.0.norm1.weight": ("F16", (2,)), "byt5_in.fc1.weight": ("F16", (2, 2)),
        "double_blocks.0.img_attn.qkv.weight": ("F16", (3, 3))})))
    with pytest.raises(fileinfo.FileProblem, match="HunyuanVideo 1.5 diffusion model"):
        fileinfo.check_identity(hy, "flux1", "diffusion_model")         # Flux-like key names, not a Flux.1 model


def test_wan21_text_and_image_models_are_told_apart(tmp_path):
    """A T2V file (in_dim 16, no image embedding) is taken by the Wan2.1 T2V loader and refused by the I2V one, and
    the other way round: each would fail inside ComfyUI's sampler, after everything was loaded."""
    def wan(name, cin, img):
        tensors = {"patch_embedding.weight": ("F16", (8, cin, 1, 2, 2)), "blocks.0.self_attn.q.weight": ("F16", (8, 8))}
        if img:
            tensors["img_emb.proj.0.weight"] = ("F16", (2,))
        return fileinfo.read_header(str(_safetensors(tmp_path / name, tensors)))
    t2v, i2v = wan("t2v.safetensors", 16, False), wan("i2v.safetensors", 36, True)
    assert fileinfo.check_identity(t2v, "wan21_t2v", "diffusion_model").detail == "a Wan text-to-video diffusion model"
    with pytest.raises(fileinfo.FileProblem, match="text-to-video diffusion model .* of a Wan2.1 model"):
        fileinfo.check_identity(t2v, "wan21", "diffusion_model", "Wan2.1")
    with pytest.raises(fileinfo.FileProblem, match="Wan2.1 image-to-video diffusion model .* of a Wan2.1 T2V model"):
        fileinfo.check_identity(i2v, "wan21_t2v", "diffusion_model", "Wan2.1 T2V")


def test_a_family_with_a_task_of_its_own_is_no_chain_stage(cat, tmp_path):
    """Wan2.1 T2V makes video from the prompt alone: no chain's video stage (they start from the chain's image) offers
    it, and its workflow has no start image."""
    assert cat.families["wan21_t2v"].task == "text_to_video" and cat.families["wan21_t2v"].mode == "video"
    assert all("wan21_t2v" not in fams for fams in STAGE_CHOICES.values())
    g = chains.WORKFLOWS["wan21_text_to_video"]()
    kinds = {n["class_type"] for n in g.nodes.values()}
    assert "LoadImage" not in kinds and {"LockNWan21T2VLoader", "EmptyHunyuanLatentVideo", "SaveVideo"} <= kinds
    user = tmp_path / "x.toml"
    user.write_text('[families.x]\ndisplay_name = "X"\nmode = "video"\nroles = ["vae"]\ntask = "image_to_text"\n')
    with pytest.raises(catalog.CatalogError, match=f"{user}: family 'x': task 'image_to_text' is not one of"):
        catalog.load([user], include_env=False)


@pytest.mark.parametrize("asked", ["heartmula-3b", "HeartMuLa", "cogvideox-5b-i2v"])
def test_models_not_offered_are_answered_with_the_reason(cat, asked, capsys, tmp_path):
    with pytest.raises(KeyError) as e:
        cat.preset(asked)
    why = e.value.args[0]
    said = "not a catalog preset" if "heartmula" in asked.lower() else "not offered"
    assert said in why and "unknown preset" not in why
    if "heartmula" not in asked.lower():               # (`models pull heartmula-3b` downloads its repositories:
        assert cli.main(["models", "pull", asked, "--models-dir", str(tmp_path)]) == 2     # test_models_pull.py)
        assert said in capsys.readouterr().err and not list(tmp_path.iterdir())
    hm = catalog.not_offered("heartmula")              # HeartMuLa: the node that runs it, its set-up and its files
    assert "HeartMuLa Music (LockN)" in hm and "LOCKN_SETUP_HEARTMULA=1" in hm and "numpy 2.4.6 -> 2.0.2" in hm
    assert "hf download HeartMuLa/HeartMuLaGen --local-dir models/HeartMuLa" in hm and "models pull heartmula-3b" in hm


# ---- the chains' stage alternatives --------------------------------------------------------------------------
@pytest.mark.parametrize("chain,stages", [("chain_quality", ("image", "quality_video", "music")),
                                          ("chain_fast", ("image", "fast_video", "music"))])
def test_each_stage_offers_its_models_through_a_lazy_pick(chain, stages):
    g = chains.WORKFLOWS[chain]()
    titles = {(n.get("_meta") or {}).get("title"): nid for nid, n in g.nodes.items()}
    cat = catalog.builtin()
    for stage in stages:
        title = {"image": "Image model", "music": "Music model"}.get(stage, "Video model")
        node = g.nodes[titles[title]]
        assert node["inputs"]["model"] == STAGE_CHOICES[stage][0] and g.stages.get(titles[title]) is None   # top level
        picks = [n for n in g.nodes.values() if n["class_type"] in ("LockNPickImage", "LockNPickAudio") and n["inputs"]["model"] == [titles[title], 0]]
        branches = {k for p in picks for k in p["inputs"] if k != "model"}
        assert branches == set(STAGE_CHOICES[stage])
    # the alternatives' loaders are listed apart in the notes (their files are read only when chosen)
    loaders = {n["inputs"]["preset"] for nid, n in g.nodes.items() if nid in g.alternatives}
    assert {cat.presets[p].family for p in loaders} >= {"flux1", "sd35", "stable_audio"}


def test_every_new_workflow_has_tiny_settings_and_a_stage():
    for name in WORKFLOWS:
        assert name in TINY and chains.WORKFLOWS[name]().stages
