"""The shipped workflows (workflows/, UI and API format) in a real ComfyUI server on the tiny models:
generated from one source and in sync, every node type exists, the API form validates, the UI file
fits the running server's /object_info, and each runs through the client with its outputs decoded and
checked.

The UI files hold one subgraph per stage (lockn_gen/workflow_ui.py); their nodes keep the API file's
ids inside the subgraphs, so the checks below compare them node by node. They are generated against
one pinned /object_info (tests/fixtures/object_info_workflows.json,
ComfyUI 0.20.1, see lockn_gen/chains.py), not the running server's: 0.33 adds outputs and dynamic
widgets that would make the files differ by version. The sync test compares with the pin; the
server test checks every node, socket, link and widget of the files against the server at hand. The apps
(NAME.app.json, lockn_gen.chains.APPS) are UI files of their chain's graph (their API file is the
chain's); they get the same checks and run through `lockn-gen run` like their chain."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockn_gen import chains, cli, client, family_workflows, start_image, workflow
from lockn_gen.demo_sets import TINY
from lockn_gen.workflow_schema import _types_ok, connects
from lockn_testing.media import probe_image, probe_media
from tests.test_workflow_subgraphs import levels, structure, subgraph_ids

pytestmark = pytest.mark.comfy
WF = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session server. The I2V workflows run on it as they are opened: their Load Image node reads the
    pack's example picture, which the pack put into the fresh server's input folder at start-up
    (tests/test_start_image.py); nothing of the tests' is put there."""
    assert (comfy_server.base / "input" / start_image.NAME).read_bytes() == start_image.PATH.read_bytes()
    return comfy_server


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def test_workflows_are_generated_from_one_source_and_in_sync():
    pinned = chains.pinned_object_info()
    assert set(pinned) == chains.node_classes(), \
        "the pinned /object_info does not cover exactly the workflows' node classes: run python -m lockn_gen.chains --pin --server URL"
    for name in chains.WORKFLOWS:
        api = chains.prompt(name)
        assert json.loads((WF / "api" / f"{name}.json").read_text()) == api, f"workflows/api/{name}.json is stale: run python -m lockn_gen.chains"
        ui = json.loads((WF / f"{name}.json").read_text())
        assert ui == chains.ui_workflow(name, pinned), \
            f"workflows/{name}.json is stale (or edited by hand): run python -m lockn_gen.chains"
        # the editor's file, flattened, gives exactly the API file (what the server runs), up to node ids
        assert structure(workflow.to_api(ui, pinned).prompt) == structure(api)
    for name in chains.APPS:
        ui = json.loads((WF / f"{name}.json").read_text())
        assert ui == chains.ui_workflow(name, pinned), \
            f"workflows/{name}.json is stale (or edited by hand): run python -m lockn_gen.chains"
        assert structure(workflow.to_api(ui, pinned).prompt) == structure(chains.prompt(chains.chain_of(name)))
    # nothing else: every UI file has its generator, every API file its workflow (an app has none of its own)
    assert sorted(p.name for p in WF.glob("*.json")) == sorted(f"{n}.json" for n in chains.UI_NAMES)
    assert sorted(p.name for p in (WF / "api").glob("*.json")) == sorted(f"{n}.json" for n in chains.WORKFLOWS)


def _socket_type(spec) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _real_nodes(ui: dict) -> dict[str, dict]:
    """Every node of the file that is a node class (not a subgraph instance or a note), on any level, by id
    (the API file's ids: the generator keeps them inside the subgraphs)."""
    skip = subgraph_ids(ui) | set(workflow.NOTE_TYPES)
    return {str(n["id"]): n for _, g in levels(ui) for n in g["nodes"] if n["type"] not in skip}


