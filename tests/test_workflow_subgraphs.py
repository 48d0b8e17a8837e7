"""The shipped UI files read like ComfyUI's official templates (no server): on the top level a few nodes,
one subgraph per stage with the widgets a user changes on its face, and Markdown notes; inside each
subgraph the nodes laid out left to right. Flattened the way the editor queues them, they give the API
files back, and `--set` reaches the promoted widgets by the stage's title. The apps (NAME.app.json) are
their chain's file with a form for the editor's App Mode (extra.linearMode, extra.linearData): every
check here holds for them too, and the form's fields are widgets the editor finds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockn_gen import catalog, chains, family_workflows, heartmula, training_workflows
from lockn_gen import workflow as W
from lockn_gen.demo_sets import TINY

WF = Path(__file__).resolve().parents[1] / "workflows"
NAMES = chains.UI_NAMES                # the workflows and the apps
# a training workflow's top level: the base's loader (it feeds both stages) and core's loss plot
TRAINING_TOP = ("LockNFlux2Loader", "LockNWan22Loader", "LockNAceStep15Loader", "LossGraphNode")
MODEL_CHOICES = ("LockNImageModel", "LockNVideoModel", "LockNMusicModel")   # a chain's stage models (issue 24)
MAX_TOP = 11                   # Brief, Start image or candidates, 4 stages, Save, (LTX-2 loader), a model node per stage
TITLE_H = 30                     # LiteGraph's title bar, above a node's pos
# what each stage shows on its face when the prompt there is a plain widget (chains feed it from the Brief)
FACES = {"Image": {"width", "height", "steps", "seed", "preset"},
         "Video": {"width", "height", "length", "fps", "seed"},
         "Music": {"seed", "steps", "preset"}}


def ui_file(name: str) -> dict:
    return json.loads((WF / f"{name}.json").read_text())


def api_file(name: str) -> dict:
    """The API file of a workflow, or of an app's chain (an app has none of its own)."""
    return json.loads((WF / "api" / f"{chains.chain_of(name)}.json").read_text())


def levels(ui: dict) -> list[tuple[str, dict]]:
    """("top", the file) and (subgraph name, its definition) for every graph of a UI file."""
    return [("top", ui)] + [(sg["name"], sg) for sg in (ui.get("definitions") or {}).get("subgraphs", [])]


def subgraph_ids(ui: dict) -> set[str]:
    return {sg["id"] for sg in (ui.get("definitions") or {}).get("subgraphs", [])}


def structure(prompt: dict) -> dict:
    """A prompt up to node ids: the flattened "<instance>:<inner>" ids become the inner (API) ids."""
    short = lambda nid: nid.rsplit(":", 1)[-1]  # noqa: E731
    return {short(k): (n["class_type"], {i: [short(v[0]), v[1]] if W.is_link(v) else v for i, v in n["inputs"].items()})
            for k, n in prompt.items()}


def boxes(nodes) -> list[tuple[str, float, float, float, float]]:
    """(label, x0, y0, x1, y1) of each node with its title bar, which the editor draws above pos."""
    return [(f"{n.get('title') or n['type']} ({n['id']})", n["pos"][0], n["pos"][1] - TITLE_H,
             n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]) for n in nodes]


def overlaps(items) -> list[str]:
    return [f"{a[0]} overlaps {b[0]}" for i, a in enumerate(items) for b in items[i + 1:]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]


@pytest.mark.parametrize("name", NAMES)
def test_ui_file_is_generated_and_flattens_to_the_api_file(name):
    pinned = chains.pinned_object_info()
    ui, api = ui_file(name), api_file(name)
    assert api == chains.prompt(chains.chain_of(name)), f"workflows/api/{name}.json is stale: run python -m lockn_gen.chains"
    assert ui == chains.ui_workflow(name, pinned), f"workflows/{name}.json is stale: run python -m lockn_gen.chains"
    back = W.to_api(ui, pinned).prompt                   # what the client (and the editor's queue) sends
    assert structure(back) == structure(api)             # class types, input values and every link
    top_level = TRAINING_TOP if name in training_workflows.WORKFLOWS else ("LoadImage", "LockNBrief", "PreviewImage",
                                                                           *MODEL_CHOICES)
    assert all(":" in k for k, n in back.items() if n["class_type"] not in top_level
               and not n["class_type"].startswith(("Save", "LockNLTX2"))), "stage nodes are inside subgraphs"


