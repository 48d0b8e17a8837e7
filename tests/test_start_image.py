"""The I2V workflows' example start image: shipped in sync with its generator, put into a fresh
ComfyUI's input folder at start-up (never over a user's file), and enough to run the Wan2.2 and LTX-2
UI workflows as they are opened, with no picture supplied."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lockn_gen import cli, start_image
from lockn_gen.demo_sets import TINY

WF = Path(__file__).resolve().parents[1] / "workflows"


def test_the_shipped_picture_is_the_generators():
    assert start_image.PATH.read_bytes() == start_image.png(), "run: python -m lockn_gen.start_image"


@pytest.mark.comfy
def test_a_fresh_comfyui_gets_the_picture_and_runs_the_i2v_workflows(tiny_models, tmp_path):
    from lockn_testing.harness.server import ComfyServer
    srv = ComfyServer(tiny_models)
    try:
        srv.start()
        shipped = srv.base / "input" / start_image.NAME
        assert shipped.read_bytes() == start_image.PATH.read_bytes()
        assert start_image.NAME in srv.get("/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"][0]
        for name in ("wan22_image_to_video", "ltx2_image_to_video"):
            out = tmp_path / name
            rc = cli.main(["run", str(WF / f"{name}.json"), "--server", srv.url, "--out", str(out), "--no-progress",
                           *sum((["--set", s] for s in TINY[name]), [])])
            assert rc == 0, srv.log_tail()
            assert list(out.rglob("*.mp4")), name
    finally:
        srv.stop()
    # a user's own file of that name stays as it is
    mine = srv.base / "input" / start_image.NAME
    mine.write_bytes(b"mine")
    again = ComfyServer(tiny_models, base_dir=srv.base)
    try:
        again.start()
        assert mine.read_bytes() == b"mine"
    finally:
        again.stop()
        shutil.rmtree(srv.base, ignore_errors=True)
