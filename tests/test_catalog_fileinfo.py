"""Pure logic: the catalog, header reading and file identity, preset resolution and its messages."""
from __future__ import annotations

import json
import struct

import pytest

from lockn_gen import catalog, fileinfo
from lockn_gen.preflight import LockNError, missing_message, resolve


def _safetensors(path, tensors: dict, metadata=None, truncate=0):
    """A safetensors file with zero-filled tensors: {name: (dtype, shape)}."""
    header, off = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        nbytes = int(n * fileinfo._ST_DTYPE_BYTES[dtype])
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", len(raw)) + raw + b"\0" * off
    path.write_bytes(data[: len(data) - truncate])
    return path


def test_builtin_catalog_has_the_presets_the_issue_lists():
    c = catalog.load(include_env=False)
    need = {"flux2-dev-q4_k_m", "flux2-dev-q5_k_m", "flux2-dev-q8_0", "flux2-dev-fp8mixed", "flux2-klein-4b",
            "wan22-i2v-a14b-q4_k_m", "wan22-i2v-a14b-fp8", "wan22-ti2v-5b", "ltx2-19b-distilled-fp8", "ltx2-19b-dev-fp8",
            "ltx2-19b-dev-q4_k_m", "ace15-turbo", "ace15-turbo-lm4b", "ace15-xl-turbo"}
    assert need <= set(c.presets)
    # the real figures of MODELS.md
    assert c.files["flux2-dev-Q8_0.gguf"].size == 35_000_000_000
    assert c.files["Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"].size == 9_650_000_000
    assert c.preset_files("wan22-i2v-a14b-q4_k_m")["low_noise"].path.startswith("LowNoise/")
    assert c.files["ltx-2-19b-dev-fp8.safetensors"].url() == "https://huggingface.co/Lightricks/LTX-2/resolve/main/ltx-2-19b-dev-fp8.safetensors"
    assert c.files["acestep_v1.5_turbo-Q8_0.gguf"].confirmed is False          # unconfirmed things are marked
    assert c.presets["ltx2-19b-distilled-fp8"].settings(c)["steps"] == 8       # preset overrides the template
    assert c.presets["ltx2-19b-dev-fp8"].settings(c)["steps"] == 20


def test_user_presets_add_and_override_without_editing_the_pack(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[files."my-flux.safetensors"]\nfamily = "flux2"\nkind = "diffusion_model"\nrepo = "me/x"\n'
                    'folder = "diffusion_models"\nsize = 123\nformat = "safetensors"\nquant = "bf16"\nsize_exact = true\n'
                    '[presets.mine]\nfamily = "flux2"\ncomponents = { diffusion_model = "my-flux.safetensors", '
                    'text_encoder = "mistral_3_small_flux2_fp8.safetensors", vae = "flux2-vae.safetensors" }\n'
                    '[presets."flux2-dev-q8_0"]\nfamily = "flux2"\nlabel = "overridden"\ncomponents = { diffusion_model = '
                    '"flux2-dev-Q8_0.gguf", text_encoder = "mistral_3_small_flux2_fp4_mixed.safetensors", vae = "flux2-vae.safetensors" }\n')
    c = catalog.load([user], include_env=False)
    assert c.presets["mine"].source == str(user) and c.files["my-flux.safetensors"].size == 123
    assert c.presets["flux2-dev-q8_0"].label == "overridden"


@pytest.mark.parametrize("text,match", [
    ('[files."x.safetensors"]\nfamily = "flux2"\n', "lacks kind, folder"),
    ('[files."../x.safetensors"]\nfamily="flux2"\nkind="vae"\nfolder="vae"\nsize=1\nformat="safetensors"\nquant="x"\n', "leaves the model folder"),
    ('[files."x.safetensors"]\nfamily="flux2"\nkind="vae"\nfolder="nowhere"\nsize=1\nformat="safetensors"\nquant="x"\n', "not a ComfyUI model folder"),
    ('[files."x.safetensors"]\nfamily="flux2"\nkind="vae"\nfolder="vae"\nsize=1\nformat="safetensors"\nquant="x"\nsha256="abc"\n', "not 64 hex"),
    ('[presets.p]\nfamily = "nope"\ncomponents = {}\n', "unknown family"),
    ('[presets.p]\nfamily = "wan22"\ncomponents = { lm = "a.safetensors" }\n', "not a Wan2.2 role"),
    ('not = [valid', "not valid TOML"),
])
def test_bad_user_catalog_says_what_and_where(tmp_path, text, match):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(catalog.CatalogError, match=match) as e:
        catalog.load([f], include_env=False)
    assert str(f) in str(e.value)


def test_header_reader_detects_truncation_and_corruption(tmp_path):
    good = _safetensors(tmp_path / "a.safetensors", {"double_blocks.0.img_attn.qkv.weight": ("BF16", (8, 4))})
    assert fileinfo.read_header(str(good)).tensors["double_blocks.0.img_attn.qkv.weight"].shape == (8, 4)
    cut = _safetensors(tmp_path / "b.safetensors", {"w": ("F32", (100,))}, truncate=10)
    with pytest.raises(fileinfo.FileProblem, match=r"b.safetensors: is truncated: its header describes \d+ bytes"):
        fileinfo.read_header(str(cut))
    (tmp_path / "c.safetensors").write_bytes(b"\x05")
    with pytest.raises(fileinfo.FileProblem, match="too short"):
        fileinfo.read_header(str(tmp_path / "c.safetensors"))
    (tmp_path / "d.gguf").write_bytes(b"GGML" + b"\0" * 40)
    with pytest.raises(fileinfo.FileProblem, match="does not start with the GGUF magic"):
        fileinfo.read_header(str(tmp_path / "d.gguf"))
    (tmp_path / "e.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01")
    with pytest.raises(fileinfo.FileProblem, match="truncated inside its GGUF header"):
        fileinfo.read_header(str(tmp_path / "e.gguf"))


