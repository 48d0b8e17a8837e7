"""Every shipped workflow in the real ComfyUI editor (headless Chromium), and a chain app run from its form.

Each UI file of workflows/ (the six workflows and the two apps, NAME.app.json) opens the way the editor
opens a file: no node type is missing (on the server, and in the page: LiteGraph made every node, on the
top level and inside the subgraphs), no error toast, dialog or error overlay shows, the top level holds
at most 8 nodes besides the notes. A workflow opens on its graph; an app opens in App Mode (frontend
1.43+: extra.linearMode), its form listing the app's fields (lockn_gen.chains.APP_FIELDS) with their
labels and a Run button. A fit-to-view screenshot of each graph (and a picture of each app's form) is
kept under the test's tmp folder (LOCKN_SCREENSHOT_DIR to keep them elsewhere).

Copied into ComfyUI's user workflows, the apps are listed in the editor's Apps tab (the files named
*.app.json) and a click opens one as its form.

Then the quality chain's app runs from its form: the brief and the video's length and size typed into
the form's fields (the tiny values of lockn_gen.demo_sets.TINY; the other tiny settings are set on the
graph behind the form), the form's Run button clicked; the prompt the editor queued carries the form's
values and the MP4 it made has the length typed.

The same file works in the 1.43 editor (ComfyUI 0.20.1) and the 1.49 one (0.33): both read
extra.linearData's [inner node id, widget name] entries (1.49 turns them into its own widget ids when it
loads the file) and enter App Mode from extra.linearMode; 1.49's first App Mode tour is marked seen by the
`srv` fixture (lockn_testing/harness/browser.py EDITOR_SETTINGS).
"""
from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import pytest

from lockn_gen import chains, workflow
from lockn_gen.demo_sets import TINY
from lockn_testing.harness.browser import (APP_FIELD, APP_FORM, APP_RUN, BROKEN_NODES, SET_WIDGETS, TOP_LEVEL,
                                           json_value, mp4s)
from lockn_testing.media import probe_media
from tests.test_workflow_subgraphs import MAX_TOP, face_setting, subgraph_ids

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
WF = Path(__file__).resolve().parents[1] / "workflows"
FORM_MS = 30_000


def shots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LOCKN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def node_types(ui: dict) -> set[str]:
    """Every node class of a UI file, on the top level and inside its subgraphs (not the subgraphs' own
    instances, not the notes)."""
    graphs = [ui] + (ui.get("definitions") or {}).get("subgraphs", [])
    return {n["type"] for g in graphs for n in g["nodes"]} - subgraph_ids(ui) - set(workflow.NOTE_TYPES)


def form_labels(editor) -> list[str]:
    return editor.page.locator(f"{APP_FORM} {APP_FIELD} [data-testid=builder-widget-label]").all_inner_texts()


def field(editor, label: str):
    """The form's field with that label."""
    page = editor.page
    return page.locator(f"{APP_FORM} {APP_FIELD}").filter(
        has=page.locator("[data-testid=builder-widget-label]", has_text=label))


def test_the_shipped_files_are_the_workflows_and_the_apps():
    assert sorted(p.name for p in WF.glob("*.json")) == sorted(f"{n}.json" for n in chains.UI_NAMES)
    assert [n for n in chains.UI_NAMES if n.endswith(".app")] == ["chain_quality.app", "chain_fast.app"]


@pytest.mark.parametrize("name", chains.UI_NAMES)
def test_every_shipped_workflow_opens_in_the_editor(srv, editor, name, tmp_path):
    ui = json.loads((WF / f"{name}.json").read_text())
    missing = sorted(node_types(ui) - set(srv.get("/object_info")))
    assert not missing, f"{name}: node types the server does not have: {missing}"
    editor.errors.clear()
    editor.load(ui, name)
    page = editor.page
    shots = shots_dir(tmp_path)
    assert page.evaluate(BROKEN_NODES) == [], f"{name}: nodes the editor could not make"
    assert editor.shown_problems() == [], name
    top = page.evaluate(TOP_LEVEL)
    assert len(top) <= MAX_TOP, top
    app = ui["extra"].get("linearData")
    if app:
        editor.wait_for(f"() => document.querySelectorAll('{APP_FORM} {APP_FIELD}').length === {len(app['inputs'])}",
                        f"{name}: App Mode's form with {len(app['inputs'])} fields", timeout=FORM_MS)
        assert form_labels(editor) == list(chains.APP_FIELDS[name].values())
        assert page.locator(APP_RUN).is_visible()
        editor.screenshot(shots / f"{name}_form.png", fit=False)
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.ToggleLinear')")   # to the graph
        editor.wait_for(f"() => !document.querySelector('{APP_FORM}')", f"{name}: the graph behind the form")
    else:
        assert not editor.in_app_mode(), f"{name} opened in App Mode"
    editor.screenshot(shots / f"{name}.png")
    assert editor.shown_problems() == [], name
    assert not editor.extension_errors(), editor.errors


