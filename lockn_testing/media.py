"""Decode what ComfyUI wrote and describe it, for the tests' checks (PyAV and Pillow)."""
from __future__ import annotations

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
    ComfyUI writes the prompt into the file's metadata, which differs between otherwise equal runs."""
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