@pytest.mark.parametrize("name", chains.UI_NAMES)
def test_ui_file_fits_the_running_server(object_info, name):
    """Every node, input socket, output and link of the UI file (inside the stage subgraphs too) exists on
    this server with a type that connects, and its widgets convert to a prompt that validates here and
    sets what the API file sets."""
    ui = json.loads((WF / f"{name}.json").read_text())
    api = json.loads((WF / "api" / f"{chains.chain_of(name)}.json").read_text())
    nodes = _real_nodes(ui)
    assert set(nodes) == set(api)
    problems = []
    for nid, n in nodes.items():
        info = object_info.get(n["type"])
        if info is None:
            problems.append(f"node {nid}: no node type {n['type']} on the server")
            continue
        for slot in n["inputs"]:
            spec = workflow.input_spec(info, slot["name"], api[nid]["inputs"])
            if spec is None:
                problems.append(f"node {nid} ({n['type']}): no input {slot['name']!r} on the server")
            elif not connects(slot["type"], _socket_type(spec)):
                problems.append(f"node {nid} ({n['type']}): input {slot['name']!r} is {slot['type']} in the file, "
                                f"{_socket_type(spec)} on the server")
        outs = info.get("output") or []
        for s, out in enumerate(n["outputs"]):
            if s >= len(outs) or not _types_ok(out["type"], outs[s]):
                problems.append(f"node {nid} ({n['type']}): output {s} ({out['type']}) is not on the server: {outs}")
    for where, g in levels(ui):
        for link in g["links"]:
            lid, src, src_slot, dst, dst_slot, ltype = (link if isinstance(link, list) else
                                                        [link[k] for k in ("id", "origin_id", "origin_slot", "target_id",
                                                                           "target_slot", "type")])
            if str(src) not in nodes or str(dst) not in nodes:
                continue                        # through a subgraph's input or output: the prompt checks those
            src_n, dst_n = nodes[str(src)], nodes[str(dst)]
            outs = (object_info.get(src_n["type"]) or {}).get("output") or []
            spec = workflow.input_spec(object_info.get(dst_n["type"], {}), dst_n["inputs"][dst_slot]["name"],
                                       api[str(dst)]["inputs"])
            if src_slot >= len(outs) or spec is None or not connects(outs[src_slot], _socket_type(spec)) \
                    or not _types_ok(ltype, outs[src_slot]):
                problems.append(f"{where}: link {lid} ({src_n['type']}:{src_slot} -> "
                                f"{dst_n['type']}.{dst_n['inputs'][dst_slot]['name']}) does not connect on the server")
    assert not problems, "\n".join(problems)
    # the widgets: what this server's editor makes of the file validates, and sets what the API file sets
    back = workflow.to_api(ui, object_info).prompt
    assert workflow.validate(back, object_info) == []
    back = {k.rsplit(":", 1)[-1]: n for k, n in back.items()}
    assert {k: n["class_type"] for k, n in back.items()} == {k: n["class_type"] for k, n in api.items()}
    for nid, node in api.items():
        info, got = object_info[node["class_type"]], back[nid]["inputs"]
        for key, value in node["inputs"].items():
            shown = workflow.shown_input(info, key, got)        # 0.33 shows SaveVideo's codec as format.codec
            got_value = got.get(shown)
            if workflow.is_link(got_value):
                got_value = [got_value[0].rsplit(":", 1)[-1], got_value[1]]
            assert got_value == value, f"node {nid} ({node['class_type']}): {shown} is {got.get(shown)!r}, not {value!r}"


@pytest.mark.parametrize("name", chains.UI_NAMES)
def test_every_node_exists_and_the_api_form_validates(object_info, name):
    ui = json.loads((WF / f"{name}.json").read_text())
    nodes = _real_nodes(ui).values()
    missing = sorted({n["type"] for n in nodes} - set(object_info))
    assert not missing, f"{name}: node types the server does not have: {missing}"
    assert workflow.validate(json.loads((WF / "api" / f"{chains.chain_of(name)}.json").read_text()), object_info) == []
    # the preset loaders (not the turbo path's upscaler: an optional file belongs in the "Model files" note,
    # not in the missing-models dialog the editor would open for it on every load)
    loaders = [n for n in nodes if n["type"].startswith("LockN") and n["type"].endswith("Loader")
               and n["type"] != "LockNLatentUpscaleModelLoader"]
    if name in family_workflows.NOTES:       # HeartMuLa: whole repositories (no file list to offer); its notes say how
        return
    assert loaders and all(n["properties"]["models"] for n in loaders)        # the editor can offer downloads
    for n in loaders:
        for m in n["properties"]["models"]:
            assert m["url"].startswith("https://huggingface.co/") and "/resolve/" in m["url"] and m["directory"]


