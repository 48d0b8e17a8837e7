"""Random-weight files at the REAL configurations and quant mixes of the catalog presets.

Test tooling (issue 15): the benchmarks need files of the size, layout and tensor types users
download (5-35 GB each) without downloading them. For each supported catalog file this module

1. gets the real tensor list (names, shapes) by building ComfyUI's own model class with the
   published configuration on the ``meta`` device (no memory is allocated);
2. assigns every tensor the storage type the public file uses (the *quant mix*): city96's GGUF
   rules (ComfyUI-GGUF ``tools/convert.py`` + ``tools/lcpp.patch``), Comfy-Org's fp8 "scaled"
   layouts (``scaled_fp8`` + ``.scale_weight``, read by ``comfy.utils.convert_old_quants``) and
   the newer per-layer ``.comfy_quant`` + ``.weight_scale`` layout (``comfy/ops.py``
   ``MixedPrecisionOps``), plain bf16 / fp16 / fp32 files;
3. computes the file size from that plan and the header alone (:meth:`FilePlan.size`), which
   must match the catalog's ``size`` within 1% (:func:`size_table`): that is the check that the
   configuration and the quant mix are the real ones;
4. writes the file with random content (:func:`write_files`, the one writer, also behind
   :meth:`FilePlan.write`): the header and the size first, then the tensors in groups, each into
   its place (pwrite), in chunks of at most :data:`CHUNK_BYTES` with a background writer thread per
   group, in this process or in ``workers`` processes at once; memory stays bounded and a 10-20 GB
   file takes minutes (one worker). K-quant / Q8_0 blocks are written directly in the
   block format (random codes, fp16 super-block scales sized so the dequantized weights have
   the std of a fan-in init), not by quantizing floats; bf16 / fp16 / fp32 / fp8 values are
   random bit patterns with a bounded exponent (always finite, never NaN/Inf).

CLI::

    python -m lockn_testing.fullsize --preset wan22-i2v-a14b-q4_k_m --dry-run
    python -m lockn_testing.fullsize --preset wan22-i2v-a14b-q4_k_m --out /tmp/models
    python -m lockn_testing.fullsize --file Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf --out /tmp/m
    python -m lockn_testing.fullsize --preset wan22-i2v-a14b-q4_k_m --out /tmp/models --workers 8
    python -m lockn_testing.fullsize --all --dry-run        # the size table of every supported file

Written files go to ``OUT/<catalog folder>/<file name>`` (the layout of a ComfyUI models dir).

Where a configuration or quant mix is inferred rather than read from a public source, the
recipe says so (``FilePlan.notes``, printed with the table). See :data:`RECIPES` for the list
of supported files; :func:`unsupported` lists the catalog files without a recipe and why.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

__all__ = ["TensorSpec", "FilePlan", "RECIPES", "KNOWN_CATALOG_GAPS", "plan_file", "plan_preset", "write_files",
           "plan_truncated", "size_table", "format_table", "supported", "unsupported", "main"]

CHUNK_BYTES = 32 << 20          # bytes generated per step (bounded memory: about 4 chunks alive)
GGUF_ALIGNMENT = 32             # general.alignment default (gguf-py, llama.cpp)
TOLERANCE = 0.01                # plan size vs catalog size

# --------------------------------------------------------------------------------------------
# storage types
# --------------------------------------------------------------------------------------------

#: safetensors dtype name -> bytes per element
ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "U8": 1,
               "I8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}

#: GGML type name -> (id, block size in elements, bytes per block); ids as in gguf-py/ggml
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144),
        "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}

#: GGUF file types (gguf.LlamaFileType) by ftype name
LLAMA_FILE_TYPE = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "BF16": 32}
GGML_QUANT_VERSION = 2


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a planned file.

    ``dtype``: a safetensors dtype name (:data:`ST_ITEMSIZE`) for safetensors files, a GGML
    type name (:data:`GGML`) for GGUF files. ``shape`` in PyTorch / numpy order.
    Content: ``raw`` (fixed bytes: comfy_quant JSON, tokenizer blobs), else ``const`` (every
    element that value), else random with standard deviation about ``std`` around ``mean``
    (for fp8 weights: the stored fp8 values; the real scale is the layer's ``weight_scale``).
    """
    name: str
    shape: tuple[int, ...]
    dtype: str
    std: float = 0.02
    mean: float = 0.0
    const: float | None = None
    raw: bytes | None = None
    role: str = ""

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))

    def nbytes(self, fmt: str) -> int:
        if fmt == "gguf":
            _, block, bsize = GGML[self.dtype]
            if self.numel % block:
                raise ValueError(f"{self.name}: {self.numel} elements is not a multiple of the {self.dtype} block {block}")
            return self.numel // block * bsize
        return self.numel * ST_ITEMSIZE[self.dtype]


def _align(n: int, a: int = GGUF_ALIGNMENT) -> int:
    return (n + a - 1) // a * a


# --------------------------------------------------------------------------------------------
# random content
# --------------------------------------------------------------------------------------------

