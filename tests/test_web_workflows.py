"""LockN Gen in the real ComfyUI editor (headless Chromium): the LockN sidebar tab, every shipped workflow
and app opened, the Apps tab, the quality app run from its form and both chains run from their graphs.

One ComfyUI server and one browser for all of it (the `srv` and `editor` fixtures of tests/conftest.py,
lockn_testing/harness/browser.py): starting them took 15 to 20 s per module when these were three files
(this one, tests/test_web_chains.py and tests/test_web_sidebar.py).
The tests run in the order of this file, which their assumptions rely on:

1. The LockN residency sidebar tab (web/lockn_residency.js) first, while the server has run nothing: the
   tab opens empty (GET /lockn/residency lists no entry; nothing else here runs a prompt before), a Flux.2
   workflow queued through the HTTP API shows up in the tab live (websocket event, no reload), the tab's
   Evict and Pin buttons change the server's residency (in the tab and at GET /lockn/residency), a pin
   made by another client reaches the tab; the editor's "Unload Models and Execution Cache" button
   (POST /api/free) releases LockN's models; the tab shows which LoRAs a base carries. The page is the
   editor the fixture just opened (reloaded first only when the tab is open already); the tab is closed
   again afterwards. Set LOCKN_SIDEBAR_SCREENSHOT=/some/file.png to keep a picture of the tab with the
   models listed.

2. Each UI file of workflows/ (the six workflows and the two apps, NAME.app.json) opens the way the editor
   opens a file: no node type is missing (on the server, and in the page: LiteGraph made every node, on the
   top level and inside the subgraphs), no error toast, dialog or error overlay shows, the top level holds
   at most 8 nodes besides the notes. A workflow opens on its graph; an app opens in App Mode (frontend
   1.43+: extra.linearMode), its form listing the app's fields (lockn_gen.chains.APP_FIELDS) with their
   labels and a Run button. A stage's face that stands for a PrimitiveInt or PrimitiveFloat has the range
   of the inputs that value feeds (FACE_RANGES, checked on the file as it opened). A fit-to-view screenshot
   of each graph (and a picture of each app's form) is kept under the test's tmp folder
   (LOCKN_SCREENSHOT_DIR to keep them elsewhere). "Opened" means loadGraphData returned and the page then
   settled (Page.settle: no request of its own under way, two frames drawn), not a fixed sleep.

3. Copied into ComfyUI's user workflows, the apps are listed in the editor's Apps tab (the files named
   *.app.json) and a click opens one as its form.

4. The runs, from nothing loaded: POST /free (unload_models, free_memory) first, as the files' own servers
   were fresh. The quality chain's app runs from its form: the brief and the video's length and size typed
   into the form's fields (the tiny values of lockn_gen.demo_sets.TINY; the other tiny settings are set on
   the graph behind the form), the form's Run button clicked; the prompt the editor queued carries the
   form's values and the MP4 it made has the length typed. Then each chain workflow (chain_quality.json,
   chain_fast.json) opens without an error, reads like an official template (at most 8 nodes besides the
   notes, one subgraph per stage), its widgets are set to the tiny sizes on the stages' faces or the
   top-level node as a person would, and the editor's own conversion of the graph (Brief outputs into the
   image prompt, the motion prompt and the music encoder's tags, lyrics, bpm, key and time signature)
   queues and gives the MP4. chain_quality.json is given the app's brief: the editor makes the very prompt
   the app queued (asserted, node for node), so ComfyUI's cache answers it in seconds instead of running
   the chain a second time; what that prompt makes (the MP4, the Brief's text) was checked on the app's run.

The same files work in the 1.43 editor (ComfyUI 0.20.1) and the 1.49 one (0.33): both read
extra.linearData's [inner node id, widget name] entries (1.49 turns them into its own widget ids when it
loads the file) and enter App Mode from extra.linearMode; 1.49's first App Mode tour is marked seen by the
`srv` fixture (lockn_testing/harness/browser.py EDITOR_SETTINGS).
"""
from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from lockn_gen import chains, workflow
from lockn_gen.demo_sets import TINY
from lockn_testing import graphs
from lockn_testing.harness.browser import (APP_FIELD, APP_FORM, APP_RUN, BROKEN_NODES, OPEN_STAGE, SET_WIDGETS, TAB,
                                           TOP_LEVEL, json_value, mp4s)