@pytest.mark.parametrize("tensors,family,role", [
    ({"double_blocks.0.img_attn.qkv.weight": ("BF16", (3, 3)), "double_stream_modulation_img.lin.weight": ("BF16", (2, 2))}, "flux2", "diffusion_model"),
    ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": ("BF16", (3, 3))}, "flux1", "diffusion_model"),
    ({"patch_embedding.weight": ("F16", (8, 36, 1, 2, 2)), "blocks.0.self_attn.q.weight": ("F16", (8, 8))}, "wan22", "diffusion_model"),
    ({"model.diffusion_model.audio_adaln_single.linear.weight": ("BF16", (2, 2)), "vae.decoder.conv_in.conv.weight": ("BF16", (2, 2))}, "ltx2", "checkpoint"),
    ({"decoder.head.0.gamma": ("F32", (4,))}, "wan22", "vae"),
    ({"bn.running_mean": ("F32", (4,)), "decoder.conv_in.weight": ("F32", (2, 2))}, "flux2", "vae"),
    ({"model.embed_tokens.weight": ("F32", (151669, 2)), "model.layers.0.self_attn.q_norm.weight": ("F32", (2,))}, "ace15", "text_encoder"),
    ({"model.embed_tokens.weight": ("F32", (217204, 2)), "model.layers.0.self_attn.q_norm.weight": ("F32", (2,))}, "ace15", "lm"),
    ({"encoder.block.0.layer.0.SelfAttention.q.weight": ("BF16", (2, 2))}, "wan22", "text_encoder"),
    ({"x.lora_A.weight": ("BF16", (2, 2))}, "", "lora"),
])
def test_identity_from_header(tmp_path, tensors, family, role):
    info = fileinfo.read_header(str(_safetensors(tmp_path / "f.safetensors", tensors)))
    ident = fileinfo.identify(info)
    assert (ident.family, ident.role) == (family, role)


def test_check_identity_lets_unknown_files_through_and_refuses_known_mismatches(tmp_path):
    unknown = fileinfo.read_header(str(_safetensors(tmp_path / "u.safetensors", {"something": ("F32", (2,))})))
    assert fileinfo.check_identity(unknown, "wan22", "vae") == fileinfo.UNKNOWN
    lora = fileinfo.read_header(str(_safetensors(tmp_path / "l.safetensors", {"a.lora_down.weight": ("F32", (2, 2))})))
    with pytest.raises(fileinfo.FileProblem, match="l.safetensors is a LoRA"):
        fileinfo.check_identity(lora, "flux2", "diffusion_model")


def _finder(present: dict):
    return (lambda folder, name: present.get((folder, name))), (lambda folder: [f"/models/{folder}"])


def test_resolve_lists_every_missing_component_with_sources():
    c = catalog.load(include_env=False)
    find, searched = _finder({("vae", "wan_2.1_vae.safetensors"): "/models/vae/wan_2.1_vae.safetensors"})
    res = resolve(c, "wan22", "wan22-i2v-a14b-q4_k_m", {}, find, searched)
    assert sorted(m.role for m in res.missing) == ["high_noise", "low_noise", "text_encoder"]
    msg = missing_message(res, "Wan2.2", lambda names: "PULL " + " ".join(names))
    assert "missing 3 of its 4 files" in msg and "9.65 GB" in msg and "6.74 GB" in msg
    assert "looked in: /models/diffusion_models" in msg
    assert "PULL Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf umt5_xxl_fp8_e4m3fn_scaled.safetensors" in msg
    # an override replaces the preset's file; a file without a public source says how to get it
    res = resolve(c, "ace15", "ace15-turbo-q8_0", {"vae": "(preset)"}, *_finder({}))
    msg = missing_message(res, "ACE-Step 1.5", lambda n: "PULL")
    assert "convert the turbo DiT with ComfyUI-GGUF" in msg and "No download source known for: acestep_v1.5_turbo-Q8_0.gguf" in msg


def test_resolve_refuses_escaping_overrides_and_foreign_presets():
    c = catalog.load(include_env=False)
    with pytest.raises(LockNError, match="leaves the model folder"):
        resolve(c, "flux2", "flux2-dev-q8_0", {"vae": "../x.safetensors"}, *_finder({}))
    with pytest.raises(LockNError, match="absolute path"):
        resolve(c, "flux2", "flux2-dev-q8_0", {"vae": "/etc/passwd"}, *_finder({}))
    with pytest.raises(LockNError, match="is a Wan2.2 preset, not Flux.2"):
        resolve(c, "flux2", "wan22-i2v-a14b-fp8", {}, *_finder({}))


def test_family_facts_come_from_the_catalog():
    """Node ids, override inputs, CLIP types and modes of the families are written once, in the catalog."""
    from lockn_gen import residency
    cat = catalog.builtin()
    assert {f.mode for f in cat.families.values()} == set(residency.MODES)
    for f in cat.families.values():
        assert f.node.startswith("LockN") and f.node.endswith("Loader") and f.clip_type
        assert f.inputs and set(f.inputs) <= set(f.roles), (f.id, f.inputs, f.roles)