def test_apps_in_the_users_workflows_are_in_the_apps_tab_and_open_as_forms(srv, editor, tmp_path):
    """Copied into ComfyUI's user workflows (user/default/workflows/, here a folder of it), the apps are
    listed in the editor's Apps sidebar tab (it lists the files named *.app.json); a click opens one in
    App Mode, from its extra.linearMode."""
    folder = "LockN Gen"
    for name in chains.APPS:
        path = urllib.parse.quote(f"workflows/{folder}/{name}.json", safe="")
        status, body = srv.request("POST", f"/userdata/{path}?overwrite=true", (WF / f"{name}.json").read_bytes())
        assert status == 200, body
    page = editor.page
    page.evaluate("async () => { await window.app.extensionManager.workflow.syncWorkflows(); }")
    page.evaluate("() => window.app.extensionManager.command.execute('Workspace.ToggleSidebarTab.apps')")
    tab = page.locator("[data-testid=apps-sidebar]")
    tab.locator(f'[data-testid="tree-node-root/{folder}"]').click()
    for name in chains.APPS:                          # listed by the name before .app.json
        node = tab.locator(f'[data-testid="tree-node-root/{folder}/{name}.json"]')
        node.wait_for(timeout=FORM_MS)
        assert node.inner_text().strip() == chains.chain_of(name)
    tab.locator(f'[data-testid="tree-node-root/{folder}/chain_fast.app.json"]').click()
    n = len(chains.APP_FIELDS["chain_fast.app"])
    editor.wait_for(f"() => document.querySelectorAll('{APP_FORM} {APP_FIELD}').length === {n}",
                    "the app opened from the Apps tab in App Mode", timeout=FORM_MS)
    assert page.evaluate("() => window.app.extensionManager.workflow.activeWorkflow.path") == \
        f"workflows/{folder}/chain_fast.app.json"
    assert form_labels(editor) == list(chains.APP_FIELDS["chain_fast.app"].values())
    editor.screenshot(shots_dir(tmp_path) / "apps_tab.png", fit=False)
    page.evaluate("() => window.app.extensionManager.command.execute('Workspace.ToggleSidebarTab.apps')")   # closed
    assert editor.shown_problems() == []


def form_settings(name: str) -> tuple[dict[str, str], list[str]]:
    """The app's tiny settings split: {form label: value} for the fields on its form, the rest as --set."""
    chain = chains.chain_of(name)
    api = chains.prompt(chain)
    ui = json.loads((WF / f"{name}.json").read_text())
    labels = list(chains.APP_FIELDS[name].values())
    on_form = {}
    for (nid, key), label in zip(ui["extra"]["linearData"]["inputs"], labels):
        on_form[f"{(api[nid].get('_meta') or {}).get('title')}.{key}"] = label
    typed, rest = {}, []
    for setting in TINY[name]:
        target, value = setting.split("=", 1)
        if target in on_form:
            typed[on_form[target]] = value
        else:
            rest.append(setting)
    return typed, rest


def test_form_settings_cover_the_video_size_and_length():
    typed, rest = form_settings("chain_quality.app")
    assert typed == {"length (frames)": "17", "video width": "96", "video height": "96"}
    assert rest and all(s in TINY["chain_quality"] for s in rest)