from lockn_testing.media import probe_media
from tests.test_workflow_subgraphs import MAX_TOP, face_setting, subgraph_ids

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
WF = Path(__file__).resolve().parents[1] / "workflows"
FORM_MS = 30_000
FLUX_FILES = {"diffusion_model": "flux2-dev-Q4_K_M.gguf", "text_encoder": "mistral_3_small_flux2_fp4_mixed.safetensors",
              "vae": "flux2-vae.safetensors"}
TAB_BUTTON = ".lockn-residency-tab-button"      # the sidebar gives each tab's button the class "<id>-tab-button"
APP_BRIEF = "a red fox in deep snow, slow jazz piano"
QUEUED: dict[str, dict] = {}                     # app file name -> the history entry of its run (section 4)

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
               ("chain_fast", "Video", "length"): [9, 1000, 8], ("ace15_text_to_music", "Music", "duration"): [1, 1000, 0.1]}


def shots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LOCKN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def node_types(ui: dict) -> set[str]:
    """Every node class of a UI file, on the top level and inside its subgraphs (not the subgraphs' own
    instances, not the notes)."""
    graphs_ = [ui] + (ui.get("definitions") or {}).get("subgraphs", [])
    return {n["type"] for g in graphs_ for n in g["nodes"]} - subgraph_ids(ui) - set(workflow.NOTE_TYPES)


def form_labels(editor) -> list[str]:
    return editor.page.locator(f"{APP_FORM} {APP_FIELD} [data-testid=builder-widget-label]").all_inner_texts()


def field(editor, label: str):
    """The form's field with that label."""
    page = editor.page
    return page.locator(f"{APP_FORM} {APP_FIELD}").filter(
        has=page.locator("[data-testid=builder-widget-label]", has_text=label))


def route_entries(srv) -> dict[str, dict]:
    return {e["name"]: e for e in srv.get("/lockn/residency")["entries"]}


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


# ---- no browser ----------------------------------------------------------------------------------------------
def test_the_shipped_files_are_the_workflows_and_the_apps():
    assert sorted(p.name for p in WF.glob("*.json")) == sorted(f"{n}.json" for n in chains.UI_NAMES)
    assert [n for n in chains.UI_NAMES if n.endswith(".app")] == ["chain_quality.app", "chain_fast.app"]
    # the faces' ranges are checked as each file opens (test_every_shipped_workflow_opens_in_the_editor)
    assert {n for n, _, _ in FACE_RANGES} <= set(chains.UI_NAMES)


def test_form_settings_cover_the_video_size_and_length():
    typed, rest = form_settings("chain_quality.app")
    assert typed == {"length (frames)": "17", "video width": "96", "video height": "96"}
    assert rest and all(s in TINY["chain_quality"] for s in rest)


