"""The plain LoRA logic (lockn_gen/loras.py) and the catalog's LoRA entries: which file a slot may take,
how a LoRA's keys fit a model's key map, what the messages say. The same checks run inside ComfyUI in
tests/test_lora_server.py; these pin the rules down case by case."""
from __future__ import annotations

import pytest

from lockn_gen import catalog as catalog_mod
from lockn_gen import hub
from lockn_gen import loras as L

WAN_HIGH = "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
WAN_LOW = "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
# a key map as ComfyUI builds it for a Wan model (module -> weight), plus the bare names LockN adds
WAN_MAP = {f"diffusion_model.blocks.0.{m}": f"diffusion_model.blocks.0.{m}.weight"
           for m in ("self_attn.q", "self_attn.k", "cross_attn.q", "ffn.0", "norm3")}
WAN_MAP.update({k[len("diffusion_model."):]: v for k, v in list(WAN_MAP.items())})


@pytest.fixture(scope="module")
def cat():
    return catalog_mod.load(include_env=False)


def test_lightx2v_layout_fits_every_tensor():
    keys = [f"diffusion_model.blocks.0.{m}.{s}" for m in ("self_attn.q", "ffn.0")
            for s in ("lora_down.weight", "lora_up.weight", "alpha")] + ["diffusion_model.blocks.0.norm3.diff_b"]
    f = L.fit(keys, WAN_MAP)
    assert (f.keys, f.fitting, f.modules, f.misses) == (7, 7, 3, ())


def test_peft_and_bare_keys_fit_and_foreign_keys_do_not():
    keys = ["blocks.0.self_attn.k.lora_A.weight", "blocks.0.self_attn.k.lora_B.weight",
            "diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"]
    f = L.fit(keys, WAN_MAP)
    assert f.fitting == 2 and f.misses == ("diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight",)
    assert not f.none_fit
    assert L.fit(keys[2:], WAN_MAP).none_fit


def test_a_short_prefix_never_counts_as_a_fit():
    # "diffusion_model" alone is no module: a key of another model must not fit through its first part
    assert L.module_of("diffusion_model.x.lora_A.weight", {"diffusion_model": "w"}) is None


@pytest.mark.parametrize("key,family", [
    ("diffusion_model.blocks.3.cross_attn.k.lora_down.weight", "wan22"),
    ("lora_unet_blocks_0_self_attn_q.lora_down.weight", "wan22"),
    ("diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight", "flux2"),
    ("transformer.single_blocks.7.linear1.lora_B.weight", "flux2"),
    ("diffusion_model.transformer_blocks.0.audio_attn1.to_q.lora_A.weight", "ltx2"),
    ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", "ltx2"),
    ("base_model.model.layers.0.self_attn.q_proj.lora_A.weight", "ace15"),
    ("diffusion_model.decoder.layers.1.cross_attn.o_proj.lora_B.weight", "ace15"),
    ("something.else.entirely.weight", ""),
])
def test_family_guessed_from_key_names(key, family):
    assert L.guess_family([key])[0] == family


def test_catalog_loras_have_family_expert_and_a_source(cat):
    loras = {n: f for n, f in cat.files.items() if f.kind == "lora"}
    assert {cat.files[WAN_HIGH].expert, cat.files[WAN_LOW].expert} == {"high_noise", "low_noise"}
    for f in loras.values():
        assert f.folder == "loras" and f.repo and f.size > 0 and f.family in cat.families, f
    # every LoRA preset is pullable by id: its files, nothing else
    assert [f.name for f in hub.resolve_files(cat, ["wan22-i2v-lightx2v-4step"])] == [WAN_HIGH, WAN_LOW]
    assert [f.name for f in hub.resolve_files(cat, ["flux2-turbo"])] == ["Flux2TurboComfyv2.safetensors"]
    assert cat.files["Flux2TurboComfyv2.safetensors"].sha256.startswith("dfc97af0")


def test_slot_choices_list_catalog_loras_of_the_family_then_the_users(cat):
    opts = L.choices(cat, "wan22", ["my_style.safetensors", WAN_HIGH, "notes.txt", "old.ckpt"])
    assert opts[0] == L.NONE and opts[1:3] == [WAN_HIGH, WAN_LOW] and opts[3:] == ["my_style.safetensors"]
    assert "Flux2TurboComfyv2.safetensors" not in opts            # another family's catalog LoRA


def test_wrong_family_and_wrong_expert_refused_by_name(cat):
    with pytest.raises(L.LoraProblem, match=r"wan2\.2_i2v_lightx2v.*is a Wan2\.2 LoRA.*Flux\.2 model"):
        L.check_choice(cat, WAN_HIGH, "flux2")
    with pytest.raises(L.LoraProblem, match=r"low-noise expert's half.*given to the high-noise expert.*low_lora slot"):
        L.check_choice(cat, WAN_LOW, "wan22", "high_noise")
    assert L.check_choice(cat, WAN_HIGH, "wan22", "high_noise").expert == "high_noise"
    assert L.check_choice(cat, "my_own.safetensors", "flux2") is None      # the user's: checked by its keys


def test_matrix_sizes_of_another_model_size_are_found():
    key_map = {"diffusion_model.blocks.0.self_attn.q": "diffusion_model.blocks.0.self_attn.q.weight"}
    weights = {"diffusion_model.blocks.0.self_attn.q.weight": (5120, 5120)}
    ok = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": (64, 5120),
          "diffusion_model.blocks.0.self_attn.q.lora_up.weight": (5120, 64)}
    assert L.shape_mismatches(ok, key_map, weights) == []
    small = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": (64, 3072)}     # a 5B LoRA on A14B
    assert len(L.shape_mismatches(small, key_map, weights)) == 1


_LORA_FILE = """
[files."a.safetensors"]
family = "wan22"
kind = "lora"
folder = "loras"
size = 1
format = "safetensors"
quant = "bf16"
expert = "middle"
"""


@pytest.mark.parametrize("doc,match", [
    ('[loras.x]\nfamily = "wan22"\n', "needs 'family' and 'files'"),
    (f'[loras.x]\nfamily = "wan22"\nfiles = {{ middle = "{WAN_HIGH}" }}\n', "slot 'middle'"),
    (f'[loras.x]\nfamily = "flux2"\nfiles = {{ model = "{WAN_HIGH}" }}\n', "given as flux2 model"),
    (f'[loras.x]\nfamily = "wan22"\nfiles = {{ low_noise = "{WAN_HIGH}" }}\n', "given as wan22 low_noise"),
    ('[loras.x]\nfamily = "wan22"\nfiles = { model = "nope.safetensors" }\n', "not a LoRA file of the catalog"),
    (_LORA_FILE, "expert 'middle'"),
], ids=["no-files", "bad-slot", "wrong-family", "wrong-expert", "not-in-catalog", "bad-expert"])
def test_bad_lora_catalog_entries_name_the_fix(tmp_path, doc, match):
    p = tmp_path / "user.toml"
    p.write_text(doc)
    with pytest.raises(catalog_mod.CatalogError, match=match):
        catalog_mod.load([p], include_env=False)