@pytest.mark.parametrize("name", NAMES)
def test_top_level_is_a_few_nodes_and_one_subgraph_per_stage(name):
    ui = ui_file(name)
    top = [n for n in ui["nodes"] if n["type"] not in W.NOTE_TYPES]
    assert len(top) <= MAX_TOP, [n.get("title") for n in top]
    instances = [n for n in top if n["type"] in subgraph_ids(ui)]
    assert len(instances) == len(subgraph_ids(ui)) >= 1                      # each definition used once
    assert {n["title"] for n in instances} <= ({"Data", "Train"} if name in training_workflows.WORKFLOWS else
                                               {"Image", "Video", "Music", "Assemble"})
    assert [n for n in ui["nodes"] if n["type"] == "MarkdownNote"], "notes on the top level"
    for _, g in levels(ui)[1:]:                                               # no subgraph inside a subgraph
        assert not {n["type"] for n in g["nodes"]} & subgraph_ids(ui)


@pytest.mark.parametrize("name", NAMES)
def test_no_two_nodes_overlap_on_any_level(name):
    ui = ui_file(name)
    for where, g in levels(ui):
        items = boxes(g["nodes"])
        if where != "top":
            for io in ("inputNode", "outputNode"):
                x, y, w, h = g[io]["bounding"]
                items.append((io, x, y, x + w, y + h))
        assert overlaps(items) == [], where


