"""Reading a training dataset's files: pictures (PIL), clips and audio (PyAV) into the tensors ComfyUI's nodes
take. Plain module: nothing from ComfyUI; a file that cannot be read is named with the fix."""
from __future__ import annotations

import os

from .preflight import LockNError


def load_images(files) -> list:
    import numpy as np
    import torch
    from PIL import Image, ImageOps
    out = []
    for f in files:
        with Image.open(f) as im:
            rgb = ImageOps.exif_transpose(im).convert("RGB")
            out.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)[None])
    return out


def image_sizes(files) -> dict:
    from PIL import Image
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as im:
                sizes[os.path.basename(f)] = im.size
        except OSError as e:
            raise LockNError(f"training picture {f} cannot be read ({e}); remove it or save it again as PNG/JPEG") from None
    return sizes


def clip_frames(path: str, frames: int):
    """The first `frames` frames of a clip as RGB arrays (fewer if the clip is shorter)."""
    import av
    out = []
    try:
        with av.open(path) as c:
            for fr in c.decode(video=0):
                out.append(fr.to_ndarray(format="rgb24"))
                if len(out) >= frames:
                    break
    except (av.error.FFmpegError, IndexError) as e:
        raise LockNError(f"training clip {path} cannot be decoded ({e}); remove it or convert it to MP4 (H.264)") from None
    return out


def clip_size(path: str, frames: int) -> tuple[int, int]:
    got = clip_frames(path, frames)
    if len(got) < frames:
        raise LockNError(f"training clip {os.path.basename(path)} has {len(got)} frames, fewer than frames={frames}; "
                         f"lower frames (4n+1: {max(1, (len(got) - 1) // 4 * 4 + 1)} fits it) or remove the clip")
    h, w = got[0].shape[:2]
    return w, h


def load_clip(path: str, frames: int):
    """A clip as one IMAGE batch [frames, H, W, 3] (what a video VAE encodes as one video)."""
    import numpy as np
    import torch
    return torch.from_numpy(np.stack(clip_frames(path, frames)).astype(np.float32) / 255.0)


def load_audio(path: str, seconds: float):
    """(waveform [1, channels, samples] float32, sample rate), cut to `seconds` (0: whole)."""
    import av
    import numpy as np
    import torch
    try:
        with av.open(path) as c:
            stream = c.streams.audio[0]
            rate = stream.rate
            layout = "stereo" if (stream.channels or 1) > 1 else "mono"
            res = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = [f.to_ndarray() for fr in c.decode(stream) for f in res.resample(fr)]
            chunks += [f.to_ndarray() for f in res.resample(None)]
    except (av.error.FFmpegError, IndexError) as e:
        raise LockNError(f"training audio {path} cannot be decoded ({e}); remove it or convert it to WAV/FLAC") from None
    if not chunks:
        raise LockNError(f"training audio {path} has no audio frames; remove it")
    wave = torch.from_numpy(np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32))
    if seconds > 0:
        wave = wave[:, : int(seconds * rate)]
    return wave[None], rate