# ---- 1. the LockN sidebar tab, while the server has run nothing else -------------------------------------------
def test_residency_tab_live_evict_and_pin(srv, editor):
    t0 = time.time()
    page = editor.page
    if not page.url.startswith(srv.url) or page.locator(TAB).count():     # else: the editor the fixture just opened
        page.goto(srv.url)
    editor.wait_for("() => window.comfyAPI && document.querySelector('.graph-canvas-container, #graph-canvas')",
                    "the ComfyUI editor to load", timeout=45_000)
    editor.wait_for(f"() => document.querySelector('{TAB_BUTTON}') !== null",
                    "the LockN sidebar button (is web/lockn_residency.js served and registering its tab?)")
    assert page.locator(TAB).count() == 0, "the LockN tab is open before its button was clicked"
    page.click(TAB_BUTTON)

    # opened: loaded from GET /lockn/residency, nothing resident yet
    editor.wait_for("() => document.querySelector('[data-testid=lockn-residency][data-entries=\"0\"] [data-testid=lockn-empty]')",
                    "the LockN tab to render with no entries")
    assert srv.get("/lockn/residency")["entries"] == []
    assert page.locator("[data-testid=lockn-row]").count() == 0
    for meter in ("lockn-gpu", "lockn-ram"):
        assert page.locator(f"[data-testid={meter}]").is_visible(), f"no {meter} meter in the tab"

    # a workflow queued through the API (not the editor): the tab updates live from the websocket event
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m"))
    editor.wait_for("names => names.every(n => document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"]`))",
                    f"rows for {sorted(FLUX_FILES.values())} after the workflow ran (no reload)",
                    arg=list(FLUX_FILES.values()))
    assert page.locator("[data-testid=lockn-row]").count() == 3
    on_server = route_entries(srv)
    for role, name in FLUX_FILES.items():
        tier = on_server[name]["tier"]
        assert tier in ("gpu", "ram"), f"{name} is {tier} right after the run"
        # the rows appear with the load's event; the prompt's end (settled by that GET) sends the final
        # tiers in a second event, which the browser may not have rendered yet
        editor.wait_row(name, f"{name} to show tier {tier!r} as on the server, from the prompt end's event", tier=tier)
        row = editor.row(name)
        assert row.locator("[data-testid=lockn-tier]").inner_text().strip() == tier
        assert role in row.inner_text() and "flux2" in row.inner_text()

    # Evict the diffusion model from the tab: dropped in the tab and on the server
    dit, vae, te = FLUX_FILES["diffusion_model"], FLUX_FILES["vae"], FLUX_FILES["text_encoder"]
    editor.row(dit).locator("[data-testid=lockn-evict]").click()
    editor.wait_row(dit, f"{dit} to show tier 'dropped' after its Evict button", tier="dropped")
    assert editor.row(dit).locator("[data-testid=lockn-tier]").inner_text().strip() == "dropped"
    assert route_entries(srv)[dit]["tier"] == "dropped"
    assert {route_entries(srv)[n]["tier"] for n in (vae, te)} <= {"gpu", "ram"}, "Evict dropped other models too"

    # Pin the VAE from the tab: pinned in the tab and on the server
    assert route_entries(srv)[vae]["pinned"] is False
    editor.row(vae).locator("[data-testid=lockn-pin]").click()
    editor.wait_row(vae, f"{vae} to show as pinned after its Pin button", pinned="true")
    assert editor.row(vae).locator("[data-testid=lockn-pinned]").is_visible()
    assert editor.row(vae).locator("[data-testid=lockn-pin]").inner_text().strip() == "Unpin"
    assert route_entries(srv)[vae]["pinned"] is True
    assert route_entries(srv)[te]["pinned"] is False
    if os.environ.get("LOCKN_SIDEBAR_SCREENSHOT"):
        page.screenshot(path=os.environ["LOCKN_SIDEBAR_SCREENSHOT"])

    # a change made by another client (HTTP API) reaches the open tab through the websocket event too
    status, body = srv.post("/lockn/residency/pin", {"id": route_entries(srv)[vae]["id"], "pinned": False})
    assert status == 200, body
    editor.wait_row(vae, f"{vae} to show as unpinned after POST /lockn/residency/pin from outside", pinned="false")

    errors = editor.extension_errors()
    assert not errors, "console errors from the LockN extension:\n" + "\n".join(errors)
    assert time.time() - t0 < 60, f"the browser part took {time.time() - t0:.0f}s"


def test_the_editors_free_button_releases_lockn_models(srv, editor):
    """The editor's "Unload Models and Execution Cache" button runs the frontend command of that name,
    which posts /api/free (not /free) with unload_models and free_memory: LockN lets go of every model,
    the tab says so, and the next run reads them from disk again."""
    page = editor.page
    if not page.url.startswith(srv.url):
        page.goto(srv.url)
    editor.wait_for("() => window.app && window.app.extensionManager && window.app.extensionManager.command",
                    "the editor's command registry", timeout=45_000)
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="free-button"))
    before = route_entries(srv)
    assert before and any(e["tier"] in ("gpu", "ram") for e in before.values())
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/free")) as req:
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Memory.UnloadModelsAndExecutionCache')")
    assert req.value.url == f"{srv.url}/api/free", req.value.url
    after = all_dropped(srv)
    assert all(e["tier"] == "dropped" for e in after.values()), {n: e["tier"] for n, e in after.items()}
    if page.locator(TAB).count():
        editor.wait_row(FLUX_FILES["diffusion_model"], "the tab to show the dropped model", tier="dropped")
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="free-button-again"))
    again = route_entries(srv)
    assert all(again[n]["loads_from_disk"] == before[n]["loads_from_disk"] + 1 for n in FLUX_FILES.values())


def all_dropped(srv, timeout: float = 20) -> dict[str, dict]:
    """The registry's entries once every one is dropped (a free applies when the server's queue wakes up),
    or as they are after `timeout` seconds."""
    deadline = time.time() + timeout
    while any(e["tier"] != "dropped" for e in route_entries(srv).values()) and time.time() < deadline:
        time.sleep(0.2)
    return route_entries(srv)


def test_the_tab_shows_which_loras_the_base_carries(srv, editor):
    """A LoRA applied by LockN's LoRA node shows on the base's row (name and strength) and the LoRA's own
    row says which base carries it; a run without it clears the line. The tab is closed afterwards (the
    editor's own views follow)."""
    from lockn_testing.tiny.loras import FLUX_TURBO
    page = editor.page
    if not page.url.startswith(srv.url):
        page.goto(srv.url)
    editor.wait_for(f"() => document.querySelector('{TAB_BUTTON}') !== null", "the LockN sidebar button")
    if page.locator(TAB).count() == 0:
        page.locator(TAB_BUTTON).first.click()
    base = graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="lora-tab")
    srv.run(graphs.with_lora(base, "flux2", loras=[(FLUX_TURBO, 0.75)]))
    dit = FLUX_FILES["diffusion_model"]
    editor.wait_for("n => { const r = document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"] [data-testid=lockn-loras]`);"
                    " return r && r.textContent.includes('× 0.75'); }", f"the LoRA line on {dit}'s row", arg=dit)
    assert FLUX_TURBO in editor.row(dit).locator("[data-testid=lockn-loras]").inner_text()
    assert dit in editor.row(FLUX_TURBO).locator("[data-testid=lockn-applied-to]").inner_text()
    srv.run(base)                                        # the base alone: its weights carry no LoRA now
    editor.wait_for("n => document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"]`) &&"
                    " !document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"] [data-testid=lockn-loras]`)",
                    f"the LoRA line on {dit}'s row to go after a run without it", arg=dit)
    errors = editor.extension_errors()
    assert not errors, "console errors from the LockN extension:\n" + "\n".join(errors)
    page.locator(TAB_BUTTON).first.click()               # closed again
    editor.wait_for(f"() => !document.querySelector('{TAB}')", "the LockN tab to close")