def _run(server, tmp_path, name, fmt="ui"):
    src = WF / f"{name}.json" if fmt == "ui" else WF / "api" / f"{name}.json"
    (res,) = client.run_workflow(str(src), TINY[name], [server.url], out_dir=tmp_path, timeout=600)
    assert res.ok, res.error
    return [Path(f) for f in res.files]


def _frames_fps(name):
    s = dict(x.split("=", 1) for x in TINY[name])
    frames = int(s.get("Length (frames).value", 0))
    fps = {"wan": 16.0, "ltx": 25.0}["ltx" if any("sigmas" in x for x in TINY[name]) else "wan"]
    return frames, fps


def test_flux2_text_to_image(server, tmp_path):
    (png,) = _run(server, tmp_path, "flux2_text_to_image")
    info = probe_image(png)
    assert (info["width"], info["height"]) == (128, 128) and info["std"] > 0


@pytest.mark.parametrize("name", ["wan22_image_to_video", "ltx2_image_to_video"])
def test_image_to_video(server, tmp_path, name):
    (mp4,) = _run(server, tmp_path, name, fmt="api")
    frames, fps = _frames_fps(name)
    info = probe_media(mp4)
    assert info["n_video_streams"] == 1 and info["video"]["frames"] == frames and info["video"]["fps"] == pytest.approx(fps)
    assert info["n_audio_streams"] == (1 if name.startswith("ltx2") else 0)


def test_ace15_text_to_music(server, tmp_path):
    mp3s = _run(server, tmp_path, "ace15_text_to_music")
    assert len(mp3s) == 2                                   # the workflow's default: two candidate songs
    for mp3 in mp3s:
        a = probe_media(mp3)["audio"]
        assert a["sample_rate"] == 48000 and a["duration"] == pytest.approx(2.0, abs=0.1) and a["finite"]


@pytest.mark.parametrize("name", ["chain_quality", "chain_fast"])
def test_chain_makes_one_mp4_with_exact_frames_and_music(server, tmp_path, name):
    (mp4,) = _run(server, tmp_path, name)
    frames, fps = _frames_fps(name)
    info = probe_media(mp4)
    v, a = info["video"], info["audio"]
    assert info["n_video_streams"] == 1 and info["n_audio_streams"] == 1
    assert v["frames"] == frames and v["fps"] == pytest.approx(fps)             # exact frame count kept
    assert a["duration"] == pytest.approx(frames / fps, abs=1 / fps)            # music as long as the clip
    assert a["finite"] and a["peak"] > 0


def test_fast_chain_can_mix_ltx_audio(server, tmp_path):
    sets = TINY["chain_fast"] + ["Mix LTX-2 audio under the music.value=true"]
    (res,) = client.run_workflow(str(WF / "chain_fast.json"), sets, [server.url], out_dir=tmp_path, timeout=600)
    assert res.ok, res.error
    assert {"AudioMerge"} <= {server.get(f"/history/{res.prompt_id}")[res.prompt_id]["prompt"][2][n]["class_type"]
                              for n in res.result.executed}                   # the mix branch really ran
    info = probe_media(res.files[0])
    assert info["n_audio_streams"] == 1


def test_an_app_runs_through_lockn_gen_run(server, tmp_path):
    """`lockn-gen run workflows/chain_fast.app.json`: the app's file is a UI workflow like its chain's; its
    form's fields are set by their stage's face names (the rest of the tiny settings as the chain's)."""
    name = "chain_fast.app"
    sets = TINY[name] + ["Video.length=17", "Brief.text=a red fox in deep snow, jazz piano"]
    out = tmp_path / "out"
    rc = cli.main(["run", str(WF / f"{name}.json"), "--server", server.url, "--out", str(out), "--no-progress",
                   *sum((["--set", s] for s in sets), [])])
    assert rc == 0, server.log_tail()
    (mp4,) = out.rglob("*.mp4")
    info = probe_media(mp4)
    assert info["video"]["frames"] == 17 and info["n_audio_streams"] == 1
