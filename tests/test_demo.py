"""The README's main-job command runs: the quality chain on the tiny models, one MP4 with video and music."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockn_testing.media import probe_media

pytestmark = pytest.mark.comfy
REPO = Path(__file__).resolve().parents[1]


def test_demo_command_writes_the_mp4(tiny_models, tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], cwd=str(tmp_path), capture_output=True,
                         text=True, timeout=600, env={**os.environ, "LOCKN_DEMO_OUT": str(out)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    mp4s = list(out.rglob("*.mp4"))
    assert len(mp4s) == 1 and f"MP4: {mp4s[0]}" in res.stdout
    info = probe_media(mp4s[0])
    assert info["n_video_streams"] == 1 and info["n_audio_streams"] == 1
    assert info["video"]["frames"] == 17 and info["video"]["fps"] == pytest.approx(16.0)
    assert info["audio"]["duration"] == pytest.approx(17 / 16, abs=1 / 16)
    assert "random weights" in res.stdout and "models pull" in res.stdout       # says what it is and how to go real
