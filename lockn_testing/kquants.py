"""Vectorised numpy writers for the GGML K-quants Q4_K, Q5_K and Q6_K.

gguf-py (0.19) can *dequantize* K-quants but its ``quantize`` raises NotImplementedError for
them, so the tests that need Q4_K_M / Q5_K_M / Q6_K GGUF files pack the blocks here. Every other
qtype (Q8_0, Q4_0, F16, BF16, ...) is delegated to ``gguf.quants.quantize``.

Public API
----------
``quantize(arr, qtype) -> np.ndarray[uint8]``
    Raw block bytes shaped ``(*arr.shape[:-1], arr.shape[-1] // block_size * type_size)``, ready
    for ``GGUFWriter.add_tensor(name, raw, raw_dtype=qtype)``.
``quantize_and_reconstruct(arr, qtype) -> (raw, values)``
    The same bytes plus the float32 values the writer *meant* to store, computed from the block
    fields before they were bit-packed (``d*sc*q - dmin*m`` for Q4_K/Q5_K, ``d*sc*q`` for Q6_K),
    with the same float32 operation order as the reference decoders. Any packing mistake therefore
    shows up as a mismatch against ``gguf.quants.dequantize(raw, qtype)``, which must be
    bit-identical (tests/test_kquants.py checks it).
``relative_l2(ref, approx)``
    ``||approx - ref|| / ||ref||`` in float64, the error figure used by the tests.

Block layouts (QK_K = 256 weights per super-block; as read by gguf/quants.py and by
ComfyUI-GGUF's dequant.py)
-------------------------------------------------------------------------------------------
Q4_K, 144 bytes: ``d:f16 | dmin:f16 | scales:12 | qs:128``
    8 sub-blocks of 32 weights, ``w = d*sc[j]*q - dmin*m[j]``, q in [0, 15], sc/m 6-bit.
    qs byte ``32*c + i`` holds sub-block ``2c`` (low nibble) and ``2c+1`` (high nibble), item i.
Q5_K, 176 bytes: ``d:f16 | dmin:f16 | scales:12 | qh:32 | qs:128``
    as Q4_K with q in [0, 31]; bit j of ``qh[i]`` is the 5th bit of sub-block j, item i.
``scales`` (Q4_K/Q5_K) packs eight 6-bit sc and eight 6-bit m into 12 bytes:
    byte k   (k<4): sc[k]   | (sc[k+4] >> 4) << 6
    byte k+4 (k<4): m[k]    | (m[k+4]  >> 4) << 6
    byte k+8 (k<4): (sc[k+4] & 15) | (m[k+4] & 15) << 4
Q6_K, 210 bytes: ``ql:128 | qh:64 | scales:16 x int8 | d:f16``
    16 sub-blocks of 16 weights, ``w = d*sc[j]*(q - 32)``, q in [0, 63].
    Element ``e = 128h + 64s + b`` keeps its low nibble in ``ql[64h + b]`` (nibble s);
    element ``e = 128h + 32t + b`` keeps its top 2 bits in ``qh[32h + b]`` bits ``2t..2t+1``.

Scale search
------------
Not bit-exact with ggml's ``quantize_row_q*_K_ref`` (any valid block decodes the same way in
every reader, which is what matters here), but at least as careful:

1. Per sub-block, an affine (Q4_K/Q5_K) or symmetric (Q6_K) fit by alternating optimisation:
   assign every weight to its nearest level, then solve the least-squares scale (and offset) for
   that assignment; each round can only lower the squared error. This converges to a local
   optimum that depends on where the level grid starts, so several starts run side by side and
   the best one per sub-block is kept: Q4_K/Q5_K start from the min/max grid shifted by
   -1/4, 0, +1/4 of a step (``_AFFINE_PHASES``); Q6_K from "largest magnitude on level -32"
   (the extra negative level, as ggml does) with the scale stretched by 0..8 %
   (``_Q6_STARTS``). The offset is kept <= 0 because the format stores ``-dmin*m`` with
   ``m >= 0`` (so an all-positive sub-block cannot use its lower range; a format limit).
2. The sub-block scales (and mins) are quantized to 6-bit (Q6_K: int8) multiples of the fp16
   super-block scale ``d`` (and ``dmin``), the weights re-assigned against the quantized scales,
   and the integer scales re-fitted by least squares once more.
3. ``d`` / ``dmin`` are re-fitted by least squares over the whole super-block, kept only where
   they lower the error, and the weights are re-assigned a final time.

Relative L2 error on N(0, 1) weights (5.2M, see tests/test_kquants.py for the asserted bounds):
Q4_K 0.0708, Q5_K 0.0357, Q6_K 0.0169 (Q8_0 from gguf-py: 0.0054). A plain min/max fit gives
about 0.078 / 0.038 / 0.0187. Throughput is roughly 20 M weights/s per K-quant on one core.
Limits of the format itself: ``d`` is fp16, so weights with a std of about 1e-4 or less lose
precision to fp16 subnormals (Q6_K: rel. error 0.048 at std 1e-4, Q5_K 0.040; Q4_K unaffected),
and super-block scales beyond the fp16 range raise ValueError, as do NaN/Inf inputs.

Rounding is round-half-to-even (``np.rint``); the work is chunked so temporaries stay in cache.
"""
from __future__ import annotations

