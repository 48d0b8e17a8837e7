"""The example start image of the image-to-video workflows (workflows/input/lockn_start.png): a
lighthouse on a rock at dawn, drawn here with numpy so the pack ships no third-party picture. The
pack copies it into ComfyUI's input folder at start-up when no file of that name is there, so the
Load Image node of wan22_image_to_video.json and ltx2_image_to_video.json is not red on first open
(the official templates do the same with ComfyUI's example.png).

    python -m lockn_gen.start_image            # rewrite workflows/input/lockn_start.png
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .brief import png_bytes

NAME = "lockn_start.png"
PATH = Path(__file__).resolve().parents[1] / "workflows" / "input" / NAME
W = H = 640


def draw(w: int = W, h: int = H) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    horizon = 0.62 * h
    img = np.zeros((h, w, 3))
    # sky: night blue at the top to a warm band at the horizon
    t = np.clip(y / horizon, 0, 1)[..., None]
    top, mid, low = np.array([18, 28, 70]), np.array([120, 90, 150]), np.array([250, 170, 110])
    sky = np.where(t < 0.6, top + (mid - top) * (t / 0.6), mid + (low - mid) * ((t - 0.6) / 0.4))
    # the sun, half risen, with a glow
    sx, sy, sr = 0.68 * w, horizon, 0.07 * w
    d = np.hypot(x - sx, y - sy)[..., None]
    sky = sky + np.clip(1.2 - d / (4 * sr), 0, 1) ** 2 * np.array([90, 60, 20])
    sky = np.where(d < sr, np.array([255, 225, 170]), sky)
    # the sea: darker towards the viewer, with the sun's path in short streaks
    s = np.clip((y - horizon) / (h - horizon), 0, 1)[..., None]
    sea = np.array([70, 60, 95]) * (1 - s) + np.array([15, 22, 45]) * s
    streak = (np.abs(x - sx) < (0.05 * w + 0.25 * w * s[..., 0])) & (np.sin(y * 0.9 + np.sin(x * 0.05) * 3) > 0.55)
    sea = np.where(streak[..., None], sea + np.array([120, 80, 40]) * (1 - 0.6 * s), sea)
    img = np.where((y < horizon)[..., None], sky, sea)
    # a rock on the left, and the lighthouse on it
    rock = (y > horizon - 0.03 * h + 0.003 * (x - 0.18 * w) ** 2 * (640 / w))
    img = np.where(rock[..., None], np.array([28, 26, 34]), img)
    cx, base, top_y = 0.2 * w, horizon - 0.02 * h, 0.3 * h
    frac = np.clip((base - y) / (base - top_y), 0, 1)
    half = 0.035 * w * (1 - 0.35 * frac)
    tower = (y > top_y) & (y < base) & (np.abs(x - cx) < half)
    bands = tower & ((np.floor((base - y) / (0.045 * h)) % 2) == 1)
    img = np.where(tower[..., None], np.array([235, 230, 225]), img)
    img = np.where(bands[..., None], np.array([180, 40, 45]), img)
    lamp = (y > top_y - 0.05 * h) & (y <= top_y) & (np.abs(x - cx) < 0.028 * w)
    img = np.where(lamp[..., None], np.array([255, 240, 170]), img)
    roof = (y > top_y - 0.085 * h) & (y <= top_y - 0.05 * h) & (np.abs(x - cx) < 0.035 * w * (y - (top_y - 0.085 * h)) / (0.035 * h))
    img = np.where(roof[..., None], np.array([40, 30, 35]), img)
    # the lamp's beam towards the right
    ang = np.abs(np.arctan2(y - (top_y - 0.025 * h), x - cx))
    beam = (x > cx) & (ang < 0.06) & (y < horizon)
    img = np.where(beam[..., None], img * 0.6 + np.array([255, 240, 190]) * 0.4, img)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def png() -> bytes:
    return png_bytes(draw())


def main():
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_bytes(png())
    print(PATH)


if __name__ == "__main__":
    main()
