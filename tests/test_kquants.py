"""K-quant writer (lockn_testing.kquants) and city96-style GGUF writer (lockn_testing.gguf_writer).

Decoders used as independent references:
  * gguf-py's numpy ``gguf.quants.dequantize`` (the reference llama.cpp layout),
  * ComfyUI-GGUF's torch ``dequant.py`` (what UnetLoaderGGUF runs), loaded by file path from
    ``$COMFYUI_PATH/custom_nodes/ComfyUI-GGUF/dequant.py`` (default ``~/comfy/ComfyUI``). It only
    imports gguf, torch and tqdm, so no ComfyUI boot is needed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time

import gguf
import numpy as np
import pytest
import torch

from lockn_testing import gguf_writer, kquants

Q = gguf.GGMLQuantizationType

COMFYUI_PATH = os.environ.get("COMFYUI_PATH", os.path.expanduser("~/comfy/ComfyUI"))
DEQUANT_PY = os.path.join(COMFYUI_PATH, "custom_nodes", "ComfyUI-GGUF", "dequant.py")

# Relative L2 error bounds on N(0, 1) weights. Measured (512x1024, seed 0): Q4_K 0.0708,
# Q5_K 0.0357, Q6_K 0.0169, Q8_0 0.0054. A single-start fit with one least-squares round gives
# 0.0751 / 0.0371 / 0.0183 (plain min/max about 0.078 / 0.038 / 0.0187), so these bounds also
# guard the multi-start scale search itself.
REL_L2_BOUND = {Q.Q4_K: 0.0725, Q.Q5_K: 0.0365, Q.Q6_K: 0.0175, Q.Q8_0: 0.006}
QTYPES = [Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0]
FP16_U = 2.0 ** -11                     # float16 unit roundoff


@pytest.fixture(scope="module")
def normal_weights():
    return np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)


@pytest.fixture(scope="module")
def comfy_dequant():
    if not os.path.isfile(DEQUANT_PY):
        pytest.fail(f"ComfyUI-GGUF dequant.py not found at {DEQUANT_PY}; set COMFYUI_PATH")
    spec = importlib.util.spec_from_file_location("_comfyui_gguf_dequant", DEQUANT_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hard_inputs():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((24, 512)).astype(np.float32)
    scales = (10.0 ** (np.arange(24) % 6 - 3)).astype(np.float32)[:, None]   # 1e-3 .. 1e2 per row
    x = base * scales
    x[0] = 0.0                                          # all-zero row
    x[1] = 0.25                                         # constant row
    x[2] = np.abs(x[2]) + 1.0                           # all positive (min clamped to 0)
    x[3] = -np.abs(x[3]) - 1.0                          # all negative
    x[4, ::7] = 0.0                                     # sparse-ish
    x[5, 3] = 50 * np.abs(x[5]).max()                   # one outlier
    return x


# --------------------------------------------------------------------------------------------
# kquants
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_reference_decoder_matches_intended_values(qtype, normal_weights):
    x = normal_weights
    raw, intended = kquants.quantize_and_reconstruct(x, qtype)
    block, tsize = gguf.GGML_QUANT_SIZES[qtype]
    assert raw.dtype == np.uint8 and raw.shape == (512, 1024 // block * tsize)
    assert intended.dtype == np.float32 and intended.shape == x.shape
    decoded = gguf.quants.dequantize(raw, qtype)
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded, intended), "gguf-py decodes different values than the writer meant"
    err = kquants.relative_l2(x, decoded)
    assert err < REL_L2_BOUND[qtype], f"{qtype.name} rel L2 {err:.4f}"
    # quantize() writes the same bytes
    assert np.array_equal(kquants.quantize(x, qtype), raw)


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q5_K, Q.Q6_K], ids=lambda q: q.name)
def test_hard_blocks_decode_exactly(qtype):
    x = _hard_inputs()
    raw, intended = kquants.quantize_and_reconstruct(x, qtype)
    decoded = gguf.quants.dequantize(raw, qtype)
    assert np.array_equal(decoded, intended)
    assert np.all(decoded[0] == 0.0)
    assert np.allclose(decoded[1], 0.25, rtol=2e-3)
    for row in range(2, 24):
        bound = {Q.Q4_K: 0.09, Q.Q5_K: 0.045, Q.Q6_K: 0.03}[qtype]
        assert kquants.relative_l2(x[row], decoded[row]) < bound, (row, qtype.name)


def test_k_quant_shapes_and_errors():
    x = np.random.default_rng(1).standard_normal((2, 3, 512)).astype(np.float32)
    assert kquants.quantize(x, Q.Q6_K).shape == (2, 3, 2 * 210)
    assert kquants.quantize(x, Q.Q4_K).shape == (2, 3, 2 * 144)
    assert kquants.quantize(x, Q.Q5_K).shape == (2, 3, 2 * 176)
    with pytest.raises(ValueError, match=r"Q4_K.*\(3, 100\)"):
        kquants.quantize(np.zeros((3, 100), np.float32), Q.Q4_K)
    bad = np.zeros((1, 256), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kquants.quantize(bad, Q.Q5_K)
    with pytest.raises(ValueError, match="float16"):
        kquants.quantize(np.full((1, 256), 1e30, np.float32), Q.Q6_K)


def test_quantize_throughput():
    # ~20 M weights/s per K-quant on one core here; the bound leaves a wide margin for slow CI
    x = np.random.default_rng(2).standard_normal((1024, 1024)).astype(np.float32)
    t0 = time.perf_counter()
    kquants.quantize(x, Q.Q4_K)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_comfyui_gguf_torch_dequant(qtype, normal_weights, comfy_dequant):
    x = normal_weights[:128]
    raw, intended = kquants.quantize_and_reconstruct(x, qtype)
    data = torch.from_numpy(raw)
    # float32 decode (UnetLoaderGGUFAdvanced dequant_dtype=float32): bit-identical
    f32 = comfy_dequant.dequantize(data, qtype, x.shape, dtype=torch.float32)
    assert f32.dtype == torch.float32
    assert torch.equal(f32, torch.from_numpy(intended))
    # default decode (dequant_dtype=None) runs in float16: within fp16 rounding of each of the
    # <= 4 float16 operations (d*sc, *q, dmin*m, -), relative to the operand magnitudes, which
    # are bounded by twice the largest |value| of the 256-weight super-block
    f16 = comfy_dequant.dequantize(data, qtype, x.shape, dtype=None)
    assert f16.dtype == torch.float16
    diff = np.abs(f16.float().numpy() - intended)
    blockmax = np.abs(intended).reshape(-1, 256 if qtype != Q.Q8_0 else 32).max(1, keepdims=True)
    bound = 4 * FP16_U * (np.abs(intended).reshape(blockmax.shape[0], -1) + 2 * blockmax) + 2.0 ** -24
    assert np.all(diff.reshape(bound.shape) <= bound)
    assert kquants.relative_l2(x, f16.float().numpy()) < REL_L2_BOUND[qtype]


# --------------------------------------------------------------------------------------------
# gguf_writer
# --------------------------------------------------------------------------------------------

def _flux_sd():
    rng = np.random.default_rng(3)

    def w(*shape, std=0.05):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    return {
        "double_blocks.0.img_attn.qkv.weight": w(768, 256),
        "double_blocks.0.img_attn.qkv.bias": w(768),                      # 1-D
        "double_blocks.0.img_attn.proj.weight": torch.from_numpy(w(256, 256)).to(torch.bfloat16),
        "double_blocks.0.img_mlp.0.weight": w(512, 256),
        "double_blocks.0.img_mlp.2.weight": w(256, 512),
        "double_blocks.0.img_attn.norm.key_norm.scale": w(4, 256),       # 1024 elements: small
        "double_blocks.0.txt_attn.proj.weight": w(128, 320),              # row % 256 != 0
        "img_in.weight": w(256, 512),                                     # never quantized (flux)
        "final_layer.adaLN_modulation.1.weight": w(512, 256),             # never quantized (flux)
        "patch.weight": w(8, 4, 2, 2, 2),                                 # 5-D
        "conv.weight": w(64, 16, 3, 3),                                   # 4-D conv kernel
        "ids": torch.arange(1200, dtype=torch.int64).reshape(3, 400),    # integer buffer
    }


FLUX_EXPECTED = {
    "Q4_K_M": {
        "double_blocks.0.img_attn.qkv.weight": Q.Q5_K,     # fused qkv promoted
        "double_blocks.0.img_attn.qkv.bias": Q.F32,
        "double_blocks.0.img_attn.proj.weight": Q.Q4_K,
        "double_blocks.0.img_mlp.0.weight": Q.Q4_K,
        "double_blocks.0.img_mlp.2.weight": Q.Q4_K,        # no city96 ffn-down rule for flux
        "double_blocks.0.img_attn.norm.key_norm.scale": Q.F32,
        "double_blocks.0.txt_attn.proj.weight": Q.F16,
        "img_in.weight": Q.F16,
        "final_layer.adaLN_modulation.1.weight": Q.F16,
        "patch.weight": Q.F32,
        "conv.weight": Q.F16,
        "ids": Q.F32,
    },
}
FLUX_EXPECTED["Q5_K_M"] = {**FLUX_EXPECTED["Q4_K_M"], "double_blocks.0.img_attn.qkv.weight": Q.Q6_K,
                           "double_blocks.0.img_attn.proj.weight": Q.Q5_K,
                           "double_blocks.0.img_mlp.0.weight": Q.Q5_K,
                           "double_blocks.0.img_mlp.2.weight": Q.Q5_K}
FLUX_EXPECTED["Q8_0"] = {**FLUX_EXPECTED["Q4_K_M"], "double_blocks.0.img_attn.qkv.weight": Q.Q8_0,
                         "double_blocks.0.img_attn.proj.weight": Q.Q8_0,
                         "double_blocks.0.img_mlp.0.weight": Q.Q8_0,
                         "double_blocks.0.img_mlp.2.weight": Q.Q8_0,
                         "double_blocks.0.txt_attn.proj.weight": Q.Q8_0}   # 320 % 32 == 0
FILE_TYPE = {"Q4_K_M": 15, "Q5_K_M": 17, "Q8_0": 7, "Q6_K": 18, "F16": 1}


def _as_f32(v):
    return v.float().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float32)


def _field(reader, key):
    f = reader.get_field(key)
    assert f is not None, f"missing KV {key}"
    val = f.parts[f.data[-1]]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return f.types, bytes(val).decode()
    return f.types, val.tolist()[0]


def _read_back(path):
    reader = gguf.GGUFReader(path)
    out = {}
    for t in reader.tensors:
        shape = tuple(int(s) for s in reversed(t.shape))
        out[t.name] = (t.tensor_type, gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape), t.data)
    return reader, out


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q5_K_M", "Q8_0"])
def test_write_flux_file(tmp_path, ftype, comfy_dequant):
    sd = _flux_sd()
    config = json.dumps({"transformer": {"num_layers": 1}})
    path = tmp_path / f"tiny-{ftype}.gguf"
    written = gguf_writer.write_gguf(path, sd, "flux", ftype, metadata={"config": config, "lockn.seed": 3})
    assert written == FLUX_EXPECTED[ftype]
    assert sorted(os.listdir(tmp_path)) == [path.name]

    reader, back = _read_back(path)
    assert _field(reader, "general.architecture") == ([gguf.GGUFValueType.STRING], "flux")
    assert _field(reader, "general.file_type")[1] == FILE_TYPE[ftype] == int(gguf_writer.FTYPES[ftype][1])
    assert _field(reader, "general.quantization_version")[1] == gguf.GGML_QUANT_VERSION
    assert _field(reader, "config") == ([gguf.GGUFValueType.STRING], config)
    assert _field(reader, "lockn.seed") == ([gguf.GGUFValueType.INT32], 3)

    assert list(back) == list(sd)                                     # every tensor, in order
    for name, (qtype, values, data) in back.items():
        assert qtype == FLUX_EXPECTED[ftype][name], name
        ref = _as_f32(sd[name])
        assert values.shape == ref.shape, name
        if qtype == Q.F32:
            assert np.array_equal(values, ref), name
        elif qtype == Q.F16:
            assert np.array_equal(values, ref.astype(np.float16).astype(np.float32)), name
        else:
            assert np.array_equal(np.asarray(data), kquants.quantize(ref, qtype)), name
            assert kquants.relative_l2(ref, values) < REL_L2_BOUND[qtype] + 0.005, name
            f32 = comfy_dequant.dequantize(torch.from_numpy(np.array(data)), qtype, ref.shape, dtype=torch.float32)
            assert torch.equal(f32, torch.from_numpy(values)), name


def test_quantizable_restricts_quantization(tmp_path):
    sd = _flux_sd()
    only = {"double_blocks.0.img_mlp.0.weight", "img_in.weight", "double_blocks.0.img_attn.qkv.bias"}
    written = gguf_writer.write_gguf(tmp_path / "q.gguf", sd, "flux", "Q4_K_M", quantizable=only)
    expected = dict(FLUX_EXPECTED["Q4_K_M"])
    expected.update({"double_blocks.0.img_attn.qkv.weight": Q.F16,     # would be Q5_K
                     "double_blocks.0.img_attn.proj.weight": Q.F16,    # would be Q4_K
                     "double_blocks.0.img_mlp.2.weight": Q.F16})       # would be Q4_K
    assert written == expected      # img_mlp.0 still Q4_K; img_in stays F16; the bias stays F32
    _, back = _read_back(tmp_path / "q.gguf")
    assert {k: v[0] for k, v in back.items()} == expected


@pytest.mark.parametrize("arch, ftype, name, shape, expected", [
    ("wan", "Q4_K_M", "blocks.0.self_attn.v.weight", (256, 256), Q.Q6_K),
    ("wan", "Q4_K_M", "blocks.0.self_attn.q.weight", (256, 256), Q.Q4_K),
    ("wan", "Q4_K_M", "blocks.0.ffn.2.weight", (256, 512), Q.Q6_K),
    ("wan", "Q5_K_M", "blocks.0.ffn.2.weight", (256, 512), Q.Q6_K),
    ("wan", "Q5_K_M", "blocks.0.ffn.0.weight", (512, 256), Q.Q5_K),
    ("wan", "Q4_K_M", "blocks.0.modulation", (1, 6, 256), Q.F32),          # high precision
    ("wan", "Q4_K_M", "head.modulation", (1, 2, 256), Q.F32),
    ("wan", "Q4_K_M", "patch_embedding.weight", (256, 36, 1, 2, 2), Q.F32),  # 5-D
    ("wan", "Q4_K_M", "head.head.weight", (64, 256), Q.F16),
    ("wan", "Q4_K_M", "text_embedding.0.weight", (256, 512), Q.F16),
    ("wan", "Q4_K_M", "time_projection.1.weight", (1536, 256), Q.F16),
    ("ltxv", "Q4_K_M", "transformer_blocks.0.attn1.to_v.weight", (256, 256), Q.Q6_K),
    ("ltxv", "Q4_K_M", "transformer_blocks.0.ff.net.2.weight", (256, 1024), Q.Q6_K),
    ("ltxv", "Q4_K_M", "transformer_blocks.0.attn1.to_q.weight", (256, 256), Q.Q4_K),
    ("ltxv", "Q4_K_M", "transformer_blocks.0.scale_shift_table", (6, 256), Q.F32),
    ("ltxv", "Q4_K_M", "adaln_single.linear.weight", (1536, 256), Q.F16),
    ("ltxv", "Q4_K_M", "patchify_proj.weight", (256, 256), Q.F16),
    ("ltxv", "Q6_K", "transformer_blocks.0.attn1.to_q.weight", (256, 256), Q.Q6_K),
    ("ace", "Q4_K_M", "decoder.layers.0.self_attn.v_proj.weight", (256, 256), Q.Q6_K),
    ("ace", "Q4_K_M", "decoder.layers.0.mlp.down_proj.weight", (256, 512), Q.Q6_K),
    ("ace", "Q4_K_M", "decoder.layers.0.mlp.up_proj.weight", (512, 256), Q.Q4_K),
    ("ace", "Q4_K_M", "decoder.time_embed.linear_1.weight", (256, 256), Q.F16),
    ("ace", "Q4_K_M", "decoder.scale_shift_table", (1, 2, 256), Q.F32),
    ("flux", "Q4_K_M", "single_blocks.0.linear1.weight", (5, 256), Q.Q4_K),  # 1280 > 1024
    ("flux", "Q4_K_M", "single_blocks.0.linear1.weight", (4, 256), Q.F32),   # 1024: small
    ("flux", "Q8_0", "single_blocks.0.linear2.weight", (256, 100), Q.F16),   # 100 % 32 != 0
    ("flux", "F16", "single_blocks.0.linear2.weight", (256, 256), Q.F16),
    ("flux", "F16", "single_blocks.0.norm.scale", (256,), Q.F32),
])
def test_choose_qtype_rules(arch, ftype, name, shape, expected):
    assert gguf_writer.choose_qtype(name, shape, arch, ftype) == expected


def test_choose_qtype_rejects_unknown():
    with pytest.raises(ValueError, match="arch"):
        gguf_writer.choose_qtype("a.weight", (256, 256), "sdxl", "Q8_0")
    with pytest.raises(ValueError, match="ftype"):
        gguf_writer.choose_qtype("a.weight", (256, 256), "flux", "Q3_K_S")


def test_integer_tensors_exact_or_refused(tmp_path):
    ok = {"levels": np.array([[8, 8, 8, 5, 5, 5]] * 200, dtype=np.int32), "mask": np.ones((2, 3), bool)}
    written = gguf_writer.write_gguf(tmp_path / "i.gguf", ok, "ace", "Q4_K_M")
    assert written == {"levels": Q.F32, "mask": Q.F32}
    _, back = _read_back(tmp_path / "i.gguf")
    assert np.array_equal(back["levels"][1], ok["levels"].astype(np.float32))
    assert np.array_equal(back["mask"][1], np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="2\\*\\*24"):
        gguf_writer.write_gguf(tmp_path / "big.gguf", {"big": np.array([2 ** 25], np.int64)}, "ace", "F16")
    assert sorted(os.listdir(tmp_path)) == ["i.gguf"]


def test_metadata_reserved_and_types(tmp_path):
    with pytest.raises(ValueError, match="general.architecture"):
        gguf_writer.write_gguf(tmp_path / "m.gguf", {"a": np.zeros(4, np.float32)}, "flux", "F16",
                               metadata={"general.architecture": "wan"})
    with pytest.raises(ValueError, match="INT32"):
        gguf_writer.write_gguf(tmp_path / "m.gguf", {"a": np.zeros(4, np.float32)}, "flux", "F16",
                               metadata={"n": 2 ** 40})
    assert os.listdir(tmp_path) == []


def _existing(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"previous file contents")
    return path


def test_unsupported_dtype_leaves_existing_file(tmp_path):
    path = _existing(tmp_path)
    sd = _flux_sd()
    sd["double_blocks.0.weird"] = np.ones((4, 4), np.complex64)
    sd["double_blocks.1.img_mlp.0.weight"] = np.ones((512, 256), np.float32)
    with pytest.raises(TypeError, match="double_blocks.0.weird.*complex"):
        gguf_writer.write_gguf(path, sd, "flux", "Q4_K_M")
    assert os.listdir(tmp_path) == ["model.gguf"]
    assert path.read_bytes() == b"previous file contents"


def test_failure_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    path = _existing(tmp_path)
    real_quantize = kquants.quantize
    seen = []

    def failing_quantize(arr, qtype):
        # the third quantized tensor: header, KVs and two tensors are already on disk
        if len(seen) == 2:
            seen.append({f: os.path.getsize(tmp_path / f) for f in os.listdir(tmp_path)})
            raise RuntimeError("disk on fire")
        seen.append(qtype)
        return real_quantize(arr, qtype)

    monkeypatch.setattr(kquants, "quantize", failing_quantize)
    with pytest.raises(RuntimeError, match="disk on fire"):
        gguf_writer.write_gguf(path, _flux_sd(), "flux", "Q4_K_M")
    during = seen[2]
    partial = [f for f in during if f != "model.gguf"]
    assert len(partial) == 1 and during[partial[0]] > 4096, during   # a real partial file existed...
    assert os.listdir(tmp_path) == ["model.gguf"]                      # ...and is gone
    assert path.read_bytes() == b"previous file contents"


def test_success_replaces_existing_file(tmp_path):
    path = _existing(tmp_path)
    gguf_writer.write_gguf(path, {"double_blocks.0.img_mlp.0.weight": np.ones((256, 256), np.float32)},
                           "wan", "Q6_K")
    assert os.listdir(tmp_path) == ["model.gguf"]
    reader, back = _read_back(path)
    assert _field(reader, "general.architecture")[1] == "wan"
    assert back["double_blocks.0.img_mlp.0.weight"][0] == Q.Q6_K
    assert np.array_equal(back["double_blocks.0.img_mlp.0.weight"][1], np.ones((256, 256), np.float32))