import numpy as np
import gguf

__all__ = ["QK_K", "K_QUANTS", "quantize", "quantize_and_reconstruct", "relative_l2"]

QK_K = 256
Q = gguf.GGMLQuantizationType
K_QUANTS = frozenset({Q.Q4_K, Q.Q5_K, Q.Q6_K})

_CHUNK = 256                      # super-blocks per working chunk: temporaries stay in cache
_FIT_ITERS = 3                    # assignment / least-squares rounds on the continuous scales
_INT_ITERS = 1                    # least-squares re-fits of the integer sub-scales
_AFFINE_PHASES = (-0.25, 0.0, 0.25)   # Q4_K/Q5_K starts: min/max grid shifted by this many steps
_Q6_STARTS = (1.0, 1.02, 1.04, 1.06, 1.08)  # Q6_K starts: max-magnitude scale times these
_TINY = np.float32(1e-30)


def relative_l2(ref, approx) -> float:
    """``||approx - ref||_2 / ||ref||_2`` computed in float64 (0.0 when both are zero)."""
    ref = np.asarray(ref, dtype=np.float64)
    diff = np.asarray(approx, dtype=np.float64) - ref
    den = np.linalg.norm(ref)
    num = np.linalg.norm(diff)
    return float(num / den) if den > 0 else float(num)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _f16(x: np.ndarray) -> np.ndarray:
    """Round to the fp16 value the file will store, back as float32."""
    return x.astype(np.float16).astype(np.float32)


def _safe_inv(s: np.ndarray) -> np.ndarray:
    """1/s where |s| is usable, else 0 (so the weights map to level 0 instead of NaN)."""
    out = np.zeros_like(s)
    np.divide(np.float32(1.0), s, out=out, where=np.abs(s) > _TINY)
    return out


def _assign(x, scale, offset, qmin, qmax):
    """Nearest level q in [qmin, qmax] for ``x ~= scale*q + offset`` (float32 q)."""
    inv = _safe_inv(scale)[..., None]
    q = (x - offset[..., None]) * inv if offset is not None else x * inv
    np.rint(q, out=q)
    np.clip(q, qmin, qmax, out=q)
    return q


def _sums(x, q):
    """Per sub-block sums used by the least-squares fits: sum q, sum q^2, sum q*x."""
    return q.sum(-1), np.einsum("...i,...i->...", q, q), np.einsum("...i,...i->...", q, x)


def _ls_affine(n, sx, sq, sqq, sqx, s_old, b_old):
    """Least-squares (s, b) of ``x ~= s*q + b`` with b <= 0 and s >= 0, per sub-block."""
    den = n * sqq - sq * sq
    ok = den > 0
    safe = np.where(ok, den, 1)
    s = np.where(ok, (n * sqx - sq * sx) / safe, s_old)
    b = np.where(ok, (sqq * sx - sq * sqx) / safe, b_old)
    # b > 0 is not representable (offset is -dmin*m, m >= 0): the constrained optimum is b = 0
    pos = b > 0
    s = np.where(pos, sqx / np.where(sqq > 0, sqq, 1), s)
    b = np.where(pos, 0, b)
    return np.maximum(s, 0).astype(np.float32), b.astype(np.float32)


