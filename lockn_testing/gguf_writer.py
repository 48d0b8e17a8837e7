"""Write diffusion-model GGUF files laid out the way city96's toolchain lays them out.

city96 (ComfyUI-GGUF) makes its files in two steps: ``tools/convert.py`` writes an F16/BF16 GGUF,
then a patched ``llama-quantize`` (``tools/lcpp.patch``, ``img_tensor_get_type``) picks the
per-tensor quant types, and ``tools/fix_5d_tensors.py`` adds back the 5-D tensors. This module
does all of it in one numpy pass (K-quants from :mod:`lockn_testing.kquants`), so tests can make
Q8_0 / Q4_K_M / Q5_K_M / Q6_K / F16 files of tiny real-architecture models that ComfyUI-GGUF's
``UnetLoaderGGUF`` reads exactly like the published ones.

File contents
-------------
* KVs: ``general.architecture`` = arch, ``general.quantization_version`` = GGML_QUANT_VERSION,
  ``general.file_type`` = ``gguf.LlamaFileType.MOSTLY_*`` of the ftype, then ``metadata``.
  ComfyUI-GGUF's ``gguf_sd_loader`` returns every scalar STRING / INT32 / F32 / BOOL KV as
  ``extra["metadata"]`` and ``UnetLoaderGGUF`` hands it to
  ``comfy.sd.load_diffusion_model_state_dict(metadata=...)``; ComfyUI's model detection reads
  ``metadata["config"]`` (a JSON string with a ``"transformer"`` object, used by LTX-2). So ints
  are written as INT32 (not UINT32, which the loader would drop), bools as BOOL, floats as F32.
  Caveat: the loader converts those with ``int(field.parts[...])`` on a 1-element array, which
  recent NumPy rejects (this venv: 2.4.6; TypeError), and it swallows the error; so there only
  STRING KVs reach ComfyUI. ``config`` is a string, so LTX-2 is unaffected.
* Tensors under their ComfyUI / original checkpoint names (no ``model.diffusion_model.`` prefix),
  numpy shape order (the reader reverses ggml's ne back).

Per-tensor type (first rule that applies wins; :func:`choose_qtype`)
--------------------------------------------------------------------
1. Integer / bool tensors -> F32. ComfyUI-GGUF treats every type except F32/F16 as "quantized"
   and its fallback ``gguf.quants.dequantize`` raises NotImplementedError for I8/I16/I32/I64, so
   GGUF's integer types cannot be read back. F32 holds integers up to 2**24 exactly; larger
   magnitudes raise ValueError (never a silent lossy write).
2. More than 4 dims (Wan / LTX Conv3d patch embedding) -> F32 (fix_5d_tensors.py).
3. 1-D, at most 1024 elements (convert.py QUANTIZATION_THRESHOLD), or a name containing one of
   the arch's high-precision fragments (:data:`HIGH_PRECISION`, convert.py ``keys_hiprec``:
   wan ``.modulation``, ltxv ``scale_shift_table``) -> F32.
4. ftype F16 -> F16.
5. ``quantizable`` given and the name not in it -> F16. Only weights of layers that
   ComfyUI-GGUF's GGMLOps replace (Linear) may be quantized; a quantized raw nn.Parameter (LTX
   ``learnable_registers``, Wan ``modulation``) would not load.
6. Not exactly 2-D (conv kernels) -> F16 (lcpp.patch: ``quantize &= ggml_n_dims(tensor) == 2``).
7. Name containing one of the arch's never-quantize fragments (:data:`NEVER_QUANTIZE`,
   lcpp.patch per-arch ``name.find(...)`` exclusions) -> F16.
8. The ftype's base type, promoted like lcpp.patch ``img_tensor_get_type`` (substring matches):

   ============ ========================================================= ====== ======
   class        name fragments                                            Q4_K_M Q5_K_M
   ============ ========================================================= ====== ======
   attention V  attn_v.weight .to_v.weight .v.weight .attn.w1v.weight      Q6_K   Q6_K
                .attn.w2v.weight _attn.v_proj.weight
   fused qkv    attn_qkv.weight attn.qkv.weight attention.qkv.weight       Q5_K   Q6_K
   ffn down     ffn_down  experts.*.w2.weight .ffn.2.weight                Q6_K   Q6_K
                .ff.net.2.weight .mlp.layer2.weight
                .adaln_modulation_mlp.2.weight .feed_forward.w2.weight
                (+ ace only: .mlp.down_proj.weight, our addition)
   ============ ========================================================= ====== ======

   Everything else keeps the base type (Q4_K / Q5_K); Q6_K and Q8_0 files are not promoted.
   As in city96's rules, Flux's ``img_mlp.2`` / ``txt_mlp.2`` / ``linear2`` match none of these
   and stay at the base type.
9. Row length check: a K-quant whose last dim is not a multiple of 256 -> F16 (lcpp.patch
   fallback); Q8_0 needs a multiple of 32, else F16.

Writing is streamed (one tensor converted at a time) into a temporary file beside ``path``
that is ``os.replace``d onto ``path`` only after everything was written and fsynced: a failure
leaves neither a partial file nor a changed ``path``.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Mapping

import gguf
import numpy as np

from lockn_testing import kquants

__all__ = ["ARCHES", "FTYPES", "HIGH_PRECISION", "NEVER_QUANTIZE", "choose_qtype", "write_gguf"]

Q = gguf.GGMLQuantizationType
LFT = gguf.LlamaFileType

ARCHES = ("flux", "wan", "ltxv", "ace", "hyvid")

#: ftype name -> (base tensor type, general.file_type)
FTYPES = {
    "Q8_0": (Q.Q8_0, LFT.MOSTLY_Q8_0),
    "Q4_K_M": (Q.Q4_K, LFT.MOSTLY_Q4_K_M),
    "Q4_K_S": (Q.Q4_K, LFT.MOSTLY_Q4_K_S),
    "Q5_K_M": (Q.Q5_K, LFT.MOSTLY_Q5_K_M),
    "Q6_K": (Q.Q6_K, LFT.MOSTLY_Q6_K),
    "F16": (Q.F16, LFT.MOSTLY_F16),
}

SMALL_TENSOR_ELEMENTS = 1024      # convert.py QUANTIZATION_THRESHOLD: at most this many -> F32
MAX_TENSOR_NAME_LENGTH = 127      # convert.py MAX_TENSOR_NAME_LENGTH
_F32_EXACT_INT = 2 ** 24          # integers up to this magnitude are exact in float32

#: name fragments kept in F32 (convert.py ``keys_hiprec``; "ace" mirrors ltxv's modulation table)
HIGH_PRECISION = {
    "flux": (),
    "hyvid": (),
    "wan": (".modulation",),
    "ltxv": ("scale_shift_table",),
    "ace": ("scale_shift_table",),
}

#: name fragments never quantized, kept F16 (lcpp.patch per-arch exclusions). ACE-Step is not
#: in city96's lists; its entries follow the same idea (input/timestep embedders, output proj).
NEVER_QUANTIZE = {
    "flux": ("txt_in.", "img_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer."),
    "hyvid": ("txt_in.", "img_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer."),
    "wan": ("modulation.", "patch_embedding.", "text_embedding.", "time_projection.",
            "time_embedding.", "img_emb.", "head."),
    "ltxv": ("adaln_single.", "caption_projection.", "patchify_proj.", "proj_out.", "scale_shift_table"),
    "ace": ("proj_in.", "proj_out.", "time_embed.", "time_embed_r.", "condition_embedder."),
}

_ATTN_V = ("attn_v.weight", ".to_v.weight", ".v.weight", ".attn.w1v.weight", ".attn.w2v.weight",
           "_attn.v_proj.weight")
_ATTN_QKV = ("attn_qkv.weight", "attn.qkv.weight", "attention.qkv.weight")
_FFN_DOWN = ("ffn_down", ".ffn.2.weight", ".ff.net.2.weight", ".mlp.layer2.weight",
             ".adaln_modulation_mlp.2.weight", ".feed_forward.w2.weight")
_FFN_DOWN_EXTRA = {"ace": (".mlp.down_proj.weight",)}

#: (ftype, class) -> promoted type
_PROMOTE = {
    ("Q4_K_M", "v"): Q.Q6_K, ("Q4_K_M", "qkv"): Q.Q5_K, ("Q4_K_M", "ffn_down"): Q.Q6_K,
    ("Q5_K_M", "v"): Q.Q6_K, ("Q5_K_M", "qkv"): Q.Q6_K, ("Q5_K_M", "ffn_down"): Q.Q6_K,
    ("Q4_K_S", "ffn_down"): Q.Q5_K,      # lcpp.patch: ffn-down (it also promotes the first 4 attention-V: not here)
}

_RESERVED_KEYS = frozenset({"general.architecture", "general.file_type", "general.quantization_version"})


def _tensor_class(name: str, arch: str) -> str | None:
    """lcpp.patch order: attention V, else fused qkv, else ffn down."""
    if any(f in name for f in _ATTN_V):
        return "v"
    if any(f in name for f in _ATTN_QKV):
        return "qkv"
    if any(f in name for f in _FFN_DOWN + _FFN_DOWN_EXTRA.get(arch, ())) or \
            ("experts." in name and ".w2.weight" in name):
        return "ffn_down"
    return None


def choose_qtype(name: str, shape, arch: str, ftype: str, *, is_float: bool = True,
                 quantizable=None) -> gguf.GGMLQuantizationType:
    """The tensor type :func:`write_gguf` stores ``name`` as (rules in the module docstring)."""
    if arch not in ARCHES:
        raise ValueError(f"unsupported arch {arch!r}; expected one of {ARCHES}")
    if ftype not in FTYPES:
        raise ValueError(f"unsupported ftype {ftype!r}; expected one of {tuple(FTYPES)}")
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    size = int(np.prod(shape, dtype=np.int64))
    if not is_float:
        return Q.F32
    if ndim > 4:
        return Q.F32
    if ndim <= 1 or size <= SMALL_TENSOR_ELEMENTS or any(f in name for f in HIGH_PRECISION[arch]):
        return Q.F32
    base = FTYPES[ftype][0]
    if base == Q.F16:
        return Q.F16
    if quantizable is not None and name not in quantizable:
        return Q.F16
    if ndim != 2 or any(f in name for f in NEVER_QUANTIZE[arch]):
        return Q.F16
    qtype = _PROMOTE.get((ftype, _tensor_class(name, arch)), base)
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block:
        return Q.F16
    return qtype


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------

def _torch_tensor_type():
    torch = sys.modules.get("torch")          # a torch tensor can only exist if torch is imported
    return torch.Tensor if torch is not None else None


def _describe(value):
    """(shape, kind) without converting the data; kind is "float" or "int" (int, uint, bool)."""
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(value, tensor_type):
        dt = value.dtype
        if dt.is_floating_point:
            return tuple(value.shape), "float"
        torch = sys.modules["torch"]
        ints = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
        ints |= {getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)}
        if dt not in ints:
            raise TypeError(f"dtype {dt} is not supported (float, int, uint or bool only)")
        return tuple(value.shape), "int"
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind == "f":
        return arr.shape, "float"
    if arr.dtype.kind in "iub":
        return arr.shape, "int"
    raise TypeError(f"dtype {arr.dtype} is not supported (float, int, uint or bool only)")


def _to_numpy(value, kind: str, name: str) -> np.ndarray:
    """The tensor as a contiguous float32 array; integer tensors are checked to be exact."""
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(value, tensor_type):
        t = value.detach().cpu()
        arr = t.float().numpy() if kind == "float" else t.numpy()
    else:
        arr = np.asarray(value)
    if kind == "int" and arr.size and arr.dtype.kind != "b":
        if max(abs(int(arr.min())), abs(int(arr.max()))) > _F32_EXACT_INT:
            raise ValueError(f"tensor {name!r}: integer values beyond +-2**24 cannot be stored exactly "
                             "as F32 (and ComfyUI-GGUF cannot read GGUF integer tensors)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _encode(arr: np.ndarray, qtype, name: str) -> np.ndarray:
    if qtype == Q.F32:
        return arr
    if qtype == Q.F16:
        out = arr.astype(np.float16)
        if np.any(np.isinf(out) & np.isfinite(arr)):
            raise ValueError(f"tensor {name!r}: values beyond the float16 range (+-65504) cannot be stored as F16")
        return out
    return kquants.quantize(arr, qtype)


def _nbytes(shape, qtype) -> int:
    block, tsize = gguf.GGML_QUANT_SIZES[qtype]
    size = int(np.prod(shape, dtype=np.int64))
    return size // block * tsize


def _add_metadata(writer: gguf.GGUFWriter, metadata: Mapping) -> None:
    for key, val in metadata.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"metadata key must be a non-empty str, got {key!r}")
        if key in _RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is written by write_gguf itself")
        if isinstance(val, str):
            writer.add_string(key, val)
        elif isinstance(val, (bool, np.bool_)):
            writer.add_bool(key, bool(val))
        elif isinstance(val, (int, np.integer)):
            if not -2 ** 31 <= int(val) < 2 ** 31:
                raise ValueError(f"metadata {key!r}={val}: ints are written as INT32 (the type "
                                 "ComfyUI-GGUF forwards); value out of range")
            writer.add_int32(key, int(val))
        elif isinstance(val, (float, np.floating)):
            writer.add_float32(key, float(val))
        else:
            raise TypeError(f"metadata {key!r}: unsupported value type {type(val).__name__}")


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------

def write_gguf(path, tensors: Mapping, arch: str, ftype: str, quantizable=None,
               metadata: Mapping | None = None) -> dict[str, gguf.GGMLQuantizationType]:
    """Write ``tensors`` (name -> numpy array or torch tensor) to the GGUF file ``path``.

    ``arch``: one of :data:`ARCHES` (written as general.architecture; ComfyUI-GGUF's loader
    allow-list has flux / wan / ltxv but not "ace", which the caller must handle).
    ``ftype``: one of :data:`FTYPES`. ``quantizable``: if given, only these names may be
    quantized (pass the nn.Linear weight names); others that are not F32 by rule go F16.
    ``metadata``: extra scalar KVs (str, int -> INT32, bool, float -> F32), e.g.
    ``{"config": json.dumps({"transformer": {...}})}`` for LTX-2.

    Returns {name: tensor type written}, in file order. Raises ValueError / TypeError for bad
    arguments, dtypes or values; the file at ``path`` is then left as it was.
    """
    if arch not in ARCHES:
        raise ValueError(f"unsupported arch {arch!r}; expected one of {ARCHES}")
    if ftype not in FTYPES:
        raise ValueError(f"unsupported ftype {ftype!r}; expected one of {tuple(FTYPES)}")
    quantizable = None if quantizable is None else frozenset(quantizable)

    # plan every tensor first (no data conversion yet): bad names / dtypes fail before any I/O
    plan = []
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor name must be a non-empty str, got {name!r}")
        if len(name) > MAX_TENSOR_NAME_LENGTH:
            raise ValueError(f"tensor name longer than {MAX_TENSOR_NAME_LENGTH} characters: {name!r}")
        try:
            shape, kind = _describe(value)
        except TypeError as e:
            raise TypeError(f"tensor {name!r}: {e}") from None
        if len(shape) == 0:
            raise ValueError(f"tensor {name!r} is 0-d; ComfyUI-GGUF cannot load 0-d tensors, reshape it to (1,)")
        qtype = choose_qtype(name, shape, arch, ftype, is_float=(kind == "float"), quantizable=quantizable)
        plan.append((name, value, kind, shape, qtype))

    writer = gguf.GGUFWriter(path=None, arch=arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(FTYPES[ftype][1])
    _add_metadata(writer, metadata or {})
    for name, _value, _kind, shape, qtype in plan:
        if qtype in (Q.F32, Q.F16):
            writer.add_tensor_info(name, shape, np.dtype(np.float32 if qtype == Q.F32 else np.float16),
                                   _nbytes(shape, qtype), raw_dtype=qtype)
        else:
            block, tsize = gguf.GGML_QUANT_SIZES[qtype]
            byte_shape = (*shape[:-1], shape[-1] // block * tsize)
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), _nbytes(shape, qtype), raw_dtype=qtype)

    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex[:12]}.tmp")
    written: dict[str, gguf.GGMLQuantizationType] = {}
    try:
        writer.write_header_to_file(path=Path(tmp))
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, value, kind, shape, qtype in plan:
            raw = _encode(_to_numpy(value, kind, name), qtype, name)
            writer.write_tensor_data(raw)
            written[name] = qtype
        writer.flush()
        fout = writer.fout[0]
        os.fsync(fout.fileno())
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return written
