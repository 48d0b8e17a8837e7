"""Faces, --set and the command line, without a server.

1. A stage's face that a PrimitiveInt or PrimitiveFloat stands for ("Image width", "Length (frames)", "Video
   steps", ...) has the range of the inputs that value feeds, not the Primitive's own 64-bit one: the UI
   files carry it in the Primitive's ``properties`` (min, max, step: what the editor's Int and Float widgets
   read, frontend 1.43 and 1.49, and what a face promoted from them shows; tests/test_web_workflows.py
   looks at the faces in both editors), and the client checks it: ``--set`` refuses a value outside it, or
   off its step, before anything is queued, with the setting, the value, the range and the step in the
   message; validate() refuses a Primitive whose value the inputs it feeds would not take.
2. An unknown stage, node or widget title in ``--set`` says the closest one first ("did you mean ...").
3. ``lockn-gen run --print-api`` converts without a server: with the pinned node list shipped inside
   lockn_gen/ (the one the shipped UI files are generated against), or a saved ``/object_info`` given with
   ``--object-info FILE``; stderr says which node list it used, stdout is the JSON alone.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from lockn_gen import chains, cli
from lockn_gen import workflow as W

REPO = Path(__file__).resolve().parents[1]
WF = REPO / "workflows"
OBJECT_INFO_033 = REPO / "tests" / "fixtures" / "object_info_033.json"   # a saved /object_info of ComfyUI 0.33


def ui_file(name: str) -> dict:
    return json.loads((WF / f"{name}.json").read_text())


def api_file(name: str) -> dict:
    return json.loads((WF / "api" / f"{chains.chain_of(name)}.json").read_text())


def graphs(ui: dict) -> list[dict]:
    return [ui] + (ui.get("definitions") or {}).get("subgraphs", [])


def titled(ui: dict, title: str) -> dict:
    (node,) = [n for g in graphs(ui) for n in g["nodes"] if n.get("title") == title]
    return node


def refusal(src, sets) -> str:
    info = chains.pinned_object_info()
    wf = W.to_api(src, info)
    before = json.dumps(wf.prompt, sort_keys=True)
    with pytest.raises(W.WorkflowError) as e:
        W.apply_sets(wf, sets, info)
    assert json.dumps(wf.prompt, sort_keys=True) == before, "a refused --set changed the prompt"
    return "\n".join(e.value.errors)


# ---- 1. the faces carry the range of what they stand for ------------------------------------------------
# (workflow, the Primitive's title) -> (min, max, step): the ranges of the inputs its value reaches, through
# the turbo switches (ComfySwitchNode) and into other stages, intersected
RANGES = {
    ("flux2_text_to_image", "Image width"): (16, 16384, 16),                # EmptyFlux2LatentImage, Flux2Scheduler
    ("flux2_text_to_image", "Image height"): (16, 16384, 16),
    ("wan22_image_to_video", "Length (frames)"): (1, 16384, 4),             # WanImageToVideo length
    ("wan22_image_to_video", "Video steps"): (1, 10000, 1),                 # KSamplerAdvanced steps, via a switch
    ("wan22_image_to_video", "Video high-noise steps"): (0, 10000, 1),      # end_at_step / start_at_step
    ("wan22_image_to_video", "Video turbo steps"): (1, 10000, 1),
    ("wan22_image_to_video", "Video CFG"): (0.0, 100.0, 0.1),
    ("ltx2_image_to_video", "Length (frames)"): (1, 1000, 8),               # EmptyLTXVLatentVideo + the audio's frames
    ("chain_quality", "FPS"): (1.0, 120.0, 1.0),                            # CreateVideo and Fit Audio, in Assemble
    ("chain_fast", "Length (frames)"): (9, 1000, 8),                        # + LTX-Video's LTXVImgToVideo (min 9)
    ("ace15_text_to_music", "Duration (s)"): (1.0, 1000.0, 0.1),            # the encoder's duration, the latent's seconds
}


@pytest.mark.parametrize("name,title", list(RANGES))
def test_a_primitive_carries_the_range_of_the_inputs_it_feeds(name, title):
    lo, hi, step = RANGES[(name, title)]
    props = titled(ui_file(name), title)["properties"]
    assert (props.get("min"), props.get("max"), props.get("step")) == (lo, hi, step), props
    assert type(props["min"]) is type(lo) and type(props["step"]) is type(step)


@pytest.mark.parametrize("name", chains.UI_NAMES)
def test_every_ranged_primitive_of_every_file_has_its_range_and_its_value_fits(name):
    ui = ui_file(name)
    info = chains.pinned_object_info()
    prompt = W.to_api(ui, info).prompt
    for g in graphs(ui):
        for n in g["nodes"]:
            if n["type"] not in ("PrimitiveInt", "PrimitiveFloat"):
                continue
            p = n["properties"]
            assert {"min", "max", "step"} <= set(p), (name, n.get("title"), p)
            value = n["widgets_values"][0]
            assert p["min"] <= value <= p["max"], (name, n.get("title"), value, p)
    assert W.validate(prompt, info) == []


@pytest.mark.parametrize("src,setting", [
    ("ui", "Video.length=100000"),                  # the stage's face
    ("ui", "Length (frames).value=100000"),         # the inner node, by its title
    ("api", "Length (frames).value=100000"),        # the flat API file
])
def test_an_out_of_range_length_is_refused_with_the_range_and_the_step(src, setting):
    name = "wan22_image_to_video"
    msg = refusal(ui_file(name) if src == "ui" else api_file(name), [setting])
    key = setting.split("=")[0]
    assert f"--set {setting}:" in msg and key in msg
    assert "100000" in msg and "between 1 and 16384" in msg and "in steps of 4" in msg, msg
    assert "WanImageToVideo" in msg and "'length'" in msg, msg          # what the range comes from


@pytest.mark.parametrize("name,setting,words", [
    ("flux2_text_to_image", "Image.width=1000000000000", ["between 16 and 16384", "in steps of 16"]),
    ("flux2_text_to_image", "Image width.value=-64", ["between 16 and 16384"]),
    ("wan22_image_to_video", "Video.steps=0", ["between 1 and 10000"]),
    ("wan22_image_to_video", "Video.steps=9223372036854775807", ["between 1 and 10000", "KSamplerAdvanced"]),
    ("wan22_image_to_video", "Video turbo steps.value=100000", ["between 1 and 10000"]),
    ("ltx2_image_to_video", "Video.length=2001", ["between 1 and 1000", "in steps of 8", "LTXVEmptyLatentAudio"]),
    ("chain_quality", "Video.fps=500", ["between 1.0 and 120.0", "CreateVideo"]),
    ("ace15_text_to_music", "Music.duration=5000", ["between 1.0 and 1000.0"]),
    ("wan22_image_to_video", "Video.width=100000", ["between 16 and 16384", "in steps of 16"]),   # a plain widget
])
def test_out_of_range_faces_are_refused(name, setting, words):
    msg = refusal(ui_file(name), [setting])
    assert setting.split("=")[1] in msg and all(w in msg for w in words), msg


def test_a_value_off_the_step_is_refused_with_the_nearest_ones():
    msg = refusal(ui_file("wan22_image_to_video"), ["Video.length=50"])
    assert "in steps of 4" in msg and "49" in msg and "53" in msg, msg
    msg = refusal(ui_file("flux2_text_to_image"), ["Image.width=1000"])
    assert "992" in msg and "1008" in msg, msg


def test_values_in_range_still_go_through_every_form():
    info = chains.pinned_object_info()
    for src, sets in ((ui_file("wan22_image_to_video"), ["Video.length=49", "Video.steps=30"]),
                      (ui_file("wan22_image_to_video"), ["Length (frames).value=49", "Video steps.value=30"]),
                      (api_file("wan22_image_to_video"), ["Length (frames).value=49", "Video steps.value=30"])):
        wf = W.to_api(src, info)
        W.apply_sets(wf, sets, info)
        by_title = {(n.get("_meta") or {}).get("title"): n for n in wf.prompt.values()}
        assert by_title["Length (frames)"]["inputs"]["value"] == 49
        assert by_title["Video steps"]["inputs"]["value"] == 30
        assert W.validate(wf.prompt, info) == []


def test_the_ui_files_range_is_the_clients_too():
    """A range the file narrows (the Primitive's properties, as the editor's properties panel sets them)
    is kept by --set as well."""
    ui = ui_file("flux2_text_to_image")
    titled(ui, "Image width")["properties"]["max"] = 2048
    msg = refusal(ui, ["Image.width=4096"])
    assert "between 16 and 2048" in msg, msg


def test_validate_refuses_a_primitive_the_inputs_it_feeds_would_not_take():
    info = chains.pinned_object_info()
    api = api_file("wan22_image_to_video")
    nid = next(k for k, n in api.items() if n["_meta"]["title"] == "Length (frames)")
    api[nid]["inputs"]["value"] = 10 ** 12
    problems = W.validate(api, info)
    assert any("Length (frames)" in p and str(10 ** 12) in p and "between 1 and 16384" in p for p in problems), problems


# ---- 2. did you mean ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("src,setting,first", [
    ("ui", "Vidoe.length=49", "no node is titled 'Vidoe'; did you mean 'Video'?"),
    ("ui", "Video.lenght=49", "subgraph 'Video' has no input 'lenght'; did you mean 'length'?"),
    ("ui", "Length (frame).value=49", "no node is titled 'Length (frame)'; did you mean 'Length (frames)'?"),
    ("api", "Length (frame).value=49", "no node is titled 'Length (frame)'; did you mean 'Length (frames)'?"),
    ("api", "Video size.widht=96", "has no input 'widht'; did you mean 'width'?"),
])
def test_an_unknown_title_or_widget_names_the_closest_first(src, setting, first):
    name = "wan22_image_to_video"
    msg = refusal(ui_file(name) if src == "ui" else api_file(name), [setting])
    assert first in msg, msg
    assert msg.index("did you mean") < msg.index("Titles in this workflow" if "titled" in first else "Its inputs")


def test_no_suggestion_when_nothing_is_close():
    msg = refusal(ui_file("wan22_image_to_video"), ["Zzzqqq.length=49"])
    assert "did you mean" not in msg and "Titles in this workflow" in msg, msg


# ---- 3. --print-api without a server --------------------------------------------------------------------
def test_the_pinned_node_list_ships_inside_the_package():
    pin = chains.PINNED_OBJECT_INFO
    assert pin.parent == REPO / "lockn_gen" and pin.is_file()
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lockn_gen"]
    assert pin.name in data
    assert chains.node_classes() <= set(chains.pinned_object_info())


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["run", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_print_api_converts_a_ui_file_offline_with_the_pinned_node_list(capsys):
    rc, out, err = run_cli(capsys, WF / "chain_quality.json", "--print-api", "--set", "Video.length=49")
    assert rc == 0, err
    prompt = json.loads(out)                                    # stdout is the JSON alone
    info = chains.pinned_object_info()
    assert W.validate(prompt, info) == []
    assert any(n["_meta"]["title"] == "Length (frames)" and n["inputs"]["value"] == 49 for n in prompt.values())
    assert "pinned node list" in err and str(chains.PINNED_OBJECT_INFO.name) in err, err


def test_print_api_with_a_saved_object_info(capsys, tmp_path):
    rc, out, err = run_cli(capsys, WF / "flux2_text_to_image.json", "--print-api", "--object-info", OBJECT_INFO_033)
    assert rc == 0, err
    assert W.validate(json.loads(out), json.loads(OBJECT_INFO_033.read_text())) == []
    assert str(OBJECT_INFO_033) in err, err
    rc, out, err = run_cli(capsys, WF / "flux2_text_to_image.json", "--print-api", "--object-info", tmp_path / "nope.json")
    assert rc == 2 and out == "" and "nope.json" in err, err


def test_print_api_refuses_out_of_range_sets_offline(capsys):
    rc, out, err = run_cli(capsys, WF / "flux2_text_to_image.json", "--print-api", "--set", "Image.width=1000000")
    assert rc == 2 and out == ""
    assert "nothing was queued" in err and "between 16 and 16384" in err and "in steps of 16" in err, err


def test_print_api_says_what_to_give_for_a_node_the_pinned_list_lacks(capsys, tmp_path):
    api = api_file("flux2_text_to_image")
    api["99"] = {"class_type": "SomeoneElsesNode", "inputs": {}}
    src = tmp_path / "mine.json"
    src.write_text(json.dumps(api))
    rc, out, err = run_cli(capsys, src, "--print-api")
    assert rc == 2 and out == ""
    assert "SomeoneElsesNode" in err and "--object-info" in err and "--server" in err, err