@pytest.mark.parametrize("name", NAMES)
def test_links_run_left_to_right_and_stay_on_their_level(name):
    ui = ui_file(name)
    for where, g in levels(ui):
        xs = {n["id"]: n["pos"][0] for n in g["nodes"]}
        if where != "top":
            xs[-10], xs[-20] = g["inputNode"]["bounding"][0], g["outputNode"]["bounding"][0]
        for link in g["links"]:
            lid, origin, _, target, _ = (link[k] for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")) \
                if isinstance(link, dict) else link[:5]
            assert origin in xs and target in xs, f"{where}: link {lid} leaves its level"
            assert xs[origin] < xs[target], f"{where}: link {lid} runs right to left"


@pytest.mark.parametrize("name", NAMES)
def test_stage_faces_carry_the_widgets_a_user_changes(name):
    """Each instance's inputs mirror its subgraph's inputs; a promoted one is a widget input on the
    instance, a proxyWidgets entry, and a subgraph input linked to that inner widget."""
    ui = ui_file(name)
    defs = {sg["id"]: sg for sg in ui["definitions"]["subgraphs"]}
    for inst in (n for n in ui["nodes"] if n["type"] in defs):
        sg = defs[inst["type"]]
        assert [(i["name"], i["type"]) for i in inst["inputs"]] == [(s["name"], s["type"]) for s in sg["inputs"]]
        assert [(o["name"], o["type"]) for o in inst["outputs"]] == [(s["name"], s["type"]) for s in sg["outputs"]]
        inner = {n["id"]: n for n in sg["nodes"]}
        links = {lk["id"]: lk for lk in sg["links"]}
        promoted = []
        for slot, (i, s) in enumerate(zip(inst["inputs"], sg["inputs"])):
            assert s["linkIds"] and all(links[lid]["origin_id"] == -10 and links[lid]["origin_slot"] == slot
                                        for lid in s["linkIds"])
            if "widget" in i:
                assert i["link"] is None
                (lid,) = s["linkIds"]
                target = inner[links[lid]["target_id"]]["inputs"][links[lid]["target_slot"]]
                assert target["link"] == lid and "widget" in target
                promoted.append([str(links[lid]["target_id"]), target["name"]])
                promoted_name = i["name"]
                assert promoted_name == s["name"]
            else:
                assert i["link"] is not None                   # a socket: fed by a link on the top level
        assert inst["properties"]["proxyWidgets"] == promoted
        shown = {i["name"] for i in inst["inputs"] if "widget" in i}
        expected = FACES.get(inst["title"], set())
        if inst["title"] == "Video" and not any(n["type"].startswith("LockN") and n["type"].endswith("Loader")
                                                for n in sg["nodes"]):
            expected = expected - {"preset"}
        if any(n["type"] == "LockNHeartMuLa" for n in sg["nodes"]):   # no preset (its own files) and no steps (frames)
            expected = expected - {"preset", "steps"}
        assert expected <= shown, (inst["title"], expected - shown)


@pytest.mark.parametrize("name", NAMES)
def test_notes_list_every_model_file_with_its_size_and_the_pull_command(name):
    ui, api = ui_file(name), api_file(name)
    notes = "\n".join(n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "MarkdownNote")
    if name in family_workflows.NOTES:          # HeartMuLa: whole Hugging Face repositories, not catalog presets
        for repo in heartmula.REPOS.values():
            assert f"hf download {repo} --local-dir" in notes and f"(https://huggingface.co/{repo})" in notes, repo
        assert "LOCKN_SETUP_HEARTMULA=1 bash scripts/setup.sh" in notes and "GB" in notes
        assert "## Time and memory" in notes and "estimate" in notes and "## Start here" in notes and "--set" in notes
        return
    cat = catalog.builtin()
    presets = [n["inputs"]["preset"] for n in api.values() if n["class_type"].startswith("LockN") and "preset" in n["inputs"]]
    assert presets
    lines = notes.splitlines()
    for pid in presets:
        assert any(pid in line for line in lines if "lockn-gen models pull" in line)
        for f in cat.preset_files(pid).values():
            assert any(f.name in line and f"{f.size / 1e9:.2f} GB" in line and f.url("https://huggingface.co") in line
                       for line in lines), f"{name}: the notes lack {f.name} with its size and link"
    assert "## Time and memory" in notes and "estimate" in notes and "bench/RESULTS.md" in notes
    assert "## Start here" in notes and "--set" in notes


@pytest.mark.parametrize("name", NAMES)
def test_tiny_sets_work_on_both_formats_and_stage_titles_reach_promoted_widgets(name):
    info = chains.pinned_object_info()
    for src in (ui_file(name), api_file(name)):
        wf = W.to_api(src, info)
        W.apply_sets(wf, TINY[name], info)
        assert W.validate(wf.prompt, info) == []
    flat = W.to_api(ui_file(name), info)
    W.apply_sets(flat, TINY[name], info)
    by_face = W.to_api(ui_file(name), info)
    face_sets = [face_setting(ui_file(name), s) for s in TINY[name]]
    W.apply_sets(by_face, face_sets, info)
    assert by_face.prompt == flat.prompt


def face_setting(ui: dict, setting: str) -> str:
    """ "Image width.value=128" -> "Image.width=128": the stage's title and the promoted widget's name
    (a top-level node's setting stays as it is)."""
    target, value = setting.split("=", 1)
    title, widget = target.rsplit(".", 1)
    defs = {sg["id"]: sg for sg in ui["definitions"]["subgraphs"]}
    for inst in (n for n in ui["nodes"] if n["type"] in defs):
        sg = defs[inst["type"]]
        inner = {n["id"]: n for n in sg["nodes"] if n.get("title") == title}
        links = {lk["id"]: lk for lk in sg["links"]}
        for s in sg["inputs"]:
            for lid in s["linkIds"]:
                lk = links[lid]
                if lk["target_id"] in inner and inner[lk["target_id"]]["inputs"][lk["target_slot"]]["name"] == widget:
                    return f"{inst['title']}.{s['name']}={value}"
    assert any(n.get("title") == title for n in ui["nodes"]), f"{setting}: not on a stage's face nor the top level"
    return setting


def test_set_by_stage_title_and_face_name():
    info = chains.pinned_object_info()
    wf = W.to_api(ui_file("chain_quality"), info)
    W.apply_sets(wf, ["Image.width=128", "Video.length=17", "Music.steps=4", "Assemble.fade_out_seconds=0.5",
                      "Brief.text=a fox"], info)
    p = structure(wf.prompt)
    api = chains.chain_quality()
    title = {(n.get("_meta") or {}).get("title"): k for k, n in api.nodes.items()}
    assert p[title["Image width"]][1]["value"] == 128 and p[title["Length (frames)"]][1]["value"] == 17
    assert p[title["Music seed and steps"]][1]["steps"] == 4 and p[title["Music fade-out"]][1]["fade_out_seconds"] == 0.5
    assert p[title["Brief"]][1]["text"] == "a fox"
    with pytest.raises(W.WorkflowError, match="subgraph 'Image' has no input 'colour'. Its inputs: .*width"):
        W.apply_sets(wf, ["Image.colour=red"], info)


def test_stage_tags_stay_out_of_the_api_prompt():
    g = chains.chain_fast()
    assert set(g.stages) < set(g.nodes) and set(g.stages.values()) == {"Image", "Video", "Music", "Assemble"}
    assert all(set(n) <= {"class_type", "inputs", "_meta"} and set(n.get("_meta", {})) <= {"title"}
               for n in g.nodes.values())
    assert "LockNBrief" in {g.nodes[k]["class_type"] for k in set(g.nodes) - set(g.stages)}


@pytest.mark.parametrize("name", list(chains.APPS))
def test_app_is_its_chain_with_a_form_the_editor_resolves(name):
    """An app's file is its chain's (the same nodes, links and values) plus extra.linearMode and a form,
    extra.linearData, that the editor (frontend 1.43 and 1.49) can resolve: each field is a widget of a
    top-level node, or a promoted widget on a stage's face named by its inner node's id and widget (a
    proxyWidgets entry), with ids unique across the file so the inner id finds one face; the output is the
    top-level Save MP4; each field carries its label where the editor reads it."""
    app, chain = ui_file(name), ui_file(chains.chain_of(name))
    pinned = chains.pinned_object_info()
    assert structure(W.to_api(app, pinned).prompt) == structure(W.to_api(chain, pinned).prompt)
    assert app["extra"]["linearMode"] is True and "linearMode" not in chain["extra"]
    form = app["extra"]["linearData"]
    assert set(form) == {"inputs", "outputs"}
    ids = [str(n["id"]) for _, g in levels(app) for n in g["nodes"]]
    assert len(ids) == len(set(ids)), "node ids repeat across the file's levels"
    top = {str(n["id"]): n for n in app["nodes"]}
    defs = {sg["id"]: sg for sg in app["definitions"]["subgraphs"]}
    faces = {tuple(entry): n for n in app["nodes"] if n["type"] in defs for entry in n["properties"]["proxyWidgets"]}
    labels = list(chains.APP_FIELDS[name].values())
    assert len(form["inputs"]) == len(labels) == len({tuple(x) for x in form["inputs"]})
    for (nid, widget), label in zip(form["inputs"], labels):
        assert isinstance(nid, str) and isinstance(widget, str)          # as the official templates write them
        if nid in top:                                                      # a top-level node's widget
            node = top[nid]
            assert node["type"] not in defs and widget in {n for n, _, _ in W.class_inputs(pinned[node["type"]])}
            slots = [i for i in node["inputs"] if i["name"] == widget]
            assert [s.get("label") for s in slots] == [label] and "widget" in slots[0] and slots[0]["link"] is None
        else:                                                               # a promoted widget on a stage's face
            inst = faces[(nid, widget)]
            sg = defs[inst["type"]]
            inner = next(n for n in sg["nodes"] if str(n["id"]) == nid)
            links = {lk["id"]: lk for lk in sg["links"]}
            (s,) = [s for s in sg["inputs"] for lid in s["linkIds"] if links[lid]["target_id"] == inner["id"]
                    and inner["inputs"][links[lid]["target_slot"]]["name"] == widget]
            (i,) = [i for i in inst["inputs"] if i["name"] == s["name"]]
            assert s.get("label") == i.get("label") == label and "widget" in i
    (out,) = form["outputs"]
    assert top[out]["type"] == "SaveVideo"
    in_chain = {i.get("label") for _, g in levels(chain) for n in g["nodes"] for i in n["inputs"]}
    assert not in_chain & set(labels), "the chain's own file keeps the plain names"
    assert not [s for sg in chain["definitions"]["subgraphs"] for s in sg["inputs"] if "label" in s]


def test_apps_set_by_face_and_form_names():
    """`--set` on an app reaches the form's fields by their stage's face names, as on its chain."""
    info = chains.pinned_object_info()
    wf = W.to_api(ui_file("chain_fast.app"), info)
    W.apply_sets(wf, ["Brief.text=a fox", "Video.length=25", "Video.width=96", "Assemble.mix_ltx2_audio=true"], info)
    p = structure(wf.prompt)
    title = {(n.get("_meta") or {}).get("title"): k for k, n in chains.chain_fast().nodes.items()}
    assert p[title["Brief"]][1]["text"] == "a fox" and p[title["Length (frames)"]][1]["value"] == 25
    assert p[title["Video size"]][1]["width"] == 96 and p[title["Mix LTX-2 audio under the music"]][1]["value"] is True
