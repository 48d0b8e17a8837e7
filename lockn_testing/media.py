"""Decode what ComfyUI wrote and describe it, for the tests' checks (PyAV and Pillow)."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np


def probe_image(path) -> dict:
    from PIL import Image
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return {"width": arr.shape[1], "height": arr.shape[0], "finite": bool(np.isfinite(arr).all()),
            "std": float(arr.std())}


def probe_media(path) -> dict:
    """Streams of a video or audio file: video (frames decoded, fps, size) and audio (rate,
    channels, decoded duration), plus whether the decoded values are finite."""
    import av
    out = {"video": None, "audio": None}
    with av.open(str(path)) as c:
        vs = [s for s in c.streams if s.type == "video"]
        aus = [s for s in c.streams if s.type == "audio"]
        out["n_video_streams"], out["n_audio_streams"] = len(vs), len(aus)
        out["container_duration"] = (c.duration / 1e6) if c.duration else None
        if vs:
            s = vs[0]
            frames, finite, std = 0, True, 0.0
            for f in c.decode(s):
                a = f.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                finite &= bool(np.isfinite(a).all())
                std = max(std, float(a.std()))
                frames += 1
            rate = s.average_rate or s.guessed_rate
            out["video"] = {"frames": frames, "fps": float(rate) if rate else None, "fps_exact": Fraction(rate) if rate else None,
                            "width": s.codec_context.width, "height": s.codec_context.height,
                            "finite": finite, "std": std, "codec": s.codec_context.name}
    if aus:
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            samples, finite, peak = 0, True, 0.0
            for f in c.decode(s):
                a = f.to_ndarray().astype(np.float64)
                finite &= bool(np.isfinite(a).all())
                peak = max(peak, float(np.abs(a).max()) if a.size else 0.0)
                samples += f.samples
            rate = s.codec_context.sample_rate
            out["audio"] = {"sample_rate": rate, "channels": s.codec_context.channels, "samples": samples,
                            "duration": samples / rate if rate else None, "finite": finite, "peak": peak,
                            "codec": s.codec_context.name}
    return out


def digest(path) -> str:
    """A hash of what a file shows or plays (pixels, video frames, audio samples), not of its bytes:
    ComfyUI writes the prompt into the file's metadata, which differs between otherwise equal runs.
    Bit for bit: for an encoded video use `media_distance` instead (see there why)."""
    import hashlib
    h = hashlib.sha256()
    if str(path).lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
        from PIL import Image
        with Image.open(path) as im:
            h.update(np.asarray(im.convert("RGB")).tobytes())
        return h.hexdigest()
    import av
    with av.open(str(path)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio"):
                continue
            c.seek(0)
            for f in c.decode(s):
                h.update(f.to_ndarray().tobytes())
    return h.hexdigest()


# ---- comparing outputs: the same up to encoder noise, or really different -------------------------------
# ComfyUI's SaveVideo encodes H.264 with the libx264 that PyAV's wheel bundles, and on a CPU with AVX-512
# (this 2-core AMD EPYC box) libx264's AVX-512 code makes the encoded B-frames vary a little from run to run,
# from the SAME input. Seen here (2026-12-06; the tiny quality chain, 4-6 runs with /free between): every
# node's output tensor, every RGB frame handed to the encoder and every YUV frame after conversion was
# identical in all runs, while the packets of the B-frames (pts 2 and 3) differed, so the MP4s decoded to
# up to 4 different frame sets, 0.12-0.20 levels of 255 apart on average (a few pixels by up to 36).
# x264 runs one thread at 96x96, so threads are not the cause. With x264-params asm=AVX2 (no AVX-512) six
# runs gave one result, and six with asm=0 another one; asm=AVX512 varied again (2 results in 5). The
# previous box (CI green) had no AVX-512, which is why it never showed. Not the pack's to fix (ComfyUI's
# SaveVideo takes no encoder options); audio (AAC, MP3, FLAC) and PNG pixels never varied.
# The test processes therefore encode with x264's C code (lockn_testing/comfy_patches, _patch_h264), and
# outputs are compared by their decoded content with a bound on the MEAN absolute difference, which float
# noise stays far under and a real change (another seed, a LoRA, a leaked patch) is far above:
#: video frames and images: mean |a - b| over every pixel of every frame, in levels of 255
FRAME_BOUND = 1.0
#: audio: mean |a - b| over every sample, full scale 1.0 (-100 dBFS; no run-to-run noise was seen in audio,
#: while the smallest real change measured, a LoRA on tiny LTX-2's quiet soundtrack, moves it by 8e-4)
AUDIO_BOUND = 1e-5


def decoded(path) -> dict:
    """What a file shows and plays, decoded: {"video": uint8 array (frames, h, w, 3) or None (an image is
    one frame), "audio": float32 array (channels, samples) or None}."""
    p = str(path)
    if p.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
        from PIL import Image
        with Image.open(p) as im:
            return {"video": np.asarray(im.convert("RGB"))[None], "audio": None}
    import av
    out = {"video": None, "audio": None}
    with av.open(p) as c:
        if c.streams.video:
            out["video"] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(p) as c:
        if c.streams.audio:
            ch = c.streams.audio[0].codec_context.channels
            chunks = []
            for f in c.decode(audio=0):
                a = f.to_ndarray()
                scale = float(2 ** (8 * a.dtype.itemsize - 1)) if np.issubdtype(a.dtype, np.integer) else 1.0
                a = a.astype(np.float32) / scale                        # integer PCM (FLAC) to full scale 1.0
                chunks.append(a if f.format.is_planar else a.reshape(-1, ch).T)
            out["audio"] = np.concatenate(chunks, axis=1) if chunks else np.zeros((0, 0), np.float32)
    return out


def media_distance(a, b) -> dict:
    """Per stream, the mean absolute difference of two outputs' decoded content: "video" in levels of 255,
    "audio" in full-scale units; inf where the streams differ in shape or one file lacks a stream the
    other has."""
    da, db = decoded(a), decoded(b)
    out = {}
    for kind in ("video", "audio"):
        x, y = da[kind], db[kind]
        if x is None and y is None:
            continue
        if x is None or y is None or x.shape != y.shape:
            out[kind] = float("inf")
        else:
            out[kind] = float(np.abs(x.astype(np.float32) - y.astype(np.float32)).mean()) if x.size else 0.0
    return out


BOUNDS = {"video": FRAME_BOUND, "audio": AUDIO_BOUND}


def same_media(a, b, what: str = "") -> tuple[bool, dict]:
    """(whether every stream is within its bound, the distances). With LOCKN_MEDIA_LOG set, each comparison
    is appended to that file (how far above or below the bounds the tests' outputs really are)."""
    d = media_distance(a, b)
    log = os.environ.get("LOCKN_MEDIA_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}\t{what}\t{d}\n")
    return all(v <= BOUNDS[k] for k, v in d.items()), d


def assert_same_media(a, b, what: str = "") -> dict:
    """The two outputs show and play the same, up to encoder noise: each stream's mean absolute difference
    within FRAME_BOUND (levels of 255) / AUDIO_BOUND (full scale). Another seed or a LoRA moves the tiny
    models' outputs by tens of levels (tests/test_media_compare.py measures it), far above."""
    ok, d = same_media(a, b, what)
    assert ok, (f"{what or 'outputs'} differ beyond encoder noise: mean |difference| {d} "
                f"(bounds: video {FRAME_BOUND} levels of 255, audio {AUDIO_BOUND}); {a} vs {b}")
    return d


def assert_different_media(a, b, what: str = "") -> dict:
    """At least one stream differs by more than its bound (not just by encoder noise)."""
    ok, d = same_media(a, b, what)
    assert not ok, (f"{what or 'outputs'} are the same up to encoder noise (mean |difference| {d}, bounds: "
                    f"video {FRAME_BOUND} levels of 255, audio {AUDIO_BOUND}) where they should differ; {a} vs {b}")
    return d
