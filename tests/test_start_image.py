"""The I2V workflows' example start image: shipped in sync with its generator, put into a fresh
ComfyUI's input folder at start-up (never over a user's file), and enough to run the Wan2.2 and LTX-2
workflows as they are opened, with no picture supplied.

The start-up checks share servers that other tests start anyway: the session server (tests/conftest.py,
`comfy_server`) is a fresh ComfyUI whose input folder nobody writes lockn_start.png into, so the I2V
workflows that tests/test_workflows.py and tests/test_turbo.py run there through `lockn-gen run` use the
pack's own picture (tests/test_workflows.py's `server` fixture asserts it before they run); and the restart
in tests/test_faults_io.py starts its second ComfyUI on an input folder that already holds a user's file
of that name, which must stay as it is."""
from __future__ import annotations

import pytest

from lockn_gen import start_image


def test_the_shipped_picture_is_the_generators():
    assert start_image.PATH.read_bytes() == start_image.png(), "run: python -m lockn_gen.start_image"


@pytest.mark.comfy
def test_a_fresh_comfyui_gets_the_picture(comfy_server):
    shipped = comfy_server.base / "input" / start_image.NAME
    assert shipped.read_bytes() == start_image.PATH.read_bytes()
    assert start_image.NAME in comfy_server.get("/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"][0]
