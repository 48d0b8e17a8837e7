"""The two chain workflows in the real ComfyUI editor (headless Chromium): they open without an error,
the editor's own conversion of the graph (Brief outputs into the image prompt, the motion prompt and
the music encoder's tags, lyrics, bpm, key and time signature) queues, and Run gives the MP4.

The top level reads like an official template: at most 8 nodes besides the notes, one subgraph per
stage. The widgets are first set to the tiny sizes of lockn_gen.demo_sets (what `lockn-gen run` sets
with --set), in the page, the way a person would: on a stage's face (its promoted widget) or on the
top-level node. Fit-to-view screenshots of the top level and of each stage's inside are kept under
the test's tmp folder (LOCKN_SCREENSHOT_DIR to keep them elsewhere).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lockn_gen.demo_sets import TINY
from tests.test_workflow_subgraphs import MAX_TOP, face_setting
from tests.test_web_sidebar import CHROMIUM, CHROMIUM_ARGS, Page, srv  # noqa: F401  (srv: the module's server)

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
WF = Path(__file__).resolve().parents[1] / "workflows"

# a top-level node by its title (a stage's subgraph node, or Brief), then its widget by name: on a
# subgraph node that is the promoted widget on its face, named after the subgraph's input
SET_WIDGETS = """([title, name, value]) => {
  const nodes = window.app.graph._nodes.filter(n => n.title === title);
  if (nodes.length !== 1) return `${nodes.length} top-level nodes titled ${title}`;
  const w = (nodes[0].widgets || []).find(w => w.name === name);
  if (!w) return `no widget ${name} on ${title}: ${(nodes[0].widgets || []).map(w => w.name)}`;
  w.value = value;
  return null;
}"""
TOP_LEVEL = """() => window.app.graph._nodes.filter(n => !['Note', 'MarkdownNote'].includes(n.type))
  .map(n => [n.title, n.isSubgraphNode ? n.isSubgraphNode() : false])"""
# fit to view, the canvas's own fitting (app.canvas.ds.fitToBounds) around every node with its title bar
# (and a subgraph's input and output nodes), with a small margin
FIT_VIEW = """() => {
  const c = window.app.canvas, g = c.graph, T = 30;
  const boxes = g._nodes.map(n => [n.pos[0], n.pos[1] - T, n.size[0], n.size[1] + T]);
  for (const io of [g.inputNode, g.outputNode]) if (io && io.boundingRect) boxes.push([...io.boundingRect]);
  const x0 = Math.min(...boxes.map(b => b[0])), y0 = Math.min(...boxes.map(b => b[1]));
  const x1 = Math.max(...boxes.map(b => b[0] + b[2])), y1 = Math.max(...boxes.map(b => b[1] + b[3]));
  c.ds.fitToBounds([x0, y0, x1 - x0, y1 - y0], {zoom: 0.9});
  c.setDirty(true, true);
  return c.ds.scale;
}"""
OPEN_STAGE = """(title) => {
  const node = window.app.graph._nodes.find(n => n.title === title);
  window.app.canvas.openSubgraph(node.subgraph, node);
}"""


def _screenshot(page, path: Path):
    page.page.evaluate(FIT_VIEW)
    time.sleep(1.0)
    page.page.screenshot(path=str(path))


@pytest.fixture(scope="module")
def page(srv):  # noqa: F811
    pw_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (LOCKN_CHROMIUM)")
    with pw_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # the screenshots are fitted to the view: draw the text at any zoom (no low-detail boxes)
            status, body = srv.post("/settings/LiteGraph.Canvas.MinFontSizeForLOD", 0)
            assert status == 200, f"could not store the setting: {status} {body}"
            p = Page(browser.new_page(viewport={"width": 1920, "height": 1200}), srv)
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
    time.sleep(1.0)
    shots = Path(os.environ.get("LOCKN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    dialogs = page.page.evaluate("() => [...document.querySelectorAll('.p-dialog, .p-toast-message-error')]"
                                 ".map(e => e.innerText.slice(0, 300))")
    assert dialogs == [], dialogs
    top = page.page.evaluate(TOP_LEVEL)
    assert len(top) <= MAX_TOP, top
    assert sorted(t for t, sub in top if sub) == ["Assemble", "Image", "Music", "Video"], top
    assert page.page.evaluate("() => window.app.graph._nodes.filter(n => n.type === 'LockNBrief').length") == 1
    _screenshot(page, shots / f"{name}.png")
    for stage in ("Image", "Video", "Music", "Assemble"):          # each stage's inside, then back
        page.page.evaluate(OPEN_STAGE, stage)
        _screenshot(page, shots / f"{name}_{stage.lower()}.png")
        page.page.evaluate("() => window.app.canvas.setGraph(window.app.graph)")
    for setting in TINY[name]:                                     # on the stages' faces, as a person would
        target, value = face_setting(wf, setting).split("=", 1)
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
    titled = {(n.get("_meta") or {}).get("title"): n for n in prompt.values()}
    for setting in TINY[name]:                                     # what was set on the faces reached the nodes
        target, value = setting.split("=", 1)
        title, inp = target.rsplit(".", 1)
        assert titled[title]["inputs"][inp] == _value(value), (setting, titled[title]["inputs"])
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