def _pack_scale_min_k4(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(c, 8) 6-bit sc and m -> (c, 12) bytes; the inverse of gguf's Q4_K.get_scale_min."""
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    return out


def _f16_bytes(v: np.ndarray) -> np.ndarray:
    return v.astype(np.float16).view(np.uint8).reshape(-1, 2)


def _check_super_scale(d: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{what}: a super-block scale overflows float16; values are too large to K-quantize")


# --------------------------------------------------------------------------------------------
# Q4_K / Q5_K: affine sub-blocks of 32
# --------------------------------------------------------------------------------------------

def _quantize_affine_k(blocks: np.ndarray, nmax: int):
    """blocks (c, 256) float32 -> d, dmin (c,), sc, m (c, 8) uint8, q (c, 8, 32) uint8, values (c, 256)."""
    c = blocks.shape[0]
    x = blocks.reshape(c, 8, 32)
    n = np.float32(32)
    sx = x.sum(-1)
    sxx = np.einsum("...i,...i->...", x, x)

    # 1. continuous per-sub-block fit from several starts: the min/max grid shifted by
    #    _AFFINE_PHASES of a step (offset clamped to <= 0); keep the best start per sub-block
    lo = np.minimum(x.min(-1), 0)
    step = (x.max(-1) - lo) / np.float32(nmax)
    phases = np.asarray(_AFFINE_PHASES, dtype=np.float32)[None, :, None]          # (1, K, 1)
    s = np.broadcast_to(step[:, None, :], (c, phases.shape[1], 8)).copy()       # (c, K, 8)
    b = lo[:, None, :] + phases * step[:, None, :]
    xk, sxk = x[:, None], sx[:, None]
    for _ in range(max(1, _FIT_ITERS)):
        q = _assign(xk, s, b, 0, nmax)
        sq, sqq, sqx = _sums(xk, q)
        s, b = _ls_affine(n, sxk, sq, sqq, sqx, s, b)
    # squared error of (s, b) with the last assignment (an upper bound after re-assignment)
    err = sxx[:, None] - 2 * s * sqx - 2 * b * sxk + s * s * sqq + 2 * s * b * sq + n * b * b
    best = err.argmin(1)[:, None]                                                # (c, 1, 8)
    s = np.take_along_axis(s, best, 1)[:, 0]
    b = np.take_along_axis(b, best, 1)[:, 0]

    # 2. 6-bit sub-scales / sub-mins against fp16 super-scales, then least-squares re-fits
    d = _f16(s.max(-1) / np.float32(63))
    dmin = _f16((-b).max(-1) / np.float32(63))
    _check_super_scale(d, "Q4_K/Q5_K d")
    _check_super_scale(dmin, "Q4_K/Q5_K dmin")
    inv_d, inv_dmin = _safe_inv(d)[:, None], _safe_inv(dmin)[:, None]

    def to_int(s, b):
        return np.clip(np.rint(s * inv_d), 0, 63), np.clip(np.rint(-b * inv_dmin), 0, 63)

    sc, m = to_int(s, b)
    for _ in range(_INT_ITERS):
        s_eff, b_eff = d[:, None] * sc, -(dmin[:, None] * m)
        q = _assign(x, s_eff, b_eff, 0, nmax)
        sq, sqq, sqx = _sums(x, q)
        sc, m = to_int(*_ls_affine(n, sx, sq, sqq, sqx, s_eff, b_eff))
    q = _assign(x, d[:, None] * sc, -(dmin[:, None] * m), 0, nmax)

    # 3. least-squares (d, dmin) per super-block for the chosen integers:
    #    x ~= d*A - dmin*B with A = sc*q, B = m (broadcast over the 32 items of a sub-block)
    sq, sqq, sqx = _sums(x, q)
    aa = np.einsum("cj,cj->c", sc * sc, sqq)
    ab = np.einsum("cj,cj->c", sc * m, sq)
    bb = n * np.einsum("cj,cj->c", m, m)
    ax = np.einsum("cj,cj->c", sc, sqx)
    bx = np.einsum("cj,cj->c", m, sx)
    den = aa * bb - ab * ab
    ok = den > 0
    safe = np.where(ok, den, 1)
    d_new = np.where(ok, (ax * bb - ab * bx) / safe, d)
    dmin_new = np.where(ok, (ax * ab - aa * bx) / safe, dmin)
    only_d = (bb == 0) & (aa > 0)                 # no mins in use: one-parameter fit of d
    d_new = np.where(only_d, ax / np.where(aa > 0, aa, 1), d_new)
    dmin_new = np.where(only_d, dmin, dmin_new)
    d_new = _f16(np.maximum(d_new, 0))
    dmin_new = _f16(np.maximum(dmin_new, 0))
    d_new = np.where(np.isfinite(d_new), d_new, d)
    dmin_new = np.where(np.isfinite(dmin_new), dmin_new, dmin)
    q_new = _assign(x, d_new[:, None] * sc, -(dmin_new[:, None] * m), 0, nmax)

    # values exactly as the decoders compute them: (d*sc)*q - (dmin*m), all float32
    v_old = (d[:, None] * sc)[..., None] * q - (dmin[:, None] * m)[..., None]
    v_new = (d_new[:, None] * sc)[..., None] * q_new - (dmin_new[:, None] * m)[..., None]
    better = _sq_err(v_new, x) < _sq_err(v_old, x)
    d = np.where(better, d_new, d)
    dmin = np.where(better, dmin_new, dmin)
    q = np.where(better[:, None, None], q_new, q)
    values = np.where(better[:, None, None], v_new, v_old)
    return d, dmin, sc.astype(np.uint8), m.astype(np.uint8), q.astype(np.uint8), values.reshape(c, QK_K)


def _sq_err(v, x):
    e = v - x
    return np.einsum("cji,cji->c", e, e)


def _pack_q4_k(d, dmin, sc, m, q):
    c = q.shape[0]
    q = q.reshape(c, 4, 2, 32)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(c, 128)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scale_min_k4(sc, m), qs], axis=1)


