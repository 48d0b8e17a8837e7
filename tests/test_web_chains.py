"""The two chain workflows in the real ComfyUI editor (headless Chromium): they open without an error,
the editor's own conversion of the graph (Brief outputs into the image prompt, the motion prompt and
the music encoder's tags, lyrics, bpm, key and time signature) queues, and Run gives the MP4.

The widgets are first set to the tiny sizes of lockn_gen.demo_sets (what `lockn-gen run` sets with
--set), in the page, the way a person would type them. Screenshots of the opened graphs are kept
under the test's tmp folder (LOCKN_SCREENSHOT_DIR to keep them elsewhere).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lockn_gen.demo_sets import TINY
from tests.test_web_sidebar import CHROMIUM, CHROMIUM_ARGS, Page, srv  # noqa: F401  (srv: the module's server)

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
WF = Path(__file__).resolve().parents[1] / "workflows"

SET_WIDGETS = """([title, name, value]) => {
  const nodes = window.app.graph._nodes.filter(n => n.title === title);
  if (nodes.length !== 1) return `${nodes.length} nodes titled ${title}`;
  const w = (nodes[0].widgets || []).find(w => w.name === name);
  if (!w) return `no widget ${name} on ${title}`;
  w.value = value;
  return null;
}"""


@pytest.fixture(scope="module")
def page(srv):  # noqa: F811
    pw_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (LOCKN_CHROMIUM)")
    with pw_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            p = Page(browser.new_page(viewport={"width": 1600, "height": 1000}), srv)
            p.page.goto(srv.url)
            p.wait_for("() => window.app && window.app.graph && window.app.queuePrompt", "the editor")
            yield p
        finally:
            browser.close()


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.mark.parametrize("name", ["chain_quality", "chain_fast"])
def test_chain_opens_and_runs_from_the_editor(srv, page, name, tmp_path):  # noqa: F811
    wf = json.loads((WF / f"{name}.json").read_text())
    page.errors.clear()
    page.page.evaluate("async ([g, n]) => { await window.app.loadGraphData(g, true, true, n); }", [wf, name])
    page.page.evaluate("() => window.app.canvas.ds && window.app.canvas.setDirty(true, true)")
    time.sleep(1.0)
    shots = Path(os.environ.get("LOCKN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(shots / f"{name}.png"))
    dialogs = page.page.evaluate("() => [...document.querySelectorAll('.p-dialog, .p-toast-message-error')]"
                                 ".map(e => e.innerText.slice(0, 300))")
    assert dialogs == [], dialogs
    assert page.page.evaluate("() => window.app.graph._nodes.filter(n => n.type === 'LockNBrief').length") == 1
    for setting in TINY[name]:
        target, value = setting.split("=", 1)
        title, widget = target.rsplit(".", 1)
        err = page.page.evaluate(SET_WIDGETS, [title, widget, _value(value)])
        assert err is None, err
    before = set(srv.get("/history"))
    page.page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.time() + 600
    entry = None
    while time.time() < deadline:
        new = {k: v for k, v in srv.get("/history").items() if k not in before}
        if new and all(v.get("status", {}).get("completed") or v.get("status", {}).get("status_str") == "error"
                       for v in new.values()):
            (entry,) = new.values()
            break
        time.sleep(1.0)
    assert entry is not None, page.explain("the editor's prompt did not finish")
    assert entry["status"].get("status_str") == "success", json.dumps(entry["status"])[:3000]
    prompt = entry["prompt"][2]
    bid = next(k for k, n in prompt.items() if n["class_type"] == "LockNBrief")
    enc = next(n for n in prompt.values() if n["class_type"] == "TextEncodeAceStepAudio1.5")
    # the editor sent the Brief's outputs as links into the music encoder (COMBO outputs into combos)
    for field, slot in (("tags", 1), ("bpm", 3), ("keyscale", 4), ("timesignature", 5)):
        assert enc["inputs"][field] == [bid, slot], enc["inputs"]
    videos = [v for out in entry["outputs"].values() for v in out.get("images", []) + out.get("video", [])
              if str(v.get("filename", "")).endswith(".mp4")]
    assert videos, entry["outputs"]
    assert entry["outputs"][bid]["text"][0].startswith("written by:")
    assert not page.extension_errors(), page.errors
