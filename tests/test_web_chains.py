"""The two chain workflows in the real ComfyUI editor (headless Chromium): they open without an error,
the editor's own conversion of the graph (Brief outputs into the image prompt, the motion prompt and
the music encoder's tags, lyrics, bpm, key and time signature) queues, and Run gives the MP4.

The top level reads like an official template: at most 8 nodes besides the notes, one subgraph per
stage. The widgets are first set to the tiny sizes of lockn_gen.demo_sets (what `lockn-gen run` sets
with --set), in the page, the way a person would: on a stage's face (its promoted widget) or on the
top-level node. Fit-to-view screenshots of the top level and of each stage's inside are kept under
the test's tmp folder (LOCKN_SCREENSHOT_DIR to keep them elsewhere). The browser and the server are
the `editor` and `srv` fixtures of tests/conftest.py (lockn_testing/harness/browser.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lockn_gen.demo_sets import TINY
from lockn_testing.harness.browser import OPEN_STAGE, SET_WIDGETS, TOP_LEVEL, json_value, mp4s
from tests.test_workflow_subgraphs import MAX_TOP, face_setting

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
WF = Path(__file__).resolve().parents[1] / "workflows"


def shots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LOCKN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@pytest.mark.parametrize("name", ["chain_quality", "chain_fast"])
def test_chain_opens_and_runs_from_the_editor(srv, editor, name, tmp_path):
    wf = json.loads((WF / f"{name}.json").read_text())
    editor.errors.clear()
    editor.load(wf, name)
    shots = shots_dir(tmp_path)
    assert editor.shown_problems() == []
    page = editor.page
    top = page.evaluate(TOP_LEVEL)
    assert len(top) <= MAX_TOP, top
    assert sorted(t for t, sub in top if sub) == ["Assemble", "Image", "Music", "Video"], top
    assert page.evaluate("() => window.app.graph._nodes.filter(n => n.type === 'LockNBrief').length") == 1
    editor.screenshot(shots / f"{name}.png")
    for stage in ("Image", "Video", "Music", "Assemble"):          # each stage's inside, then back
        page.evaluate(OPEN_STAGE, stage)
        editor.screenshot(shots / f"{name}_{stage.lower()}.png")
        page.evaluate("() => window.app.canvas.setGraph(window.app.graph)")
    for setting in TINY[name]:                                     # on the stages' faces, as a person would
        target, value = face_setting(wf, setting).split("=", 1)
        title, widget = target.rsplit(".", 1)
        err = page.evaluate(SET_WIDGETS, [title, widget, json_value(value)])
        assert err is None, err
    entry = editor.queue_and_wait(lambda: page.evaluate("async () => { await window.app.queuePrompt(0, 1); }"), srv)
    assert entry["status"].get("status_str") == "success", json.dumps(entry["status"])[:3000]
    prompt = entry["prompt"][2]
    titled = {(n.get("_meta") or {}).get("title"): n for n in prompt.values()}
    for setting in TINY[name]:                                     # what was set on the faces reached the nodes
        target, value = setting.split("=", 1)
        title, inp = target.rsplit(".", 1)
        assert titled[title]["inputs"][inp] == json_value(value), (setting, titled[title]["inputs"])
    bid = next(k for k, n in prompt.items() if n["class_type"] == "LockNBrief")
    enc = next(n for n in prompt.values() if n["class_type"] == "TextEncodeAceStepAudio1.5")
    # the editor sent the Brief's outputs as links into the music encoder (COMBO outputs into combos)
    for field, slot in (("tags", 1), ("bpm", 3), ("keyscale", 4), ("timesignature", 5)):
        assert enc["inputs"][field] == [bid, slot], enc["inputs"]
    assert mp4s(entry), entry["outputs"]
    assert entry["outputs"][bid]["text"][0].startswith("written by:")
    assert not editor.extension_errors(), editor.errors