class _Rng:
    """Fast random bits (SFC64 raw output, about 1 GB/s on one core)."""

    def __init__(self, seed: int):
        self.bitgen = np.random.SFC64(seed)
        self.gen = np.random.Generator(self.bitgen)

    def u8(self, n: int) -> np.ndarray:
        words = self.bitgen.random_raw((n + 7) // 8)
        return words.view(np.uint8)[:n]

    def u16(self, n: int) -> np.ndarray:
        return self.bitgen.random_raw((n + 3) // 4).view(np.uint16)[:n]

    def u32(self, n: int) -> np.ndarray:
        return self.bitgen.random_raw((n + 1) // 2).view(np.uint32)[:n]


def _exp_of(std: float) -> int:
    return int(math.floor(math.log2(max(float(std), 1e-30))))


#: (unsigned view, mantissa bits, exponent bias, largest finite exponent field) per float type
_FLOAT_LAYOUT = {"F32": (np.uint32, 23, 127, 254), "F16": (np.uint16, 10, 15, 30),
                 "BF16": (np.uint16, 7, 127, 254), "F8_E4M3": (np.uint8, 3, 7, 14),   # 15 + mantissa 7 is NaN
                 "F8_E5M2": (np.uint8, 2, 15, 30)}


def _float_bits(rng: _Rng, n: int, dtype: str, std: float, mean: float) -> np.ndarray:
    """n random values as raw bits: |v| in [2^(e-1), 2^(e+1)) with 2^e about std, random sign
    (mean == 0) or positive (mean != 0: values around mean, for norm scales). The exponent field
    is a fixed base plus one random bit, so every value is finite (never NaN, Inf or subnormal)."""
    utype, mbits, bias, emax = _FLOAT_LAYOUT[dtype]
    nbits = np.dtype(utype).itemsize * 8
    e, signed = (_exp_of(abs(mean)), False) if mean else (_exp_of(std), True)
    field = min(max(bias + e - 1, 1), emax - 1)            # field or field + 1, both in [1, emax]
    mask = ((1 << mbits) - 1) | (1 << mbits) | ((1 << (nbits - 1)) if signed else 0)
    words = (n * np.dtype(utype).itemsize + 7) // 8
    r = rng.bitgen.random_raw(words).view(utype)[:n]
    r &= utype(mask)
    r += utype(field << mbits)
    return r


def _const_bits(n: int, dtype: str, value: float) -> np.ndarray:
    if dtype == "F32":
        return np.full(n, value, np.float32)
    if dtype == "F16":
        return np.full(n, value, np.float16)
    if dtype == "BF16":
        return np.full(n, np.float32(value).view(np.uint32) >> 16, np.uint16).astype(np.uint16)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        import torch
        t = torch.full((n,), float(value), dtype=torch.float8_e4m3fn if dtype == "F8_E4M3" else torch.float8_e5m2)
        return t.view(torch.uint8).numpy()
    if dtype in ("U8", "I8", "I16", "I32", "I64", "BOOL"):
        return np.full(n, int(value), {"U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32,
                                       "I64": np.int64, "BOOL": np.uint8}[dtype])
    raise ValueError(f"no constant fill for {dtype}")


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint8).reshape(-1, 2)


def _unit_std(qtype: str) -> float:
    """std of the dequantized weight per unit of the fp16 scale d, for the random fields below."""
    if qtype in ("Q4_K", "Q5_K"):
        qmax = 15 if qtype == "Q4_K" else 31
        half = qmax / 2
        e_sc2 = 63 * 127 / 6                       # sc, m uniform on 0..63
        e_q2 = qmax * (2 * qmax + 1) / 6           # q uniform on 0..qmax
        return math.sqrt(e_sc2 * e_q2 - (31.5 * half) ** 2 + half ** 2 * (64 ** 2 - 1) / 12)
    if qtype == "Q6_K":
        e_sc2 = sum(s * s for s in range(8, 40)) / 32
        return math.sqrt(e_sc2 * ((64 ** 2 - 1) / 12 + 0.25))
    if qtype == "Q8_0":
        return math.sqrt((256 ** 2 - 1) / 12 + 0.25)
    raise ValueError(qtype)


_KQ_UNIT = {q: _unit_std(q) for q in ("Q4_K", "Q5_K", "Q6_K", "Q8_0")}


def _kquant_blocks(rng: _Rng, nblocks: int, qtype: str, std: float) -> np.ndarray:
    """nblocks random blocks of qtype, (nblocks, bytes per block) uint8.

    Codes (qs/qh/ql) and sub-block scales are random bits: every bit pattern is a valid block.
    The fp16 super-block scale d (and dmin) are set so that the dequantized weights have a std
    of about ``std`` and a mean of about 0:
    Q4_K/Q5_K ``w = d*sc*q - dmin*m`` with sc, m uniform 6-bit and dmin = (qmax/2)*d;
    Q6_K ``w = d*sc*(q-32)`` with int8 sc limited to 8..39; Q8_0 ``w = d*q``.
    """
    _, _, bsize = GGML[qtype]
    blocks = rng.u8(nblocks * bsize).reshape(nblocks, bsize)
    # 16 scale values 0.75x .. 1.25x of the nominal one, picked per block by 4 random code bits
    jitter = np.linspace(0.75, 1.25, 16, dtype=np.float32)
    pick = blocks[:, 16] & 15                      # a code byte of every block type
    d = (std / _KQ_UNIT[qtype]) * jitter
    if qtype in ("Q4_K", "Q5_K"):
        half = (15 if qtype == "Q4_K" else 31) / 2
        blocks[:, 0:2] = _f16(d)[pick]
        blocks[:, 2:4] = _f16(d * half)[pick]
    elif qtype == "Q6_K":
        sc = blocks[:, 192:208]
        sc &= 0x1F                                  # int8 scales 8..39
        sc += 8
        blocks[:, 208:210] = _f16(d)[pick]
    elif qtype == "Q8_0":
        blocks[:, 0:2] = _f16(d)[pick]
    else:
        raise ValueError(f"not a block type: {qtype}")
    return blocks


def _chunks(spec: TensorSpec, fmt: str, rng: _Rng) -> Iterator[np.ndarray]:
    """The tensor's bytes, in pieces of at most about CHUNK_BYTES."""
    total = spec.nbytes(fmt)
    if spec.raw is not None:
        if len(spec.raw) != total:
            raise ValueError(f"{spec.name}: raw content is {len(spec.raw)} bytes, the plan says {total}")
        yield np.frombuffer(spec.raw, np.uint8)
        return
    if fmt == "gguf" and GGML[spec.dtype][1] > 1:
        _, block, bsize = GGML[spec.dtype]
        nblocks = spec.numel // block
        step = max(1, CHUNK_BYTES // bsize)
        for i in range(0, nblocks, step):
            yield _kquant_blocks(rng, min(step, nblocks - i), spec.dtype, spec.std)
        return
    dtype = {"F32": "F32", "F16": "F16", "BF16": "BF16"}.get(spec.dtype, spec.dtype)
    itemsize = ST_ITEMSIZE[dtype]
    n = spec.numel
    step = max(1, CHUNK_BYTES // itemsize)
    for i in range(0, n, step):
        m = min(step, n - i)
        if spec.const is not None:
            yield _const_bits(m, dtype, spec.const)
        elif dtype in ("U8",):
            yield rng.u8(m)
        elif dtype in ("I8", "I16", "I32", "I64", "BOOL"):
            yield _const_bits(m, dtype, 0)
        else:
            yield _float_bits(rng, m, dtype, spec.std, spec.mean)


# --------------------------------------------------------------------------------------------
# headers
# --------------------------------------------------------------------------------------------

def _gguf_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _gguf_kv(key: str, value) -> bytes:
    """STRING (8), UINT32 (4) for the general.* ints, INT32 (5) other ints, FLOAT32 (6), BOOL (7)."""
    out = _gguf_str(key)
    if isinstance(value, bool):
        return out + struct.pack("<I?", 7, value)
    if isinstance(value, str):
        return out + struct.pack("<I", 8) + _gguf_str(value)
    if isinstance(value, int):
        if key.startswith("general."):
            return out + struct.pack("<II", 4, value)
        return out + struct.pack("<Ii", 5, value)
    if isinstance(value, float):
        return out + struct.pack("<If", 6, value)
    raise TypeError(f"GGUF KV {key!r}: unsupported value {value!r}")


def gguf_header(tensors: list[TensorSpec], kv: dict) -> bytes:
    """The GGUF v3 header (KVs, tensor infos, padding to the alignment), as gguf-py writes it."""
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, v in kv.items():
        out += _gguf_kv(k, v)
    offset = 0
    for t in tensors:
        out += _gguf_str(t.name)
        out += struct.pack("<I", len(t.shape))
        for d in reversed(t.shape):
            out += struct.pack("<Q", d)
        out += struct.pack("<IQ", GGML[t.dtype][0], offset)
        offset += _align(t.nbytes("gguf"))
    out += b"\x00" * (_align(len(out)) - len(out))
    return bytes(out)


def safetensors_header(tensors: list[TensorSpec], metadata: dict | None) -> bytes:
    """8-byte length + JSON header (space-padded to a multiple of 8), tensors in plan order."""
    doc: dict = {}
    if metadata:
        doc["__metadata__"] = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()}
    off = 0
    for t in tensors:
        nb = t.nbytes("safetensors")
        doc[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [off, off + nb]}
        off += nb
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js


# --------------------------------------------------------------------------------------------
# the plan of one file
# --------------------------------------------------------------------------------------------

@dataclass
class FilePlan:
    """Everything needed to size or write one file: format, tensors (in file order), header data."""
    name: str
    format: str                      # "gguf" | "safetensors"
    tensors: list[TensorSpec]
    kv: dict = field(default_factory=dict)          # GGUF key/values (general.* first)
    metadata: dict = field(default_factory=dict)    # safetensors __metadata__
    notes: list[str] = field(default_factory=list)  # where the recipe is inferred, not read
    detect: dict = field(default_factory=dict)      # what ComfyUI should detect (tests)
    params: int = 0                                  # parameters of the model (not scales)

    def header(self) -> bytes:
        if self.format == "gguf":
            return gguf_header(self.tensors, self.kv)
        return safetensors_header(self.tensors, self.metadata)

    def size(self) -> int:
        """The file size in bytes, computed without writing anything."""
        head = len(self.header())
        if self.format == "gguf":
            return head + sum(_align(t.nbytes("gguf")) for t in self.tensors)
        return head + sum(t.nbytes("safetensors") for t in self.tensors)

    def dtype_bytes(self) -> dict[str, int]:
        """Bytes per storage type (the quant mix at a glance)."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes(self.format)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def layout(self) -> tuple[bytes, list[tuple[TensorSpec, int]], int]:
        """(header, [(tensor, offset in the file)], file size): where :func:`write_files` puts every tensor
        (GGUF data aligned to :data:`GGUF_ALIGNMENT`, the padding left zero)."""
        head = self.header()
        pos, items = len(head), []
        for t in self.tensors:
            items.append((t, pos))
            nb = t.nbytes(self.format)
            pos += _align(nb) if self.format == "gguf" else nb
        if pos != self.size():
            raise AssertionError(f"{self.name}: layout {pos} bytes, plan {self.size()}")
        return head, items, pos

    def write(self, path: str, seed: int = 0, progress: Callable[[int, int], None] | None = None,
              workers: int = 1) -> dict:
        """Write the file to ``path`` (atomically: a temporary name beside it, then a rename), with
        :func:`write_files` (``workers`` processes; 1: in this process).

        Returns {"path", "bytes", "seconds"}. The written size equals :meth:`size`; the content
        depends on ``seed`` only, not on ``workers``.
        """
        path = os.fspath(path)
        res = write_files([(self.name, self, path)], workers=workers, seed=seed, raise_errors=True,
                          progress=(lambda name, done, total: progress(done, total)) if progress else None)
        f = res["files"][self.name]
        return {"path": path, "bytes": f["bytes"], "seconds": res["seconds"]}


# --------------------------------------------------------------------------------------------
# the writer
# --------------------------------------------------------------------------------------------

def _write_tensors(path: str, fmt: str, items: list, seed: tuple,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write tensors [(index in the file, TensorSpec, offset)] into the file at ``path`` in place
    (pwrite), each from its own random stream (``seed`` + its index), so the content does not depend on
    how the tensors are grouped or on the number of writers. Random content is generated in this thread
    while a second one writes. Returns the bytes written. A worker of :func:`write_files` (module-level:
    it runs in spawned processes)."""
    q: queue.Queue = queue.Queue(maxsize=3)
    errors: list[BaseException] = []
    fd = os.open(path, os.O_WRONLY)

    def writer():
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                off, mv = item
                while len(mv):
                    w = os.pwrite(fd, mv, off)
                    off += w
                    mv = mv[w:]
        except BaseException as e:          # noqa: BLE001 (raised in the caller's thread below)
            errors.append(e)
            while q.get() is not None:      # drain so the producer never blocks
                pass

    total = 0
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        for index, spec, off in items:
            rng = _Rng([*seed, index])
            nb = 0
            for piece in _chunks(spec, fmt, rng):
                if errors:
                    raise errors[0]
                mv = memoryview(np.ascontiguousarray(piece).view(np.uint8).reshape(-1))
                q.put((off + nb, mv))
                nb += len(mv)
            if nb != spec.nbytes(fmt):
                raise AssertionError(f"{spec.name}: wrote {nb} bytes, planned {spec.nbytes(fmt)}")
            total += nb
            if progress:
                progress(nb)
    finally:
        q.put(None)
        th.join()
        os.close(fd)
    if errors:
        raise errors[0]
    return total


def write_files(jobs: Iterable[tuple[str, "FilePlan", str | os.PathLike]], workers: int = 1,
                deadline_s: float | None = None, group_bytes: int = 512 << 20, seed: int = 0,
                raise_errors: bool = False, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """THE writer of full-size files: write [(name, FilePlan, final path)].

    Each file is laid out first (:meth:`FilePlan.layout`: its header written, the file truncated to its
    size, under a temporary name beside the final one), then its tensors are written in groups of about
    ``group_bytes``, by ``workers`` processes (spawned; ``workers=1``: in this process, no pool), each
    group with pwrite into its place. A file whose groups are all written is fsynced and renamed into
    place. At ``deadline_s`` (seconds from the start; None: none) the writing stops and unfinished files
    are removed. A failed group fails its file (reported, the others go on), or, with ``raise_errors``,
    raises once the temporary files are removed. ``progress(name, bytes done, file size)`` follows every
    tensor in this process, every group with workers.

    Returns {"workers", "seconds", "timed_out", "files": {name: {"path", "bytes", "written", "done_at_s",
    "fsync_s"[, "error"]}}, "written_bytes", "gb_per_s"}.

    It needs numpy and the standard library only (the plans come from the caller), so the GPU script
    (bench/gpu_real_shapes.py) writes with it on the device machine from what it carries."""
    import concurrent.futures as cf
    t0 = time.time()
    files: dict[str, dict] = {}
    tasks: list[tuple[str, str, str, list, tuple]] = []      # (name, tmp path, format, items, seed)
    try:
        for k, (name, plan, path) in enumerate(jobs):
            path = os.fspath(path)
            directory, base = os.path.split(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex[:8]}.partial")
            head, items, size = plan.layout()
            with open(tmp, "wb") as f:
                f.write(head)
                f.truncate(size)                   # the GGUF alignment padding stays zero
            groups, cur, cur_b = [], [], 0
            for i, (spec, off) in enumerate(items):
                cur.append((i, spec, off))
                cur_b += spec.nbytes(plan.format)
                if cur_b >= group_bytes:
                    groups.append(cur)
                    cur, cur_b = [], 0
            if cur or not groups:
                groups.append(cur)
            files[name] = {"path": path, "tmp": tmp, "size": size, "left": len(groups), "bytes": len(head),
                           "expect": len(head) + sum(spec.nbytes(plan.format) for spec, _ in items)}
            tasks += [(name, tmp, plan.format, g, (seed, k)) for g in groups]

        def finished(name, nbytes=None, error=None):
            fi = files[name]
            if fi["left"] < 0:
                return
            if error is not None:
                fi["error"], fi["left"] = f"{type(error).__name__}: {str(error)[:300]}", -1
                fi["exc"] = error
                return
            fi["bytes"] += nbytes
            fi["left"] -= 1
            if fi["left"] == 0:
                t_sync = time.time()
                if os.path.getsize(fi["tmp"]) != fi["size"] or fi["bytes"] != fi["expect"]:
                    raise AssertionError(f"{name}: {fi['bytes']} bytes written ({os.path.getsize(fi['tmp'])} on disk), "
                                         f"planned {fi['expect']} ({fi['size']})")
                fd = os.open(fi["tmp"], os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(fi["tmp"], fi["path"])
                fi["fsync_s"] = round(time.time() - t_sync, 2)
                fi["done_at_s"] = round(time.time() - t0, 1)
            if progress:
                progress(name, fi["size"] if fi["left"] == 0 else fi["bytes"], fi["size"])

        def late():
            return deadline_s is not None and time.time() - t0 >= deadline_s

        timed_out = False
        if workers <= 1:
            for name, tmp, fmt, g, sd in tasks:
                if late():
                    timed_out = True
                    break
                if files[name]["left"] < 0:
                    continue
                fi = files[name]
                done = [fi["bytes"]]

                def tick(nb, name=name, done=done):
                    done[0] += nb
                    if progress and done[0] < files[name]["size"]:
                        progress(name, done[0], files[name]["size"])
                try:
                    finished(name, _write_tensors(tmp, fmt, g, sd, tick))
                except Exception as e:             # noqa: BLE001 (the file is reported as not written)
                    finished(name, error=e)
        else:
            import multiprocessing as mp
            ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
            try:
                futs = {ex.submit(_write_tensors, tmp, fmt, g, sd): name for name, tmp, fmt, g, sd in tasks}
                pending = set(futs)
                while pending:
                    wait = 5.0 if deadline_s is None else min(deadline_s - (time.time() - t0), 5.0)
                    if wait <= 0:
                        break
                    done, pending = cf.wait(pending, timeout=wait, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        name = futs[fut]
                        try:
                            finished(name, fut.result())
                        except Exception as e:     # noqa: BLE001 (the file is reported as not written)
                            finished(name, error=e)
                timed_out = bool(pending)
                if timed_out:
                    for proc in list(getattr(ex, "_processes", {}).values()):     # our own workers
                        proc.terminate()
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
    finally:
        for fi in files.values():                  # whatever did not finish leaves nothing behind
            if fi["left"] != 0 and os.path.exists(fi["tmp"]):
                os.unlink(fi["tmp"])
    if raise_errors:
        for name, fi in files.items():
            if "exc" in fi:
                raise fi["exc"]
            if fi["left"] != 0:
                raise TimeoutError(f"{name}: not written within {deadline_s} s")
    out = {"workers": workers, "seconds": round(time.time() - t0, 3), "timed_out": timed_out, "files": {}}
    for name, fi in files.items():
        ok = fi["left"] == 0
        out["files"][name] = {"path": fi["path"], "bytes": fi["size"], "written": ok, "done_at_s": fi.get("done_at_s"),
                              "fsync_s": fi.get("fsync_s"), **({"error": fi["error"]} if "error" in fi else {})}
    done_b = sum(f["bytes"] for f in out["files"].values() if f["written"])
    out["written_bytes"] = done_b
    out["gb_per_s"] = round(done_b / 1e9 / max(out["seconds"], 1e-6), 3)
    return out


# --------------------------------------------------------------------------------------------
# sources: the real tensor lists, from ComfyUI's own classes built on the meta device
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Src:
    """One tensor of a model as ComfyUI builds it: name, shape, what it is, its source dtype."""
    name: str
    shape: tuple[int, ...]
    role: str          # linear | embed | conv | norm | bias | param | buffer | int
    module: str = ""   # the owning module's name

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))

    @property
    def fan_in(self) -> int:
        return max(1, int(math.prod(self.shape[1:]))) if len(self.shape) > 1 else 1


def _comfy():
    """Import ComfyUI (CPU args) once; returns torch."""
    if "comfy.model_management" not in sys.modules and "comfy.cli_args" not in sys.modules:
        from lockn_testing.comfy_boot import boot
        boot()
    import torch
    return torch


def _entries(module, rename: Callable[[str], str | None] = lambda k: k) -> list[Src]:
    """The state dict of ``module`` (built on meta) as Src entries, roles from the owning modules."""
    torch = _comfy()
    owner: dict[str, object] = {}
    for mname, mod in module.named_modules():
        for pname, _ in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            owner[f"{mname}.{pname}" if mname else pname] = (mname, mod)
    out = []
    for key, t in module.state_dict(keep_vars=True).items():
        new = rename(key)
        if new is None:
            continue
        mname, mod = owner.get(key, ("", None))
        leaf = key.rsplit(".", 1)[-1]
        cls = type(mod).__name__ if mod is not None else ""
        if not t.dtype.is_floating_point:
            role = "int"
        elif isinstance(mod, torch.nn.Linear) and leaf == "weight":
            role = "linear"
        elif isinstance(mod, torch.nn.Embedding) and leaf == "weight":
            role = "embed"
        elif leaf == "bias":
            role = "bias"
        elif "Conv" in cls and leaf == "weight":
            role = "conv"
        elif ("Norm" in cls or "norm" in key.lower() or leaf in ("scale", "gamma")) and t.ndim <= 1:
            role = "norm"
        elif key in dict(module.named_buffers()):
            role = "buffer"
        else:
            role = "param"
        out.append(Src(new, tuple(int(s) for s in t.shape), role, mname))
    return out


def _std(s: Src) -> tuple[float, float]:
    """(std, mean) of a fan-in init for the tensor: matrices N(0, 1/fan_in), norm scales about 1."""
    if s.role in ("linear", "conv"):
        return 1.0 / math.sqrt(s.fan_in), 0.0
    if s.role == "norm" or s.name.endswith(("running_var", "std-of-means")):
        return 0.25, 1.0
    if s.role == "embed":
        return 0.02, 0.0
    return 0.02, 0.0


def src_flux2(hidden: int, depth: int, single: int, context: int, guidance: bool) -> list[Src]:
    """Flux.2 DiT (comfy.ldm.flux.model.Flux, the flux2 branch of comfy/model_detection.py) under
    BFL's checkpoint names (QK-norm ``*_norm.scale``)."""
    torch = _comfy()
    import comfy.ldm.flux.model
    import comfy.ops
    from lockn_testing.tiny.flux2 import dit_config
    cfg = dit_config(context, hidden, depth, single, guidance)
    m = comfy.ldm.flux.model.Flux(dtype=torch.bfloat16, device="meta", operations=comfy.ops.disable_weight_init, **cfg)
    return _entries(m, lambda k: k[:-len(".weight")] + ".scale" if k.endswith("_norm.weight") else k)


def src_wan(dim: int, ffn: int, layers: int, in_dim: int, out_dim: int = 16, model_type: str = "t2v") -> list[Src]:
    """Wan 2.1/2.2 DiT (comfy.ldm.wan.model.WanModel); the 2.2 I2V A14B experts are the t2v
    layout with in_dim 36 (no img_emb), as ComfyUI detects them."""
    torch = _comfy()
    import comfy.ldm.wan.model
    import comfy.ops
    cfg = dict(model_type=model_type, patch_size=(1, 2, 2), text_len=512, in_dim=in_dim, dim=dim, ffn_dim=ffn,
               freq_dim=256, text_dim=4096, out_dim=out_dim, num_heads=dim // 128, num_layers=layers,
               window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)
    m = comfy.ldm.wan.model.WanModel(**cfg, operations=comfy.ops.disable_weight_init, dtype=torch.float16, device="meta")
    return _entries(m)


def src_ltx2(num_layers: int = 48) -> list[Src]:
    """LTX-2 19B audio+video DiT (comfy.ldm.lightricks.av_model.LTXAVModel, whose defaults are the
    19B configuration), including the embeddings connectors ComfyUI builds into it."""
    torch = _comfy()
    import comfy.ops
    from comfy.ldm.lightricks.av_model import LTXAVModel
    m = LTXAVModel(num_layers=num_layers, dtype=torch.bfloat16, device="meta", operations=comfy.ops.disable_weight_init)
    return _entries(m)


def src_ace15(**over) -> list[Src]:
    """ACE-Step 1.5 DiT (comfy.ldm.ace.ace_step15.AceStepConditionGenerationModel, defaults = turbo 2B)."""
    torch = _comfy()
    import comfy.ops
    from comfy.ldm.ace.ace_step15 import AceStepConditionGenerationModel
    # FSQ calls .item() on a tensor built on `device`: build on CPU with layers forced to meta
    m = AceStepConditionGenerationModel(dtype=torch.bfloat16, device="cpu", operations=_meta_ops(), **over)
    return _entries(m)


def _meta_ops():
    """comfy.ops.disable_weight_init whose layers are always created on the meta device."""
    _comfy()
    import comfy.ops
    base = comfy.ops.disable_weight_init
    attrs = {}
    for name in ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "Embedding",
                 "LayerNorm", "GroupNorm", "RMSNorm"):
        parent = getattr(base, name, None)
        if parent is None:
            continue

        def init(self, *a, _parent=parent, **k):
            k["device"] = "meta"
            _parent.__init__(self, *a, **k)
        attrs[name] = type(name, (parent,), {"__init__": init})
    return type("MetaOps", (base,), attrs)


def _llama_class(cls_name: str, config: dict | None = None, prefix: str = ""):
    torch = _comfy()
    import comfy.ops
    import comfy.text_encoders.llama as llama
    cls = getattr(llama, cls_name)
    m = cls(config or {}, torch.bfloat16, "meta", comfy.ops.disable_weight_init)
    return _entries(m, lambda k: prefix + k)


def src_mistral3_flux2() -> list[Src]:
    """Mistral Small 3.x 24B as ComfyUI's Flux.2 text encoder reads it: the 30 first layers
    (MISTRAL3_24B_PRUNED_FLUX2: detected by the missing layer 39), no final norm use, no lm_head."""
    return _llama_class("Mistral3Small24B", {"num_hidden_layers": 30})


def src_qwen3(cls_name: str, config: dict | None = None) -> list[Src]:
    return _llama_class(cls_name, config)


def src_umt5_xxl() -> list[Src]:
    """umt5-xxl encoder (comfy.text_encoders.t5.T5 with umt5_config_xxl.json)."""
    torch = _comfy()
    import comfy.ops
    import comfy.text_encoders.t5 as t5
    with open(os.path.join(os.path.dirname(t5.__file__), "umt5_config_xxl.json")) as f:
        cfg = json.load(f)
    m = t5.T5(cfg, torch.bfloat16, "meta", comfy.ops.disable_weight_init)
    return _entries(m)


def src_flux2_vae() -> list[Src]:
    """The Flux.2 VAE (AutoencoderKL, 32 latent channels, batch-norm latent statistics)."""
    _comfy()
    from comfy.ldm.models.autoencoder import AutoencoderKL
    import torch
    dd = {"double_z": True, "z_channels": 32, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0, "batch_norm_latent": True}
    with torch.device("meta"):
        m = AutoencoderKL(ddconfig=dd, embed_dim=32)
    return _entries(m)


def src_wan21_vae() -> list[Src]:
    _comfy()
    import comfy.ldm.wan.vae
    import torch
    with torch.device("meta"):
        m = comfy.ldm.wan.vae.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                     temperal_downsample=[False, True, True], dropout=0.0)
    return _entries(m)


def src_wan22_vae() -> list[Src]:
    _comfy()
    import comfy.ldm.wan.vae2_2
    import torch
    with torch.device("meta"):
        m = comfy.ldm.wan.vae2_2.WanVAE(dim=160, dec_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                        attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    return _entries(m)


def src_ace15_vae() -> list[Src]:
    _comfy()
    from comfy.ldm.audio.autoencoder import AudioOobleckVAE
    import torch
    with torch.device("meta"):
        m = AudioOobleckVAE(strides=[2, 4, 4, 6, 10], channels=128, c_mults=[1, 2, 4, 8, 16])
    return _entries(m)


def src_gemma3_12b() -> list[Src]:
    """Gemma 3 12B as ComfyUI's LTX-2 text encoder reads it (language model and vision tower)."""
    return _llama_class("Gemma3_12B")


# --------------------------------------------------------------------------------------------
# quant mixes
# --------------------------------------------------------------------------------------------

def _sorted(specs: Iterable[TensorSpec]) -> list[TensorSpec]:
    """Name order: safetensors writers sort the keys, and convert.py walks them in that order."""
    return sorted(specs, key=lambda t: t.name)


def _spec(s: Src, dtype: str, **kw) -> TensorSpec:
    std, mean = _std(s)
    kw.setdefault("std", std)
    kw.setdefault("mean", mean)
    return TensorSpec(s.name, s.shape, dtype, role=s.role, **kw)


#: city96's never-quantize fragments per arch (lcpp.patch), with the Flux.2 modulation rule of the
#: "auto_convert" branch (commit ec7506d, 2025-11-27, used for the FLUX.2-dev GGUFs)
NEVER_QUANTIZE = {
    "flux": ("txt_in.", "img_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.",
             "single_stream_modulation.", "double_stream_modulation_"),
    "wan": ("modulation.", "patch_embedding.", "text_embedding.", "time_projection.", "time_embedding.",
            "img_emb.", "head."),
    "ltxv": ("adaln_single.", "caption_projection.", "patchify_proj.", "proj_out.", "scale_shift_table"),
    # ACE-Step 1.5 is not in city96's lists: lockn_testing.gguf_writer's choice for it
    "ace": ("proj_in.", "proj_out.", "time_embed.", "time_embed_r.", "condition_embedder."),
}
#: convert.py keys_hiprec (kept F32)
HIGH_PRECISION = {"flux": (), "wan": (".modulation",), "ltxv": ("scale_shift_table",), "ace": ("scale_shift_table",)}


def city96_qtype(name: str, shape: tuple[int, ...], arch: str, ftype: str, unquantized: str,
                 promote_extra: Callable[[str], bool] | None = None) -> str:
    """The GGML type city96's toolchain gives a tensor: convert.py (F32 for 1-D, <= 1024 elements
    and keys_hiprec; else the source's BF16/F16; 5-D tensors come back as F32 via
    fix_5d_tensors.py), then llama-quantize with lcpp.patch (only 2-D ``*weight`` tensors outside
    the never-quantize list; img_tensor_get_type promotions; F16 fallback for rows that are not a
    multiple of the block). ``promote_extra(name)``: tensors promoted like a fused qkv (Q4_K_M ->
    Q5_K, Q5_K_M -> Q6_K) on top of the published rules."""
    from lockn_testing.gguf_writer import _PROMOTE, _tensor_class
    n = int(math.prod(shape))
    if len(shape) > 4:
        return "F32"
    if len(shape) <= 1 or n <= 1024 or any(f in name for f in HIGH_PRECISION[arch]):
        return "F32"
    if ftype in ("F16", "BF16"):
        return ftype
    if not name.endswith("weight") or len(shape) != 2 or any(f in name for f in NEVER_QUANTIZE[arch]):
        return unquantized
    base = {"Q8_0": "Q8_0", "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K"}[ftype]
    cls = _tensor_class(name, arch)
    promoted = _PROMOTE.get((ftype, cls))
    if promoted is None and promote_extra is not None and promote_extra(name):
        promoted = _PROMOTE.get((ftype, "qkv"))
    qtype = promoted.name if promoted is not None else base
    if shape[-1] % GGML[qtype][1]:
        return "F16"
    return qtype


def gguf_plan(file_name: str, src: list[Src], arch: str, ftype: str, unquantized: str,
              promote_extra=None, notes=(), detect=None, kv=None) -> FilePlan:
    specs = [_spec(s, city96_qtype(s.name, s.shape, arch, ftype, unquantized, promote_extra)) for s in src]
    kvs = {"general.architecture": arch, "general.quantization_version": GGML_QUANT_VERSION,
           "general.file_type": LLAMA_FILE_TYPE[ftype]}
    kvs.update(kv or {})
    return FilePlan(file_name, "gguf", _sorted(specs), kv=kvs, notes=list(notes), detect=detect or {},
                    params=sum(s.numel for s in src))


def plain_plan(file_name: str, src: list[Src], dtype: str, keep: dict[str, str] | None = None, notes=(),
               detect=None, extra: list[TensorSpec] = (), metadata=None) -> FilePlan:
    """Every float tensor in ``dtype`` (``keep``: name fragment -> other dtype), integers as I64."""
    specs = []
    for s in src:
        if s.role == "int":
            specs.append(TensorSpec(s.name, s.shape, "I64", const=0, role="int"))
            continue
        d = next((v for k, v in (keep or {}).items() if k in s.name), dtype)
        specs.append(_spec(s, d))
    return FilePlan(file_name, "safetensors", _sorted(specs + list(extra)), metadata=metadata or {},
                    notes=list(notes), detect=detect or {}, params=sum(s.numel for s in src))


#: stored fp8 values are about 2^e with e from the fill below: std of the stored values
_FP8_STORED_STD = 3.0


def fp8_scaled_plan(file_name: str, src: list[Src], quantized: Callable[[Src], bool], other: str,
                    layout: str = "scaled_fp8", prefix: str = "", input_scale: bool = False,
                    keep: dict[str, str] | None = None, notes=(), detect=None, extra=(), metadata=None,
                    fmt_of: Callable[[Src], str] | None = None) -> FilePlan:
    """A Comfy-Org fp8 file: the weights of the layers ``quantized`` selects in float8_e4m3fn with
    a float32 scale each, everything else in ``other`` (``keep``: name fragment -> dtype).

    ``layout="scaled_fp8"``: the 2024-25 layout (Wan 2.x, umt5 *_fp8_scaled*): a ``scaled_fp8``
    marker tensor and ``<layer>.scale_weight`` (read by comfy.utils.convert_old_quants).
    ``layout="comfy_quant"``: the per-layer layout of comfy/ops.py MixedPrecisionOps:
    ``<layer>.comfy_quant`` (uint8 JSON ``{"format": ...}``) and ``<layer>.weight_scale``
    (+ ``.input_scale`` when ``input_scale``); ``fmt_of(src)`` may pick "nvfp4" per layer
    (weight packed 2 per byte, fp8 block scales per 16, ``weight_scale_2``).
    """
    specs: list[TensorSpec] = []
    for s in src:
        if s.role == "int":
            specs.append(TensorSpec(s.name, s.shape, "I64", const=0, role="int"))
            continue
        if s.role == "linear" and s.name.endswith(".weight") and quantized(s):
            layer = s.name[:-len(".weight")]
            std, _ = _std(s)
            fmt = fmt_of(s) if fmt_of else "float8_e4m3fn"
            if fmt == "nvfp4":
                out, inn = s.shape
                specs.append(TensorSpec(s.name, (out, inn // 2), "U8", role="nvfp4"))
                specs.append(TensorSpec(layer + ".weight_scale", (out, inn // 16), "F8_E4M3", std=64.0, role="scale"))
                specs.append(TensorSpec(layer + ".weight_scale_2", (), "F32", const=std / (64.0 * 3.0), role="scale"))
            else:
                specs.append(_spec(s, "F8_E4M3", std=_FP8_STORED_STD))
                scale = TensorSpec(layer + (".scale_weight" if layout == "scaled_fp8" else ".weight_scale"), (),
                                   "F32", const=std / _FP8_STORED_STD, role="scale")
                specs.append(scale)
            if layout == "comfy_quant":
                conf = json.dumps({"format": fmt}).encode()
                specs.append(TensorSpec(layer + ".comfy_quant", (len(conf),), "U8", raw=conf, role="quant"))
                if input_scale:
                    specs.append(TensorSpec(layer + ".input_scale", (), "F32", const=1.0, role="scale"))
            continue
        d = next((v for k, v in (keep or {}).items() if k in s.name), other)
        specs.append(_spec(s, d))
    specs = [TensorSpec(prefix + t.name, t.shape, t.dtype, t.std, t.mean, t.const, t.raw, t.role) for t in specs]
    if layout == "scaled_fp8":
        specs.append(TensorSpec(prefix + "scaled_fp8", (0,), "F8_E4M3", role="marker"))
    return FilePlan(file_name, "safetensors", _sorted(specs + list(extra)), metadata=metadata or {},
                    notes=list(notes), detect=detect or {}, params=sum(s.numel for s in src))


# --------------------------------------------------------------------------------------------
# recipes: catalog file name -> FilePlan
# --------------------------------------------------------------------------------------------

FLUX2_DEV = dict(hidden=6144, depth=8, single=48, context=15360, guidance=True)     # 32.2B
FLUX2_KLEIN_4B = dict(hidden=3072, depth=5, single=20, context=7680, guidance=False)  # 3.9B
WAN22_A14B = dict(dim=5120, ffn=13824, layers=40, in_dim=36)                        # 14.3B per expert
WAN22_TI2V_5B = dict(dim=3072, ffn=14336, layers=30, in_dim=48, out_dim=48)         # 5.0B

#: Flux.2-dev GGUF blocks promoted one K-quant step (Q4_K_M -> Q5_K, Q5_K_M -> Q6_K) beyond
#: lcpp.patch. INFERRED from the published sizes, not read from a public rule: with the
#: published rules (+ the modulation filter) Q6_K and Q8_0 match the hub within 0.1%, but
#: Q4_K_M is 0.55 GB and Q5_K_M 0.59 GB short; both gaps are the same 118 x (6144 x 6144)
#: weights promoted one step (a Q6_K-style promotion cannot fit both). city96's rule of the
#: same week for Qwen-Image promotes the first and last blocks exactly this way; 118 units
#: = the first and last double blocks (2 x 20 not-yet-promoted units) + 6 single blocks
#: (6 x 13). Which 6 single blocks is a guess (the first and last three); the sizes cannot tell.
FLUX2_PROMOTED_BLOCKS = ("double_blocks.0.", "double_blocks.7.", "single_blocks.0.", "single_blocks.1.",
                         "single_blocks.2.", "single_blocks.45.", "single_blocks.46.", "single_blocks.47.")


def _flux2_promoted(name: str) -> bool:
    return name.startswith(FLUX2_PROMOTED_BLOCKS)


def _flux2_gguf(name: str, q: str, src=None) -> FilePlan:
    notes = ["modulation layers kept BF16 (city96 auto_convert lcpp.patch 'Flux2 specific filter')"]
    if q in ("Q4_K_M", "Q5_K_M"):
        notes.append("first/last-block promotion INFERRED from the hub sizes (FLUX2_PROMOTED_BLOCKS)")
    return gguf_plan(name, src or src_flux2(**FLUX2_DEV), "flux", q, "BF16", promote_extra=_flux2_promoted,
                     notes=notes, detect={"image_model": "flux2", "hidden_size": FLUX2_DEV["hidden"]})


def _wan_gguf(name: str, q: str, src=None) -> FilePlan:
    return gguf_plan(name, src or src_wan(**WAN22_A14B), "wan", q, "F16",
                     notes=["unquantized 2-D tensors F16 (an F16 source), 5-D patch embedding F32"],
                     detect={"image_model": "wan2.1", "dim": 5120, "in_dim": 36})


def _wan_fp8(name: str, src=None) -> FilePlan:
    return fp8_scaled_plan(name, src or src_wan(**WAN22_A14B), lambda s: True, "F16", layout="scaled_fp8",
                           notes=["every Linear in fp8 + scale_weight, the rest F16 (size-checked; tensor list not read)"],
                           detect={"image_model": "wan2.1", "dim": 5120, "in_dim": 36})


def _tiny_tekken_blob() -> TensorSpec:
    from lockn_testing.tiny.common import tekken_json
    blob, _ = tekken_json()
    return TensorSpec("tekken_model", (len(blob),), "U8", raw=blob, role="tokenizer")


def _tiny_spiece_blob(gemma: bool = False) -> TensorSpec:
    """A small valid sentencepiece model under the key ComfyUI reads the tokenizer from (umt5:
    unigram with umt5's special ids; Gemma: BPE with Gemma's, as the tiny factory makes them)."""
    from lockn_testing.tiny.common import sentencepiece_model
    if gemma:
        blob = sentencepiece_model(504, model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3)
    else:
        blob = sentencepiece_model(320, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    return TensorSpec("spiece_model", (len(blob),), "U8", raw=blob, role="tokenizer")


def _mistral_fp8(name: str) -> FilePlan:
    return fp8_scaled_plan(name, src_mistral3_flux2(), lambda s: True, "BF16", layout="comfy_quant",
                           extra=[_tiny_tekken_blob()],
                           notes=["30 of 40 layers (ComfyUI's pruned Flux.2 layout), Linear fp8 (comfy_quant), "
                                  "embedding/norms BF16", "tokenizer blob: a tiny valid tekken vocabulary, not the "
                                  "real one (about 15-20 MB, 0.1% of the file)"])


def _mistral_fp4(name: str) -> FilePlan:
    bf16_layers = ("model.layers.0.", "model.layers.29.")
    return fp8_scaled_plan(name, src_mistral3_flux2(), lambda s: not s.name.startswith(bf16_layers), "BF16",
                           layout="comfy_quant", fmt_of=lambda s: "nvfp4", extra=[_tiny_tekken_blob()],
                           notes=["Linear nvfp4 (comfy_quant), first and last layer BF16: the 'mixed' part is "
                                  "INFERRED from the size (2 BF16 layers fit; fp8 layers would need 6.5)",
                                  "tokenizer blob: tiny valid tekken vocabulary, not the real one"])


def _klein_fp8(name: str) -> FilePlan:
    src = src_flux2(**FLUX2_KLEIN_4B)
    return fp8_scaled_plan(name, src, lambda s: s.name.startswith(("double_blocks.", "single_blocks.")), "BF16",
                           layout="comfy_quant", input_scale=True,
                           notes=["block Linears fp8 (comfy_quant + input_scale), in/out/modulation layers BF16: "
                                  "INFERRED from the size (BFL's file layout not read)"],
                           detect={"image_model": "flux2", "hidden_size": FLUX2_KLEIN_4B["hidden"]})


def _umt5_fp8(name: str) -> FilePlan:
    return fp8_scaled_plan(name, src_umt5_xxl(), lambda s: True, "BF16", layout="scaled_fp8",
                           extra=[_tiny_spiece_blob()],
                           notes=["encoder Linears fp8 + scale_weight, embedding BF16", "tokenizer blob: tiny "
                                  "valid sentencepiece model, not umt5's (about 4.5 MB)"])


def _flux2_fp8mixed(name: str) -> FilePlan:
    blocks = ("double_blocks.", "single_blocks.")
    return fp8_scaled_plan(
        name, src_flux2(**FLUX2_DEV), lambda s: s.name.startswith(blocks) and "_attn." not in s.name, "BF16",
        layout="comfy_quant",
        notes=["block Linears fp8 (comfy_quant, no input_scale), in/out/modulation layers and the double blocks' "
               "attention (qkv, proj) BF16: INFERRED; the published 35,455,599,592 bytes leave exactly 64 x "
               "(6144 x 6144) block weights in BF16 (this choice is 888 bytes off); the double blocks' mlp.2 + "
               "proj would fit as well"],
        detect={"image_model": "flux2", "hidden_size": FLUX2_DEV["hidden"]})


def _gemma_fp8(name: str) -> FilePlan:
    return fp8_scaled_plan(name, src_gemma3_12b(), lambda s: True, "BF16", layout="comfy_quant",
                           extra=[_tiny_spiece_blob(gemma=True)],
                           notes=["every Linear (language model and vision tower) fp8 (comfy_quant), embedding, "
                                  "norms and projector BF16: size-checked", "tokenizer blob: a tiny valid "
                                  "sentencepiece model, not Gemma's (about 4.7 MB)"])


def src_ltx2_connector() -> list[Src]:
    """The text projection file of the LTX-2 GGUF preset, in the pre-2026 layout ComfyUI's
    LTXAVTEModel still reads: text_embedding_projection.aggregate_embed (Gemma's 49 hidden
    states x 3840 -> 3840) and the video/audio embeddings connectors under
    model.diffusion_model.*."""
    src = [Src("text_embedding_projection.aggregate_embed.weight", (3840, 3840 * 49), "linear")]
    for s in src_ltx2():
        if s.name.startswith(("video_embeddings_connector.", "audio_embeddings_connector.")):
            src.append(Src("model.diffusion_model." + s.name, s.shape, s.role, s.module))
    return src


RECIPES: dict[str, Callable[[], FilePlan]] = {}


def _register():
    R = RECIPES
    for q in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"):
        R[f"flux2-dev-{q}.gguf"] = lambda q=q: _flux2_gguf(f"flux2-dev-{q}.gguf", q)
    R["flux-2-klein-4b.safetensors"] = lambda: plain_plan("flux-2-klein-4b.safetensors", src_flux2(**FLUX2_KLEIN_4B),
                                                          "BF16", detect={"image_model": "flux2", "hidden_size": 3072})
    R["flux-2-klein-base-4b.safetensors"] = lambda: plain_plan("flux-2-klein-base-4b.safetensors",
                                                               src_flux2(**FLUX2_KLEIN_4B), "BF16")
    R["flux-2-klein-4b-fp8.safetensors"] = lambda: _klein_fp8("flux-2-klein-4b-fp8.safetensors")
    R["mistral_3_small_flux2_fp8.safetensors"] = lambda: _mistral_fp8("mistral_3_small_flux2_fp8.safetensors")
    R["mistral_3_small_flux2_fp4_mixed.safetensors"] = lambda: _mistral_fp4("mistral_3_small_flux2_fp4_mixed.safetensors")
    R["flux2_dev_fp8mixed.safetensors"] = lambda: _flux2_fp8mixed("flux2_dev_fp8mixed.safetensors")
    R["qwen_3_4b.safetensors"] = lambda: plain_plan("qwen_3_4b.safetensors", src_qwen3("Qwen3_4B"), "BF16")
    R["flux2-vae.safetensors"] = lambda: plain_plan("flux2-vae.safetensors", src_flux2_vae(), "F32",
                                                    notes=["F32: 84M parameters make the published 336 MB only in "
                                                           "fp32 (the catalog labels it bf16)"])
    for expert in ("HighNoise", "LowNoise"):
        for q in ("Q4_K_M", "Q8_0"):
            n = f"Wan2.2-I2V-A14B-{expert}-{q}.gguf"
            R[n] = lambda n=n, q=q: _wan_gguf(n, q)
    for expert in ("high", "low"):
        n = f"wan2.2_i2v_{expert}_noise_14B_fp8_scaled.safetensors"
        R[n] = lambda n=n: _wan_fp8(n)
    R["wan2.2_ti2v_5B_fp16.safetensors"] = lambda: plain_plan("wan2.2_ti2v_5B_fp16.safetensors",
                                                              src_wan(**WAN22_TI2V_5B), "F16", keep={"patch_embedding": "F16"})
    R["umt5_xxl_fp8_e4m3fn_scaled.safetensors"] = lambda: _umt5_fp8("umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    R["wan_2.1_vae.safetensors"] = lambda: plain_plan("wan_2.1_vae.safetensors", src_wan21_vae(), "BF16")
    R["wan2.2_vae.safetensors"] = lambda: plain_plan("wan2.2_vae.safetensors", src_wan22_vae(), "F16",
                                                     notes=["16-bit: 705M parameters make the ~1.4 GB only at 2 bytes "
                                                            "(the catalog labels it fp32)"])
    R["ltx-2-19b-dev-Q4_K_M.gguf"] = lambda: gguf_plan(
        "ltx-2-19b-dev-Q4_K_M.gguf",
        [s for s in src_ltx2() if not s.name.startswith(("video_embeddings_connector.", "audio_embeddings_connector."))],
        "ltxv", "Q4_K_M", "BF16",
        notes=["city96 rules for ltxv (unsloth's own mix is not known)",
               "WITHOUT the video/audio embeddings connectors: with them the plan is 13.13 GB (1.026 of the "
               "catalog's 12.8), without 12.65 (0.988); a Q4_K_M mix can only grow with unsloth's extra "
               "promotions, so the size suggests the file does not carry them (the catalog size is "
               "unconfirmed: a hint, not proof)"],
        detect={"image_model": "ltxav"})
    R["ltx-2-19b-embeddings_connector_dev_bf16.safetensors"] = lambda: plain_plan(
        "ltx-2-19b-embeddings_connector_dev_bf16.safetensors", src_ltx2_connector(), "BF16")
    R["gemma_3_12B_it_fp8_scaled.safetensors"] = lambda: _gemma_fp8("gemma_3_12B_it_fp8_scaled.safetensors")
    R["acestep_v1.5_turbo.safetensors"] = lambda: plain_plan("acestep_v1.5_turbo.safetensors", src_ace15(), "BF16")
    R["acestep_v1.5_turbo-Q8_0.gguf"] = lambda: gguf_plan("acestep_v1.5_turbo-Q8_0.gguf", src_ace15(), "ace", "Q8_0",
                                                          "BF16", notes=["no public file: convert.py-style rules, "
                                                                         "arch 'ace' as the tiny factory writes it"])
    R["qwen_0.6b_ace15.safetensors"] = lambda: plain_plan("qwen_0.6b_ace15.safetensors", src_qwen3("Qwen3_06B_ACE15"), "BF16")
    R["qwen_1.7b_ace15.safetensors"] = lambda: plain_plan("qwen_1.7b_ace15.safetensors", src_qwen3("Qwen3_2B_ACE15_lm"), "BF16")
    R["qwen_4b_ace15.safetensors"] = lambda: plain_plan("qwen_4b_ace15.safetensors", src_qwen3("Qwen3_4B_ACE15_lm"), "BF16")
    R["ace_1.5_vae.safetensors"] = lambda: plain_plan("ace_1.5_vae.safetensors", src_ace15_vae(), "F16")


_register()


#: supported files whose plan is knowingly more than 1% off the catalog, and why (kept honest by
#: the tests: each must really be off, every other supported file within 1%)
KNOWN_CATALOG_GAPS = {
    "acestep_v1.5_turbo-Q8_0.gguf": "the catalog size is an estimate for a file nobody publishes (8.5 bits x "
        "2.39B = 2.54 GB); city96-style rules keep 0.13 GB of 2-D tensors (proj_in/out, time and condition "
        "embedders) BF16, so a converted file is 2.61 GB: the catalog estimate is low, not the recipe",
    "ltx-2-19b-dev-Q4_K_M.gguf": "unsloth's quant mix is its own ('dynamic') and not known here; city96's "
        "ltxv rules give 12.65 GB without the embeddings connectors (0.988) and 13.13 GB with them (1.026) "
        "against an unconfirmed 12.8 GB",
}


def supported() -> list[str]:
    return list(RECIPES)


def plan_file(name: str) -> FilePlan:
    if name not in RECIPES:
        raise KeyError(f"no full-size recipe for {name!r}; supported: {', '.join(RECIPES)}")
    return RECIPES[name]()


def plan_truncated(name: str, layers: int) -> FilePlan:
    """A supported Wan2.2 A14B expert or Flux.2 (dev / klein) diffusion-model file with only
    ``layers`` transformer blocks (Flux.2: ``layers`` double and ``layers`` single blocks): the
    real widths, names, dtypes and quant mix, small enough for a test to write and load."""
    if name not in RECIPES:
        raise KeyError(name)
    if name.startswith("Wan2.2-I2V-A14B-"):
        q = name.rsplit("-", 1)[1][:-len(".gguf")]
        return _wan_gguf(name, q, src=src_wan(**{**WAN22_A14B, "layers": layers}))
    if name.startswith("wan2.2_i2v_") and name.endswith("_fp8_scaled.safetensors"):
        return _wan_fp8(name, src=src_wan(**{**WAN22_A14B, "layers": layers}))
    if name.startswith("flux2-dev-Q"):
        q = name[len("flux2-dev-"):-len(".gguf")]
        return _flux2_gguf(name, q, src=src_flux2(**{**FLUX2_DEV, "depth": layers, "single": layers}))
    if name == "flux-2-klein-4b-fp8.safetensors":
        p = _klein_fp8(name)
        keep = {f"double_blocks.{i}." for i in range(layers)} | {f"single_blocks.{i}." for i in range(layers)}
        p.tensors = [t for t in p.tensors if not t.name.startswith(("double_blocks.", "single_blocks."))
                     or t.name.startswith(tuple(keep))]
        return p
    raise ValueError(f"no truncated variant for {name!r}")


def _catalog():
    from lockn_gen import catalog
    return catalog.builtin()


def plan_preset(preset_id: str, include_optional: bool = False) -> dict[str, FilePlan | None]:
    """{file name: plan, or None where there is no recipe} for a catalog preset's files."""
    files = _catalog().preset_files(preset_id, include_optional=include_optional)
    return {e.name: (plan_file(e.name) if e.name in RECIPES else None) for e in files.values()}


def size_table(names: Iterable[str] | None = None) -> list[dict]:
    """Rows {file, plan, catalog, ratio, ok, params, mix, notes} for the given (default: all
    supported) catalog files. ``ok``: within :data:`TOLERANCE` of the catalog size."""
    cat = _catalog()
    rows = []
    for name in (names if names is not None else supported()):
        entry = cat.file(name)
        plan = plan_file(name)
        size = plan.size()
        ref = entry.size if entry is not None else 0
        ratio = size / ref if ref else float("nan")
        rows.append({"file": name, "plan": size, "catalog": ref, "ratio": ratio,
                     "ok": bool(ref) and abs(ratio - 1) <= TOLERANCE, "params": plan.params,
                     "mix": plan.dtype_bytes(), "notes": plan.notes,
                     "catalog_exact": bool(entry and entry.size_exact), "confirmed": bool(entry and entry.confirmed)})
    return rows


def format_table(rows: list[dict], notes: bool = True) -> str:
    lines = [f"{'file':<52} {'plan bytes':>15} {'catalog bytes':>15} {'ratio':>7}  ok  params",
             "-" * 104]
    for r in rows:
        flag = "yes" if r["ok"] else ("gap" if r["file"] in KNOWN_CATALOG_GAPS else "NO")
        conf = "" if r["confirmed"] else " (catalog size unconfirmed)"
        lines.append(f"{r['file']:<52} {r['plan']:>15,} {r['catalog']:>15,} {r['ratio']:>7.4f}  {flag:<3} "
                     f"{r['params'] / 1e9:.3f}B{conf}")
        if notes:
            mix = ", ".join(f"{k} {v / 1e9:.2f}GB" for k, v in r["mix"].items() if v >= 1e6)
            lines.append(f"    mix: {mix}")
            for n in r["notes"]:
                lines.append(f"    note: {n}")
            if not r["ok"] and r["file"] in KNOWN_CATALOG_GAPS:
                lines.append(f"    known gap: {KNOWN_CATALOG_GAPS[r['file']]}")
    return "\n".join(lines)


def unsupported() -> dict[str, str]:
    """Catalog model files (LoRAs aside) without a recipe, and why."""
    why = {
        "ltx-2-19b-distilled-fp8.safetensors": "bundles the LTX-2 video VAE, audio VAE and vocoder, whose "
            "configurations (the file's 'config' metadata) are not known here; transformer + connectors + "
            "projection alone (fp8 blocks, rest BF16) come to about 22 GB of the 27.1",
        "ltx-2-19b-dev-fp8.safetensors": "as ltx-2-19b-distilled-fp8.safetensors",
        "LTX2_video_vae_bf16.safetensors": "LTX-2 video VAE configuration not known here (ComfyUI takes it from "
                                           "the file's metadata; its built-in defaults are LTX-Video 0.9's)",
        "LTX2_audio_vae_bf16.safetensors": "LTX-2 audio VAE + vocoder configuration not known here",
        "ltx-2-spatial-upscaler-x2-1.0.safetensors": "upscaler configuration not known here (size unconfirmed too)",
        "gemma_3_12B_it_fp4_mixed.safetensors": "the 'mixed' part is not determined: nvfp4 language model + BF16 "
            "rest is 8.91 GB (0.943); BF16 first/last layers give 9.55 (1.011), fp8 for 5-6 layers or BF16 for "
            "3 layers with an fp8 vision tower fit, and nothing public tells which",
        "acestep_v1.5_xl_turbo_bf16.safetensors": "ACE-Step 1.5 XL configuration (4B DiT) not known here",
        "ltx-2.3-22b-dev-fp8.safetensors": "as ltx-2-19b-dev-fp8.safetensors (LTX-2.3's VAEs are new too); its "
            "transformer switches are known (the tiny factory's TRANSFORMER23), its fp8 mix and size are not",
        "ltx-2.3-22b-distilled-fp8.safetensors": "as ltx-2.3-22b-dev-fp8.safetensors",
        "ltx-2.3-spatial-upscaler-x2-1.1.safetensors": "as ltx-2-spatial-upscaler-x2-1.0.safetensors",
    }
    out = {}
    for name, e in _catalog().files.items():
        if e.kind == "lora" or name in RECIPES:
            continue
        out[name] = why.get(name, "no recipe yet")
    return out


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lockn_testing.fullsize", description=__doc__.split("\n\n")[0])
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--preset", help="a catalog preset id (its files with a recipe)")
    sel.add_argument("--file", action="append", help="a catalog file name (repeatable)")
    sel.add_argument("--all", action="store_true", help="every supported file")
    ap.add_argument("--out", help="models root to write into (OUT/<folder>/<file>)")
    ap.add_argument("--dry-run", action="store_true", help="print the size table, write nothing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--optional", action="store_true", help="with --preset: include optional files")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes writing at once (default 1: this process, one file after the other)")
    args = ap.parse_args(argv)

    if args.preset:
        plans = plan_preset(args.preset, include_optional=args.optional)
        names = [n for n, p in plans.items() if p is not None]
        for n, p in plans.items():
            if p is None:
                print(f"no recipe (skipped): {n}")
    elif args.file:
        names = args.file
    else:
        names = supported()
    rows = size_table(names)
    print(format_table(rows))
    if args.dry_run:
        return 0 if all(r["ok"] or r["file"] in KNOWN_CATALOG_GAPS for r in rows) else 1
    if not args.out:
        ap.error("--out is required unless --dry-run")
    cat = _catalog()
    jobs, need = [], {}
    for name in names:
        plan = plan_file(name)
        entry = cat.file(name)
        path = os.path.join(args.out, entry.folder if entry else "", name)
        jobs.append((name, plan, path))
        d = os.path.dirname(os.path.abspath(path))
        need[d] = need.get(d, 0) + plan.size()
    for d, nbytes in need.items():
        free = _free_bytes(d)
        if free is not None and free < nbytes + (1 << 30):
            print(f"not enough disk in {d}: {nbytes / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")
            return 2
    last = [0.0]

    def progress(name, done, total):
        now = time.monotonic()
        if now - last[0] > 5 or done == total:
            last[0] = now
            print(f"  {name}: {done / 1e9:6.2f} / {total / 1e9:.2f} GB", flush=True)
    if args.workers > 1:
        res = write_files(jobs, workers=args.workers, seed=args.seed, progress=progress)
        for name, f in res["files"].items():
            print(f"{'wrote' if f['written'] else 'FAILED'} {f['path']}: {f['bytes']:,} bytes"
                  + (f" ({f['error']})" if "error" in f else ""))
        print(f"{res['written_bytes'] / 1e9:.2f} GB in {res['seconds']:.1f} s ({res['gb_per_s']:.2f} GB/s, "
              f"{args.workers} workers)")
        return 0 if all(f["written"] for f in res["files"].values()) else 1
    for name, plan, path in jobs:
        res = plan.write(path, seed=args.seed, progress=lambda done, total, name=name: progress(name, done, total))
        print(f"wrote {path}: {res['bytes']:,} bytes in {res['seconds']:.1f} s "
              f"({res['bytes'] / max(res['seconds'], 1e-9) / 1e6:.0f} MB/s)")
    return 0


def _free_bytes(path: str) -> int | None:
    try:
        os.makedirs(path, exist_ok=True)
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
