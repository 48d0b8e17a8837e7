"""Batches, as the shipped workflows offer them (tiny models, a real server): the image stage makes a
batch and its "pick" widget chooses the image that goes on to the video; the music workflow makes
several candidate songs in one run."""
from __future__ import annotations

from pathlib import Path

import pytest

from lockn_gen import client
from lockn_gen.demo_sets import TINY
from lockn_testing.media import assert_different_media, assert_same_media, probe_media

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"


def _run(srv, tmp_path, name, sets):
    (res,) = client.run_workflow(str(WF / f"{name}.json"), TINY[name] + sets, [srv.url], out_dir=tmp_path,
                                 timeout=600)
    assert res.ok, res.error
    return res, srv.get(f"/history/{res.prompt_id}")[res.prompt_id]


def test_music_workflow_makes_several_candidates(comfy_server, tmp_path):
    res, _ = _run(comfy_server, tmp_path, "ace15_text_to_music", ["Music.candidates=3"])
    mp3s = sorted(p for p in res.files if str(p).endswith(".mp3"))
    assert len(mp3s) == 3, res.files
    assert all(probe_media(p)["n_audio_streams"] == 1 for p in mp3s)
    for i, a in enumerate(mp3s):                               # three different songs, not one copied
        for b in mp3s[i + 1:]:
            assert_different_media(a, b, "two candidate songs")


def test_chain_image_batch_and_pick(comfy_server, tmp_path):
    """A batch of 3 images is previewed; the picked one, and only it, goes on to the video: picking
    another changes the MP4, picking the same one again gives the same MP4."""
    mp4s = {}
    for pick in (2, 0, 2):
        res, hist = _run(comfy_server, tmp_path / f"p{pick}", "chain_quality", ["Image.batch=3", f"Image.pick={pick}"])
        previews = [im for out in hist["outputs"].values() for im in out.get("images", [])
                    if im.get("type") == "temp"]
        assert len(previews) == 3, hist["outputs"]
        (mp4,) = [p for p in res.files if str(p).endswith(".mp4")]
        mp4s.setdefault(pick, []).append(mp4)
        assert probe_media(mp4)["video"]["frames"] == 17
    # the same pick: the same clip up to the H.264 encoder's noise (lockn_testing.media: mean within 1 level of 255)
    assert_same_media(mp4s[2][0], mp4s[2][1], "the same pick twice")
    assert_different_media(mp4s[2][0], mp4s[0][0], "two picks")
