"""lockn_testing.media's comparison of outputs, without ComfyUI: the same frames encoded twice are the same
whatever the encoder's noise; another seed's frames, a shifted frame, a different length or a changed
soundtrack are not. The bounds (mean |difference| of 1 level of 255 per pixel, 1e-5 per audio sample) are
what the integration tests assert with."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lockn_testing import media

av = pytest.importorskip("av")


def _mp4(path, frames: np.ndarray, audio: np.ndarray | None = None, rate: int = 16000, threads: int = 0):
    """Frames (n, h, w, 3) uint8 and audio (2, samples) float as ComfyUI's SaveVideo writes them: H.264
    yuv420p, AAC."""
    with av.open(str(path), mode="w") as out:
        v = out.add_stream("h264", rate=Fraction(16, 1))
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        v.codec_context.thread_count = threads
        a = out.add_stream("aac", rate=rate, layout="stereo") if audio is not None else None
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")))
        out.mux(v.encode(None))
        if a is not None:
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = rate, 0
            out.mux(a.encode(fr))
            out.mux(a.encode(None))
    return path


def _clip(seed: int, n: int = 9, size: int = 48) -> np.ndarray:
    """Smooth frames with detail, like a decoded video more than like white noise."""
    rng = np.random.RandomState(seed)
    base = rng.rand(n, size // 8, size // 8, 3)
    return (np.kron(base, np.ones((1, 8, 8, 1))) * 200 + rng.rand(n, size, size, 3) * 40).astype(np.uint8)


def _tone(freq: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * t)] * 2).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    frames, other = _clip(0), _clip(1)
    return {
        "a": _mp4(d / "a.mp4", frames, _tone(440)),
        "a_again_one_thread": _mp4(d / "a1.mp4", frames, _tone(440), threads=1),
        "other_seed": _mp4(d / "b.mp4", other, _tone(440)),
        "shorter": _mp4(d / "c.mp4", frames[:-1], _tone(440)),
        "other_music": _mp4(d / "d.mp4", frames, _tone(523.25)),
        "no_audio": _mp4(d / "e.mp4", frames),
    }


def test_the_same_frames_encoded_again_are_the_same(clips):
    d = media.assert_same_media(clips["a"], clips["a_again_one_thread"])
    assert d["video"] <= media.FRAME_BOUND and d["audio"] <= media.AUDIO_BOUND


@pytest.mark.parametrize("other,stream", [("other_seed", "video"), ("shorter", "video"), ("other_music", "audio"),
                                          ("no_audio", "audio")])
def test_real_changes_are_far_above_the_bounds(clips, other, stream):
    d = media.assert_different_media(clips["a"], clips[other])
    bound = media.BOUNDS[stream]
    assert d[stream] > 10 * bound, d                   # far above: not a near miss
    with pytest.raises(AssertionError, match="differ beyond encoder noise"):
        media.assert_same_media(clips["a"], clips[other])


def test_images_compare_by_pixels(tmp_path):
    from PIL import Image
    rng = np.random.RandomState(0)
    px = (rng.rand(32, 32, 3) * 255).astype(np.uint8)
    Image.fromarray(px).save(tmp_path / "a.png")
    Image.fromarray(px).save(tmp_path / "b.png", pnginfo=None, compress_level=1)   # other bytes, same pixels
    Image.fromarray((rng.rand(32, 32, 3) * 255).astype(np.uint8)).save(tmp_path / "c.png")
    assert media.assert_same_media(tmp_path / "a.png", tmp_path / "b.png") == {"video": 0.0}
    assert media.assert_different_media(tmp_path / "a.png", tmp_path / "c.png")["video"] > 10 * media.FRAME_BOUND