def _pack_q5_k(d, dmin, sc, m, q):
    c = q.shape[0]
    hi = (q >> 4) & 1                                   # (c, 8, 32): bit j of qh[i]
    qh = np.zeros((c, 32), dtype=np.uint8)
    for j in range(8):
        qh |= hi[:, j, :] << j
    lo = (q & 0x0F).reshape(c, 4, 2, 32)
    qs = (lo[:, :, 0, :] | (lo[:, :, 1, :] << 4)).reshape(c, 128)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scale_min_k4(sc, m), qh, qs], axis=1)


def _q4_k_chunk(blocks):
    d, dmin, sc, m, q, values = _quantize_affine_k(blocks, 15)
    return _pack_q4_k(d, dmin, sc, m, q), values


def _q5_k_chunk(blocks):
    d, dmin, sc, m, q, values = _quantize_affine_k(blocks, 31)
    return _pack_q5_k(d, dmin, sc, m, q), values


# --------------------------------------------------------------------------------------------
# Q6_K: symmetric sub-blocks of 16, int8 sub-scales
# --------------------------------------------------------------------------------------------

def _q6_k_chunk(blocks):
    c = blocks.shape[0]
    x = blocks.reshape(c, 16, 16)

    # 1. continuous fit from several starts: the largest-magnitude weight on level -32 (the
    #    extra negative level, sign folded into s) times _Q6_STARTS; keep the best per sub-block
    idx = np.abs(x).argmax(-1)
    s0 = np.take_along_axis(x, idx[..., None], -1)[..., 0] / np.float32(-32)
    s = s0[:, None, :] * np.asarray(_Q6_STARTS, dtype=np.float32)[None, :, None]     # (c, K, 16)
    xk = x[:, None]
    for _ in range(max(1, _FIT_ITERS)):
        q = _assign(xk, s, None, -32, 31)
        sqq = np.einsum("...i,...i->...", q, q)
        sqx = np.einsum("...i,...i->...", q, xk)
        s = np.where(sqq > 0, sqx / np.where(sqq > 0, sqq, 1), s).astype(np.float32)
    # least-squares residual is sum(x^2) - sqx^2/sqq: pick the start with the largest sqx^2/sqq
    gain = np.where(sqq > 0, sqx * sqx / np.where(sqq > 0, sqq, 1), 0)
    best = gain.argmax(1)[:, None]
    s = np.take_along_axis(s, best, 1)[:, 0]

    # 2. int8 sub-scales against an fp16 super-scale; the largest |s| maps to -128 (as ggml)
    jmax = np.abs(s).argmax(-1)
    smax = np.take_along_axis(s, jmax[:, None], -1)[:, 0]
    d = _f16(smax / np.float32(-128))
    _check_super_scale(d, "Q6_K d")
    inv_d = _safe_inv(d)[:, None]

    def to_int(s):
        return np.clip(np.rint(s * inv_d), -128, 127)

    sc = to_int(s)
    for _ in range(_INT_ITERS):
        eff = d[:, None] * sc
        q = _assign(x, eff, None, -32, 31)
        sqq = np.einsum("...i,...i->...", q, q)
        sqx = np.einsum("...i,...i->...", q, x)
        sc = to_int(np.where(sqq > 0, sqx / np.where(sqq > 0, sqq, 1), eff))
    q = _assign(x, d[:, None] * sc, None, -32, 31)

    # 3. least-squares d for the chosen integers, kept where it lowers the error
    a = sc[..., None] * q
    aa = np.einsum("cji,cji->c", a, a)
    ax = np.einsum("cji,cji->c", a, x)
    d_new = _f16(np.where(aa > 0, ax / np.where(aa > 0, aa, 1), d))
    d_new = np.where(np.isfinite(d_new), d_new, d)
    q_new = _assign(x, d_new[:, None] * sc, None, -32, 31)
    # values exactly as the decoders compute them: (d*sc)*q, float32
    v_old = (d[:, None] * sc)[..., None] * q
    v_new = (d_new[:, None] * sc)[..., None] * q_new
    better = _sq_err(v_new, x) < _sq_err(v_old, x)
    d = np.where(better, d_new, d)
    q = np.where(better[:, None, None], q_new, q)
    values = np.where(better[:, None, None], v_new, v_old).reshape(c, QK_K)

    # pack: the stored q is q + 32 in [0, 63]
    u = (q + 32).astype(np.uint8).reshape(c, QK_K)
    lo = (u & 0x0F).reshape(c, 2, 2, 64)                         # h, s, b
    ql = (lo[:, :, 0, :] | (lo[:, :, 1, :] << 4)).reshape(c, 128)
    hi = (u >> 4).reshape(c, 2, 4, 32)                           # h, t, b
    qh = np.zeros((c, 2, 32), dtype=np.uint8)
    for t in range(4):
        qh |= hi[:, :, t, :] << (2 * t)
    raw = np.concatenate([ql, qh.reshape(c, 64), sc.astype(np.int8).view(np.uint8), _f16_bytes(d)], axis=1)
    return raw, values