# ---- 2. every shipped file opens -------------------------------------------------------------------------------
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
    # a face that stands for a PrimitiveInt or PrimitiveFloat ("Video.length" is "Length (frames)".value) has
    # the range of the inputs that value feeds, from the Primitive's properties, in this version's editor
    faces = {k: v for k, v in FACE_RANGES.items() if k[0] == name}
    assert {k: page.evaluate(FACE_RANGE, [k[1], k[2]]) for k in faces} == faces
    editor.screenshot(shots / f"{name}.png")
    assert editor.shown_problems() == [], name
    assert not editor.extension_errors(), editor.errors


# ---- 3. the Apps tab -------------------------------------------------------------------------------------------
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


# ---- 4. the runs -----------------------------------------------------------------------------------------------
def test_chain_app_runs_from_its_form(srv, editor, tmp_path):
    # from nothing loaded and nothing cached, as on a server of its own (the sidebar tests ran Flux.2 here)
    status, body = srv.post("/free", {"unload_models": True, "free_memory": True})
    assert status == 200, body
    assert all(e["tier"] == "dropped" for e in all_dropped(srv).values())
    name = "chain_quality.app"
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
    field(editor, "brief").locator("textarea").fill(APP_BRIEF)
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
    assert titled["Brief"]["inputs"]["text"] == APP_BRIEF
    for setting in TINY[chains.chain_of(name)]:      # the form's values and the graph's reached the nodes
        target, value = setting.split("=", 1)
        title, inp = target.rsplit(".", 1)
        assert titled[title]["inputs"][inp] == json_value(value), (setting, titled[title]["inputs"])
    (mp4,) = mp4s(entry)
    info = probe_media(srv.output_path(mp4))
    assert info["video"]["frames"] == int(typed["length (frames)"])
    assert (info["video"]["width"], info["video"]["height"]) == (96, 96)
    assert info["n_audio_streams"] == 1
    bid = next(k for k, n in prompt.items() if n["class_type"] == "LockNBrief")
    assert entry["outputs"][bid]["text"][0].startswith("written by:")
    QUEUED[name] = entry
    editor.wait_for("() => document.querySelector('video')", "the MP4 shown by the app", timeout=FORM_MS)
    editor.screenshot(shots_dir(tmp_path) / f"{name}_done.png", fit=False)
    assert not editor.extension_errors(), editor.errors


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
    app = f"{name}.app"
    if app in QUEUED:                                              # the app's brief: the app's prompt (below)
        err = page.evaluate(SET_WIDGETS, ["Brief", "text", APP_BRIEF])
        assert err is None, err
    entry = editor.queue_and_wait(lambda: page.evaluate("async () => { await window.app.queuePrompt(0, 1); }"), srv)
    assert entry["status"].get("status_str") == "success", json.dumps(entry["status"])[:3000]
    prompt = entry["prompt"][2]
    ran = entry                                                    # the run that made this prompt's outputs
    if app in QUEUED:
        # the graph and the app's form made the same prompt, node for node: ComfyUI's cache answered it (the
        # history lists the cached output nodes' files, not the Brief's text), and what the prompt makes (the
        # MP4's length, size and audio, the Brief's text) was checked on the app's run
        ran, queued = QUEUED[app], QUEUED[app]["prompt"][2]
        assert prompt == queued, sorted(k for k in set(prompt) | set(queued) if prompt.get(k) != queued.get(k))
    titled = {(n.get("_meta") or {}).get("title"): n for n in prompt.values()}
    for setting in TINY[name]:                                     # what was set on the faces reached the nodes
        target, value = setting.split("=", 1)
        title, inp = target.rsplit(".", 1)
        assert titled[title]["inputs"][inp] == json_value(value), (setting, titled[title]["inputs"])
    bid = next(k for k, n in prompt.items() if n["class_type"] == "LockNBrief")
    enc = next(n for n in prompt.values() if n["class_type"] == "TextEncodeAceStepAudio1.5")
    # the editor sent the Brief's outputs as links into the music encoder (COMBO outputs into combos)
    for field_, slot in (("tags", 1), ("bpm", 3), ("keyscale", 4), ("timesignature", 5)):
        assert enc["inputs"][field_] == [bid, slot], enc["inputs"]
    assert mp4s(entry) and mp4s(entry) == mp4s(ran), entry["outputs"]
    assert ran["outputs"][bid]["text"][0].startswith("written by:")
    assert not editor.extension_errors(), editor.errors
