"""Pure soundtrack fitting: exact length from frames/fps, padding, trimming, fade to silence."""
import numpy as np
import pytest

from lockn_gen.soundtrack import clip_samples, fade_out, fit_to_clip


def test_exact_length_for_the_clip():
    assert clip_samples(81, 16.0, 48000) == 243000          # Wan2.2 template: 81 frames at 16 fps
    assert clip_samples(121, 25.0, 48000) == 232320
    with pytest.raises(ValueError):
        clip_samples(0, 16.0, 48000)


@pytest.mark.parametrize("have", [1000, 48000 * 6])          # music shorter (padded) and longer (trimmed)
def test_fit_pads_or_trims_then_fades(have):
    wave = np.ones((2, have), dtype=np.float32)
    out = fit_to_clip(wave, 48000, frames=81, fps=16.0, fade_seconds=1.0)
    assert out.shape == (2, 243000)
    assert out[:, -1].max() == 0.0                           # faded to silence
    if have < 243000:
        assert np.all(out[:, :have] == 1.0)                  # the music itself is untouched
        assert out[:, have:].max() == 0.0                    # the padding is silence
    else:
        assert out[0, 243000 - 48000 - 10] == pytest.approx(1.0)  # untouched before the fade


def test_fade_is_monotonic_and_linear_option():
    wave = np.ones((1, 100), dtype=np.float32)
    f = fade_out(wave, 100, 0.5, curve="linear")[0, 50:]
    assert np.all(np.diff(f) <= 0) and f[0] == pytest.approx(1.0) and f[-1] == 0.0
