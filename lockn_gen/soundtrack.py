"""Fit a soundtrack to a clip: exactly as long as the video (frames / fps), faded out at the end.

Plain numpy. Waveforms are (..., channels, samples) arrays; the ComfyUI node converts from and to
ComfyUI's AUDIO dicts ({"waveform": tensor [batch, channels, samples], "sample_rate": int}).
"""
from __future__ import annotations

import numpy as np


def clip_samples(frames: int, fps: float, sample_rate: int) -> int:
    """Samples that cover `frames` video frames at `fps` exactly (rounded to the nearest sample)."""
    if frames <= 0 or fps <= 0 or sample_rate <= 0:
        raise ValueError(f"frames ({frames}), fps ({fps}) and sample rate ({sample_rate}) must be positive")
    return int(round(frames / fps * sample_rate))


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Trim to `n` samples, or pad the end with silence."""
    have = wave.shape[-1]
    if have >= n:
        return wave[..., :n]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, n - have)]
    return np.pad(wave, pad)


def fade_out(wave: np.ndarray, sample_rate: int, seconds: float, curve: str = "cosine") -> np.ndarray:
    """Fade the last `seconds` to silence (the last sample is 0)."""
    n = min(wave.shape[-1], int(round(seconds * sample_rate)))
    if n <= 0:
        return wave
    t = np.linspace(1.0, 0.0, n, dtype=np.float64)
    gain = 0.5 - 0.5 * np.cos(np.pi * t) if curve == "cosine" else t
    out = wave.astype(np.float32, copy=True)
    out[..., -n:] *= gain.astype(np.float32)
    return out


def fit_to_clip(wave: np.ndarray, sample_rate: int, frames: int, fps: float, fade_seconds: float) -> np.ndarray:
    """The soundtrack of a clip of `frames` at `fps`: trimmed or padded, then faded out."""
    out = fit_length(wave, clip_samples(frames, fps, sample_rate))
    return fade_out(out, sample_rate, min(fade_seconds, frames / fps))