_K_CHUNK = {Q.Q4_K: _q4_k_chunk, Q.Q5_K: _q5_k_chunk, Q.Q6_K: _q6_k_chunk}


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

def _quantize_k(arr: np.ndarray, qtype, want_values: bool):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if arr.ndim == 0 or arr.shape[-1] % block_size:
        raise ValueError(
            f"{qtype.name} needs the last dimension divisible by {block_size}; got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{qtype.name}: input of shape {tuple(arr.shape)} contains NaN or Inf")
    blocks = arr.reshape(-1, block_size)
    nb = blocks.shape[0]
    raw = np.empty((nb, type_size), dtype=np.uint8)
    values = np.empty((nb, block_size), dtype=np.float32) if want_values else None
    fn = _K_CHUNK[qtype]
    with np.errstate(all="ignore"):                 # guarded divisions; results checked above/below
        for i in range(0, nb, _CHUNK):
            r, v = fn(blocks[i:i + _CHUNK])
            raw[i:i + _CHUNK] = r
            if want_values:
                values[i:i + _CHUNK] = v
    out_shape = (*arr.shape[:-1], arr.shape[-1] // block_size * type_size)
    return raw.reshape(out_shape), (values.reshape(arr.shape) if want_values else None)


def _as_f32(arr) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(arr), dtype=np.float32)


def quantize(arr, qtype) -> np.ndarray:
    """Quantize a float array along its last axis to ``qtype``; returns the raw uint8 block bytes.

    Q4_K / Q5_K / Q6_K are written here (last dim must be a multiple of 256, else ValueError);
    every other qtype goes to ``gguf.quants.quantize`` (which raises ``gguf.QuantError`` for bad
    shapes).
    """
    qtype = Q(qtype)
    arr = _as_f32(arr)
    if qtype in K_QUANTS:
        return _quantize_k(arr, qtype, want_values=False)[0]
    return gguf.quants.quantize(arr, qtype)


def quantize_and_reconstruct(arr, qtype) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, values)``: the bytes of :func:`quantize` and the float32 values they encode.

    For K-quants ``values`` comes from the quantizer's own fields before packing (see module
    doc). For Q8_0 the bytes come from gguf-py and ``values`` from a small independent decoder
    here (fp16 scale in bytes 0-1, then 32 int8), so it still cross-checks the layout; F32/F16
    are plain casts. Other delegated qtypes are decoded by gguf-py itself (no independent check).
    """
    qtype = Q(qtype)
    arr = _as_f32(arr)
    if qtype in K_QUANTS:
        return _quantize_k(arr, qtype, want_values=True)
    raw = gguf.quants.quantize(arr, qtype)
    if qtype == Q.Q8_0:
        blocks = raw.reshape(-1, 34)
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)          # (n, 1)
        qs = blocks[:, 2:].view(np.int8).astype(np.float32)                   # (n, 32)
        values = (d * qs).reshape(arr.shape)
    elif qtype in (Q.F32, Q.F16):
        values = raw.astype(np.float32)
    else:
        values = gguf.quants.dequantize(raw, qtype).reshape(arr.shape)
    return raw, values