def test_chain_app_runs_from_its_form(srv, editor, tmp_path):
    name, brief = "chain_quality.app", "a red fox in deep snow, slow jazz piano"
    ui = json.loads((WF / f"{name}.json").read_text())
    editor.errors.clear()
    editor.load(ui, name)
    page = editor.page
    n = len(ui["extra"]["linearData"]["inputs"])
    editor.wait_for(f"() => document.querySelectorAll('{APP_FORM} {APP_FIELD}').length === {n}",
                    "App Mode's form", timeout=FORM_MS)
    typed, rest = form_settings(name)
    for setting in rest:                             # the tiny settings that are not on the form: on the graph
        target, value = face_setting(ui, setting).split("=", 1)
        title, widget = target.rsplit(".", 1)
        err = page.evaluate(SET_WIDGETS, [title, widget, json_value(value)])
        assert err is None, err
    field(editor, "brief").locator("textarea").fill(brief)
    for label, value in typed.items():               # typed into the form, as a person does
        box = field(editor, label).locator("input[role=spinbutton], input").first
        box.fill(value)
        box.press("Enter")
        box.blur()
    for label, value in typed.items():
        assert field(editor, label).locator("input").first.input_value().replace(",", "") == value, label
    editor.screenshot(shots_dir(tmp_path) / f"{name}_filled.png", fit=False)
    entry = editor.queue_and_wait(lambda: page.locator(APP_RUN).click(), srv)
    assert entry["status"].get("status_str") == "success", json.dumps(entry["status"])[:3000]
    prompt = entry["prompt"][2]
    titled = {(n.get("_meta") or {}).get("title"): n for n in prompt.values()}
    assert titled["Brief"]["inputs"]["text"] == brief
    for setting in TINY[chains.chain_of(name)]:      # the form's values and the graph's reached the nodes
        target, value = setting.split("=", 1)
        title, inp = target.rsplit(".", 1)
        assert titled[title]["inputs"][inp] == json_value(value), (setting, titled[title]["inputs"])
    (mp4,) = mp4s(entry)
    info = probe_media(srv.output_path(mp4))
    assert info["video"]["frames"] == int(typed["length (frames)"])
    assert (info["video"]["width"], info["video"]["height"]) == (96, 96)
    assert info["n_audio_streams"] == 1
    editor.wait_for("() => document.querySelector('video')", "the MP4 shown by the app", timeout=FORM_MS)
    editor.screenshot(shots_dir(tmp_path) / f"{name}_done.png", fit=False)
    assert not editor.extension_errors(), editor.errors


# a stage's face widget: [min, max, step] from its options, as this version's editor built the promoted widget
FACE_RANGE = """([stage, name]) => {
  const node = window.app.graph._nodes.find(n => n.title === stage);
  const w = node && (node.widgets || []).find(w => w.name === name);
  if (!w) return `no face widget ${name} on ${stage}: ${node ? (node.widgets || []).map(w => w.name) : 'no node'}`;
  const o = w.options || {};
  return [o.min, o.max, o.step2 ?? (o.step === undefined ? null : o.step / 10)];
}"""
# (file, stage, face) -> [min, max, step]: the range the file gives the Primitive behind the face (its properties;
# tests/test_faces_and_sets.py checks they are the ranges of what it feeds), not the Primitive's own 64-bit one
FACE_RANGES = {("chain_quality", "Image", "width"): [16, 16384, 16], ("chain_quality", "Video", "length"): [1, 16384, 4],
               ("chain_quality", "Video", "steps"): [1, 10000, 1], ("chain_quality", "Video", "fps"): [1, 120, 1],
               ("chain_fast", "Video", "length"): [1, 1000, 8], ("ace15_text_to_music", "Music", "duration"): [1, 1000, 0.1]}


def test_stage_faces_keep_to_the_range_of_what_they_stand_for(srv, editor):
    """A face that stands for a PrimitiveInt or PrimitiveFloat ("Video.length" is "Length (frames)".value) has
    the range of the inputs that value feeds, from the Primitive's properties, in this version's editor."""
    got = {}
    for name in dict.fromkeys(n for n, _, _ in FACE_RANGES):
        editor.load(json.loads((WF / f"{name}.json").read_text()), name)
        for (n, stage, face) in [k for k in FACE_RANGES if k[0] == name]:
            got[(n, stage, face)] = editor.page.evaluate(FACE_RANGE, [stage, face])
    assert got == FACE_RANGES
    assert editor.shown_problems() == [] and not editor.extension_errors(), editor.errors
